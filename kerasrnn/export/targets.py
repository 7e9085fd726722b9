"""What an export checks and reports, per kind of model: a task model (tagger, classifier) scored with its
metric, or an embedder (a BiLM's top-layer vectors) checked for parity only.

The export path is one; a target supplies the Keras reference outputs, the per-artifact metric, the output
description of `metadata.json` and the report's table cells.
"""

from __future__ import annotations

import functools

import numpy as np

from kerasrnn.metrics import score
from kerasrnn.runtime.runners import InputSpec, task_specs, validate_inputs


class RunTarget:
    """What task and embedder runs share: the graph of the run's model and the inputs of its preprocessor."""

    softmax = False
    output_name = "vectors"

    def graph(self, fixed_length=None):
        from kerasrnn.export.keras_graph import KerasGraph

        # the preprocessor cuts rows at its max_length: an SRU's scan needs no more steps than cover it
        return KerasGraph(self.run.model, fixed_length=fixed_length, softmax=self.softmax,
                          output_name=self.output_name, sru_max_length=self.run.preprocessor.max_length)

    @functools.cached_property
    def max_length(self) -> int | None:
        """The longest row the exports take: the preprocessor's max_length when an SRU's scan bounds it, else None."""
        from kerasrnn.export.keras_graph import max_length

        return max_length(self.run.model, self.run.preprocessor.max_length)

    def specs(self) -> list[InputSpec]:
        return task_specs(**self.run.preprocessor.sizes, max_length=self.max_length)

    def stream_reference(self, rows) -> list:
        """What a streaming file must answer for each row: the Keras outputs of the whole row."""
        return self.reference(self.keras_runner(), rows)

    def metadata(self) -> dict:
        """`metadata.json`: how an app turns text into the model's inputs (the preprocessor's description) and reads
        its output."""
        described = self.run.preprocessor.describe()
        if self.max_length is not None:
            for info in described["inputs"].values():
                info["max_length"] = self.max_length
        return {"task": self.config.task.name, **described, "output": self.output()}


class TaskTarget(RunTarget):
    """A SequenceTagger or TextClassifier run: probabilities, scored with the task's metric on the test split."""

    kind = "task"
    softmax = True
    output_name = "probabilities"

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
        return score(self.config, examples, self.run.labels, outputs, self.run.preprocessor.crf)[self.config.task.metric]

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
            "it does); model_int8_staged.tflite (any length) and model_int8_len*.tflite (fixed length) are the "
            "full-int8 GRU artifacts.",
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


class EmbedderTarget(RunTarget):
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
        units = self.run.model.state_dim  # each direction's width (the projection's with LSTMP layers)
        return {"name": "vectors", "dtype": "float32", "shape": ["batch", "time", 2 * units],
                "meaning": f"contextual vector of each token: forward LM state (first {units}) and backward LM "
                           f"state (last {units}) of the top layer; read positions 0..length-1, ignore padding"}

    def keras_runner(self):
        return self.embedder.top_layer  # what an embedder export outputs

    def reference(self, runner, data) -> list:
        return [layers[-1] for layers in self.embedder.embed_encoded(data)]

    def flatten(self, outputs: list) -> np.ndarray:
        return np.concatenate(outputs)

    def stream_reference(self, rows) -> list:
        """The Keras BiLM's forward next-token log-probabilities of each row, [length, vocabulary]."""
        from kerasrnn.data.pipeline import ordered_batches

        lm = self.run.model
        out = [None] * len(rows)
        for index, features in ordered_batches(rows, 32):
            top = np.asarray(lm(features, training=False)[-1])[..., : lm.state_dim]
            logits = top @ np.asarray(lm.softmax_kernel).T + np.asarray(lm.softmax_bias)
            logits = logits - logits.max(-1, keepdims=True)
            logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
            for row, i in enumerate(index):
                out[i] = logp[row, : rows.lengths[i]].astype(np.float32)
        return out

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
                f"{self.run.model.state_dim * 2} per token)")

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


class KerasModelTarget:
    """A Keras model that no training run made (a notebook model): its own inputs and output, checked for parity
    against the Keras model on the given rows, each row at its own length (no padding: what the model answers for
    that row); no metric without labels."""

    kind = "keras_model"

    def __init__(self, model, settings):
        from kerasrnn.export.keras_graph import KerasGraph, UnsupportedLayerError

        self.model = model
        self._graph = KerasGraph(model)
        for info in self._graph.inputs.values():
            if info.id_range is None:
                raise UnsupportedLayerError(f"input {info.name!r} feeds no Embedding; the export takes id inputs "
                                            "read by Embedding (or kerasrnn's CharCNN) layers")
        self.output_name = self._graph.output_name
        self.per_token = len(model.outputs[0].shape) == 3
        import tensorflow as tf

        names = list(self._graph.inputs)
        as_dict = isinstance(getattr(model, "_inputs_struct", None), dict)

        def call(features):
            args = features if as_dict else [features[n] for n in names]
            return model(args[0] if isinstance(args, list) and len(args) == 1 else args, training=False)

        # Keras' TimeDistributed fails inside a tf.function traced for any length ("slice index out of bounds" in
        # its vectorized_map): with one, the call is traced once per row length.
        any_length = not any(type(layer).__name__ == "TimeDistributed"
                             for layer in model._flatten_layers(recursive=True))
        self._call = tf.function(call, reduce_retracing=any_length)

    def graph(self, fixed_length=None):
        from kerasrnn.export.keras_graph import KerasGraph

        return self._graph if fixed_length is None else KerasGraph(self.model, fixed_length=fixed_length)

    def specs(self) -> list[InputSpec]:
        return [InputSpec(i.name, len(i.shape) + 1, i.id_range, i.right_padded, i.shape[1] if len(i.shape) > 1
                          else None, i.max_length) for i in self._graph.inputs.values()]

    def rows(self, ids):
        """IdRows of right-padded id arrays (one array for a one-input model, or a dict by input name), each row
        cut to its length; ids the model cannot take (out of range, left padding, holes) raise InputError."""
        from kerasrnn.data.pipeline import IdRows

        names = list(self._graph.inputs)
        if not isinstance(ids, dict):
            if len(names) != 1:
                raise ValueError(f"the model has inputs {names}: give a dict (an .npz file) with one array each")
            ids = {names[0]: ids}
        arrays = validate_inputs(dict(ids), specs=self.specs())
        return IdRows.from_arrays(arrays, self._graph.padded)

    def metadata(self) -> dict:
        graph = self._graph
        return {
            "task": self.model.name,
            "task_type": "keras_model",
            "inputs": {name: info.describe() for name, info in graph.inputs.items()},
            "output": self.output(),
            "pad_id": 0,
            "padding": (f"right: a row is its ids followed by 0s (input {graph.padded!r} decides the length); "
                        "every row holds at least one id" if graph.padded else
                        "none: the model has no mask_zero Embedding, every position is read"),
        }

    def header(self) -> dict:
        return {"task": self.model.name, "kind": "keras_model", "output": self.output_name}

    def output(self) -> dict:
        shape = ["batch", "time"] if self.per_token else ["batch"]
        return {"name": self.output_name, "dtype": "float32", "shape": shape + [int(self.model.outputs[0].shape[-1])],
                "meaning": "the Keras model's output, unchanged (logits stay logits, a softmax stays a softmax)"
                           + ("; read positions 0..length-1 of each row" if self.per_token else "")}

    def keras_runner(self):
        return lambda features: np.asarray(self._call({k: np.asarray(v) for k, v in features.items()}))

    def stream_reference(self, rows) -> list:
        return self.reference(self.keras_runner(), rows)

    def reference(self, runner, data) -> list:
        """The Keras output of each row at its own length (rows of one length run as a batch, unpadded)."""
        from kerasrnn.export.verify import subset

        out = [None] * len(data)
        lengths = data.lengths
        for n in np.unique(lengths):
            index = np.flatnonzero(lengths == n)
            batch = subset(data, index)
            y = runner({name: np.stack(rows) for name, rows in batch.inputs.items()})
            for row, i in enumerate(index):
                out[i] = y[row]
        return out

    def flatten(self, outputs: list) -> np.ndarray:
        return np.concatenate(outputs) if self.per_token else np.stack(outputs)

    def labels(self, labels, data) -> list[np.ndarray] | None:
        """Per-row gold label ids cut like the rows (per token [rows, time] or per row [rows]), or None."""
        if labels is None:
            return None
        labels = np.asarray(labels)
        if len(labels) != len(data):
            raise ValueError(f"{len(labels)} label rows for {len(data)} check rows")
        return [labels[i, :n] if self.per_token else labels[i] for i, n in enumerate(data.lengths)]

    def metric(self, labels, outputs) -> float:
        """Accuracy of the argmax on valid positions (per token) or rows."""
        return float(np.mean(self.flatten(outputs).argmax(-1) == (np.concatenate(labels) if self.per_token
                                                                   else np.asarray(labels))))

    def keras_entry(self, labels, reference) -> dict:
        return {"rows": len(reference), **({} if labels is None else {"test_metric": self.metric(labels, reference)})}

    def artifact_entry(self, labels, outputs, reference, fixed: bool, keras_entry: dict) -> dict:
        if labels is None:
            return {}
        return {"test_metric": self.metric(labels, outputs),
                "keras_test_metric": self.metric(labels, reference) if fixed else keras_entry["test_metric"]}

    def parity_extra(self, outputs: np.ndarray, reference: np.ndarray) -> dict:
        if outputs.shape[-1] < 2:
            return {}
        return {"argmax_agreement": float(np.mean(outputs.argmax(-1) == reference.argmax(-1)))}

    def notes(self) -> list[str]:
        notes = []
        if not self._graph.padded:
            notes.append("The model has no mask_zero Embedding: every position is read, so appending padding "
                         "changes its answers in Keras and in every artifact alike.")
        if any(type(layer).__name__ == "GRU" for layer in self.model._flatten_layers(recursive=True)):
            notes.append("GRU: TFLite has no fused GRU op; model_fp32/dynamic.tflite run WHILE loops, and full int8 "
                         "exists as model_int8_staged.tflite (any length) and the unrolled fixed-length file (the "
                         "calibrator crashes on WHILE loops).")
        return notes

    def title(self) -> str:
        return f"# Export report: {self.model.name} (Keras model, output {self.output_name!r})"

    def description(self, report: dict) -> str:
        return (f"{report['keras']['rows']} check rows, each against the Keras model at its own length; accuracy of "
                "the argmax against the given labels (points vs Keras) where labels were given; parity on valid "
                "positions (max |difference|, mean cosine, argmax agreement); latency at batch 1, 32 positions, 1 "
                "thread (median / p90).")

    def columns(self) -> list[str]:
        return ["accuracy", "bytes", "parity max_abs", "mean cos", "argmax agreement", "padding max diff"]

    def keras_cells(self, keras: dict) -> list[str]:
        return [f"{keras['test_metric']:.4f}" if "test_metric" in keras else "-"] + ["-"] * 5

    def cells(self, r: dict) -> list[str]:
        p = r["parity"]
        agreement = f"{p['argmax_agreement']:.4f}" if "argmax_agreement" in p else "-"
        accuracy = (f"{r['test_metric']:.4f} ({100 * (r['test_metric'] - r['keras_test_metric']):+.2f})"
                    if "test_metric" in r else "-")
        return [accuracy, f"{r['bytes']:,}", f"{p['max_abs']:.2e}", f"{p['mean_cos']:.5f}", agreement,
                f"{r['padding_max_diff']:.2e}"]


def target_for(run, settings):
    """The target of a run's model."""
    return EmbedderTarget(run, settings) if run.config.task.type == "language_model" else TaskTarget(run, settings)
