"""Keras edge graph → `.tflite` bytes, in one of the export modes.

Modes (DESIGN.md §3: builtin ops only, never Flex):

- `float32`: `supported_ops=[TFLITE_BUILTINS]`.
- `float16`: float16 weights (`supported_types=[float16]`), float compute.
- `dynamic`: dynamic-range quantization (int8 weights, float activations).
- `int8`: full integer post-training quantization calibrated on a
  representative dataset, `supported_ops=[TFLITE_BUILTINS_INT8]`, int8 input
  and output. The end-to-end waveform graph and `keep_float` layers go
  through the quantization debugger's denylist instead (selective
  quantization): the listed nodes stay float, everything else is int8.
- `qat`: like `int8`, from a graph trained with fake-quant nodes (`export.qat`):
  the converter takes those learned ranges and calibrates only what they do
  not cover.

Every conversion goes through `TFLiteConverter.from_keras_model` (never a
`tf.function` concrete function of a Keras 3 model, DESIGN §3) and ends with
`checks.assert_builtin_only`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import os
import re
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np

from sercal_keras.errors import ConfigError, ExportError, SercalError

MODES = ("float32", "float16", "dynamic", "int8", "qat")
#: What `--mode all` means (QAT trains, so it is only run when asked for).
ALL_MODES = ("float32", "float16", "dynamic", "int8")
INTEGER_MODES = ("int8", "qat")
#: Edge-graph layers of the waveform front-end: float in every mode (see README).
FRONTEND_LAYERS = ("mfcc", "standardize")
#: The model's output softmax: its tensor is named after the signature, not the layer.
OUTPUT_LAYER = "probabilities"
#: Names for groups of edge-graph layers in `keep_float`. A layer kept float alone often
#: changes nothing: the QUANTIZE after it takes the consumer's fixed scale (e.g. 1/256 after
#: a softmax). "attention" keeps the whole score path float (logits + focus bias, softmax,
#: probabilities × values), which XNNPACK then runs inside one partition. A group names every
#: layer its path may have; those a graph lacks are skipped (`focus_add` exists only with FA).
KEEP_FLOAT_GROUPS = {
    "attention": ("attention_logits", "focus_add", "attention_softmax", "attention_values"),
}


def expand_keep_float(names: Sequence[str], present: Optional[Iterable[str]] = None) -> List[str]:
    """`keep_float` names with the groups of `KEEP_FLOAT_GROUPS` expanded, duplicates removed.

    Args:
        names: layer or group names; an item may hold several, comma-separated.
        present: the graph's layer names. A group's layers missing from it are
            skipped (an `mhsa` model has no `focus_add`); a plain layer name is
            kept either way, so a typo still fails in the conversion.

    Returns:
        The layer names, in order.

    Raises:
        ConfigError: a group none of whose layers is in `present`.

    Example:
    >>> expand_keep_float(["attention"], present=["attention_logits", "attention_softmax"])
    ['attention_logits', 'attention_softmax']
    """
    known = None if present is None else set(present)
    result: List[str] = []
    for name in names:
        for item in str(name).split(","):
            item = item.strip()
            group = KEEP_FLOAT_GROUPS.get(item)
            layers = [item] if group is None else [layer for layer in group if known is None or layer in known]
            if group is not None and not layers:
                raise ConfigError(f"--keep-float: the graph has none of group {item!r}'s layers "
                                  f"({', '.join(group)}); name its layers one by one instead")
            for layer in layers:
                if layer and layer not in result:
                    result.append(layer)
    return result


@dataclasses.dataclass
class Conversion:
    """The result of one conversion."""

    content: bytes
    mode: str
    input_kind: str
    float_layers: List[str]  # edge-graph layers deliberately kept float
    method: str  # how it was converted, for the sidecar
    notes: List[str] = dataclasses.field(default_factory=list)


@contextlib.contextmanager
def _quiet():
    """Silences the converter's Python-side chatter (absl/tf logging, warnings)."""
    import warnings

    tf_logger = logging.getLogger("tensorflow")
    absl_logger = logging.getLogger("absl")
    levels = tf_logger.level, absl_logger.level
    tf_logger.setLevel(logging.ERROR)
    absl_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with contextlib.redirect_stdout(io.StringIO()):
                yield
    finally:
        tf_logger.setLevel(levels[0])
        absl_logger.setLevel(levels[1])


def _representative(samples: np.ndarray):
    samples = np.asarray(samples, np.float32)

    def generator():
        for i in range(len(samples)):
            yield [samples[i:i + 1]]

    return generator


def make_converter(keras_model, mode: str, representative: Optional[np.ndarray] = None):
    """A configured `TFLiteConverter` for `mode` (int8 modes need `representative`)."""
    import tensorflow as tf

    if mode not in MODES:
        raise ConfigError(f"mode must be one of {MODES}. Received: mode={mode!r}")
    with _quiet():
        converter = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if mode == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif mode in INTEGER_MODES:
        if representative is None or not len(representative):
            raise ConfigError(f"mode {mode!r} needs a non-empty representative dataset")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = _representative(representative)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
        # Per-tensor dense (FULLY_CONNECTED) weights: per-channel scales and int64 zero points of the
        # Q/K/V projections cost ~17 KB (8 % of the int8 file) for no measured agreement change.
        converter._experimental_disable_per_channel_quantization_for_dense_layers = True
    return converter


def _run_converter(convert_fn, what: str) -> bytes:
    try:
        with _quiet():
            return convert_fn()
    except SercalError:
        raise
    except Exception as error:  # noqa: BLE001  (the converter raises many types)
        message = str(error).strip().splitlines()
        detail = " | ".join(line.strip() for line in message[:6])[:1200]
        raise ExportError(
            f"{what} failed with builtin ops only (Flex/SELECT_TF_OPS is never enabled, so the file "
            f"runs on plain LiteRT): {type(error).__name__}: {detail}"
        ) from error


def node_layers(calibrated: bytes, layer_names: Iterable[str]) -> Dict[str, List[str]]:
    """Maps edge-graph layer names to the TFLite node (output tensor) names they produced.

    A node belongs to layer `L` when one of its fused names has a path
    component `L` or `L_<n>` (Keras' call suffix). The op writing the model
    output (the final softmax, named after the signature) is `probabilities`.
    """
    from export.litert_runtime import make_interpreter

    interpreter = make_interpreter(calibrated, num_threads=1)
    tensors = {t["index"]: t["name"] for t in interpreter.get_tensor_details()}
    outputs = {d["index"] for d in interpreter.get_output_details()}
    patterns = {name: re.compile(r"(^|/)" + re.escape(name) + r"(_\d+)?/") for name in layer_names}
    found: Dict[str, List[str]] = {name: [] for name in patterns}
    found.setdefault(OUTPUT_LAYER, [])
    for op in interpreter._get_ops_details():
        if op["op_name"] == "DELEGATE":
            continue
        index = int(op["outputs"][0])
        tensor = tensors[index]
        matched = False
        for name, pattern in patterns.items():
            if pattern.search(tensor):
                found[name].append(tensor)
                matched = True
        if not matched and index in outputs:
            found[OUTPUT_LAYER].append(tensor)
    return found


def _layer_names(model) -> Iterable[str]:
    """Names of `model`'s layers and, recursively, of the layers of the models nested in it."""
    import keras

    for layer in model.layers:
        yield layer.name
        if isinstance(layer, keras.Model):
            yield from _layer_names(layer)


def _selective_int8(converter, keras_model, deny_layers: Sequence[str], fully_quantize: bool) -> bytes:
    """Int8 with the nodes of `deny_layers` left float (selective quantization).

    The same two steps as `tf.lite.experimental.QuantizationDebugger` with
    `QuantizationDebugOptions(denylisted_nodes=..., fully_quantize=...)`: a
    calibrate-only conversion, then `mlir_quantize` with the denylist. Called
    directly because the debugger object insists on building its NumericVerify
    debug model first, which fails on QAT graphs ("Please check if the
    quantized model is in debug mode"), and because `mlir_quantize` also takes
    the per-tensor dense option the plain int8 files use.
    """
    from tensorflow.lite.python import convert as tflite_convert

    converter._experimental_calibrate_only = True
    with _quiet():
        calibrated = converter.convert()
    names = sorted(set(_layer_names(keras_model)))  # nested too: an ensemble's members, a sliced core
    nodes = node_layers(calibrated, names + [OUTPUT_LAYER])
    unknown = [layer for layer in deny_layers if not nodes.get(layer)]
    if unknown:
        known = sorted(name for name, found in nodes.items() if found)
        raise ConfigError(f"--keep-float: no layer {unknown} in the edge graph; layers: {', '.join(known)}")
    denylisted = sorted({node for layer in deny_layers for node in nodes[layer]})
    with _quiet():
        return tflite_convert.mlir_quantize(
            calibrated, fully_quantize=fully_quantize, denylisted_nodes=denylisted,
            disable_per_channel_for_dense_layers=True)


def _observe(edge, samples: np.ndarray) -> None:
    """Runs the (batch-1) edge graph over `samples` so its observing quantizers record min/max."""
    import tensorflow as tf

    if not any(q.mode == "observe" for q in edge.quantizers):
        return
    step = tf.function(lambda x: edge.model(x, training=False))  # traced now: modes are Python state
    samples = np.asarray(samples, np.float32)
    for i in range(len(samples)):
        step(samples[i:i + 1])


def convert(edge, mode: str, representative: Optional[np.ndarray] = None,
            keep_float: Sequence[str] = ()) -> Conversion:
    """Converts an `EdgeGraph` (see `export.edge_model`) to `.tflite` bytes.

    Args:
        edge: the edge graph (MFCC or waveform input, batch 1).
        mode: one of `MODES`.
        representative: calibration inputs of the edge graph (standardised MFCC
            or waveforms), needed by the int8 modes.
        keep_float: edge-graph layers (or groups of `KEEP_FLOAT_GROUPS`) to leave
            float in the int8 modes.

    Raises:
        ConfigError: bad mode or missing representative data.
        ExportError: the converter failed, or the result holds non-builtin ops.
    """
    from export.checks import assert_builtin_only

    if mode not in MODES:
        raise ConfigError(f"mode must be one of {MODES}. Received: mode={mode!r}")
    if mode == "dynamic" and edge.input_kind == "waveform":
        raise ConfigError(
            "mode 'dynamic' is not offered for the waveform input: dynamic-range quantization quantizes the "
            "inputs of the front-end's mel and DCT matmuls to 8 bits on the fly, and a power spectrum "
            "spanning 1e-10..1e5 does not survive that (measured: 14 % agreement on EmoDB). Use float16, "
            "or int8 (its front-end stays float).")
    if mode == "qat" and not edge.quantizers:
        raise ExportError("mode 'qat' needs the graph trained by export.qat (it has no fake-quant nodes)")
    integer = mode in INTEGER_MODES
    if integer and (representative is None or not len(representative)):
        raise ConfigError(f"mode {mode!r} needs a non-empty representative dataset")
    notes = [edge.note] if edge.note else []
    if not integer:
        edge.set_quantizer_mode("off")  # a FakeQuant node would switch the converter to integer mode
    elif mode == "int8":
        # Post-training: only the symmetric K/V quantizers exist; calibrate their range.
        edge.set_quantizer_mode("observe", only_symmetric=True)
        for quantizer in edge.quantizers:
            if quantizer.symmetric:
                quantizer.seen.assign(0.0)
        _observe(edge, representative)
        edge.set_quantizer_mode("fixed", only_symmetric=True)
    else:
        edge.set_quantizer_mode("fixed")
    converter = make_converter(edge.model, mode, representative)
    float_layers: List[str] = []
    keep_float = expand_keep_float(keep_float, present=_layer_names(edge.model)) if integer else []
    if integer and (edge.input_kind == "waveform" or keep_float):
        float_layers = list(FRONTEND_LAYERS if edge.input_kind == "waveform" else ()) + list(keep_float)
        content = _run_converter(
            lambda: _selective_int8(converter, edge.model, float_layers,
                                    fully_quantize=edge.input_kind == "mfcc"),
            f"{mode} conversion of the {edge.input_kind} graph (float: {', '.join(float_layers)})")
        method = ("selective quantization: calibrate, then mlir_quantize with a node denylist "
                  "(the QuantizationDebugger's denylisted_nodes mechanism)")
        if edge.input_kind == "waveform":
            notes.append("MFCC front-end and standardisation stay float32 (RFFT2D has no int8 kernel, and a "
                         "power spectrum spanning 1e-10..1e5 cannot live in 8 bits); input waveform and "
                         "output probabilities are float32; the CNN + attention core is int8")
    else:
        method = {"float32": "TFLiteConverter, TFLITE_BUILTINS",
                  "float16": "TFLiteConverter, float16 weights, TFLITE_BUILTINS",
                  "dynamic": "TFLiteConverter, dynamic-range int8 weights, TFLITE_BUILTINS",
                  "int8": "TFLiteConverter, full int8 (per-channel conv, per-tensor dense weights), "
                          "TFLITE_BUILTINS_INT8, int8 input/output",
                  "qat": "TFLiteConverter, full int8 from fake-quant ranges (+ calibration), TFLITE_BUILTINS_INT8"}[mode]
        content = _run_converter(converter.convert, f"{mode} conversion of the {edge.input_kind} graph")
    assert_builtin_only(content, what=f"{mode} {edge.input_kind} model")
    return Conversion(content, mode, edge.input_kind, float_layers, method, notes)


def environment_quiet() -> None:
    """Quiets TensorFlow's C++ logging for CLI runs (set before TF is imported)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
