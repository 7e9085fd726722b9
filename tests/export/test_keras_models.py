"""Export of Keras models written as a notebook user writes them (`export_model`): every artifact against the Keras
model on right-padded rows, the ops each file uses, input and output names, refusals with their reasons."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from kerasrnn.export.exporter import ExportSettings, export_model
from kerasrnn.export.keras_graph import UnsupportedLayerError
from kerasrnn.runtime.runners import InputError, InputSpec, load_runner, specs_from_metadata, validate_inputs

V, TAGS, T = 40, 4, 12
L = keras.layers
# The staged and streaming files of notebook models are tested at the graph level in test_staged / test_streaming.
SETTINGS = ExportSettings(calibration_length=8, latency_runs=5, parity_sentences=40, int8_fixed_length=None,
                          int8_chunk=None, stream_chunk=None)


def ids(n=80, seed=0, vocab=V, width=T):
    rng = np.random.default_rng(seed)
    out = np.zeros((n, width), "int32")
    for i, length in enumerate(rng.integers(1, width + 1, n)):
        out[i, :length] = rng.integers(1, vocab, length)
    return out


def tagger_bilstm():
    return keras.Sequential([keras.Input((None,), dtype="int32", name="words"), L.Embedding(V, 8, mask_zero=True),
                             L.Bidirectional(L.LSTM(8, return_sequences=True)), L.Dense(TAGS)], name="bilstm_tagger")


def seed_lstm_tagger():
    return keras.Sequential([keras.Input((None,), dtype="int32"), L.Embedding(V, 8, mask_zero=True),
                             L.LSTM(8, return_sequences=True), L.Dropout(0.2), L.Dense(TAGS, activation="softmax")],
                            name="seed_lstm")


def last_state_classifier():
    i = keras.Input((None,), dtype="int32", name="token_ids")
    x = L.Embedding(V, 8, mask_zero=True)(i)
    x = L.Bidirectional(L.LSTM(8))(x)
    return keras.Model(i, L.Dense(TAGS, activation="softmax", name="label")(x), name="last_state")


def pooled_gru_classifier():
    i = keras.Input((None,), dtype="int32", name="token_ids")
    x = L.SpatialDropout1D(0.1)(L.Embedding(V, 8, mask_zero=True)(i))
    x = L.Bidirectional(L.GRU(8, return_sequences=True))(x)
    x = L.Concatenate()([L.GlobalAveragePooling1D()(x), L.GlobalMaxPooling1D()(x)])
    return keras.Model(i, L.Dense(TAGS)(x), name="pooled_gru")


def stacked_merges():
    i = keras.Input((None,), dtype="int32", name="token_ids")
    x = L.GaussianNoise(0.1)(L.Embedding(V, 8, mask_zero=True)(i))
    x = L.Bidirectional(L.LSTM(8, return_sequences=True), merge_mode="sum")(x)
    x = L.Bidirectional(L.LSTM(8, return_sequences=True), merge_mode="mul")(x)
    x = L.LayerNormalization()(x)
    return keras.Model(i, L.TimeDistributed(L.Dense(TAGS))(x), name="stacked_merges")


def backwards_gru():
    i = keras.Input((None,), dtype="int32", name="token_ids")
    x = L.Embedding(V, 8, mask_zero=True)(i)
    seq = L.GRU(8, return_sequences=True, go_backwards=True)(x)
    last = L.GRU(8, go_backwards=True)(x)
    x = L.Add()([L.GlobalAveragePooling1D()(seq), last])
    return keras.Model(i, L.Activation("tanh")(L.Dense(TAGS)(x)), name="backwards_gru")


def two_inputs():
    words = keras.Input((None,), dtype="int32", name="words")
    tags = keras.Input((None,), dtype="int32", name="pos")
    x = L.Concatenate()([L.Embedding(V, 8, mask_zero=True)(words), L.Embedding(10, 3, mask_zero=True)(tags)])
    fw, bw = L.Bidirectional(L.LSTM(8, return_sequences=True), merge_mode=None)(x)
    x = L.Multiply()([L.Dense(8, activation="relu")(fw), L.Dense(8, activation="sigmoid")(bw)])
    return keras.Model([words, tags], L.Dense(TAGS)(x), name="two_inputs")


def kerasrnn_tagger():
    from kerasrnn.models import ContextualEncoder, SequenceTagger

    encoder = ContextualEncoder(V, embedding_dim=8, units=8, output_dim=8, char_vocabulary_size=12, char_filters=6,
                                max_word_chars=4, char_highway_layers=2)
    return SequenceTagger(encoder, TAGS, name="kerasrnn_tagger")


def elmo_tagger():
    """Our tagger with ELMo features from a BiLM that knows the first 30 word ids and 10 character ids only."""
    from kerasrnn.layers import ELMo
    from kerasrnn.models import BiLanguageModel, ContextualEncoder, SequenceTagger

    lm = BiLanguageModel(30, embedding_dim=6, units=5, char_vocabulary_size=10, char_filters=4, max_word_chars=4,
                         num_layers=2, residual=True, char_highway_layers=1)
    encoder = ContextualEncoder(V, embedding_dim=8, units=8, output_dim=8, char_vocabulary_size=12, char_filters=6,
                                max_word_chars=4, elmo=ELMo(lm, name="elmo"))
    return SequenceTagger(encoder, TAGS, name="elmo_tagger")


def sru_stack_classifier():
    from kerasrnn.layers import SRU

    i = keras.Input((None,), dtype="int32", name="token_ids")
    x = L.Embedding(V, 8, mask_zero=True)(i)
    x = L.Bidirectional(SRU(8, return_sequences=True))(x)  # 16 features into 8 units: a projected highway
    last = SRU(8, go_backwards=True)(x)
    return keras.Model(i, L.Dense(TAGS, name="label")(L.Concatenate()([L.GlobalMaxPooling1D()(x), last])),
                       name="sru_stack")


def inputs_for(model, n=80, seed=0):
    data = {}
    for x in model.inputs:
        name = x._keras_history[0].name
        if len(x.shape) == 3:
            continue
        data[name] = ids(n, seed, vocab=10 if name == "pos" else V)
    first = next(iter(data.values()))
    if "pos" in data:
        data["pos"] = np.where(first != 0, data["pos"] % 9 + 1, 0).astype("int32")
    for x in model.inputs:
        if len(x.shape) == 3:  # characters of each token
            chars = np.random.default_rng(seed).integers(1, 12, (n, T, x.shape[2])).astype("int32")
            data[x._keras_history[0].name] = np.where(first[:, :, None] != 0, chars, 0).astype("int32")
    return data


def fit_briefly(model, data):
    """A few epochs on a learnable task, so outputs are confident as a real model's and int8 statistics mean
    something."""
    first = next(iter(data.values()))
    per_token = len(model.outputs[0].shape) == 3
    y = first % TAGS if per_token else first[:, 0] % TAGS
    x = data if len(data) > 1 else first
    softmax = "softmax" in str(model.layers[-1].get_config().get("activation", ""))
    model.compile(optimizer=keras.optimizers.Adam(0.02),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=not softmax))
    model.fit(x, y.astype("int32"), epochs=12, batch_size=16, verbose=0)
    return model


MODELS = {"bilstm_tagger": (tagger_bilstm, "LSTM"), "seed_lstm": (seed_lstm_tagger, "LSTM"),
          "last_state": (last_state_classifier, "LSTM"), "pooled_gru": (pooled_gru_classifier, "GRU"),
          "stacked_merges": (stacked_merges, "LSTM"), "backwards_gru": (backwards_gru, "GRU"),
          "two_inputs": (two_inputs, "LSTM"), "kerasrnn_tagger": (kerasrnn_tagger, "LSTM"),
          "sru_stack": (sru_stack_classifier, "SRU"), "elmo_tagger": (elmo_tagger, "LSTM")}


@pytest.mark.parametrize("name", list(MODELS))
def test_every_artifact_gives_the_keras_outputs_on_right_padded_rows(tmp_path, name):
    build, cell = MODELS[name]
    keras.utils.set_random_seed(1)
    model = build()
    data = inputs_for(model)
    fit_briefly(model, data)
    report = export_model(model, tmp_path, data if len(data) > 1 else next(iter(data.values())), settings=SETTINGS)
    arts = report["artifacts"]
    for fp32 in ("model_fp32.tflite", "model_fp32.onnx"):
        assert arts[fp32]["parity"]["max_abs"] <= 1e-4, (fp32, arts[fp32]["parity"])
        assert arts[fp32]["padding_max_diff"] <= 1e-5, fp32
    # Statistical bounds on the direction of the outputs and the argmax. Full int8 is looser: the fused integer
    # LSTM's error grows with depth (measured on these tiny models: cos 0.93-0.97 with two stacked layers, 0.76-0.93
    # with three).
    bounds = {"model_dynamic.tflite": 0.98, "model_int8.onnx": 0.98, "model_int8.tflite": 0.9}
    for q, bound in bounds.items():
        if q == "model_int8.tflite" and cell == "GRU":
            assert "error" in arts[q]  # the calibrator crashes on the GRU's WHILE loop; the report says so
            continue
        assert arts[q]["parity"]["mean_cos"] >= bound, (q, arts[q]["parity"])
        assert arts[q]["parity"]["argmax_agreement"] >= 0.9, (q, arts[q]["parity"])
    ops = {n: set(a["ops"]) for n, a in arts.items() if "ops" in a}
    for n, op_set in ops.items():
        assert not {op for op in op_set if "FLEX" in op.upper() or op == "CUSTOM"}, n
    if cell == "LSTM":
        for n in ("model_fp32.tflite", "model_dynamic.tflite", "model_int8.tflite"):
            assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in ops[n] and "WHILE" not in ops[n], n
        assert "LSTM" in ops["model_fp32.onnx"] and "DynamicQuantizeLSTM" in ops["model_int8.onnx"]
    elif cell == "GRU":
        assert "GRU" in ops["model_fp32.onnx"] and "Loop" not in ops["model_fp32.onnx"]
    else:  # the SRU's scan: plain elementwise ops at any length, no loop in any file
        for n, op_set in ops.items():
            assert not op_set & {"WHILE", "UNIDIRECTIONAL_SEQUENCE_LSTM", "Loop", "Scan"}, (n, op_set)
        assert {"FULLY_CONNECTED", "MUL", "ADD", "PAD", "STRIDED_SLICE", "LOGISTIC", "TANH"} <= ops["model_int8.tflite"]
    meta = json.loads((tmp_path / "metadata.json").read_text())
    assert list(meta["inputs"]) == [x._keras_history[0].name for x in model.inputs]
    # the SRU scan's steps cover 1024 positions: a longer row is refused, never answered wrongly
    assert {info.get("max_length") for info in meta["inputs"].values()} == {1024 if cell == "SRU" else None}
    assert meta["output"]["name"] == model.outputs[0]._keras_history[0].name
    # The files keep the Keras input names: a runner built from metadata.json feeds them by name.
    specs = specs_from_metadata(meta)
    row = {k: v[:1] for k, v in data.items()}
    n = int((next(iter(row.values())) != 0).sum())
    keras_row = model({k: v[:, :n] for k, v in row.items()} if len(row) > 1 else next(iter(row.values()))[:, :n])
    for f in ("model_fp32.tflite", "model_fp32.onnx"):
        out = load_runner(tmp_path / f, specs=specs)(row)
        expected = keras.ops.convert_to_numpy(keras_row)
        got = out[:, :n] if out.ndim == 3 else out
        np.testing.assert_allclose(got, expected, atol=1e-4)
    # conformance.json: the check rows in, each artifact's argmax out (row 0 is the row above)
    doc = json.loads((tmp_path / "conformance.json").read_text())
    assert doc["task_type"] == "keras_model" and "model_fp32.onnx" in doc["artifacts"]
    case = doc["cases"][0]
    assert case["inputs"] == {k: v[0, :n].tolist() for k, v in row.items()}
    assert case["outputs"]["model_fp32.onnx"]["argmax"] == expected.argmax(-1)[0].tolist()


def test_a_model_without_mask_reads_every_position(tmp_path):
    keras.utils.set_random_seed(2)
    model = keras.Sequential([keras.Input((T,), dtype="int32"), L.Embedding(V, 8), L.LSTM(8), L.Dense(TAGS)])
    data = np.random.default_rng(3).integers(0, V, (40, T)).astype("int32")  # 0 is a word like any other
    report = export_model(model, tmp_path, data, settings=SETTINGS)
    assert report["artifacts"]["model_fp32.tflite"]["parity"]["max_abs"] <= 1e-4
    (info,) = json.loads((tmp_path / "metadata.json").read_text())["inputs"].values()
    assert info["right_padded"] is False and info["id_range"] == V
    assert any("no mask_zero" in note for note in report["notes"])


@pytest.mark.parametrize(("layer", "message"), [
    (lambda: L.Conv1D(4, 3, padding="same"), r"layer 'conv1d' \(Conv1D\) is not supported.*supported: InputLayer"),
    (lambda: L.MultiHeadAttention(2, 4), r"\(MultiHeadAttention\) is not supported"),
])
def test_a_layer_outside_the_set_is_refused_by_name(tmp_path, layer, message):
    i = keras.Input((None,), dtype="int32")
    x = L.Bidirectional(L.LSTM(4, return_sequences=True))(L.Embedding(V, 8, mask_zero=True)(i))
    made = layer()
    x = made(x, x) if isinstance(made, L.MultiHeadAttention) else made(x)
    with pytest.raises(UnsupportedLayerError, match=message):
        export_model(keras.Model(i, L.Dense(TAGS)(x)), tmp_path, ids(), settings=SETTINGS)
    assert not (tmp_path / "model_fp32.tflite").exists()


def test_an_unsupported_recurrent_activation_is_refused():
    model = keras.Sequential([keras.Input((None,), dtype="int32"), L.Embedding(V, 8, mask_zero=True),
                              L.LSTM(4, recurrent_activation="hard_sigmoid"), L.Dense(2)])
    with pytest.raises(UnsupportedLayerError, match=r"recurrent_activation 'hard_sigmoid' is not supported"):
        export_model(model, "unused", ids(), settings=SETTINGS)


@pytest.mark.parametrize(("rows", "message"), [
    ([[0, 3, 5]], "at least one token"),
    ([[3, 0, 5]], r"row 0 has id 0 at position 1 before a non-zero id; rows are right-padded"),
    ([[3, V, 5]], rf"id {V} is outside \[0, {V}\)"),  # a calibration id outside the vocabulary
])
def test_left_padding_holes_and_ids_outside_the_vocabulary_are_refused_before_any_runtime(tmp_path, rows, message):
    with pytest.raises(InputError, match=message):
        export_model(tagger_bilstm(), tmp_path, np.array(rows, "int32"), settings=SETTINGS)
    assert not list(tmp_path.iterdir())  # refused before any file is written
    with pytest.raises(InputError, match=message):
        validate_inputs({"token_ids": np.array(rows)}, vocabulary_size=V)


def test_cli_exports_a_keras_file(tmp_path):
    from deploy import export as export_cli

    keras.utils.set_random_seed(4)
    model = tagger_bilstm()
    model.save(tmp_path / "model.keras")
    rows = ids(40)
    np.save(tmp_path / "ids.npy", rows)
    np.save(tmp_path / "labels.npy", rows % TAGS)
    code = export_cli.main(["--model", str(tmp_path / "model.keras"), "--calibration", str(tmp_path / "ids.npy"),
                            "--labels", str(tmp_path / "labels.npy"), "--export-dir", str(tmp_path / "out"),
                            "--latency-runs", "5", "--int8-fixed-length", "0", "--stream-chunk", "0"])
    assert code == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert "model_int8_len32.tflite" not in report["artifacts"] and "model_int8_staged.tflite" in report["artifacts"]
    assert report["kind"] == "keras_model" and report["artifacts"]["model_fp32.onnx"]["parity"]["max_abs"] <= 1e-4
    # With labels, every artifact's accuracy beside the Keras model's (the model is untrained: about 1 in TAGS).
    keras_accuracy = report["keras"]["test_metric"]
    assert 0.0 < keras_accuracy < 0.6
    fp32 = report["artifacts"]["model_fp32.tflite"]
    assert fp32["test_metric"] == pytest.approx(keras_accuracy) and fp32["keras_test_metric"] == keras_accuracy
    assert export_cli.main(["--model", str(tmp_path / "model.keras"), "--export-dir", str(tmp_path / "o")]) == 2
    assert export_cli.main(["--model", str(tmp_path / "model.keras"), "--calibration", str(tmp_path / "ids.npy"),
                            "--export-dir", str(tmp_path / "o"), "--int8-chunk", "-1"]) == 2


JAX_SCRIPT = """
import os, sys
os.environ["KERAS_BACKEND"] = "jax"
import keras, numpy as np
assert keras.backend.backend() == "jax"
keras.utils.set_random_seed(5)
L = keras.layers
model = keras.Sequential([keras.Input((None,), dtype="int32", name="words"), L.Embedding(40, 8, mask_zero=True),
                          L.Bidirectional(L.GRU(8, return_sequences=True)), L.Dense(4)])
ids = np.load(sys.argv[2])
outs = [np.asarray(model(row[None, : int((row != 0).sum())]))[0] for row in ids]
model.save(sys.argv[1])
np.savez(sys.argv[3], *outs)
"""


def test_a_model_saved_under_the_jax_backend_exports(tmp_path):
    pytest.importorskip("jax")
    data = ids(30, seed=6)
    np.save(tmp_path / "ids.npy", data)
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", JAX_SCRIPT, str(tmp_path / "jax.keras"), str(tmp_path / "ids.npy"),
                           str(tmp_path / "jax_out.npz")], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = export_model(str(tmp_path / "jax.keras"), tmp_path / "out", data, settings=SETTINGS)
    assert report["artifacts"]["model_fp32.onnx"]["parity"]["max_abs"] <= 1e-4
    jax_outputs = np.load(tmp_path / "jax_out.npz")
    runner = load_runner(tmp_path / "out" / "model_fp32.tflite",
                         specs=[InputSpec("words", 2, 40, right_padded=True)])
    for i, row in enumerate(data):
        n = int((row != 0).sum())
        np.testing.assert_allclose(runner({"words": row[None]})[0, :n], jax_outputs[f"arr_{i}"], atol=1e-4)
