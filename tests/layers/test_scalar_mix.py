import keras
import numpy as np

from kerasrnn.layers import ScalarMix
from tests.test_case import assert_all_close, assert_config_round_trip


def test_golden_mix_of_layers_of_two_widths():
    mix = ScalarMix()
    narrow = np.arange(6, dtype="float32").reshape(1, 2, 3)
    wide = np.ones((1, 2, 4), "float32")
    mix([narrow, wide])
    mix.set_weights([np.log(np.array([1.0, 3.0], "float32")), np.array(2.0, "float32")])  # softmax 0.25, 0.75
    out = np.asarray(mix([narrow, wide]))
    expected = 2.0 * (0.25 * np.pad(narrow, [(0, 0), (0, 0), (0, 1)]) + 0.75 * wide)
    assert out.shape == (1, 2, 4)
    assert_all_close(out, expected, atol=1e-6)
    assert_all_close(out[0, 1], [3.0, 3.5, 4.0, 1.5], atol=1e-6)  # 2 (0.25 [3, 4, 5, 0] + 0.75)


def test_weights_and_scale_learn_which_layer_to_read():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(64, 5, 3)).astype("float32"), rng.normal(size=(64, 5, 3)).astype("float32")
    i, j = keras.Input((5, 3)), keras.Input((5, 3))
    model = keras.Model([i, j], ScalarMix(name="mix")([i, j]))
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    model.fit([a, b], 3.0 * b, epochs=150, batch_size=64, verbose=0)
    s, gamma = model.get_layer("mix").get_weights()
    weights = np.exp(s) / np.exp(s).sum()
    assert weights[1] > 0.95 and abs(gamma * weights[1] - 3.0) < 0.15


def test_mask_passes_and_config_round_trips(tmp_path):
    mix = ScalarMix(name="mix")
    assert_config_round_trip(mix)
    mask = np.array([[True, False]])
    assert mix.compute_mask([np.zeros((1, 2, 3))] * 2, [mask, mask]) is mask
    i = keras.Input((None, 3))
    model = keras.Model(i, mix([i, i * 2.0]))
    x = np.random.default_rng(1).normal(size=(2, 4, 3)).astype("float32")
    model.save(tmp_path / "m.keras")
    assert_all_close(keras.saving.load_model(tmp_path / "m.keras")(x), model(x), atol=1e-6)
