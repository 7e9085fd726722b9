"""Streaming files: explicit state in and out, token by token and in chunks equal to the full row."""

import keras
import numpy as np
import pytest

from kerasrnn.data.pipeline import IdRows
from kerasrnn.export.converters import QuantizationConfig, tflite_ops, to_tflite_files
from kerasrnn.export.exporter import calibration_rows
from kerasrnn.export.keras_graph import KerasGraph, UnsupportedLayerError
from kerasrnn.export.streaming import StreamGraph, save_stream, stream_calibration_calls
from kerasrnn.models import BiLanguageModel
from kerasrnn.runtime.runners import task_specs
from kerasrnn.runtime.streaming import StreamRunner
from tests.export.test_export import CHARS, VOCAB, WORD_CHARS, keras_probs, make_inputs, make_model, train_briefly
from tests.test_case import assert_all_close


def stream_file(tmp, graph, chunk=4, int8_rows=None):
    stream = StreamGraph(graph, chunk=chunk)
    concrete = save_stream(stream, tmp / "sm")
    jobs = {"fp32": (tmp / "sm", tmp / "model_stream_fp32.tflite", QuantizationConfig.for_float32())}
    if int8_rows is not None:
        calls = stream_calibration_calls(stream, concrete, int8_rows)
        jobs["int8"] = (tmp / "sm", tmp / "model_stream_int8.tflite", QuantizationConfig.for_int8(calls))
    assert to_tflite_files(list(jobs.values())) == {}
    return stream, {kind: path for kind, (_, path, _) in jobs.items()}


def fed(runner, row, size):
    """The outputs of one row fed `size` tokens at a time."""
    runner.reset()
    n = len(next(iter(row.values())))
    return np.concatenate([runner.feed({k: v[s : s + size] for k, v in row.items()}) for s in range(0, n, size)])


@pytest.fixture(scope="module")
def lstm_stream(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stream")
    model = train_briefly(make_model("tagging", "lstm", chars=True, num_layers=2, bidirectional=False))
    rows = calibration_rows(IdRows({k: list(v) for k, v in make_inputs(np.random.default_rng(9),
                                                                       lengths=(10,) * 40).items()}), 8)
    stream, paths = stream_file(tmp, KerasGraph(model, softmax=True), int8_rows=rows)
    return model, stream, paths


def test_stream_fed_token_by_token_and_in_chunks_equals_the_whole_row(lstm_stream):
    model, stream, paths = lstm_stream
    assert stream.state_names == ["h_0", "c_0", "h_1", "c_1"]
    runner = StreamRunner(paths["fp32"], specs=task_specs(VOCAB, CHARS, WORD_CHARS))
    inputs = make_inputs(np.random.default_rng(2), lengths=(11, 1, 6))
    for i, n in enumerate((inputs["token_ids"] != 0).sum(1)):
        row = {k: v[i, :n] for k, v in inputs.items()}
        ref = keras_probs(model, {k: v[None] for k, v in row.items()})[0]
        for size in (1, 3, 5, 11):  # chunks of 5 in a 4-token chunk signature: a full chunk and a padded one
            assert_all_close(fed(runner, row, size), ref, atol=1e-5)
    assert "WHILE" not in tflite_ops(paths["fp32"])


def test_stream_int8_agrees_and_reset_restarts(lstm_stream):
    model, _, paths = lstm_stream
    runner = StreamRunner(paths["int8"], specs=task_specs(VOCAB, CHARS, WORD_CHARS))
    inputs = make_inputs(np.random.default_rng(5), lengths=(9, 8, 10, 7))
    agree = []
    for i, n in enumerate((inputs["token_ids"] != 0).sum(1)):
        row = {k: v[i, :n] for k, v in inputs.items()}
        ref = keras_probs(model, {k: v[None] for k, v in row.items()})[0]
        got = fed(runner, row, 5)
        agree.append(got.argmax(-1) == ref.argmax(-1))
        assert_all_close(fed(runner, row, 5), got, atol=0)  # reset: the same answer again
    assert np.mean(np.concatenate(agree)) >= 0.9


@pytest.mark.parametrize("variant", ["plain", "residual", "lstmp"])
def test_bilm_stream_gives_the_forward_next_token_probabilities(tmp_path, variant):
    keras.utils.set_random_seed(1)
    # lstmp: 6 cells projected to 4 (kerasrnn.layers.LSTMP): the export graph rebuilds it as an LSTM whose
    # recurrent kernel is P R, the stream runs the projected recurrence itself (its h state is the projection's 4)
    lm = BiLanguageModel(VOCAB, embedding_dim=8, units=6, num_layers=2, char_vocabulary_size=CHARS,
                         char_filters=5, max_word_chars=WORD_CHARS, residual=variant != "plain",
                         projection=4 if variant == "lstmp" else 0)
    inputs = make_inputs(np.random.default_rng(3), lengths=(9,))
    lm(inputs)
    graph = KerasGraph(lm)  # the embedder's graph: both directions of the top layer
    padded = make_inputs(np.random.default_rng(3), lengths=(9, 6))
    valid = padded["token_ids"] != 0
    assert_all_close(np.asarray(graph(padded))[valid], np.asarray(lm(padded)[-1])[valid], atol=1e-5)
    stream, paths = stream_file(tmp_path, graph, chunk=4)
    runner = StreamRunner(paths["fp32"], specs=task_specs(VOCAB, CHARS, WORD_CHARS))
    assert runner.state_shapes["h_0"] == (1, lm.state_dim) and runner.state_shapes["c_0"] == (1, 6)
    top = np.asarray(lm(inputs)[-1])[0, :, : lm.state_dim]
    logits = top @ np.asarray(lm.softmax_kernel).T + np.asarray(lm.softmax_bias)
    ref = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    row = {k: v[0] for k, v in inputs.items()}
    assert stream.output_name == "next_token_log_probabilities"
    assert_all_close(fed(runner, row, 1), ref, atol=1e-5)
    assert_all_close(fed(runner, row, 5), ref, atol=1e-5)
    (best, p), _ = runner.top_k(2)
    assert best == int(ref[-1].argmax()) and p == pytest.approx(float(np.exp(ref[-1].max())), rel=1e-4)


@pytest.mark.parametrize("case", ["bidirectional", "classifier"])
def test_models_that_cannot_stream_are_refused(case):
    model = make_model("tagging" if case == "bidirectional" else "classification", "gru", chars=False,
                       bidirectional=case == "bidirectional")
    with pytest.raises(UnsupportedLayerError, match="backwards" if case == "bidirectional" else "per token"):
        StreamGraph(KerasGraph(model, softmax=True))


def test_an_sru_tagger_streams_its_state_c_token_by_token(tmp_path):
    model = train_briefly(make_model("tagging", "sru", chars=True, num_layers=2, bidirectional=False))
    stream, paths = stream_file(tmp_path, KerasGraph(model, softmax=True))
    assert stream.state_names == ["c_0", "c_1"]  # an SRU's whole state
    runner = StreamRunner(paths["fp32"], specs=task_specs(VOCAB, CHARS, WORD_CHARS))
    inputs = make_inputs(np.random.default_rng(4), lengths=(9, 2))
    for i, n in enumerate((inputs["token_ids"] != 0).sum(1)):
        row = {k: v[i, :n] for k, v in inputs.items()}
        ref = keras_probs(model, {k: v[None] for k, v in row.items()})[0]
        for size in (1, 3, 9):
            assert_all_close(fed(runner, row, size), ref, atol=1e-5)


def test_a_staged_file_is_not_cut_for_a_model_of_srus_only():
    from kerasrnn.export.staged import StagedGraph

    model = make_model("tagging", "sru", chars=False, num_layers=1, bidirectional=True)
    with pytest.raises(ValueError, match="every recurrence is an SRU"):
        StagedGraph(KerasGraph(model))
