import keras
import numpy as np
import pytest
import tensorflow as tf

import kerasrnn.layers.recurrent as recurrent
from kerasrnn.layers import GRU, LSTM
from tests.test_case import assert_all_close

CELLS = {"lstm": (keras.layers.LSTM, LSTM), "gru": (keras.layers.GRU, GRU)}
LENGTHS = np.array([7, 3, 5, 1])


def masks():
    t = np.arange(7)[None, :]
    holes = t < LENGTHS[:, None]
    holes[0, 2] = False
    return {"right-padded": t < LENGTHS[:, None], "left-padded": t >= (7 - LENGTHS)[:, None], "holes": holes,
            "full": np.ones((4, 7), bool)}


def pair(cell, bidirectional=True):
    keras.utils.set_random_seed(4)
    theirs, ours = (c(6, return_sequences=True) for c in CELLS[cell])
    if bidirectional:
        theirs, ours = keras.layers.Bidirectional(theirs), keras.layers.Bidirectional(ours)
    x = np.random.default_rng(5).normal(size=(4, 7, 3)).astype("float32")
    theirs(x), ours(x)
    ours.set_weights(theirs.get_weights())
    return theirs, ours, x


def outputs_and_gradients(layer, x, mask):
    x = tf.constant(x)
    weights = tf.constant(np.random.default_rng(6).normal(size=(4, 7, layer.compute_output_shape(x.shape)[-1])),
                          tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, mask=tf.constant(mask), training=True)
        loss = tf.reduce_sum(y * weights)
    return [y.numpy()] + [g.numpy() for g in tape.gradient(loss, [x, *layer.trainable_variables])]


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("kind", sorted(masks()))
def test_outputs_and_gradients_are_keras_own_for_every_mask(cell, kind):
    theirs, ours, x = pair(cell)
    mask = masks()[kind]
    expected, got = outputs_and_gradients(theirs, x, mask), outputs_and_gradients(ours, x, mask)
    assert_all_close(got[0], expected[0], atol=1e-6)
    assert np.all(got[0][~mask] == 0.0)  # padded positions are zero, as Keras' Bidirectional asks
    for g, e in zip(got[1:], expected[1:], strict=True):
        assert_all_close(g, e, atol=1e-5)


@pytest.mark.parametrize("kind", sorted(masks()))
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("cell", sorted(CELLS))
def test_a_layer_outside_bidirectional_keeps_keras_masked_outputs_and_gradients(cell, go_backwards, kind):
    keras.utils.set_random_seed(4)
    theirs, ours = (c(6, return_sequences=True, go_backwards=go_backwards) for c in CELLS[cell])
    x = np.random.default_rng(5).normal(size=(4, 7, 3)).astype("float32")
    theirs(x), ours(x)
    ours.set_weights(theirs.get_weights())
    mask = masks()[kind]
    # outside Bidirectional Keras holds the output read last over a masked position (zero_output_for_mask is
    # False); a go_backwards layer reads right padding first, where nothing is held yet
    expected, got = outputs_and_gradients(theirs, x, mask), outputs_and_gradients(ours, x, mask)
    if kind == "right-padded":
        padded = ~mask[:, ::-1] if go_backwards else ~mask  # a go_backwards layer's outputs come last position first
        assert np.any(expected[0][padded] != 0.0) != go_backwards
    assert_all_close(got[0], expected[0], atol=1e-6)
    for g, e in zip(got[1:], expected[1:], strict=True):
        assert_all_close(g, e, atol=1e-5)


def recorded_loops(monkeypatch):
    loops = []
    rnn, fused = recurrent.backend.rnn, recurrent.fused_lstm_sequence

    def recording_rnn(*args, mask=None, **kwargs):
        loops.append("masked" if mask is not None else "mask-free")
        return rnn(*args, mask=mask, **kwargs)

    def recording_fused(*args):
        loops.append("fused")
        return fused(*args)

    monkeypatch.setattr(recurrent.backend, "rnn", recording_rnn)
    monkeypatch.setattr(recurrent, "fused_lstm_sequence", recording_fused)
    return loops


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("kind", sorted(masks()))
def test_every_mask_runs_the_loop_without_a_mask(monkeypatch, cell, kind):
    _, ours, x = pair(cell)
    loops = recorded_loops(monkeypatch)
    ours(x, mask=masks()[kind])
    expected = {"lstm": "fused", "gru": "mask-free"}[cell]
    assert loops == [expected, expected]  # both directions


def test_dropout_in_the_cell_takes_keras_masked_loop(monkeypatch):
    layer = LSTM(4, return_sequences=True, dropout=0.2)
    layer.build((2, 3, 2))
    loops = recorded_loops(monkeypatch)
    layer(np.ones((2, 3, 2), "float32"), mask=np.array([[1, 1, 0], [1, 0, 0]], bool), training=True)
    assert loops == ["masked"]


def reference_lstm(x, h, c, kernel, recurrent_kernel, bias):
    """Keras' LSTMCell equations, step by step in plain TensorFlow ops (the autodiff reference)."""
    hs, cs = [], []
    for t in range(x.shape[0]):
        i, f, g, o = tf.split(x[t] @ kernel + h @ recurrent_kernel + bias, 4, axis=-1)
        c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
        h = tf.sigmoid(o) * tf.tanh(c)
        hs.append(h)
        cs.append(c)
    return tf.stack(hs), tf.stack(cs)


def test_fused_sequence_and_its_gradient_match_the_step_equations_past_a_cell_state_of_ten():
    rng = np.random.default_rng(8)
    steps, rows, features, units = 16, 3, 4, 5
    args = [rng.normal(size=(steps, rows, features)) * 3.0, rng.normal(size=(rows, units)) * 0.5,
            rng.normal(size=(rows, units)) * 4.0, rng.normal(size=(features, 4 * units)) * 0.5,
            rng.normal(size=(units, 4 * units)) * 0.3, np.concatenate([np.full(units, 4.0), np.full(units, 6.0),
                                                                   np.full(units, 5.0), np.zeros(units)])]
    args = [tf.constant(a, tf.float32) for a in args]
    weights = [tf.constant(rng.normal(size=(steps, rows, units)), tf.float32) for _ in range(2)]
    results = []
    for fn in (recurrent.fused_lstm_sequence, reference_lstm):
        with tf.GradientTape() as tape:
            tape.watch(args)
            h, c = fn(*args)
            loss = tf.reduce_sum(h * weights[0]) + tf.reduce_sum(c * weights[1])
        results.append([h.numpy(), c.numpy()] + [g.numpy() for g in tape.gradient(loss, args)])
    (h, c, *grads), (h_ref, c_ref, *grads_ref) = results
    assert np.abs(c_ref).max() > 10.0  # where TFLite's fused LSTM would clip
    assert_all_close(h, h_ref, atol=1e-5)
    assert_all_close(c, c_ref, atol=1e-4)
    for g, e in zip(grads, grads_ref, strict=True):  # x, h0, c0, kernel, recurrent kernel, bias
        assert_all_close(g, e, atol=1e-4 * max(1.0, np.abs(e).max()))


def test_saved_encoder_reloads_the_same_layer_class(tmp_path):
    from kerasrnn.models import ContextualEncoder

    encoder = ContextualEncoder(20, embedding_dim=4, units=3, output_dim=2)
    path = tmp_path / "encoder.keras"
    encoder.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    layer = loaded.get_layer("bilstm_0")
    assert type(layer.forward_layer) is LSTM and type(layer.backward_layer) is LSTM
    ids = {"token_ids": np.array([[3, 4, 5, 0], [6, 0, 0, 0]], "int32")}
    assert_all_close(loaded(ids).numpy(), encoder(ids).numpy(), atol=1e-6)
