"""Verification of every artifact against the Keras model on the test split: the target's metric, parity on
valid positions, padding invariance, ops, size and latency."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kerasrnn.data.pipeline import IdRows
from kerasrnn.export.converters import onnx_ops, tflite_ops
from kerasrnn.export.settings import ExportSettings
from kerasrnn.runtime.runners import load_runner, run_batched
from kerasrnn.runtime.timing import latency_input, time_calls


def progress(message: str) -> None:
    print(f"[export] {message}", flush=True)


def verify(target, export_dir: Path, settings: ExportSettings, artifacts, data, specs, examples=None) -> dict:
    """{"keras": ..., ARTIFACT: ...} on the rows `data` (EncodedData or IdRows; `examples` the labelled examples
    they encode, for a target with a metric), each artifact's inputs checked against `specs`.

    A fixed-length artifact is checked on the rows that fit its length, against the Keras model on the same rows
    (`rows_scored` says how many).
    """
    keras_runner = target.keras_runner()
    reference = target.reference(keras_runner, data)
    lat_features = latency_input(data, settings.latency_tokens)
    keras_entry = target.keras_entry(examples, reference)
    report = {"keras": {**keras_entry, "latency_ms": _latency(keras_runner, lat_features, settings.latency_runs)}}
    for name in artifacts:
        path = export_dir / name
        progress(f"verifying {name}")
        runner = load_runner(path, num_threads=1, specs=specs)
        fixed = getattr(runner, "fixed_length", None)
        index = [i for i, n in enumerate(data.lengths) if fixed is None or n <= fixed]
        rows = subset(data, index)
        outputs = run_batched(runner, rows)
        ref = [reference[i] for i in index]
        scored = None if examples is None else [examples[i] for i in index]
        entry = target.artifact_entry(scored, outputs, ref, fixed is not None, keras_entry)
        flat_out, flat_ref = target.flatten(outputs), target.flatten(ref)
        entry.update(artifact_checks(runner, path, rows, flat_out, flat_ref, settings, lat_features,
                                     f"{len(index)} of {len(data)}"))
        entry["parity"].update(target.parity_extra(flat_out, flat_ref))
        report[name] = entry
    return report


def subset(data, index) -> IdRows:
    return IdRows({name: [rows[i] for i in index] for name, rows in data.inputs.items()})


def _latency(runner, features, runs: int) -> dict[str, float]:
    return {k: round(v, 4) for k, v in time_calls(lambda: runner(features), runs).items()}


def artifact_checks(runner, path: Path, rows, outputs, reference, settings: ExportSettings, lat_features,
                    rows_scored: str) -> dict:
    """Size, ops, parity (max |difference|, mean and minimum cosine on valid positions), padding and latency."""
    fixed = getattr(runner, "fixed_length", None)
    cos = np.sum(outputs * reference, -1) / np.maximum(
        np.linalg.norm(outputs, axis=-1) * np.linalg.norm(reference, axis=-1), 1e-12)
    check = subset(rows, range(min(settings.parity_sentences, len(rows))))
    pad_diff = max(float(np.abs(a - b).max()) for a, b in zip(
        run_batched(runner, check), padded_outputs(runner, check, settings.extra_padding, fixed), strict=True))
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


def _fit_length(features: dict, fixed: int | None) -> dict:
    """Latency features cut to a fixed-length artifact's length when it is shorter."""
    return features if fixed is None else {k: v[:, :fixed] for k, v in features.items()}


def padded_outputs(runner, data, extra: int, fixed_length: int | None = None) -> list:
    """Outputs of each row run alone with `extra` pad positions appended (up to a fixed length), cut back to the
    valid positions."""
    out = []
    lengths = data.lengths
    for i, n in enumerate(lengths):
        pad = extra if fixed_length is None else min(extra, fixed_length - n)
        features = {name: np.pad(rows[i], [(0, pad)] + [(0, 0)] * (rows[i].ndim - 1))[None, :]
                    for name, rows in data.inputs.items()}
        probs = runner(features)[0]
        out.append(probs[:n] if probs.ndim == 2 else probs)
    return out


def verify_streams(target, export_dir: Path, settings: ExportSettings, names, data) -> dict:
    """Each streaming file on the first `parity_sentences` rows, fed token by token and in chunks of 5, against
    the full-row outputs of the Keras model (for a BiLM: its forward next-token probabilities); the latency of
    one step."""
    from kerasrnn.runtime.streaming import StreamRunner

    rows = subset(data, range(min(settings.parity_sentences, len(data))))
    reference = target.stream_reference(rows)
    report = {}
    for name in names:
        progress(f"verifying {name} (streaming)")
        stream = StreamRunner(export_dir / name, specs=target.specs())
        diffs = {1: 0.0, 5: 0.0}
        for i, ref in enumerate(reference):
            row = {key: inputs[i] for key, inputs in rows.inputs.items()}
            for size in diffs:
                stream.reset()
                got = np.concatenate([stream.feed({k: v[s : s + size] for k, v in row.items()})
                                      for s in range(0, len(ref), size)])
                diffs[size] = max(diffs[size], float(np.abs(got - ref).max()))
        first = {key: inputs[0][:1] for key, inputs in rows.inputs.items()}
        report[name] = {"bytes": (export_dir / name).stat().st_size, "ops": tflite_ops(export_dir / name),
                        "rows": len(reference),
                        "parity": {"token_by_token_max_abs": diffs[1], "chunks_of_5_max_abs": diffs[5]},
                        "step_latency_ms": _latency(stream.feed, first, settings.latency_runs)}
    return report
