"""Each conversion mode on a small model: builtin ops only, LiteRT agrees with Keras."""

import contextlib
import io

import keras
import numpy as np
import pytest
import tensorflow as tf

from export import checks, convert, edge_model
from export.litert_runtime import LiteRTModel, xnnpack_partitions
from sercal_keras.errors import ConfigError, ExportError

INT_DTYPES = {"int8", "int32"}


@pytest.fixture(scope="module")
def data(trained_model, held_out):
    from tests.export.conftest import make_mfcc

    mean, std = edge_model.normalization_stats(trained_model)
    representative = edge_model.standardize(make_mfcc(48, seed=1)[0], mean, std)
    inputs = edge_model.standardize(held_out[0], mean, std)
    reference = trained_model.predict(held_out[0], verbose=0)
    return representative, inputs, reference


@pytest.fixture(scope="module")
def converted(trained_model, data):
    representative = data[0]
    result = {}
    for mode in ("float32", "float16", "dynamic", "int8"):
        graph = edge_model.mfcc_edge_model(trained_model)
        result[mode] = convert.convert(graph, mode, representative if mode == "int8" else None)
    return result


def _analyzer_text(content: bytes) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        tf.lite.experimental.Analyzer.analyze(model_content=content)
    return out.getvalue()


@pytest.mark.parametrize("mode", ["float32", "float16", "dynamic", "int8"])
def test_builtin_ops_only(converted, mode):
    content = converted[mode].content
    codes = checks.operators(content)
    assert codes and all(code["builtin"] for code in codes)
    assert "CONV_2D" in {code["name"] for code in codes}
    # Cross-check with TF's own analyzer, independent of our flatbuffer reading.
    text = _analyzer_text(content)
    assert "CONV_2D" in text and "Flex" not in text and "CUSTOM" not in text


@pytest.mark.parametrize("mode,tolerance", [("float32", 1e-4), ("float16", 2e-2)])
def test_float_files_reproduce_keras(converted, data, mode, tolerance):
    _, inputs, reference = data
    probs = LiteRTModel(converted[mode].content).predict(inputs)
    assert np.abs(probs - reference).max() < tolerance


@pytest.mark.parametrize("mode,minimum", [("dynamic", 0.95), ("int8", 0.9)])
def test_quantized_files_agree_with_keras(converted, data, mode, minimum):
    _, inputs, reference = data
    probs = LiteRTModel(converted[mode].content).predict(inputs)
    assert checks.compare(reference, probs)["agreement"] >= minimum


def test_int8_is_fully_integer_with_int8_io(converted):
    content = converted["int8"].content
    runner = LiteRTModel(content)
    assert runner.input["dtype"] == np.int8 and runner.output["dtype"] == np.int8
    scale, zero_point = runner.output["quantization"]
    assert scale == pytest.approx(1 / 256) and zero_point == -128  # softmax output
    interpreter = runner.interpreter
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    for op in interpreter._get_ops_details():
        if op["op_name"] == "DELEGATE":
            continue
        dtype = np.dtype(tensors[int(op["outputs"][0])]["dtype"]).name
        assert dtype in INT_DTYPES, (op["op_name"], dtype)
    # int8 is at most 30 % of float32 (DESIGN §6)
    assert len(content) <= 0.30 * len(converted["float32"].content)


def test_int8_keys_and_values_are_symmetric_so_xnnpack_takes_the_matmuls(converted):
    content = converted["int8"].content
    interpreter = LiteRTModel(content).interpreter
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    matmuls = [op for op in interpreter._get_ops_details() if op["op_name"] == "BATCH_MATMUL"]
    assert len(matmuls) == 2
    for op in matmuls:
        assert tensors[int(op["inputs"][1])]["quantization"][1] == 0  # right operand: zero point 0
    partitions = xnnpack_partitions(content)
    assert partitions["partitions"] <= 2
    assert {u["op"] for u in partitions["undelegated"]} <= {"SOFTMAX"}


def test_float32_is_one_xnnpack_partition(converted):
    partitions = xnnpack_partitions(converted["float32"].content)
    assert partitions["partitions"] == 1 and partitions["undelegated"] == []


def _float_ops(runner: LiteRTModel) -> set:
    """Names of the ops of a `.tflite` whose output is float32 (outside the XNNPACK delegate)."""
    tensors = {t["index"]: t for t in runner.interpreter.get_tensor_details()}
    return {op["op_name"] for op in runner.interpreter._get_ops_details()
            if op["op_name"] != "DELEGATE" and tensors[int(op["outputs"][0])]["dtype"] == np.float32}


def test_keep_float_attention_is_one_partition(trained_model, data):
    representative, inputs, reference = data
    graph = edge_model.mfcc_edge_model(trained_model)
    result = convert.convert(graph, "int8", representative, keep_float=["attention"])
    assert result.float_layers == list(convert.KEEP_FLOAT_GROUPS["attention"])
    runner = LiteRTModel(result.content)
    assert runner.input["dtype"] == np.int8
    assert {"SOFTMAX", "BATCH_MATMUL"} <= _float_ops(runner)
    assert xnnpack_partitions(result.content)["partitions"] == 1
    assert checks.compare(reference, runner.predict(inputs))["agreement"] >= 0.9


def test_keep_float_group_skips_layers_the_graph_lacks():
    group = convert.KEEP_FLOAT_GROUPS["attention"]
    present = [layer for layer in group if layer != "focus_add"] + ["classifier"]
    assert convert.expand_keep_float(["attention", "classifier"], present=present) == present
    assert convert.expand_keep_float(["no_such_layer"], present=present) == ["no_such_layer"]  # fails later, named
    with pytest.raises(ConfigError, match="none of group 'attention'"):
        convert.expand_keep_float(["attention"], present=["classifier"])


def test_keep_float_attention_on_a_model_without_focus_attention(data):
    """`mhsa` has no `focus_add`: the group keeps the rest of the score path float."""
    from sercal_keras.models import build_model
    from tests.export.conftest import NUM_CLASSES

    keras.utils.set_random_seed(0)
    model = build_model("mhsa", num_classes=NUM_CLASSES, num_heads=2, head_dim=8)
    result = convert.convert(edge_model.mfcc_edge_model(model), "int8", data[0], keep_float=["attention"])
    assert result.float_layers == [layer for layer in convert.KEEP_FLOAT_GROUPS["attention"] if layer != "focus_add"]
    assert {"SOFTMAX", "BATCH_MATMUL"} <= _float_ops(LiteRTModel(result.content))


def test_unknown_keep_float_layer_is_a_config_error(trained_model, data):
    graph = edge_model.mfcc_edge_model(trained_model)
    with pytest.raises(ConfigError, match="no layer"):
        convert.convert(graph, "int8", data[0], keep_float=["no_such_layer"])


def test_a_flex_op_fails_loudly():
    class Cumprod(keras.layers.Layer):
        def call(self, x):
            return tf.math.cumprod(x, axis=-1)

    inputs = keras.Input((4,), batch_size=1)
    graph = edge_model.EdgeGraph(keras.Model(inputs, Cumprod()(inputs)), "sliced", "mfcc", [])
    with pytest.raises(ExportError, match="builtin ops only"):
        convert.convert(graph, "float32")


def test_int8_without_representative_data_is_a_config_error(trained_model):
    graph = edge_model.mfcc_edge_model(trained_model)
    with pytest.raises(ConfigError, match="representative"):
        convert.convert(graph, "int8", np.zeros((0, 26, 63), np.float32))
    with pytest.raises(ConfigError, match="mode must be one of"):
        convert.convert(graph, "int4")


def test_assert_builtin_only_rejects_custom_codes(converted, monkeypatch):
    monkeypatch.setattr(checks, "operators", lambda content: [
        {"name": "CONV_2D", "builtin": True, "custom_code": None},
        {"name": "FlexRFFT", "builtin": False, "custom_code": "FlexRFFT"}])
    with pytest.raises(ExportError, match="FlexRFFT"):
        checks.assert_builtin_only(b"")
