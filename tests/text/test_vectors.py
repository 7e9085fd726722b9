"""Static pre-trained vectors: read from the installed GloVe wheel, the rows of a vocabulary, the vocabulary rules,
and a run that starts (and, frozen, keeps) its token embedding from them."""

import json
from pathlib import Path

import numpy as np
import pytest

import kerasrnn  # noqa: F401
from kerasrnn.config import Config
from kerasrnn.preprocessor import Preprocessor
from kerasrnn.text.vectors import load_static_vectors
from kerasrnn.text.vocabulary import Vocabulary

GLOVE = "glove-6b-50d"


@pytest.fixture(scope="module")
def glove():
    return load_static_vectors(GLOVE)


def test_glove_is_read_from_its_package_with_its_published_values(glove):
    assert len(glove.words) == 400_000 and glove.dim == 50
    assert glove.words[:4] == ("the", ",", ".", "of")  # most frequent first
    # the first numbers of "the" in glove.6B.50d.txt
    np.testing.assert_allclose(glove.matrix[0, :3], [0.418, 0.24968, -0.41242], rtol=0, atol=1e-6)


def test_the_table_holds_the_vectors_of_found_words_by_their_lowercase_form(glove):
    tokens = ["<pad>", "<unk>", "bank", "River", "qqzzxxnotaword"]
    table, found = glove.table(tokens, seed=3)
    assert table.shape == (5, 50) and table.dtype == np.float32 and found == 2
    np.testing.assert_array_equal(table[0], 0.0)
    np.testing.assert_array_equal(table[2], glove.matrix[glove.index["bank"]])
    np.testing.assert_array_equal(table[3], glove.matrix[glove.index["river"]])
    # unknown words start on the found vectors' scale, seeded
    scale = np.std(glove.matrix[[glove.index["bank"], glove.index["river"]]])
    assert 0.2 * scale < np.std(table[[1, 4]]) < 3 * scale
    np.testing.assert_array_equal(glove.table(tokens, seed=3)[0], table)
    assert not np.array_equal(glove.table(tokens, seed=4)[0][4], table[4])


def test_unknown_source_and_missing_package_errors_say_what_to_do():
    with pytest.raises(ValueError, match="unknown; known: glove-6b-50d"):
        load_static_vectors("word2vec")


def test_vocabulary_keep_lets_rare_known_words_in_and_with_entries_keeps_ids(glove):
    words = [["the", "bank", "bank", "zzqqxx"], ["the", "river", "yyqqxx"]]
    plain = Vocabulary.build(words, min_count=2, lowercase=True)
    assert plain.tokens == ["<pad>", "<unk>", "bank", "the"]
    kept = Vocabulary.build(words, min_count=2, lowercase=True, keep=lambda t: t in glove.index)
    assert kept.tokens == ["<pad>", "<unk>", "bank", "the", "river"]  # river: once, but GloVe knows it
    more = kept.with_entries(["The", ",", "river", "of", "<unk>"])
    assert more.tokens == kept.tokens + [",", "of"]  # existing ids unchanged, duplicates and specials skipped


def _config(tmp_path, **model):
    raw = {"task": {"name": "t", "type": "classification"},
           "data": {"format": "sst", "train_file": "x", "test_file": "x", "min_count": 2},
           "model": {"embedding_dim": 50, "static_vectors": GLOVE, **model}}
    return Config.from_dict(raw)


def test_preprocessor_applies_the_vocabulary_rules_of_static_vectors(tmp_path, glove):
    from kerasrnn.data.readers import Example

    examples = [Example(tokens=["bank", "bank", "zzqqxx", "river"], label="a"),
                Example(tokens=["qqyyxx"], label="b")]
    pre = Preprocessor.build(_config(tmp_path, static_vectors_words=10), examples)
    assert pre.vocab.tokens[:4] == ["<pad>", "<unk>", "bank", "river"]
    assert pre.vocab.tokens[4:] == [w for w in glove.words[:10] if w not in ("bank", "river")]
    assert "zzqqxx" not in pre.vocab and "qqyyxx" not in pre.vocab


@pytest.mark.parametrize("model, match", [
    ({"static_vectors_mode": "both"}, "static_vectors_mode must be 'fine_tune' or 'frozen'"),
    ({"static_vectors_words": -1}, "static_vectors_words must be at least 0"),
])
def test_bad_static_vector_settings_are_rejected(tmp_path, model, match):
    with pytest.raises(ValueError, match=match):
        _config(tmp_path, **model)


def _sst_file(path: Path, n: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    good, bad = ["good", "great", "fine", "nice"], ["bad", "awful", "poor", "sad"]
    lines = []
    for _ in range(n):
        label = int(rng.integers(2))
        words = list(rng.choice(good if label else bad, 2)) + ["movie", "the"]
        lines.append(f"{label} {' '.join(rng.permutation(words))}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_run_starts_from_the_vectors_and_frozen_keeps_them(tmp_path, glove):
    from tests.test_training import tiny_config
    from training import train as train_cli

    files = [_sst_file(tmp_path / f"{s}.txt", n, i) for i, (s, n) in enumerate([("train", 64), ("dev", 16),
                                                                                 ("test", 16)])]
    config = tiny_config(tmp_path / "c.toml", 'name = "tiny_sst"\ntype = "classification"', "sst", files,
                         data="use_chars = false",
                         model='units = 8\nembedding_dim = 50\noutput_dim = 8\nstatic_vectors = "glove-6b-50d"\n'
                         'static_vectors_mode = "frozen"\nstatic_vectors_words = 100',
                         training="epochs = 2\nbatch_size = 8\nlearning_rate = 0.01")
    out = tmp_path / "out"
    assert train_cli.main(["--config", str(config), "--output-dir", str(out)]) == 0
    from kerasrnn.run import load_run

    run = load_run(out)
    table = run.model.encoder.token_embedding.get_weights()[0]
    vocab = run.vocab.tokens
    for word in ("good", "awful", "movie", "the", ","):
        np.testing.assert_array_equal(table[vocab.index(word)], glove.matrix[glove.index[word]])
    assert len(vocab) == 2 + len(set(glove.words[:100]) | {"good", "great", "fine", "nice", "bad", "awful", "poor",
                                                              "sad", "movie"})
    assert json.loads((out / "metrics.json").read_text())["test"]["accuracy"] > 0.5
    # frozen is part of the saved architecture: the loaded model and its optimizer agree
    assert run.model.encoder.token_embedding.trainable is False
    assert run.model.encoder.get_config()["token_embedding_trainable"] is False


def test_a_language_model_keeps_its_own_vocabulary_with_vectors(glove):
    from kerasrnn.data.readers import Example

    raw = {"task": {"name": "lm", "type": "language_model", "metric": "perplexity"},
           "data": {"format": "tokens", "train_file": "x", "test_file": "x", "min_count": 2},
           "model": {"embedding_dim": 50, "static_vectors": GLOVE}}
    examples = [Example(tokens=("bank", "bank", "river"))]
    assert Preprocessor.build(Config.from_dict(raw), examples).vocab.tokens == ["<pad>", "<unk>", "bank"]
    raw["model"]["static_vectors_words"] = 10
    with pytest.raises(ValueError, match="static_vectors_words must be 0 for a language model"):
        Config.from_dict(raw)


def test_a_language_model_starts_its_input_embedding_from_the_vectors(tmp_path, glove):
    from kerasrnn.run import load_run
    from tests.test_pretraining import lm_config, text_file
    from training import train as train_cli

    config = lm_config(tmp_path, [text_file(tmp_path / "a.txt", 40, 0)], text_file(tmp_path / "t.txt", 10, 1))
    text = config.read_text().replace("embedding_dim = 8\n", 'embedding_dim = 50\nstatic_vectors = "glove-6b-50d"\n'
                                      'static_vectors_mode = "frozen"\n').replace("epochs = 15", "epochs = 1")
    config.write_text(text)
    out = tmp_path / "lm"
    assert train_cli.main(["--config", str(config), "--output-dir", str(out)]) == 0
    run = load_run(out)
    table = run.model.token_embedding.get_weights()[0]
    for word in ("river", "bank", "money"):
        np.testing.assert_array_equal(table[run.vocab.lookup(word)], glove.matrix[glove.index[word]])
    assert run.model.get_config()["token_embedding_trainable"] is False
    # a task started from this BiLM keeps its rows and takes the vectors' rows for the words it appends
    from tests.test_training import tagging_file, tiny_config

    files = [tagging_file(tmp_path / f"{s}.conllu", 30, i) for i, s in enumerate(("train", "dev", "test"))]
    lm_model = Config.load(out / "config.toml").model
    task = tiny_config(tmp_path / "task.toml", 'name = "tiny_pos"\ntype = "tagging"', "conllu", files,
                       data="min_count = 1",
                       model=f'units = {lm_model.units}\nembedding_dim = 50\nchar_filters = {lm_model.char_filters}\n'
                       f'char_embedding_dim = {lm_model.char_embedding_dim}\n'
                       f'char_highway_layers = {lm_model.char_highway_layers}\ninit_from = "{out}"\n'
                       'static_vectors = "glove-6b-50d"\nstatic_vectors_words = 20\nfreeze_encoder = true',
                       training="epochs = 1\nbatch_size = 8")
    assert train_cli.main(["--config", str(task), "--output-dir", str(tmp_path / "task")]) == 0
    task_run = load_run(tmp_path / "task")
    rows = task_run.model.encoder.token_embedding.get_weights()[0]
    n = len(run.vocab)
    assert task_run.vocab.tokens[:n] == run.vocab.tokens and len(task_run.vocab) > n
    np.testing.assert_array_equal(rows[:n], table)  # the BiLM's rows (frozen here by freeze_encoder)
    for word in ("tree", ",", "of"):  # words the task appends (from its data, from GloVe) start from the vectors
        assert task_run.vocab.lookup(word) >= n
        np.testing.assert_array_equal(rows[task_run.vocab.lookup(word)], glove.matrix[glove.index[word]])
