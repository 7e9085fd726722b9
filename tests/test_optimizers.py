"""FusedAdam against a NumPy Adam and Keras' Adam: dense and embedding (sparse) gradients, a schedule and clipnorm,
and a saved model's optimizer state."""

import keras
import numpy as np
import tensorflow as tf

from kerasrnn.optimizers import FusedAdam
from tests.test_case import assert_all_close


def numpy_adam(w, grads, lrs, b1=0.9, b2=0.999, eps=1e-7):
    m, v, w = np.zeros_like(w, np.float64), np.zeros_like(w, np.float64), w.astype(np.float64)
    for t, (g, lr) in enumerate(zip(grads, lrs, strict=True), 1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        w = w - lr * np.sqrt(1 - b2**t) / (1 - b1**t) * m / (np.sqrt(v) + eps)
    return w


def test_dense_updates_are_textbook_adam():
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(5, 3)).astype("float32")
    grads = [rng.normal(size=(5, 3)).astype("float32") for _ in range(8)]
    w = keras.Variable(w0.copy())
    opt = FusedAdam(learning_rate=0.05)
    for g in grads:
        opt.apply_gradients([(g, w)])
    assert_all_close(w, numpy_adam(w0, grads, [0.05] * 8), atol=1e-6)


def test_an_embeddings_sparse_gradient_is_summed_per_row_as_textbook_adam_does():
    rng = np.random.default_rng(1)
    w0 = rng.normal(size=(6, 2)).astype("float32")
    steps = [([0, 2], rng.normal(size=(2, 2))), ([2, 2, 5], rng.normal(size=(3, 2))), ([1], rng.normal(size=(1, 2)))]
    dense = []
    for rows, values in steps:  # row 2 read twice in step 2 (a word twice in a batch): its gradients add up
        g = np.zeros((6, 2), np.float32)
        np.add.at(g, rows, values.astype(np.float32))
        dense.append(g)
    expected = numpy_adam(w0, dense, [0.1] * 3)
    got = {}
    for cls in (FusedAdam, keras.optimizers.Adam):
        w = keras.Variable(w0.copy())
        opt = cls(learning_rate=0.1)
        for rows, values in steps:
            opt.apply_gradients([(tf.IndexedSlices(tf.constant(values, tf.float32), tf.constant(rows),
                                                   tf.constant([6, 2])), w)])
        got[cls] = np.asarray(w)
    # rows 3 and 4 never get a gradient and stay; rows 0 and 2 keep moving on their momentum after their last one
    assert_all_close(got[FusedAdam], expected, atol=1e-6)
    # Keras 3.15's Adam squares each repeated row's gradients apart (v gets g1^2 + g2^2, not (g1 + g2)^2): the row
    # read twice moves otherwise; the rows read once agree
    assert np.abs(got[keras.optimizers.Adam][2] - expected[2]).max() > 1e-3
    assert_all_close(got[keras.optimizers.Adam][[0, 1, 3, 4, 5]], expected[[0, 1, 3, 4, 5]], atol=1e-5)


def test_a_tagger_trains_as_with_keras_adam_under_a_schedule_and_clipnorm_when_no_word_repeats():
    from kerasrnn.models import ContextualEncoder, SequenceTagger

    rng = np.random.default_rng(2)
    ids = rng.permutation(np.arange(1, 60))[:48].reshape(8, 6).astype("int32")  # no word twice in a batch
    ids[:3, 4:] = 0
    tags = (ids % 4).astype("int32")
    weights = []
    for cls in (keras.optimizers.Adam, FusedAdam):
        keras.utils.set_random_seed(3)
        model = SequenceTagger(ContextualEncoder(60, embedding_dim=8, units=8, output_dim=8), num_tags=4)
        schedule = keras.optimizers.schedules.CosineDecay(0.0, 20, warmup_target=0.02, warmup_steps=4)
        model.compile(optimizer=cls(learning_rate=schedule, clipnorm=1.0),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit({"token_ids": ids}, tags, epochs=6, batch_size=8, shuffle=False, verbose=0)
        weights.append(model.get_weights())
    for keras_w, fused_w in zip(*weights, strict=True):
        assert_all_close(fused_w, keras_w, atol=1e-5)


def test_the_optimizer_state_survives_a_save_and_load(tmp_path):
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    model.compile(optimizer=FusedAdam(0.01), loss="mse")
    x, y = np.ones((4, 3), "float32"), np.zeros((4, 2), "float32")
    model.fit(x, y, epochs=2, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert type(loaded.optimizer) is FusedAdam and int(loaded.optimizer.iterations) == 2
    for a, b in zip(loaded.optimizer.variables, model.optimizer.variables, strict=True):
        assert_all_close(a, b)
