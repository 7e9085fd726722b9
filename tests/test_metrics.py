import numpy as np
import pytest

from kerasrnn.metrics import accuracy, bio_decode, bio_entities, entity_f1, masked_accuracy, token_accuracy


def test_masked_accuracy_never_scores_padding():
    y_true = np.array([[1, 2, 0, 0], [3, 0, 0, 0]])
    logits = np.zeros((2, 4, 4))
    logits[0, 0, 1] = logits[0, 1, 3] = logits[1, 0, 3] = 1.0  # padded positions predict 0 = the pad label
    mask = np.array([[1, 1, 0, 0], [1, 0, 0, 0]], bool)
    assert masked_accuracy(y_true, logits, mask) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="selects no position"):
        masked_accuracy(y_true, logits, np.zeros_like(mask))


def test_bio_entities_reads_broken_sequences_like_conlleval():
    assert bio_entities(["B-PER", "I-PER", "O", "B-LOC"]) == {("PER", 0, 2), ("LOC", 3, 4)}
    # I- without B- starts an entity; an I- of another type starts a new one.
    assert bio_entities(["I-PER", "I-PER", "I-LOC", "O", "I-ORG"]) == {("PER", 0, 2), ("LOC", 2, 3), ("ORG", 4, 5)}
    assert bio_entities(["B-PER", "B-PER"]) == {("PER", 0, 1), ("PER", 1, 2)}
    with pytest.raises(ValueError, match="not in the BIO scheme"):
        bio_entities(["X-PER"])


def test_entity_f1_on_hand_made_cases():
    true = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-ORG", "I-ORG"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["O", "B-ORG", "O"]]
    # true: PER(0,2) LOC(3,4) ORG(1,3); pred: PER(0,2) ORG(3,4) ORG(1,2): one exact match
    result = entity_f1(true, pred)
    assert result["precision"] == pytest.approx(1 / 3)
    assert result["recall"] == pytest.approx(1 / 3)
    assert result["f1"] == pytest.approx(1 / 3)
    assert entity_f1(true, true)["f1"] == 1.0
    assert entity_f1([["O", "O"]], [["O", "O"]])["f1"] == 0.0
    assert entity_f1([["I-PER", "I-PER"]], [["B-PER", "I-PER"]])["f1"] == 1.0


def test_token_accuracy_and_accuracy_check_lengths():
    assert token_accuracy([["A", "B"], ["C"]], [["A", "C"], ["C"]]) == pytest.approx(2 / 3)
    assert accuracy(["x", "y"], ["x", "x"]) == 0.5
    with pytest.raises(ValueError, match="sentence 0: 2 true tags but 1 predicted"):
        token_accuracy([["A", "B"]], [["A"]])


def test_bio_decode_returns_the_best_valid_sequence():
    tags = ["B-PER", "I-PER", "O"]
    probs = np.array([[0.1, 0.1, 0.8], [0.1, 0.6, 0.3], [0.2, 0.7, 0.1]])
    # argmax reads O I-PER I-PER, which is not valid BIO
    assert [tags[i] for i in probs.argmax(-1)] == ["O", "I-PER", "I-PER"]
    # valid candidates: O B-PER I-PER = .8*.1*.7 = .056 beats O O B-PER = .048 and B-PER I-PER I-PER = .042
    assert bio_decode(probs, tags) == ["O", "B-PER", "I-PER"]
    sure = np.array([[0.9, 0.05, 0.05], [0.05, 0.9, 0.05]])
    assert bio_decode(sure, tags) == ["B-PER", "I-PER"]


def test_bio_decode_never_continues_another_type():
    tags = ["B-LOC", "B-PER", "I-LOC", "I-PER", "O"]
    probs = np.full((2, 5), 0.01)
    probs[0, 1] = 0.6  # B-PER
    probs[1, 2] = 0.9  # I-LOC after B-PER: invalid
    out = bio_decode(probs, tags)
    assert out != ["B-PER", "I-LOC"]
    assert bio_entities(out) and all(t in tags for t in out)
