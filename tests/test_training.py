"""End to end on tiny generated files: the train and evaluate entry points, the run directory, the metrics."""

import json

import keras
import numpy as np
import pytest

import kerasrnn  # noqa: F401  (registers the model classes before load_model)
from kerasrnn.config import Config
from training import evaluate as evaluate_cli
from training import train as train_cli

WORDS = {"NOUN": ["cat", "dog", "bird", "tree"], "VERB": ["runs", "sees", "eats"], "DET": ["the", "a"]}


def tagging_file(path, n, seed):
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(n):
        for tag in ["DET", "NOUN", "VERB", "DET", "NOUN"][: rng.integers(3, 6)]:
            word = rng.choice(WORDS[tag])
            lines.append(f"1\t{word}\t{word}\t{tag}\t_\t_\t0\tdep\t_\t_")
        lines.append("")
    path.write_text("\n".join(lines) + "\n")
    return path


def write_config(tmp_path, train, dev, test, **training):
    settings = {"epochs": 3, "batch_size": 8, "learning_rate": 0.01, "patience": 5, **training}
    path = tmp_path / "tiny.toml"
    path.write_text(
        '[task]\nname = "tiny_pos"\ntype = "tagging"\nmetric = "accuracy"\n'
        f'[data]\nformat = "conllu"\ntrain_file = "{train}"\ndev_file = "{dev}"\ntest_file = "{test}"\nmin_count = 1\n'
        "[model]\nunits = 16\nembedding_dim = 16\noutput_dim = 16\nchar_filters = 8\nchar_embedding_dim = 8\n"
        "[training]\n" + "".join(f"{k} = {v}\n" for k, v in settings.items())
    )
    return path


def tiny_config(path, task: str, data_format: str, files, data: str = "", model: str = "", training: str = ""):
    """A config file of a tiny run: `task` is the [task] table's lines, `files` (train, dev, test) in `data_format`;
    `data`, `model` and `training` are further TOML lines of those tables."""
    train, dev, test = files
    path.write_text(f"[task]\n{task}\n[data]\nformat = \"{data_format}\"\ntrain_file = \"{train}\"\n"
                    f"dev_file = \"{dev}\"\ntest_file = \"{test}\"\n{data}\n[model]\n{model}\n[training]\n{training}\n")
    return path


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    files = [tagging_file(tmp / f"{s}.conllu", n, i) for i, (s, n) in enumerate([("train", 80), ("dev", 20),
                                                                                   ("test", 20)])]
    config = write_config(tmp, *files)
    out = tmp / "out"
    assert train_cli.main(["--config", str(config), "--output-dir", str(out), "--seed", "7"]) == 0
    return out, files


def test_run_directory_holds_what_the_contract_lists(tiny_run):
    out, _ = tiny_run
    for name in ["model.keras", "vocab.txt", "chars.txt", "labels.txt", "config.toml", "metrics.json", "history.png"]:
        assert (out / name).is_file(), name
    assert any((out / "logs").rglob("*tfevents*"))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "tiny_pos" and metrics["metric"] == "accuracy"
    # the tags are a function of the words: three epochs learn them
    assert metrics["test"]["accuracy"] > 0.9
    assert metrics["train_tokens_per_second"] > 0
    assert Config.load(out / "config.toml").training.seed == 7
    assert isinstance(keras.saving.load_model(out / "model.keras", safe_mode=True), kerasrnn.SequenceTagger)


def test_evaluate_reproduces_the_test_metric(tiny_run, capsys):
    out, (_, _, test) = tiny_run
    assert evaluate_cli.main(["--run-dir", str(out), "--file", str(test)]) == 0
    result = json.loads((out / "eval.json").read_text())
    expected = json.loads((out / "metrics.json").read_text())["test"]
    assert result["accuracy"] == pytest.approx(expected["accuracy"], abs=1e-9)
    assert '"accuracy"' in capsys.readouterr().out


def test_evaluate_rejects_a_tag_the_model_never_saw(tiny_run, tmp_path, capsys):
    out, _ = tiny_run
    bad = tmp_path / "bad.conllu"
    bad.write_text("1\tcat\tcat\tPROPN\t_\t_\t0\tdep\t_\t_\n\n")
    assert evaluate_cli.main(["--run-dir", str(out), "--file", str(bad)]) == 2
    assert "unknown label 'PROPN'" in capsys.readouterr().err


def test_train_reports_a_malformed_file_with_its_line(tmp_path, capsys):
    train = tmp_path / "train.conllu"
    train.write_text("1\tcat\tcat\tNOUN\t_\t_\t0\tdep\t_\t_\n2\tbroken line\n\n")
    config = write_config(tmp_path, train, train, train)
    assert train_cli.main(["--config", str(config), "--output-dir", str(tmp_path / "o")]) == 2
    assert f"{train}:2: expected 10 tab-separated columns" in capsys.readouterr().err


def test_dev_train_fraction_moves_part_of_dev_into_training(tmp_path):
    from kerasrnn.run import split_off_dev

    examples = list(range(100))
    rest, moved = split_off_dev(examples, 0.7, seed=1)
    assert len(moved) == 70 and len(rest) == 30
    assert sorted(rest + moved) == examples
    assert split_off_dev(examples, 0.7, seed=1) == (rest, moved)
