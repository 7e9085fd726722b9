"""Export of tiny trained-shape models: op lists, fp32 parity with Keras, padding invariance, int8 statistics."""

import keras
import numpy as np
import pytest

from kerasrnn.export.converters import (
    QuantizationConfig,
    onnx_ops,
    quantize_onnx,
    save_saved_model,
    tflite_ops,
    to_onnx,
    to_tflite,
    to_tflite_files,
)
from kerasrnn.export.keras_graph import KerasGraph, reverse_valid
from kerasrnn.models import ContextualEncoder, SequenceTagger, TextClassifier
from kerasrnn.runtime.runners import ONNXRunner, TFLiteRunner
from tests.test_case import assert_all_close

VOCAB, CHARS, WORD_CHARS = 60, 25, 5


def make_model(task, cell="lstm", chars=True, num_layers=1, bidirectional=True):
    keras.utils.set_random_seed(3)
    encoder = ContextualEncoder(VOCAB, embedding_dim=12, cell=cell, num_layers=num_layers, units=10, output_dim=8,
                                bidirectional=bidirectional, char_vocabulary_size=CHARS if chars else 0,
                                char_filters=6, char_embedding_dim=4, max_word_chars=WORD_CHARS)
    return (SequenceTagger if task == "tagging" else TextClassifier)(encoder, 5)


def train_briefly(model, chars=True):
    """A few epochs on a learnable synthetic task (tag = id mod 5), so that outputs are confident as in a real
    model and quantized argmax agreement means something."""
    inputs = make_inputs(np.random.default_rng(11), chars, lengths=tuple(range(3, 11)) * 8)
    targets = (inputs["token_ids"] % 5).astype("int32")
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(inputs, targets, epochs=25, batch_size=16, verbose=0)
    return model


def make_inputs(rng, chars=True, lengths=(7, 3, 1, 5)):
    width = max(lengths)
    tok = np.zeros((len(lengths), width), "int32")
    for i, n in enumerate(lengths):
        tok[i, :n] = rng.integers(1, VOCAB, n)
    inputs = {"token_ids": tok}
    if chars:
        c = rng.integers(1, CHARS, (len(lengths), width, WORD_CHARS)).astype("int32")
        c[tok == 0] = 0
        inputs["char_ids"] = c
    return inputs


def keras_probs(model, inputs):
    return keras.ops.convert_to_numpy(keras.ops.softmax(model(inputs, training=False)))


def test_reverse_valid_reverses_only_the_valid_prefix():
    x = np.arange(10, dtype="float32").reshape(2, 5, 1)
    out = reverse_valid(x, np.array([3, 5], "int32")).numpy()[..., 0]
    np.testing.assert_array_equal(out, [[2, 1, 0, 3, 4], [9, 8, 7, 6, 5]])


@pytest.mark.parametrize(
    ("task", "cell", "chars", "num_layers", "bidirectional"),
    [("tagging", "lstm", True, 2, True), ("classification", "gru", False, 1, True),
     ("tagging", "lstm", False, 1, False)],
)
def test_inference_graph_equals_the_masked_model_on_valid_positions(task, cell, chars, num_layers, bidirectional):
    model = make_model(task, cell, chars, num_layers, bidirectional)
    inputs = make_inputs(np.random.default_rng(0), chars)
    graph = KerasGraph(model, softmax=True)
    out = graph(inputs).numpy()
    ref = keras_probs(model, inputs)
    valid = inputs["token_ids"] != 0
    if task == "tagging":
        assert_all_close(out[valid], ref[valid], atol=1e-6)
    else:
        assert_all_close(out, ref, atol=1e-6)


@pytest.fixture(scope="module")
def lstm_tagger_artifacts(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    model = train_briefly(make_model("tagging", "lstm", chars=True))
    saved = save_saved_model(KerasGraph(model, softmax=True), tmp / "saved_model")
    rng = np.random.default_rng(1)
    calibration = [make_inputs(rng, True, lengths=(8,)) for _ in range(30)]
    paths = {
        "fp32": to_tflite(saved, tmp / "model_fp32.tflite", QuantizationConfig.for_float32()),
        "dynamic": to_tflite(saved, tmp / "model_dynamic.tflite", QuantizationConfig.for_dynamic()),
        "int8": to_tflite(saved, tmp / "model_int8.tflite", QuantizationConfig.for_int8(calibration)),
        "onnx": to_onnx(KerasGraph(model, softmax=True), tmp / "model_fp32.onnx"),
    }
    paths["onnx_int8"] = quantize_onnx(paths["onnx"], tmp / "model_int8.onnx")
    return model, paths


def test_lstm_artifacts_use_fused_and_native_ops_without_flex(lstm_tagger_artifacts):
    _, paths = lstm_tagger_artifacts
    for key in ("fp32", "dynamic", "int8"):
        ops = tflite_ops(paths[key])
        assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in ops, key
        assert "WHILE" not in ops, key
        assert not [op for op in ops if "FLEX" in op.upper() or op == "CUSTOM"], key
    onnx = onnx_ops(paths["onnx"])
    assert "LSTM" in onnx and "Loop" not in onnx and "Scan" not in onnx
    assert "DynamicQuantizeLSTM" in onnx_ops(paths["onnx_int8"])


def runner_for(path):
    cls = TFLiteRunner if path.suffix == ".tflite" else ONNXRunner
    return cls(path, VOCAB, char_vocabulary_size=CHARS, max_word_chars=WORD_CHARS)


def run_rows(runner, inputs):
    """Each row alone, cut to its valid positions."""
    out = []
    for i, n in enumerate((inputs["token_ids"] != 0).sum(1)):
        row = {k: v[i : i + 1, :n] for k, v in inputs.items()}
        out.append(runner(row)[0])
    return out


@pytest.mark.parametrize("key", ["fp32", "onnx"])
def test_fp32_artifacts_match_keras_and_ignore_padding(lstm_tagger_artifacts, key):
    model, paths = lstm_tagger_artifacts
    runner = runner_for(paths[key])
    inputs = make_inputs(np.random.default_rng(2))
    ref = keras_probs(model, inputs)
    lengths = (inputs["token_ids"] != 0).sum(1)
    for i, out in enumerate(run_rows(runner, inputs)):
        assert_all_close(out, ref[i, : lengths[i]], atol=1e-5)
    padded = {k: np.pad(v, [(0, 0), (0, 6)] + [(0, 0)] * (v.ndim - 2)) for k, v in inputs.items()}
    for i in range(len(lengths)):
        row = {k: v[i : i + 1] for k, v in padded.items()}
        assert_all_close(runner(row)[0, : lengths[i]], ref[i, : lengths[i]], atol=1e-5)


def test_onnx_takes_a_padded_batch(lstm_tagger_artifacts):
    model, paths = lstm_tagger_artifacts
    inputs = make_inputs(np.random.default_rng(4))
    valid = inputs["token_ids"] != 0
    assert_all_close(runner_for(paths["onnx"])(inputs)[valid], keras_probs(model, inputs)[valid], atol=1e-5)


@pytest.mark.parametrize("key", ["dynamic", "int8", "onnx_int8"])
def test_quantized_artifacts_agree_statistically_and_are_small(lstm_tagger_artifacts, key):
    model, paths = lstm_tagger_artifacts
    inputs = make_inputs(np.random.default_rng(5), lengths=(8, 8, 6, 8, 7, 8))
    ref = keras_probs(model, inputs)
    lengths = (inputs["token_ids"] != 0).sum(1)
    out = np.concatenate(run_rows(runner_for(paths[key]), inputs))
    ref = np.concatenate([ref[i, :n] for i, n in enumerate(lengths)])
    assert np.abs(out - ref).mean() < 0.05
    assert np.mean(out.argmax(-1) == ref.argmax(-1)) >= 0.9


def test_tflite_state_is_reset_between_invokes(lstm_tagger_artifacts):
    _, paths = lstm_tagger_artifacts
    runner = runner_for(paths["fp32"])
    row = make_inputs(np.random.default_rng(6), lengths=(6,))
    first = runner(row)
    runner(make_inputs(np.random.default_rng(7), lengths=(6,)))
    assert_all_close(runner(row), first, atol=0)


def test_gru_exports_to_tflite_and_native_onnx_gru_and_a_failed_conversion_costs_only_its_file(tmp_path):
    model = make_model("classification", "gru", chars=False)
    saved = save_saved_model(KerasGraph(model, softmax=True), tmp_path / "saved_model")
    tfl, stale, after = tmp_path / "gru.tflite", tmp_path / "stale.tflite", tmp_path / "gru_dynamic.tflite"
    stale.write_bytes(b"an earlier export's file")  # not taken for this conversion's output
    # one converter child for the three; it dies on the second (no SavedModel there), a fresh one does the third
    written = []
    errors = to_tflite_files([(saved, tfl, QuantizationConfig.for_float32()),
                              (tmp_path / "missing", stale, QuantizationConfig.for_float32()),
                              (saved, after, QuantizationConfig.for_dynamic())], on_file=written.append)
    assert written == [tfl, after]  # reported as each was written
    assert list(errors) == ["stale.tflite"] and "the TFLite converter (fp32) exited with 1" in errors["stale.tflite"]
    assert stale.read_bytes() == b"an earlier export's file"
    assert tflite_ops(after) == tflite_ops(tfl)
    onnx = to_onnx(KerasGraph(model, softmax=True), tmp_path / "gru.onnx")
    assert "GRU" in onnx_ops(onnx) and "Loop" not in onnx_ops(onnx)
    assert not [op for op in tflite_ops(tfl) if "FLEX" in op.upper()]
    inputs = make_inputs(np.random.default_rng(8), chars=False)
    ref = keras_probs(model, inputs)
    kwargs = {"char_vocabulary_size": 0}
    assert_all_close(ONNXRunner(onnx, VOCAB, **kwargs)(inputs), ref, atol=1e-5)
    tfl_runner = TFLiteRunner(tfl, VOCAB, **kwargs)
    assert_all_close(np.stack([tfl_runner({"token_ids": inputs["token_ids"][i : i + 1]})[0] for i in range(4)]), ref,
                     atol=1e-5)


def test_pruning_refuses_character_highway_layers_it_would_drop():
    from kerasrnn.export.pruning import ModelWeights

    encoder = ContextualEncoder(VOCAB, embedding_dim=12, units=10, output_dim=8, char_vocabulary_size=CHARS,
                                char_filters=6, char_embedding_dim=4, max_word_chars=WORD_CHARS, char_highway_layers=1)
    with pytest.raises(ValueError, match="char_highway_layers"):
        ModelWeights.from_model(SequenceTagger(encoder, 5))


def test_pruning_reaches_the_target_sparsity_and_keeps_the_model_working():
    from kerasrnn.data.pipeline import EncodedData
    from kerasrnn.export.pruning import ModelWeights, prune_weights

    model = train_briefly(make_model("tagging", "lstm", chars=True))
    inputs = make_inputs(np.random.default_rng(12), lengths=tuple(range(3, 11)) * 4)
    lengths = (inputs["token_ids"] != 0).sum(1)
    data = EncodedData([t[:n] for t, n in zip(inputs["token_ids"], lengths, strict=True)],
                       [c[:n] for c, n in zip(inputs["char_ids"], lengths, strict=True)],
                       [(t[:n] % 5).astype("int32") for t, n in zip(inputs["token_ids"], lengths, strict=True)])
    result = prune_weights(ModelWeights.from_model(model), data, sparsity=0.5, steps=20, batch_size=8)
    assert result.measured_sparsity == pytest.approx(0.5, abs=0.02)
    copy = type(model).from_config(model.get_config())
    result.weights.apply_to(copy)
    pruned = KerasGraph(copy, softmax=True)(inputs).numpy()
    targets = inputs["token_ids"] % 5
    valid = inputs["token_ids"] != 0
    assert np.mean(pruned.argmax(-1)[valid] == targets[valid]) > 0.8


def test_fp32_tflite_does_not_clip_a_large_cell_state(tmp_path):
    """Keras never clips the LSTM cell state; the converter's fused op would at |c| = 10. Token 2 drives the cell
    up by ~1 per step (input and forget gates saturated open), token 3 down: after 25 up and 15 down steps the true
    cell state is ~10 (tanh ~ +1), a clipped one -5 (tanh ~ -1)."""
    from kerasrnn.export.converters import lstm_cell_clips

    keras.utils.set_random_seed(0)
    encoder = ContextualEncoder(8, embedding_dim=1, units=1, output_dim=2, bidirectional=False)
    model = SequenceTagger(encoder, 3)
    encoder.token_embedding.set_weights([np.array([[0.0], [0.0], [1.0], [-1.0], *[[0.0]] * 4], "float32")])
    lstm = encoder.recurrent_layers[0]
    lstm.set_weights([np.array([[0.0, 0.0, 5.0, 0.0]], "float32"), np.zeros((1, 4), "float32"),
                      np.array([10.0, 10.0, 0.0, 10.0], "float32")])
    inputs = {"token_ids": np.array([[2] * 25 + [3] * 15], "int32")}
    cell_states = keras.ops.convert_to_numpy(keras.layers.RNN(lstm.cell, return_state=True)(
        encoder.token_embedding(inputs["token_ids"]))[2])
    assert cell_states[0, 0] == pytest.approx(10.0, abs=0.1)
    path = to_tflite(save_saved_model(KerasGraph(model, softmax=True), tmp_path / "sm"),
                     tmp_path / "m.tflite", QuantizationConfig.for_float32())
    assert lstm_cell_clips(path.read_bytes()) == [0.0]
    got = TFLiteRunner(path, VOCAB)(inputs)
    assert np.abs(got - keras_probs(model, inputs)).max() <= 1e-5


def test_a_converter_past_its_time_is_stopped_and_named(tmp_path):
    errors = to_tflite_files([(tmp_path / "missing", tmp_path / "a.tflite", QuantizationConfig.for_float32()),
                              (tmp_path / "missing", tmp_path / "b.tflite", QuantizationConfig.for_float32())],
                             timeout=0.5)  # each child is killed while it still imports TensorFlow
    assert errors == {name: f"{name}: the TFLite converter (fp32) did not finish in 0.5 s per file; no file was "
                            "written" for name in ("a.tflite", "b.tflite")}


def fused_lstm_inputs(path):
    """[(projection weights shape or None, recurrent weights shape)] of every fused LSTM op of a .tflite file."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(path.read_bytes(), 0))
    graph, out = model.subgraphs[0], []
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        if max(code.builtinCode, code.deprecatedBuiltinCode) == schema.BuiltinOperator.UNIDIRECTIONAL_SEQUENCE_LSTM:
            projection = tuple(graph.tensors[op.inputs[16]].shape) if op.inputs[16] >= 0 else None
            out.append((projection, tuple(graph.tensors[op.inputs[5]].shape)))
    return out


def test_fp32_tflite_runs_an_lstmp_as_one_projected_lstm_op(tmp_path):
    """The export graph rebuilds an LSTMP (6 cells projected to 4) as an LSTM of 6 cells with recurrent kernel P R,
    then P; the fp32 file puts P back into the fused op (projection_weights, recurrent weights [6, 4]) and drops
    the FULLY_CONNECTED: the BiLM's vectors as Keras computes them, for rows of several lengths."""
    from kerasrnn.models import BiLanguageModel

    keras.utils.set_random_seed(1)
    lm = BiLanguageModel(VOCAB, embedding_dim=8, units=6, num_layers=2, char_vocabulary_size=CHARS, char_filters=5,
                         max_word_chars=WORD_CHARS, residual=True, projection=4)
    lm(make_inputs(np.random.default_rng(0), lengths=(3,)))
    graph = KerasGraph(lm)
    path = to_tflite(save_saved_model(graph, tmp_path / "sm"), tmp_path / "m.tflite", QuantizationConfig.for_float32())
    assert fused_lstm_inputs(path) == [((4, 6), (6, 4))] * 4  # 2 layers x 2 directions
    assert "FULLY_CONNECTED" not in tflite_ops(path)
    runner = TFLiteRunner(path, VOCAB, char_vocabulary_size=CHARS, max_word_chars=WORD_CHARS)
    inputs = make_inputs(np.random.default_rng(5), lengths=(9, 4, 1))
    reference = keras.ops.convert_to_numpy(lm(inputs)[-1])  # the top layer, both directions
    for got, n, want in zip(run_rows(runner, inputs), (9, 4, 1), reference, strict=True):
        assert_all_close(got, want[:n], atol=1e-5)


@pytest.mark.parametrize("factors", [True, False])
def test_an_lstm_read_by_a_bias_free_matmul_gets_a_projection_only_when_its_weights_factor(tmp_path, factors):
    """An LSTM of 6 cells, then x P with P [6, 3] (the pattern of a rebuilt LSTMP): the op takes P as its
    projection when the recurrent kernel is P R (factors), and stays as converted when it is any 6 x 24 matrix;
    either file computes what TensorFlow computes."""
    import tensorflow as tf
    import tf_keras
    from ai_edge_litert.interpreter import Interpreter

    rng = np.random.default_rng(7)
    lstm = tf_keras.layers.LSTM(6, return_sequences=True)
    lstm.build((None, None, 5))
    kernel, recurrent, bias = lstm.get_weights()
    projection = rng.normal(0, 0.5, (6, 3)).astype("float32")
    if factors:
        recurrent = projection @ rng.normal(0, 0.5, (3, 24)).astype("float32")
    lstm.set_weights([kernel, recurrent, bias])
    module = tf.Module()
    module.lstm = lstm  # tracked, so the SavedModel holds its weights
    module.serve = tf.function(lambda x: tf.matmul(lstm(x), projection),
                               input_signature=[tf.TensorSpec([1, None, 5], tf.float32, name="x")])
    tf.saved_model.save(module, str(tmp_path / "sm"), signatures={"serving_default": module.serve})
    path = to_tflite(tmp_path / "sm", tmp_path / "m.tflite", QuantizationConfig.for_float32())
    assert fused_lstm_inputs(path) == ([((3, 6), (6, 3))] if factors else [(None, (6, 6))])
    x = rng.normal(0, 1, (1, 9, 5)).astype("float32")
    interpreter = Interpreter(model_path=str(path))
    interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    assert_all_close(got, module.serve(tf.constant(x)).numpy(), atol=1e-5)
