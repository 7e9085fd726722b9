"""Word and character tokenization of raw text, close to the Penn Treebank / UD conventions of the corpora."""

from __future__ import annotations

import functools
import re
import unicodedata

import numpy as np

from kerasrnn.text.vocabulary import PAD_ID, Vocabulary

# The rules, first alternative that matches at a position wins. Python runs this pattern as it is; it is written
# so that `render` can expand \w \W \d \s \S and $ into the explicit code-point ranges of Python's own classes
# (`classes()`, read from this interpreter) and the end of the text, for JavaScript (u flag) and java.util.regex:
# the spec in metadata.json is this very pattern (kerasrnn.text.spec; tests check the expansion against Python's
# \w, \d, \s on every code point).
# Case-insensitive parts are spelled out ([nN]'[tT]) because JavaScript before ES2025 has no (?i:...) groups.
NEGATION = "[nN]'[tT]"
CLITICS = ("s", "m", "d", "ll", "re", "ve")
ALTERNATIVES = (
    ("url", r"(?:https?://|www\.)\S+[^\s.,;:!?)\]'" + '"]'),     # URLs (trailing punctuation left out)
    ("email", r"[\w.+-]+@\w+(?:\.\w+)+"),                        # e-mail addresses
    ("mention_or_hashtag", r"[@#]\w+"),                           # @mentions and #hashtags
    ("negation", NEGATION + r"(?=\W|$)"),                         # the "n't" of don't, can't (split from its verb)
    ("clitic", "'(?:" + "|".join("".join(f"[{c}{c.upper()}]" for c in clitic) for clitic in CLITICS)
     + r")(?=\W|$)"),                                             # clitics 's 'm 'd 'll 're 've
    ("number", r"\d+(?:[.,:/]\d+)*"),                             # numbers: 3.14, 1,000, 10:30, 1/2
    ("abbreviation", r"(?:[A-Za-z]\.){2,}"),                       # abbreviations: U.S., e.g.
    ("word", r"(?:(?!" + NEGATION + r"(?:\W|$))\w)+(?:-\w+)*"),   # words, hyphenated compounds; stops before n't
    ("multi_punctuation", r"\.\.\.|--|``|''"),                     # multi-character punctuation
    ("other", r"\S"),                                             # any other single character
)
PORTABLE_PATTERN = "|".join(f"(?:{pattern})" for _, pattern in ALTERNATIVES)
# Characters `clean_text` turns into spaces, and the categories it drops (control characters, lone surrogates).
SPACE_CHARS = "\t\n\r\v\f"
DROPPED_CATEGORIES = ("Cc", "Cs")
MAX_CODE_POINT = 0x10FFFF


@functools.lru_cache(maxsize=1)
def classes() -> dict[str, tuple[tuple[int, int], ...]]:
    """Python's \\w, \\d and \\s as code-point ranges (inclusive), surrogates left out: `str.isalnum()` or "_",
    `str.isdecimal()`, `str.isspace()` (what the `re` module tests), over every code point."""
    tests = {"w": lambda ch: ch.isalnum() or ch == "_", "d": str.isdecimal, "s": str.isspace}
    return {name: _ranges(c for c in range(MAX_CODE_POINT + 1) if not 0xD800 <= c <= 0xDFFF and test(chr(c)))
            for name, test in tests.items()}


def _ranges(code_points) -> tuple[tuple[int, int], ...]:
    out: list[list[int]] = []
    for c in code_points:
        if out and out[-1][1] == c - 1:
            out[-1][1] = c
        else:
            out.append([c, c])
    return tuple((a, b) for a, b in out)


_ESCAPE = {  # "python": the expanded pattern for Python's re (tests compare it with the native one)
    "python": lambda c: f"\\u{c:04X}" if c <= 0xFFFF else f"\\U{c:08X}",
    "javascript": lambda c: f"\\u{{{c:X}}}",
    "java": lambda c: f"\\x{{{c:X}}}",
}


def _class_body(ranges, dialect: str) -> str:
    esc = _ESCAPE[dialect]
    return "".join(esc(a) if a == b else f"{esc(a)}-{esc(b)}" for a, b in ranges)


def render(pattern: str, dialect: str) -> str:
    """`pattern` (the portable notation above) with \\w \\W \\d \\s \\S and $ expanded for `dialect`: "python",
    "javascript" (with the u flag) or "java"."""
    cls = classes()
    out, in_class, i = [], False, 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            nxt = pattern[i + 1]
            if nxt.lower() in cls:
                body = _class_body(cls[nxt.lower()], dialect)
                if in_class:
                    if nxt.isupper():
                        raise ValueError(f"\\{nxt} inside a character class is not supported: {pattern!r}")
                    out.append(body)
                else:
                    out.append(f"[^{body}]" if nxt.isupper() else f"[{body}]")
            else:
                out.append(ch + nxt)
            i += 2
            continue
        if ch == "[" and not in_class:
            in_class = True
        elif ch == "]" and in_class:
            in_class = False
        elif ch == "$" and not in_class:  # the end of the text (never before a final newline: none are left)
            ch = f"(?![{_class_body(((0, MAX_CODE_POINT),), dialect)}])"
        out.append(ch)
        i += 1
    return "".join(out)


@functools.lru_cache(maxsize=1)
def token_pattern() -> re.Pattern:
    """The tokenizer's compiled pattern (native classes: 2.4x faster than the expanded ranges, same tokens)."""
    return re.compile(PORTABLE_PATTERN)


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
        return token_pattern().findall(text)


def clean_text(text: str) -> str:
    """NFC-normalizes and removes lone surrogates, NUL and other control characters (tabs and newlines become spaces)."""
    text = text.encode("utf-8", "ignore").decode("utf-8") if _has_surrogates(text) else text
    text = unicodedata.normalize("NFC", text)
    return "".join(
        " " if ch in SPACE_CHARS else ch
        for ch in text
        if ch in SPACE_CHARS or unicodedata.category(ch) not in DROPPED_CATEGORIES
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
