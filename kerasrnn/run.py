"""A run: the config, the trained model and the preprocessor that a training run directory holds.

A run directory (written by `kerasrnn.trainers.train`) holds `model.keras`, `config.toml`, the preprocessor's
files (`vocab.txt`, `chars.txt` when the model reads characters, `labels.txt` for task models), `metrics.json`,
`history.png`, TensorBoard logs under `logs/` and checkpoints under `checkpoints/`.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from pathlib import Path

import numpy as np

from kerasrnn.config import Config, as_list
from kerasrnn.data.pipeline import EncodedData
from kerasrnn.data.readers import FORMATS, Example, data_dir, read_examples, rename_types
from kerasrnn.models.sequence_tagger import crf_decoding
from kerasrnn.preprocessor import Preprocessor


@dataclasses.dataclass
class Run:
    """What a trained run needs at inference: its config, model and preprocessor."""

    config: Config
    model: object
    preprocessor: Preprocessor

    @property
    def vocab(self):
        return self.preprocessor.vocab

    @property
    def labels(self):
        return self.preprocessor.labels

    @property
    def char_vocab(self):
        return self.preprocessor.char_vocab

    def encode(self, examples) -> EncodedData:
        return self.preprocessor.encode(examples)


def load_run(run_dir) -> Run:
    """Loads a run directory written by `train` (the model with safe_mode on)."""
    from kerasrnn.safe_load import load_model

    run_dir = Path(run_dir)
    if not (run_dir / "model.keras").is_file():
        raise FileNotFoundError(f"{run_dir}: no model.keras here; is this a training run directory?")
    config = Config.load(run_dir / "config.toml")
    preprocessor = Preprocessor.from_run_dir(run_dir, config)
    model = load_model(run_dir / "model.keras")
    check_consistent(run_dir, config, model, preprocessor)
    preprocessor.crf = crf_decoding(model)
    return Run(config, model, preprocessor)


MODEL_CLASSES = {"tagging": "SequenceTagger", "classification": "TextClassifier", "language_model": "BiLanguageModel"}


def check_consistent(run_dir, config: Config, model, preprocessor: Preprocessor) -> None:
    """Refuses a run directory whose files do not belong together (a vocabulary, label file or config edited, or
    copied from another run): the message names the file."""
    from kerasrnn.preprocessor import CHARS_FILE, LABELS_FILE, VOCAB_FILE

    run_dir = Path(run_dir)
    expected = MODEL_CLASSES[config.task.type]
    if type(model).__name__ != expected:
        raise ValueError(f"{run_dir / 'config.toml'}: task.type = {config.task.type!r} needs a {expected}, but "
                         f"{run_dir / 'model.keras'} holds a {type(model).__name__}")
    enc = model if expected == "BiLanguageModel" else model.encoder
    for key in ("cell", "num_layers", "units", "embedding_dim"):
        if getattr(config.model, key) != getattr(enc, key):
            raise ValueError(f"{run_dir / 'config.toml'}: model.{key} = {getattr(config.model, key)!r}, but "
                             f"{run_dir / 'model.keras'} has {key} {getattr(enc, key)!r}; the config belongs to "
                             "another run")
    if config.data.use_chars != bool(enc.char_vocabulary_size):
        raise ValueError(f"{run_dir / 'config.toml'}: data.use_chars = {str(config.data.use_chars).lower()}, but "
                         f"{run_dir / 'model.keras'} {'reads' if enc.char_vocabulary_size else 'does not read'} "
                         "characters")
    sizes = [(VOCAB_FILE, len(preprocessor.vocab), enc.vocabulary_size, "token ids its embedding takes")]
    if preprocessor.char_vocab is not None:
        sizes.append((CHARS_FILE, len(preprocessor.char_vocab), enc.char_vocabulary_size, "character ids"))
    if preprocessor.labels is not None:
        sizes.append((LABELS_FILE, len(preprocessor.labels), model.num_outputs, "outputs of its head"))
    for name, have, want, what in sizes:
        if have != want:
            raise ValueError(f"{run_dir / name}: {have} entries, but {run_dir / 'model.keras'} has {want} {what}; "
                             "the files of this run directory do not belong together (edited, or copied from "
                             "another run)")


def read_split(config: Config, split: str, path: str | list | None = None) -> list[Example]:
    """The examples of a split: one file, or a list of files and globs whose entries may name their own format
    (`"tokens:wikitext2_partial/valid.txt"`, `"conllu:ud_english_ewt/*.conllu"`)."""
    files = path or {"train": config.data.train_file, "dev": config.data.dev_file, "test": config.data.test_file}[split]
    examples = []
    for entry in as_list(files):
        data_format, sep, name = entry.partition(":")
        if not sep or data_format not in FORMATS:
            data_format, name = config.data.format, entry
        if glob.has_magic(name):
            paths = sorted(glob.glob(os.path.expanduser(name))) or sorted(glob.glob(str(data_dir() / name)))
            if not paths:
                raise FileNotFoundError(f"{name}: no file matches this pattern here or in {data_dir()}")
        else:
            paths = [config.resolve_path(name)]
        for p in paths:
            examples.extend(read_examples(p, data_format, split=split))
    renames = config.data.type_renames
    return rename_types(examples, renames) if renames else examples


def split_off_dev(examples: list[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Seeded hold-out of `fraction` of the examples as a dev set."""
    order = np.random.default_rng(seed).permutation(len(examples))
    n_dev = max(1, int(round(fraction * len(examples))))
    dev = set(order[:n_dev].tolist())
    return [e for i, e in enumerate(examples) if i not in dev], [e for i, e in enumerate(examples) if i in dev]


def read_splits(config: Config) -> tuple[list[Example], list[Example], list[Example]]:
    """(train, dev, test) examples: the dev file, or a seeded share of the training file held out; with
    `dev_train_fraction`, that share of the dev file (seeded) joins the training examples."""
    seed = config.training.seed
    train = read_split(config, "train")
    if config.data.dev_file:
        dev = read_split(config, "dev")
        if config.data.dev_train_fraction > 0:
            dev, moved = split_off_dev(dev, config.data.dev_train_fraction, seed)
            train = train + moved
    else:
        train, dev = split_off_dev(train, config.data.dev_fraction, seed)
    return train, dev, read_split(config, "test")
