"""edge_demo.runtime pieces: interpreter fallback, sidecar tensor formats, quantisation."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest


def test_falls_back_to_tflite_runtime_then_fails_clearly(monkeypatch):
    from ai_edge_litert.interpreter import Interpreter

    from edge_demo.runtime import EdgeModelError, interpreter_class

    assert interpreter_class() == (Interpreter, "ai_edge_litert")
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # import raises ImportError
    fake = types.ModuleType("tflite_runtime.interpreter")
    fake.Interpreter = Interpreter
    monkeypatch.setitem(sys.modules, "tflite_runtime", types.ModuleType("tflite_runtime"))
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", fake)
    assert interpreter_class() == (Interpreter, "tflite_runtime")
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", None)
    with pytest.raises(EdgeModelError, match="pip install ai-edge-litert"):
        interpreter_class()


@pytest.mark.parametrize("details", [
    {"shape": [1, 26, 63], "dtype": "int8", "quantization": {"scale": 0.05, "zero_point": -3}},  # export.tflite
    {"shape": [1, 26, 63], "dtype": "int8", "scale": 0.05, "zero_point": -3},  # ARCHITECTURE.md wording
    {"shape": [1, 26, 63], "dtype": "int8", "quantization": [0.05, -3]},  # LiteRT's (scale, zero_point)
    {"shape": [None, 26, 63], "dtype": "int8", "quantization": {"scales": [0.05], "zero_points": [-3]}},
])
def test_sidecar_tensor_formats(details):
    from edge_demo.runtime import TensorSpec

    spec = TensorSpec.from_card(details, "extra.input")
    assert spec.shape[1:] == (26, 63) and spec.dtype == "int8"
    assert spec.scale == pytest.approx(0.05) and spec.zero_point == -3 and spec.quantized


def test_quantize_dequantize_round_trip(edge_models):
    from edge_demo.runtime import EdgeModel

    model = EdgeModel(edge_models.tflite["int8"])
    spec = model.input_spec
    x = np.linspace(-200, 200, 26 * 63, dtype=np.float32).reshape(1, 26, 63)
    q = model.quantize_input(x)
    assert q.dtype == np.int8 and q.min() == -128 and q.max() == 127  # saturates, no wrap-around
    inside = np.abs(x) < 2.0
    back = (q.astype(np.float32) - spec.zero_point) * spec.scale
    assert np.max(np.abs(back[inside] - x[inside])) <= spec.scale / 2 + 1e-6
    out = model.output_spec
    y = np.array([[out.zero_point, 127]], np.int8)
    np.testing.assert_allclose(model.dequantize_output(y), [[0.0, (127 - out.zero_point) * out.scale]])
