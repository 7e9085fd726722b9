"""Streaming TFLite: a forward-only model as a function of the next tokens and the recurrent state.

TFLite's fused recurrent ops keep their state in variable tensors that an app must reset by hand (tensorflow#47813,
#37659). A streaming file has none: every recurrence's state is an input and an output, so an app feeds tokens as
they come (a keyboard, text being typed, a long input in pieces) and keeps the state itself.

Signatures (one `.tflite`):
    step:  the model inputs for 1 token ([1, 1], [1, 1, chars]) and the states -> the outputs [1, 1, ...] and the
           new states;
    chunk: the same for up to K tokens ([1, K], right-padded with 0: a pad leaves the state as it was; its outputs
           mean nothing).
States are named h_k (and c_k for an LSTM), [1, units] (an LSTMP's h_k: [1, projection]), recurrence k in call
order; start from zeros.

Models: every recurrence reads its row forwards (a forward tagger, a unidirectional LSTM/GRU stack), and the
output is per token. For a BiLanguageModel: the forward stack and the shared softmax as next-token
log-probabilities over the vocabulary ("next_token_log_probabilities" [1, K, vocabulary]): logs, because an int8
probability has a step of 1/256 and almost every word of a 20k-word vocabulary is less likely than that (the int8
file would give most tokens probability 0); int8 LOG_SOFTMAX keeps [-16, 0] in steps of 1/16.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from kerasrnn.export.keras_graph import KerasGraph, UnsupportedLayerError
from kerasrnn.export.staged import Recurrence


class StreamGraph(tf.Module):
    """Args:
    graph: KerasGraph (any length) of a forward-only per-token model or of a BiLanguageModel.
    chunk: int. Tokens of the `chunk` signature (K). Defaults to 8.
    """

    def __init__(self, graph: KerasGraph, chunk: int = 8):
        super().__init__(name="stream_graph")
        from kerasrnn.models import BiLanguageModel

        self._graph, self.chunk = graph, chunk
        model = graph._state.model
        self.language_model = isinstance(model, BiLanguageModel)
        if self.language_model:
            self.recurrences = [Recurrence.of(layer, graph._state.constants[id(layer)])
                                for layer in model.forward_layers]
            self._softmax = (np.asarray(model.softmax_kernel, np.float32).T.copy(),
                             np.asarray(model.softmax_bias, np.float32))
            self.output_name = "next_token_log_probabilities"
        else:
            self.recurrences = self._discover()
            self.output_name = graph.output_name
        if not self.recurrences:
            raise UnsupportedLayerError("the model has no recurrent layer: there is no state to stream")
        self.state_names = [f"{name}_{k}" for k, rec in enumerate(self.recurrences) for name in rec.state_names]

    def _discover(self) -> list[Recurrence]:
        found = []

        def record(layer, x):
            if getattr(layer, "go_backwards", False):
                raise UnsupportedLayerError(
                    f"layer {layer.name!r} reads the row backwards (go_backwards or a Bidirectional backward half): "
                    "streaming needs recurrences that read forwards only")
            found.append(Recurrence.of(layer, self._graph._state.constants[id(layer)]))
            return self._graph.rnn(layer)(x)

        self._graph._state.rnn_call = record
        try:
            out = tf.function(self._graph.__call__, autograph=False).get_concrete_function(
                self._graph.input_signature(1)[0]).structured_outputs
        finally:
            self._graph._state.rnn_call = None
        if len(out.shape) != 3:
            raise UnsupportedLayerError(f"the model's output has shape {out.shape}: streaming gives an output per "
                                        "token ([batch, time, ...]), not one per sentence")
        return found

    def inputs(self, length: int) -> dict[str, tf.TensorSpec]:
        specs = {name: tf.TensorSpec([1, length, *spec.shape[2:]], tf.int32, name=name)
                 for name, spec in self._graph.input_signature(1)[0].items()}
        for k, rec in enumerate(self.recurrences):
            for name in rec.state_names:
                specs[f"{name}_{k}"] = tf.TensorSpec([1, rec.state_units(name)], tf.float32, name=f"{name}_{k}")
        return specs

    def _body(self, inputs):
        graph = self._graph
        model_inputs = {name: inputs[name] for name in graph.inputs}
        ids = next(iter(model_inputs.values())) if not graph.padded else model_inputs[graph.padded]
        if len(ids.shape) == 3:
            ids = ids[:, :, 0]
        valid = tf.reduce_sum(tf.cast(tf.not_equal(ids, 0), tf.int32), axis=1) if graph.padded else None
        states = {}
        count = [0]

        def call(layer, x):
            k = count[0]
            count[0] += 1
            rec = self.recurrences[k]
            y, state = rec.steps(x, {name: inputs[f"{name}_{k}"] for name in rec.state_names}, valid=valid)
            states.update({f"{name}_{k}": value for name, value in state.items()})
            return y

        if self.language_model:
            lm = graph._state.model
            x = tf.gather(graph.constant(lm.token_embedding), model_inputs["token_ids"])
            if lm.char_cnn is not None:
                x = tf.concat([x, graph.char_features(lm.char_cnn, model_inputs["char_ids"])], axis=-1)
            for i, layer in enumerate(lm.forward_layers):
                y = call(layer, x)
                x = y + x if lm.residual and i else y
            kernel, bias = self._softmax
            logits = tf.reshape(tf.matmul(tf.reshape(x, [-1, x.shape[-1]]), kernel) + bias, [1, -1, bias.shape[0]])
            y = tf.nn.log_softmax(logits, axis=-1)
        else:
            graph._state.rnn_call = call
            try:
                y = graph(model_inputs)
            finally:
                graph._state.rnn_call = None
        return {self.output_name: y, **states}

    def functions(self) -> dict:
        return {key: tf.function(self._body, input_signature=[self.inputs(length)], autograph=False)
                for key, length in (("step", 1), ("chunk", self.chunk))}

    def _state_units(self, name: str) -> int:
        kind, k = name.rsplit("_", 1)
        return self.recurrences[int(k)].state_units(kind)

    def describe(self) -> dict:
        """The file's calling protocol, for metadata.json."""
        return {
            "signatures": {"step": {"tokens": 1}, "chunk": {"tokens": self.chunk}},
            "inputs": [*self._graph.inputs, *self.state_names],
            "outputs": [self.output_name, *self.state_names],
            "states": {name: {"shape": [1, self._state_units(name)], "dtype": "float32"}
                       for name in self.state_names},
            "how_to_call": ("start every state at zeros; call `step` with one token or `chunk` with up to "
                            f"{self.chunk} (right-padded with 0), feeding back the returned states. A pad leaves "
                            "the states unchanged; its outputs mean nothing. No variable tensors: nothing to reset."),
        }


def save_stream(stream: StreamGraph, directory) -> dict:
    concrete = {key: fn.get_concrete_function() for key, fn in stream.functions().items()}
    tf.saved_model.save(stream, str(directory), signatures=concrete)
    return concrete


def stream_calibration_calls(stream: StreamGraph, concrete: dict, rows: list[dict], max_rows: int = 300
                             ) -> list[tuple]:
    """(signature, inputs) pairs for int8 calibration: the calibration rows (consecutive pieces of one stream of
    sentences) fed chunk by chunk with the state carried from row to row as the float graph computes it, and a
    step at every chunk boundary. States must not be all zeros: a zero-range input gets no usable int8 scale
    (XNNPACK then refuses the file)."""
    calls = []
    state = {name: np.zeros(spec.shape, np.float32) for name, spec in stream.inputs(1).items()
             if name in stream.state_names}
    for row in rows[:max_rows]:
        width = next(iter(row.values())).shape[1]
        for start in range(0, width - stream.chunk + 1, stream.chunk):
            token = {name: np.asarray(x[:, start : start + 1], np.int32) for name, x in row.items()}
            calls.append(("step", {**token, **state}))
            feed = {**{name: np.asarray(x[:, start : start + stream.chunk], np.int32) for name, x in row.items()},
                    **state}
            calls.append(("chunk", feed))
            out = concrete["chunk"]({name: tf.constant(v) for name, v in feed.items()})
            state = {name: out[name].numpy() for name in stream.state_names}
    return calls
