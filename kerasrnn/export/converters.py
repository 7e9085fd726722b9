"""TFLite and ONNX conversion of the mask-free inference graph.

TFLite files take one row at a time (input [1, time]; any length) so that tf_keras LSTMs fuse into the builtin
UNIDIRECTIONAL_SEQUENCE_LSTM op; ONNX files take [batch, time]. The TFLite converter runs in a child process:
its int8 calibrator can segfault on some graphs (WHILE loops), and the caller then gets a `ConversionError`
instead of dying.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kerasrnn.files import atomic_path, atomic_write_bytes

DONE = "kerasrnn-converted: "  # the child's line after each file it wrote


class ConversionError(RuntimeError):
    """A converter failed or crashed; the message says which artifact and how."""


@dataclasses.dataclass(frozen=True)
class QuantizationConfig:
    """How a TFLite file is quantized. Use the named constructors.

    mode: "fp32" (no quantization), "dynamic" (int8 weights, float activations) or "int8" (full integer
    kernels, calibrated on `representative_data`: a list of {input name: [1, time, ...] ids} rows, all of one
    length: the calibrator sizes its tensors on the first row; for a file of several signatures, a list of
    (signature name, {input name: array}) pairs, all rows of one signature of one shape).
    """

    mode: str = "fp32"
    representative_data: tuple = ()

    @classmethod
    def for_float32(cls) -> QuantizationConfig:
        return cls("fp32")

    @classmethod
    def for_dynamic(cls) -> QuantizationConfig:
        return cls("dynamic")

    @classmethod
    def for_int8(cls, representative_data: Sequence[dict]) -> QuantizationConfig:
        if not representative_data:
            raise ValueError("full int8 quantization needs representative data (calibration rows)")
        def rows(row):
            if isinstance(row, tuple):  # (signature, inputs)
                return row[0], rows(row[1])
            return {name: np.asarray(x) for name, x in row.items()}

        return cls("int8", tuple(rows(row) for row in representative_data))


def save_saved_model(graph, directory) -> Path:
    """Saves the graph's batch-1 serving function as a SavedModel (the TFLite converter's input)."""
    import tensorflow as tf

    directory = Path(directory)
    graph.serve = graph.function(batch=1)
    tf.saved_model.save(graph, str(directory), signatures={"serving_default": graph.serve})
    return directory


def _convert_tflite(saved_model_dir: str, output_path: str, mode: str, data_file: str | None) -> None:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if mode in ("dynamic", "int8"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "int8":
        with open(data_file, "rb") as f:
            rows = pickle.load(f)

        def representative_dataset():
            # Keyed by input name: a plain list is fed in the converter's own input order, not the signature's.
            yield from rows

        converter.representative_dataset = representative_dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    content = converter.convert()
    # The integer kernel derives its int16 cell-state scale from the clip: an int8 file is left as converted. An
    # LSTMP's rebuilt LSTM gets its projection back in fp32 only (dynamic range: the weights are already int8).
    edits = {"fp32": (without_cell_clip, with_lstm_projections), "dynamic": (without_cell_clip,)}.get(mode, ())
    atomic_write_bytes(_rewritten(content, *edits), output_path)


def _rewritten(content: bytes, *edits) -> bytes:
    """The flatbuffer after `edits` (each `edit(model) -> bool`, True when it changed the `ModelT`), parsed and
    packed once; the very bytes given when no edit changed anything."""
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    if not edits:
        return content
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(content, 0))
    if not any([edit(model) for edit in edits]):  # a list: every edit runs
        return content
    builder = flatbuffers.Builder(len(content) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _opcode(model, op) -> int:
    code = model.operatorCodes[op.opcodeIndex]
    return max(code.builtinCode, code.deprecatedBuiltinCode)


def _fused_lstms(model):
    """(subgraph, op) for every UNIDIRECTIONAL_SEQUENCE_LSTM op of a `ModelT` (flatbuffer object API)."""
    from tensorflow.lite.python import schema_py_generated as schema

    lstm = schema.BuiltinOperator.UNIDIRECTIONAL_SEQUENCE_LSTM
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            if _opcode(model, op) == lstm:
                yield subgraph, op


def lstm_cell_clips(content: bytes) -> list[float]:
    """The `cell_clip` option of every UNIDIRECTIONAL_SEQUENCE_LSTM op of a .tflite flatbuffer (0 = none)."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(content, 0))
    return [float(op.builtinOptions.cellClip) for _, op in _fused_lstms(model)]


def without_cell_clip(model) -> bool:
    """Sets `cell_clip = 0` (no clipping) on every fused LSTM op of a `ModelT` (a `_rewritten` edit: True when a
    clip was set).

    The converter writes `cell_clip = 10.0` when it fuses a tf_keras LSTM, while Keras never clips the cell state:
    once |c| passes 10 the TFLite answers leave Keras' (ner_wnut17: up to 9e-3 in probability on 6% of the test
    rows, where |c| reaches 64; ONNX from the same graph stays within 6e-7)."""
    options = [op.builtinOptions for _, op in _fused_lstms(model)]
    clipped = any(o.cellClip for o in options)
    for o in options:
        o.cellClip = 0.0
    return clipped


def with_lstm_projections(model, tolerance: float = 1e-4) -> bool:
    """Puts each LSTMP's projection inside its fused LSTM op of an fp32 `ModelT` (a `_rewritten` edit: True when
    an op was rewritten).

    The export graph rebuilds a `kerasrnn.layers.LSTMP` (cells n, projection p < n) as an LSTM of n cells whose
    recurrent kernel is P R, followed by P (`keras_graph.lstmp_as_lstm`), since no converter fills the fused op's
    projection inputs. Here every UNIDIRECTIONAL_SEQUENCE_LSTM whose only reader is a bias-free projection (a
    FULLY_CONNECTED W [p, n] that keeps the time axis, no activation) and whose recurrent weights factor through it
    (W_g = R_g W, found by least squares and checked to `tolerance`, relative) becomes one op with
    `projection_weights` W and recurrent weights R_g [n, p]: the same function with the projected recurrence's
    multiplies (n p per gate instead of n n); the FULLY_CONNECTED is dropped. Anything else is left as it was."""
    import numpy as np
    from tensorflow.lite.python import schema_py_generated as schema

    released = set()
    for subgraph in model.subgraphs:
        readers = {}
        for i, op in enumerate(subgraph.operators):
            for t in op.inputs:
                readers.setdefault(int(t), []).append(i)
        dropped, renamed = set(), {}
        for op in subgraph.operators:
            found = _projection(model, subgraph, op, readers, tolerance)
            if found is None:
                continue
            fc, factors = found
            n, p = factors[0].shape
            for k, f in zip((5, 6, 7, 8), factors, strict=True):
                tensor = subgraph.tensors[op.inputs[k]]
                released.add(tensor.buffer)
                buffer = schema.BufferT()
                buffer.data = np.frombuffer(f.astype(np.float32).tobytes(), np.uint8)
                model.buffers.append(buffer)
                tensor.buffer, tensor.shape = len(model.buffers) - 1, np.array([n, p], np.int32)
            op.inputs = np.array(op.inputs, np.int32)  # the object API's arrays are read-only views
            op.inputs[16] = subgraph.operators[fc].inputs[1]
            for t in (op.inputs[18], op.outputs[0]):  # the output state and the output carry p, not n
                tensor = subgraph.tensors[t]
                tensor.shape = np.array([*tensor.shape[:-1], p], np.int32)
                if tensor.shapeSignature is not None and len(tensor.shapeSignature):
                    tensor.shapeSignature = np.array([*tensor.shapeSignature[:-1], p], np.int32)
            renamed[int(subgraph.operators[fc].outputs[0])] = int(op.outputs[0])
            dropped.add(fc)
        if dropped:
            _drop_ops(model, subgraph, dropped, renamed)
    in_use = {int(t.buffer) for subgraph in model.subgraphs for t in subgraph.tensors}
    for index in released - in_use:  # the folded recurrent weights no tensor reads any more
        model.buffers[index].data = None
    return bool(released)


def _projection(model, subgraph, op, readers: dict, tolerance: float):
    """(index of the FULLY_CONNECTED to drop, the recurrent weights R_g [n, p] of the 4 gates) when the fused LSTM
    `op` is an LSTMP rebuilt by the export graph (see `with_lstm_projections`), else None."""
    import numpy as np
    from tensorflow.lite.python import schema_py_generated as schema

    def constant(index):
        tensor = subgraph.tensors[index]
        data = model.buffers[tensor.buffer].data if tensor.buffer > 0 else None
        if data is None or tensor.type != schema.TensorType.FLOAT32:
            return None
        return np.frombuffer(np.asarray(data, np.uint8).tobytes(), np.float32).reshape(list(tensor.shape))

    out = int(op.outputs[0])
    if (_opcode(model, op) != schema.BuiltinOperator.UNIDIRECTIONAL_SEQUENCE_LSTM or len(op.inputs) < 19
            or op.inputs[16] >= 0 or len(readers.get(out, [])) != 1 or out in subgraph.outputs):
        return None
    fc = readers[out][0]
    fc_op = subgraph.operators[fc]
    options = fc_op.builtinOptions
    if (_opcode(model, fc_op) != schema.BuiltinOperator.FULLY_CONNECTED or not getattr(options, "keepNumDims", False)
            or getattr(options, "fusedActivationFunction", 0) or (len(fc_op.inputs) > 2 and fc_op.inputs[2] >= 0)):
        return None
    w = constant(fc_op.inputs[1])  # [p, n]
    recurrent = [constant(op.inputs[k]) for k in (5, 6, 7, 8)]  # [n, n] each: W_g
    if w is None or w.shape[0] >= w.shape[1] or any(r is None or r.shape != (w.shape[1],) * 2 for r in recurrent):
        return None
    # W_g h = R_g (W h): R_g W = W_g, so W^T R_g^T = W_g^T
    factors = [np.linalg.lstsq(w.T.astype(np.float64), r.T.astype(np.float64), rcond=None)[0].T for r in recurrent]
    if any(np.abs(f @ w - r).max() > tolerance * max(np.abs(r).max(), 1e-6)
           for f, r in zip(factors, recurrent, strict=True)):
        return None
    return fc, factors


def _drop_ops(model, subgraph, dropped: set, renamed: dict) -> None:
    """Removes the ops at indices `dropped` from `subgraph`; every read of tensor a becomes a read of renamed[a]."""
    import numpy as np

    subgraph.operators = [op for i, op in enumerate(subgraph.operators) if i not in dropped]
    for op in subgraph.operators:
        op.inputs = np.array([renamed.get(int(t), int(t)) for t in op.inputs], np.int32)
    subgraph.outputs = np.array([renamed.get(int(t), int(t)) for t in subgraph.outputs], np.int32)
    index = model.subgraphs.index(subgraph)
    for signature in model.signatureDefs or []:
        if signature.subgraphIndex == index:
            for tensor_map in signature.outputs or []:
                tensor_map.tensorIndex = renamed.get(int(tensor_map.tensorIndex), int(tensor_map.tensorIndex))


def to_tflite(saved_model_dir, output_path, quantization: QuantizationConfig, timeout: float = 1800.0) -> Path:
    """Converts a SavedModel to a builtin-ops-only `.tflite` file in a child process; ConversionError if it fails."""
    output_path = Path(output_path)
    errors = to_tflite_files([(saved_model_dir, output_path, quantization)], timeout)
    if errors:
        raise ConversionError(errors[output_path.name])
    return output_path


def to_tflite_files(jobs: list[tuple], timeout: float = 1800.0, on_file=None) -> dict[str, str]:
    """Converts SavedModels to `.tflite` files, `jobs` [(SavedModel directory, output path, QuantizationConfig)],
    one after the other in one child process: one TensorFlow start (~5 s) for them all. A child that dies (the int8
    calibrator can crash: a GRU's WHILE loop) costs only the job it was on: the child reports each file it
    finishes, the job it died on gets the error, and the jobs after it go to a fresh child. `timeout`: seconds per
    file (a child has that times its files). `on_file(path)` is called as each file is written. Returns {file name:
    error message} for the files not made (empty when all were)."""
    jobs = [(str(saved), Path(path), quantization) for saved, path, quantization in jobs]
    errors = {}
    with tempfile.TemporaryDirectory() as tmp:
        args = []
        for i, (saved, path, quantization) in enumerate(jobs):
            data_file = ""
            if quantization.mode == "int8":
                data_file = os.path.join(tmp, f"calibration_{i}.pkl")
                with open(data_file, "wb") as f:
                    pickle.dump(list(quantization.representative_data), f)
            args.append([saved, str(path), quantization.mode, data_file])
        while args:
            done, error = _convert_in_child(args, timeout, on_file)
            if error is not None:
                failed = args[len(done)]
                errors[Path(failed[1]).name] = f"{Path(failed[1]).name}: the TFLite converter ({failed[2]}) {error}"
                done.append(failed)
            args = args[len(done):]
    return errors


def _convert_in_child(args: list[list[str]], timeout: float, on_file=None) -> tuple[list, str | None]:
    """Runs the jobs in one child interpreter (not multiprocessing: it must not re-import the caller's __main__
    module): (the jobs it finished, in order; None, or how it failed on the next one)."""
    import threading

    cmd = [sys.executable, "-m", "kerasrnn.export.converters", *[a for job in args for a in job]]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}
    done, timed_out = [], threading.Event()
    with tempfile.TemporaryFile("w+") as stderr:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)

        def kill():
            timed_out.set()
            proc.kill()

        timer = threading.Timer(timeout * len(args), kill)
        timer.start()
        try:
            for line in proc.stdout:  # the child's lines as they come: each finished file, in order
                expected = args[len(done)][1] if len(done) < len(args) else None
                if line.startswith(DONE) and line[len(DONE):].rstrip("\n") == expected:
                    done.append(args[len(done)])
                    if on_file is not None:
                        on_file(Path(done[-1][1]))
            code = proc.wait()
        finally:
            timer.cancel()
        stderr.seek(0)
        lines = [line for line in stderr.read().splitlines() if line.strip() and "warn" not in line.lower()]
    if len(done) == len(args):
        return done, None
    if timed_out.is_set():
        return done, f"did not finish in {timeout:g} s per file; no file was written"
    how = f"was killed by signal {-code}" if code < 0 else f"exited with {code}"
    return done, f"{how}; no file was written. Last message: {(lines[-1:] or ['(none)'])[0][:300]}"


def to_onnx(graph, output_path, opset: int = 17) -> Path:
    """Converts the graph (dynamic batch and length) with tf2onnx and checks the result with onnx.checker."""
    import onnx
    import tf2onnx

    output_path = Path(output_path)
    signature = graph.input_signature(batch=None)
    with atomic_path(output_path) as tmp:
        model_proto, _ = tf2onnx.convert.from_function(graph.function(batch=None), input_signature=signature,
                                                       opset=opset, output_path=str(tmp))
        onnx.checker.check_model(model_proto)
    return output_path


def quantize_onnx(fp32_path, output_path) -> Path:
    """ONNX Runtime dynamic quantization: int8 weights (LSTM -> DynamicQuantizeLSTM, MatMul -> MatMulInteger)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    output_path = Path(output_path)
    with atomic_path(output_path, suffix=".onnx") as tmp:
        quantize_dynamic(str(fp32_path), str(tmp), weight_type=QuantType.QInt8)
    return output_path


def tflite_ops(path) -> list[str]:
    """The builtin op names of every subgraph (every signature) of a .tflite file."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(Path(path).read_bytes(), 0)
    names = {value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    ops = set()
    for s in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(s)
        for i in range(subgraph.OperatorsLength()):
            code = model.OperatorCodes(subgraph.Operators(i).OpcodeIndex())
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            ops.add(code.CustomCode().decode() if code.CustomCode() else names.get(builtin, str(builtin)))
    return sorted(ops)


def onnx_ops(path) -> list[str]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return sorted({node.op_type for node in model.graph.node})


if __name__ == "__main__":
    for k in range(1, len(sys.argv), 4):  # (SAVED_MODEL OUTPUT MODE DATA_FILE)...
        _convert_tflite(sys.argv[k], sys.argv[k + 1], sys.argv[k + 2], sys.argv[k + 3] or None)
        print(f"{DONE}{sys.argv[k + 1]}", flush=True)
