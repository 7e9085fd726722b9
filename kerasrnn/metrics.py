"""Task metrics, computed in NumPy on valid positions only (padding is never scored).

Entity-level F1 follows conlleval: an entity is a maximal run of tags B-T I-T I-T ...; an `I-T` that does not
continue an entity of type T (after `O`, at the start of a sentence, or after another type) starts a new
entity of type T, exactly as conlleval reads it. Precision, recall and F1 count exact span and type matches.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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


def bio_entities(tags: Sequence[str]) -> set[tuple[str, int, int]]:
    """Entities of one sentence as (type, start, end) with `end` exclusive, read as conlleval reads BIO."""
    entities = set()
    start, kind = None, None
    for i, tag in enumerate([*tags, "O"]):
        prefix, _, t = tag.partition("-")
        continues = prefix == "I" and kind == t
        if start is not None and not continues:
            entities.add((kind, start, i))
            start, kind = None, None
        if prefix == "B" or (prefix == "I" and not continues):
            start, kind = i, t
        elif prefix not in ("O", "I"):
            raise ValueError(f"tag {tag!r} is not in the BIO scheme")
    return entities


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


def is_bio(tags: Sequence[str]) -> bool:
    """Whether a tag set is BIO (every tag `O`, `B-T` or `I-T`): such taggers are decoded with `bio_decode`."""
    return all(tag == "O" or tag[:2] in ("B-", "I-") for tag in tags)


def bio_transitions(tags: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(allowed[prev, next], start[next]) of BIO: `I-T` only after `B-T` or `I-T`, never first."""
    tags = list(tags)
    n = len(tags)
    allowed = np.ones((n, n), dtype=bool)
    start = np.ones(n, dtype=bool)
    for j, tag in enumerate(tags):
        if tag.startswith("I-"):
            kind = tag[2:]
            start[j] = False
            allowed[:, j] = [t in (f"B-{kind}", f"I-{kind}") for t in tags]
    return allowed, start


PROB_FLOOR = 1e-12


def bio_decode(probs: np.ndarray, tags: Sequence[str]) -> list[str]:
    """The most probable tag sequence that is valid BIO (an `I-T` only after `B-T` or `I-T`), by Viterbi over
    log-probabilities [T, num_tags]. Argmax decoding can emit `O I-T` or `B-S I-T`, which breaks entity spans.
    `decoding_spec` says the same in data, for apps."""
    tags = list(tags)
    allowed, start = bio_transitions(tags)
    n = len(tags)
    scores = np.log(np.clip(np.asarray(probs, dtype=np.float64), PROB_FLOOR, 1.0))
    if len(scores) == 0:
        return []
    best = np.where(start, scores[0], -np.inf)
    back = np.zeros((len(scores), n), dtype=np.int64)
    for t in range(1, len(scores)):
        candidates = np.where(allowed, best[:, None], -np.inf)
        back[t] = candidates.argmax(0)
        best = candidates.max(0) + scores[t]
    path = [int(best.argmax())]
    for t in range(len(scores) - 1, 0, -1):
        path.append(int(back[t, path[-1]]))
    return [tags[i] for i in reversed(path)]


def decoding_spec(task_type: str, labels: Sequence[str]) -> dict:
    """How an app turns the model's probabilities into tags or a label: the `decoding` section of metadata.json."""
    labels = list(labels)
    if task_type == "classification":
        spec = {"method": "argmax", "labels": labels,
                "rule": "the label of the largest probability (ties: the lowest index)"}
        if "oos" in labels:
            spec["out_of_scope_label"] = "oos"
        return spec
    if not is_bio(labels):
        return {"method": "argmax", "labels": labels, "per_token": True,
                "rule": "per token, the tag of the largest probability (ties: the lowest index)"}
    allowed, start = bio_transitions(labels)
    return {
        "method": "bio_viterbi", "labels": labels, "per_token": True,
        "allowed": allowed.astype(int).tolist(), "start_allowed": start.astype(int).tolist(),
        "prob_floor": PROB_FLOOR,
        "rule": ("Viterbi over score[t][j] = ln(max(p[t][j], prob_floor)) in float64: best[j] = score[0][j] where "
                 "start_allowed[j], else -infinity; for t = 1..T-1 and each j: back[t][j] = the i of the largest "
                 "best[i] among allowed[i][j] == 1 (ties: the lowest i), new best[j] = best[back[t][j]] + "
                 "score[t][j]; the last tag is the j of the largest best[j] (ties: the lowest j), then follow back"),
        "entities": ("read the tags left to right: B-T starts an entity of type T, I-T continues an entity of type "
                     "T (after any other tag it starts one), O or another type ends it; an entity is [type, first "
                     "token, last token + 1]"),
    }


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


def score(config, examples, labels, probs) -> dict[str, float]:
    """The task's metrics (`config.task`) for predicted probabilities against the examples' gold labels:
    per-sentence [T, num_tags] arrays for a tagger, [N, num_labels] for a classifier.

    BIO taggers (metric "f1") are decoded with `bio_decode` (the best valid BIO sequence), others by argmax."""
    if config.task.type == "tagging":
        true = [list(e.tags[: config.data.max_length]) for e in examples]
        if config.task.metric == "f1":
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
