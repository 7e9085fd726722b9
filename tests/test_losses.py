"""Label smoothing: the loss against NumPy, s = 0 against Keras' own cross-entropy, a masked batch and the loss's
round trip (the settings it refuses: tests/test_config.py)."""

import keras
import numpy as np

from kerasrnn.losses import SmoothedSparseCrossentropy


def _log_softmax(z):
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def test_the_loss_is_the_cross_entropy_with_the_smoothed_target():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 5)).astype("float32")
    gold = np.array([0, 4, 2, 2])
    s, k = 0.1, 5
    target = np.full((4, k), s / k)
    target[np.arange(4), gold] += 1 - s
    expected = -(target * _log_softmax(logits.astype("float64"))).sum(-1)
    got = np.asarray(SmoothedSparseCrossentropy(s, reduction=None)(gold, logits))
    np.testing.assert_allclose(got, expected, atol=1e-5)
    plain = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)(gold, logits)
    np.testing.assert_allclose(SmoothedSparseCrossentropy(0.0, reduction=None)(gold, logits), plain, atol=1e-6)


def test_masked_positions_add_nothing_and_the_loss_survives_a_saved_model():
    rng = np.random.default_rng(1)
    ids = np.array([[3, 4, 0, 0], [5, 6, 7, 0]])
    gold = rng.integers(0, 3, size=ids.shape)
    inputs = keras.Input((None,), dtype="int32")
    outputs = keras.layers.Dense(3)(keras.layers.Embedding(8, 4, mask_zero=True)(inputs))
    model = keras.Model(inputs, outputs)
    loss = SmoothedSparseCrossentropy(0.2)
    logits = np.asarray(model(ids))
    per_token = -(0.8 * np.take_along_axis(_log_softmax(logits), gold[..., None], -1)[..., 0]
                  + 0.2 * _log_softmax(logits).mean(-1))
    valid = ids != 0
    model.compile(loss=loss)
    np.testing.assert_allclose(model.evaluate(ids, gold, verbose=0), per_token[valid].mean(), atol=1e-5)
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(restored, SmoothedSparseCrossentropy) and restored.label_smoothing == 0.2

