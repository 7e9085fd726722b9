import keras
import numpy as np

from kerasrnn.layers import CharCNN
from tests.test_case import assert_all_close, assert_config_round_trip


def test_padded_characters_never_change_a_word_vector():
    keras.utils.set_random_seed(0)
    layer = CharCNN(vocabulary_size=20, embedding_dim=4, filters=6, kernel_size=1)
    chars = np.array([[[3, 4, 0, 0], [5, 0, 0, 0], [0, 0, 0, 0]]], "int32")
    out = keras.ops.convert_to_numpy(layer(chars))
    wider = keras.ops.convert_to_numpy(layer(np.pad(chars, [(0, 0), (0, 0), (0, 3)])))
    assert out.shape == (1, 3, 6)
    assert_all_close(wider, out)
    assert_all_close(out[0, 2], np.zeros(6))


def test_golden_max_over_characters():
    layer = CharCNN(vocabulary_size=3, embedding_dim=1, filters=1, kernel_size=1,
                    embeddings_initializer=keras.initializers.Constant(1.0),
                    kernel_initializer=keras.initializers.Constant(0.5))
    layer.build((None, None, 2))
    layer.embedding.set_weights([np.array([[0.0], [1.0], [-2.0]], "float32")])
    out = keras.ops.convert_to_numpy(layer(np.array([[[1, 2], [2, 0]]], "int32")))
    assert_all_close(out[0, :, 0], [np.tanh(0.5), np.tanh(-1.0)], atol=1e-6)


def test_highway_layers_golden_against_numpy():
    keras.utils.set_random_seed(1)
    layer = CharCNN(vocabulary_size=9, embedding_dim=3, filters=4, kernel_size=2, highway_layers=2)
    chars = np.array([[[3, 4, 5, 0], [6, 0, 0, 0], [0, 0, 0, 0]]], "int32")
    out = keras.ops.convert_to_numpy(layer(chars))
    # gates start mostly shut: bias 0 on the transform, -1 on the gate
    for highway in layer.highways:
        assert_all_close(highway.get_weights()[1], [0.0] * 4 + [-1.0] * 4)
        highway.set_weights([highway.get_weights()[0], np.random.default_rng(2).normal(size=8).astype("float32")])
    out = keras.ops.convert_to_numpy(layer(chars))

    table = layer.embedding.get_weights()[0]
    kernel, bias = layer.conv.get_weights()
    expected = np.zeros((3, 4), "float32")
    for w, word in enumerate(chars[0]):
        n = int((word != 0).sum())
        if n == 0:
            continue  # a padded word stays zero
        e = np.concatenate([table[word], np.zeros((1, 3), "float32")])  # "same" padding: one zero row at the end
        conv = np.tanh(np.stack([e[i] @ kernel[0] + e[i + 1] @ kernel[1] for i in range(4)]) + bias)
        x = conv[:n].max(axis=0)
        for highway in layer.highways:
            hk, hb = highway.get_weights()
            z = x @ hk + hb
            t = 1.0 / (1.0 + np.exp(-z[4:]))
            x = t * np.maximum(z[:4], 0.0) + (1.0 - t) * x
        expected[w] = x
    assert_all_close(out[0], expected, atol=1e-5)
    assert np.abs(out[0, :2]).min() > 0.0


def test_config_round_trip():
    assert_config_round_trip(CharCNN(vocabulary_size=10, filters=3))
    assert_config_round_trip(CharCNN(vocabulary_size=10, filters=3, highway_layers=2))
