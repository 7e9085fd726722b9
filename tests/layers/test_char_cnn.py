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


def test_config_round_trip():
    assert_config_round_trip(CharCNN(vocabulary_size=10, filters=3))
