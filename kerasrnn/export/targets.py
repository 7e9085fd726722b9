"""What an export checks and reports, per kind of model: a task model (tagger, classifier) scored with its
metric, or an embedder (a BiLM's top-layer vectors) checked for parity only.

The export path is one; a target supplies the Keras reference outputs, the per-artifact metric, the output
description of `metadata.json` and the report's table cells.
"""

from __future__ import annotations

import numpy as np

from kerasrnn.metrics import score


class TaskTarget:
    """A SequenceTagger or TextClassifier run: probabilities, scored with the task's metric on the test split."""

    kind = "task"

    def __init__(self, run, settings):
        self.run, self.config = run, run.config

    def test_examples(self, examples):
        return examples

    def header(self) -> dict:
        return {"task": self.config.task.name, "metric": self.config.task.metric, "cell": self.run.model.encoder.cell}

    def output(self) -> dict:
        tagging = self.config.task.type == "tagging"
        n = len(self.run.labels)
        return {
            "name": "probabilities", "dtype": "float32",
            "shape": ["batch", "time", n] if tagging else ["batch", n],
            "meaning": ("softmax over tags for each token; read positions 0..length-1 of each row, ignore padding"
                        if tagging else "softmax over labels for the sentence; padding does not change it"),
        }

    def keras_runner(self):
        from kerasrnn.runtime.runners import KerasRunner

        return KerasRunner(model=self.run.model)

    def reference(self, runner, data) -> list:
        from kerasrnn.runtime.runners import run_batched

        return run_batched(runner, data)

    def flatten(self, outputs: list) -> np.ndarray:
        """The valid outputs of all rows as one array whose last axis is compared."""
        return np.concatenate(outputs) if self.config.task.type == "tagging" else np.stack(outputs)

    def metric(self, examples, outputs) -> float:
        return score(self.config, examples, self.run.labels, outputs)[self.config.task.metric]

    def keras_entry(self, examples, reference) -> dict:
        return {"test_metric": self.metric(examples, reference)}

    def artifact_entry(self, examples, outputs, reference, fixed: bool, keras_entry: dict) -> dict:
        return {"test_metric": self.metric(examples, outputs),
                "keras_test_metric": self.metric(examples, reference) if fixed else keras_entry["test_metric"]}

    def parity_extra(self, outputs: np.ndarray, reference: np.ndarray) -> dict:
        return {"argmax_agreement": float(np.mean(outputs.argmax(-1) == reference.argmax(-1)))}

    def notes(self) -> list[str]:
        if self.run.model.encoder.cell != "gru":
            return []
        return [
            "GRU: TFLite has no fused GRU op; model_fp32.tflite and model_dynamic.tflite run the recurrence as "
            "WHILE loops (builtin ops only). ONNX files use native GRU ops.",
            "GRU full int8: the TFLite calibrator crashes on WHILE loops (model_int8.tflite is not produced when "
            "it does); the unrolled fixed-length file (model_int8_len*.tflite) is the full-int8 GRU artifact.",
        ]

    def title(self) -> str:
        return f"# Export report: {self.config.task.name}"

    def description(self, report: dict) -> str:
        return (f"Test split, {self.config.task.metric}; parity against the Keras model on valid positions; "
                "latency at batch 1, 32 tokens, 1 thread (median / p90).")

    def columns(self) -> list[str]:
        metric = self.config.task.metric
        return [f"test {metric}", "delta vs Keras (points)", "bytes", "parity max_abs", "padding max diff"]

    def keras_cells(self, keras: dict) -> list[str]:
        return [f"{keras['test_metric']:.4f}", "-", "-", "-", "-"]

    def cells(self, r: dict) -> list[str]:
        return [f"{r['test_metric']:.4f}", f"{100 * (r['test_metric'] - r['keras_test_metric']):+.2f}",
                f"{r['bytes']:,}", f"{r['parity']['max_abs']:.2e}", f"{r['padding_max_diff']:.2e}"]


class EmbedderTarget:
    """A BiLM run: the top layer's vectors per token, checked against the Keras BiLM on test sentences."""

    kind = "embedder"

    def __init__(self, run, settings):
        from kerasrnn.embedder import Embedder

        self.run, self.config, self.settings = run, run.config, settings
        self.embedder = Embedder.from_run(run)

    def test_examples(self, examples):
        return examples[: self.settings.embedder_sentences]

    def header(self) -> dict:
        return {"task": self.config.task.name, "kind": "embedder", "cell": self.run.model.cell}

    def output(self) -> dict:
        units = self.run.model.units
        return {"name": "vectors", "dtype": "float32", "shape": ["batch", "time", 2 * units],
                "meaning": f"contextual vector of each token: forward LM state (first {units}) and backward LM "
                           f"state (last {units}) of the top layer; read positions 0..length-1, ignore padding"}

    def keras_runner(self):
        return self.embedder.top_layer  # what an embedder export outputs

    def reference(self, runner, data) -> list:
        return [layers[-1] for layers in self.embedder.embed_encoded(data)]

    def flatten(self, outputs: list) -> np.ndarray:
        return np.concatenate(outputs)

    def keras_entry(self, examples, reference) -> dict:
        return {"sentences": len(examples)}

    def artifact_entry(self, examples, outputs, reference, fixed: bool, keras_entry: dict) -> dict:
        return {}

    def parity_extra(self, outputs: np.ndarray, reference: np.ndarray) -> dict:
        return {"tokens": int(len(outputs))}

    def notes(self) -> list[str]:
        return []

    def title(self) -> str:
        return (f"# Export report: {self.config.task.name} (embedder: top-layer vectors, "
                f"{self.run.model.units * 2} per token)")

    def description(self, report: dict) -> str:
        return (f"First {report['keras']['sentences']} test sentences; parity against the Keras BiLM on valid tokens "
                "(max |difference|, mean and minimum cosine); latency at batch 1, 32 tokens, 1 thread (median / p90).")

    def columns(self) -> list[str]:
        return ["bytes", "parity max_abs", "mean cos", "min cos", "padding max diff"]

    def keras_cells(self, keras: dict) -> list[str]:
        return ["-"] * 5

    def cells(self, r: dict) -> list[str]:
        p = r["parity"]
        return [f"{r['bytes']:,}", f"{p['max_abs']:.2e}", f"{p['mean_cos']:.5f}", f"{p['min_cos']:.4f}",
                f"{r['padding_max_diff']:.2e}"]


def target_for(run, settings):
    """The target of a run's model."""
    return EmbedderTarget(run, settings) if run.config.task.type == "language_model" else TaskTarget(run, settings)
