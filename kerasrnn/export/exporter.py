"""Export a trained run to TFLite and ONNX, verify every artifact against the Keras model on real data, and report.

`export_run(run_dir)` writes into `run_dir/export/`: the artifacts, the vocabulary and label files, `metadata.json`
(what an app needs to feed the model), `report.json` and `report.md`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from kerasrnn.export.converters import (
    ConversionError,
    QuantizationConfig,
    onnx_ops,
    quantize_onnx,
    save_saved_model,
    tflite_ops,
    to_onnx,
    to_tflite,
)
from kerasrnn.export.inference_graph import InferenceGraph, ModelWeights

ARTIFACTS = ("model_fp32.tflite", "model_dynamic.tflite", "model_int8.tflite", "model_fp32.onnx", "model_int8.onnx")


def fixed_int8_name(length: int) -> str:
    return f"model_int8_len{length}.tflite"


@dataclasses.dataclass(frozen=True)
class ExportSettings:
    """Args:
    calibration_sentences: int. Training sentences used to calibrate full int8 (300 cost SST-2 2.6 points of
        accuracy in the fused int8 LSTM; 2000 kept it within 0.1). Defaults to 2000.
    calibration_length: int. Tokens per calibration row. Defaults to 32.
    parity_sentences: int. Test sentences for the padding check. Defaults to 200.
    extra_padding: int. Pad positions appended in the padding check. Defaults to 9.
    latency_tokens: int. Sentence length of the latency figure in the report. Defaults to 32.
    latency_runs: int. Timed calls per artifact (after warm-up). Defaults to 100.
    seed: int. Seed of the calibration sample. Defaults to 0.
    int8_fixed_length: int. Also write `model_int8_len{N}.tflite`: full int8 with the recurrences unrolled over
        exactly N positions (rows right-padded to N; longer rows rejected). On x86 it runs several times faster
        than the fused int8 LSTM kernel, and it is the only full-int8 TFLite a GRU model can have. None skips it.
        Defaults to 32.
    prune_sparsity: float. If set, also fine-tune a magnitude-pruned copy at this sparsity (tfmot) and export it
        as `model_pruned.tflite`. Defaults to None.
    prune_steps: int. Fine-tuning steps of the pruned copy. Defaults to 200.
    embedder_sentences: int. Test sentences on which an embedder (BiLM) export is checked. Defaults to 1000.
    """

    calibration_sentences: int = 2000
    calibration_length: int = 32
    parity_sentences: int = 200
    extra_padding: int = 9
    latency_tokens: int = 32
    latency_runs: int = 100
    seed: int = 0
    int8_fixed_length: int | None = 32
    prune_sparsity: float | None = None
    prune_steps: int = 200
    embedder_sentences: int = 1000


def _progress(message: str) -> None:
    print(f"[export] {message}", flush=True)


def write_metadata(run, export_dir: Path) -> dict:
    """`metadata.json`: how an app turns text into the model's inputs and reads its output."""
    from kerasrnn.text.tokenizer import WordTokenizer

    config = run.config
    tagging = config.task.type == "tagging"
    embedding = config.task.type == "language_model"
    if embedding:
        units = run.model.units
        output = {"name": "vectors", "dtype": "float32", "shape": ["batch", "time", 2 * units],
                  "meaning": f"contextual vector of each token: forward LM state (first {units}) and backward LM "
                             f"state (last {units}) of the top layer; read positions 0..length-1, ignore padding"}
    else:
        output = {
            "name": "probabilities", "dtype": "float32",
            "shape": ["batch", "time", len(run.labels)] if tagging else ["batch", len(run.labels)],
            "meaning": ("softmax over tags for each token; read positions 0..length-1 of each row, ignore padding"
                        if tagging else "softmax over labels for the sentence; padding does not change it"),
        }
    meta = {
        "task": config.task.name,
        "task_type": config.task.type,
        "inputs": {
            "token_ids": {"dtype": "int32", "shape": ["batch", "time"],
                          "tflite_shape": [1, "time"], "onnx_shape": ["batch", "time"]},
        },
        "output": output,
        "pad_id": 0,
        "unknown_id": 1,
        "padding": "right: a row is its token ids followed by 0s; every row holds at least one token",
        "vocabulary_file": "vocab.txt",
        "vocabulary_size": len(run.vocab),
        **({} if embedding else {"labels_file": "labels.txt", "labels": run.labels.tokens}),
        "files_format": "UTF-8 text, one entry per line; the id of an entry is its 0-based line number",
        "lowercase": config.data.lowercase,
        "max_length": config.data.max_length,
        "tokenization": (
            f"{WordTokenizer.__doc__.strip().splitlines()[0]} NFC normalization; control characters dropped; "
            "punctuation split off; clitics split as in the Penn Treebank (don't -> do n't, it's -> it 's); "
            "URLs, e-mail addresses, @mentions, #hashtags and numbers kept whole. Python reference: "
            "kerasrnn.text.WordTokenizer. Lowercase before the vocabulary lookup when lowercase is true; "
            "a token not in the vocabulary gets unknown_id; cut rows to max_length tokens."
        ),
    }
    if run.char_vocab is not None:
        meta["inputs"]["char_ids"] = {"dtype": "int32", "shape": ["batch", "time", config.data.max_word_chars],
                                      "tflite_shape": [1, "time", config.data.max_word_chars]}
        meta["char_vocabulary_file"] = "chars.txt"
        meta["char_vocabulary_size"] = len(run.char_vocab)
        meta["max_word_chars"] = config.data.max_word_chars
        meta["char_rule"] = ("for each token, the ids of its first max_word_chars characters (original case) in "
                             "chars.txt, unknown characters -> 1, right-padded with 0; padded tokens are all 0")
    _write_json(meta, export_dir / "metadata.json")
    return meta


def _write_json(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def calibration_rows(run, settings: ExportSettings) -> list[list[np.ndarray]]:
    """Real training text for int8 calibration: sampled sentences joined into one stream and cut into
    [1, calibration_length] rows, in the model's input order.

    All rows share one length because the TFLite calibrator sizes its tensors on the first row only.
    """
    from kerasrnn.trainer import read_split

    examples = read_split(run.config, "train")
    rng = np.random.default_rng(settings.seed)
    pick = rng.choice(len(examples), size=min(settings.calibration_sentences, len(examples)), replace=False)
    data = run.encode([examples[i] for i in pick])
    length = settings.calibration_length
    tokens = np.concatenate(data.token_ids)
    chars = np.concatenate(data.char_ids) if data.char_ids is not None else None
    rows = []
    for start in range(0, len(tokens) - length + 1, length):
        row = [tokens[None, start : start + length]]
        if chars is not None:
            row.append(chars[None, start : start + length])
        rows.append(row)
    if not rows:
        raise ValueError(f"the calibration sample has fewer than {length} tokens")
    return rows


def convert_all(run, export_dir: Path, settings: ExportSettings) -> dict[str, str]:
    """Writes every artifact it can; returns {file: error message} for the ones a converter could not make."""
    weights = ModelWeights.from_model(run.model)
    errors = {}
    with tempfile.TemporaryDirectory() as tmp:
        saved_model = save_saved_model(InferenceGraph(weights), Path(tmp) / "saved_model")
        modes = {"model_fp32.tflite": QuantizationConfig.for_float32(),
                 "model_dynamic.tflite": QuantizationConfig.for_dynamic()}
        int8 = QuantizationConfig.for_int8(calibration_rows(run, settings))
        modes["model_int8.tflite"] = int8
        for name, quantization in modes.items():
            _progress(f"converting {name}")
            try:
                to_tflite(saved_model, export_dir / name, quantization)
            except ConversionError as e:
                errors[name] = str(e)
                _progress(f"FAILED {e}")
        if settings.int8_fixed_length:
            name = fixed_int8_name(settings.int8_fixed_length)
            _progress(f"converting {name}")
            graph = InferenceGraph(weights, fixed_length=settings.int8_fixed_length)
            unrolled = save_saved_model(graph, Path(tmp) / "saved_model_unrolled")
            fixed_int8 = int8
            if settings.int8_fixed_length != settings.calibration_length:  # rows must have the graph's length
                fixed_int8 = QuantizationConfig.for_int8(calibration_rows(
                    run, dataclasses.replace(settings, calibration_length=settings.int8_fixed_length)))
            try:
                to_tflite(unrolled, export_dir / name, fixed_int8)
            except ConversionError as e:
                errors[name] = str(e)
                _progress(f"FAILED {e}")
    _progress("converting model_fp32.onnx")
    to_onnx(InferenceGraph(weights), export_dir / "model_fp32.onnx")
    _progress("quantizing model_int8.onnx")
    quantize_onnx(export_dir / "model_fp32.onnx", export_dir / "model_int8.onnx")
    return errors


def _latency(runner, features, runs: int) -> dict[str, float]:
    from kerasrnn.runtime.benchmark import time_calls

    return {k: round(v, 4) for k, v in time_calls(lambda: runner(features), runs).items()}


def latency_input(data, tokens: int) -> dict[str, np.ndarray]:
    """One row of `tokens` real token ids: test sentences joined until the length is reached."""
    tok = np.concatenate(data.token_ids)[:tokens]
    reps = int(np.ceil(tokens / len(tok)))
    features = {"token_ids": np.tile(tok, reps)[None, :tokens]}
    if data.char_ids is not None:
        ch = np.concatenate(data.char_ids)[:tokens]
        features["char_ids"] = np.tile(ch, (reps, 1))[None, :tokens]
    return features


def _fit_length(features: dict, fixed: int | None) -> dict:
    """Latency features cut to a fixed-length artifact's length when it is shorter."""
    return features if fixed is None else {k: v[:, :fixed] for k, v in features.items()}


def _valid_outputs(probs: list, task_type: str) -> np.ndarray:
    return np.concatenate(probs) if task_type == "tagging" else np.stack(probs)


def _subset(data, index):
    from kerasrnn.data.pipeline import EncodedData

    return EncodedData([data.token_ids[i] for i in index],
                       [data.char_ids[i] for i in index] if data.char_ids is not None else None, None)


def verify(run, export_dir: Path, settings: ExportSettings, artifacts) -> dict:
    """Metric, parity, padding, size and latency of every artifact, against the Keras model, on the test split.

    A fixed-length artifact is scored on the test sentences that fit its length, against the Keras model on the
    same sentences (`rows_scored` says how many).
    """
    from kerasrnn.runtime.runners import KerasRunner, run_batched
    from kerasrnn.trainer import read_split, score

    config = run.config
    examples = read_split(config, "test")
    data = run.encode(examples)
    keras_runner = KerasRunner(model=run.model)
    keras_probs = run_batched(keras_runner, data)
    keras_metric = score(config, examples, run.labels, keras_probs)[config.task.metric]

    lat_features = latency_input(data, settings.latency_tokens)
    report = {"keras": {"test_metric": keras_metric,
                        "latency_ms": _latency(keras_runner, lat_features, settings.latency_runs)}}
    for name, path, runner, index, rows in _artifact_runs(run, export_dir, artifacts, data):
        fixed = getattr(runner, "fixed_length", None)
        probs = run_batched(runner, rows)
        reference = _valid_outputs([keras_probs[i] for i in index], config.task.type)
        outputs = _valid_outputs(probs, config.task.type)
        scored = [examples[i] for i in index]
        report[name] = {
            "test_metric": score(config, scored, run.labels, probs)[config.task.metric],
            "keras_test_metric": (keras_metric if fixed is None else
                                  score(config, scored, run.labels, [keras_probs[i] for i in index])[config.task.metric]),
            **_artifact_checks(runner, path, rows, outputs, reference, settings, lat_features, f"{len(index)} of "
                               f"{len(data)}"),
        }
        report[name]["parity"]["argmax_agreement"] = float(np.mean(outputs.argmax(-1) == reference.argmax(-1)))
    return report


def _artifact_runs(run, export_dir: Path, artifacts, data):
    """For each artifact: (name, path, its runner, the indices of the rows of `data` it can take, those rows).
    A fixed-length file takes the rows that fit its length."""
    from kerasrnn.runtime.runners import load_runner

    sizes = runner_sizes(run)
    for name in artifacts:
        path = export_dir / name
        _progress(f"verifying {name}")
        runner = load_runner(path, num_threads=1, **sizes)
        fixed = getattr(runner, "fixed_length", None)
        index = [i for i in range(len(data)) if fixed is None or len(data.token_ids[i]) <= fixed]
        yield name, path, runner, index, _subset(data, index)


def runner_sizes(run) -> dict:
    """The id ranges a runner validates inputs against."""
    return {"vocabulary_size": len(run.vocab), "char_vocabulary_size": len(run.char_vocab) if run.char_vocab else 0,
            "max_word_chars": run.config.data.max_word_chars}


def _artifact_checks(runner, path: Path, rows, outputs, reference, settings: ExportSettings, lat_features,
                     rows_scored: str) -> dict:
    """Size, ops, parity (max |difference|, mean and minimum cosine on valid positions), padding and latency."""
    from kerasrnn.runtime.runners import run_batched

    fixed = getattr(runner, "fixed_length", None)
    cos = np.sum(outputs * reference, -1) / np.maximum(
        np.linalg.norm(outputs, axis=-1) * np.linalg.norm(reference, axis=-1), 1e-12)
    check = _subset(rows, range(min(settings.parity_sentences, len(rows))))
    pad_diff = max(float(np.abs(a - b).max()) for a, b in zip(
        run_batched(runner, check), _padded_outputs(runner, check, settings.extra_padding, fixed), strict=True))
    result = {
        "bytes": path.stat().st_size,
        "ops": tflite_ops(path) if path.suffix == ".tflite" else onnx_ops(path),
        "parity": {"max_abs": float(np.abs(outputs - reference).max()), "mean_cos": float(cos.mean()),
                   "min_cos": float(cos.min())},
        "padding_max_diff": pad_diff,
        "latency_ms": _latency(runner, _fit_length(lat_features, fixed), settings.latency_runs),
    }
    if fixed is not None:
        result["fixed_length"] = fixed
        result["rows_scored"] = rows_scored
        if fixed < settings.latency_tokens:
            result["latency_tokens"] = fixed
    return result


def verify_embedder(run, export_dir: Path, settings: ExportSettings, artifacts) -> dict:
    """Parity (per-token vectors against the Keras BiLM's top layer), padding, size and latency of every
    embedder artifact, on the first `embedder_sentences` test sentences."""
    from kerasrnn.embedder import Embedder
    from kerasrnn.runtime.runners import run_batched
    from kerasrnn.trainer import read_split

    config = run.config
    examples = read_split(config, "test")[: settings.embedder_sentences]
    data = run.encode(examples)
    embedder = Embedder.from_run(run)
    reference_rows = [layers[-1] for layers in embedder.embed_encoded(data)]  # the top layer, as exported
    lat_features = latency_input(data, settings.latency_tokens)
    report = {"keras": {"latency_ms": _latency(embedder.top_layer, lat_features, settings.latency_runs),
                        "sentences": len(examples)}}
    for name, path, runner, index, rows in _artifact_runs(run, export_dir, artifacts, data):
        outputs = np.concatenate(run_batched(runner, rows))
        reference = np.concatenate([reference_rows[i] for i in index])
        report[name] = _artifact_checks(runner, path, rows, outputs, reference, settings, lat_features,
                                        f"{len(index)} of {len(data)}")
        report[name]["parity"]["tokens"] = int(len(outputs))
    return report


def _artifact_label(name: str, r: dict) -> str:
    return f"{name} (rows of <= {r['fixed_length']} tokens: {r['rows_scored']})" if "fixed_length" in r else name


def _ops_lines(report: dict) -> list[str]:
    return ["", "Ops per artifact:", ""] + [
        f"- `{name}`: {', '.join(r['ops'])}" for name, r in report["artifacts"].items() if "ops" in r]


def _artifact_table(report: dict, columns: list[str], keras_cells: list[str], cells) -> list[str]:
    """The table both reports share: a header, the Keras row, then one row per artifact (`cells(r)`) or the
    reason it was not produced."""
    lines = ["| artifact | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|",
             "| Keras (tf.function) | " + " | ".join(keras_cells) + " |"]
    for name, r in report["artifacts"].items():
        if "error" in r:
            lines.append(f"| {name} | not produced: {r['error']} |" + " |" * (len(columns) - 1))
        else:
            lines.append(f"| {_artifact_label(name, r)} | " + " | ".join(cells(r)) + " |")
    return lines


def _latency_cells(r: dict) -> list[str]:
    return [f"{r['latency_ms']['p50']:.3f}", f"{r['latency_ms']['p90']:.3f}"]


def embedder_report_markdown(report: dict, run) -> str:
    def cells(r):
        p = r["parity"]
        return [f"{r['bytes']:,}", f"{p['max_abs']:.2e}", f"{p['mean_cos']:.5f}", f"{p['min_cos']:.4f}",
                f"{r['padding_max_diff']:.2e}", *_latency_cells(r)]

    lines = [
        f"# Export report: {run.config.task.name} (embedder: top-layer vectors, {run.model.units * 2} per token)",
        "",
        f"First {report['keras']['sentences']} test sentences; parity against the Keras BiLM on valid tokens "
        "(max |difference|, mean and minimum cosine); latency at batch 1, 32 tokens, 1 thread (median / p90).",
        "",
        *_artifact_table(report, ["bytes", "parity max_abs", "mean cos", "min cos", "padding max diff",
                                  "latency p50 ms", "latency p90 ms"],
                         ["-"] * 5 + _latency_cells(report["keras"]), cells),
        *_ops_lines(report),
    ]
    return "\n".join(lines) + "\n"


def _padded_outputs(runner, data, extra: int, fixed_length: int | None = None) -> list:
    """Outputs of each row run alone with `extra` pad positions appended (up to a fixed length), cut back to the
    valid positions."""
    out = []
    for i in range(len(data)):
        n = len(data.token_ids[i])
        pad = extra if fixed_length is None else min(extra, fixed_length - n)
        features = {"token_ids": np.pad(data.token_ids[i], (0, pad))[None, :]}
        if data.char_ids is not None:
            features["char_ids"] = np.pad(data.char_ids[i], ((0, pad), (0, 0)))[None, :]
        probs = runner(features)[0]
        out.append(probs[:n] if probs.ndim == 2 else probs)
    return out


def report_markdown(report: dict, run) -> str:
    metric = run.config.task.metric
    keras = report["keras"]

    def cells(r):
        return [f"{r['test_metric']:.4f}", f"{100 * (r['test_metric'] - r['keras_test_metric']):+.2f}",
                f"{r['bytes']:,}", f"{r['parity']['max_abs']:.2e}", f"{r['padding_max_diff']:.2e}",
                *_latency_cells(r)]

    lines = [
        f"# Export report: {run.config.task.name}",
        "",
        f"Test split, {metric}; parity against the Keras model on valid positions; latency at batch 1, "
        f"32 tokens, 1 thread (median / p90).",
        "",
        *_artifact_table(report, [f"test {metric}", "delta vs Keras (points)", "bytes", "parity max_abs",
                                  "padding max diff", "latency p50 ms", "latency p90 ms"],
                         [f"{keras['test_metric']:.4f}", "-", "-", "-", "-", *_latency_cells(keras)], cells),
    ]
    lines += _ops_lines(report)
    if "pruned" in report:
        p = report["pruned"]
        lines += ["", f"Pruned copy (`{p['file']}`, tfmot magnitude pruning, {p['sparsity']:.0%} target sparsity, "
                      f"{p['fine_tune_steps']} fine-tuning steps): test {metric} {p['test_metric']:.4f}, "
                      f"{p['bytes']:,} bytes, gzip {p['gzip_bytes']:,} bytes "
                      f"(unpruned fp32 gzip {p['unpruned_fp32_gzip_bytes']:,})."]
    if report.get("notes"):
        lines += ["", "Notes:", ""] + [f"- {note}" for note in report["notes"]]
    return "\n".join(lines) + "\n"


def prune_and_export(run, export_dir: Path, settings: ExportSettings) -> dict:
    """Fine-tunes a pruned copy on the training data, exports it to fp32 TFLite and scores it on the test split."""
    from kerasrnn.data.pipeline import encode
    from kerasrnn.export.pruning import gzip_size, prune_weights
    from kerasrnn.runtime.runners import TFLiteRunner, run_batched
    from kerasrnn.trainer import read_split, score

    config = run.config
    _progress(f"pruning to {settings.prune_sparsity:.0%} sparsity, {settings.prune_steps} fine-tuning steps")
    train = encode(read_split(config, "train"), run.vocab, run.labels, char_vocab=run.char_vocab,
                   max_word_chars=config.data.max_word_chars, max_length=config.data.max_length)
    result = prune_weights(ModelWeights.from_model(run.model), train, sparsity=settings.prune_sparsity,
                           steps=settings.prune_steps, batch_size=config.training.batch_size, seed=settings.seed)
    path = export_dir / "model_pruned.tflite"
    with tempfile.TemporaryDirectory() as tmp:
        saved = save_saved_model(InferenceGraph(result.weights), Path(tmp) / "saved_model")
        to_tflite(saved, path, QuantizationConfig.for_float32())
    runner = TFLiteRunner(path, **runner_sizes(run))
    examples = read_split(config, "test")
    metric = score(config, examples, run.labels, run_batched(runner, run.encode(examples)))[config.task.metric]
    return {
        "file": path.name, "sparsity": result.sparsity, "measured_sparsity": round(result.measured_sparsity, 4),
        "fine_tune_steps": result.steps, "test_metric": metric, "bytes": path.stat().st_size,
        "gzip_bytes": gzip_size(path), "unpruned_fp32_gzip_bytes": gzip_size(export_dir / "model_fp32.tflite"),
    }


def export_run(run_dir, export_dir=None, settings: ExportSettings | None = None) -> dict:
    """Converts, verifies and reports; returns the report dict also written to `report.json`."""
    from kerasrnn.trainer import load_run

    settings = settings or ExportSettings()
    run_dir = Path(run_dir)
    export_dir = Path(export_dir) if export_dir else run_dir / "export"
    export_dir.mkdir(parents=True, exist_ok=True)
    run = load_run(run_dir)
    if run.config.task.type == "language_model" and settings.prune_sparsity is not None:
        raise ValueError("pruning applies to task models, not to a language model's embedder")
    for name in ("vocab.txt", "labels.txt", "chars.txt"):
        if (run_dir / name).is_file():
            shutil.copyfile(run_dir / name, export_dir / name)
    write_metadata(run, export_dir)
    errors = convert_all(run, export_dir, settings)
    names = list(ARTIFACTS)
    if settings.int8_fixed_length:
        names.append(fixed_int8_name(settings.int8_fixed_length))
    produced = [name for name in names if name not in errors]
    embedder = run.config.task.type == "language_model"
    checks = (verify_embedder if embedder else verify)(run, export_dir, settings, produced)
    report = ({"task": run.config.task.name, "kind": "embedder", "cell": run.model.cell} if embedder else
              {"task": run.config.task.name, "metric": run.config.task.metric, "cell": run.model.encoder.cell})
    report["keras"] = checks.pop("keras")
    report["artifacts"] = {name: checks[name] if name in checks else {"error": errors[name]} for name in names}
    if embedder:
        _write_json(report, export_dir / "report.json")
        (export_dir / "report.md").write_text(embedder_report_markdown(report, run), encoding="utf-8")
        return report
    if run.model.encoder.cell == "gru":
        report["notes"] = [
            "GRU: TFLite has no fused GRU op; model_fp32.tflite and model_dynamic.tflite run the recurrence as "
            "WHILE loops (builtin ops only). ONNX files use native GRU ops.",
            "GRU full int8: the TFLite calibrator crashes on WHILE loops (model_int8.tflite is not produced when "
            "it does); the unrolled fixed-length file (model_int8_len*.tflite) is the full-int8 GRU artifact.",
        ]
    if settings.prune_sparsity is not None:
        report["pruned"] = prune_and_export(run, export_dir, settings)
    _write_json(report, export_dir / "report.json")
    (export_dir / "report.md").write_text(report_markdown(report, run), encoding="utf-8")
    return report
