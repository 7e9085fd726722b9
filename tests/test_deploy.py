"""End to end on a tiny trained run: deploy.export (report, metadata, bounds), deploy.predict, evaluate --artifact."""

import json
import re
import shutil

import numpy as np
import pytest

from deploy import benchmark as benchmark_cli
from deploy import export as export_cli
from deploy import predict as predict_cli
from tests.clients import node
from tests.test_training import tagging_file, tiny_config, write_config
from training import evaluate as evaluate_cli
from training import train as train_cli


@pytest.fixture(scope="module")
def exported_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("deploy")
    files = [tagging_file(tmp / f"{s}.conllu", n, i) for i, (s, n) in enumerate([("train", 80), ("dev", 20),
                                                                                   ("test", 30)])]
    out = tmp / "run"
    assert train_cli.main(["--config", str(write_config(tmp, *files)), "--output-dir", str(out)]) == 0
    assert export_cli.main(["--run-dir", str(out), "--latency-runs", "5", "--calibration-sentences", "60"]) == 0
    return out, files


def test_report_holds_every_artifact_within_the_bounds(exported_run):
    out, _ = exported_run
    report = json.loads((out / "export" / "report.json").read_text())
    artifacts = report["artifacts"]
    assert sorted(artifacts) == sorted(["model_fp32.tflite", "model_dynamic.tflite", "model_int8.tflite",
                                        "model_fp32.onnx", "model_int8.onnx", "model_int8_len32.tflite",
                                        "model_int8_staged.tflite"])
    for name, r in artifacts.items():
        assert (out / "export" / name).stat().st_size == r["bytes"]
        assert abs(r["test_metric"] - r["keras_test_metric"]) <= 0.05, name
        assert r["latency_ms"]["p50"] > 0
    for name in ("model_fp32.tflite", "model_fp32.onnx"):
        assert artifacts[name]["parity"]["max_abs"] <= 1e-4
        assert artifacts[name]["padding_max_diff"] <= 1e-5
        assert artifacts[name]["test_metric"] == pytest.approx(artifacts[name]["keras_test_metric"], abs=5e-4)
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in artifacts["model_int8.tflite"]["ops"]
    unrolled = artifacts["model_int8_len32.tflite"]
    assert unrolled["fixed_length"] == 32 and unrolled["rows_scored"] == "30 of 30"
    assert "WHILE" not in unrolled["ops"] and "UNIDIRECTIONAL_SEQUENCE_LSTM" not in unrolled["ops"]
    assert "| model_int8.tflite |" in (out / "export" / "report.md").read_text()
    staged = artifacts["model_int8_staged.tflite"]
    assert "fixed_length" not in staged and staged["padding_max_diff"] <= 0.05
    assert not {"WHILE", "UNIDIRECTIONAL_SEQUENCE_LSTM"} & set(staged["ops"])
    assert "streaming" not in report  # a bidirectional tagger cannot stream


def test_metadata_describes_the_inputs_an_app_must_build(exported_run):
    out, _ = exported_run
    meta = json.loads((out / "export" / "metadata.json").read_text())
    assert meta["pad_id"] == 0 and meta["unknown_id"] == 1
    assert meta["inputs"]["token_ids"]["dtype"] == "int32"
    assert meta["inputs"]["char_ids"]["shape"][-1] == meta["max_word_chars"]
    vocab = (out / "export" / meta["vocabulary_file"]).read_text().splitlines()
    assert len(vocab) == meta["vocabulary_size"] and vocab[:2] == ["<pad>", "<unk>"]
    assert meta["labels"] == (out / "export" / "labels.txt").read_text().splitlines()
    # The inputs' id ranges and padding, read as a runner reads them, are the preprocessor's.
    from kerasrnn.runtime.runners import specs_from_metadata, task_specs

    chars = (out / "export" / meta["char_vocabulary_file"]).read_text().splitlines()
    assert specs_from_metadata(meta) == task_specs(len(vocab), len(chars), meta["max_word_chars"])
    staged = meta["artifacts"]["model_int8_staged.tflite"]
    assert staged["signatures"]["cell_0"]["inputs"] == ["x_0", "h_0", "c_0", "x_1", "h_1", "c_1"]
    assert staged["signatures"]["stage_1"]["outputs"] == ["probabilities"]


@pytest.mark.parametrize("name", ["model_int8.tflite", "model_fp32.onnx"])
def test_evaluate_an_artifact_matches_its_report(exported_run, name):
    out, (_, _, test) = exported_run
    assert evaluate_cli.main(["--run-dir", str(out), "--file", str(test), "--artifact",
                              str(out / "export" / name)]) == 0
    report = json.loads((out / "export" / "report.json").read_text())
    result = json.loads((out / "eval.json").read_text())
    assert result["accuracy"] == pytest.approx(report["artifacts"][name]["test_metric"], abs=1e-9)


@pytest.mark.parametrize("name", ["export/model_int8.tflite", "export/model_int8.onnx", "model.keras"])
def test_predict_tags_raw_text(exported_run, capsys, name):
    out, _ = exported_run
    assert predict_cli.main(["--model", str(out / name), "--text", "the cat sees a dog", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)[0]
    assert result["tokens"] == ["the", "cat", "sees", "a", "dog"]
    assert result["tags"] == ["DET", "NOUN", "VERB", "DET", "NOUN"]


def test_predict_reads_a_file_or_stdin_and_writes_json_lines(exported_run, capsys, tmp_path, monkeypatch):
    import io

    out, _ = exported_run
    texts = tmp_path / "texts.txt"
    texts.write_text("the cat sees a dog\n\na dog\n", encoding="utf-8")
    assert predict_cli.main(["--model", str(out / "export" / "model_fp32.onnx"), "--file", str(texts)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["tokens"] for r in lines] == [["the", "cat", "sees", "a", "dog"], ["a", "dog"]]  # blank line skipped
    assert lines[1]["tags"] == ["DET", "NOUN"] and len(lines[1]["probabilities"]) == 2
    monkeypatch.setattr("sys.stdin", io.StringIO("a dog\n"))
    assert predict_cli.main(["--model", str(out / "export" / "model_fp32.onnx")]) == 0
    assert json.loads(capsys.readouterr().out)["tags"] == ["DET", "NOUN"]


def test_benchmark_times_every_artifact_and_keras(exported_run):
    out, _ = exported_run
    assert benchmark_cli.main(["--run-dir", str(out), "--seq-lens", "8", "--threads", "1", "--runs", "3"]) == 0
    bench = json.loads((out / "export" / "bench.json").read_text())
    assert set(bench["results"]["1"]) == {"keras", "model_fp32.tflite", "model_dynamic.tflite", "model_int8.tflite",
                                          "model_int8_len32.tflite", "model_int8_staged.tflite", "model_fp32.onnx",
                                          "model_int8.onnx"}
    assert (out / "export" / "bench.png").stat().st_size > 1000


def test_predictor_handles_empty_unknown_and_overlong_text(exported_run):
    from kerasrnn.runtime.predictor import Predictor
    from kerasrnn.runtime.runners import InputError

    out, _ = exported_run
    predictor = Predictor(out / "export" / "model_fp32.onnx")
    empty, unknown, long = predictor.predict(["", "zzyzx qwv", "the cat " * 200])
    assert empty["tokens"] == [] and empty["tags"] == []
    assert len(unknown["tags"]) == 2
    assert len(long["tags"]) == 256  # cut to the run's max_length
    fixed = Predictor(out / "export" / "model_int8_len32.tflite")
    assert len(fixed.predict(["the cat sees a dog"])[0]["tags"]) == 5
    with pytest.raises(InputError, match="at most 32 tokens per row"):
        fixed.predict(["the cat " * 20])


def test_conformance_vectors_hold_the_hard_cases_and_every_row_artifact(exported_run):
    out, _ = exported_run
    doc = json.loads((out / "export" / "conformance.json").read_text())
    meta = json.loads((out / "export" / "metadata.json").read_text())
    ids = {case["id"]: case for case in doc["cases"]}
    assert len(ids) == len(doc["cases"]) == 30 + 41  # the whole (30-sentence) test split and the hard cases
    assert ids["clitics"]["tokens"][:4] == ["I", "'m", "sure", "he"]
    assert ids["empty"]["tokens"] == [] and ids["empty"]["token_ids"] == [1]
    assert ids["long_sentence"]["token_count"] == 300 and len(ids["long_sentence"]["tokens"]) == meta["max_length"]
    assert ids["long_text"]["token_count"] == 33_334 and ids["long_text"]["last_token"] == "a"  # cut at 100,000
    assert all(len(row) == meta["max_word_chars"] for row in ids["long_word"]["char_ids"])
    assert doc["artifacts"] == ["model_fp32.tflite", "model_dynamic.tflite", "model_int8.tflite",
                                "model_fp32.onnx", "model_int8.onnx", "model_int8_staged.tflite"]
    case = ids["test:0"]
    assert set(case["outputs"]) == set(doc["artifacts"])
    assert len(case["outputs"]["model_fp32.onnx"]["argmax"]) == len(case["tokens"])
    assert meta["tokenizer"]["tokens"]["flags"]["javascript"] == "gu"
    assert meta["decoding"]["method"] == "argmax" and meta["decoding"]["labels"] == meta["labels"]


def test_the_node_client_agrees_with_every_conformance_vector(exported_run):
    """clients/node (JavaScript, onnxruntime-node; reads metadata.json, its vocabulary files, conformance.json and
    the .onnx files only) on the export: every token, id, char id, argmax and decoded tag."""
    out, _ = exported_run
    code, summary = node.conformance(out / "export")
    assert code == 0 and summary["passed"], summary["shown"]
    assert summary["cases"] == 71 and summary["failures"] == 0
    assert sorted(summary["outputs"]) == ["model_fp32.onnx", "model_int8.onnx"]
    assert summary["outputs"]["model_fp32.onnx"]["argmax"] == summary["tokens"] > 300


def test_a_changed_python_tokenizer_rule_fails_the_node_check(exported_run, tmp_path, monkeypatch):
    """The vectors come from what the Python code does, not from the spec: a rule changed on the Python side (the
    clitics no longer split) and an export's vectors written with it fail the client, which follows metadata.json."""
    from kerasrnn.export import conformance
    from kerasrnn.run import load_run, read_split
    from kerasrnn.text import tokenizer as tok

    out, _ = exported_run
    export = tmp_path / "export"
    shutil.copytree(out / "export", export)
    changed = re.compile(tok.PORTABLE_PATTERN.replace(dict(tok.ALTERNATIVES)["clitic"], "(?!)"))
    monkeypatch.setattr(tok, "token_pattern", lambda: changed)
    run = load_run(out)
    conformance.write(export, conformance.build(run.preprocessor, export, ["model_fp32.onnx"],
                                                read_split(run.config, "test")))
    code, summary = node.conformance(export)
    assert code == 1 and not summary["passed"]
    failed = {f["case"] for f in summary["shown"] if f["what"] == "tokens"}
    assert {"clitics", "clitics_upper", "negation_alone"} <= failed


def _bio_file(path, n, seed):
    """Sentences whose entity spans follow from the words: 'new york' is a place, 'ann' a person."""
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(n):
        for phrase in rng.choice(["the", "in", "new york", "ann", "saw", "city"], size=rng.integers(3, 7)):
            words = phrase.split()
            kind = {"new york": "LOC", "ann": "PER"}.get(phrase)
            for i, word in enumerate(words):
                lines.append(f"{word}\t{'O' if kind is None else ('B-' if i == 0 else 'I-') + kind}")
        lines.append("")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_crf_tagger_exports_with_its_scores_and_every_client_decodes_like_keras(tmp_path):
    from kerasrnn.run import load_run
    from kerasrnn.runtime.predictor import Predictor
    from kerasrnn.text.bio import decode_tags

    files = [_bio_file(tmp_path / f"{s}.txt", n, i) for i, (s, n) in enumerate([("train", 60), ("dev", 12),
                                                                                 ("test", 12)])]
    config = tiny_config(tmp_path / "crf.toml", 'name = "tiny_ner"\ntype = "tagging"\nmetric = "f1"', "conll", files,
                         data="min_count = 1",
                         model="units = 8\nembedding_dim = 8\noutput_dim = 8\nchar_filters = 4\nchar_embedding_dim = 4\n"
                         "crf = true", training="epochs = 5\nbatch_size = 8\nlearning_rate = 0.02")
    out = tmp_path / "run"
    assert train_cli.main(["--config", str(config), "--output-dir", str(out)]) == 0
    assert json.loads((out / "metrics.json").read_text())["test"]["f1"] > 0.5
    assert export_cli.main(["--run-dir", str(out), "--latency-runs", "2", "--calibration-sentences", "40",
                            "--int8-fixed-length", "0", "--int8-chunk", "0"]) == 0
    meta = json.loads((out / "export" / "metadata.json").read_text())
    run = load_run(out)
    scores = run.model.crf_decoding()
    assert meta["decoding"]["method"] == "crf_viterbi"
    np.testing.assert_array_equal(meta["decoding"]["transitions"], scores["transitions"])
    fp32 = json.loads((out / "export" / "report.json").read_text())["artifacts"]["model_fp32.onnx"]
    assert fp32["parity"]["max_abs"] <= 1e-4 and fp32["test_metric"] == pytest.approx(fp32["keras_test_metric"])
    # the Predictor of the export decodes with the metadata's scores: the Keras model's tags under its CRF
    from kerasrnn.runtime.runners import KerasRunner, run_batched

    text = "ann saw new york in the city"
    (probs,) = run_batched(KerasRunner(model=run.model), run.encode([_example(text)]))
    (predicted,) = Predictor(out / "export" / "model_fp32.onnx").predict([text])
    assert predicted["tags"] == decode_tags(probs, run.labels.tokens, scores)
    assert Predictor(out / "model.keras").predict([text])[0]["tags"] == predicted["tags"]
    code, summary = node.conformance(out / "export")
    assert code == 0 and summary["passed"] and summary["failures"] == 0, summary["shown"]


def _example(text):
    from kerasrnn.data.readers import Example

    return Example(tuple(text.split()))
