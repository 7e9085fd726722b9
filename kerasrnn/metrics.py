"""Task metrics, computed in NumPy on valid positions only (padding is never scored).

Entity-level F1 follows conlleval: an entity is a maximal run of tags B-T I-T I-T ...; an `I-T` that does not
continue an entity of type T (after `O`, at the start of a sentence, or after another type) starts a new
entity of type T, exactly as conlleval reads it. Precision, recall and F1 count exact span and type matches.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kerasrnn.text.bio import bio_decode, bio_entities, decode_tags


def masked_accuracy(y_true: np.ndarray, y_pred: np.ndarray, mask: np.ndarray) -> float:
    """Accuracy over positions where `mask` is true. `y_pred` holds ids, or scores with one more axis than `y_true`."""
    y_true, y_pred, mask = np.asarray(y_true), np.asarray(y_pred), np.asarray(mask, dtype=bool)
    if y_pred.ndim == y_true.ndim + 1:
        y_pred = y_pred.argmax(-1)
    if y_true.shape != y_pred.shape or y_true.shape != mask.shape:
        raise ValueError(f"shape mismatch: y_true {y_true.shape}, y_pred {y_pred.shape}, mask {mask.shape}")
    if not mask.any():
        raise ValueError("the mask selects no position")
    return float((y_true[mask] == y_pred[mask]).mean())


def token_accuracy(true_tags: Sequence[Sequence], pred_tags: Sequence[Sequence]) -> float:
    """Accuracy over all tokens of all sentences (sentences as lists of tags or ids, no padding)."""
    _check_lengths(true_tags, pred_tags)
    correct = sum(int(t == p) for ts, ps in zip(true_tags, pred_tags, strict=True) for t, p in zip(ts, ps, strict=True))
    total = sum(len(ts) for ts in true_tags)
    if total == 0:
        raise ValueError("no tokens to score")
    return correct / total


def entity_f1(true_tags: Sequence[Sequence[str]], pred_tags: Sequence[Sequence[str]]) -> dict[str, float]:
    """Entity-level micro precision, recall and F1 (exact span and type)."""
    _check_lengths(true_tags, pred_tags)
    n_true = n_pred = n_correct = 0
    for ts, ps in zip(true_tags, pred_tags, strict=True):
        true_e, pred_e = bio_entities(ts), bio_entities(ps)
        n_true += len(true_e)
        n_pred += len(pred_e)
        n_correct += len(true_e & pred_e)
    precision = n_correct / n_pred if n_pred else 0.0
    recall = n_correct / n_true if n_true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def accuracy(true_labels: Sequence, pred_labels: Sequence) -> float:
    if len(true_labels) != len(pred_labels):
        raise ValueError(f"{len(true_labels)} true labels but {len(pred_labels)} predictions")
    if not len(true_labels):
        raise ValueError("no examples to score")
    return float(np.mean([t == p for t, p in zip(true_labels, pred_labels, strict=True)]))


def _check_lengths(true_tags, pred_tags):
    if len(true_tags) != len(pred_tags):
        raise ValueError(f"{len(true_tags)} true sentences but {len(pred_tags)} predicted")
    for i, (ts, ps) in enumerate(zip(true_tags, pred_tags, strict=True)):
        if len(ts) != len(ps):
            raise ValueError(f"sentence {i}: {len(ts)} true tags but {len(ps)} predicted")


def score(config, examples, labels, probs, crf: dict | None = None) -> dict[str, float]:
    """The task's metrics (`config.task`) for predicted probabilities against the examples' gold labels:
    per-sentence [T, num_tags] arrays for a tagger, [N, num_labels] for a classifier.

    BIO taggers (metric "f1") are decoded with `bio_decode` (the best valid BIO sequence), others by argmax; a CRF
    tagger's (`crf`: its learned scores) by Viterbi under them (`decode_tags`)."""
    if config.task.type == "tagging":
        true = [list(e.tags[: config.data.max_length]) for e in examples]
        if crf is not None:
            pred = [decode_tags(p, labels.tokens, crf) for p in probs]
        elif config.task.metric == "f1":
            pred = [bio_decode(p, labels.tokens) for p in probs]
        else:
            pred = [labels.decode(p.argmax(-1)) for p in probs]
        if len(true) != len(pred):
            raise ValueError(f"{len(true)} sentences but {len(pred)} predictions")
        if config.task.metric == "f1":
            return entity_f1(true, pred)
        return {"accuracy": token_accuracy(true, pred)}
    true = np.asarray([e.label for e in examples], dtype=object)
    pred = np.asarray(labels.decode(np.asarray(probs).argmax(-1)), dtype=object)
    oos = config.data.oos_label
    if oos:
        in_scope = true != oos
        result = {"accuracy": accuracy(true[in_scope], pred[in_scope]), "accuracy_all": accuracy(true, pred)}
        if (~in_scope).any():
            result["oos_recall"] = float(np.mean(pred[~in_scope] == oos))
        return result
    return {"accuracy": accuracy(true, pred)}
