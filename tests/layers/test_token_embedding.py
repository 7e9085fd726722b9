"""TokenEmbedding: the same lookups, weights, saved files, training and export as one Embedding table, with the rows
no training input reads held out of the optimizer."""

import keras
import numpy as np
import pytest

from kerasrnn.data.pipeline import EncodedData
from kerasrnn.layers import TokenEmbedding
from kerasrnn.optimizers import FusedAdam
from kerasrnn.trainers.build import trained_rows
from tests.test_case import assert_all_close


def _pair(input_dim=10, output_dim=3, trainable_rows=6):
    table = np.random.default_rng(0).normal(size=(input_dim, output_dim)).astype("float32")
    plain = keras.layers.Embedding(input_dim, output_dim, mask_zero=True)
    split = TokenEmbedding(input_dim, output_dim, trainable_rows=trainable_rows, mask_zero=True)
    for layer in (plain, split):
        layer.build()
        layer.set_weights([table])
    return plain, split, table


def test_lookups_on_both_sides_of_the_cut_read_the_full_table():
    plain, split, table = _pair()
    ids = np.array([[0, 1, 5, 6, 9], [9, 6, 5, 0, 0]], "int32")  # 5 is the last trainable row, 6 the first fixed
    assert_all_close(split(ids), table[ids], atol=0)
    assert_all_close(split(ids), plain(ids), atol=0)
    assert np.array_equal(np.asarray(split.compute_mask(ids)), ids != 0)
    assert [tuple(w.shape) for w in split.trainable_weights] == [(6, 3)]
    assert [tuple(w.shape) for w in split.non_trainable_weights] == [(4, 3)]
    assert_all_close(split.embeddings, table, atol=0)


def test_all_rows_or_more_make_a_plain_embedding_and_bad_counts_are_refused():
    layer = TokenEmbedding(10, 3, trainable_rows=10)
    layer.build()
    assert layer.trainable_rows is None and [tuple(w.shape) for w in layer.weights] == [(10, 3)]
    with pytest.raises(ValueError, match="trainable_rows must be at least 1"):
        TokenEmbedding(10, 3, trainable_rows=0)
    _, split, _ = _pair()
    with pytest.raises(ValueError, match=r"one table of shape \(10, 3\)"):
        split.set_weights([np.zeros((6, 3), "float32")])


def test_the_initial_table_is_the_full_tables_under_the_initializer():
    full = keras.layers.Embedding(50, 4, embeddings_initializer=keras.initializers.GlorotUniform(seed=1))
    split = TokenEmbedding(50, 4, trainable_rows=20, embeddings_initializer=keras.initializers.GlorotUniform(seed=1))
    full.build()
    split.build()
    assert_all_close(split.get_weights()[0], full.get_weights()[0], atol=0)


def _tagger(trainable_rows):
    from kerasrnn.models import ContextualEncoder, SequenceTagger

    keras.utils.set_random_seed(4)
    encoder = ContextualEncoder(40, embedding_dim=6, units=5, output_dim=6, token_embedding_trainable_rows=trainable_rows)
    model = SequenceTagger(encoder, num_tags=3)
    model.compile(optimizer=FusedAdam(learning_rate=0.05, clipnorm=1.0),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def test_training_moves_the_same_rows_the_same_way_as_one_trainable_table():
    rng = np.random.default_rng(5)
    ids = rng.integers(1, 25, (12, 7)).astype("int32")  # ids below 25 only: rows 25..39 never read
    ids[:4, 5:] = 0
    tags = (ids % 3).astype("int32")
    plain, split = _tagger(None), _tagger(25)
    assert type(split.encoder.token_embedding) is TokenEmbedding
    assert type(plain.encoder.token_embedding) is keras.layers.Embedding
    start = plain.encoder.token_embedding.get_weights()[0]
    assert_all_close(split.encoder.token_embedding.get_weights()[0], start, atol=0)
    for model in (plain, split):
        model.fit({"token_ids": ids}, tags, epochs=5, batch_size=4, shuffle=False, verbose=0)
    after_plain = plain.encoder.token_embedding.get_weights()[0]
    after_split = split.encoder.token_embedding.get_weights()[0]
    assert np.abs(after_plain[:25] - start[:25]).max() > 1e-2  # the rows read moved ...
    assert_all_close(after_plain[25:], start[25:], atol=0)  # ... the rows never read did not, in either model
    assert_all_close(after_split, after_plain, atol=1e-5)
    for a, b in zip(split.encoder.get_weights()[2:], plain.encoder.get_weights()[1:], strict=True):
        assert_all_close(a, b, atol=1e-5)  # (the split model's weights list holds its table as two variables)
    x = {"token_ids": ids}
    assert_all_close(split.predict(x, verbose=0), plain.predict(x, verbose=0), atol=1e-5)


def test_a_saved_model_and_a_checkpoint_load_back(tmp_path):
    from kerasrnn.models import SequenceTagger

    split = _tagger(25)
    split.save(tmp_path / "split.keras")
    split.save_weights(tmp_path / "split.weights.h5")
    loaded = keras.saving.load_model(tmp_path / "split.keras", safe_mode=True)
    assert isinstance(loaded, SequenceTagger) and loaded.encoder.token_embedding.trainable_rows == 25
    ids = {"token_ids": np.array([[3, 30, 39, 0]], "int32")}
    assert_all_close(loaded.predict(ids, verbose=0), split.predict(ids, verbose=0), atol=0)
    fresh = _tagger(25)
    fresh.encoder.token_embedding.set_weights([np.zeros((40, 6), "float32")])
    fresh.load_weights(tmp_path / "split.weights.h5")  # (a checkpoint)
    assert_all_close(fresh.encoder.token_embedding.get_weights()[0], split.encoder.token_embedding.get_weights()[0],
                     atol=0)


def test_the_export_graph_reads_the_full_table():
    from kerasrnn.export.keras_graph import KerasGraph

    model = _tagger(25)
    ids = np.array([[3, 30, 39, 0, 0], [25, 24, 1, 2, 7]], "int32")
    graph = KerasGraph(model)
    out = np.asarray(graph.function(batch=None)({"token_ids": ids})[graph.output_name])
    mask = ids != 0
    assert_all_close(out[mask], model.predict({"token_ids": ids}, verbose=0)[mask], atol=1e-5)


def test_trained_rows_is_one_past_the_largest_id_the_training_rows_hold():
    data = EncodedData([np.array([3, 17, 2]), np.array([40, 1]), np.array([], "int32")], None, None)
    assert trained_rows(data) == 41
    assert trained_rows(EncodedData([np.array([1])], None, None)) == 2
