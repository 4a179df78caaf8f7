"""Running a sercal-keras `.tflite` with LiteRT: numpy and `ai_edge_litert` only.

Nothing here imports TensorFlow, Keras or librosa, so the edge runtime
(`edge_demo/`) can share it on a Raspberry Pi or Android where only numpy and
LiteRT exist. It knows the two kinds of edge files (`input_kind` in the
sidecar): `"mfcc"` takes the *standardised* MFCC `(1, n_mfcc, frames)`,
`"waveform"` takes 2 s of 16 kHz audio `(1, samples)`; both return class
probabilities `(1, num_classes)`, int8 files in quantized form (scale / zero
point in the tensor details and the sidecar).
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

ModelSource = Union[str, "os.PathLike[str]", bytes]


def make_interpreter(model: ModelSource, num_threads: Optional[int] = None, xnnpack: bool = True):
    """A LiteRT interpreter with tensors allocated.

    Args:
        model: a `.tflite` path or its bytes.
        num_threads: CPU threads (None: LiteRT's default).
        xnnpack: apply LiteRT's default XNNPACK delegate (False: builtin kernels only).
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kwargs: Dict[str, Any] = {"num_threads": num_threads}
    if isinstance(model, (bytes, bytearray)):
        kwargs["model_content"] = bytes(model)
    else:
        kwargs["model_path"] = os.fspath(model)
    if not xnnpack:
        kwargs["experimental_op_resolver_type"] = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interpreter = Interpreter(**kwargs)
    interpreter.allocate_tensors()
    return interpreter


def tensor_info(detail: Dict[str, Any]) -> Dict[str, Any]:
    """The JSON-ready description of an input/output tensor (as stored in the sidecar)."""
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return {
        "name": str(detail["name"]),
        "shape": [int(d) for d in detail["shape"]],
        "dtype": np.dtype(detail["dtype"]).name,
        "quantization": {"scale": float(scale), "zero_point": int(zero_point)},
    }


def quantize(values: np.ndarray, dtype, scale: float, zero_point: int) -> np.ndarray:
    """Float → the tensor's dtype; float dtypes and scale 0 pass through as float32."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f" or not scale:
        return np.asarray(values, dtype)
    info = np.iinfo(dtype)
    return np.clip(np.round(np.asarray(values, np.float64) / scale + zero_point), info.min, info.max).astype(dtype)


def dequantize(values: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """The tensor's values as float32 (integers mapped with scale / zero point)."""
    values = np.asarray(values)
    if values.dtype.kind == "f" or not scale:
        return values.astype(np.float32)
    return ((values.astype(np.float32) - zero_point) * scale).astype(np.float32)


class LiteRTModel:
    """One `.tflite` model: float inputs in, float probabilities out, any batch size.

    The edge files have a fixed batch of 1, so `predict` runs one segment per
    invoke. Quantized inputs/outputs are converted with the tensors' scale and
    zero point.

    Example:
    >>> model = LiteRTModel("model_mfcc_int8.tflite", num_threads=1)  # doctest: +SKIP
    >>> probs = model.predict(standardized_mfcc)                     # (n, classes)
    """

    def __init__(self, model: ModelSource, num_threads: Optional[int] = None, xnnpack: bool = True):
        self.interpreter = make_interpreter(model, num_threads=num_threads, xnnpack=xnnpack)
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]

    @property
    def input_shape(self) -> tuple:
        return tuple(int(d) for d in self.input["shape"])

    def invoke_one(self, item: np.ndarray) -> np.ndarray:
        """One segment (the input shape without the batch axis, or with batch 1) → (classes,)."""
        scale, zero_point = self.input["quantization"]
        x = quantize(np.reshape(item, self.input_shape), self.input["dtype"], scale, zero_point)
        self.interpreter.set_tensor(self.input["index"], x)
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self.output["index"])
        return dequantize(out, *self.output["quantization"]).reshape(-1)

    def predict(self, items: np.ndarray) -> np.ndarray:
        """`(n, *input_shape[1:])` → `(n, classes)` float32."""
        items = np.asarray(items, np.float32)
        expected = self.input_shape[1:]
        if items.shape[1:] != expected:
            raise ValueError(f"inputs must have shape (n, {', '.join(map(str, expected))}). "
                             f"Received shape {items.shape}")
        if not len(items):
            return np.zeros((0, int(np.prod(self.output["shape"][1:]))), np.float32)
        return np.stack([self.invoke_one(item) for item in items])


def ops_details(model: ModelSource) -> List[Dict[str, Any]]:
    """Every node of the graph with XNNPACK applied: `op_name`, inputs, outputs, index.

    Delegated partitions appear as extra `DELEGATE` nodes; the original nodes
    stay listed (replaced ones included).
    """
    return make_interpreter(model, num_threads=1)._get_ops_details()


def op_counts(model: ModelSource) -> Dict[str, int]:
    """Builtin operator types and how often each occurs (before delegation)."""
    counts: Dict[str, int] = {}
    for op in ops_details(model):
        if op["op_name"] != "DELEGATE":
            counts[op["op_name"]] = counts.get(op["op_name"], 0) + 1
    return dict(sorted(counts.items()))


def xnnpack_partitions(model: ModelSource) -> Dict[str, Any]:
    """How XNNPACK splits the graph: the partition count and the ops it leaves out.

    LiteRT replaces each delegated partition by one `DELEGATE` node whose
    inputs/outputs are the partition's boundary tensors; the nodes it covers
    are found by walking back from its outputs to its inputs. The rest run on
    LiteRT's builtin kernels, and each of them between two partitions costs a
    hand-over (the prototype's int8 slowdown, DESIGN §5).

    Returns:
        `{"partitions": int, "delegated_nodes": int, "total_nodes": int,
        "undelegated": [{"op": name, "dtype": output dtype, "tensor": name}, ...]}`.
    """
    interpreter = make_interpreter(model, num_threads=1)
    ops = interpreter._get_ops_details()
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    delegates = [op for op in ops if op["op_name"] == "DELEGATE"]
    nodes = [op for op in ops if op["op_name"] != "DELEGATE"]
    producer = {int(t): op for op in nodes for t in op["outputs"]}
    inside = set()
    for delegate in delegates:
        boundary = {int(t) for t in delegate["inputs"]}
        stack = [int(t) for t in delegate["outputs"]]
        seen = set()
        while stack:
            tensor = stack.pop()
            if tensor in boundary or tensor in seen:
                continue
            seen.add(tensor)
            op = producer.get(tensor)
            if op is None or op["index"] in inside:
                continue
            inside.add(op["index"])
            stack.extend(int(t) for t in op["inputs"] if t >= 0)
    undelegated = []
    for op in nodes:
        if op["index"] in inside:
            continue
        out = tensors.get(int(op["outputs"][0]), {})
        undelegated.append({"op": op["op_name"], "dtype": np.dtype(out.get("dtype", np.float32)).name,
                            "tensor": str(out.get("name", ""))})
    return {"partitions": len(delegates), "delegated_nodes": len(inside), "total_nodes": len(nodes),
            "undelegated": undelegated}


def input_range_sample(shape: Sequence[int], dtype, rng: np.random.Generator) -> np.ndarray:
    """A random input for timing: standard normal (float) or uniform integers."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
