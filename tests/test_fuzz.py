"""Property tests (hypothesis) on arbitrary Unicode: vocabulary and reader round trips, ids always in [0, V),
no exception other than the documented DataFormatError."""

import string

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kerasrnn.data.pipeline import encode
from kerasrnn.data.readers import DataFormatError, Example, read_conll, read_csv, read_sst, read_tokens
from kerasrnn.text.tokenizer import WordTokenizer, char_ids, clean_text
from kerasrnn.text.vocabulary import Vocabulary

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
TOKENIZE = WordTokenizer()
words = st.text(min_size=1, max_size=12).map(lambda w: "".join(w.split())).filter(bool)


@FUZZ
@given(st.lists(st.lists(words, max_size=8), max_size=20), st.text(max_size=200), st.booleans())
def test_vocabulary_ids_stay_in_range_and_survive_a_file_round_trip(tmp_path_factory, sentences, text, lowercase):
    vocab = Vocabulary.build(sentences, min_count=1, lowercase=lowercase)
    ids = vocab.encode(TOKENIZE(text) + [w for s in sentences for w in s])
    assert all(0 < i < len(vocab) for i in ids)  # never the pad id, never out of range
    path = tmp_path_factory.mktemp("v") / "vocab.txt"
    vocab.save(path)
    loaded = Vocabulary.load(path, lowercase=lowercase)
    assert loaded.tokens == vocab.tokens
    assert loaded.encode([w for s in sentences for w in s]) == vocab.encode([w for s in sentences for w in s])


@FUZZ
@given(st.lists(st.text(max_size=30), max_size=6))
def test_encode_gives_ids_in_range_for_any_text(texts):
    vocab = Vocabulary.build([["a", "b"]], min_count=1)
    chars = Vocabulary.build([list("abc")], min_count=1)
    data = encode([Example(tuple(TOKENIZE(t))) for t in texts], vocab, None, char_vocab=chars, max_length=16)
    for tok, ch in zip(data.token_ids, data.char_ids, strict=True):
        assert len(tok) >= 1 and tok.min() >= 1 and tok.max() < len(vocab)
        assert ch.min() >= 0 and ch.max() < len(chars) and ch.shape == (len(tok), 16)


tag = st.sampled_from(["O", "B-person", "I-person", "B-location", "I-location"])
conll_token = st.text(alphabet=st.characters(blacklist_characters="\t\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029",
                                             blacklist_categories=["Cs"]), min_size=1, max_size=10)


@FUZZ
@given(st.lists(st.lists(st.tuples(conll_token, tag), min_size=1, max_size=6), min_size=1, max_size=5))
def test_conll_written_then_read_returns_the_sentences(tmp_path_factory, sentences):
    path = tmp_path_factory.mktemp("c") / "f.conll"
    path.write_text("\n\n".join("\n".join(f"{t}\t{g}" for t, g in s) for s in sentences) + "\n", encoding="utf-8")
    try:
        examples = read_conll(path)
    except DataFormatError as e:
        # only the documented refusals: a NUL byte (binary file), a token that cleans to nothing; named by file
        assert any("\x00" in t or not clean_text(t).strip() for s in sentences for t, _ in s), e
        assert str(path) in str(e)
        return
    expected = [s for s in sentences if s]
    assert len(examples) == len(expected)
    for e, s in zip(examples, expected, strict=True):
        assert e.tags == tuple(g for _, g in s)
        assert all(t and "\t" not in t and " " not in t for t in e.tokens)


@FUZZ
@given(st.binary(max_size=300))
def test_readers_raise_only_data_format_errors_on_arbitrary_bytes(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("b") / "f.txt"
    path.write_bytes(data)
    for reader in (read_conll, read_sst, read_csv, read_tokens):
        try:
            examples = reader(path)
        except DataFormatError as e:
            assert str(path) in str(e)
            continue
        assert all(isinstance(t, str) and t for ex in examples for t in ex.tokens)


@FUZZ
@given(st.text(alphabet=string.printable + "éß漢字😀\u200b", max_size=40))
def test_char_ids_are_in_range(word):
    vocab = Vocabulary.build([list("abcdé")], min_count=1)
    ids = char_ids([word or "x"], vocab, 8)
    assert ids.shape == (1, 8) and ids.min() >= 0 and ids.max() < len(vocab)
    assert np.all(ids[0, : min(len(word or "x"), 8)] >= 1)
