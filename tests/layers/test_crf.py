"""The CRF layer against brute force over every tag path, its Viterbi decoding, and a CRF tagger end to end."""

import itertools

import keras
import numpy as np
import pytest

from kerasrnn.layers.crf import CRF
from kerasrnn.models import ContextualEncoder, SequenceTagger
from kerasrnn.text.bio import bio_transitions, decode_tags, decoding_spec, viterbi
from tests.test_case import assert_save_load_round_trip


def _crf(n, seed=0):
    crf = CRF(n)
    crf.build()
    rng = np.random.default_rng(seed)
    for w in crf.weights:
        w.assign(rng.normal(size=w.shape).astype("float32"))
    return crf, crf.decoding()


def _path_score(scores, path, d):
    return (d["start"][path[0]] + sum(scores[t, p] for t, p in enumerate(path))
            + sum(d["transitions"][a, b] for a, b in zip(path, path[1:], strict=False)) + d["end"][path[-1]])


def test_log_likelihood_is_the_gold_path_against_all_paths_on_the_valid_positions():
    n, t = 3, 4
    crf, d = _crf(n)
    scores = np.random.default_rng(1).normal(size=(3, t, n)).astype("float32")
    tags = np.array([[0, 2, 1, 0], [1, 1, 0, 0], [2, 0, 0, 0]])
    lengths = [4, 2, 1]
    mask = np.arange(t)[None, :] < np.array(lengths)[:, None]
    got = np.asarray(crf.log_likelihood(scores, tags, mask))
    for b, length in enumerate(lengths):
        s = scores[b, :length].astype(np.float64)
        every = [_path_score(s, p, d) for p in itertools.product(range(n), repeat=length)]
        expected = _path_score(s, tags[b, :length], d) - np.logaddexp.reduce(every)
        np.testing.assert_allclose(got[b], expected, rtol=0, atol=2e-5)


def test_padding_changes_no_log_likelihood():
    crf, _ = _crf(4, seed=2)
    rng = np.random.default_rng(3)
    scores, tags = rng.normal(size=(2, 5, 4)).astype("float32"), rng.integers(0, 4, (2, 5))
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], bool)
    before = np.asarray(crf.log_likelihood(scores, tags, mask))
    padded = np.concatenate([scores, rng.normal(size=(2, 3, 4)).astype("float32")], axis=1)
    padded_tags = np.concatenate([tags, rng.integers(0, 4, (2, 3))], axis=1)
    after = np.asarray(crf.log_likelihood(padded, padded_tags, np.pad(mask, ((0, 0), (0, 3)))))
    np.testing.assert_allclose(after, before, rtol=0, atol=1e-5)


def test_viterbi_finds_the_best_scoring_path_and_respects_the_bio_rules():
    n = 3
    _, d = _crf(n, seed=4)
    scores = np.random.default_rng(5).normal(size=(5, n))
    allowed, start = np.ones((n, n), bool), np.ones(n, bool)
    best = max(itertools.product(range(n), repeat=5), key=lambda p: _path_score(scores, p, d))
    assert viterbi(scores, allowed, start, d) == list(best)
    tags = ["B-X", "I-X", "O"]
    allowed, start = bio_transitions(tags)
    valid = [p for p in itertools.product(range(n), repeat=5)
             if start[p[0]] and all(allowed[a, b] for a, b in zip(p, p[1:], strict=False))]
    best = max(valid, key=lambda p: _path_score(scores, p, d))
    probs = np.exp(scores) / np.exp(scores).sum(1, keepdims=True)  # ln p differs from the scores by a constant per step
    assert decode_tags(probs, tags, d) == [tags[i] for i in best]


def test_the_decoding_spec_carries_the_learned_scores():
    _, d = _crf(3, seed=6)
    spec = decoding_spec("tagging", ["B-X", "I-X", "O"], d)
    assert spec["method"] == "crf_viterbi" and spec["start_allowed"] == [1, 0, 1] and "entities" in spec
    np.testing.assert_array_equal(spec["transitions"], d["transitions"])
    assert decoding_spec("tagging", ["NOUN", "VERB"], _crf(2)[1])["allowed"] == [[1, 1], [1, 1]]


def _tagger(crf=True):
    encoder = ContextualEncoder(vocabulary_size=20, embedding_dim=8, units=8, output_dim=8)
    return SequenceTagger(encoder, num_tags=3, crf=crf)


def test_a_crf_tagger_round_trips_and_learns_a_transition_rule(tmp_path):
    keras.utils.set_random_seed(0)
    tagger = _tagger()
    ids = np.array([[2, 3, 4, 5, 0, 0], [5, 4, 3, 0, 0, 0], [2, 2, 0, 0, 0, 0]], "int32")
    assert_save_load_round_trip(tagger, {"token_ids": ids}, tmp_path)
    # the tag of a token is 1 after a 0 tag and 0 otherwise, whatever the word: only transitions can say it
    tags = np.array([[0, 1, 0, 1, 0, 0], [0, 1, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0]])
    tagger.compile(optimizer=keras.optimizers.Adam(0.05), loss=keras.losses.SparseCategoricalCrossentropy(True))
    first = tagger.evaluate({"token_ids": ids}, tags, verbose=0)
    tagger.fit({"token_ids": ids}, tags, epochs=60, verbose=0)
    assert tagger.evaluate({"token_ids": ids}, tags, verbose=0) < first / 2
    d = tagger.crf_decoding()
    assert d["transitions"][0, 1] > d["transitions"][0, 0]
    loaded = keras.saving.load_model(tagger.save(tmp_path / "t.keras") or tmp_path / "t.keras")
    np.testing.assert_array_equal(loaded.crf_decoding()["transitions"], d["transitions"])
    assert loaded.get_config()["crf"] is True


def test_crf_is_for_taggers_only():
    from kerasrnn.config import Config

    with pytest.raises(ValueError, match="model.crf must be false unless task.type is 'tagging'"):
        Config.from_dict({"task": {"type": "classification"}, "data": {"format": "sst", "train_file": "x",
                                                                       "test_file": "x"}, "model": {"crf": True}})
