"""Run a `.tflite`, `.onnx` or `.keras` model on id arrays, with the inputs checked before any runtime sees them.

Every runner takes a dict of id arrays named like the model's inputs (for our models `{"token_ids": int [batch,
time], "char_ids": int [batch, time, chars]}`, right-padded with 0; `InputSpec`s describe others) and returns the
model's output as float32: for our task models probabilities, [batch, time, num_tags] for a tagger, [batch,
num_labels] for a classifier.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from kerasrnn.runtime.staged import is_staged, plan_from_shapes, run_staged


class InputError(ValueError):
    """Ids or arrays that the model cannot take; raised before any runtime is called."""


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """One model input: ids of rank 2 ([batch, time]) or 3 ([batch, time, width]) in [0, id_range); a
    `right_padded` input holds each row's ids followed by 0s (no 0 before a non-zero id) and at least one id;
    `max_length`, if set, is the most positions a row may hold (an SRU export's scan covers that many)."""

    name: str
    rank: int
    id_range: int
    right_padded: bool = False
    width: int | None = None
    max_length: int | None = None


def task_specs(vocabulary_size: int, char_vocabulary_size: int = 0, max_word_chars: int | None = None,
               max_length: int | None = None) -> list[InputSpec]:
    """The inputs of a kerasrnn task model or BiLM: `token_ids` and, with characters, `char_ids`."""
    specs = [InputSpec("token_ids", 2, vocabulary_size, right_padded=True, max_length=max_length)]
    if char_vocabulary_size:
        specs.append(InputSpec("char_ids", 3, char_vocabulary_size, width=max_word_chars, max_length=max_length))
    return specs


def specs_from_metadata(meta: dict) -> list[InputSpec]:
    """The input specs an export's `metadata.json` names."""
    return [InputSpec(name, len(info["shape"]), int(info["id_range"]), bool(info.get("right_padded")),
                      info["shape"][2] if len(info["shape"]) == 3 else None, info.get("max_length"))
            for name, info in meta["inputs"].items()]


def validate_inputs(features: dict, vocabulary_size: int | None = None, char_vocabulary_size: int = 0,
                    max_word_chars: int | None = None, specs: list[InputSpec] | None = None
                    ) -> dict[str, np.ndarray]:
    """Checks names, ranks, dtypes, batch size, id ranges and right padding, and returns int32 copies.

    ONNX Runtime's Gather wraps negative ids silently and older TFLite gather kernels do not check the upper
    bound, so an out-of-range id must never reach them; a row with a 0 before a non-zero id (left padding, a
    hole) would be read as shorter than it is by every exported graph, so it never reaches them either.
    """
    specs = specs or task_specs(vocabulary_size, char_vocabulary_size, max_word_chars)
    expected = {spec.name for spec in specs}
    if not isinstance(features, dict) or set(features) != expected:
        got = sorted(features) if isinstance(features, dict) else type(features).__name__
        raise InputError(f"expected inputs {sorted(expected)}, got {got}")
    out = {}
    for spec in specs:
        name, size, rank = spec.name, spec.id_range, spec.rank
        x = np.asarray(features[name])
        if x.ndim != rank:
            raise InputError(f"{name} must have rank {rank} ([batch, time{', chars' if rank == 3 else ''}]), "
                             f"got shape {x.shape}")
        if not np.issubdtype(x.dtype, np.integer):
            raise InputError(f"{name} must hold integer ids, got dtype {x.dtype}")
        if x.shape[0] == 0:
            raise InputError(f"{name}: the batch is empty")
        if x.shape[1] == 0:
            raise InputError(f"{name}: rows have no positions (time length 0)")
        if x.size and (x.min() < 0 or x.max() >= size):
            bad = x[(x < 0) | (x >= size)].ravel()[0]
            raise InputError(f"{name}: id {int(bad)} is outside [0, {size})")
        out[name] = x.astype(np.int32)
    first = out[specs[0].name]
    for spec in specs[1:]:
        x = out[spec.name]
        shape = first.shape[:2] + ((spec.width,) if spec.rank == 3 and spec.width is not None else x.shape[2:])
        if x.shape != shape:
            raise InputError(f"{spec.name} must have shape {shape}, got {x.shape}")
    padded = [spec for spec in specs if spec.right_padded]
    for spec in padded:
        x = out[spec.name]
        if (x[:, 0] == 0).any():
            raise InputError("every row needs at least one token; rows are right-padded with 0 after their tokens")
        holes = (x[:, :-1] == 0) & (x[:, 1:] != 0)
        if holes.any():
            row, pos = (int(v[0]) for v in np.nonzero(holes))
            raise InputError(f"{spec.name}: row {row} has id 0 at position {pos} before a non-zero id; rows are "
                             "right-padded: a row's ids first, then 0s (no left padding, no holes)")
    lengths = [(out[spec.name] != 0).sum(1) for spec in padded]
    if any((n != lengths[0]).any() for n in lengths[1:]):
        raise InputError(f"the right-padded inputs {[s.name for s in padded]} have rows of different lengths")
    # the positions a row holds: its tokens when padded, else every position
    held = lengths[0] if lengths else np.full(len(first), first.shape[1])
    for spec in specs:
        if spec.max_length is not None and held.max() > spec.max_length:
            row = int(np.argmax(held))
            raise InputError(f"{spec.name}: row {row} holds {int(held[row])} positions; this model takes at most "
                             f"{spec.max_length} (an SRU export's scan covers that many)")
    return out


def is_stream(signatures: dict) -> bool:
    """Whether a .tflite file's signatures are a streaming file's (`kerasrnn.runtime.streaming`)."""
    return set(signatures) == {"step", "chunk"}


class Runner:
    """Common interface: `runner(features) -> probabilities`; `max_batch` is the largest batch one call takes."""

    max_batch: int | None = None

    def __init__(self, path, vocabulary_size: int | None = None, char_vocabulary_size: int = 0,
                 max_word_chars: int = 16, specs: list[InputSpec] | None = None):
        self.path = Path(path)
        self.specs = specs or task_specs(vocabulary_size, char_vocabulary_size, max_word_chars)

    def __call__(self, features: dict) -> np.ndarray:
        return self.run(validate_inputs(features, specs=self.specs))

    def run(self, features: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError


class TFLiteRunner(Runner):
    """A `.tflite` file in LiteRT, one row per invoke (the fused LSTM kernels take batch 1)."""

    max_batch = 1

    def __init__(self, path, *args, num_threads: int = 1, interpreter=None, **kwargs):
        super().__init__(path, *args, **kwargs)
        from ai_edge_litert.interpreter import Interpreter

        try:
            self.interpreter = interpreter or Interpreter(model_path=str(self.path), num_threads=num_threads)
        except (ValueError, RuntimeError) as e:
            raise ValueError(f"{self.path}: not a loadable TFLite model: {e}") from None
        self.inputs = {d["name"].split(":")[0].split("serving_default_")[-1]: d
                       for d in self.interpreter.get_input_details()}
        self.output_index = self.interpreter.get_output_details()[0]["index"]
        missing = sorted({spec.name for spec in self.specs} - set(self.inputs))
        if missing:
            raise ValueError(f"{self.path}: the model has inputs {sorted(self.inputs)}, not {missing}")
        self.first = self.specs[0].name
        time_dim = int(self.inputs[self.first]["shape_signature"][1])
        self.fixed_length = time_dim if time_dim > 0 else None
        self._shapes = None

    def run(self, features):
        width = features[self.first].shape[1]
        if self.fixed_length is not None:
            features = self._pad_to_fixed_length(features)
        rows = []
        for b in range(features[self.first].shape[0]):
            shapes = {name: features[name][b : b + 1].shape for name in features}
            if shapes != self._shapes:
                for name, shape in shapes.items():
                    self.interpreter.resize_tensor_input(self.inputs[name]["index"], shape)
                self.interpreter.allocate_tensors()
                self._shapes = shapes
            for name in features:
                self.interpreter.set_tensor(self.inputs[name]["index"], features[name][b : b + 1])
            # The fused LSTM keeps its state in variables across invokes: without a reset every call after the
            # first starts from the previous call's final state.
            self.interpreter.reset_all_variables()
            self.interpreter.invoke()
            rows.append(self.interpreter.get_tensor(self.output_index)[0].copy())
        out = np.stack(rows).astype(np.float32)
        if out.ndim == 3 and out.shape[1] != width:  # a fixed-length file: give back the caller's width
            out = np.pad(out[:, :width], [(0, 0), (0, max(0, width - out.shape[1])), (0, 0)])
        return out

    def _pad_to_fixed_length(self, features):
        width = features[self.first].shape[1]
        if width > self.fixed_length:
            lengths = (features[self.first] != 0).sum(1)
            if lengths.max() > self.fixed_length:
                raise InputError(f"{self.path.name} takes at most {self.fixed_length} tokens per row; "
                                 f"got a row of {int(lengths.max())}")
            return {k: v[:, : self.fixed_length] for k, v in features.items()}
        pad = self.fixed_length - width
        return {k: np.pad(v, [(0, 0), (0, pad)] + [(0, 0)] * (v.ndim - 2)) for k, v in features.items()}


class StagedRunner(Runner):
    """A staged `.tflite` file in LiteRT, one row per call: the stages and cells run by `run_staged`."""

    max_batch = 1
    fixed_length = None

    def __init__(self, path, *args, num_threads: int = 1, interpreter=None, **kwargs):
        super().__init__(path, *args, **kwargs)
        if interpreter is None:
            from ai_edge_litert.interpreter import Interpreter

            interpreter = Interpreter(model_path=str(self.path), num_threads=num_threads)
        self.interpreter = interpreter
        signatures = interpreter.get_signature_list()
        self.runners = {key: interpreter.get_signature_runner(key) for key in signatures}
        shapes = {key: {name: tuple(d["shape_signature"]) for name, d in runner.get_input_details().items()}
                  for key, runner in self.runners.items()}
        self.plan = plan_from_shapes(shapes)
        self.inputs = {key: list(value) for key, value in shapes.items()}
        self.output_name = signatures[f"stage_{len(self.plan)}"]["outputs"][0]
        missing = sorted({spec.name for spec in self.specs} - set(self.inputs["stage_0"]) - {
            name for key in self.inputs if key.startswith("stage_") for name in self.inputs[key]})
        if missing:
            raise ValueError(f"{self.path}: the stages take {sorted(self.inputs['stage_0'])}, not {missing}")

    def _call(self, key: str, inputs: dict) -> dict:
        return self.runners[key](**{name: inputs[name] for name in self.inputs[key]})

    def run(self, features):
        rows = []
        for b in range(len(next(iter(features.values())))):
            row = {name: x[b : b + 1] for name, x in features.items()}
            rows.append(run_staged(self._call, self.plan, row, self.output_name)[0])
        return np.stack(rows).astype(np.float32)


class ONNXRunner(Runner):
    """An `.onnx` file in ONNX Runtime (any batch), checked with onnx.checker before a session is made."""

    def __init__(self, path, *args, num_threads: int = 1, **kwargs):
        super().__init__(path, *args, **kwargs)
        import onnx
        import onnxruntime as ort

        try:
            onnx.checker.check_model(str(self.path))
        except Exception as e:  # the checker raises several unrelated types
            raise ValueError(f"{self.path}: not a valid ONNX model: {e}") from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]

    def run(self, features):
        return self.session.run(None, {name: features[name] for name in self.input_names})[0].astype(np.float32)


class KerasRunner(Runner):
    """A `.keras` task model (loaded with safe_mode on) or an in-memory one, called through a tf.function;
    returns softmax(logits). The id ranges come from the model's encoder."""

    def __init__(self, path=None, *args, model=None, **kwargs):
        import tensorflow as tf

        import kerasrnn  # noqa: F401  (registers the classes)

        if model is None:
            from kerasrnn.safe_load import load_model

            model = load_model(path)
        encoder = getattr(model, "encoder", None)
        if encoder is None:
            raise ValueError(f"{path}: not a kerasrnn task model (no encoder)")
        super().__init__(path or "model.keras", encoder.vocabulary_size,
                         char_vocabulary_size=encoder.char_vocabulary_size, max_word_chars=encoder.max_word_chars)
        self.model = model
        self._call = tf.function(lambda f: tf.nn.softmax(model(f, training=False)), reduce_retracing=True)

    def run(self, features):
        import tensorflow as tf

        return self._call({k: tf.constant(v) for k, v in features.items()}).numpy()


def load_runner(path, vocabulary_size: int | None = None, char_vocabulary_size: int = 0, max_word_chars: int = 16,
                num_threads: int = 1, specs: list[InputSpec] | None = None) -> Runner:
    """The runner for a file by its suffix."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    kwargs = {"char_vocabulary_size": char_vocabulary_size, "max_word_chars": max_word_chars, "specs": specs}
    if path.suffix == ".tflite":
        from ai_edge_litert.interpreter import Interpreter

        try:
            interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
        except (ValueError, RuntimeError) as e:
            raise ValueError(f"{path}: not a loadable TFLite model: {e}") from None
        if is_stream(interpreter.get_signature_list()):
            raise ValueError(f"{path}: a streaming file (state in, state out); run it with "
                             "kerasrnn.runtime.streaming.StreamRunner")
        if is_staged(interpreter.get_signature_list()):
            return StagedRunner(path, vocabulary_size, num_threads=num_threads, interpreter=interpreter, **kwargs)
        return TFLiteRunner(path, vocabulary_size, num_threads=num_threads, interpreter=interpreter, **kwargs)
    if path.suffix == ".onnx":
        return ONNXRunner(path, vocabulary_size, num_threads=num_threads, **kwargs)
    if path.suffix == ".keras":
        return KerasRunner(path)
    raise ValueError(f"{path}: unknown model type {path.suffix!r}; expected .tflite, .onnx or .keras")


def run_batched(runner: Runner, data, batch_size: int = 64) -> list:
    """Outputs for every row of EncodedData or IdRows, in input order (per-token arrays cut to each row's length)."""
    from kerasrnn.data.pipeline import ordered_batches

    batch_size = min(batch_size, runner.max_batch or batch_size)
    outputs: list = [None] * len(data)
    lengths = data.lengths
    for index, features in ordered_batches(data, batch_size):
        probs = runner(features)
        for row, i in enumerate(index):
            outputs[i] = probs[row, : lengths[i]] if probs.ndim == 3 else probs[row]
    return outputs
