import pytest

from kerasrnn.text import PAD_ID, UNK_ID, Vocabulary


def test_build_orders_by_frequency_then_alphabet_and_reserves_pad_and_unk():
    vocab = Vocabulary.build([["b", "a", "c"], ["a", "c"], ["a"]])
    assert vocab.tokens == ["<pad>", "<unk>", "a", "c", "b"]
    assert vocab.encode(["a", "b", "zzz"]) == [2, 4, UNK_ID]
    assert vocab.tokens[PAD_ID] == "<pad>" and vocab.lookup("<pad>") == UNK_ID  # text never reads as padding


def test_min_count_max_size_and_lowercase():
    vocab = Vocabulary.build([["The", "the", "cat", "Cat", "dog"]], min_count=2, lowercase=True)
    assert vocab.tokens == ["<pad>", "<unk>", "cat", "the"]
    assert vocab.lookup("THE") == 3
    assert len(Vocabulary.build([list("aabbbcd")], max_size=4)) == 4


def test_save_load_round_trip_keeps_ids(tmp_path):
    vocab = Vocabulary.build([["ü", "a b", "x\ty", "#tag", "ü"]])
    vocab.save(tmp_path / "vocab.txt")
    loaded = Vocabulary.load(tmp_path / "vocab.txt")
    assert loaded.tokens == vocab.tokens
    assert (tmp_path / "vocab.txt").read_text(encoding="utf-8").splitlines()[:2] == ["<pad>", "<unk>"]


def test_label_vocabulary_rejects_unknown_labels():
    labels = Vocabulary.for_labels(["O", "B-loc", "O", "I-loc"])
    assert labels.tokens == ["B-loc", "I-loc", "O"]
    with pytest.raises(ValueError, match="unknown label 'B-person'"):
        labels.lookup("B-person")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty"),
        ("a\nb\n", "must start with '<pad>'"),
        ("<pad>\n<unk>\na\na\n", "appears twice"),
        ("<pad>\n<unk>\n\nb\n", ":3: empty entry"),
        ("<pad>\r\n<unk>\r\n", "CR line end"),
    ],
)
def test_load_rejects_malformed_vocabulary_files(tmp_path, content, message):
    path = tmp_path / "vocab.txt"
    path.write_bytes(content.encode())
    with pytest.raises(ValueError, match=message):
        Vocabulary.load(path)


def test_decode_rejects_out_of_range_ids():
    vocab = Vocabulary.build([["a"]])
    assert vocab.decode([2, 0]) == ["a", "<pad>"]
    with pytest.raises(ValueError, match="outside the vocabulary"):
        vocab.decode([3])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        vocab.decode([-1])


def test_a_word_that_reads_like_the_pad_token_is_unknown_never_padding():
    vocab = Vocabulary.build([["<pad>", "a", "<PAD>"]], min_count=1, lowercase=True)
    assert vocab.tokens == ["<pad>", "<unk>", "a"]
    assert vocab.encode(["<pad>", "<PAD>", "a", "<unk>"]) == [1, 1, 2, 1]
