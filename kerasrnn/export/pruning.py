"""Magnitude pruning with tensorflow-model-optimization, on a tf_keras rebuild of a trained task model.

tfmot 0.8.1 rejects Keras 3 objects, so the task model is rebuilt in tf_keras from its `ModelWeights` (same
masking), pruned to a constant sparsity while it is fine-tuned on the training data, stripped, and turned back
into `ModelWeights`, written into a copy of the Keras model for the usual export (`KerasGraph`). tfmot flips
`TF_USE_LEGACY_KERAS` for the process when it is imported, so it is imported here only, inside the function that
prunes.
"""

from __future__ import annotations

import dataclasses
import gzip
from pathlib import Path

import numpy as np


@dataclasses.dataclass
class RecurrentWeights:
    cell: str
    forward: list[np.ndarray]
    backward: list[np.ndarray] | None
    units: int


@dataclasses.dataclass
class ModelWeights:
    """The weights of a trained SequenceTagger/TextClassifier as NumPy arrays: what the tf_keras rebuild for
    pruning takes and gives back (`apply_to` writes them into a Keras task model)."""

    task: str  # "tagging" or "classification"
    embedding: np.ndarray
    char_embedding: np.ndarray | None
    char_kernel: np.ndarray | None
    char_bias: np.ndarray | None
    max_word_chars: int
    layers: list[RecurrentWeights]
    projection: tuple[np.ndarray, np.ndarray] | None
    head: tuple[np.ndarray, np.ndarray] | None

    @property
    def cell(self) -> str:
        return self.layers[0].cell

    @property
    def bidirectional(self) -> bool:
        return self.layers[0].backward is not None

    @property
    def num_outputs(self) -> int:
        return int(self.head[0].shape[1])

    @classmethod
    def from_model(cls, model) -> ModelWeights:
        from kerasrnn.models import SequenceTagger, Task

        if not isinstance(model, Task):
            raise TypeError(f"expected a SequenceTagger or TextClassifier, got {type(model).__name__}")
        task = "tagging" if isinstance(model, SequenceTagger) else "classification"
        enc = model.encoder
        if getattr(enc, "elmo", None) is not None:
            raise ValueError("pruning rebuilds the encoder from its own layers; a model with ELMo features "
                             "(model.elmo) is not supported")
        if enc.char_cnn is not None and enc.char_cnn.highways:
            raise ValueError("pruning rebuilds the character CNN without highway layers; a model with "
                             "model.char_highway_layers > 0 is not supported")
        char_embedding = char_kernel = char_bias = None
        if enc.char_cnn is not None:
            char_embedding = enc.char_cnn.embedding.get_weights()[0]
            char_kernel, char_bias = enc.char_cnn.conv.get_weights()
        layers = [RecurrentWeights(enc.cell, fw.get_weights(), bw.get_weights() if bw is not None else None, enc.units)
                  for fw, bw in enc.recurrent_directions]
        return cls(
            task=task,
            embedding=enc.token_embedding.get_weights()[0],
            char_embedding=char_embedding, char_kernel=char_kernel, char_bias=char_bias,
            max_word_chars=enc.max_word_chars,
            layers=layers,
            projection=tuple(enc.projection.get_weights()),
            head=tuple(model.head.get_weights()),
        )

    def apply_to(self, model) -> None:
        """Writes these weights into a Keras task model of the same shape."""
        enc = model.encoder
        enc.token_embedding.set_weights([self.embedding])
        if enc.char_cnn is not None:
            enc.char_cnn.embedding.set_weights([self.char_embedding])
            enc.char_cnn.conv.set_weights([self.char_kernel, self.char_bias])
        for (fw, bw), layer in zip(enc.recurrent_directions, self.layers, strict=True):
            fw.set_weights(layer.forward)
            if bw is not None:
                bw.set_weights(layer.backward)
        enc.projection.set_weights(list(self.projection))
        model.head.set_weights(list(self.head))


def _tf_keras_model(weights: ModelWeights, tfmot, sparsity: float, frequency: int):
    import tensorflow as tf
    import tf_keras

    L = tf_keras.layers

    class PrunableBidirectional(L.Bidirectional, tfmot.sparsity.keras.PrunableLayer):
        def get_prunable_weights(self):
            return [w for w in (self.forward_layer.cell.kernel, self.forward_layer.cell.recurrent_kernel,
                                self.backward_layer.cell.kernel, self.backward_layer.cell.recurrent_kernel)]

    class PrunableRNN(L.RNN, tfmot.sparsity.keras.PrunableLayer):
        def get_prunable_weights(self):
            return [self.cell.kernel, self.cell.recurrent_kernel]

    class CharFeatures(L.Layer):
        def __init__(self, embedding, kernel, bias, **kwargs):
            super().__init__(**kwargs)
            self.table = tf.constant(embedding)
            self.kernel = tf.constant(kernel)
            self.bias = tf.constant(bias)

        def call(self, char_ids):
            shape = tf.shape(char_ids)
            flat = tf.reshape(char_ids, [-1, shape[2]])
            x = tf.tanh(tf.nn.conv1d(tf.gather(self.table, flat), self.kernel, 1, "SAME") + self.bias)
            valid = tf.expand_dims(tf.not_equal(flat, 0), -1)
            x = tf.where(tf.reduce_any(valid, 1), tf.reduce_max(tf.where(valid, x, -2.0), 1), 0.0)
            return tf.reshape(x, tf.concat([shape[:2], [tf.shape(x)[-1]]], 0))

    class MaskedMeanMax(L.Layer):
        def call(self, x, mask=None):
            m = tf.cast(mask, x.dtype)[:, :, None]
            mean = tf.reduce_sum(x * m, 1) / tf.maximum(tf.reduce_sum(m, 1), 1.0)
            return tf.concat([mean, tf.reduce_max(tf.where(m > 0, x, tf.reduce_min(x) - 1.0), 1)], -1)

        def compute_mask(self, x, mask=None):
            return None

    schedule = tfmot.sparsity.keras.ConstantSparsity(sparsity, begin_step=0, frequency=frequency)

    def prune(layer):
        return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)

    token_ids = L.Input((None,), dtype="int32", name="token_ids")
    inputs = [token_ids]
    mask = tf_keras.layers.Lambda(lambda t: tf.not_equal(t, 0), name="token_mask")(token_ids)
    embedding = L.Embedding(*weights.embedding.shape, name="token_embedding")
    x = prune(embedding)(token_ids)
    if weights.char_embedding is not None:
        char_ids = L.Input((None, weights.max_word_chars), dtype="int32", name="char_ids")
        inputs.append(char_ids)
        chars = CharFeatures(weights.char_embedding, weights.char_kernel, weights.char_bias, name="char_cnn")(char_ids)
        x = L.Concatenate()([x, chars])
    rnns = []
    for i, layer in enumerate(weights.layers):
        cell_cls = L.LSTMCell if layer.cell == "lstm" else L.GRUCell
        kwargs = {"reset_after": True} if layer.cell == "gru" else {}
        if layer.backward is not None:
            rnn = PrunableBidirectional(L.RNN(cell_cls(layer.units, **kwargs), return_sequences=True), name=f"rnn_{i}")
        else:
            rnn = PrunableRNN(cell_cls(layer.units, **kwargs), return_sequences=True, name=f"rnn_{i}")
        rnns.append(rnn)
        x = prune(rnn)(x, mask=mask)
    projection = L.Dense(weights.projection[0].shape[1], name="projection")
    x = prune(projection)(x)
    head = L.Dense(weights.num_outputs, name="head")
    if weights.task == "classification":
        x = MaskedMeanMax()(x)
    logits = prune(head)(x)
    model = tf_keras.Model(inputs, logits)
    embedding.set_weights([weights.embedding])
    for rnn, layer in zip(rnns, weights.layers, strict=True):
        rnn.set_weights(layer.forward + (layer.backward or []))
    projection.set_weights(list(weights.projection))
    head.set_weights(list(weights.head))
    return model, embedding, rnns, projection, head


@dataclasses.dataclass
class PruningResult:
    weights: ModelWeights
    sparsity: float
    measured_sparsity: float
    steps: int


def prune_weights(weights: ModelWeights, train_data, *, sparsity: float, steps: int, batch_size: int = 32,
                  learning_rate: float = 2e-4, seed: int = 0) -> PruningResult:
    """Fine-tunes a pruned copy for `steps` steps on `train_data` (EncodedData with targets); returns its weights."""
    if not 0.0 < sparsity < 1.0:
        raise ValueError(f"sparsity must be in (0, 1), got {sparsity}")
    import tensorflow_model_optimization as tfmot
    import tf_keras

    from kerasrnn.data.pipeline import training_dataset

    model, embedding, rnns, projection, head = _tf_keras_model(weights, tfmot, sparsity, frequency=max(steps // 10, 1))
    model.compile(optimizer=tf_keras.optimizers.Adam(learning_rate, clipnorm=1.0),
                  loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    dataset = training_dataset(train_data, batch_size, seed=seed)
    model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=2,
              callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    stripped = tfmot.sparsity.keras.strip_pruning(model)
    by_name = {layer.name: layer for layer in stripped.layers}
    layers = []
    for i, old in enumerate(weights.layers):
        w = by_name[f"rnn_{i}"].get_weights()
        n = len(old.forward)
        layers.append(RecurrentWeights(old.cell, w[:n], w[n:] if old.backward is not None else None, old.units))
    pruned = dataclasses.replace(
        weights,
        embedding=by_name["token_embedding"].get_weights()[0],
        layers=layers,
        projection=tuple(by_name["projection"].get_weights()),
        head=tuple(by_name["head"].get_weights()),
    )
    kernels = [pruned.embedding, pruned.projection[0], pruned.head[0]]
    for layer in layers:
        for w in [layer.forward] + ([layer.backward] if layer.backward is not None else []):
            kernels += w[:2]
    zeros = sum(int((k == 0).sum()) for k in kernels) / sum(k.size for k in kernels)
    return PruningResult(pruned, sparsity, zeros, steps)


def gzip_size(path) -> int:
    return len(gzip.compress(Path(path).read_bytes(), compresslevel=9))


def prune_and_export(run, export_dir: Path, settings, train_examples, test_examples, test_data) -> dict:
    """Fine-tunes a pruned copy on the training examples, exports it to fp32 TFLite and scores it on the test
    examples (`test_data`: their encoding, made once per export)."""
    import tempfile

    from kerasrnn.export.converters import QuantizationConfig, save_saved_model, to_tflite
    from kerasrnn.export.keras_graph import KerasGraph
    from kerasrnn.export.verify import progress
    from kerasrnn.metrics import score
    from kerasrnn.runtime.runners import TFLiteRunner, run_batched

    config = run.config
    progress(f"pruning to {settings.prune_sparsity:.0%} sparsity, {settings.prune_steps} fine-tuning steps")
    train = run.preprocessor.encode(train_examples, targets=True)
    result = prune_weights(ModelWeights.from_model(run.model), train, sparsity=settings.prune_sparsity,
                           steps=settings.prune_steps, batch_size=config.training.batch_size, seed=settings.seed)
    path = export_dir / "model_pruned.tflite"
    pruned = type(run.model).from_config(run.model.get_config())
    pruned.set_weights(run.model.get_weights())
    result.weights.apply_to(pruned)
    with tempfile.TemporaryDirectory() as tmp:
        saved = save_saved_model(KerasGraph(pruned, softmax=True, output_name="probabilities"), Path(tmp) / "saved_model")
        to_tflite(saved, path, QuantizationConfig.for_float32())
    runner = TFLiteRunner(path, **run.preprocessor.sizes)
    probs = run_batched(runner, test_data)
    metric = score(config, test_examples, run.labels, probs, run.preprocessor.crf)[config.task.metric]
    return {
        "file": path.name, "sparsity": result.sparsity, "measured_sparsity": round(result.measured_sparsity, 4),
        "fine_tune_steps": result.steps, "test_metric": metric, "bytes": path.stat().st_size,
        "gzip_bytes": gzip_size(path), "unpruned_fp32_gzip_bytes": gzip_size(export_dir / "model_fp32.tflite"),
    }
