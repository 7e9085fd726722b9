"""Full-int8 TFLite that is fast at every length: the graph cut at its recurrences into stages, each recurrence
run as explicit-state chunks of K unrolled steps.

Why: the fused full-integer UNIDIRECTIONAL_SEQUENCE_LSTM kernel runs LiteRT's portable scalar loops on x86, the
int8 calibrator crashes on a GRU's WHILE loop, and unrolling a whole row takes one length only (and every extra
step adds ~6 KB of ops to the file). Cutting the graph at its recurrences keeps every op a plain int8 kernel
(FULLY_CONNECTED, which XNNPACK and the builtin kernels run fast on x86 and ARM alike) at any length, with the
unrolled steps written once per recurrence.

One `.tflite` file, several signatures (run them with `StagedRunner` or, in an app, as below):

    stage_k, k = 0..N-1: the model inputs, and rnn_0..rnn_{k-1} ([1, time, units]: the output sequences of the
        earlier recurrences) -> x [1, time, features], the input of recurrence k (already reversed for a
        backward direction: every recurrence runs forward).
    cell_k: x [1, K, features], h [1, units] (and c [1, units] for an LSTM) -> y [1, K, units], h (, c): K steps
        of recurrence k from the given state. Start from zeros and feed stage_k's x in chunks of K positions
        (the last one padded with zeros); rnn_k is the chunks' y joined and cut to `time`.
    stage_N: the model inputs and rnn_0..rnn_{N-1} -> the model's output.

The stage graphs take any length; only the cells have a fixed K. The same chunk signature with its state is what
streaming needs; see `kerasrnn.export.streaming`.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from kerasrnn.export.keras_graph import ACTIVATIONS, KerasGraph, _activation_name, lstmp_as_lstm, sru_gates
from kerasrnn.runtime.staged import plan_from_shapes, run_staged


@dataclasses.dataclass
class Recurrence:
    """One Keras LSTM/GRU layer's weights and options, runnable as unrolled steps with an explicit state."""

    kind: str  # "lstm", "gru" or "sru"
    units: int
    features: int
    kernel: np.ndarray
    recurrent_kernel: np.ndarray | None  # None for an SRU
    bias: np.ndarray | None
    activation: str
    recurrent_activation: str
    reset_after: bool = True
    projection: np.ndarray | None = None  # LSTMP: h_t = (o_t * tanh(c_t)) P, 128 wide where the cells are 512
    projected: bool = True  # LSTMP: the state is the projection (else all the cells, P applied to the outputs)

    @classmethod
    def of(cls, layer, weights, projected: bool = True) -> Recurrence:
        """From a Keras LSTM/GRU/SRU layer and its weights as NumPy arrays.

        An LSTMP runs its projected recurrence (`projected`: h = (o * tanh c) P is the state, the gates read h R),
        or, with `projected=False`, the LSTM of all its cells whose recurrent kernel is P R with P applied to its
        outputs (`keras_graph.lstmp_as_lstm`): the same function, 3x the multiplies per step at 512 cells / 128
        outputs, and one int8 rounding fewer per step (the staged int8 file's choice: ner_wnut17_elmo's F1 read
        +0.17 points against Keras with it, -0.61 with the projected recurrence)."""
        weights = [np.asarray(w, np.float32) for w in weights]
        if type(layer).__name__ == "LSTMP":
            if projected:  # kernel W, bias b, recurrent kernel R [projection, 4 units], P
                kernel, bias, recurrent, projection = weights
            else:
                (kernel, recurrent, bias), projection = lstmp_as_lstm(weights)
            return cls("lstm", layer.units, int(kernel.shape[0]), kernel, recurrent, bias, "tanh", "sigmoid",
                       projection=projection, projected=projected)
        if type(layer).__name__ == "SRU":  # kernel [features, 3 or 4 units], bias [2 units]; no recurrent kernel
            return cls("sru", layer.units, int(weights[0].shape[0]), weights[0], None, weights[1], "tanh", "sigmoid")
        cell = layer.cell
        bias = weights[2] if cell.use_bias else None
        return cls(type(layer).__name__.lower(), cell.units, int(weights[0].shape[0]), weights[0], weights[1], bias,
                   _activation_name(layer, cell.activation), _activation_name(layer, cell.recurrent_activation),
                   bool(getattr(cell, "reset_after", True)))

    @property
    def output_units(self) -> int:
        return self.units if self.projection is None else int(self.projection.shape[1])

    @property
    def state_names(self) -> tuple[str, ...]:
        return {"lstm": ("h", "c"), "gru": ("h",), "sru": ("c",)}[self.kind]

    def state_units(self, name: str) -> int:
        """The width of state `name`: a projected LSTMP's h is its projected output (its cells stay in c)."""
        return self.output_units if name == "h" and self.projected else self.units

    def zero_state(self) -> dict[str, np.ndarray]:
        return {name: np.zeros((1, self.state_units(name)), np.float32) for name in self.state_names}

    def steps(self, x, state: dict, valid=None):
        """y [batch, K, units] and the state after the K steps of x [batch, K, features] (static K).

        `valid` (int32 [batch], optional): steps at and after it leave the state unchanged (a partly filled
        chunk in streaming); their y values mean nothing."""
        act, rec_act = ACTIVATIONS[self.activation], ACTIVATIONS[self.recurrent_activation]
        units, steps = self.units, x.shape[1]
        if self.kind == "sru":
            return self._sru_steps(x, state, valid)
        input_bias = recurrent_bias = None
        if self.bias is not None:
            if self.kind == "gru" and self.reset_after:
                input_bias, recurrent_bias = self.bias[0], self.bias[1]
            else:
                input_bias = self.bias
        # The input projection of all K steps in one FULLY_CONNECTED.
        xw = tf.matmul(tf.reshape(x, [-1, self.features]), self.kernel)
        if input_bias is not None:
            xw = xw + input_bias
        xw = tf.reshape(xw, [-1, steps, self.kernel.shape[1]])
        h = state["h"]
        c = state.get("c")
        ys = []
        # One UNPACK for the K steps and one SPLIT per gate block: every op is one TFLite kernel call, and at
        # these sizes the calls, not the arithmetic, set the latency.
        for t, xt in enumerate(tf.unstack(xw, axis=1)):
            if self.kind == "lstm":
                i, f, g, o = tf.split(xt + tf.matmul(h, self.recurrent_kernel), 4, axis=-1)
                new_c = rec_act(f) * c + rec_act(i) * act(g)
                new_h = rec_act(o) * act(new_c)
                if self.projection is not None and self.projected:  # r R with r = h P, not h (P R)
                    new_h = tf.matmul(new_h, self.projection)
            elif self.reset_after:
                hu = tf.matmul(h, self.recurrent_kernel)
                if recurrent_bias is not None:
                    hu = hu + recurrent_bias
                x_z, x_r, x_h = tf.split(xt, 3, axis=-1)
                h_z, h_r, h_h = tf.split(hu, 3, axis=-1)
                z = rec_act(x_z + h_z)
                r = rec_act(x_r + h_r)
                candidate = act(x_h + r * h_h)
                new_h = z * h + (1.0 - z) * candidate
            else:
                x_z, x_r, x_h = tf.split(xt, 3, axis=-1)
                h_z, h_r = tf.split(tf.matmul(h, self.recurrent_kernel[:, : 2 * units]), 2, axis=-1)
                z = rec_act(x_z + h_z)
                r = rec_act(x_r + h_r)
                candidate = act(x_h + tf.matmul(r * h, self.recurrent_kernel[:, 2 * units :]))
                new_h = z * h + (1.0 - z) * candidate
            if valid is not None:
                keep = (t < valid)[:, tf.newaxis]
                new_h = tf.where(keep, new_h, h)
                if c is not None:
                    new_c = tf.where(keep, new_c, c)
            h = new_h
            if c is not None:
                c = new_c
            ys.append(h)
        out = {"h": h} if c is None else {"h": h, "c": c}
        y = tf.stack(ys, axis=1)
        if self.projection is not None and not self.projected:
            y = tf.reshape(tf.matmul(tf.reshape(y, [-1, self.units]), self.projection), [-1, steps, self.output_units])
        return y, out

    def _sru_steps(self, x, state: dict, valid=None):
        # The projections and the output of all K steps at once; only c_t = f_t c_{t-1} + a_t runs step by step.
        f, a, r, highway = sru_gates(x, self.kernel, self.bias, self.units)
        c, cs = state["c"], []
        for t, (ft, at) in enumerate(zip(tf.unstack(f, axis=1), tf.unstack(a, axis=1), strict=True)):
            new_c = ft * c + at
            c = new_c if valid is None else tf.where((t < valid)[:, tf.newaxis], new_c, c)
            cs.append(c)
        y = r * tf.tanh(tf.stack(cs, axis=1)) + (1.0 - r) * highway
        return y, {"c": c}


class StagedGraph(tf.Module):
    """A KerasGraph cut at its recurrences: `functions()` gives the stage and cell tf.functions (batch 1).

    Recurrences are grouped in waves: wave 0 holds those whose input needs no recurrence (both directions of a
    first Bidirectional layer), wave s those whose input needs wave s-1. stage_s computes the inputs of wave s
    and cell_s runs one chunk of every recurrence of wave s, so a one-layer BiLSTM is three calls per chunk
    count, not five.

    Args:
        graph: KerasGraph (any length).
        chunk: int. Steps per cell call (K). Defaults to 16.
    """

    def __init__(self, graph: KerasGraph, chunk: int = 16):
        super().__init__(name="staged_graph")
        if graph.fixed_length is not None:
            raise ValueError("a staged graph is cut from a graph of any length (fixed_length=None)")
        self._graph, self.chunk = graph, chunk
        self.recurrences, self.waves = self._discover()
        if not self.recurrences:
            raise ValueError("the model has no recurrent layer: its full-int8 file needs no stages")
        if all(r.kind == "sru" for r in self.recurrences):
            raise ValueError("every recurrence is an SRU, whose scan model_int8.tflite already runs as plain int8 "
                             "ops at any length: it needs no stages")

    @property
    def output_name(self) -> str:
        return self._graph.output_name

    def _discover(self) -> tuple[list[Recurrence], list[list[int]]]:
        """The recurrences in call order, and the waves: lists of recurrence indices."""
        found, outputs, wave_of = [], {}, []

        def record(layer, x):
            depends = _reaching(x, outputs)
            wave_of.append(1 + max((wave_of[j] for j in depends), default=-1))
            # int8 only: an LSTMP as the LSTM of all its cells (see `Recurrence.of`)
            found.append(Recurrence.of(layer, self._graph._state.constants[id(layer)], projected=False))
            y = tf.identity(self._graph.rnn(layer)(x))
            outputs[y.op] = len(found) - 1
            return y

        self._graph._state.rnn_call = record
        try:
            tf.function(self._graph.__call__, autograph=False).get_concrete_function(
                self._graph.input_signature(1)[0])
        finally:
            self._graph._state.rnn_call = None
        waves = [[k for k, w in enumerate(wave_of) if w == s] for s in range(max(wave_of, default=-1) + 1)]
        return found, waves

    # ---- signatures ---------------------------------------------------------------------------------------

    def stage_inputs(self, s: int) -> dict[str, tf.TensorSpec]:
        specs = dict(self._graph.input_signature(1)[0])
        for wave in self.waves[:s]:
            for j in wave:
                specs[f"rnn_{j}"] = tf.TensorSpec([1, None, self.recurrences[j].output_units], tf.float32,
                                                  name=f"rnn_{j}")
        return specs

    def cell_inputs(self, s: int) -> dict[str, tf.TensorSpec]:
        specs = {}
        for k in self.waves[s]:
            rec = self.recurrences[k]
            specs[f"x_{k}"] = tf.TensorSpec([1, self.chunk, rec.features], tf.float32, name=f"x_{k}")
            for name in rec.state_names:
                specs[f"{name}_{k}"] = tf.TensorSpec([1, rec.state_units(name)], tf.float32, name=f"{name}_{k}")
        return specs

    def stage(self, s: int):
        """stage_s as a tf.function of one dict argument."""
        graph = self._graph
        available = {j for wave in self.waves[:s] for j in wave}
        last = s == len(self.waves)

        def serve(inputs):
            count, xs = [0], {}

            def call(layer, x):
                j = count[0]
                count[0] += 1
                if j in available:
                    return inputs[f"rnn_{j}"]
                xs[f"x_{j}"] = x
                # Later recurrences are not reached in this stage; a stand-in keeps the walk going.
                return tf.zeros(tf.concat([tf.shape(x)[:2], [self.recurrences[j].output_units]], axis=0))

            graph._state.rnn_call = call
            try:
                y = graph({name: inputs[name] for name in graph.inputs})
            finally:
                graph._state.rnn_call = None
            if last:
                return {graph.output_name: y}
            return {f"x_{k}": xs[f"x_{k}"] for k in self.waves[s]}

        return tf.function(serve, input_signature=[self.stage_inputs(s)], autograph=False)

    def cell(self, s: int):
        def serve(inputs):
            out = {}
            for k in self.waves[s]:
                rec = self.recurrences[k]
                y, state = rec.steps(inputs[f"x_{k}"], {name: inputs[f"{name}_{k}"] for name in rec.state_names})
                out[f"y_{k}"] = y
                out.update({f"{name}_{k}": value for name, value in state.items()})
            return out

        return tf.function(serve, input_signature=[self.cell_inputs(s)], autograph=False)

    def functions(self) -> dict:
        """{signature name: tf.function}: stage_0..stage_W and cell_0..cell_{W-1} (W waves)."""
        out = {f"stage_{s}": self.stage(s) for s in range(len(self.waves) + 1)}
        out.update({f"cell_{s}": self.cell(s) for s in range(len(self.waves))})
        return out

    def describe(self) -> dict:
        """The file's calling protocol, for metadata.json."""
        waves = len(self.waves)
        signatures = {}
        for s in range(waves + 1):
            outputs = [self.output_name] if s == waves else [f"x_{k}" for k in self.waves[s]]
            signatures[f"stage_{s}"] = {"inputs": list(self.stage_inputs(s)), "outputs": outputs}
        for s in range(waves):
            outputs = [f"{n}_{k}" for k in self.waves[s] for n in ("y", *self.recurrences[k].state_names)]
            signatures[f"cell_{s}"] = {"inputs": list(self.cell_inputs(s)), "outputs": outputs,
                                       "chunk": self.chunk}
        return {
            "signatures": signatures,
            "recurrences": [{"cell": r.kind, "units": r.units, "features": r.features} for r in self.recurrences],
            "how_to_call": ("for s in 0..W-1: {x_k} = stage_s(inputs, rnn_j of earlier waves); for each chunk of "
                            "`chunk` positions of the x_k (the last one padded with zeros), cell_s(x_k chunk, h_k, "
                            "c_k) -> y_k, h_k, c_k, states starting at zeros; rnn_k = the y_k chunks joined and cut "
                            "to the row's length. Then stage_W(inputs, every rnn_k) is the model's output."),
        }


def _reaching(x, outputs: dict) -> set[int]:
    """Indices of the recurrences (their output ops in `outputs`) that tensor x depends on."""
    seen, found, stack = set(), set(), [x.op]
    while stack:
        op = stack.pop()
        if op in seen:
            continue
        seen.add(op)
        if op in outputs:
            found.add(outputs[op])
            continue
        stack.extend(t.op for t in op.inputs)
    return found


def input_shapes(functions: dict) -> dict[str, dict[str, tuple]]:
    """{signature: {input name: shape}} of StagedGraph.functions()."""
    return {key: {name: tuple(spec.shape) for name, spec in fn.input_signature[0].items()}
            for key, fn in functions.items()}


def save_staged(staged: StagedGraph, directory) -> dict:
    """Saves every stage and cell as a signature of one SavedModel; returns the concrete functions."""
    functions = staged.functions()
    concrete = {key: fn.get_concrete_function() for key, fn in functions.items()}
    tf.saved_model.save(staged, str(directory), signatures=concrete)
    return concrete


def calibration_calls(staged: StagedGraph, concrete: dict, rows: list[dict], max_rows: int = 300) -> list[tuple]:
    """(signature, inputs) pairs for int8 calibration: every call the staged protocol makes on the float graph
    for the first `max_rows` calibration rows (all of one length)."""
    shapes = {key: {name: spec.shape for name, spec in fn.structured_input_signature[0][0].items()}
              for key, fn in concrete.items()}
    calls = []

    def call(key, inputs):
        feed = {name: np.asarray(inputs[name]) for name in shapes[key]}
        calls.append((key, feed))
        return {name: value.numpy() for name, value in concrete[key]({n: tf.constant(v) for n, v in feed.items()}
                                                                   ).items()}

    plan = plan_from_shapes({key: {n: tuple(s) for n, s in names.items()} for key, names in shapes.items()})
    for row in rows[:max_rows]:
        run_staged(call, plan, {name: np.asarray(x, np.int32) for name, x in row.items()}, staged.output_name)
    return calls
