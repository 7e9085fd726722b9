"""The SRU layer against a step-by-step NumPy SRU: golden numbers, the scan, masks of every shape, Bidirectional,
serialization, training, and the exported graph's scan."""

import keras
import numpy as np
import pytest
from keras import ops

from kerasrnn.layers.sru import SRU, linear_scan
from tests.test_case import assert_all_close, assert_config_round_trip, loss_after_steps


def time_major(scan):
    """`scan` (time-major, as the layer runs it) for [batch, time, units] tensors."""
    return lambda f, a: ops.transpose(scan(ops.transpose(f, (1, 0, 2)), ops.transpose(a, (1, 0, 2))), (1, 0, 2))


def numpy_sru(x, kernel, bias, units, mask=None):
    """Lei et al.'s equations, one step at a time: masked steps keep the state and output zeros."""
    sig = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
    batch, time, _ = x.shape
    mask = np.ones((batch, time), bool) if mask is None else mask
    c, out = np.zeros((batch, units)), np.zeros((batch, time, units))
    for t in range(time):
        u = x[:, t] @ kernel
        f = sig(u[:, units : 2 * units] + bias[:units])
        r = sig(u[:, 2 * units : 3 * units] + bias[units:])
        highway = u[:, 3 * units :] if kernel.shape[1] == 4 * units else x[:, t]
        m = mask[:, t : t + 1]
        c = np.where(m, f * c + (1 - f) * u[:, :units], c)
        out[:, t] = np.where(m, r * np.tanh(c) + (1 - r) * highway, 0.0)
    return out


def random_sru(units, features, seed=0, **kwargs):
    layer = SRU(units, **kwargs)
    layer.build((None, None, features))
    rng = np.random.default_rng(seed)
    for w in layer.weights:
        w.assign(rng.normal(scale=0.7, size=w.shape).astype("float32"))
    return layer


def test_golden_numbers_from_constant_weights():
    layer = SRU(2, return_sequences=True, kernel_initializer=keras.initializers.Constant(0.1),
                bias_initializer=keras.initializers.Constant(0.5))
    x = np.arange(6, dtype="float32").reshape(1, 3, 2) / 4.0
    # t = 0 by hand: u = 0.025, f = r = sigmoid(0.525) = 0.628318, c = (1 - f) 0.025 = 0.009292,
    # h = r tanh(c) + (1 - r) x = [0.005838, 0.098759]
    expected = [[[0.005838, 0.098759], [0.206625, 0.293786], [0.398009, 0.479582]]]
    assert_all_close(layer(x), expected, atol=1e-6)
    assert_all_close(layer(x), numpy_sru(x, np.full((2, 6), 0.1), np.full(4, 0.5), 2), atol=1e-6)


@pytest.mark.parametrize("time", [1, 2, 3, 7, 8, 9, 33])
def test_the_scan_is_the_recurrence(time):
    rng = np.random.default_rng(time)
    f, a = rng.uniform(size=(3, time, 4)).astype("float32"), rng.normal(size=(3, time, 4)).astype("float32")
    c, expected = np.zeros((3, 4)), np.zeros((3, time, 4))
    for t in range(time):
        c = f[:, t] * c + a[:, t]
        expected[:, t] = c
    assert_all_close(time_major(linear_scan)(f, a), expected, atol=2e-6)


@pytest.mark.parametrize("features", [5, 6])  # a projected highway (features != units) and x itself
def test_random_weights_match_numpy_on_any_mask(features):
    layer = random_sru(6, features, return_sequences=True)
    x = np.random.default_rng(1).normal(size=(3, 9, features)).astype("float32")
    mask = np.ones((3, 9), bool)
    mask[0, 6:] = False  # right padding
    mask[1, :2] = False  # left padding
    mask[2, [1, 4, 5]] = False  # holes
    kernel, bias = (np.asarray(w) for w in layer.weights)
    assert_all_close(layer(x, mask=mask), numpy_sru(x, kernel, bias, 6, mask), atol=2e-5)
    assert_all_close(layer(x), numpy_sru(x, kernel, bias, 6), atol=2e-5)


def test_last_step_and_go_backwards_follow_keras_conventions():
    layer = random_sru(4, 3, seed=2)
    backwards = random_sru(4, 3, seed=2, return_sequences=True, go_backwards=True)
    x = np.random.default_rng(3).normal(size=(2, 6, 3)).astype("float32")
    mask = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], bool)
    kernel, bias = (np.asarray(w) for w in layer.weights)
    full = numpy_sru(x, kernel, bias, 4, mask)
    assert_all_close(layer(x, mask=mask), full[[0, 1], [3, 5]], atol=2e-5)  # the last valid step's output
    reversed_rows = numpy_sru(x[:, ::-1], kernel, bias, 4, mask[:, ::-1])
    assert_all_close(backwards(x, mask=mask), reversed_rows, atol=2e-5)  # outputs in reading order, as Keras'


def test_bidirectional_outputs_ignore_padding_and_read_each_way():
    ids_in = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(20, 5, mask_zero=True)(ids_in)
    model = keras.Model(ids_in, keras.layers.Bidirectional(SRU(4, return_sequences=True))(x))
    ids = np.array([[3, 4, 5, 6, 0, 0], [7, 8, 0, 0, 0, 0]], "int32")
    out = np.asarray(model(ids))
    assert_all_close(np.asarray(model(np.pad(ids, [(0, 0), (0, 4)])))[:, :6], out, atol=1e-6)
    emb = np.asarray(model.layers[1](ids))
    bi = model.layers[2]
    fw_w = [np.asarray(w) for w in bi.forward_layer.weights]
    bw_w = [np.asarray(w) for w in bi.backward_layer.weights]
    for row, n in ((0, 4), (1, 2)):
        xs = emb[row : row + 1, :n]
        assert_all_close(out[row, :n, :4], numpy_sru(xs, *fw_w, 4)[0], atol=2e-5)
        assert_all_close(out[row, :n, 4:], numpy_sru(xs[:, ::-1], *bw_w, 4)[0, ::-1], atol=2e-5)


def test_config_round_trip_save_load_and_a_fall_of_the_loss(tmp_path):
    layer = SRU(3, return_sequences=True, go_backwards=True, kernel_initializer="he_normal")
    assert assert_config_round_trip(layer).go_backwards
    ids_in = keras.Input((None,), dtype="int32", name="token_ids")
    x = keras.layers.Embedding(30, 8, mask_zero=True)(ids_in)
    x = keras.layers.Bidirectional(SRU(8, return_sequences=True))(x)
    model = keras.Model(ids_in, keras.layers.Dense(4)(x))
    rng = np.random.default_rng(4)
    ids = rng.integers(1, 30, (8, 7)).astype("int32")
    ids[:4, 5:] = 0
    targets = (ids % 4).astype("int32")
    first, last = loss_after_steps(model, ids, targets, steps=60, learning_rate=2e-2)
    assert last < first / 2
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert_all_close(loaded(ids), model(ids), atol=1e-6)


def test_the_export_graph_runs_the_same_scan_for_a_dynamic_and_a_fixed_length():
    import tensorflow as tf

    from kerasrnn.export.keras_graph import sru_sequence

    layer = random_sru(5, 7, seed=5, return_sequences=True)
    kernel, bias = (np.asarray(w) for w in layer.weights)
    x = np.random.default_rng(6).normal(size=(2, 13, 7)).astype("float32")
    dynamic = tf.function(lambda v: sru_sequence(v, kernel, bias, 5),
                          input_signature=[tf.TensorSpec([None, None, 7], tf.float32)])
    assert_all_close(dynamic(x), layer(x), atol=2e-5)
    assert_all_close(sru_sequence(tf.constant(x), kernel, bias, 5), layer(x), atol=2e-5)
    # the longest row it takes: the scan's 10 steps reach back over 1023 positions
    from kerasrnn.export.keras_graph import SRU_MAX_LENGTH

    slow = random_sru(5, 7, seed=5, return_sequences=True)
    slow.bias.assign(np.r_[np.full(5, 6.0), np.zeros(5)].astype("float32"))  # f ~ 0.998: a long memory
    long = np.random.default_rng(7).normal(size=(1, SRU_MAX_LENGTH, 7)).astype("float32")
    kernel, bias = (np.asarray(w) for w in slow.weights)
    long_function = tf.function(lambda v: sru_sequence(v, kernel, bias, 5),
                                input_signature=[tf.TensorSpec([None, None, 7], tf.float32)])
    assert_all_close(long_function(long), slow(long), atol=1e-4)


@pytest.mark.parametrize("time", [1, 8, 11, 17])  # the loop runs 8 steps an iteration: whole and part blocks
def test_the_scan_gradient_is_the_gradient_of_the_recurrence(time):
    import tensorflow as tf

    rng = np.random.default_rng(7)
    f = tf.constant(rng.uniform(size=(2, time, 3)).astype("float32"))
    a = tf.constant(rng.normal(size=(2, time, 3)).astype("float32"))
    weight = tf.constant(rng.normal(size=(2, time, 3)).astype("float32"))

    def loop(f, a):
        c, out = tf.zeros_like(a[:, 0]), []
        for t in range(a.shape[1]):
            c = f[:, t] * c + a[:, t]
            out.append(c)
        return tf.stack(out, axis=1)

    grads = []
    for scan in (time_major(linear_scan), loop):
        with tf.GradientTape() as tape:
            tape.watch([f, a])
            loss = tf.reduce_sum(tf.tanh(scan(f, a)) * weight)
        grads.append(tape.gradient(loss, [f, a]))
    for got, expected in zip(*grads, strict=True):
        assert_all_close(got, expected, atol=2e-5)


def test_an_exported_graph_covers_the_rows_up_to_its_max_length_and_says_so():
    from kerasrnn.export.keras_graph import KerasGraph
    from kerasrnn.models import ContextualEncoder, SequenceTagger

    keras.utils.set_random_seed(8)
    model = SequenceTagger(ContextualEncoder(30, embedding_dim=6, cell="sru", units=6, output_dim=6), num_tags=3)
    model.encoder.recurrent_layers[0].forward_layer.bias.assign(np.r_[np.full(6, 5.0), np.zeros(6)])  # long memory
    graph = KerasGraph(model, sru_max_length=16)
    assert graph.inputs["token_ids"].max_length == 16 and graph.inputs["token_ids"].describe()["max_length"] == 16
    ids = np.random.default_rng(9).integers(1, 30, (1, 24)).astype("int32")
    keras_out = np.asarray(model({"token_ids": ids}))
    got = np.asarray(graph.function(batch=None)({"token_ids": ids})[graph.output_name])
    assert_all_close(got[:, :16], keras_out[:, :16], atol=1e-5)  # 4 scan steps: 16 positions exactly
    assert np.abs(got[:, 16:] - keras_out[:, 16:]).max() > 1e-4  # beyond them: what the runners refuse

