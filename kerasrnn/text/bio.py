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


def viterbi(scores: np.ndarray, allowed: np.ndarray, start_allowed: np.ndarray, crf: dict | None = None
            ) -> list[int]:
    """The best path (tag indices) through `scores` [T, num_tags] (float64) over `allowed[prev, next]` transitions
    starting at a `start_allowed` tag; with `crf` ({"transitions", "start", "end"} arrays, a CRF layer's
    `decoding()`), the path score adds transitions[prev, next], start[first] and end[last]. Ties: the lowest index."""
    if len(scores) == 0:
        return []
    n = scores.shape[1]
    moves = np.zeros((n, n)) if crf is None else np.asarray(crf["transitions"], np.float64)
    first = scores[0] + (0.0 if crf is None else np.asarray(crf["start"], np.float64))
    best = np.where(start_allowed, first, -np.inf)
    back = np.zeros((len(scores), n), dtype=np.int64)
    for t in range(1, len(scores)):
        candidates = np.where(allowed, best[:, None] + moves, -np.inf)
        back[t] = candidates.argmax(0)
        best = candidates.max(0) + scores[t]
    if crf is not None:
        best = best + np.asarray(crf["end"], np.float64)
    path = [int(best.argmax())]
    for t in range(len(scores) - 1, 0, -1):
        path.append(int(back[t, path[-1]]))
    return path[::-1]


def transition_rules(tags: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(allowed[prev, next], start[next]): BIO's rules for a BIO tag set, every transition otherwise."""
    if is_bio(tags):
        return bio_transitions(tags)
    n = len(tags)
    return np.ones((n, n), dtype=bool), np.ones(n, dtype=bool)


def log_probs(probs: np.ndarray) -> np.ndarray:
    return np.log(np.clip(np.asarray(probs, dtype=np.float64), PROB_FLOOR, 1.0))


def bio_decode(probs: np.ndarray, tags: Sequence[str], crf: dict | None = None) -> list[str]:
    """The most probable tag sequence that is valid BIO (an `I-T` only after `B-T` or `I-T`), by Viterbi over
    log-probabilities [T, num_tags] (plus a CRF's scores, when given). Argmax decoding can emit `O I-T` or
    `B-S I-T`, which breaks entity spans. `decoding_spec` says the same in data, for apps."""
    tags = list(tags)
    allowed, start = bio_transitions(tags)
    return [tags[i] for i in viterbi(log_probs(probs), allowed, start, crf)]


def decode_tags(probs: np.ndarray, tags: Sequence[str], crf: dict | None = None) -> list[str]:
    """The tags an app reads from per-token probabilities [T, num_tags]: `bio_decode` for a BIO tag set, the
    argmax of each position otherwise; with a CRF's scores (`crf`), Viterbi under them (BIO-constrained for a BIO
    tag set). What `decoding_spec` says."""
    tags = list(tags)
    if is_bio(tags):
        return bio_decode(probs, tags, crf)
    if crf is not None:
        return [tags[i] for i in viterbi(log_probs(probs), *transition_rules(tags), crf)]
    return [tags[i] for i in np.asarray(probs).argmax(-1)]


def decoding_spec(task_type: str, labels: Sequence[str], crf: dict | None = None) -> dict:
    """How an app turns the model's probabilities into tags or a label: the `decoding` section of metadata.json.
    `crf`: a CRF tagger's learned scores (`SequenceTagger.crf_decoding()`)."""
    labels = list(labels)
    if crf is not None:
        return _crf_spec(labels, crf)
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


def _crf_spec(labels: list[str], crf: dict) -> dict:
    bio = is_bio(labels)
    allowed, start = transition_rules(labels)
    spec = {
        "method": "crf_viterbi", "labels": labels, "per_token": True,
        "allowed": allowed.astype(int).tolist(), "start_allowed": start.astype(int).tolist(),
        "transitions": [[float(x) for x in row] for row in crf["transitions"]],
        "start": [float(x) for x in crf["start"]], "end": [float(x) for x in crf["end"]],
        "prob_floor": PROB_FLOOR,
        "rule": ("Viterbi over score[t][j] = ln(max(p[t][j], prob_floor)) in float64 and the CRF's learned scores: "
                 "best[j] = score[0][j] + start[j] where start_allowed[j], else -infinity; for t = 1..T-1 and each "
                 "j: back[t][j] = the i of the largest best[i] + transitions[i][j] among allowed[i][j] == 1 (ties: "
                 "the lowest i), new best[j] = best[back[t][j]] + transitions[back[t][j]][j] + score[t][j]; the "
                 "last tag is the j of the largest best[j] + end[j] (ties: the lowest j), then follow back"),
    }
    if bio:
        spec["entities"] = ("read the tags left to right: B-T starts an entity of type T, I-T continues an entity of "
                            "type T (after any other tag it starts one), O or another type ends it; an entity is "
                            "[type, first token, last token + 1]")
    return spec
