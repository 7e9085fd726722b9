"""BIO tag sequences: which tag sets are BIO, their transition rules, the best valid sequence (Viterbi), the
entities a sequence holds, and the same rules as data for apps (`decoding_spec`, metadata.json's `decoding`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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


def decode_tags(probs: np.ndarray, tags: Sequence[str]) -> list[str]:
    """The tags an app reads from per-token probabilities [T, num_tags]: `bio_decode` for a BIO tag set, the
    argmax of each position otherwise (what `decoding_spec` says)."""
    tags = list(tags)
    if is_bio(tags):
        return bio_decode(probs, tags)
    return [tags[i] for i in np.asarray(probs).argmax(-1)]


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
