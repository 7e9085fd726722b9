"""Predictions, task scores and language-model perplexity of a trained model; `evaluate` for a run directory."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from kerasrnn.data.pipeline import EncodedData, ordered_batches
from kerasrnn.data.readers import read_examples
from kerasrnn.files import atomic_write_json
from kerasrnn.metrics import score
from kerasrnn.run import load_run


def predict(model, data: EncodedData, batch_size: int = 64, runner=None) -> list[np.ndarray] | np.ndarray:
    """Probabilities in input order: one [T, num_tags] array per sentence (tagging) or [N, num_labels].

    Pass `runner` (a KerasRunner of `model`) to reuse its traced function across calls."""
    from kerasrnn.runtime.runners import KerasRunner, run_batched

    outputs = run_batched(runner or KerasRunner(model=model), data, batch_size)
    return outputs if outputs and outputs[0].ndim == 2 else np.stack(outputs)


def log_prob_function(model):
    import tensorflow as tf

    return tf.function(lambda inputs: model.token_log_probs(inputs, numpy=False), reduce_retracing=True)


def perplexity(model, data: EncodedData, batch_size: int = 32, fn=None) -> dict[str, float]:
    """Full-softmax perplexity of the forward LM, the backward LM, and of both (exp of the mean negative
    log-likelihood over all predicted tokens of both directions, as ELMo reports it). Tokens outside the
    vocabulary are predicted as the unknown word. `fn` (from `log_prob_function`) reuses a traced function."""
    fn = fn or log_prob_function(model)
    totals, counts = np.zeros(2), np.zeros(2)
    for _, features in ordered_batches(data, batch_size):
        lengths = (features["token_ids"] != 0).sum(1)
        predicted = int(np.maximum(lengths - 1, 0).sum())  # every token but the first (forward) or last (backward)
        for d, logp in enumerate(fn(features)):
            totals[d] -= float(np.sum(logp))
            counts[d] += predicted
    fw, bw = totals / np.maximum(counts, 1)
    return {
        "perplexity": round(math.exp((totals.sum()) / max(counts.sum(), 1)), 3),
        "forward_perplexity": round(math.exp(fw), 3),
        "backward_perplexity": round(math.exp(bw), 3),
        "tokens": int(counts[0]),
    }


def evaluate(run_dir, path, *, artifact=None) -> dict:
    """Scores the run's model, or a `.tflite` / `.onnx` artifact of it, on a file of the run's data format;
    writes `eval.json` into the run directory."""
    from kerasrnn.runtime.runners import load_runner, run_batched

    run_dir = Path(run_dir)
    run = load_run(run_dir)
    if run.config.task.type == "language_model":
        result = _language_model_eval(run, path, artifact)
        atomic_write_json(result, run_dir / "eval.json")
        return result
    examples = read_examples(path, run.config.data.format, split="test")
    for e in examples:
        for label in e.tags if run.config.task.type == "tagging" else [e.label]:
            run.labels.lookup(label)
    data = run.encode(examples)
    if artifact is None:
        probs = predict(run.model, data)
    else:
        probs = run_batched(load_runner(artifact, **run.preprocessor.sizes), data)
    result = score(run.config, examples, run.labels, probs, run.preprocessor.crf)
    if artifact is not None:
        result["artifact"] = str(artifact)
    atomic_write_json(result, run_dir / "eval.json")
    return result


def _language_model_eval(run, path, artifact) -> dict:
    """Perplexities of the run's BiLM on raw text, or the forward perplexity of a streaming file of it."""
    data = run.encode(read_examples(path, run.config.data.format, split="test"))
    if artifact is None:
        result = perplexity(run.model, data)
        return {key: result[key] for key in ("perplexity", "forward_perplexity", "backward_perplexity")}
    if "stream" not in Path(artifact).name:
        raise ValueError(f"{artifact}: a language model's perplexity is scored on a streaming file "
                         "(model_stream_*.tflite: next-token probabilities); the other exports output vectors")
    return {"forward_perplexity": round(stream_forward_perplexity(artifact, data, run.preprocessor), 3),
            "artifact": str(artifact)}


def stream_forward_perplexity(artifact, data: EncodedData, preprocessor) -> float:
    """exp(mean -log p(token t+1 | tokens 0..t)) with each sentence fed to a streaming file, as `perplexity`
    counts the forward direction (every token but the first is predicted)."""
    from kerasrnn.runtime.runners import task_specs
    from kerasrnn.runtime.streaming import StreamRunner

    stream = StreamRunner(artifact, specs=task_specs(**preprocessor.sizes))
    total, count = 0.0, 0
    for i, ids in enumerate(data.inputs["token_ids"]):
        if len(ids) < 2:
            continue
        stream.reset()
        out = stream.feed({name: rows[i][:-1] for name, rows in data.inputs.items()})[np.arange(len(ids) - 1), ids[1:]]
        total -= float(np.sum(out if stream.log_outputs else np.log(np.maximum(out, 1e-30))))
        count += len(ids) - 1
    return math.exp(total / max(count, 1))
