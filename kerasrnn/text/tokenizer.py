"""Word and character tokenization of raw text, close to the Penn Treebank / UD conventions of the corpora."""

from __future__ import annotations

import re
import unicodedata

import numpy as np

from kerasrnn.text.vocabulary import PAD_ID, Vocabulary

# Order matters: the first alternative that matches at a position wins.
_TOKEN_PATTERN = re.compile(
    r"""
    (?:https?://|www\.)\S+[^\s.,;:!?)\]'"]        # URLs (trailing punctuation left out)
  | [\w.+-]+@\w+(?:\.\w+)+                       # e-mail addresses
  | [@\#][\w_]+                                   # @mentions and #hashtags
  | (?i:n't)(?=\W|$)                              # the "n't" of don't, can't (split from its verb)
  | '(?i:s|m|d|ll|re|ve)(?=\W|$)                  # clitics 's 'm 'd 'll 're 've
  | \d+(?:[.,:/]\d+)*                             # numbers: 3.14, 1,000, 10:30, 1/2
  | (?:[A-Za-z]\.){2,}                            # abbreviations: U.S., e.g.
  | (?:(?!(?i:n't)(?:\W|$))\w)+(?:-\w+)*          # words, hyphenated compounds; stops before n't
  | \.\.\.|--|``|''                               # multi-character punctuation
  | \S                                            # any other single character
    """,
    re.VERBOSE,
)


class WordTokenizer:
    """Splits raw text into word tokens.

    Splits off punctuation and English clitics the way UD EWT and the Penn Treebank do
    ("don't" -> "do", "n't"; "it's" -> "it", "'s"), and keeps URLs, e-mail addresses,
    @mentions, #hashtags and numbers whole. Text that is already tokenized (space-separated,
    as in SST or the Gutenberg files) comes back with the same tokens. The text is NFC-normalized
    first; lone surrogates and control characters are dropped.

    Args:
        max_chars: int. Longer texts are cut to this many characters before tokenizing, so one huge
            line costs bounded time and memory. Defaults to 100_000.

    Example:
    >>> WordTokenizer()("I can't pay $5.50, can you?")
    ['I', 'ca', "n't", 'pay', '$', '5.50', ',', 'can', 'you', '?']
    """

    def __init__(self, max_chars: int = 100_000):
        self.max_chars = max_chars

    def __call__(self, text: str) -> list[str]:
        if not isinstance(text, str):
            raise TypeError(f"expected a str, got {type(text).__name__}")
        text = clean_text(text[: self.max_chars])
        return _TOKEN_PATTERN.findall(text)


def clean_text(text: str) -> str:
    """NFC-normalizes and removes lone surrogates, NUL and other control characters (tabs and newlines become spaces)."""
    text = text.encode("utf-8", "ignore").decode("utf-8") if _has_surrogates(text) else text
    text = unicodedata.normalize("NFC", text)
    return "".join(
        " " if ch in "\t\n\r\v\f" else ch
        for ch in text
        if ch in "\t\n\r\v\f" or unicodedata.category(ch) not in ("Cc", "Cs")
    )


def _has_surrogates(text: str) -> bool:
    return any("\ud800" <= ch <= "\udfff" for ch in text)


def char_ids(tokens: list[str], char_vocab: Vocabulary, max_word_chars: int) -> np.ndarray:
    """Character ids of each token, right-padded with 0 or cut to `max_word_chars`: int32 [len(tokens), max_word_chars]."""
    out = np.full((len(tokens), max_word_chars), PAD_ID, dtype=np.int32)
    for i, token in enumerate(tokens):
        ids = char_vocab.encode(token[:max_word_chars])
        out[i, : len(ids)] = ids
    return out
