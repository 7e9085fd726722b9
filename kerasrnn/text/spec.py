"""The tokenizer and id rules as data an app can re-implement: the `tokenizer` section of metadata.json.

Generated from the code that tokenizes (`kerasrnn.text.tokenizer`: its pattern, its character classes read from
this interpreter, `clean_text`'s constants; `kerasrnn.data.pipeline.encode`'s cut and empty-text rules), so the spec
and the Python tokenizer cannot drift apart; `conformance.json` (kerasrnn.export.conformance) checks a client
against both. The regular expression is given for JavaScript (`new RegExp(p, "gu")`) and java.util.regex
(`Pattern.compile(p)`); both expand Python's \\w, \\d, \\s into explicit code-point ranges.
"""

from __future__ import annotations

import functools
import unicodedata

from kerasrnn.text import tokenizer as tok
from kerasrnn.text.vocabulary import PAD_ID, UNK_ID, UNK_TOKEN

SPEC_VERSION = 1


@functools.lru_cache(maxsize=1)
def _dropped_ranges() -> tuple:
    """The code points `clean_text` removes (categories Cc and Cs but for the ones it turns into spaces)."""
    spaces = {ord(c) for c in tok.SPACE_CHARS}
    return tuple(tok._ranges(
        c for c in range(tok.MAX_CODE_POINT + 1)
        if c not in spaces and unicodedata.category(chr(c)) in tok.DROPPED_CATEGORIES))


@functools.lru_cache(maxsize=1)
def _patterns() -> dict:
    return {dialect: tok.render(tok.PORTABLE_PATTERN, dialect) for dialect in ("javascript", "java")}


def tokenizer_spec(*, lowercase: bool, max_length: int, max_word_chars: int | None,
                   max_chars: int | None = None) -> dict:
    """The `tokenizer` section of metadata.json: text -> tokens -> token ids (and char ids), step by step."""
    max_chars = max_chars or tok.WordTokenizer().max_chars
    spec = {
        "version": SPEC_VERSION,
        "unicode_version": unicodedata.unidata_version,
        "text_steps": [
            {"step": "cut", "max_code_points": max_chars,
             "rule": "keep the first max_code_points Unicode code points of the text (not UTF-16 units)"},
            {"step": "drop_lone_surrogates", "rule": "remove unpaired UTF-16 surrogates (U+D800-U+DFFF)"},
            {"step": "normalize", "form": "NFC",
             "rule": "Unicode NFC (JavaScript String.prototype.normalize('NFC'), java.text.Normalizer NFC)"},
            {"step": "spaces", "code_points": [ord(c) for c in tok.SPACE_CHARS],
             "rule": "replace each of these code points with U+0020"},
            {"step": "drop", "ranges": [list(r) for r in _dropped_ranges()],
             "rule": "remove every code point in these inclusive ranges (control characters)"},
        ],
        "tokens": {
            "pattern": dict(_patterns()),
            "flags": {"javascript": "gu", "java": ""},
            "rule": ("the tokens are every non-overlapping match of the pattern, left to right (JavaScript: "
                     "[...text.matchAll(new RegExp(p, 'gu'))].map(m => m[0]); Java: Matcher.find() in a loop; "
                     "Python: re.findall); the first alternative that matches at a position wins; what lies "
                     "between matches is whitespace and is skipped"),
            "alternatives": [{"name": name, "portable": pattern} for name, pattern in tok.ALTERNATIVES],
            "portable_notation": ("the alternatives are written with \\w \\W \\d \\s \\S and $; in the patterns "
                                  "above they are expanded to the ranges of `classes` ([...], [^...]) and $ to "
                                  "'not followed by any code point'"),
            "classes": {name: [list(r) for r in ranges] for name, ranges in tok.classes().items()},
            "clitics": ["n't", *(f"'{c}" for c in tok.CLITICS)],
        },
        "ids": {
            "max_length": max_length,
            "cut": "keep the first max_length tokens",
            "lowercase": lowercase,
            "lowercase_rule": ("when lowercase is true, look up the Unicode default lowercase of the token (Python "
                               "str.lower, JavaScript toLowerCase(), Java toLowerCase(Locale.ROOT))"),
            "lookup": "the id of a token is its 0-based line in the vocabulary file; a token not in it, or the pad "
                      "token itself (line 0), gets unknown_id",
            "pad_id": PAD_ID,
            "unknown_id": UNK_ID,
            "empty_text": (f"a text with no tokens is fed as the one token {UNK_TOKEN!r} with token id unknown_id "
                           f"(char ids: those of the characters of {UNK_TOKEN!r}); a tagger's output for it is no "
                           "tags, a classifier's label is read as usual"),
        },
    }
    if max_word_chars:
        spec["ids"]["char_ids"] = {
            "max_word_chars": max_word_chars,
            "rule": ("for each token, the ids of its first max_word_chars code points (original case) in the "
                     "character vocabulary file (unknown characters -> unknown_id), right-padded with pad_id; "
                     "positions after the last token are all pad_id"),
        }
    return spec
