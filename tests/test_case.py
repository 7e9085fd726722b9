"""Shared test helpers in the manner of keras-hub's TestCase: config round trips, `.keras` save/load, fit steps."""

import keras
import numpy as np


def assert_all_close(actual, expected, atol=1e-6, rtol=0.0):
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), atol=atol, rtol=rtol)


def assert_config_round_trip(obj):
    config = obj.get_config()
    clone = obj.__class__.from_config(config)
    assert clone.get_config() == config
    return clone


def assert_save_load_round_trip(model, inputs, tmp_path, atol=1e-6):
    before = keras.ops.convert_to_numpy(model(inputs, training=False))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded) is type(model)
    after = keras.ops.convert_to_numpy(loaded(inputs, training=False))
    assert_all_close(after, before, atol=atol)
    return loaded


def pad_right(inputs: dict, extra: int) -> dict:
    """Appends `extra` padded positions (id 0) to every row of every input."""
    return {k: np.pad(v, [(0, 0), (0, extra)] + [(0, 0)] * (v.ndim - 2)) for k, v in inputs.items()}


def loss_after_steps(model, inputs, targets, steps=60, learning_rate=1e-2):
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    first = float(model.evaluate(inputs, targets, verbose=0))
    model.fit(inputs, targets, epochs=steps, batch_size=len(targets), verbose=0, shuffle=False)
    return first, float(model.evaluate(inputs, targets, verbose=0))
