"""Model files from elsewhere are refused with a clear error before anything in them runs."""

import json
import zipfile

import keras
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from kerasrnn.runtime.runners import load_runner


def test_keras_file_with_a_lambda_layer_is_refused(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Lambda(lambda x: x * 2)])
    path = tmp_path / "lambda.keras"
    model.save(path)
    with pytest.raises(ValueError, match="lambda.keras"):
        load_runner(path, vocabulary_size=10)


def test_keras_file_naming_a_foreign_module_is_refused(tmp_path):
    path = tmp_path / "foreign.keras"
    config = {"module": "os", "class_name": "system", "config": {"command": "touch " + str(tmp_path / "pwned")},
              "registered_name": "system"}
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", json.dumps(config))
        z.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
    with pytest.raises(ValueError, match="foreign.keras"):
        load_runner(path, vocabulary_size=10)
    assert not (tmp_path / "pwned").exists()


def test_keras_model_that_is_not_a_kerasrnn_task_model_is_refused(tmp_path):
    path = tmp_path / "plain.keras"
    keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]).save(path)
    with pytest.raises(ValueError, match="not a kerasrnn task model"):
        load_runner(path, vocabulary_size=10)


def tiny_onnx(path):
    node = helper.make_node("Identity", ["token_ids"], ["probabilities"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("token_ids", TensorProto.INT32, [1, 2])],
                              [helper.make_tensor_value_info("probabilities", TensorProto.INT32, [1, 2])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_truncated_onnx_is_refused(tmp_path):
    path = tiny_onnx(tmp_path / "model.onnx")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a valid ONNX model"):
        load_runner(path, vocabulary_size=10)


def test_onnx_external_data_outside_its_folder_is_refused(tmp_path):
    weights = helper.make_tensor("w", TensorProto.FLOAT, [2], [1.0, 2.0])
    weights.data_location = TensorProto.EXTERNAL
    del weights.float_data[:]
    for key, value in (("location", "../../etc/passwd"), ("offset", "0"), ("length", "8")):
        entry = weights.external_data.add()
        entry.key, entry.value = key, value
    node = helper.make_node("Identity", ["w"], ["probabilities"])
    graph = helper.make_graph([node], "g", [], [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [2])],
                              initializer=[weights])
    (tmp_path / "m").mkdir()
    path = tmp_path / "m" / "model.onnx"
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    with pytest.raises(ValueError, match="model.onnx"):
        load_runner(path, vocabulary_size=10)


def test_a_valid_onnx_still_loads(tmp_path):
    runner = load_runner(tiny_onnx(tmp_path / "ok.onnx"), vocabulary_size=10)
    np.testing.assert_array_equal(runner({"token_ids": np.array([[3, 4]])}), [[3, 4]])


def test_keras_file_with_a_path_like_layer_name_is_refused(tmp_path):
    good = tmp_path / "good.keras"
    keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="dense")]).save(good)
    path = tmp_path / "traversal.keras"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(path, "w") as dst:
        for item in src.namelist():
            data = src.read(item)
            if item == "config.json":
                data = data.replace(b'"name": "dense"', b'"name": "../../evil"')
            dst.writestr(item, data)
    with pytest.raises(ValueError, match=r"layer name '../../evil' contains a path separator or '\.\.'"):
        load_runner(path, vocabulary_size=10)


def test_keras_archive_with_a_member_outside_it_is_refused(tmp_path):
    path = tmp_path / "member.keras"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", "{}")
        z.writestr("../outside.txt", "x")
    with pytest.raises(ValueError, match="points outside the archive"):
        load_runner(path, vocabulary_size=10)
