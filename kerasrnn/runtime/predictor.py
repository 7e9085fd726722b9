"""Raw text in, tags or labels with probabilities out, for a `.tflite`, `.onnx` or `.keras` model."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from kerasrnn.data.pipeline import encode
from kerasrnn.data.readers import Example
from kerasrnn.metrics import bio_decode
from kerasrnn.runtime.runners import load_runner, run_batched
from kerasrnn.text.tokenizer import WordTokenizer
from kerasrnn.text.vocabulary import Vocabulary


@dataclasses.dataclass
class Bundle:
    """The files beside a model that turn text into its inputs: an export folder's `metadata.json`, or a
    training run's `config.toml`, with the vocabulary and label files."""

    task_type: str
    vocab: Vocabulary
    labels: Vocabulary
    char_vocab: Vocabulary | None
    max_length: int
    max_word_chars: int

    @classmethod
    def find(cls, model_path) -> Bundle:
        folder = Path(model_path).resolve().parent
        if (folder / "metadata.json").is_file():
            meta = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))
            char_file = meta.get("char_vocabulary_file")
            return cls(
                task_type=meta["task_type"],
                vocab=Vocabulary.load(folder / meta["vocabulary_file"], lowercase=meta["lowercase"]),
                labels=Vocabulary.load(folder / meta["labels_file"], special_tokens=False),
                char_vocab=Vocabulary.load(folder / char_file) if char_file else None,
                max_length=meta["max_length"],
                max_word_chars=meta.get("max_word_chars", 16),
            )
        if (folder / "config.toml").is_file():
            from kerasrnn.config import Config

            config = Config.load(folder / "config.toml")
            return cls(
                task_type=config.task.type,
                vocab=Vocabulary.load(folder / "vocab.txt", lowercase=config.data.lowercase),
                labels=Vocabulary.load(folder / "labels.txt", special_tokens=False),
                char_vocab=Vocabulary.load(folder / "chars.txt") if config.data.use_chars else None,
                max_length=config.data.max_length,
                max_word_chars=config.data.max_word_chars,
            )
        raise FileNotFoundError(f"{folder}: no metadata.json (export folder) or config.toml (run folder) beside "
                                f"{Path(model_path).name}")


class Predictor:
    """Tags or classifies raw text (tokenized with the model's tokenizer) or token lists (used as they are).

    Args:
        model_path: path of a `.tflite`, `.onnx` or `.keras` file with its bundle files beside it.
        num_threads: int. Runtime threads. Defaults to 1.

    Example (with an exported run):
        Predictor("runs/pos_ewt/export/model_int8.tflite").predict(["I love Paris ."])
    """

    def __init__(self, model_path, num_threads: int = 1):
        self.bundle = Bundle.find(model_path)
        b = self.bundle
        self.runner = load_runner(model_path, len(b.vocab), len(b.char_vocab) if b.char_vocab else 0,
                                  b.max_word_chars, num_threads=num_threads)
        self.tokenizer = WordTokenizer()
        self.bio = all(tag == "O" or tag[:2] in ("B-", "I-") for tag in b.labels.tokens)

    def predict(self, sentences) -> list[dict]:
        """One dict per sentence: `tokens` plus `tags` and `probabilities` (tagging) or `label` and `probability`."""
        b = self.bundle
        token_lists = [self.tokenizer(s) if isinstance(s, str) else [str(t) for t in s] for s in sentences]
        if not token_lists:
            return []
        token_lists = [tokens[: b.max_length] for tokens in token_lists]
        data = encode([Example(tuple(t)) for t in token_lists], b.vocab, None, char_vocab=b.char_vocab,
                      max_word_chars=b.max_word_chars, max_length=b.max_length)
        results = []
        for tokens, probs in zip(token_lists, run_batched(self.runner, data), strict=True):
            if b.task_type == "tagging":
                probs = probs[: len(tokens)]
                if self.bio:
                    ids = np.array([b.labels.lookup(tag) for tag in bio_decode(probs, b.labels.tokens)])
                else:
                    ids = probs.argmax(-1)
                results.append({"tokens": tokens, "tags": b.labels.decode(ids),
                                "probabilities": [float(p) for p in probs[np.arange(len(ids)), ids]]})
            else:
                i = int(probs.argmax())
                results.append({"tokens": tokens, "label": b.labels.tokens[i], "probability": float(probs[i])})
        return results
