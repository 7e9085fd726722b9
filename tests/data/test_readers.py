import json

import pytest

from kerasrnn.data import DataFormatError, read_clinc_json, read_conll, read_conllu, read_csv, read_examples, read_sst
from kerasrnn.data.readers import read_sst_trees

CONLLU = """# sent_id = 1
# text = I don't know.
1\tI\tI\tPRON\tPRP\t_\t3\tnsubj\t_\t_
2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_
2\tdo\tdo\tAUX\tVBP\t_\t3\taux\t_\t_
3\tn't\tnot\tPART\tRB\t_\t4\tadvmod\t_\t_
3.1\tknow\tknow\tVERB\tVB\t_\t_\t_\t_\t_
4\tknow\tknow\tVERB\tVB\t_\t0\troot\t_\t_

1\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\t_
"""


def write(tmp_path, content, name="data.txt", mode="w"):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", newline="")
    return path


def test_conllu_skips_multiword_ranges_and_empty_nodes(tmp_path):
    examples = read_conllu(write(tmp_path, CONLLU))
    assert [e.tokens for e in examples] == [("I", "do", "n't", "know"), ("Hi",)]
    assert examples[0].tags == ("PRON", "AUX", "PART", "VERB")


def test_conllu_wrong_column_count_names_file_and_line(tmp_path):
    bad = CONLLU.replace("4\tknow\tknow\tVERB\tVB\t_\t0\troot\t_\t_", "4\tknow\tVERB")
    path = write(tmp_path, bad)
    with pytest.raises(DataFormatError, match=rf"{path.name}:8: expected 10 tab-separated columns, found 3"):
        read_conllu(path)


def test_conll_reads_tab_only_separators_and_hashtags(tmp_path):
    path = write(tmp_path, "#nyc\tB-location\nis\tO\n\t\nhi\tO\n\n\nthere\tO\n")
    examples = read_conll(path)
    assert [e.tokens for e in examples] == [("#nyc", "is"), ("hi",), ("there",)]
    assert examples[0].tags == ("B-location", "O")


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        ("a\tO\nb\tX-person\n", 2, "tag .X-person. is not in the BIO scheme"),
        ("a\tO\nb\tO\tO\n", 2, "expected TOKEN<TAB>TAG, found 3"),
        ("a\tO\n\nb\n", 3, "expected TOKEN<TAB>TAG, found 1"),
    ],
)
def test_conll_malformed_lines_name_file_and_line(tmp_path, content, line, message):
    path = write(tmp_path, content)
    with pytest.raises(DataFormatError, match=rf"{path.name}:{line}: {message}"):
        read_conll(path)


def test_bom_and_crlf_are_accepted(tmp_path):
    path = write(tmp_path, b"\xef\xbb\xbfa\tO\r\nb\tB-x\r\n\r\nc\tO\r\n")
    assert [e.tokens for e in read_conll(path)] == [("a", "b"), ("c",)]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty or holds only blank lines"),
        (b"\n\n  \n", "empty or holds only blank lines"),
        (b"a\tO\nb\xff\tO\n", r":2: not valid UTF-8"),
        (b"a\tO\nb\x00\tO\n", r":2: contains a NUL byte"),
    ],
)
def test_unreadable_files_are_rejected_with_location(tmp_path, content, message):
    with pytest.raises(DataFormatError, match=message):
        read_conll(write(tmp_path, content))


def test_clinc_json_reads_split_with_its_out_of_scope_list(tmp_path):
    data = {"train": [["what's my balance", "balance"]], "oos_train": [["tell me a joke", "oos"]],
            "val": [["balance?", "balance"]], "test": [["how much money", "balance"]], "oos_test": [["hi", "oos"]]}
    path = write(tmp_path, json.dumps(data), "data.json")
    train = read_clinc_json(path, "train")
    assert [(e.tokens, e.label) for e in train] == [(("what", "'s", "my", "balance"), "balance"),
                                                    (("tell", "me", "a", "joke"), "oos")]
    assert [e.label for e in read_clinc_json(path, "test")] == ["balance", "oos"]
    assert len(read_clinc_json(write(tmp_path, json.dumps([["a b", "x"]]), "list.json"))) == 1
    with pytest.raises(DataFormatError, match="entry 0 is not a \\[text, label\\] pair"):
        read_clinc_json(write(tmp_path, json.dumps({"train": [["only text"]]}), "bad.json"))


def test_csv_handles_quoted_commas_and_newlines(tmp_path):
    path = write(tmp_path, 'text,category\n"Hi, where is\nmy card?",card_arrival\nok,other\n')
    examples = read_csv(path)
    assert examples[0].tokens == ("Hi", ",", "where", "is", "my", "card", "?")
    assert [e.label for e in examples] == ["card_arrival", "other"]
    with pytest.raises(DataFormatError, match=":3: expected 2 columns"):
        read_csv(write(tmp_path, "text,category\na,b\na,b,c\n", "bad.csv"))
    with pytest.raises(DataFormatError, match=":1: expected the header"):
        read_csv(write(tmp_path, "sentence;label\n", "bad2.csv"))


def test_sst_lines(tmp_path):
    examples = read_sst(write(tmp_path, "1 a great movie .\n0 wo n't work\n"))
    assert [(e.tokens, e.label) for e in examples] == [(("a", "great", "movie", "."), "1"),
                                                      (("wo", "n't", "work"), "0")]
    with pytest.raises(DataFormatError, match=":2: expected 'LABEL text'"):
        read_sst(write(tmp_path, "1 fine\npositive great\n", "bad.txt"))


def test_sst_trees_give_each_distinct_non_neutral_phrase_lowercased_with_its_binary_label(tmp_path):
    trees = ("(3 (2 The) (4 (3 gorgeously) (2 done)))\n"
             "(1 (2 comedy\\/drama) (0 (2 a) (3 gorgeously)))\n"
             "(4 (2 -LRB-) (4 (2 it) (4 (4 rocks) (2 -RRB-))))\n")
    examples = read_sst_trees(write(tmp_path, trees))
    assert [(" ".join(e.tokens), e.label) for e in examples[:5]] == [
        ("gorgeously", "1"), ("gorgeously done", "1"), ("the gorgeously done", "1"),
        ("a gorgeously", "0"), ("comedy \\ / drama a gorgeously", "0")]  # neutral (2) nodes and repeats dropped
    # tokenized as the sentence-level stsa.binary files are read
    (sentence,) = read_sst(write(tmp_path, "1 -lrb- it rocks -rrb-\n", "sentence.txt"))
    assert examples[-1].tokens == sentence.tokens and examples[-1].label == "1"


@pytest.mark.parametrize("trees, line, message", [
    ("(3 (2 a) (2 b))\n(3 (2 a) (2 b)\n", 2, "unbalanced '\\('"),
    ("(3 (2 a)))\n", 1, "unbalanced '\\)'"),
    ("(x (2 a))\n", 1, "expected '\\(LABEL"),
    ("(3 (2 a)) b\n", 1, "word 'b' outside"),
    ("(3 (2 a) (4 ))\n", 1, "a node labelled 4 has no words"),
])
def test_malformed_sst_trees_name_file_and_line(tmp_path, trees, line, message):
    with pytest.raises(DataFormatError, match=f"data.txt:{line}: {message}"):
        read_sst_trees(write(tmp_path, trees))


def test_unknown_format_is_named(tmp_path):
    with pytest.raises(ValueError, match="unknown data format 'tsv'"):
        read_examples(write(tmp_path, "x"), "tsv")


def test_a_lone_surrogate_in_the_bytes_names_the_line(tmp_path):
    path = tmp_path / "s.conll"
    path.write_bytes(b"ok\tO\n\n" + b"bad" + b"\xed\xa0\x80\tO\n")  # UTF-8 bytes of U+D800
    with pytest.raises(DataFormatError, match=r"s\.conll:3: not valid UTF-8"):
        read_conll(path)


def test_a_million_character_line_is_read_in_bounded_time(tmp_path):
    import time

    path = tmp_path / "long.txt"
    path.write_text("1 " + "word " * 200_000 + "\n")  # 1,000,002 characters
    start = time.perf_counter()
    (example,) = read_sst(path)
    assert time.perf_counter() - start < 10
    assert len(example.tokens) <= 100_000 // 5 + 1  # the tokenizer cuts the text at 100,000 characters


def test_raw_and_pretokenized_text_become_sentences(tmp_path):
    from kerasrnn.data.readers import read_text, read_tokens

    wiki = tmp_path / "wiki.txt"
    wiki.write_text(" = Heading = \n It cost 1 @,@ 000 dollars . A well @-@ known \" quote . \" Done\n")
    assert [e.tokens for e in read_tokens(wiki)] == [
        ("It", "cost", "1,000", "dollars", "."), ("A", "well-known", '"', "quote", ".", '"'), ("Done",)]
    prose = tmp_path / "prose.txt"
    prose.write_text("First line\nof a paragraph. Second!\n\nNew paragraph")
    assert [e.tokens for e in read_text(prose, max_length=3)] == [
        ("First", "line", "of"), ("a", "paragraph", "."), ("Second", "!"), ("New", "paragraph")]


UNER = """# newdoc id = d1
# sent_id = d1-0001
# text = I met Ann Lee in Tampa Bay
1\tI\tO\t-\t-
2\tmet\tO\t-\t-
3\tAnn\tB-PER\t-\tann
4\tLee\tI-PER\t-\tann
5\tin\tO\t-\t-
6\tTampa\tB-LOC\t-\tann
7\tBay\tI-LOC\t-\tann

# sent_id = d1-0002
1\t#\tO\t-\t-
2\tIBM\tB-ORG\t-\t-
"""


def test_iob2_reads_universal_ner_files_and_types_can_be_renamed(tmp_path):
    from kerasrnn.data.readers import rename_types

    examples = read_examples(write(tmp_path, UNER, "en.iob2"), "iob2")
    assert [e.tokens for e in examples] == [("I", "met", "Ann", "Lee", "in", "Tampa", "Bay"), ("#", "IBM")]
    assert examples[0].tags == ("O", "O", "B-PER", "I-PER", "O", "B-LOC", "I-LOC")
    renamed = rename_types(examples, {"PER": "person", "ORG": "O"})
    assert renamed[0].tags == ("O", "O", "B-person", "I-person", "O", "B-LOC", "I-LOC")
    assert renamed[1].tags == ("O", "O")
    assert [e.tokens[0] for e in rename_types(examples, {"ORG": ""})] == ["I"]  # the sentence holding ORG dropped


@pytest.mark.parametrize(("content", "line", "message"), [
    ("1\ta\tO\n2\tb\n", 2, "expected INDEX<TAB>TOKEN<TAB>TAG, found 2"),
    ("1\ta\tO\n2\tb\tPER\n", 2, "tag .PER. is not in the BIO scheme"),
])
def test_malformed_iob2_lines_name_file_and_line(tmp_path, content, line, message):
    path = write(tmp_path, content, "x.iob2")
    with pytest.raises(DataFormatError, match=rf"x\.iob2:{line}: {message}"):
        read_examples(path, "iob2")


def test_a_config_reads_another_ner_corpus_with_its_types_renamed(tmp_path):
    from kerasrnn.config import Config
    from kerasrnn.run import read_split

    write(tmp_path, "Ann\tB-person\nsaw\tO\n", "task.conll")
    write(tmp_path, UNER, "extra.iob2")
    config = Config.from_dict({"task": {"type": "tagging", "metric": "f1"}, "data": {
        "format": "conll", "train_file": [str(tmp_path / "task.conll"), f"iob2:{tmp_path / 'extra.iob2'}"],
        "test_file": str(tmp_path / "task.conll"), "rename_types": ["PER=person", "LOC=location", "ORG="]}})
    assert [e.tags for e in read_split(config, "train")] == [
        ("B-person", "O"), ("O", "O", "B-person", "I-person", "O", "B-location", "I-location")]
