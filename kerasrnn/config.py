"""Run settings: frozen dataclasses read from TOML (`tomllib`) and written back beside every run as `config.toml`."""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
import types
import typing
from pathlib import Path

from kerasrnn.data.readers import FORMATS, data_dir
from kerasrnn.files import atomic_write_text

TASK_TYPES = ("tagging", "classification", "language_model")


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    name: str = "task"
    type: str = "tagging"  # "tagging", "classification" or "language_model"
    metric: str = "accuracy"  # "accuracy", "f1" (entity-level, BIO tags) or "perplexity" (language_model)


@dataclasses.dataclass(frozen=True)
class DataConfig:
    format: str = "conllu"
    # A path, or a list of paths and globs; an entry may name its own format: "tokens:wikitext2_partial/valid.txt"
    train_file: str | list = ""
    dev_file: str = ""  # empty: hold out `dev_fraction` of the training file (seeded)
    test_file: str = ""
    dev_fraction: float = 0.1
    dev_train_fraction: float = 0.0  # this share of the dev file (seeded) joins the training data; the rest is dev
    # entity types renamed in every file read, "OLD=NEW" ("PER=person"; "OLD=O": its words become O; "OLD=": the
    # sentences holding it are dropped): another NER corpus's types onto the task's, for an extra training file
    rename_types: str | list = ""
    oos_label: str = ""  # a label scored apart (CLINC150 "oos"): accuracy is then the in-scope accuracy
    lowercase: bool = True
    min_count: int = 2
    max_vocab: int = 50_000
    max_length: int = 256
    use_chars: bool = True
    char_min_count: int = 2
    max_word_chars: int = 16

    @property
    def type_renames(self) -> dict[str, str]:
        """`rename_types` as {old type: new type}."""
        return dict(entry.split("=") for entry in as_list(self.rename_types) if entry)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    cell: str = "lstm"
    num_layers: int = 1
    units: int = 128
    bidirectional: bool = True
    embedding_dim: int = 100
    output_dim: int = 128
    dropout: float = 0.3
    head_dropout: float = 0.3
    char_embedding_dim: int = 32
    char_filters: int = 64
    char_kernel_size: int = 3
    char_highway_layers: int = 0  # highway layers after the character CNN (kerasrnn.layers.CharCNN)
    num_sampled: int = 1024  # language_model: negatives of the sampled softmax in training
    residual: bool = False  # language_model: recurrent layers after the first add their input to their output
    projection: int = 0  # language_model, lstm: each LSTM's output projected to this width (LSTMP); 0: none
    init_from: str = ""  # a pre-trained run directory (BiLM or task run) whose encoder weights start this model
    freeze_encoder: bool = False  # with init_from: keep the transferred weights fixed
    # with init_from (a language model run): ELMo transfer, its frozen layers scalar-mixed into the word features
    # (kerasrnn.layers.ELMo), in place of copying its weights into the encoder
    elmo: bool = False
    # Pre-trained word vectors from an installed package (kerasrnn.text.vectors): they start the token embedding
    # (embedding_dim = their size); "fine_tune" trains them further, "frozen" keeps them fixed.
    crf: bool = False  # tagging: a CRF output layer (trained on its likelihood, decoded by Viterbi)
    static_vectors: str = ""  # "" (none) or "glove-6b-50d"
    static_vectors_mode: str = "fine_tune"
    static_vectors_words: int = 0  # the vectors' most frequent words added to the vocabulary (seen in training or not)


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 2e-3
    warmup_fraction: float = 0.05
    min_learning_rate_ratio: float = 0.05
    clipnorm: float = 1.0
    word_dropout: float = 0.05
    entity_weight: float = 1.0  # tagging: loss weight of tokens whose gold tag is not "O" (recall of rare entities)
    label_smoothing: float = 0.0  # task models: the gold label's target is 1 - s + s / K (kerasrnn.losses)
    patience: int = 3
    seed: int = 1234


@dataclasses.dataclass(frozen=True)
class DistillConfig:
    # Knowledge distillation (kerasrnn.trainers.distill): a task run whose softened outputs the model learns too
    teacher: str = ""  # "" (none) or a task run directory
    temperature: float = 2.0  # both sides' logits are divided by it in the soft loss
    alpha: float = 0.5  # weight of the soft loss; the gold labels' cross-entropy gets 1 - alpha
    # tagging: raw text the teacher labels, read like data.train_file entries ("text:gutenberg_nltk/*.txt")
    raw_text: str | list = ""
    raw_sentences: int = 0  # at most this many raw sentences (seeded sample); 0: all of them


@dataclasses.dataclass(frozen=True)
class Config:
    task: TaskConfig = TaskConfig()
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()
    distill: DistillConfig = DistillConfig()

    def __post_init__(self):
        _check(self.task.type in TASK_TYPES, "task.type", " or ".join(repr(t) for t in TASK_TYPES))
        _check(self.task.metric in ("accuracy", "f1", "perplexity"), "task.metric", "'accuracy', 'f1' or 'perplexity'")
        _check(self.task.metric != "f1" or self.task.type == "tagging", "task.metric", "'accuracy' for classification")
        _check((self.task.metric == "perplexity") == (self.task.type == "language_model"), "task.metric",
               "'perplexity' exactly when task.type is 'language_model'")
        _check(self.data.format in FORMATS, "data.format", f"one of {', '.join(FORMATS)}")
        _check(bool(self.data.train_file), "data.train_file", "a file path or a list of them")
        _check(isinstance(self.data.train_file, str) or all(isinstance(f, str) for f in self.data.train_file),
               "data.train_file", "a file path or a list of them")
        _check(bool(self.data.test_file), "data.test_file", "a file path")
        _check(all(isinstance(r, str) and r.count("=") == 1 and not r.startswith("=")
                   for r in as_list(self.data.rename_types) if r),
               "data.rename_types", 'a list of "OLD=NEW" entity type renames')
        _check(0.0 < self.data.dev_fraction < 1.0, "data.dev_fraction", "in (0, 1)")
        _check(0.0 <= self.data.dev_train_fraction < 1.0, "data.dev_train_fraction", "in [0, 1)")
        _check(self.model.cell in ("lstm", "gru", "sru"), "model.cell", "'lstm', 'gru' or 'sru'")
        _check(self.model.static_vectors_mode in ("fine_tune", "frozen"), "model.static_vectors_mode",
               "'fine_tune' or 'frozen'")
        _check(not self.model.crf or self.task.type == "tagging", "model.crf", "false unless task.type is 'tagging'")
        _check(not self.model.elmo or bool(self.model.init_from), "model.elmo",
               "false unless model.init_from names a language model run")
        _check(not (self.model.elmo and self.model.freeze_encoder), "model.freeze_encoder",
               "false with model.elmo (nothing is copied into the encoder; the language model is always frozen)")
        _check(not self.model.residual or self.task.type == "language_model", "model.residual",
               "false unless task.type is 'language_model'")
        _check(self.model.static_vectors_words >= 0, "model.static_vectors_words", "at least 0")
        _check(self.model.char_highway_layers >= 0, "model.char_highway_layers", "at least 0")
        _check(self.model.projection >= 0, "model.projection", "at least 0")
        _check(not self.model.projection or (self.task.type == "language_model" and self.model.cell == "lstm"),
               "model.projection", "0 unless a language model with cell = \"lstm\" (LSTMP)")
        _check(not self.model.static_vectors_words or self.task.type != "language_model", "model.static_vectors_words",
               "0 for a language model (its vocabulary is what it predicts)")
        for name in ("num_layers", "units", "embedding_dim", "output_dim"):
            _check(getattr(self.model, name) >= 1, f"model.{name}", "at least 1")
        for name in ("dropout", "head_dropout"):
            _check(0.0 <= getattr(self.model, name) < 1.0, f"model.{name}", "in [0, 1)")
        _check(0.0 <= self.training.word_dropout < 1.0, "training.word_dropout", "in [0, 1)")
        _check(self.training.entity_weight > 0, "training.entity_weight", "positive")
        _check(0.0 <= self.training.label_smoothing < 1.0, "training.label_smoothing", "in [0, 1)")
        _check(not self.training.label_smoothing or (self.task.type != "language_model" and not self.model.crf),
               "training.label_smoothing", "0.0 for a language model or a CRF tagger (their losses are their own)")
        for name in ("epochs", "batch_size"):
            _check(getattr(self.training, name) >= 1, f"training.{name}", "at least 1")
        _check(self.training.learning_rate > 0, "training.learning_rate", "positive")
        _check(self.data.max_length >= 1, "data.max_length", "at least 1")
        d = self.distill
        if d.teacher:
            _check(self.task.type != "language_model", "distill.teacher", "empty for a language model")
            _check(d.temperature > 0, "distill.temperature", "positive")
            _check(0.0 <= d.alpha <= 1.0, "distill.alpha", "in [0, 1]")
            _check(not self.model.crf, "model.crf", "false when distilling (the soft loss is per token)")
            _check(self.training.entity_weight == 1.0, "training.entity_weight", "1.0 when distilling")
            _check(self.training.label_smoothing == 0.0, "training.label_smoothing",
                   "0.0 when distilling (the teacher's distribution is the soft target)")
        _check(not d.raw_text or (bool(d.teacher) and self.task.type == "tagging"), "distill.raw_text",
               "empty unless a tagger is distilled (distill.teacher set)")
        _check(d.raw_sentences >= 0, "distill.raw_sentences", "at least 0")

    def resolve_path(self, path: str) -> Path:
        """A data path as given if absolute or existing, else relative to the data folder."""
        p = Path(os.path.expanduser(path))
        if p.is_absolute() or p.exists():
            return p
        return data_dir() / p

    def replace(self, section: str, **changes) -> Config:
        return dataclasses.replace(self, **{section: dataclasses.replace(getattr(self, section), **changes)})

    @classmethod
    def from_dict(cls, raw: dict, source: str = "config") -> Config:
        sections = {f.name: f.type for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - set(sections))
        if unknown:
            raise ValueError(f"{source}: unknown section(s) {unknown}; known: {sorted(sections)}")
        built = {}
        hints = typing.get_type_hints(cls)
        for name in sections:
            section_cls = hints[name]
            values = raw.get(name, {})
            if not isinstance(values, dict):
                raise ValueError(f"{source}: [{name}] must be a table")
            built[name] = _build_section(section_cls, values, f"{source}: [{name}]")
        return cls(**built)

    @classmethod
    def load(cls, path) -> Config:
        path = Path(path)
        try:
            with open(path, "rb") as f:
                raw = tomllib.load(f)
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: no such config file") from None
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"{path}: invalid TOML: {e}") from None
        return cls.from_dict(raw, str(path))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_toml(self) -> str:
        lines = []
        for section, values in self.to_dict().items():
            lines.append(f"[{section}]")
            lines.extend(f"{key} = {_toml_value(value)}" for key, value in values.items())
            lines.append("")
        return "\n".join(lines)

    def save(self, path) -> None:
        atomic_write_text(self.to_toml(), path)


def as_list(value: str | list) -> list:
    """A config value that is one entry or a list of them, as a list."""
    return [value] if isinstance(value, str) else list(value)


def _check(ok: bool, key: str, expected: str):
    if not ok:
        raise ValueError(f"config: {key} must be {expected}")


def _build_section(section_cls, values: dict, where: str):
    hints = typing.get_type_hints(section_cls)
    unknown = sorted(set(values) - set(hints))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known: {sorted(hints)}")
    for key, value in values.items():
        expected = hints[key]
        allowed = typing.get_args(expected) if isinstance(expected, types.UnionType) else (expected,)
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            values = {**values, key: float(value)}
            continue
        if isinstance(value, bool) and bool not in allowed:
            raise ValueError(f"{where}: {key} must be {_type_name(expected)}, got a boolean")
        if not isinstance(value, allowed):
            raise ValueError(f"{where}: {key} must be {_type_name(expected)}, got {type(value).__name__} {value!r}")
    return section_cls(**values)


def _type_name(expected) -> str:
    return " or ".join(t.__name__ for t in typing.get_args(expected)) or expected.__name__


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)
