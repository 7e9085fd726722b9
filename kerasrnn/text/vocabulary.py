"""Token and label vocabularies with stable ids, saved as plain UTF-8 text (one entry per line, id = line number)."""

from __future__ import annotations

import collections
import os
from collections.abc import Iterable
from pathlib import Path

from kerasrnn.files import atomic_write_text

PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"
PAD_ID = 0
UNK_ID = 1


class Vocabulary:
    """Maps strings to integer ids and back.

    A token vocabulary (`special_tokens=True`) reserves id 0 for padding and id 1 for unknown
    entries; lookups of unseen strings return 1. A label vocabulary (`special_tokens=False`) has no
    reserved ids and rejects unseen strings with a `ValueError`, so a label that the model was
    never trained on cannot slip into evaluation.

    Args:
        tokens: list of str. The entries in id order. For a token vocabulary the first two entries
            must be `"<pad>"` and `"<unk>"`.
        special_tokens: bool. Whether ids 0 and 1 are the pad and unknown ids. Defaults to True.
        lowercase: bool. Lowercase strings before lookup. Defaults to False.

    Example:
    >>> vocab = Vocabulary.build([["The", "cat"], ["the", "dog"]], lowercase=True)
    >>> vocab.encode(["the", "bird"])
    [2, 1]
    """

    def __init__(self, tokens: list[str], *, special_tokens: bool = True, lowercase: bool = False):
        tokens = list(tokens)
        if special_tokens and tokens[:2] != [PAD_TOKEN, UNK_TOKEN]:
            raise ValueError(
                f"a token vocabulary must start with {PAD_TOKEN!r} (id 0) and {UNK_TOKEN!r} (id 1); "
                f"got {tokens[:2]!r}"
            )
        index = {}
        for i, token in enumerate(tokens):
            if not isinstance(token, str) or token == "" or "\n" in token or "\r" in token:
                raise ValueError(f"vocabulary entry {i} is empty or not a single-line string: {token!r}")
            if token in index:
                raise ValueError(f"vocabulary entry {token!r} appears twice (ids {index[token]} and {i})")
            index[token] = i
        self.tokens = tokens
        self.special_tokens = special_tokens
        self.lowercase = lowercase
        self._index = index

    @classmethod
    def build(
        cls,
        sequences: Iterable[Iterable[str]],
        *,
        min_count: int = 1,
        max_size: int | None = None,
        lowercase: bool = False,
        keep=None,
    ) -> Vocabulary:
        """Builds a token vocabulary, most frequent first, ties broken alphabetically (stable ids). `keep`: a
        predicate on (normalized) tokens that enter whatever their count (words known to pre-trained vectors)."""
        counts = collections.Counter()
        for sequence in sequences:
            counts.update(token.lower() if lowercase else token for token in sequence)
        counts.pop(PAD_TOKEN, None)
        counts.pop(UNK_TOKEN, None)
        ranked = sorted((t for t, c in counts.items() if c >= min_count or (keep is not None and keep(t))),
                        key=lambda t: (-counts[t], t))
        if max_size is not None:
            ranked = ranked[: max(0, max_size - 2)]
        return cls([PAD_TOKEN, UNK_TOKEN, *ranked], lowercase=lowercase)

    @classmethod
    def for_labels(cls, labels: Iterable[str]) -> Vocabulary:
        """A label vocabulary of the distinct labels, sorted (stable ids)."""
        return cls(sorted(set(labels)), special_tokens=False)

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return self._normalize(token) in self._index

    def _normalize(self, token: str) -> str:
        return token.lower() if self.lowercase else token

    def lookup(self, token: str) -> int:
        """The token's id; in a token vocabulary, the unknown id for a token it lacks and for the pad token itself
        (text that reads "<pad>" is a word, never padding)."""
        i = self._index.get(self._normalize(token))
        if self.special_tokens:
            return UNK_ID if i is None or i == PAD_ID else i
        if i is not None:
            return i
        raise ValueError(f"unknown label {token!r}; known labels: {', '.join(self.tokens[:20])}")

    def encode(self, tokens: Iterable[str]) -> list[int]:
        return [self.lookup(t) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.tokens):
                raise ValueError(f"id {i} is outside the vocabulary [0, {len(self.tokens)})")
            out.append(self.tokens[i])
        return out

    def save(self, path: str | os.PathLike) -> None:
        """Writes one entry per line, atomically (temporary file, then rename)."""
        atomic_write_text("".join(t + "\n" for t in self.tokens), path)

    def extended(self, counts_source: Iterable[Iterable[str]], min_count: int, max_size: int | None = None,
                 keep=None) -> Vocabulary:
        """This vocabulary with the entries of `counts_source` (iterables of tokens) that reach `min_count` (or pass
        `keep`, see `build`) and are not in it appended after its ids: every existing id keeps its meaning."""
        extra = Vocabulary.build(counts_source, min_count=min_count, max_size=max_size, lowercase=self.lowercase,
                                 keep=keep)
        new = [t for t in extra.tokens[2:] if t not in self]
        return Vocabulary(self.tokens + new, special_tokens=self.special_tokens, lowercase=self.lowercase)

    def with_entries(self, tokens: Iterable[str]) -> Vocabulary:
        """This vocabulary with `tokens` it lacks appended in their order: every existing id keeps its meaning."""
        new, seen = [], set()
        for t in tokens:
            key = self._normalize(t)
            if key not in self._index and key not in seen and key not in (PAD_TOKEN, UNK_TOKEN) and key.strip() \
                    and "\n" not in key and "\r" not in key:
                new.append(key)
                seen.add(key)
        return Vocabulary(self.tokens + new, special_tokens=self.special_tokens, lowercase=self.lowercase)

    @classmethod
    def load(cls, path: str | os.PathLike, *, special_tokens: bool = True, lowercase: bool = False) -> Vocabulary:
        path = Path(path)
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        if not lines:
            raise ValueError(f"{path}: the vocabulary file is empty")
        for lineno, line in enumerate(lines, start=1):
            if line == "" or line.endswith("\r"):
                raise ValueError(f"{path}:{lineno}: empty entry or CR line end in a vocabulary file")
        try:
            return cls(lines, special_tokens=special_tokens, lowercase=lowercase)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
