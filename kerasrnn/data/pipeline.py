"""Encoding of examples into id arrays, and tf.data pipelines that bucket by length and right-pad with 0."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

import numpy as np

from kerasrnn.data.readers import Example
from kerasrnn.text.tokenizer import char_ids
from kerasrnn.text.vocabulary import PAD_ID, UNK_ID, Vocabulary

DEFAULT_BUCKET_BOUNDARIES = (8, 12, 16, 20, 24, 32, 40, 48, 64, 96, 128)


@dataclasses.dataclass
class EncodedData:
    """Id arrays of a list of examples: one int32 array per example (token ids [T], char ids [T, C]),
    and targets: per-token tag ids [T] for tagging, one label id per example for classification. `soft_targets`
    (distillation): a teacher's distribution per target ([T, labels] per example, or [N, labels]); the batches'
    targets are then float [..., 1 + labels]: the gold id (-1: none), then the distribution."""

    token_ids: list[np.ndarray]
    char_ids: list[np.ndarray] | None
    targets: list[np.ndarray] | np.ndarray | None
    soft_targets: list[np.ndarray] | np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.token_ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(t) for t in self.token_ids], dtype=np.int64)

    @property
    def inputs(self) -> dict[str, list[np.ndarray]]:
        """The per-row id arrays by model input name."""
        return {"token_ids": self.token_ids, **({} if self.char_ids is None else {"char_ids": self.char_ids})}


@dataclasses.dataclass
class IdRows:
    """Rows of named id arrays for any model (a notebook model's inputs): `inputs[name][i]` is row i of input
    `name` at the row's own length ([T] or [T, width]), its first axis the time axis."""

    inputs: dict[str, list[np.ndarray]]
    targets: None = None

    def __len__(self) -> int:
        return len(next(iter(self.inputs.values())))

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(t) for t in next(iter(self.inputs.values()))], dtype=np.int64)

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], padded: str | None) -> IdRows:
        """Right-padded [rows, time, ...] arrays cut to each row's length: the count of non-zero ids of input
        `padded`, or the whole width when the model has no padded input."""
        width = next(iter(arrays.values())).shape[1]
        lengths = (np.asarray(arrays[padded]) != 0).sum(1) if padded else np.full(len(next(iter(arrays.values()))),
                                                                                  width)
        return cls({name: [np.asarray(a[i, :n], np.int32) for i, n in enumerate(lengths)]
                    for name, a in arrays.items()})

    def subset(self, index) -> IdRows:
        return IdRows({name: [rows[i] for i in index] for name, rows in self.inputs.items()})


def encode(
    examples: Sequence[Example],
    vocab: Vocabulary,
    labels: Vocabulary | None,
    *,
    char_vocab: Vocabulary | None = None,
    max_word_chars: int = 16,
    max_length: int = 512,
) -> EncodedData:
    """Turns examples into id arrays. Sentences longer than `max_length` tokens are cut; an empty sentence
    becomes a single unknown token so that every row has at least one valid position."""
    token_ids, chars, targets = [], [], []
    for ex in examples:
        tokens = list(ex.tokens[:max_length]) or ["<unk>"]
        ids = np.asarray(vocab.encode(tokens), dtype=np.int32)
        if not ex.tokens:
            ids[:] = UNK_ID
        token_ids.append(ids)
        if char_vocab is not None:
            chars.append(char_ids(tokens, char_vocab, max_word_chars))
        if labels is not None:
            if ex.tags is not None:
                tags = list(ex.tags[:max_length]) or [labels.tokens[0]]
                targets.append(np.asarray(labels.encode(tags), dtype=np.int32))
            else:
                targets.append(labels.lookup(ex.label))
    if labels is not None and targets and np.isscalar(targets[0]):
        targets = np.asarray(targets, dtype=np.int32)
    return EncodedData(token_ids, chars if char_vocab is not None else None, targets if labels is not None else None)


def batch_features(data: EncodedData, index: Sequence[int], width: int) -> dict[str, np.ndarray]:
    """The rows `index` of `data` (EncodedData or IdRows) right-padded with 0 to `width` positions, by input name."""
    features = {}
    for name, rows in data.inputs.items():
        out = np.full((len(index), width, *rows[index[0]].shape[1:]), PAD_ID, dtype=np.int32)
        for row, i in enumerate(index):
            out[row, : len(rows[i])] = rows[i]
        features[name] = out
    return features


def batch_targets(data: EncodedData, index: Sequence[int], width: int) -> np.ndarray:
    """The targets of rows `index`: label ids [rows], or tag ids right-padded with 0 to [rows, width]; with soft
    targets, float [rows, 1 + labels] or [rows, width, 1 + labels] (gold id first, padded positions all 0)."""
    if data.soft_targets is not None:
        if isinstance(data.targets, np.ndarray):
            index = np.asarray(index)
            return np.concatenate([data.targets[index, None].astype(np.float32), data.soft_targets[index]], axis=1)
        labels = data.soft_targets[index[0]].shape[1]
        out = np.zeros((len(index), width, 1 + labels), dtype=np.float32)
        for row, i in enumerate(index):
            n = len(data.targets[i])
            out[row, :n, 0] = data.targets[i]
            out[row, :n, 1:] = data.soft_targets[i]
        return out
    if isinstance(data.targets, np.ndarray):
        return data.targets[np.asarray(index)]
    out = np.zeros((len(index), width), dtype=np.int32)
    for row, i in enumerate(index):
        out[row, : len(data.targets[i])] = data.targets[i]
    return out


def ordered_batches(data: EncodedData, batch_size: int) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Batches for inference: rows sorted by length (little padding), each batch right-padded to its longest row.

    Yields (row indices into `data`, features); callers put outputs back in order with the indices.
    """
    order = np.argsort(data.lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        width = int(data.lengths[index].max())
        yield index, batch_features(data, index, width)


def bucket_batches(
    data: EncodedData,
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    boundaries: Sequence[int] = DEFAULT_BUCKET_BOUNDARIES,
) -> list[np.ndarray]:
    """One epoch of training batches (arrays of row indices): rows shuffled, grouped into length buckets,
    cut into batches, and the batches shuffled. Deterministic in (seed, epoch)."""
    rng = np.random.default_rng([seed, epoch])
    bucket_of = np.searchsorted(np.asarray(boundaries), data.lengths, side="left")
    batches = []
    for b in np.unique(bucket_of):
        rows = rng.permutation(np.flatnonzero(bucket_of == b))
        batches.extend(rows[i : i + batch_size] for i in range(0, len(rows), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def padding_fraction(data: EncodedData, batches: Sequence[np.ndarray]) -> float:
    """Fraction of padded positions over all positions of these batches."""
    lengths = data.lengths
    total = sum(len(b) * int(lengths[b].max()) for b in batches)
    return 1.0 - float(sum(int(lengths[b].sum()) for b in batches)) / max(total, 1)


def training_dataset(
    data: EncodedData,
    batch_size: int,
    *,
    seed: int,
    boundaries: Sequence[int] = DEFAULT_BUCKET_BOUNDARIES,
    word_dropout: float = 0.0,
    class_weights: np.ndarray | None = None,
    shard: tuple[int, int] = (0, 1),
    start_epoch: int = 0,
):
    """A repeating tf.data pipeline of bucketed, right-padded (features, targets) batches, or
    (features, targets, sample_weights) batches when `class_weights` (one weight per target id) is given.

    Each pass over the data is one epoch with its own shuffle (`bucket_batches` with the epoch number).
    `word_dropout` replaces that fraction of valid token ids with the unknown id, so the model learns
    a useful unknown-word vector. `shard=(i, n)` keeps rows i, i+n, ... of each batch (worker i of n in
    multi-worker training; `batch_size` is then the global batch) and skips batches of fewer than n rows, as
    `steps_per_epoch(..., min_rows=n)` counts them. `start_epoch` begins at that epoch with the batches and word
    dropout an uninterrupted run would have there (a resumed run sees the same data).
    """
    import tensorflow as tf

    has_chars = data.char_ids is not None

    def generate():
        epoch = 0
        rng = np.random.default_rng([seed, 10_007])
        while True:
            for index in bucket_batches(data, batch_size, seed=seed, epoch=epoch, boundaries=boundaries):
                if len(index) < shard[1]:
                    continue
                index = index[shard[0] :: shard[1]]
                width = int(data.lengths[index].max())
                if epoch < start_epoch:  # replay the random draws of the epochs already done
                    if word_dropout > 0:
                        rng.random((len(index), width))
                    continue
                features = batch_features(data, index, width)
                if word_dropout > 0:
                    tok = features["token_ids"]
                    drop = (rng.random(tok.shape) < word_dropout) & (tok != PAD_ID)
                    tok[drop] = UNK_ID
                targets = batch_targets(data, index, width)
                if class_weights is None:
                    yield features, targets
                else:
                    weights = class_weights[targets].astype(np.float32)
                    if targets.ndim == 2:
                        weights *= features["token_ids"] != PAD_ID
                    yield features, targets, weights
            epoch += 1

    feature_spec = {"token_ids": tf.TensorSpec([None, None], tf.int32)}
    if has_chars:
        feature_spec["char_ids"] = tf.TensorSpec([None, None, data.char_ids[0].shape[1]], tf.int32)
    target_spec = (
        tf.TensorSpec([None], tf.int32) if isinstance(data.targets, np.ndarray) else tf.TensorSpec([None, None], tf.int32)
    )
    if data.soft_targets is not None:
        if class_weights is not None:
            raise ValueError("class weights and soft targets do not combine")
        labels = data.soft_targets[0].shape[-1]
        target_spec = tf.TensorSpec([*target_spec.shape, 1 + labels], tf.float32)
    signature = (feature_spec, target_spec)
    if class_weights is not None:
        signature += (tf.TensorSpec(target_spec.shape, tf.float32),)
    ds = tf.data.Dataset.from_generator(generate, output_signature=signature)
    return ds.prefetch(4)


def steps_per_epoch(data: EncodedData, batch_size: int, boundaries: Sequence[int] = DEFAULT_BUCKET_BOUNDARIES,
                    min_rows: int = 1) -> int:
    """Batches per epoch (the same for every seed and epoch); `min_rows` skips smaller batches."""
    batches = bucket_batches(data, batch_size, seed=0, epoch=0, boundaries=boundaries)
    return sum(len(b) >= min_rows for b in batches)
