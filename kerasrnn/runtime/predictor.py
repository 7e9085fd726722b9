"""Raw text in, tags or labels with probabilities out, for a `.tflite`, `.onnx` or `.keras` model."""

from __future__ import annotations

import numpy as np

from kerasrnn.data.readers import Example
from kerasrnn.preprocessor import Preprocessor
from kerasrnn.runtime.runners import load_runner, run_batched
from kerasrnn.text.bio import decode_tags
from kerasrnn.text.tokenizer import WordTokenizer


class Predictor:
    """Tags or classifies raw text (tokenized with the model's tokenizer) or token lists (used as they are).

    Args:
        model_path: path of a `.tflite`, `.onnx` or `.keras` file with its bundle files beside it.
        num_threads: int. Runtime threads. Defaults to 1.

    Example (with an exported run):
        Predictor("runs/pos_ewt/export/model_int8.tflite").predict(["I love Paris ."])
    """

    def __init__(self, model_path, num_threads: int = 1):
        self.preprocessor = Preprocessor.find(model_path)
        b = self.preprocessor
        if b.labels is None:
            raise ValueError(f"{model_path}: a language model's embedder outputs vectors, not tags or labels; "
                             "use kerasrnn.Embedder")
        self.runner = load_runner(model_path, num_threads=num_threads, **b.sizes)
        if b.crf is None and callable(getattr(getattr(self.runner, "model", None), "crf_decoding", None)):
            b.crf = self.runner.model.crf_decoding()  # a run folder's .keras CRF tagger (an export's is in metadata)
        self.tokenizer = WordTokenizer()

    def predict(self, sentences) -> list[dict]:
        """One dict per sentence: `tokens` plus `tags` and `probabilities` (tagging) or `label` and `probability`."""
        b = self.preprocessor
        token_lists = [self.tokenizer(s) if isinstance(s, str) else [str(t) for t in s] for s in sentences]
        if not token_lists:
            return []
        token_lists = [tokens[: b.max_length] for tokens in token_lists]
        data = b.encode([Example(tuple(t)) for t in token_lists])
        results = []
        for tokens, probs in zip(token_lists, run_batched(self.runner, data), strict=True):
            if b.task_type == "tagging":
                probs = probs[: len(tokens)]
                tags = decode_tags(probs, b.labels.tokens, b.crf)
                ids = np.array([b.labels.lookup(tag) for tag in tags], dtype=np.int64)
                results.append({"tokens": tokens, "tags": tags,
                                "probabilities": [float(p) for p in probs[np.arange(len(ids)), ids]]})
            else:
                i = int(probs.argmax())
                results.append({"tokens": tokens, "label": b.labels.tokens[i], "probability": float(probs[i])})
        return results
