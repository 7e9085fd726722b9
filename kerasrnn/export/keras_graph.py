"""The Keras layer graph -> the mask-free inference graph that converts to fused TFLite and native ONNX ops.

Keras' masked recurrent layers do not convert to fused TFLite kernels or native ONNX recurrent ops, and the
fusing roads that drop the mask are silently wrong on padded rows (see EXPORT-FINDINGS.md). `KerasGraph` walks a
Keras model's layer graph (Sequential, functional, nested models, and kerasrnn's own models and layers) and
rebuilds it without masks, for right-padded integer-id inputs:

    lengths = sum(ids != 0, axis=1)                          # of the first input that feeds a mask_zero Embedding
    forward RNN:  y = RNN(x)                                 # right padding cannot reach earlier steps
    go_backwards: y = RNN(rev(x, lengths))                   # Keras' order: the last valid token first
    Bidirectional backward half: rev(RNN(rev(x, lengths)), lengths)
    return_sequences=False: y[lengths - 1]                   # the state at the last valid step
    pooling: over positions < lengths only
    rev(x, L) = gather(x, where(t < L, L - 1 - t, t), batch_dims=1)

Every layer answers at the valid positions what the Keras model answers for the row on its own (no padding): the
graph's outputs do not change with padding even where Keras' own do (GlobalMaxPooling1D counts pad positions). A
model whose inputs feed no mask_zero Embedding has no padding: all positions are valid.

The reversal is a GATHER, never `tf.reverse_sequence`: TFLite has no int8 kernel for it and tf2onnx folds it
into a bidirectional ONNX LSTM that ignores the lengths. The recurrent layers are tf_keras layers: the TFLite
converter fuses tf_keras LSTMs into UNIDIRECTIONAL_SEQUENCE_LSTM, and tf2onnx rewrites tf_keras LSTMs and GRUs
into native ONNX LSTM/GRU ops. A layer outside the supported set is refused with an `UnsupportedLayerError`
naming it, never converted into a silently different graph.
"""

from __future__ import annotations

import dataclasses
import types

import numpy as np
import tensorflow as tf

from kerasrnn.layers.char_cnn import highway_step
from kerasrnn.layers.scalar_mix import scalar_mix


class UnsupportedLayerError(ValueError):
    """The model holds a layer, option or operation the converter does not rebuild; the message names it."""


RNN_ACTIVATIONS = ("tanh", "sigmoid", "relu", "linear")
ACTIVATIONS = {
    "linear": lambda x: x, "relu": tf.nn.relu, "relu6": tf.nn.relu6, "sigmoid": tf.sigmoid, "tanh": tf.tanh,
    "softmax": lambda x: tf.nn.softmax(x, axis=-1), "elu": tf.nn.elu, "selu": tf.nn.selu,
    "softplus": tf.nn.softplus, "softsign": tf.nn.softsign, "silu": tf.nn.silu, "swish": tf.nn.silu,
    "gelu": lambda x: tf.nn.gelu(x, approximate=False), "exponential": tf.exp,
    "hard_sigmoid": lambda x: tf.nn.relu6(x + 3.0) / 6.0, "leaky_relu": lambda x: tf.nn.leaky_relu(x, 0.2),
}
RECURRENT = ("LSTM", "GRU", "SRU", "LSTMP")
IDENTITY_LAYERS = ("CRF", "Dropout", "SpatialDropout1D", "GaussianNoise", "GaussianDropout", "AlphaDropout",
                   "ActivityRegularization")
SUPPORTED = ("InputLayer, Embedding (and kerasrnn's TokenEmbedding), LSTM, GRU, kerasrnn's SRU (return_sequences "
             "true or false, go_backwards), Bidirectional (every merge_mode), Dense, TimeDistributed(Dense), Dropout, "
             "SpatialDropout1D, GaussianNoise, "
             "GaussianDropout, AlphaDropout, LayerNormalization, GlobalAveragePooling1D, GlobalMaxPooling1D, "
             "Concatenate, Add, Subtract, Multiply, Average, Maximum, Minimum, Activation, nested Sequential and "
             "functional models, and kerasrnn's ContextualEncoder, SequenceTagger, TextClassifier, "
             "BiLanguageModel, CharCNN, MaskedMeanMaxPooling, ELMo")


def lstmp_as_lstm(weights) -> tuple[list, np.ndarray]:
    """A `kerasrnn.layers.LSTMP`'s weights (its `get_weights()` order) as an LSTM's [kernel, recurrent kernel,
    bias] and the projection P to apply to that LSTM's output: its gates read r R = h (P R), so an LSTM of all its
    cells whose recurrent kernel is P R, followed by P, is the same function."""
    kernel, bias, recurrent, projection = weights
    return [kernel, projection @ recurrent, bias], projection


def reverse_valid(x, lengths):
    """Reverses the first `lengths[b]` steps of each row b of x [batch, time, ...]; later steps stay in place."""
    t = tf.range(tf.shape(x)[1])[tf.newaxis, :]
    lengths = lengths[:, tf.newaxis]
    index = tf.where(t < lengths, lengths - 1 - t, t)
    return tf.gather(x, index, batch_dims=1)


SRU_MAX_LENGTH = 1024  # positions the exported SRU scan covers by default: log2 of it is the number of its steps


def sru_sequence(x, kernel, bias, units: int, max_length: int = SRU_MAX_LENGTH):
    """The outputs [batch, time, units] of a Keras `kerasrnn.layers.SRU` (forward, from a zero state, no mask) over
    x [batch, time, features]: its projections as one matmul, its recurrence c_t = f_t c_{t-1} + a_t as a parallel
    prefix scan (Hillis and Steele: after the step of width d, (f_t, a_t) composes steps t-2d+1..t), so that the
    graph has no loop (the int8 calibrator cannot take a WHILE loop) and takes any length up to `max_length`
    (ceil(log2 max_length) steps; a static time axis: exactly the steps it needs).

    The shift by d is a PAD of d zero rows in front and a SLICE of all but the last d rows: both have constant
    arguments, so every shape follows from the input's when the interpreter is resized (a SLICE up to the row's
    length read from a SHAPE op made every tensor dynamic: pos_ewt_sru's int8 file took 4.9 ms at 32 tokens; a
    GATHER per shift 0.52 ms at 32 and 6.1 at 256; this 0.43 and 3.9; one-off timings, batch 1, 1 thread).
    Positions before the start read zeros in both f and a: a state that starts at zero never reads the f of a
    window reaching past the start, so zeros serve both. Each step counts: 12 steps (4096 positions) cost 0.68 ms
    at 32 tokens against 0.43 with 10 (the wider shifts pad more rows), so a run's export takes its preprocessor's
    max_length (256: 8 steps)."""
    f, a, r, highway = sru_gates(x, kernel, bias, units)
    time = x.shape[1]
    steps = int(np.ceil(np.log2(time or max_length)))
    d = 1
    for step in range(steps):
        a = a + f * tf.pad(a, [[0, 0], [d, 0], [0, 0]])[:, :-d]
        if step < steps - 1:
            f = f * tf.pad(f, [[0, 0], [d, 0], [0, 0]])[:, :-d]
        d *= 2
    return r * tf.tanh(a) + (1.0 - r) * highway


def sru_gates(x, kernel, bias, units: int):
    """An SRU's per-step terms for every step of x [batch, time, features] at once: the forget gate f, the input
    a = (1 - f) x~, the reset gate r and the highway term (x, or its projection when features != units)."""
    u = _matmul(x, kernel, None)
    candidate, f, r = u[..., :units], u[..., units : 2 * units], u[..., 2 * units : 3 * units]
    highway = u[..., 3 * units :] if kernel.shape[1] == 4 * units else x
    f = tf.sigmoid(f + bias[:units])
    return f, (1.0 - f) * candidate, tf.sigmoid(r + bias[units:]), highway


def max_length(model, limit: int = SRU_MAX_LENGTH) -> int | None:
    """The most positions a row may hold in the exports of `model`: `limit` when it has an SRU layer (its scan's
    steps cover that many positions), else None (any length)."""
    layers = model._flatten_layers(include_self=True, recursive=True)
    return limit if any(type(layer).__name__ == "SRU" for layer in layers) else None


def _matmul(x, kernel, bias):
    """x [..., d] @ kernel as a 2-D matmul, so converters emit FULLY_CONNECTED / Gemm-friendly ops."""
    if len(x.shape) == 2:
        y = tf.matmul(x, kernel)
        return y if bias is None else y + bias
    shape = tf.shape(x)
    y = tf.matmul(tf.reshape(x, [-1, kernel.shape[0]]), kernel)
    if bias is not None:
        y = y + bias
    return tf.reshape(y, tf.concat([shape[:-1], [kernel.shape[1]]], axis=0))


def _activation_name(layer, fn) -> str:
    import keras

    name = keras.activations.serialize(fn) if not isinstance(fn, str) else fn
    if isinstance(name, dict):
        name = name.get("config", name.get("class_name"))
    return name if isinstance(name, str) else str(fn)


def _activation(layer, fn):
    name = _activation_name(layer, fn)
    if name not in ACTIVATIONS:
        raise UnsupportedLayerError(f"layer {layer.name!r} ({type(layer).__name__}): activation {name!r} is not "
                                    f"supported; supported: {', '.join(sorted(ACTIVATIONS))}")
    return ACTIVATIONS[name]


@dataclasses.dataclass
class InputInfo:
    """What an app must feed one model input: its name, rank, the id range it is checked against and whether
    its rows are right-padded with 0 (it feeds a mask_zero Embedding)."""

    name: str
    shape: tuple  # without the batch axis; None for the time axis
    id_range: int | None = None
    right_padded: bool = False
    max_length: int | None = None

    def describe(self) -> dict:
        out = {"dtype": "int32", "shape": ["batch", "time", *self.shape[1:]], "tflite_shape": [1, "time",
               *self.shape[1:]], "onnx_shape": ["batch", "time", *self.shape[1:]],
               "id_range": self.id_range, "right_padded": self.right_padded}
        if self.max_length is not None:
            out["max_length"] = self.max_length
        return out


class KerasGraph(tf.Module):
    """The mask-free forward function of a Keras model, as a tf.Module for the TFLite and ONNX converters.

    Args:
        model: keras.Model. A Sequential or functional model on integer-id inputs (nested models allowed), or a
            kerasrnn model (a task model or a BiLanguageModel, whose top layer's vectors are the output).
        fixed_length: int. If set, the graph takes exactly this many positions (right-pad shorter rows) and the
            recurrences are unrolled into plain fully-connected steps. Defaults to None (any length).
        softmax: bool. Append a softmax over the last axis (our task models emit logits; their exports emit
            probabilities). Defaults to False: the output means what the Keras output means.
        output_name: str. The output's name in the TFLite signature and the ONNX graph. Defaults to the Keras
            output's name.
        sru_max_length: int. The longest row an SRU layer's scan covers (metadata.json's `max_length`; longer rows
            are refused by the runners). Defaults to SRU_MAX_LENGTH (1024).

    Raises:
        UnsupportedLayerError: naming the first layer, option or operation outside the supported set.
    """

    def __init__(self, model, fixed_length: int | None = None, softmax: bool = False, output_name: str | None = None,
                 sru_max_length: int = SRU_MAX_LENGTH):
        super().__init__(name="inference_graph")
        self.sru_max_length = sru_max_length
        import keras

        from kerasrnn.models import BiLanguageModel

        self.fixed_length, self.softmax = fixed_length, softmax
        # Not tracked by tf.Module (SavedModel must hold only the tf_keras twins' weights, not the Keras model):
        # the Keras model, {id(Keras RNN layer): its tf_keras twin}, {id(Keras layer): NumPy weights}, and the
        # row lengths of the call being traced.
        self._state = types.SimpleNamespace(model=model, rnns={}, constants={}, lengths=None, rnn_call=None)
        self.twins = []  # tracked: the SavedModel saves their weights
        if isinstance(model, BiLanguageModel):
            self.inputs = self._bilm_inputs(model)
            self._body = self._bilm
            self.output_name = output_name or "vectors"
        else:
            functional = model._functional if isinstance(model, keras.Sequential) else model
            if functional is None or not hasattr(functional, "_run_through_graph"):
                raise UnsupportedLayerError(
                    f"model {model.name!r} ({type(model).__name__}) is a subclassed Keras model, whose layer graph "
                    "cannot be read; write it as a Sequential or functional model (supported layers: "
                    f"{SUPPORTED})")
            if len(model.outputs) != 1:
                raise UnsupportedLayerError(f"model {model.name!r} has {len(model.outputs)} outputs; the export "
                                            "takes models with one output")
            self.inputs = self._input_infos(functional)
            self._body = lambda values: self._run(functional, values)
            self.output_name = output_name or _tensor_name(model.outputs[0])
        self.padded = next((i.name for i in self.inputs.values() if i.right_padded), None)
        limit = max_length(model, self.sru_max_length)
        for info in self.inputs.values():
            info.max_length = limit
        self._snapshot(model)
        self._check()

    # ---- inputs -------------------------------------------------------------------------------------------

    def _input_infos(self, functional) -> dict[str, InputInfo]:
        infos = {}
        for x in functional.inputs:
            name = _tensor_name(x)
            if "int" not in str(x.dtype):
                raise UnsupportedLayerError(f"input {name!r} has dtype {x.dtype}; the export takes integer-id "
                                            "inputs (token ids, character ids)")
            if len(x.shape) not in (2, 3):
                raise UnsupportedLayerError(f"input {name!r} has shape {x.shape}; expected [batch, time] ids or "
                                            "[batch, time, chars] character ids")
            infos[name] = InputInfo(name, tuple(x.shape[1:]))
        self._consumers(functional, {id(x): infos[_tensor_name(x)] for x in functional.inputs})
        return infos

    def _consumers(self, functional, by_tensor: dict) -> None:
        """Finds, for each model input, the id range of the layers that read it and whether it is padded."""
        import keras

        from kerasrnn.layers import CharCNN

        for layer in functional.layers:
            for node in layer._inbound_nodes:
                for position, t in enumerate(node.input_tensors):
                    info = by_tensor.get(id(t))
                    if info is None:
                        continue
                    size = None
                    if isinstance(layer, keras.layers.Embedding):
                        size, padded = layer.input_dim, layer.mask_zero
                    elif isinstance(layer, CharCNN):
                        size, padded = layer.vocabulary_size, False
                    elif isinstance(layer, keras.Model) and hasattr(layer, "_run_through_graph"):
                        inner_model = layer._functional if isinstance(layer, keras.Sequential) else layer
                        # The call's tensors, flattened, are the nested model's inputs in the same order.
                        x = inner_model.inputs[position]
                        inner = {id(x): InputInfo(_tensor_name(x), tuple(x.shape[1:]))}
                        self._consumers(inner_model, inner)
                        size, padded = inner[id(x)].id_range, inner[id(x)].right_padded
                    else:
                        padded = False
                    if size is not None:
                        info.id_range = size if info.id_range is None else min(info.id_range, size)
                    info.right_padded = info.right_padded or padded

    def input_signature(self, batch: int | None):
        return [{name: tf.TensorSpec([batch, self.fixed_length, *info.shape[1:]], tf.int32, name=name)
                 for name, info in self.inputs.items()}]

    def function(self, batch: int | None):
        """A tf.function of one dict argument (the Keras input names) returning `{output_name: output}`."""
        def serve(inputs):
            return {self.output_name: self(inputs)}

        return tf.function(serve, input_signature=self.input_signature(batch), autograph=False)

    # ---- the forward pass ---------------------------------------------------------------------------------

    def __call__(self, inputs: dict):
        ids = inputs[self.padded] if self.padded else next(iter(inputs.values()))
        if len(ids.shape) == 3:
            ids = ids[:, :, 0]
        time = tf.shape(ids)[1]
        self._state.lengths = (tf.reduce_sum(tf.cast(tf.not_equal(ids, 0), tf.int32), axis=1) if self.padded
                               else tf.fill(tf.shape(ids)[:1], time))
        y = self._body(inputs)
        if isinstance(y, _MaskOp):
            raise UnsupportedLayerError(f"the model's output is the Keras op {y.op.name!r} ({type(y.op).__name__}); "
                                        "the export rebuilds layers")
        return tf.nn.softmax(y, axis=-1) if self.softmax else y

    def _run(self, functional, values):
        args = [values[_tensor_name(x)] for x in functional.inputs]
        return functional._run_through_graph(args, operation_fn=lambda op: op, call_fn=self._call_layer)

    def _call_layer(self, layer, *args, **kwargs):
        import keras

        if not isinstance(layer, keras.layers.Layer):
            # A Keras op in the layer graph: masks are computed with them (Embedding's `ids != 0`, Concatenate's
            # mask merging). The graph masks by `lengths`, so their values are never needed; one whose value a
            # layer reads as data is refused there.
            return _MaskOp(layer)
        for x in _flat(args):
            if isinstance(x, _MaskOp):
                raise UnsupportedLayerError(
                    f"layer {layer.name!r} ({type(layer).__name__}) reads the output of the Keras op {x.op.name!r} "
                    f"({type(x.op).__name__}); the export rebuilds layers, not ops on the padded rows (supported: "
                    f"{SUPPORTED})")
        convert = CONVERTERS.get(type(layer).__name__)
        if convert is not None:
            return convert(self, layer, *args, **kwargs)
        if isinstance(layer, keras.Model) and hasattr(layer, "_run_through_graph"):
            inner = layer._functional if isinstance(layer, keras.Sequential) else layer
            # Keras flattens the call's inputs (a dict by sorted key) in the order of the nested model's inputs.
            values = dict(zip([_tensor_name(t) for t in inner.inputs], keras.tree.flatten(args[0]), strict=True))
            return self._run(inner, values)
        raise UnsupportedLayerError(_unsupported(layer))

    def _snapshot(self, model) -> None:
        """Every layer's weights as NumPy arrays, and the tf_keras twins of the recurrent layers, made eagerly
        (tracing cannot read variables' values)."""
        for layer in [model, *model._flatten_layers(include_self=False, recursive=True)]:
            self._state.constants[id(layer)] = [np.asarray(w) for w in layer.get_weights()]
            if type(layer).__name__ in RECURRENT:
                self.rnn(layer)

    def _check(self) -> None:
        """Traces the graph once, so that an unsupported layer is refused now, not inside a converter."""
        tf.function(self.__call__, autograph=False).get_concrete_function(self.input_signature(1)[0])

    # ---- recurrent layers ---------------------------------------------------------------------------------

    def rnn(self, layer):
        """The tf_keras twin of a Keras LSTM/GRU (same weights), or the scan of an SRU, returning the whole
        sequence."""
        key = id(layer)
        if key not in self._state.rnns:
            import tf_keras

            cell = type(layer).__name__
            for option in ("stateful", "return_state"):
                if getattr(layer, option, False):
                    raise UnsupportedLayerError(f"layer {layer.name!r} ({cell}): {option}=True is not supported; "
                                                "the export runs each row from a zero state")
            if cell == "SRU":
                kernel, bias = self._state.constants[id(layer)]
                self._state.rnns[key] = lambda x: sru_sequence(x, kernel, bias, layer.units, self.sru_max_length)
                return self._state.rnns[key]
            if cell == "LSTMP":
                self._state.rnns[key] = self._lstmp(layer)
                return self._state.rnns[key]
            kwargs = {}
            for option in ("activation", "recurrent_activation"):
                name = _activation_name(layer, getattr(layer.cell, option))
                if name not in RNN_ACTIVATIONS:
                    raise UnsupportedLayerError(f"layer {layer.name!r} ({cell}): {option} {name!r} is not "
                                                f"supported; supported: {', '.join(RNN_ACTIVATIONS)}")
                kwargs[option] = name
            if cell == "GRU":
                kwargs["reset_after"] = layer.cell.reset_after
            twin = getattr(tf_keras.layers, cell)(layer.cell.units, return_sequences=True,
                                                  use_bias=layer.cell.use_bias,
                                                  unroll=self.fixed_length is not None, name=f"rnn_{len(self.twins)}",
                                                  **kwargs)
            twin.build((None, None, layer.cell.kernel.shape[0]))
            twin.set_weights(layer.get_weights())
            self._state.rnns[key] = twin
            self.twins.append(twin)
        return self._state.rnns[key]

    def _lstmp(self, layer):
        """A `kerasrnn.layers.LSTMP` as a tf_keras LSTM followed by its projection (`lstmp_as_lstm`), which the
        converters fuse into their LSTM ops (whose projection inputs no converter fills)."""
        import tf_keras

        lstm, projection = lstmp_as_lstm(self._state.constants[id(layer)])
        twin = tf_keras.layers.LSTM(layer.units, return_sequences=True, unroll=self.fixed_length is not None,
                                    name=f"rnn_{len(self.twins)}")
        twin.build((None, None, lstm[0].shape[0]))
        twin.set_weights(lstm)
        self.twins.append(twin)
        return lambda x: tf.matmul(twin(x), projection)  # one FULLY_CONNECTED after the LSTM op

    def run_rnn(self, layer, x):
        """A Keras LSTM/GRU/SRU `layer` run forward over x [batch, time, features] from a zero state: its whole output
        sequence. Every recurrence of the graph goes through here; `kerasrnn.export.staged` swaps the call to cut
        the graph into stages at the recurrences."""
        if self._state.rnn_call is not None:
            return self._state.rnn_call(layer, x)
        return self.rnn(layer)(x)

    @property
    def lengths(self):
        return self._state.lengths

    def last_valid(self, sequence):
        return tf.gather(sequence, tf.maximum(self.lengths - 1, 0), batch_dims=1)

    # ---- kerasrnn's BiLanguageModel: the top layer's forward and backward states -----------------------------

    def _bilm_inputs(self, lm) -> dict[str, InputInfo]:
        infos = {"token_ids": InputInfo("token_ids", (None,), lm.vocabulary_size, True)}
        if lm.char_cnn is not None:
            infos["char_ids"] = InputInfo("char_ids", (None, lm.max_word_chars), lm.char_vocabulary_size)
        return infos

    def _bilm(self, inputs):
        return self.bilm_layers(self._state.model, inputs)[-1]

    def bilm_layers(self, lm, inputs) -> list:
        """The layers of a BiLanguageModel as its `call` returns them: word features, then each recurrent layer's
        forward and backward states."""
        x = tf.gather(self.constant(lm.token_embedding), inputs["token_ids"])
        if lm.char_cnn is not None:
            x = tf.concat([x, self.char_features(lm.char_cnn, inputs["char_ids"])], axis=-1)
        layers, fw_x, bw_x = [x], x, x
        for i, (fw, bw) in enumerate(zip(lm.forward_layers, lm.backward_layers, strict=True)):
            fw_in, bw_in = fw_x, bw_x
            fw_x = self.run_rnn(fw, fw_x)
            bw_x = reverse_valid(self.run_rnn(bw, reverse_valid(bw_x, self.lengths)), self.lengths)
            if lm.residual and i:
                fw_x, bw_x = fw_x + fw_in, bw_x + bw_in
            layers.append(tf.concat([fw_x, bw_x], axis=-1))
        return layers

    # ---- shared pieces ------------------------------------------------------------------------------------

    def constant(self, layer, index: int = 0):
        """A weight of `layer` as a NumPy array: traced into a graph constant (eager tensors captured by a
        tf.function would become extra graph inputs in tf2onnx)."""
        return self._state.constants[id(layer)][index]

    def char_features(self, cnn, char_ids):
        shape = tf.shape(char_ids)
        flat = tf.reshape(char_ids, [-1, shape[2]])
        x = tf.gather(self.constant(cnn.embedding), flat)
        kernel, bias = self.constant(cnn.conv, 0), self.constant(cnn.conv, 1)
        x = tf.nn.conv1d(x, kernel, stride=1, padding="SAME") + bias
        x = tf.tanh(x)
        valid = tf.expand_dims(tf.not_equal(flat, 0), -1)
        x = tf.reduce_max(tf.where(valid, x, -2.0), axis=1)
        word = tf.reduce_any(valid, axis=1)
        x = tf.where(word, x, 0.0)
        for highway in cnn.highways:  # as CharCNN.call: padded words stay zero
            x = tf.where(word, highway_step(x, _matmul(x, self.constant(highway, 0), self.constant(highway, 1))), 0.0)
        return tf.reshape(x, tf.concat([shape[:2], [tf.shape(x)[-1]]], axis=0))

    def valid_mask(self, x):
        """[batch, time, 1] float mask of the valid positions of a sequence x."""
        t = tf.range(tf.shape(x)[1])[tf.newaxis, :]
        return tf.cast(t < self.lengths[:, tf.newaxis], x.dtype)[:, :, tf.newaxis]

    def masked_mean(self, x):
        mask = self.valid_mask(x)
        return tf.reduce_sum(x * mask, axis=1) / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)

    def masked_max(self, x):
        # Padded steps take the first step's value (always valid with right padding): it cannot exceed the
        # valid maximum, and unlike a large negative filler it does not widen the int8 quantization range.
        return tf.reduce_max(tf.where(self.valid_mask(x) > 0, x, x[:, :1, :]), axis=1)


class _MaskOp:
    """Stands for the value of a Keras op (a mask computation) in the converted graph."""

    def __init__(self, op):
        self.op = op


def _flat(args):
    for x in args:
        if isinstance(x, list | tuple):
            yield from _flat(x)
        elif isinstance(x, dict):
            yield from _flat(list(x.values()))
        else:
            yield x


def _tensor_name(x) -> str:
    """A Keras tensor's name in the export: the name of the layer that made it (for an input, the name given to
    `keras.Input`)."""
    history = getattr(x, "_keras_history", None)
    name = history[0].name if history else getattr(x, "name", None) or "input"
    return name.split(":")[0]


def _unsupported(layer) -> str:
    return (f"layer {layer.name!r} ({type(layer).__name__}) is not supported by the export; supported: "
            f"{SUPPORTED}")


# ---- layer converters: (graph, Keras layer, *converted args, **kwargs) -> converted output ------------------

def _embedding(g, layer, ids, **_):
    return tf.gather(g.constant(layer), ids)


def _recurrent(g, layer, x, mask=None, initial_state=None, **_):
    if initial_state is not None:
        raise UnsupportedLayerError(f"layer {layer.name!r} ({type(layer).__name__}): initial_state is not "
                                    "supported; the export runs each row from a zero state")
    if layer.go_backwards:
        y = g.run_rnn(layer, reverse_valid(x, g.lengths))  # Keras' order: outputs of the reversed row
    else:
        y = g.run_rnn(layer, x)
    return y if layer.return_sequences else g.last_valid(y)


def _bidirectional(g, layer, x, mask=None, initial_state=None, **_):
    if initial_state is not None or layer.return_state:
        raise UnsupportedLayerError(f"layer {layer.name!r} (Bidirectional): initial_state and return_state are "
                                    "not supported")
    fw_layer, bw_layer = layer.forward_layer, layer.backward_layer
    if type(fw_layer).__name__ not in RECURRENT or type(bw_layer).__name__ not in RECURRENT:
        raise UnsupportedLayerError(f"layer {layer.name!r} (Bidirectional) wraps {type(fw_layer).__name__}; "
                                    f"supported: {', '.join(RECURRENT)}")
    fw = g.run_rnn(fw_layer, x)
    bw = g.run_rnn(bw_layer, reverse_valid(x, g.lengths))  # the row from its last valid token back
    if layer.return_sequences:
        bw = reverse_valid(bw, g.lengths)  # back in the row's order: position t has read t..L-1
    else:
        fw, bw = g.last_valid(fw), g.last_valid(bw)
    mode = layer.merge_mode
    if mode == "concat":
        return tf.concat([fw, bw], axis=-1)
    if mode == "sum":
        return fw + bw
    if mode == "mul":
        return fw * bw
    if mode == "ave":
        return (fw + bw) / 2.0
    if mode is None:
        return [fw, bw]
    raise UnsupportedLayerError(f"layer {layer.name!r} (Bidirectional): merge_mode {mode!r} is not supported")


def _time_distributed(g, layer, x, **_):
    import keras

    if not isinstance(layer.layer, keras.layers.Dense):
        raise UnsupportedLayerError(f"layer {layer.name!r} (TimeDistributed) wraps {type(layer.layer).__name__}; "
                                    "supported: TimeDistributed(Dense)")
    return _dense_layer(g, layer.layer, x)


def _layer_normalization(g, layer, x, **_):
    axes = layer.axis if isinstance(layer.axis, list | tuple) else [layer.axis]
    if [a % len(x.shape) for a in axes] != [len(x.shape) - 1] or getattr(layer, "rms_scaling", False):
        raise UnsupportedLayerError(f"layer {layer.name!r} (LayerNormalization): only axis=-1 without rms_scaling "
                                    "is supported")
    mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
    y = (x - mean) * tf.math.rsqrt(variance + layer.epsilon)
    weights = list(g._state.constants[id(layer)])
    if layer.scale:
        y = y * weights.pop(0)
    if layer.center:
        y = y + weights.pop(0)
    return y


def _pooling(kind):
    def convert(g, layer, x, mask=None, **_):
        if getattr(layer, "data_format", "channels_last") != "channels_last":
            raise UnsupportedLayerError(f"layer {layer.name!r} ({type(layer).__name__}): only "
                                        "data_format='channels_last' is supported")
        y = g.masked_mean(x) if kind == "mean" else g.masked_max(x)
        return y[:, tf.newaxis, :] if getattr(layer, "keepdims", False) else y
    return convert


def _masked_mean_max(g, layer, x, mask=None, **_):
    return tf.concat([g.masked_mean(x), g.masked_max(x)], axis=-1)


def _concatenate(g, layer, xs, **_):
    return tf.concat(list(xs), axis=layer.axis)


def _merge(fn):
    def convert(g, layer, xs, **_):
        xs = list(xs)
        y = xs[0]
        for x in xs[1:]:
            y = fn(y, x)
        return y / float(len(xs)) if type(layer).__name__ == "Average" else y
    return convert


def _activation_layer(g, layer, x, **_):
    return _activation(layer, layer.activation)(x)


def _identity(g, layer, x, **_):
    return x


def _char_cnn(g, layer, char_ids, **_):
    return g.char_features(layer, char_ids)


def _elmo(g, layer, inputs, **_):
    # kerasrnn.layers.ELMo: the layer's own id clamp and mix, over the rebuilt language model's layers, the mix's
    # trained weights as constants
    layers = g.bilm_layers(layer.bilm, layer.language_model_inputs(inputs))
    return scalar_mix(layers, g.constant(layer.mix, 0), g.constant(layer.mix, 1))


def _dense_layer(g, layer, x):
    bias = g.constant(layer, 1) if layer.use_bias else None
    return _activation(layer, layer.activation)(_matmul(x, g.constant(layer, 0), bias))


CONVERTERS = {
    "Embedding": _embedding,
    "TokenEmbedding": _embedding,  # kerasrnn's: its get_weights() is the full table
    "LSTM": _recurrent,
    "GRU": _recurrent,
    "SRU": _recurrent,
    "Bidirectional": _bidirectional,
    "Dense": lambda g, layer, x, **_: _dense_layer(g, layer, x),
    "TimeDistributed": _time_distributed,
    "LayerNormalization": _layer_normalization,
    "GlobalAveragePooling1D": _pooling("mean"),
    "GlobalMaxPooling1D": _pooling("max"),
    "MaskedMeanMaxPooling": _masked_mean_max,
    "Concatenate": _concatenate,
    "Add": _merge(tf.add),
    "Subtract": _merge(tf.subtract),
    "Multiply": _merge(tf.multiply),
    "Average": _merge(tf.add),
    "Maximum": _merge(tf.maximum),
    "Minimum": _merge(tf.minimum),
    "Activation": _activation_layer,
    "CharCNN": _char_cnn,
    "ELMo": _elmo,
    **{name: _identity for name in IDENTITY_LAYERS},
}
