import numpy as np
import pytest

from kerasrnn.runtime.runners import InputError, load_runner, task_specs, validate_inputs


@pytest.mark.parametrize(
    ("features", "message"),
    [
        ({"token_ids": np.array([[1, -1]])}, r"id -1 is outside \[0, 10\)"),
        ({"token_ids": np.array([[1, 10]])}, r"id 10 is outside \[0, 10\)"),
        ({"token_ids": np.array([[1, 2**31]], "int64")}, r"id 2147483648 is outside"),
        ({"token_ids": np.zeros((0, 3), "int32")}, "the batch is empty"),
        ({"token_ids": np.array([1, 2])}, "must have rank 2"),
        ({"token_ids": np.array([[1.0, 2.0]])}, "must hold integer ids"),
        ({"token_ids": np.array([[0, 2]])}, "at least one token"),
        ({"tokens": np.array([[1]])}, r"expected inputs \['token_ids'\]"),
    ],
)
def test_bad_ids_are_rejected_before_any_runtime(features, message):
    with pytest.raises(InputError, match=message):
        validate_inputs(features, vocabulary_size=10)


def test_int64_ids_in_range_become_int32():
    out = validate_inputs({"token_ids": np.array([[3, 0]], "int64")}, vocabulary_size=10)
    assert out["token_ids"].dtype == np.int32


def test_char_ids_are_checked_too():
    tok = np.array([[3, 4]])
    with pytest.raises(InputError, match=r"char_ids: id 7 is outside \[0, 5\)"):
        validate_inputs({"token_ids": tok, "char_ids": np.full((1, 2, 3), 7)}, 10, 5, 3)
    with pytest.raises(InputError, match=r"char_ids must have shape \(1, 2, 3\)"):
        validate_inputs({"token_ids": tok, "char_ids": np.ones((1, 2, 4), "int32")}, 10, 5, 3)


def test_rows_longer_than_an_exports_max_length_are_refused_and_padding_beyond_it_is_not():
    specs = task_specs(10, max_length=4)
    ok = validate_inputs({"token_ids": np.array([[3, 4, 5, 6, 0, 0, 0]])}, specs=specs)  # 4 tokens, width 7
    assert ok["token_ids"].shape == (1, 7)
    with pytest.raises(InputError, match="row 1 holds 5 positions; this model takes at most 4"):
        validate_inputs({"token_ids": np.array([[3, 4, 0, 0, 0], [3, 4, 5, 6, 7]])}, specs=specs)


@pytest.mark.parametrize("suffix", [".tflite", ".onnx", ".keras"])
def test_random_bytes_are_refused_with_a_clear_error(tmp_path, suffix):
    path = tmp_path / f"model{suffix}"
    path.write_bytes(np.random.default_rng(0).bytes(2000))
    with pytest.raises(ValueError, match=str(path.name)):
        load_runner(path, vocabulary_size=10)


def test_unknown_suffix_and_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such model file"):
        load_runner("/nonexistent/model.tflite", 10)
    (tmp_path / "model.pb").write_bytes(b"x")
    with pytest.raises(ValueError, match="unknown model type '.pb'"):
        load_runner(tmp_path / "model.pb", 10)
