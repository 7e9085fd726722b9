"""LSTMP (an LSTM with a projected output): the step equations in NumPy, masks and go_backwards as Keras' LSTM
handles them, a projection BiLM's shapes and saved-model round trip (config refusals: tests/test_config.py; its
export: tests/export/test_staged.py and test_streaming.py)."""

import keras
import numpy as np
import pytest

from kerasrnn.layers.lstmp import LSTMP
from kerasrnn.models import BiLanguageModel


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def reference(x, valid, kernel, bias, recurrent, projection, go_backwards=False):
    """The equations step by step: a masked step keeps (r, c) and repeats the last output."""
    batch, time, _ = x.shape
    units, proj = projection.shape
    out, largest = np.zeros((batch, time, proj)), 0.0
    for b in range(batch):
        r, c = np.zeros(proj), np.zeros(units)
        order = range(time - 1, -1, -1) if go_backwards else range(time)
        for k, t in enumerate(order):
            if valid[b, t]:
                i, f, g, o = np.split(x[b, t] @ kernel + bias + r @ recurrent, 4)
                c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
                r = (_sigmoid(o) * np.tanh(c)) @ projection
                largest = max(largest, np.abs(c).max())
            out[b, k] = r
    return out, largest


@pytest.mark.parametrize("go_backwards", [False, True])
def test_lstmp_follows_its_equations_with_right_padding_and_cell_states_past_ten(go_backwards):
    rng = np.random.default_rng(0)
    layer = LSTMP(6, 3, go_backwards=go_backwards)
    x = np.abs(rng.normal(size=(3, 14, 4))).astype("float32")
    layer.build(x.shape)
    big = rng.normal(size=(4, 24)).astype("float32")  # input and forget gates open, g near 1: c grows by ~1 a step
    big[:, :18] = 4.0
    layer.kernel.assign(big)
    valid = np.array([[1] * 14, [1] * 9 + [0] * 5, [1] + [0] * 13], bool)
    got = np.asarray(layer(x, mask=valid))
    kernel, bias = np.asarray(layer.kernel), np.asarray(layer.bias)
    expected, largest_cell = reference(x, valid, kernel, bias, np.asarray(layer.cell.recurrent_kernel),
                         np.asarray(layer.cell.projection_kernel), go_backwards)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_array_equal(bias, np.r_[np.zeros(6), np.ones(6), np.zeros(12)])  # the forget gate starts at 1
    assert largest_cell > 10  # past the converter's LSTM cell_clip: the layer never clips


def test_a_projection_bilm_outputs_projected_layers_and_round_trips_through_a_saved_model(tmp_path):
    lm = BiLanguageModel(vocabulary_size=30, embedding_dim=5, units=12, projection=4, num_layers=2, residual=True,
                         num_sampled=8)
    ids = np.array([[5, 6, 7, 0], [8, 9, 0, 0]], "int32")
    layers = lm({"token_ids": ids})
    assert [tuple(x.shape) for x in layers] == [(2, 4, 5), (2, 4, 8), (2, 4, 8)] and lm.layer_dims == [5, 8, 8]
    assert lm.softmax_kernel.shape == (30, 4)
    # padding appended changes no valid position of either direction
    longer = lm({"token_ids": np.pad(ids, [[0, 0], [0, 3]])})
    for a, b in zip(layers, longer, strict=True):
        np.testing.assert_allclose(np.asarray(b)[0, :3], np.asarray(a)[0, :3], atol=1e-6)
        np.testing.assert_allclose(np.asarray(b)[1, :2], np.asarray(a)[1, :2], atol=1e-6)
    loss = float(lm.compute_loss(x={"token_ids": ids}, training=False))
    assert np.isfinite(loss) and abs(loss - np.log(30)) < 1.0  # near uniform at the start
    lm.save(tmp_path / "lm.keras")
    again = keras.saving.load_model(tmp_path / "lm.keras")
    for a, b in zip(layers, again({"token_ids": ids}), strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), atol=1e-6)



def test_a_projection_needs_lstm_cells():
    with pytest.raises(ValueError, match="cell 'lstm'"):
        BiLanguageModel(vocabulary_size=10, cell="gru", projection=4)

