import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kerasrnn.text import Vocabulary, WordTokenizer, char_ids

tokenize = WordTokenizer()


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("I can't pay $5.50, can you?", ["I", "ca", "n't", "pay", "$", "5.50", ",", "can", "you", "?"]),
        ("It's what we'll do, isn't it?", ["It", "'s", "what", "we", "'ll", "do", ",", "is", "n't", "it", "?"]),
        ("Check https://example.com/a?b=1. now", ["Check", "https://example.com/a?b=1", ".", "now"]),
        ("@paulwalk loves #NYC: mail a.b@c.com", ["@paulwalk", "loves", "#NYC", ":", "mail", "a.b@c.com"]),
        ("The U.S. won 1,000 well-known prizes...", ["The", "U.S.", "won", "1,000", "well-known", "prizes", "..."]),
        ("", []),
        ("   \t\n ", []),
    ],
)
def test_tokenizer_splits_like_the_treebanks(text, tokens):
    assert tokenize(text) == tokens


def test_pretokenized_text_is_unchanged():
    line = "they wo n't sit still for a sociology lesson , however entertainingly presented"
    assert tokenize(line) == line.split()


def test_control_characters_and_lone_surrogates_are_dropped():
    assert tokenize("caf\u0065\u0301 \x00ok\ud800!") == ["café", "ok", "!"]


def test_huge_line_is_cut_to_max_chars():
    assert len(WordTokenizer(max_chars=1000)("a " * 1_000_000)) == 500


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_tokens_are_nonempty_and_whitespace_free_on_arbitrary_text(text):
    tokens = tokenize(text)
    assert all(tok and not any(ch.isspace() for ch in tok) for tok in tokens)
    assert tokenize(" ".join(tokens)) == tokens


def test_char_ids_pad_and_cut_words():
    chars = Vocabulary.build([list("abc")])
    ids = char_ids(["ab", "cabbage"], chars, max_word_chars=4)
    a, b, c = chars.encode("abc")
    np.testing.assert_array_equal(ids, [[a, b, 0, 0], [c, a, b, b]])
    assert ids.dtype == np.int32
