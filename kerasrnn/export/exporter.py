"""Export a trained run to TFLite and ONNX, verify every artifact against the Keras model on real data, and report.

`export_run(run_dir)` writes into `run_dir/export/`: the artifacts, the preprocessor's files (vocabulary, labels,
characters), `metadata.json` (what an app needs to feed the model), `report.json` and `report.md`. One path for
every kind of model; what differs between a task model and an embedder is its target (`kerasrnn.export.targets`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from kerasrnn.export.converters import (
    ConversionError,
    QuantizationConfig,
    quantize_onnx,
    save_saved_model,
    to_onnx,
    to_tflite,
)
from kerasrnn.export.inference_graph import InferenceGraph, ModelWeights
from kerasrnn.export.report import report_markdown
from kerasrnn.export.settings import ExportSettings
from kerasrnn.export.targets import target_for
from kerasrnn.export.verify import progress, verify
from kerasrnn.files import atomic_write_json, atomic_write_text
from kerasrnn.run import load_run, read_split

ARTIFACTS = ("model_fp32.tflite", "model_dynamic.tflite", "model_int8.tflite", "model_fp32.onnx", "model_int8.onnx")

__all__ = ["ARTIFACTS", "ExportSettings", "calibration_rows", "convert_all", "export_run", "write_metadata"]


def fixed_int8_name(length: int) -> str:
    return f"model_int8_len{length}.tflite"


def write_metadata(run, target, export_dir: Path) -> dict:
    """`metadata.json`: how an app turns text into the model's inputs (the preprocessor's description) and reads
    its output (the target's)."""
    meta = {"task": run.config.task.name, **run.preprocessor.describe(), "output": target.output()}
    atomic_write_json(meta, export_dir / "metadata.json")
    return meta


def calibration_sample(run, train_examples, settings: ExportSettings):
    """`calibration_sentences` training sentences (seeded sample), encoded."""
    rng = np.random.default_rng(settings.seed)
    pick = rng.choice(len(train_examples), size=min(settings.calibration_sentences, len(train_examples)),
                      replace=False)
    return run.encode([train_examples[i] for i in pick])


def calibration_rows(data, length: int) -> list[list[np.ndarray]]:
    """Real text for int8 calibration: the sample's sentences joined into one stream and cut into [1, length]
    rows, in the model's input order.

    All rows share one length because the TFLite calibrator sizes its tensors on the first row only.
    """
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


def _tflite(saved_model, path: Path, quantization: QuantizationConfig, errors: dict) -> None:
    progress(f"converting {path.name}")
    try:
        to_tflite(saved_model, path, quantization)
    except ConversionError as e:
        errors[path.name] = str(e)
        progress(f"FAILED {e}")


def convert_all(run, export_dir: Path, settings: ExportSettings, train_examples) -> dict[str, str]:
    """Writes every artifact it can; returns {file: error message} for the ones a converter could not make."""
    weights = ModelWeights.from_model(run.model)
    sample = calibration_sample(run, train_examples, settings)
    errors = {}
    with tempfile.TemporaryDirectory() as tmp:
        saved_model = save_saved_model(InferenceGraph(weights), Path(tmp) / "saved_model")
        for name, quantization in (
            ("model_fp32.tflite", QuantizationConfig.for_float32()),
            ("model_dynamic.tflite", QuantizationConfig.for_dynamic()),
            ("model_int8.tflite", QuantizationConfig.for_int8(calibration_rows(sample, settings.calibration_length))),
        ):
            _tflite(saved_model, export_dir / name, quantization, errors)
        if settings.int8_fixed_length:
            graph = InferenceGraph(weights, fixed_length=settings.int8_fixed_length)
            unrolled = save_saved_model(graph, Path(tmp) / "saved_model_unrolled")
            # Calibration rows must have the graph's length.
            quantization = QuantizationConfig.for_int8(calibration_rows(sample, settings.int8_fixed_length))
            _tflite(unrolled, export_dir / fixed_int8_name(settings.int8_fixed_length), quantization, errors)
    progress("converting model_fp32.onnx")
    to_onnx(InferenceGraph(weights), export_dir / "model_fp32.onnx")
    progress("quantizing model_int8.onnx")
    quantize_onnx(export_dir / "model_fp32.onnx", export_dir / "model_int8.onnx")
    return errors


def export_run(run_dir, export_dir=None, settings: ExportSettings | None = None) -> dict:
    """Converts, verifies and reports; returns the report dict also written to `report.json`."""
    settings = settings or ExportSettings()
    run_dir = Path(run_dir)
    export_dir = Path(export_dir) if export_dir else run_dir / "export"
    run = load_run(run_dir)
    if run.config.task.type == "language_model" and settings.prune_sparsity is not None:
        raise ValueError("pruning applies to task models, not to a language model's embedder")
    export_dir.mkdir(parents=True, exist_ok=True)
    target = target_for(run, settings)
    run.preprocessor.save(export_dir)
    write_metadata(run, target, export_dir)
    train_examples = read_split(run.config, "train")  # each split is read once per export
    test_examples = read_split(run.config, "test")
    errors = convert_all(run, export_dir, settings, train_examples)
    names = list(ARTIFACTS)
    if settings.int8_fixed_length:
        names.append(fixed_int8_name(settings.int8_fixed_length))
    produced = [name for name in names if name not in errors]
    checks = verify(target, run.preprocessor, export_dir, settings, produced, test_examples)
    report = target.header()
    report["keras"] = checks.pop("keras")
    report["artifacts"] = {name: checks[name] if name in checks else {"error": errors[name]} for name in names}
    if target.notes():
        report["notes"] = target.notes()
    if settings.prune_sparsity is not None:
        from kerasrnn.export.pruning import prune_and_export

        report["pruned"] = prune_and_export(run, export_dir, settings, train_examples, test_examples)
    atomic_write_json(report, export_dir / "report.json")
    atomic_write_text(report_markdown(report, target), export_dir / "report.md")
    return report

