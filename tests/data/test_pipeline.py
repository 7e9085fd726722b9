import numpy as np

from kerasrnn.data import Example, bucket_batches, encode, ordered_batches, padding_fraction, training_dataset
from kerasrnn.text import Vocabulary


def make_data(lengths, seed=0):
    rng = np.random.default_rng(seed)
    examples = [Example(tuple(f"w{rng.integers(20)}" for _ in range(n)), tuple("X" if rng.random() < 0.5 else "Y"
                        for _ in range(n))) for n in lengths]
    vocab = Vocabulary.build(e.tokens for e in examples)
    chars = Vocabulary.build(tok for e in examples for tok in e.tokens)
    labels = Vocabulary.for_labels(["X", "Y"])
    return examples, encode(examples, vocab, labels, char_vocab=chars, max_word_chars=5)


def test_encode_cuts_long_sentences_and_keeps_empty_ones_scorable():
    vocab = Vocabulary.build([["a"]])
    data = encode([Example(("a",) * 10), Example(())], vocab, None, max_length=4)
    assert [len(t) for t in data.token_ids] == [4, 1]
    assert data.token_ids[1].tolist() == [1]


def test_ordered_batches_are_right_padded_and_cover_every_row_once():
    examples, data = make_data([5, 1, 9, 3, 7, 2])
    seen = []
    for index, features in ordered_batches(data, batch_size=4):
        tok = features["token_ids"]
        for row, i in enumerate(index):
            n = len(data.token_ids[i])
            np.testing.assert_array_equal(tok[row, :n], data.token_ids[i])
            assert (tok[row, n:] == 0).all()
            assert (features["char_ids"][row, n:] == 0).all()
        seen.extend(index.tolist())
    assert sorted(seen) == list(range(6))


def test_bucketing_cuts_padding_and_is_deterministic_per_epoch():
    rng = np.random.default_rng(1)
    _, data = make_data(rng.integers(1, 60, size=2000))
    bucketed = bucket_batches(data, 32, seed=3, epoch=0)
    assert sorted(np.concatenate(bucketed).tolist()) == list(range(2000))
    random_batches = np.array_split(rng.permutation(2000), 2000 // 32)
    assert padding_fraction(data, bucketed) < 0.15
    assert padding_fraction(data, random_batches) > 0.3
    again = bucket_batches(data, 32, seed=3, epoch=0)
    assert all((a == b).all() for a, b in zip(bucketed, again, strict=True))
    assert any(len(a) != len(b) or (a != b).any() for a, b in zip(bucketed, bucket_batches(data, 32, seed=3, epoch=1),
                                                                  strict=False))


def test_training_dataset_yields_padded_batches_with_word_dropout():
    _, data = make_data([4, 4, 4, 4, 10, 10])
    ds = training_dataset(data, 2, seed=0, word_dropout=0.5)
    unk = 0
    for features, targets in ds.take(30):
        tok = features["token_ids"].numpy()
        assert targets.shape == tok.shape
        assert features["char_ids"].shape[:2] == tok.shape
        assert (tok > 0).all()  # equal lengths within a bucket: no padding at all
        unk += int((tok == 1).sum())
    assert unk > 0


def test_class_weights_become_per_token_sample_weights_with_zero_padding():
    _, data = make_data([3, 5, 30])
    ds = training_dataset(data, 4, seed=0, class_weights=np.array([1.0, 3.0], np.float32))
    for features, targets, weights in ds.take(6):
        tok, targets, weights = features["token_ids"].numpy(), targets.numpy(), weights.numpy()
        np.testing.assert_array_equal(weights[tok == 0], 0.0)
        np.testing.assert_array_equal(weights[tok != 0], np.where(targets[tok != 0] == 1, 3.0, 1.0))
