"""Text to model inputs and back: the vocabularies, characters and labels of a model, in one object.

A `Preprocessor` builds its vocabularies from training examples, encodes examples into id arrays, saves itself as
plain text files (`vocab.txt`, `chars.txt`, `labels.txt`), loads from a run folder (with its `config.toml`) or an
export folder (with its `metadata.json`), and describes itself exactly enough for an app to re-implement it
(`describe()`, the preprocessing part of `metadata.json`). Plain Python and NumPy: never inside an exported graph.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from kerasrnn.data.pipeline import EncodedData, encode
from kerasrnn.text.bio import decoding_spec
from kerasrnn.text.spec import tokenizer_spec
from kerasrnn.text.tokenizer import WordTokenizer
from kerasrnn.text.vocabulary import PAD_ID, UNK_ID, Vocabulary

VOCAB_FILE, CHARS_FILE, LABELS_FILE = "vocab.txt", "chars.txt", "labels.txt"


@dataclasses.dataclass
class Preprocessor:
    """Args:
    task_type: str. "tagging", "classification" or "language_model".
    vocab: Vocabulary. Token ids (0 pad, 1 unknown); lowercases lookups when the run does.
    labels: Vocabulary or None. Tag or label ids; None for a language model.
    char_vocab: Vocabulary or None. Character ids, when the model reads characters.
    max_length: int. Tokens kept per sentence.
    max_word_chars: int. Characters kept per token.
    crf: dict or None. A CRF tagger's learned scores, with which its tags are decoded (`kerasrnn.text.bio`).
    """

    task_type: str
    vocab: Vocabulary
    labels: Vocabulary | None
    char_vocab: Vocabulary | None
    max_length: int
    max_word_chars: int
    crf: dict | None = None

    @classmethod
    def build(cls, config, examples, pretrained: Preprocessor | None = None) -> Preprocessor:
        """Vocabularies of the training examples; with a pre-trained preprocessor, its vocabularies with the
        examples' new entries appended (pre-trained ids keep their meaning). With `model.static_vectors`, a
        training word the vectors know enters whatever its count, and the vectors' `static_vectors_words` most
        frequent words are appended (task models only: a language model's vocabulary stays its own)."""
        d = config.data
        words = (e.tokens for e in examples)
        chars = ((c for c in tok) for e in examples for tok in e.tokens)
        vectors = None
        if config.model.static_vectors:
            from kerasrnn.text.vectors import load_static_vectors

            vectors = load_static_vectors(config.model.static_vectors)
        # a language model's vocabulary is what it predicts: the vectors do not change it (same perplexity task)
        lm = config.task.type == "language_model"
        keep = (lambda t: t.lower() in vectors.index) if vectors is not None and not lm else None
        if pretrained is not None:
            vocab = pretrained.vocab.extended(words, d.min_count, keep=keep)
            char_vocab = pretrained.char_vocab.extended(chars, d.char_min_count) if d.use_chars else None
        else:
            vocab = Vocabulary.build(words, min_count=d.min_count, max_size=d.max_vocab, lowercase=d.lowercase,
                                     keep=keep)
            char_vocab = Vocabulary.build(chars, min_count=d.char_min_count) if d.use_chars else None
        if vectors is not None and config.model.static_vectors_words:
            vocab = vocab.with_entries(vectors.vocabulary_words(config.model.static_vectors_words))
        labels = None
        if config.task.type == "tagging":
            labels = Vocabulary.for_labels(tag for e in examples for tag in e.tags)
        elif config.task.type == "classification":
            labels = Vocabulary.for_labels(e.label for e in examples)
        return cls(config.task.type, vocab, labels, char_vocab, d.max_length, d.max_word_chars)

    @classmethod
    def from_run_dir(cls, folder, config) -> Preprocessor:
        """The preprocessor a run folder's `config.toml` (`config`) and vocabulary files describe."""
        folder = Path(folder)
        d = config.data
        labels = (None if config.task.type == "language_model"
                  else Vocabulary.load(folder / LABELS_FILE, special_tokens=False))
        return cls(config.task.type, Vocabulary.load(folder / VOCAB_FILE, lowercase=d.lowercase), labels,
                   Vocabulary.load(folder / CHARS_FILE) if d.use_chars else None, d.max_length, d.max_word_chars)

    @classmethod
    def from_export_dir(cls, folder) -> Preprocessor:
        """The preprocessor an export folder's `metadata.json` describes."""
        folder = Path(folder)
        meta = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))
        if "vocabulary_file" not in meta:
            raise ValueError(f"{folder}: an export of a Keras model ({meta.get('task_type')}) has no vocabulary; it "
                             "takes ids: kerasrnn.runtime.runners.load_runner(path, specs=specs_from_metadata(meta))")
        char_file, labels_file = meta.get("char_vocabulary_file"), meta.get("labels_file")
        return cls(
            task_type=meta["task_type"],
            vocab=Vocabulary.load(folder / meta["vocabulary_file"], lowercase=meta["lowercase"]),
            labels=Vocabulary.load(folder / labels_file, special_tokens=False) if labels_file else None,
            char_vocab=Vocabulary.load(folder / char_file) if char_file else None,
            max_length=meta["max_length"],
            max_word_chars=meta.get("max_word_chars", 16),
            crf=({k: np.asarray(meta["decoding"][k], np.float64) for k in ("transitions", "start", "end")}
                 if meta.get("decoding", {}).get("method") == "crf_viterbi" else None),
        )

    @classmethod
    def find(cls, model_path) -> Preprocessor:
        """The preprocessor of a model file: from `metadata.json` beside it (an export folder) or from
        `config.toml` beside it (a run folder)."""
        folder = Path(model_path).resolve().parent
        if (folder / "metadata.json").is_file():
            return cls.from_export_dir(folder)
        if (folder / "config.toml").is_file():
            from kerasrnn.config import Config

            return cls.from_run_dir(folder, Config.load(folder / "config.toml"))
        raise FileNotFoundError(f"{folder}: no metadata.json (export folder) or config.toml (run folder) beside "
                                f"{Path(model_path).name}")

    def save(self, folder) -> None:
        folder = Path(folder)
        self.vocab.save(folder / VOCAB_FILE)
        if self.labels is not None:
            self.labels.save(folder / LABELS_FILE)
        if self.char_vocab is not None:
            self.char_vocab.save(folder / CHARS_FILE)

    def encode(self, examples, targets: bool = False) -> EncodedData:
        """Id arrays of the examples, cut to `max_length`. With `targets`: tag or label ids (a label outside the
        label vocabulary is an error naming it), or for a language model the token ids themselves (the clean
        targets when the inputs get word dropout)."""
        labels = self.labels if targets else None
        data = encode(examples, self.vocab, labels, char_vocab=self.char_vocab, max_word_chars=self.max_word_chars,
                      max_length=self.max_length)
        if targets and self.labels is None:
            data.targets = [ids.copy() for ids in data.token_ids]
        return data

    @property
    def sizes(self) -> dict:
        """The id ranges a runner validates its inputs against."""
        return {"vocabulary_size": len(self.vocab),
                "char_vocabulary_size": len(self.char_vocab) if self.char_vocab else 0,
                "max_word_chars": self.max_word_chars}

    def describe(self) -> dict:
        """How an app turns text into the model's inputs: the preprocessing part of `metadata.json`."""
        meta = {
            "task_type": self.task_type,
            "inputs": {"token_ids": {"dtype": "int32", "shape": ["batch", "time"],
                                     "tflite_shape": [1, "time"], "onnx_shape": ["batch", "time"],
                                     "id_range": len(self.vocab), "right_padded": True}},
            "pad_id": PAD_ID,
            "unknown_id": UNK_ID,
            "padding": "right: a row is its token ids followed by 0s; every row holds at least one token",
            "vocabulary_file": VOCAB_FILE,
            "vocabulary_size": len(self.vocab),
            **({} if self.labels is None else {"labels_file": LABELS_FILE, "labels": self.labels.tokens}),
            "files_format": "UTF-8 text, one entry per line; the id of an entry is its 0-based line number",
            "lowercase": self.vocab.lowercase,
            "max_length": self.max_length,
            "tokenization": (
                f"{WordTokenizer.__doc__.strip().splitlines()[0]} NFC normalization; control characters dropped; "
                "punctuation split off; clitics split as in the Penn Treebank (don't -> do n't, it's -> it 's); "
                "URLs, e-mail addresses, @mentions, #hashtags and numbers kept whole. The exact rules, as data: "
                "the tokenizer section (regular expressions for JavaScript and java.util.regex); conformance.json "
                "checks a re-implementation. Python reference: kerasrnn.text.WordTokenizer."
            ),
            "tokenizer": tokenizer_spec(lowercase=self.vocab.lowercase, max_length=self.max_length,
                                        max_word_chars=self.max_word_chars if self.char_vocab else None),
        }
        if self.labels is not None:
            meta["decoding"] = decoding_spec(self.task_type, self.labels.tokens, self.crf)
        if self.char_vocab is not None:
            meta["inputs"]["char_ids"] = {"dtype": "int32", "shape": ["batch", "time", self.max_word_chars],
                                          "tflite_shape": [1, "time", self.max_word_chars],
                                          "id_range": len(self.char_vocab), "right_padded": False}
            meta["char_vocabulary_file"] = CHARS_FILE
            meta["char_vocabulary_size"] = len(self.char_vocab)
            meta["max_word_chars"] = self.max_word_chars
            meta["char_rule"] = ("for each token, the ids of its first max_word_chars characters (original case) in "
                                 "chars.txt, unknown characters -> 1, right-padded with 0; padded tokens are all 0")
        return meta
