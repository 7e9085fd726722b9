"""The staged full-int8 file: the graph cut at its recurrences, recurrences run in explicit-state chunks."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasrnn.data.pipeline import IdRows
from kerasrnn.export.converters import QuantizationConfig, tflite_ops, to_tflite_files
from kerasrnn.export.exporter import calibration_rows
from kerasrnn.export.keras_graph import KerasGraph
from kerasrnn.export.staged import StagedGraph, calibration_calls, input_shapes, save_staged
from kerasrnn.runtime.runners import StagedRunner, load_runner
from kerasrnn.runtime.staged import plan_from_shapes, run_staged
from tests.export.test_export import CHARS, VOCAB, WORD_CHARS, keras_probs, make_inputs, make_model, train_briefly
from tests.test_case import assert_all_close


def float_call(functions):
    """`call(signature, inputs)` on the staged graph's float tf.functions."""
    shapes = input_shapes(functions)

    def call(key, inputs):
        out = functions[key]({name: tf.constant(inputs[name]) for name in shapes[key]})
        return {name: value.numpy() for name, value in out.items()}

    return call, plan_from_shapes(shapes)


def notebook_gru(reset_after):
    keras.utils.set_random_seed(5)
    return keras.Sequential([keras.Input((None,), dtype="int32"), keras.layers.Embedding(VOCAB, 6, mask_zero=True),
                             keras.layers.GRU(7, return_sequences=True, reset_after=reset_after),
                             keras.layers.GRU(5, go_backwards=True), keras.layers.Dense(3, activation="softmax")])


def elmo_tagger(projection=0):
    """A tagger with ELMo features of a two-layer residual BiLM that lacks the last 10 word and 5 character ids."""
    from kerasrnn.layers import ELMo
    from kerasrnn.models import BiLanguageModel, ContextualEncoder, SequenceTagger

    keras.utils.set_random_seed(6)
    lm = BiLanguageModel(VOCAB - 10, embedding_dim=6, units=5, char_vocabulary_size=CHARS - 5, char_filters=4,
                         max_word_chars=WORD_CHARS, num_layers=2, residual=True, projection=projection)
    encoder = ContextualEncoder(VOCAB, embedding_dim=8, units=6, output_dim=8, char_vocabulary_size=CHARS,
                                char_filters=4, max_word_chars=WORD_CHARS, elmo=ELMo(lm, name="elmo"))
    return SequenceTagger(encoder, 3)


@pytest.mark.parametrize("case", ["bilstm2_tagger", "bigru_classifier", "unidirectional_lstm", "gru_v1_notebook",
                                  "gru_notebook", "elmo_tagger", "elmo_lstmp_tagger"])
def test_staged_float_graph_equals_keras_at_every_length(case):
    """Rows of 1..11 tokens in chunks of 4 (one chunk, several, a partly filled last one), each alone and padded."""
    if case.endswith("notebook"):
        model = notebook_gru(reset_after=case == "gru_notebook")
        graph, chars = KerasGraph(model), False
        reference = lambda x: keras.ops.convert_to_numpy(model(next(iter(x.values()))))  # noqa: E731
    elif case.startswith("elmo"):  # lstmp: the BiLM's 5 cells projected to 3 (LSTMP layers)
        model = elmo_tagger(projection=3 if case == "elmo_lstmp_tagger" else 0)
        graph, chars = KerasGraph(model, softmax=True), True
        reference = lambda x: keras_probs(model, x)  # noqa: E731
    else:
        task, cell, layers, bi = {"bilstm2_tagger": ("tagging", "lstm", 2, True),
                                  "bigru_classifier": ("classification", "gru", 1, True),
                                  "unidirectional_lstm": ("tagging", "lstm", 1, False)}[case]
        model = make_model(task, cell, chars=True, num_layers=layers, bidirectional=bi)
        graph, chars = KerasGraph(model, softmax=True), True
        reference = lambda x: keras_probs(model, x)  # noqa: E731
    staged = StagedGraph(graph, chunk=4)
    call, plan = float_call(staged.functions())
    if case == "bilstm2_tagger":
        assert [sorted(w["recurrences"]) for w in plan] == [[0, 1], [2, 3]]  # both directions share a wave
    if case.startswith("elmo"):  # the BiLM's two layers (both directions each), then the task's layer
        assert [sorted(w["recurrences"]) for w in plan] == [[0, 1], [2, 3], [4, 5]]
    if case == "elmo_lstmp_tagger":  # the staged file runs an LSTMP as the LSTM of all its 5 cells (h and c)
        assert plan[0]["recurrences"][0] == {"h": 5, "c": 5}
    inputs = make_inputs(np.random.default_rng(1), chars, lengths=tuple(range(1, 12)))
    lengths = (inputs["token_ids"] != 0).sum(1)
    if not chars:  # a Sequential model's input is named by Keras
        inputs = {next(iter(graph.inputs)): inputs["token_ids"]}
    for i, n in enumerate(lengths):
        row = {k: v[i : i + 1, :n] for k, v in inputs.items()}
        ref = reference(row)
        assert_all_close(run_staged(call, plan, row, staged.output_name), ref, atol=1e-5)
        padded = {k: v[i : i + 1] for k, v in inputs.items()}  # to 11 positions
        out = run_staged(call, plan, padded, staged.output_name)
        assert_all_close(out[:, :n] if out.ndim == 3 else out, ref, atol=1e-5)


@pytest.fixture(scope="module")
def gru_tagger_staged(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("staged")
    model = train_briefly(make_model("tagging", "gru", chars=True))
    staged = StagedGraph(KerasGraph(model, softmax=True), chunk=4)
    concrete = save_staged(staged, tmp / "saved_model")
    rows = calibration_rows(IdRows({k: list(v) for k, v in make_inputs(np.random.default_rng(9), lengths=(10,) * 40
                                                                     ).items()}), 8)
    fp32, int8 = tmp / "staged_fp32.tflite", tmp / "staged_int8.tflite"
    assert to_tflite_files([
        (tmp / "saved_model", fp32, QuantizationConfig.for_float32()),
        (tmp / "saved_model", int8, QuantizationConfig.for_int8(calibration_calls(staged, concrete, rows)))]) == {}
    return model, staged, {"fp32": fp32, "int8": int8}


def test_staged_tflite_is_exact_in_fp32_and_runs_the_protocol(gru_tagger_staged):
    model, staged, paths = gru_tagger_staged
    runner = load_runner(paths["fp32"], VOCAB, char_vocabulary_size=25, max_word_chars=5)
    assert isinstance(runner, StagedRunner)
    assert sorted(runner.runners) == ["cell_0", "stage_0", "stage_1"]
    inputs = make_inputs(np.random.default_rng(3), lengths=(9, 1, 4, 7))
    ref = keras_probs(model, inputs)
    out = runner(inputs)
    valid = inputs["token_ids"] != 0
    assert_all_close(out[valid], ref[valid], atol=1e-5)
    assert set(staged.describe()["signatures"]) == {"stage_0", "cell_0", "stage_1"}


def test_staged_int8_gru_is_plain_int8_kernels_and_agrees(gru_tagger_staged):
    model, _, paths = gru_tagger_staged
    ops = tflite_ops(paths["int8"])
    assert "FULLY_CONNECTED" in ops
    assert not {"WHILE", "UNIDIRECTIONAL_SEQUENCE_LSTM", "CUSTOM"} & set(ops)
    runner = load_runner(paths["int8"], VOCAB, char_vocabulary_size=25, max_word_chars=5)
    inputs = make_inputs(np.random.default_rng(5), lengths=(8, 8, 6, 11, 7, 3))
    valid = inputs["token_ids"] != 0
    out, ref = runner(inputs)[valid], keras_probs(model, inputs)[valid]
    assert np.mean(out.argmax(-1) == ref.argmax(-1)) >= 0.9
    assert np.abs(out - ref).mean() < 0.05
