"""The mask-free inference graph of a trained task model, rebuilt from its weights.

Keras' masked recurrent layers do not convert to fused TFLite kernels or native ONNX recurrent ops, and the
fusing roads that drop the mask are silently wrong on padded rows (see EXPORT-FINDINGS.md). For right-padded
ids this graph equals the masked model on every valid position:

    lengths = sum(token_ids != 0, axis=1)
    fw = RNN_fw(x)                               # right padding cannot reach earlier steps
    bw = rev(RNN_bw(rev(x, lengths)), lengths)   # per-row reversal of the first `lengths` steps
    rev(x, L) = gather(x, where(t < L, L - 1 - t, t), batch_dims=1)

The reversal is a GATHER, never `tf.reverse_sequence`: TFLite has no int8 kernel for it and tf2onnx folds it
into a bidirectional ONNX LSTM that ignores the lengths. The graph outputs probabilities: per token
[batch, time, num_tags] for a tagger, [batch, num_labels] for a classifier (pooling over valid tokens only);
for a BiLM (embedder) the top layer's vectors [batch, time, 2 * units] (forward and backward states).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf


@dataclasses.dataclass
class RecurrentWeights:
    cell: str
    forward: list[np.ndarray]
    backward: list[np.ndarray] | None
    units: int


@dataclasses.dataclass
class ModelWeights:
    """Everything the inference graph needs, as NumPy arrays, taken from a trained SequenceTagger/TextClassifier."""

    task: str  # "tagging", "classification" or "embedding" (a BiLM: the top layer's vectors)
    embedding: np.ndarray
    char_embedding: np.ndarray | None
    char_kernel: np.ndarray | None
    char_bias: np.ndarray | None
    max_word_chars: int
    layers: list[RecurrentWeights]
    projection: tuple[np.ndarray, np.ndarray] | None
    head: tuple[np.ndarray, np.ndarray] | None
    separate_directions: bool = False  # BiLM: layer i > 0 of each direction reads only that direction

    @property
    def cell(self) -> str:
        return self.layers[0].cell

    @property
    def bidirectional(self) -> bool:
        return self.layers[0].backward is not None

    @property
    def num_outputs(self) -> int:
        if self.head is None:
            return 2 * self.layers[-1].units
        return int(self.head[0].shape[1])

    @classmethod
    def from_model(cls, model) -> ModelWeights:
        from kerasrnn.models import BiLanguageModel, SequenceTagger, Task

        if isinstance(model, BiLanguageModel):
            return cls._from_bilm(model)
        if not isinstance(model, Task):
            raise TypeError(f"expected a SequenceTagger or TextClassifier, got {type(model).__name__}")
        task = "tagging" if isinstance(model, SequenceTagger) else "classification"
        enc = model.encoder
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

    @classmethod
    def _from_bilm(cls, lm) -> ModelWeights:
        char_embedding = char_kernel = char_bias = None
        if lm.char_cnn is not None:
            char_embedding = lm.char_cnn.embedding.get_weights()[0]
            char_kernel, char_bias = lm.char_cnn.conv.get_weights()
        layers = [RecurrentWeights(lm.cell, fw.get_weights(), bw.get_weights(), lm.units)
                  for fw, bw in zip(lm.forward_layers, lm.backward_layers, strict=True)]
        return cls(
            task="embedding", embedding=lm.token_embedding.get_weights()[0], char_embedding=char_embedding,
            char_kernel=char_kernel, char_bias=char_bias, max_word_chars=lm.max_word_chars, layers=layers,
            projection=None, head=None, separate_directions=True,
        )


def reverse_valid(x, lengths):
    """Reverses the first `lengths[b]` steps of each row b of x [batch, time, ...]; later steps stay in place."""
    t = tf.range(tf.shape(x)[1])[tf.newaxis, :]
    lengths = lengths[:, tf.newaxis]
    index = tf.where(t < lengths, lengths - 1 - t, t)
    return tf.gather(x, index, batch_dims=1)


def _dense(x, kernel, bias):
    """x [batch, time, d] @ kernel as a 2-D matmul, so converters emit FULLY_CONNECTED / Gemm-friendly ops."""
    shape = tf.shape(x)
    y = tf.matmul(tf.reshape(x, [-1, kernel.shape[0]]), kernel) + bias
    return tf.reshape(y, tf.concat([shape[:-1], [kernel.shape[1]]], axis=0))


class InferenceGraph(tf.Module):
    """Builds the mask-free forward function from `ModelWeights`.

    The recurrent layers are tf_keras layers: the TFLite converter fuses tf_keras LSTMs into
    UNIDIRECTIONAL_SEQUENCE_LSTM, and tf2onnx rewrites tf_keras LSTMs and GRUs into native ONNX LSTM/GRU
    ops (Keras 3 GRUs become ONNX Loops instead).

    Args:
        weights: ModelWeights.
        fixed_length: int. If set, the graph takes exactly this many positions (right-pad shorter rows) and the
            recurrences are unrolled into plain fully-connected steps. Defaults to None (any length).
    """

    def __init__(self, weights: ModelWeights, fixed_length: int | None = None):
        super().__init__(name="inference_graph")
        self.fixed_length = fixed_length
        import tf_keras as api

        self.weights = weights
        # NumPy arrays, turned into graph constants when traced: eager tensors captured by a tf.function
        # would become extra graph inputs in tf2onnx.
        self.constants = {
            "embedding": weights.embedding,
            "projection": weights.projection,
            "head": weights.head,
            "char_embedding": weights.char_embedding,
            "char_kernel": weights.char_kernel,
            "char_bias": weights.char_bias,
        }
        self.rnns = []
        input_dim = weights.embedding.shape[1] + (0 if weights.char_kernel is None else weights.char_kernel.shape[2])
        for i, layer in enumerate(weights.layers):
            pair = []
            for direction, w in (("fw", layer.forward), ("bw", layer.backward)):
                if w is None:
                    pair.append(None)
                    continue
                cls = api.layers.LSTM if layer.cell == "lstm" else api.layers.GRU
                kwargs = {"reset_after": True} if layer.cell == "gru" else {}
                rnn = cls(layer.units, return_sequences=True, unroll=fixed_length is not None,
                          name=f"{layer.cell}_{i}_{direction}", **kwargs)
                rnn.build((None, None, input_dim))
                rnn.set_weights(w)
                pair.append(rnn)
            self.rnns.append(tuple(pair))
            input_dim = layer.units * (2 if layer.backward is not None and not weights.separate_directions else 1)

    def char_features(self, char_ids):
        c = self.constants
        shape = tf.shape(char_ids)
        flat = tf.reshape(char_ids, [-1, shape[2]])
        x = tf.gather(c["char_embedding"], flat)
        x = tf.nn.conv1d(x, c["char_kernel"], stride=1, padding="SAME") + c["char_bias"]
        x = tf.tanh(x)
        valid = tf.expand_dims(tf.not_equal(flat, 0), -1)
        x = tf.reduce_max(tf.where(valid, x, -2.0), axis=1)
        x = tf.where(tf.reduce_any(valid, axis=1), x, 0.0)
        return tf.reshape(x, tf.concat([shape[:2], [tf.shape(x)[-1]]], axis=0))

    def __call__(self, token_ids, char_ids=None):
        c = self.constants
        valid = tf.not_equal(token_ids, 0)
        lengths = tf.reduce_sum(tf.cast(valid, tf.int32), axis=1)
        x = tf.gather(c["embedding"], token_ids)
        if char_ids is not None:
            x = tf.concat([x, self.char_features(char_ids)], axis=-1)
        if self.weights.separate_directions:
            fw_x = bw_x = x
            for fw, bw in self.rnns:
                fw_x, bw_x = fw(fw_x), reverse_valid(bw(reverse_valid(bw_x, lengths)), lengths)
            return tf.concat([fw_x, bw_x], axis=-1)
        for fw, bw in self.rnns:
            out = fw(x)
            if bw is not None:
                out = tf.concat([out, reverse_valid(bw(reverse_valid(x, lengths)), lengths)], axis=-1)
            x = out
        y = _dense(x, *c["projection"])
        if self.weights.task == "classification":
            mask = tf.cast(valid, y.dtype)[:, :, tf.newaxis]
            mean = tf.reduce_sum(y * mask, axis=1) / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)
            # Padded steps take the first step's value (always valid with right padding): it cannot exceed the
            # valid maximum, and unlike a large negative filler it does not widen the int8 quantization range.
            maximum = tf.reduce_max(tf.where(mask > 0, y, y[:, :1, :]), axis=1)
            pooled = tf.concat([mean, maximum], axis=-1)
            return tf.nn.softmax(tf.matmul(pooled, c["head"][0]) + c["head"][1])
        return tf.nn.softmax(_dense(y, *c["head"]))

    def input_signature(self, batch: int | None):
        time = self.fixed_length
        signature = [tf.TensorSpec([batch, time], tf.int32, name="token_ids")]
        if self.weights.char_embedding is not None:
            signature.append(tf.TensorSpec([batch, time, self.weights.max_word_chars], tf.int32, name="char_ids"))
        return signature

    @property
    def output_name(self) -> str:
        return "vectors" if self.weights.task == "embedding" else "probabilities"

    def function(self, batch: int | None):
        """A tf.function with named inputs (`token_ids`, `char_ids`) and output `probabilities` (`vectors` for
        an embedder)."""
        name = self.output_name
        if self.weights.char_embedding is not None:
            def serve(token_ids, char_ids):
                return {name: self(token_ids, char_ids)}
        else:
            def serve(token_ids):
                return {name: self(token_ids)}
        return tf.function(serve, input_signature=self.input_signature(batch))
