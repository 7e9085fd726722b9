"""Export a trained run to TFLite and ONNX, verify every artifact against the Keras model on real data, and report.

`export_run(run_dir)` writes into `run_dir/export/`: the artifacts, the preprocessor's files (vocabulary, labels,
characters), `metadata.json` (what an app needs to feed the model), `report.json` and `report.md`. One path for
every kind of model; what differs between a task model and an embedder is its target (`kerasrnn.export.targets`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

import kerasrnn.export.conformance as conformance
from kerasrnn.export.converters import (
    QuantizationConfig,
    quantize_onnx,
    save_saved_model,
    to_onnx,
    to_tflite_files,
)
from kerasrnn.export.report import report_markdown
from kerasrnn.export.settings import ExportSettings
from kerasrnn.export.targets import target_for
from kerasrnn.export.verify import progress, verify
from kerasrnn.files import atomic_write_json, atomic_write_text, make_dir
from kerasrnn.run import load_run, read_split

ARTIFACTS = ("model_fp32.tflite", "model_dynamic.tflite", "model_int8.tflite", "model_fp32.onnx", "model_int8.onnx")
STAGED_INT8 = "model_int8_staged.tflite"
STREAMS = ("model_stream_fp32.tflite", "model_stream_int8.tflite")

__all__ = ["ARTIFACTS", "ExportSettings", "calibration_rows", "convert_all", "export_model", "export_run",
           "load_ids"]


def fixed_int8_name(length: int) -> str:
    return f"model_int8_len{length}.tflite"


def calibration_sample(run, train_examples, settings: ExportSettings):
    """`calibration_sentences` training sentences (seeded sample), encoded."""
    rng = np.random.default_rng(settings.seed)
    pick = rng.choice(len(train_examples), size=min(settings.calibration_sentences, len(train_examples)),
                      replace=False)
    return run.encode([train_examples[i] for i in pick])


def calibration_rows(data, length: int) -> list[dict[str, np.ndarray]]:
    """Real ids for int8 calibration: the rows of `data` (EncodedData or IdRows) joined into one stream per input
    and cut into [1, length] rows, keyed by input name.

    All rows share one length because the TFLite calibrator sizes its tensors on the first row only.
    """
    streams = {name: np.concatenate(rows) for name, rows in data.inputs.items()}
    total = len(next(iter(streams.values())))
    rows = [{name: x[None, start : start + length] for name, x in streams.items()}
            for start in range(0, total - length + 1, length)]
    if not rows:
        raise ValueError(f"the calibration sample has fewer than {length} tokens")
    return rows


STAGED_NOTE = ("model_int8_staged.tflite: full int8 at any length. The graph is cut at its recurrences into "
               "stages (signatures stage_0..stage_W: embeddings, reversals, heads) and the recurrences run as "
               "explicit-state chunks of {chunk} unrolled int8 steps (signatures cell_0..cell_(W-1)); every op is "
               "a plain int8 kernel, no integer LSTM op and no WHILE loop. metadata.json (artifacts) says how an "
               "app calls it; kerasrnn's StagedRunner does it.")


def _staged_int8(graph, path: Path, settings: ExportSettings, calibration, directory: Path, errors: dict,
                 protocols: dict) -> list[tuple]:
    """The staged int8 file's conversion job (its SavedModel written into `directory`), or none."""
    from kerasrnn.export.staged import StagedGraph, calibration_calls, save_staged

    progress(f"staging {path.name} (chunks of {settings.int8_chunk} steps)")
    try:
        staged = StagedGraph(graph, chunk=settings.int8_chunk)
    except ValueError as e:  # no recurrent layer: model_int8.tflite is already fast
        errors[path.name] = f"{path.name}: not made: {e}"
        return []
    concrete = save_staged(staged, directory)
    # Rows of at least two chunks: a cell's state inputs must see values other than the zero start state.
    length = max(settings.calibration_length, 2 * settings.int8_chunk)
    calls = calibration_calls(staged, concrete, calibration_rows(calibration, length))
    protocols[path.name] = staged.describe()
    return [(directory, path, QuantizationConfig.for_int8(calls))]


def _streams(graph, export_dir: Path, settings: ExportSettings, calibration, directory: Path, errors: dict,
             protocols: dict) -> list[tuple]:
    """The streaming files' conversion jobs, for a model whose recurrences all read forwards (or a BiLM's forward
    direction)."""
    from kerasrnn.export.keras_graph import UnsupportedLayerError
    from kerasrnn.export.streaming import StreamGraph, save_stream, stream_calibration_calls

    try:
        stream = StreamGraph(graph, chunk=settings.stream_chunk)
    except UnsupportedLayerError as e:
        progress(f"no streaming files: {e}")
        return []
    concrete = save_stream(stream, directory)
    fp32, int8 = STREAMS
    protocols[fp32] = protocols[int8] = stream.describe()  # a file not made is reported with its error
    jobs = [(directory, export_dir / fp32, QuantizationConfig.for_float32())]
    if stream.language_model:
        # Measured on bilm_pretrain with training.evaluate --artifact: forward perplexity 19,378 vs 306.6 for
        # Keras and the fp32 stream; not shipped until explained (README, streaming). No calibration run for it.
        errors[int8] = (f"{int8}: not made for a language model: its int8 next-token softmax is not accurate "
                        "(README, streaming); use model_stream_fp32.tflite")
        return jobs
    calls = stream_calibration_calls(stream, concrete, calibration_rows(calibration, settings.calibration_length))
    jobs.append((directory, export_dir / int8, QuantizationConfig.for_int8(calls)))
    return jobs


def convert_all(make_graph, export_dir: Path, settings: ExportSettings, calibration,
                protocols: dict | None = None) -> dict[str, str]:
    """Writes every artifact it can from `make_graph(fixed_length)` (a KerasGraph), int8 calibrated on the rows
    of `calibration`; returns {file: error message} for the ones a converter could not make. `protocols`, if
    given, receives {file: how to call it} for files of several signatures."""
    errors = {}
    protocols = {} if protocols is None else protocols
    graph = make_graph(None)
    with tempfile.TemporaryDirectory() as tmp:
        saved_model = save_saved_model(graph, Path(tmp) / "saved_model")
        jobs = [(saved_model, export_dir / "model_fp32.tflite", QuantizationConfig.for_float32()),
                (saved_model, export_dir / "model_dynamic.tflite", QuantizationConfig.for_dynamic()),
                (saved_model, export_dir / "model_int8.tflite",
                 QuantizationConfig.for_int8(calibration_rows(calibration, settings.calibration_length)))]
        if settings.int8_fixed_length:
            unrolled = save_saved_model(make_graph(settings.int8_fixed_length), Path(tmp) / "saved_model_unrolled")
            # Calibration rows must have the graph's length.
            quantization = QuantizationConfig.for_int8(calibration_rows(calibration, settings.int8_fixed_length))
            jobs.append((unrolled, export_dir / fixed_int8_name(settings.int8_fixed_length), quantization))
        if settings.int8_chunk:
            jobs += _staged_int8(graph, export_dir / STAGED_INT8, settings, calibration,
                                 Path(tmp) / "saved_model_staged", errors, protocols)
        if settings.stream_chunk:
            jobs += _streams(graph, export_dir, settings, calibration, Path(tmp) / "saved_model_stream", errors,
                             protocols)
        # One converter child for every file (one TensorFlow start); a crash costs only the file it was on
        progress(f"converting {', '.join(path.name for _, path, _ in jobs)}")
        failed = to_tflite_files(jobs, on_file=lambda path: progress(f"wrote {path.name}"))
        for message in failed.values():
            progress(f"FAILED {message}")
        errors.update(failed)
    progress("converting model_fp32.onnx")
    to_onnx(graph, export_dir / "model_fp32.onnx")
    progress("quantizing model_int8.onnx")
    quantize_onnx(export_dir / "model_fp32.onnx", export_dir / "model_int8.onnx")
    return errors


def _artifact_names(settings: ExportSettings) -> list[str]:
    names = list(ARTIFACTS)
    if settings.int8_fixed_length:
        names.append(fixed_int8_name(settings.int8_fixed_length))
    if settings.int8_chunk:
        names.append(STAGED_INT8)
    return names


def _export(target, export_dir: Path, settings: ExportSettings, calibration, data, examples=None) -> dict:
    """Converts, verifies and writes `report.json` / `report.md`: the one path of every export."""
    protocols = {}
    errors = convert_all(target.graph, export_dir, settings, calibration, protocols)
    metadata = target.metadata()
    made = {name: protocol for name, protocol in protocols.items() if name not in errors}
    if made:
        metadata["artifacts"] = made
    atomic_write_json(metadata, export_dir / "metadata.json")
    names = _artifact_names(settings)
    produced = [name for name in names if name not in errors]
    checks = verify(target, export_dir, settings, produced, data, target.specs(), examples)
    report = target.header()
    report["keras"] = checks.pop("keras")
    report["artifacts"] = {name: checks[name] if name in checks else {"error": errors[name]} for name in names}
    streams = [name for name in STREAMS if name in protocols]
    if streams:
        from kerasrnn.export.verify import verify_streams

        report["streaming"] = {name: {"error": errors[name]} if name in errors else entry
                               for name, entry in verify_streams(target, export_dir, settings,
                                                                 [n for n in streams if n not in errors], data
                                                                 ).items()}
        report["streaming"].update({name: {"error": errors[name]} for name in streams if name in errors})
    notes = target.notes()
    if STAGED_INT8 in produced:
        notes = [*notes, STAGED_NOTE.format(chunk=settings.int8_chunk)]
    if notes:
        report["notes"] = notes
    return report


def _write_report(report: dict, target, export_dir: Path) -> None:
    atomic_write_json(report, export_dir / "report.json")
    atomic_write_text(report_markdown(report, target), export_dir / "report.md")


def export_run(run_dir, export_dir=None, settings: ExportSettings | None = None) -> dict:
    """Converts, verifies and reports; returns the report dict also written to `report.json`."""
    settings = settings or ExportSettings()
    run_dir = Path(run_dir)
    export_dir = Path(export_dir) if export_dir else run_dir / "export"
    run = load_run(run_dir)
    if run.config.task.type == "language_model" and settings.prune_sparsity is not None:
        raise ValueError("pruning applies to task models, not to a language model's embedder")
    make_dir(export_dir)
    target = target_for(run, settings)
    run.preprocessor.save(export_dir)
    train_examples = read_split(run.config, "train")  # each split is read once per export
    test_examples = target.test_examples(read_split(run.config, "test"))
    test_data = run.encode(test_examples)
    report = _export(target, export_dir, settings, calibration_sample(run, train_examples, settings), test_data,
                     test_examples)
    progress(f"writing {conformance.CONFORMANCE_FILE}")
    conformance.write(export_dir, conformance.build(run.preprocessor, export_dir, list(report["artifacts"]),
                                                    test_examples))
    if settings.prune_sparsity is not None:
        from kerasrnn.export.pruning import prune_and_export

        report["pruned"] = prune_and_export(run, export_dir, settings, train_examples, test_examples, test_data)
    _write_report(report, target, export_dir)
    return report


def load_ids(path) -> dict[str, np.ndarray] | np.ndarray:
    """Ids from a `.npy` file (int [rows, time]) or an `.npz` file (one array per input name)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        loaded = np.load(path, allow_pickle=False)
    except ValueError as e:
        raise ValueError(f"{path}: not a NumPy .npy/.npz file of ids ({e})") from None
    return dict(loaded.items()) if isinstance(loaded, np.lib.npyio.NpzFile) else loaded


def export_model(model, export_dir, calibration, check=None, settings: ExportSettings | None = None,
                 labels=None) -> dict:
    """Exports a Keras model that was not made by `training.train` (a notebook model: Embedding -> (Bi)LSTM/GRU ->
    Dense and the other layers `KerasGraph` supports) to the same artifacts, verified and reported like a run.

    Args:
        model: keras.Model, or the path of a `.keras` file (loaded with our checks and safe_mode on).
        export_dir: folder to write (created).
        calibration: int ids [rows, time] right-padded with 0 (a NumPy array, or a dict of arrays by input name
            for several inputs; a `.npy` / `.npz` path): int8 calibration rows, and the check rows by default.
        check: the same kind of ids for the parity and padding checks. Defaults to `calibration`.
        settings: ExportSettings. Defaults to ExportSettings().
        labels: gold label ids of the check rows ([rows, time] for per-token outputs, [rows] otherwise; an array or
            a `.npy` path): each artifact's accuracy is then reported beside the Keras model's. Defaults to None.

    Returns the report dict (also in `report.json`). Raises UnsupportedLayerError (a ValueError) naming a layer the
    converter does not rebuild, and InputError for ids the model cannot take (left padding, holes, out of range).
    """
    from kerasrnn.export.targets import KerasModelTarget

    settings = settings or ExportSettings()
    if isinstance(model, str | Path):
        from kerasrnn.safe_load import load_model

        model = load_model(model)
    target = KerasModelTarget(model, settings)
    calibration = target.rows(load_ids(calibration) if isinstance(calibration, str | Path) else calibration)
    check = calibration if check is None else target.rows(load_ids(check) if isinstance(check, str | Path) else check)
    export_dir = Path(export_dir)
    make_dir(export_dir)
    gold = target.labels(load_ids(labels) if isinstance(labels, str | Path) else labels, check)
    report = _export(target, export_dir, settings, calibration, check, gold)
    progress(f"writing {conformance.CONFORMANCE_FILE}")
    conformance.write(export_dir, conformance.build_ids(export_dir, target.specs(), check, list(report["artifacts"])))
    _write_report(report, target, export_dir)
    return report
