"""Contextual vs static vectors of ambiguous words, from real sentences of the corpora, in 2-D (PCA).

`python -m deploy.embed --run-dir runs/bilm_pretrain [--words bank,play,light,spring] [--per-word 60]` runs `picture`.

For each word it gathers up to `--per-word` sentences of the run's training and test text that contain it,
embeds them with `kerasrnn.Embedder`, and writes `RUN_DIR/embed/contexts.png` (one PCA panel per word for the
contextual layer, coloured by a sense hint read off cue words in the sentence, and one panel for the static
layer), `RUN_DIR/embed/contexts.json`, and prints each sampled occurrence's nearest neighbours.
The sense hint is a heuristic: the sense whose cue words occur most often in the sentence (none: grey).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kerasrnn.files import atomic_write_json, make_dir

SENSES = {
    "bank": {
        "river": {"river", "shore", "water", "stream", "creek", "sea", "grassy", "banks", "brook", "boat", "sand"},
        "money": {"money", "account", "loan", "credit", "deposit", "cash", "savings", "financial", "interest",
                  "central", "banking", "pay", "paid", "fund", "funds", "atm", "branch", "dollars", "pounds"},
    },
    "play": {
        "theatre": {"theatre", "theater", "stage", "actor", "actors", "drama", "performed", "audience", "scene",
                    "written", "playwright", "act", "production", "comedy", "tragedy", "broadway"},
        "game": {"game", "games", "ball", "football", "team", "sport", "match", "season", "league", "children",
                 "toys", "cards", "chess", "players", "win", "fun"},
        "music": {"music", "piano", "guitar", "song", "songs", "violin", "band", "instrument", "tune", "sing"},
    },
    "light": {
        "illumination": {"dark", "darkness", "sun", "lamp", "bright", "candle", "shine", "shining", "fire", "moon",
                         "window", "lights", "shadow", "day", "glow", "beam"},
        "not heavy": {"heavy", "weight", "carry", "load", "lightweight", "thin", "soft", "small", "easy",
                      "quick", "loose", "step", "steps", "breeze"},
    },
    "spring": {
        "season": {"summer", "winter", "autumn", "season", "april", "march", "may", "year", "flowers", "weather"},
        "water": {"water", "well", "fountain", "source", "stream", "hot", "springs", "drink", "pool"},
    },
}
COLOURS = ["tab:blue", "tab:orange", "tab:green", "tab:red"]


def sense_hint(word: str, tokens: list[str]) -> str:
    words = {t.lower() for t in tokens}
    counts = {sense: len(words & cues) for sense, cues in SENSES.get(word, {}).items()}
    best = max(counts.values(), default=0)
    winners = [s for s, c in counts.items() if c == best]
    return winners[0] if best > 0 and len(winners) == 1 else "no cue"


def pca_2d(x: np.ndarray) -> np.ndarray:
    centred = x - x.mean(0)
    if np.allclose(centred, 0):
        return np.zeros((len(x), 2))
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    out = centred @ vt[:2].T
    return np.pad(out, [(0, 0), (0, 2 - out.shape[1])])


def cosine_matrix(x: np.ndarray) -> np.ndarray:
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return x @ x.T


def nearest_sense_agreement(vectors: np.ndarray, hints: list[str]) -> float | None:
    """Share of hinted occurrences whose nearest other hinted occurrence (cosine) has the same sense hint."""
    idx = [i for i, h in enumerate(hints) if h != "no cue"]
    if len(idx) < 2:
        return None
    sims = cosine_matrix(vectors[idx])
    np.fill_diagonal(sims, -np.inf)
    nearest = sims.argmax(1)
    return float(np.mean([hints[idx[i]] == hints[idx[j]] for i, j in enumerate(nearest)]))


def majority_share(hints: list[str]) -> float | None:
    """What always guessing the most common sense hint scores: the baseline of `nearest_sense_agreement` (a
    static vector is the same in every sentence and cannot do better)."""
    hinted = [h for h in hints if h != "no cue"]
    return max(hinted.count(h) for h in set(hinted)) / len(hinted) if len(hinted) >= 2 else None


def gather(examples, words, per_word: int, seed: int):
    """{word: [(tokens, position), ...]}: sentences holding the word (any case), sampled with a fixed seed."""
    found = {w: [] for w in words}
    for e in examples:
        lower = [t.lower() for t in e.tokens]
        for w in words:
            if w in lower and len(e.tokens) >= 5:
                found[w].append((list(e.tokens), lower.index(w)))
    rng = np.random.default_rng(seed)
    return {w: [occ[i] for i in sorted(rng.permutation(len(occ))[:per_word])] for w, occ in found.items()}


def picture(run_dir, words=("bank", "play", "light", "spring"), per_word: int = 60, layer: int | None = None,
            neighbours: int = 3, output_dir=None, seed: int = 0) -> dict:
    """Writes `contexts.png` and `contexts.json` into `output_dir` (default RUN_DIR/embed), prints each sampled
    occurrence's nearest neighbours, and returns the per-word summary. `layer` defaults to the top one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from kerasrnn.embedder import Embedder
    from kerasrnn.run import load_run, read_split

    run = load_run(run_dir)
    embedder = Embedder.from_run(run)
    layer = layer if layer is not None else embedder.num_layers - 1
    words = [w.strip().lower() for w in words if w.strip()]
    examples = read_split(run.config, "train") + read_split(run.config, "test")
    occurrences = gather(examples, words, per_word, seed)
    out_dir = Path(output_dir or Path(run_dir) / "embed")
    make_dir(out_dir)

    fig, axes = plt.subplots(1, len(words) + 1, figsize=(4.2 * (len(words) + 1), 4.4))
    summary, static_points = {}, []  # the same words, in order
    for ax, word in zip(axes[:-1], words, strict=True):
        occ = occurrences[word]
        if len(occ) < 3:
            ax.set_title(f"{word}: {len(occ)} sentences")
            continue
        sentences = [tokens for tokens, _ in occ]
        contextual = np.stack([v[pos] for v, (_, pos) in zip(embedder.embed(sentences, layer=layer), occ, strict=True)])
        static = np.stack([v[pos] for v, (_, pos) in zip(embedder.embed(sentences, layer=0), occ, strict=True)])
        hints = [sense_hint(word, tokens) for tokens in sentences]
        points = pca_2d(contextual)
        senses = [*SENSES.get(word, {}), "no cue"]
        for k, sense in enumerate(senses):
            sel = [i for i, h in enumerate(hints) if h == sense]
            colour = "lightgrey" if sense == "no cue" else COLOURS[k % len(COLOURS)]
            ax.scatter(points[sel, 0], points[sel, 1], s=18, c=colour, label=f"{sense} ({len(sel)})")
        ax.set_title(f'"{word}", layer {layer} (contextual)')
        ax.legend(fontsize=7, loc="best")
        static_points.append(static)
        summary[word] = {
            "sentences": len(occ),
            "hints": {s: hints.count(s) for s in senses},
            "nearest_neighbour_same_sense": nearest_sense_agreement(contextual, hints),
            "majority_share": majority_share(hints),
            # case variants (Bank / bank): the character features read the original case
            "static_vectors_distinct": int(len(np.unique(static.round(6), axis=0))),
        }
        nn, base = summary[word]["nearest_neighbour_same_sense"], summary[word]["majority_share"]
        print(f"\n== {word}: {len(occ)} sentences; nearest contextual neighbour has the same sense hint: "
              f"{_fmt(nn)} (always guessing the commonest hint: {_fmt(base)}); "
              f"{summary[word]['static_vectors_distinct']} distinct static vector(s)")
        sims = cosine_matrix(contextual)
        np.fill_diagonal(sims, -np.inf)
        shown = [i for i, h in enumerate(hints) if h != "no cue"] or list(range(len(occ)))
        for i in shown[:neighbours]:
            print(f"  [{hints[i]}] {_snippet(occ[i])}")
            for j in np.argsort(-sims[i])[:2]:
                print(f"      {sims[i, j]:.2f} [{hints[j]}] {_snippet(occ[j])}")
    ax = axes[-1]
    if static_points:
        stacked = np.concatenate(static_points)
        points = pca_2d(stacked)
        start = 0
        for k, (word, pts) in enumerate(zip(summary, static_points, strict=True)):
            sel = points[start : start + len(pts)]
            start += len(pts)
            distinct = summary[word]["static_vectors_distinct"]
            ax.scatter(sel[:, 0], sel[:, 1], s=60, c=COLOURS[k % len(COLOURS)],
                       label=f"{word}: {len(pts)} sentences, {distinct} point{'s' if distinct > 1 else ''}")
    ax.set_title("layer 0 (static): one vector per spelling")
    ax.legend(fontsize=7)
    fig.suptitle(f"Contextual vs static vectors, PCA per panel ({Path(run_dir).name})")
    fig.tight_layout()
    fig.savefig(out_dir / "contexts.png", dpi=90)
    plt.close(fig)
    atomic_write_json({"layer": layer, "words": summary}, out_dir / "contexts.json")
    print(f"\nwrote {out_dir / 'contexts.png'} and {out_dir / 'contexts.json'}")
    return summary




def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def _snippet(occurrence, width: int = 6) -> str:
    tokens, pos = occurrence
    left = " ".join(tokens[max(0, pos - width) : pos])
    right = " ".join(tokens[pos + 1 : pos + 1 + width])
    return f"... {left} [{tokens[pos]}] {right} ..."

