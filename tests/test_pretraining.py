"""BiLM pre-training, transfer into a task model, and the Embedder, end to end on tiny generated text."""

import json

import numpy as np
import pytest

import kerasrnn
from kerasrnn.config import Config
from tests.test_case import assert_all_close
from tests.test_training import tagging_file
from training import train as train_cli

WORDS = ["the", "a", "cat", "dog", "bird", "runs", "sees", "eats", "river", "bank", "money", "."]


def text_file(path, n, seed):
    rng = np.random.default_rng(seed)
    lines = [" ".join([rng.choice(WORDS[:2]), rng.choice(WORDS[2:5]), rng.choice(WORDS[5:8]), rng.choice(WORDS[:2]),
                       rng.choice(WORDS[8:11]), "."]) for _ in range(n)]
    path.write_text("[ A title line ]\n" + "\n".join(lines) + "\n")
    return path


def lm_config(tmp, train_files, test):
    path = tmp / "lm.toml"
    files = ", ".join(f'"{f}"' for f in train_files)
    path.write_text(
        '[task]\nname = "tiny_bilm"\ntype = "language_model"\nmetric = "perplexity"\n'
        f'[data]\nformat = "tokens"\ntrain_file = [{files}]\ntest_file = "{test}"\nmin_count = 1\n'
        "dev_fraction = 0.1\n"
        "[model]\nunits = 8\nembedding_dim = 8\nchar_filters = 8\nchar_embedding_dim = 4\nnum_sampled = 64\n"
        "dropout = 0.0\nnum_layers = 2\nchar_highway_layers = 1\n"
        "[training]\nepochs = 15\nbatch_size = 16\nlearning_rate = 0.05\nword_dropout = 0.0\n"
    )
    return path


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lm")
    train = [text_file(tmp / "a.txt", 120, 0), tagging_file(tmp / "b.conllu", 40, 1)]
    test = text_file(tmp / "test.txt", 30, 2)
    out = tmp / "out"
    config = lm_config(tmp, [train[0], f"conllu:{train[1]}"], test)
    assert train_cli.main(["--config", str(config), "--output-dir", str(out)]) == 0
    return out


def test_pretraining_writes_a_run_with_a_test_perplexity(lm_run):
    for name in ["model.keras", "vocab.txt", "chars.txt", "config.toml", "metrics.json", "history.png"]:
        assert (lm_run / name).is_file(), name
    metrics = json.loads((lm_run / "metrics.json").read_text())
    assert metrics["metric"] == "perplexity"
    vocab_size = metrics["vocabulary_size"]
    # the text follows a grammar: far better than a uniform guess over the vocabulary
    assert 1.0 < metrics["test"]["perplexity"] < vocab_size / 3
    fw, bw = metrics["test"]["forward_perplexity"], metrics["test"]["backward_perplexity"]
    assert min(fw, bw) <= metrics["test"]["perplexity"] <= max(fw, bw)
    # the .conllu entry was read with its own format: its words are in the vocabulary
    assert "tree" in (lm_run / "vocab.txt").read_text().split("\n")
    assert isinstance(Config.load(lm_run / "config.toml").data.train_file, list)


def task_config(tmp, lm_run, files, **model):
    settings = {"units": 8, "embedding_dim": 8, "char_filters": 8, "char_embedding_dim": 4, "output_dim": 8,
                "char_highway_layers": 1, "init_from": f'"{lm_run}"', **model}
    path = tmp / "task.toml"
    path.write_text(
        '[task]\nname = "tiny_pos"\ntype = "tagging"\nmetric = "accuracy"\n'
        f'[data]\nformat = "conllu"\ntrain_file = "{files[0]}"\ndev_file = "{files[1]}"\ntest_file = "{files[2]}"\n'
        "min_count = 1\n[model]\n" + "".join(f"{k} = {v}\n" for k, v in settings.items())
        + "[training]\nepochs = 2\nbatch_size = 8\nlearning_rate = 0.01\n"
    )
    return path


@pytest.fixture(scope="module")
def task_files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("task")
    return tmp, [tagging_file(tmp / f"{s}.conllu", n, 10 + i) for i, (s, n) in
                 enumerate([("train", 60), ("dev", 10), ("test", 10)])]


@pytest.fixture(scope="module")
def frozen_task_run(lm_run, task_files):
    """A tagger trained from the BiLM with its encoder frozen."""
    tmp, files = task_files
    out = tmp / "frozen"
    config = task_config(tmp, lm_run, files, freeze_encoder="true")
    assert train_cli.main(["--config", str(config), "--output-dir", str(out)]) == 0
    return out


def test_init_from_starts_the_encoder_from_the_bilm(lm_run, frozen_task_run):
    import keras

    out = frozen_task_run
    lm = keras.saving.load_model(lm_run / "model.keras", safe_mode=True)
    tagger = keras.saving.load_model(out / "model.keras", safe_mode=True)
    pre_vocab = (lm_run / "vocab.txt").read_text().split("\n")[:-1]
    task_vocab = (out / "vocab.txt").read_text().split("\n")[:-1]
    assert task_vocab[: len(pre_vocab)] == pre_vocab  # pre-trained ids kept, task words appended
    table = tagger.encoder.get_layer("token_embedding").get_weights()[0]
    assert_all_close(table[: len(pre_vocab)], lm.token_embedding.get_weights()[0], atol=0)
    bi = tagger.encoder.get_layer("bilstm_0")
    for mine, theirs in zip(bi.forward_layer.get_weights() + bi.backward_layer.get_weights(),
                            lm.forward_layers[0].get_weights() + lm.backward_layers[0].get_weights(), strict=True):
        assert_all_close(mine, theirs, atol=0)  # frozen: still the pre-trained weights after training
    cnn = tagger.encoder.get_layer("char_cnn")
    assert_all_close(cnn.conv.get_weights()[0], lm.char_cnn.conv.get_weights()[0], atol=0)
    assert_all_close(cnn.highways[0].get_weights()[0], lm.char_cnn.highways[0].get_weights()[0], atol=0)


def test_init_from_names_every_mismatched_setting(lm_run, task_files, capsys):
    tmp, files = task_files
    config = task_config(tmp, lm_run, files, units=12, char_filters=6, char_highway_layers=0)
    assert train_cli.main(["--config", str(config), "--output-dir", str(tmp / "bad")]) == 2
    err = capsys.readouterr().err
    assert "model.units: 12 here, 8 there" in err and "model.char_filters: 6 here, 8 there" in err
    assert "model.char_highway_layers: 0 here, 1 there" in err
    assert train_cli.main(["--config", str(config), "--output-dir", str(tmp / "bad"),
                           "--init-from", str(tmp / "nowhere")]) == 2
    assert "holds no model.keras; train it first" in capsys.readouterr().err


def test_elmo_run_reads_the_frozen_bilm_through_a_trained_scalar_mix(lm_run, task_files, capsys):
    import keras

    tmp, files = task_files
    out = tmp / "elmo"
    # encoder sizes unlike the language model's: nothing is copied, so they need not agree
    config = task_config(tmp, lm_run, files, elmo="true", units=6, embedding_dim=5)
    assert train_cli.main(["--config", str(config), "--output-dir", str(out)]) == 0
    assert "ELMo features from" in capsys.readouterr().out
    lm = keras.saving.load_model(lm_run / "model.keras", safe_mode=True)
    tagger = keras.saving.load_model(out / "model.keras", safe_mode=True)
    elmo = tagger.encoder.elmo
    for mine, theirs in zip(elmo.bilm.get_weights(), lm.get_weights(), strict=True):
        assert_all_close(mine, theirs, atol=0)  # the language model never trained
    s, gamma = elmo.mix.get_weights()
    assert np.abs(s).max() > 0 and gamma != 1.0  # the mix did
    # the language model run's compiled state stays behind: the task's own loss is what fit logged
    history = json.loads((out / "checkpoints" / "state.json").read_text())["history"]["loss"]
    assert all(loss > 0.01 for loss in history) and not elmo.bilm.compiled
    assert len(tagger.trainable_weights) == len(tagger.encoder.trainable_weights) + 2  # + the head's
    pre_vocab = (lm_run / "vocab.txt").read_text().split("\n")[:-1]
    assert (out / "vocab.txt").read_text().split("\n")[: len(pre_vocab)] == pre_vocab
    # an ELMo run needs a language model run
    bad = task_config(tmp, out, files, elmo="true")
    assert train_cli.main(["--config", str(bad), "--output-dir", str(tmp / "bad_elmo")]) == 2
    assert "ELMo features come from a language model run" in capsys.readouterr().err


@pytest.fixture(scope="module")
def embedder(lm_run):
    return kerasrnn.Embedder.load(lm_run)


def test_embed_gives_one_row_per_token(embedder):
    sentences = [["the", "cat", "sees", "a", "river", "bank", "."], ["bank"], [], "A dog runs to the bank."]
    vectors = embedder.embed(sentences)
    assert [v.shape for v in vectors] == [(7, 16), (1, 16), (0, 16), (7, 16)]
    assert all(v.dtype == np.float32 for v in vectors)
    assert embedder.layer_dims == [16, 16, 16]
    assert embedder.sentence_vectors(sentences).shape == (4, 16)
    assert_all_close(embedder.sentence_vectors(sentences)[0], vectors[0].mean(0), atol=1e-6)


def test_vectors_do_not_depend_on_batch_or_padding(embedder):
    alone = embedder.embed([["the", "cat", "eats"]], layer=1)[0]
    batch = embedder.embed([["a"] * 30, ["the", "cat", "eats"], ["dog"]], layer=1)[1]
    assert_all_close(batch, alone, atol=1e-5)


def test_static_layer_ignores_context_and_recurrent_layer_does_not(embedder):
    a = [["the", "river", "bank", "."], ["money", "sees", "a", "bank"]]
    static = embedder.embed(a, layer=0)
    assert_all_close(static[0][2], static[1][3], atol=0)
    contextual = embedder.embed(a, layer=1)
    assert np.abs(contextual[0][2] - contextual[1][3]).max() > 1e-3
    top = embedder.embed(a, layer=2)
    mean = embedder.embed(a, layer="mean")
    assert_all_close(mean[0], (static[0] + contextual[0] + top[0]) / 3, atol=1e-6)
    mixed = embedder.embed(a, layer=[0.0, 0.0, 50.0])  # softmax weights ~ (0, 0, 1)
    assert_all_close(mixed[0], top[0], atol=1e-5)


def test_embed_rejects_bad_arguments(embedder):
    with pytest.raises(ValueError, match=r"layer must be in \[0, 2\]"):
        embedder.embed([["a"]], layer=3)
    with pytest.raises(ValueError, match="'mean', or 3 mixing weights"):
        embedder.embed([["a"]], layer="max")
    with pytest.raises(TypeError, match="not a single sentence"):
        embedder.embed("the cat")
    with pytest.raises(TypeError, match="sentence 1: expected a string or a list of token strings"):
        embedder.embed(["the cat", [1, 2]])


def test_embedder_reads_a_task_run_encoder(frozen_task_run):
    embedder = kerasrnn.Embedder.load(frozen_task_run)
    vectors = embedder.embed([["the", "cat", "runs"]], layer=1)
    assert vectors[0].shape == (3, 16)
    assert_all_close(embedder.embed([["the", "cat"]], layer="mean")[0],
                     (embedder.embed([["the", "cat"]], layer=0)[0] + embedder.embed([["the", "cat"]], layer=1)[0]) / 2,
                     atol=1e-6)


@pytest.fixture(scope="module")
def lm_export(lm_run):
    from kerasrnn.export.exporter import ExportSettings, export_run

    settings = ExportSettings(calibration_sentences=60, calibration_length=8, latency_runs=3, parity_sentences=20,
                              int8_fixed_length=12)
    return export_run(lm_run, lm_run / "export", settings), lm_run / "export"


def test_embedder_export_matches_the_keras_bilm_and_is_timed(lm_run, lm_export):
    from deploy import benchmark as benchmark_cli

    report, tmp_path = lm_export
    assert report["kind"] == "embedder"
    artifacts = report["artifacts"]
    for name in ("model_fp32.tflite", "model_fp32.onnx"):
        assert artifacts[name]["parity"]["max_abs"] < 1e-4, name
    # The forward direction as a next-token stream: token by token and in chunks equal to the full rows.
    assert set(report["streaming"]) == {"model_stream_fp32.tflite", "model_stream_int8.tflite"}
    assert "not made for a language model" in report["streaming"]["model_stream_int8.tflite"]["error"]
    for key in ("token_by_token_max_abs", "chunks_of_5_max_abs"):
        assert report["streaming"]["model_stream_fp32.tflite"]["parity"][key] < 1e-5
    meta = json.loads((tmp_path / "metadata.json").read_text())
    assert meta["artifacts"]["model_stream_fp32.tflite"]["outputs"][0] == "next_token_log_probabilities"
    assert set(meta["artifacts"]["model_int8_staged.tflite"]["signatures"]) == {"stage_0", "cell_0", "stage_1",
                                                                                 "cell_1", "stage_2"}
    for name, r in artifacts.items():
        assert "error" not in r, (name, r.get("error"))
        assert r["padding_max_diff"] < 1e-5 if "int8" not in name else r["padding_max_diff"] < 0.05, name
        assert r["parity"]["mean_cos"] > (0.9999 if "fp32" in name else 0.9), name
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in artifacts["model_fp32.tflite"]["ops"]
    meta = json.loads((tmp_path / "metadata.json").read_text())
    assert meta["output"]["name"] == "vectors" and meta["output"]["shape"][-1] == 16 and "labels" not in meta
    assert "parity max_abs" in (tmp_path / "report.md").read_text()
    # deploy.benchmark times the same files beside the Keras BiLM's top layer (and, with --compare, another run's
    # files in the same rounds: here the run itself, under its folder's name)
    assert benchmark_cli.main(["--run-dir", str(lm_run), "--seq-lens", "8,16", "--threads", "1", "--runs", "3",
                               "--compare", str(lm_run)]) == 0
    bench = json.loads((tmp_path / "bench.json").read_text())["results"]["1"]
    streams = {name for name, r in report["streaming"].items() if "error" not in r}
    own = {"keras", *artifacts, *streams}
    assert set(bench) == own | {f"{lm_run.name}/{name}" for name in own}
    assert set(bench[f"{lm_run.name}/model_int8_len12.tflite"]) == {"8"}
    assert set(bench["model_stream_fp32.tflite"]) == {"step", "8", "16"}
    assert set(bench["model_int8_len12.tflite"]) == {"8"}  # a 12-token file cannot take 16 tokens
    assert set(bench["keras"]) == set(bench["model_fp32.onnx"]) == {"8", "16"}
    assert all(t["p50"] > 0 for by_len in bench.values() for t in by_len.values())


def test_evaluate_reports_perplexity_of_a_language_model_run_and_of_its_stream(lm_run, lm_export, tmp_path):
    from training import evaluate as evaluate_cli

    text = text_file(tmp_path / "held_out.txt", 20, 5)
    assert evaluate_cli.main(["--run-dir", str(lm_run), "--file", str(text)]) == 0
    keras_eval = json.loads((lm_run / "eval.json").read_text())
    assert set(keras_eval) == {"perplexity", "forward_perplexity", "backward_perplexity"}
    assert 1.0 < keras_eval["forward_perplexity"] < 12
    export_dir = lm_export[1]
    for name, bound in (("model_stream_fp32.tflite", 1e-4),):
        assert evaluate_cli.main(["--run-dir", str(lm_run), "--file", str(text), "--artifact",
                                  str(export_dir / name)]) == 0
        stream_eval = json.loads((lm_run / "eval.json").read_text())
        ratio = stream_eval["forward_perplexity"] / keras_eval["forward_perplexity"]
        assert abs(ratio - 1) < bound, (name, ratio)


def test_embed_picture_script_writes_png_and_json(lm_run, tmp_path, capsys):
    from deploy import embed

    assert embed.main(["--run-dir", str(lm_run), "--words", "bank,cat", "--per-word", "12",
                       "--output-dir", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "contexts.json").read_text())
    assert summary["layer"] == 2 and summary["words"]["bank"]["sentences"] == 12
    assert summary["words"]["bank"]["static_vectors_distinct"] == 1
    assert (tmp_path / "contexts.png").stat().st_size > 10_000
    assert "nearest contextual neighbour" in capsys.readouterr().out


def test_sense_hints_and_baselines():
    from kerasrnn.contexts import majority_share, nearest_sense_agreement, sense_hint

    assert sense_hint("bank", ["the", "river", "bank"]) == "river"
    assert sense_hint("bank", ["money", "in", "the", "bank"]) == "money"
    assert sense_hint("bank", ["river", "money", "bank"]) == "no cue"  # a tie is no hint
    hints = ["a", "a", "b", "no cue"]
    assert majority_share(hints) == pytest.approx(2 / 3)
    vectors = np.array([[1.0, 0], [0.9, 0.1], [0, 1.0], [5, 5]])
    assert nearest_sense_agreement(vectors, hints) == pytest.approx(2 / 3)  # b's nearest is an a
