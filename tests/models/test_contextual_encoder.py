import keras
import numpy as np
import pytest

from kerasrnn.models import ContextualEncoder
from tests.test_case import assert_all_close, assert_config_round_trip, assert_save_load_round_trip, pad_right


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def numpy_lstm(x, kernel, recurrent, bias):
    """Reference LSTM (Keras gate order i, f, c, o) over one unpadded sequence [T, D] -> [T, units]."""
    units = recurrent.shape[0]
    h, c, out = np.zeros(units), np.zeros(units), []
    for x_t in x:
        z = x_t @ kernel + h @ recurrent + bias
        i, f, g, o = sigmoid(z[:units]), sigmoid(z[units:2 * units]), np.tanh(z[2 * units:3 * units]), sigmoid(z[3 * units:])
        c = f * c + i * g
        h = o * np.tanh(c)
        out.append(h)
    return np.array(out)


def golden_encoder():
    encoder = ContextualEncoder(
        vocabulary_size=6, embedding_dim=3, units=2, output_dim=2,
        kernel_initializer=keras.initializers.Constant(0.1), recurrent_initializer=keras.initializers.Constant(0.05),
        embeddings_initializer=keras.initializers.Constant(0.0),
    )
    embedding = encoder.get_layer("token_embedding")
    embedding.set_weights([np.arange(18, dtype="float32").reshape(6, 3) / 10.0])
    return encoder


TOKENS = np.array([[1, 2, 3, 4], [5, 2, 0, 0]], dtype="int32")
# Produced by the encoder once and checked against `numpy_lstm` below; a change here means the numerics changed.
GOLDEN = np.array(
    [[[0.0451, 0.0451], [0.0601, 0.0601], [0.0727, 0.0727], [0.0791, 0.0791]],
     [[0.0773, 0.0773], [0.0487, 0.0487], [np.nan, np.nan], [np.nan, np.nan]]],
    dtype="float32",
)


def test_golden_numbers_with_constant_initialisers():
    out = keras.ops.convert_to_numpy(golden_encoder()({"token_ids": TOKENS}))
    valid = TOKENS != 0
    assert_all_close(out[valid], GOLDEN[valid], atol=1e-4)


def test_matches_a_numpy_reference_bilstm():
    encoder = golden_encoder()
    out = keras.ops.convert_to_numpy(encoder({"token_ids": TOKENS}))
    table = encoder.get_layer("token_embedding").get_weights()[0]
    bi = encoder.get_layer("bilstm_0")
    fw_w, bw_w = bi.forward_layer.get_weights(), bi.backward_layer.get_weights()
    proj_kernel, proj_bias = encoder.get_layer("projection").get_weights()
    for row, ids in enumerate(TOKENS):
        x = table[ids[ids != 0]]
        fw = numpy_lstm(x, *fw_w)
        bw = numpy_lstm(x[::-1], *bw_w)[::-1]
        expected = np.concatenate([fw, bw], axis=-1) @ proj_kernel + proj_bias
        assert_all_close(out[row, : len(x)], expected, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cell": "lstm", "num_layers": 1},
        {"cell": "gru", "num_layers": 2},
        {"cell": "lstm", "num_layers": 2, "bidirectional": False},
        {"cell": "lstm", "char_vocabulary_size": 30, "max_word_chars": 5},
    ],
)
def test_appending_padding_changes_no_valid_output(kwargs):
    keras.utils.set_random_seed(0)
    encoder = ContextualEncoder(vocabulary_size=50, embedding_dim=8, units=6, output_dim=5, **kwargs)
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, 50, size=(3, 7)).astype("int32")
    tokens[1, 4:] = 0
    tokens[2, 1:] = 0
    inputs = {"token_ids": tokens}
    if kwargs.get("char_vocabulary_size"):
        chars = rng.integers(1, 30, size=(3, 7, 5)).astype("int32")
        chars[tokens == 0] = 0
        inputs["char_ids"] = chars
    out = keras.ops.convert_to_numpy(encoder(inputs))
    padded = keras.ops.convert_to_numpy(encoder(pad_right(inputs, 9)))
    valid = tokens != 0
    assert_all_close(padded[:, :7][valid], out[valid], atol=1e-6)
    mask = keras.ops.convert_to_numpy(encoder(inputs)._keras_mask)
    np.testing.assert_array_equal(mask, valid)


def test_config_and_save_load_round_trip(tmp_path):
    encoder = ContextualEncoder(vocabulary_size=40, embedding_dim=4, units=3, output_dim=2, cell="gru",
                                num_layers=2, char_vocabulary_size=20, max_word_chars=4, dropout=0.2)
    clone = assert_config_round_trip(encoder)
    assert clone.count_params() == encoder.count_params()
    inputs = {"token_ids": np.array([[3, 4, 0]], "int32"), "char_ids": np.ones((1, 3, 4), "int32")}
    assert_save_load_round_trip(encoder, inputs, tmp_path)


def test_rejects_unknown_cell():
    with pytest.raises(ValueError, match="cell must be one of"):
        ContextualEncoder(vocabulary_size=10, cell="rnn")


@pytest.mark.parametrize("bidirectional, chars", [(True, 7), (False, 0)])
def test_accessors_reach_the_layers_that_carry_the_weights(bidirectional, chars):
    encoder = ContextualEncoder(vocabulary_size=9, embedding_dim=3, units=2, output_dim=4, num_layers=2,
                                bidirectional=bidirectional, char_vocabulary_size=chars, char_filters=5)
    assert encoder.token_embedding.get_weights()[0].shape == (9, 3)
    assert (encoder.char_cnn is not None) == bool(chars)
    assert encoder.word_features.output.shape[-1] == 3 + (5 if chars else 0)
    assert encoder.projection.get_weights()[0].shape == (4 if bidirectional else 2, 4)
    layers, directions = encoder.recurrent_layers, encoder.recurrent_directions
    assert len(layers) == len(directions) == 2
    assert all((bw is None) != bidirectional for _, bw in directions)
    # Layer 1 reads layer 0's output: its forward kernel has layer 0's width as input size.
    assert directions[1][0].get_weights()[0].shape == ((4 if bidirectional else 2), 8)
