"""The graphs that go into `.tflite` files: the MFCC model and the end-to-end model.

Two edge graphs are built from a trained model (DESIGN.md §3, ARCHITECTURE.md):

- **MFCC input** (`input_kind="mfcc"`): the model *after* its
  `mfcc_standardization` layer, so the input is the standardised MFCC
  `(1, n_mfcc, frames)` (mean 0, std 1 per coefficient on the training data)
  and int8 input quantization sees a sane, fixed range. The runtime
  standardises with the mean/std stored in the sidecar.
- **Waveform input** (`input_kind="waveform"`): 2 s of 16 kHz audio
  `(1, 32000)` → the in-graph `MFCC` layer → the model's standardisation →
  the same core → probabilities.

The core is written again here from the trained weights, op by op
("explicit" graph), rather than sliced from the Keras model ("sliced" graph),
because the export needs things the training graph does not have, all of which
keep the float results (checked by `explicit_matches`):

- BatchNormalization folded into the convolutions (one CONV_2D per block, and
  the folded kernel is what QAT quantizes);
- the attention scale `1/sqrt(d)` folded into the query projection, and
  Calibration-Attention's factor 2 (`w = 2·sigmoid(·)`) folded into the output
  projection (exact: a power of two);
- optional fake-quant nodes (`ActivationQuantizer`), used (a) always in int8 on
  the keys and values with a *symmetric* range, so that the right operand of
  both BATCH_MATMULs has zero point 0, which XNNPACK needs to take them (an
  asymmetric K/V splits the int8 graph into 3 partitions with both matmuls on
  the slow builtin kernels), and (b) everywhere for quantization-aware training.

Variants or forms the explicit graph does not cover (`head_fusion`, the
first-attempt `gate`/`conv` forms, the local-context CA, FA from the input
energy) fall back to the
sliced Keras graph, which converts the same way, minus those rewrites.
TensorFlow ops are used directly here: this is the export edge (STYLE.md).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Dict, List, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from sercal_keras.errors import ModelFileError

NORMALIZATION_LAYER = "mfcc_standardization"
GRAPH_FORMS = ("explicit", "sliced")

# Conv blocks of `sercal_keras.models.backbone.cnn_backbone`, in order.
_BLOCKS = ("block1", "block2", "block3", "block4")


# ---------------------------------------------------------------------------
# Reading the trained model
# ---------------------------------------------------------------------------


def check_sercal_model(model) -> None:
    """Raises `ModelFileError` unless `model` looks like a sercal-keras MFCC model."""
    if not isinstance(model, keras.Model):
        raise ModelFileError(f"expected a keras.Model, got {type(model).__name__}")
    names = {layer.name for layer in model.layers}
    if NORMALIZATION_LAYER not in names:
        raise ModelFileError(
            f"model {model.name!r} has no {NORMALIZATION_LAYER!r} layer: it was not built by "
            "sercal_keras.models.build_model (export needs the standardisation inside the model)."
        )
    shape = tuple(model.input_shape)
    if len(shape) != 3:
        raise ModelFileError(
            f"model {model.name!r} takes inputs of shape {shape}; a sercal-keras model takes "
            "MFCC segments (batch, n_mfcc, frames)."
        )


def normalization_stats(model):
    """The per-coefficient `(mean, std)` held by the model's standardisation layer."""
    check_sercal_model(model)
    layer = model.get_layer(NORMALIZATION_LAYER)
    mean = np.asarray(keras.ops.convert_to_numpy(layer.mean), np.float64).reshape(-1)
    variance = np.asarray(keras.ops.convert_to_numpy(layer.variance), np.float64).reshape(-1)
    std = np.maximum(np.sqrt(variance), keras.config.epsilon())  # as keras Normalization
    return mean.astype(np.float32), std.astype(np.float32)


def _np(variable) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(variable), np.float32)


def _fold_bn(conv, bn):
    kernel = _np(conv.kernel)
    bias = _np(conv.bias) if conv.use_bias else np.zeros(kernel.shape[-1], np.float32)
    gamma = _np(bn.gamma) if bn.scale else np.ones_like(bias)
    beta = _np(bn.beta) if bn.center else np.zeros_like(bias)
    scale = gamma / np.sqrt(_np(bn.moving_variance) + bn.epsilon)
    return kernel * scale, (bias - _np(bn.moving_mean)) * scale + beta


@dataclasses.dataclass
class CoreWeights:
    """The float weights of the model core, rearranged for the edge graph."""

    convs: Dict[str, tuple]  # name → (kernel, bias, padding)
    focus_strength: Optional[np.ndarray]  # (H,) β/τ, or None without FA
    query: tuple  # (kernel (C, H·d) scaled by 1/sqrt(d), bias (H·d,))
    key: tuple
    value: tuple
    num_heads: int
    head_dim: int
    calibration: Optional[tuple]  # (W1, b1, W2, b2) or None without CA
    output: tuple  # (kernel (H·d, C) [×2 with CA], bias (C,))
    classifier: tuple  # (kernel, bias)


def explicit_support(model) -> Optional[str]:
    """None when the explicit edge graph covers `model`, else the reason it does not."""
    from sercal_keras.layers import CalibrationAttention, FocusAttention, MultiHeadSelfAttention

    layers = {layer.name: layer for layer in model.layers}
    needed = ["freq_pad", "time_pad", "first_concat", "positions", "self_attention", "attention_output",
              "pool", "classifier"] + [f"{b}_{p}" for b in ("freq", "time") + _BLOCKS for p in ("conv", "bn")]
    missing = [name for name in needed if name not in layers]
    if missing:
        return f"layers {missing} are absent (not the standard backbone + MHSA graph)"
    if not isinstance(layers["self_attention"], MultiHeadSelfAttention):
        return "the attention is not MultiHeadSelfAttention (e.g. the head_fusion baseline)"
    if "focus_attention" in layers and not isinstance(layers["focus_attention"], FocusAttention):
        return "Focus-Attention is the first-attempt feature gate"
    if "attention_residual_2" in layers:
        return "the model has more than one attention block (attention_blocks > 1)"
    if "input_energy" in layers:
        return "Focus-Attention reads the input energy (focus_source='energy')"
    if "calibration_attention" in layers:
        calibration = layers["calibration_attention"]
        if not isinstance(calibration, CalibrationAttention):
            return "Calibration-Attention is the first-attempt conv form"
        if calibration.context_size is not None:
            return "Calibration-Attention uses a local context window"
    if layers["classifier"].activation is not keras.activations.softmax:
        return "the classifier is not a softmax Dense layer"
    return None


def core_weights(model) -> CoreWeights:
    """Reads and rearranges the trained weights; requires `explicit_support(model) is None`."""
    reason = explicit_support(model)
    if reason:
        raise ModelFileError(f"the explicit edge graph does not cover model {model.name!r}: {reason}")
    get = model.get_layer
    convs = {}
    for name in ("freq", "time") + _BLOCKS:
        conv = get(f"{name}_conv")
        kernel, bias = _fold_bn(conv, get(f"{name}_bn"))
        convs[name] = (kernel, bias, conv.padding.upper())
    attention = get("self_attention")
    heads, dim = attention.num_heads, attention.head_dim
    channels = attention.query_dense.kernel.shape[0]

    def projection(dense, scale=1.0):
        kernel = _np(dense.kernel).reshape(channels, heads * dim) * scale
        bias = _np(dense.bias).reshape(heads * dim) * scale if dense.bias is not None else np.zeros(
            heads * dim, np.float32)
        return kernel.astype(np.float32), bias.astype(np.float32)

    focus = None
    names = {layer.name for layer in model.layers}
    if "focus_attention" in names:
        fa = get("focus_attention")
        focus = (_np(fa.beta) * np.exp(-_np(fa.log_temperature))).astype(np.float32)
    calibration = None
    output_scale = 1.0
    if "calibration_attention" in names:
        ca = get("calibration_attention")
        calibration = (_np(ca.squeeze_dense.kernel), _np(ca.squeeze_dense.bias),
                       _np(ca.excite_dense.kernel), _np(ca.excite_dense.bias))
        output_scale = 2.0  # 2·sigmoid(z)·h, the 2 moved into the next linear map
    out = get("attention_output")
    out_kernel = _np(out.kernel).reshape(heads * dim, -1) * output_scale
    out_bias = _np(out.bias) if out.bias is not None else np.zeros(out_kernel.shape[1], np.float32)
    classifier = get("classifier")
    return CoreWeights(
        convs=convs,
        focus_strength=focus,
        query=projection(attention.query_dense, 1.0 / math.sqrt(dim)),
        key=projection(attention.key_dense),
        value=projection(attention.value_dense),
        num_heads=heads,
        head_dim=dim,
        calibration=calibration,
        output=(out_kernel.astype(np.float32), out_bias),
        classifier=(_np(classifier.kernel), _np(classifier.bias)),
    )


# ---------------------------------------------------------------------------
# Export-only layers (TF ops; never saved, so not registered)
# ---------------------------------------------------------------------------


class ActivationQuantizer(keras.layers.Layer):
    """Fake 8-bit quantization of a tensor with a range learned as an EMA.

    Modes: `"off"` (identity), `"observe"` (records min/max, passes values
    through), `"train"` (updates the range as an exponential moving average of
    batch min/max when `training=True`, and fake-quantizes), `"fixed"`
    (fake-quantizes with the stored range). The TFLite converter reads the
    range of a `FakeQuantWithMinMaxVars` node as the tensor's quantization.
    `symmetric=True` uses `[-m, m]` with `narrow_range`, i.e. zero point 0.
    """

    def __init__(self, symmetric: bool = False, decay: float = 0.99, mode: str = "off", **kwargs):
        super().__init__(**kwargs)
        self.symmetric = symmetric
        self.decay = decay
        self.mode = mode

    def build(self, input_shape):
        self.range_min = self.add_weight(name="range_min", shape=(), initializer="zeros", trainable=False)
        self.range_max = self.add_weight(name="range_max", shape=(), initializer="zeros", trainable=False)
        self.seen = self.add_weight(name="seen", shape=(), initializer="zeros", trainable=False)
        self.built = True

    def quant_range(self):
        lo = tf.minimum(self.range_min, 0.0)
        hi = tf.maximum(self.range_max, 0.0)
        if self.symmetric:
            m = tf.maximum(tf.maximum(-lo, hi), 1e-6)
            return -m, m
        hi = tf.maximum(hi, lo + 1e-6)
        return lo, hi

    def _observe(self, x, ema: bool):
        batch_min = tf.reduce_min(x)
        batch_max = tf.reduce_max(x)
        first = tf.equal(self.seen, 0.0)
        if ema:
            new_min = tf.where(first, batch_min, self.decay * self.range_min + (1 - self.decay) * batch_min)
            new_max = tf.where(first, batch_max, self.decay * self.range_max + (1 - self.decay) * batch_max)
        else:
            new_min = tf.where(first, batch_min, tf.minimum(self.range_min, batch_min))
            new_max = tf.where(first, batch_max, tf.maximum(self.range_max, batch_max))
        self.range_min.assign(new_min)
        self.range_max.assign(new_max)
        self.seen.assign_add(1.0)

    def call(self, x, training=None):
        if self.mode == "off":
            return x
        if self.mode == "observe":
            self._observe(x, ema=False)
            return x
        if self.mode == "train" and training:
            self._observe(tf.stop_gradient(x), ema=True)
        lo, hi = self.quant_range()
        return tf.quantization.fake_quant_with_min_max_vars(x, lo, hi, num_bits=8, narrow_range=self.symmetric)

    def compute_output_shape(self, input_shape):
        return input_shape


def _weight_fake_quant(kernel, per_channel: bool = True):
    """Symmetric 8-bit fake quantization of a kernel, range = its current max |w|.

    Per output channel (last axis) for convolutions, as TFLite quantizes
    CONV_2D; per tensor for dense kernels (as TFMOT's default scheme): the
    converter transposes a FULLY_CONNECTED kernel, and a per-channel range on
    the transposed axis fails ("'tfl.transpose' op has mismatched quantized
    axes of input and output").
    """
    if not per_channel:
        m = tf.stop_gradient(tf.maximum(tf.reduce_max(tf.abs(kernel)), 1e-8))
        return tf.quantization.fake_quant_with_min_max_vars(kernel, -m, m, num_bits=8, narrow_range=True)
    axes = list(range(len(kernel.shape) - 1))
    m = tf.stop_gradient(tf.maximum(tf.reduce_max(tf.abs(kernel), axis=axes), 1e-8))
    return tf.quantization.fake_quant_with_min_max_vars_per_channel(kernel, -m, m, num_bits=8, narrow_range=True)


class _FoldedWeights(keras.layers.Layer):
    """A layer holding a kernel and a bias computed from the trained model (BN folded, scales folded)."""

    def __init__(self, kernel, bias, quantize_weights: bool = False, **kwargs):
        super().__init__(**kwargs)
        self._init = (np.asarray(kernel, np.float32), np.asarray(bias, np.float32))
        self.quantize_weights = quantize_weights

    def build(self, input_shape):
        kernel, bias = self._init
        self.kernel = self.add_weight(name="kernel", shape=kernel.shape,
                                      initializer=keras.initializers.Constant(kernel))
        self.bias = self.add_weight(name="bias", shape=bias.shape, initializer=keras.initializers.Constant(bias))
        self.built = True


class EdgeConv2D(_FoldedWeights):
    """Conv2D (BN folded) + bias + ReLU, with optional per-channel weight fake-quant."""

    def __init__(self, kernel, bias, padding: str = "SAME", quantize_weights: bool = False, **kwargs):
        super().__init__(kernel, bias, quantize_weights, **kwargs)
        self.padding = padding

    def call(self, x):
        kernel = _weight_fake_quant(self.kernel) if self.quantize_weights else self.kernel
        return tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, kernel, 1, self.padding), self.bias))

    def compute_output_shape(self, input_shape):
        out = self._init[0].shape[-1]
        if self.padding == "SAME":
            return (*input_shape[:-1], out)
        kh, kw = self._init[0].shape[:2]
        return (input_shape[0], input_shape[1] - kh + 1, input_shape[2] - kw + 1, out)


class EdgeDense(_FoldedWeights):
    """`x @ W + b` on the last axis (any rank, static shape), optional ReLU and weight fake-quant."""

    def __init__(self, kernel, bias, relu: bool = False, quantize_weights: bool = False, **kwargs):
        super().__init__(kernel, bias, quantize_weights, **kwargs)
        self.relu = relu

    def call(self, x):
        kernel = _weight_fake_quant(self.kernel, per_channel=False) if self.quantize_weights else self.kernel
        shape = x.shape
        flat = tf.reshape(x, [-1, shape[-1]]) if len(shape) != 2 else x
        y = tf.nn.bias_add(tf.matmul(flat, kernel), self.bias)
        if self.relu:
            y = tf.nn.relu(y)
        if len(shape) != 2:
            y = tf.reshape(y, [-1 if shape[0] is None else shape[0], *shape[1:-1], kernel.shape[-1]])
        return y

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self._init[0].shape[-1])


class _Op(keras.layers.Layer):
    """A weightless TF function as a named layer (so the TFLite ops carry readable names)."""

    def __init__(self, fn, **kwargs):
        super().__init__(**kwargs)
        self.fn = fn

    def call(self, *args):
        # Output shapes are inferred by tracing `fn` (TF backend), so no compute_output_shape.
        return self.fn(*args)


# ---------------------------------------------------------------------------
# Building the graphs
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class EdgeGraph:
    """A built edge model and what the export needs to know about it."""

    model: keras.Model
    form: str  # "explicit" or "sliced"
    input_kind: str  # "mfcc" or "waveform"
    quantizers: List[ActivationQuantizer]
    note: str = ""

    def set_quantizer_mode(self, mode: str, only_symmetric: bool = False) -> None:
        for quantizer in self.quantizers:
            if not only_symmetric or quantizer.symmetric:
                quantizer.mode = mode


def _explicit_core(x, weights: CoreWeights, quantizers: List[ActivationQuantizer], qat: bool):
    """The core from standardised MFCC (B, F, T) to probabilities; appends its quantizers."""

    def q(tensor, name, symmetric=False):
        if not qat and not symmetric:
            return tensor
        quantizer = ActivationQuantizer(symmetric=symmetric, name=f"fq_{name}")
        quantizers.append(quantizer)
        return quantizer(tensor)

    batch, n_mfcc, frames = x.shape
    x = keras.layers.Reshape((n_mfcc, frames, 1), name="add_channel")(x)
    x = q(x, "input")
    convs = weights.convs

    def conv(t, name):
        kernel, bias, padding = convs[name]
        return q(EdgeConv2D(kernel, bias, padding, quantize_weights=qat, name=f"{name}_conv")(t), name)

    freq = conv(keras.layers.ZeroPadding2D(((4, 4), (0, 0)), name="freq_pad")(x), "freq")
    time = conv(keras.layers.ZeroPadding2D(((0, 0), (3, 3)), name="time_pad")(x), "time")
    x = keras.layers.Concatenate(name="first_concat")([freq, time])
    x = q(x, "first_concat")
    x = conv(x, "block1")
    x = keras.layers.MaxPooling2D(2, name="block1_pool")(x)
    x = conv(x, "block2")
    x = keras.layers.MaxPooling2D(2, name="block2_pool")(x)
    x = conv(x, "block3")
    x = conv(x, "block4")
    _, height, width, channels = x.shape
    n = height * width
    positions = keras.layers.Reshape((n, channels), name="positions")(x)

    h, d = weights.num_heads, weights.head_dim

    def project(name, pair, symmetric=False):
        y = EdgeDense(*pair, quantize_weights=qat, name=name)(positions)  # (B, N, H·d)
        return q(y, name, symmetric=symmetric)

    query = project("query", weights.query)
    key = project("key", weights.key, symmetric=True)
    value = project("value", weights.value, symmetric=True)
    split = lambda perm: (lambda t: tf.transpose(tf.reshape(t, [-1, n, h, d]), perm))  # noqa: E731
    query = _Op(split([0, 2, 1, 3]), name="query_heads")(query)  # (B, H, N, d)
    key = _Op(split([0, 2, 3, 1]), name="key_heads")(key)  # (B, H, d, N)
    value = _Op(split([0, 2, 1, 3]), name="value_heads")(value)  # (B, H, N, d)
    logits = _Op(tf.matmul, name="attention_logits")(query, key)
    logits = q(logits, "attention_logits")
    if weights.focus_strength is not None:
        strength = weights.focus_strength.reshape(1, h, 1, 1)

        def focus_bias(t):  # (β_h/τ)·max_c x_j, broadcast over queries: (B, H, 1, N)
            amplitude = tf.reshape(tf.reduce_max(t, axis=-1), [-1, 1, 1, n])
            return amplitude * tf.constant(strength)

        bias = _Op(focus_bias, name="focus_attention")(positions)
        bias = q(bias, "focus_bias")
        logits = keras.layers.Add(name="focus_add")([logits, bias])
        logits = q(logits, "focus_logits")
    scores = keras.layers.Softmax(axis=-1, name="attention_softmax")(logits)
    heads = _Op(tf.matmul, name="attention_values")(scores, value)
    heads = q(heads, "heads")  # (B, H, N, d)
    if weights.calibration is not None:
        w1, b1, w2, b2 = weights.calibration
        squeezed = _Op(lambda t: tf.reduce_mean(t, axis=[2, 3]), name="ca_squeeze")(heads)
        squeezed = q(squeezed, "ca_squeeze")
        hidden = q(EdgeDense(w1, b1, relu=True, quantize_weights=qat, name="ca_dense1")(squeezed), "ca_dense1")
        gate = q(EdgeDense(w2, b2, quantize_weights=qat, name="ca_dense2")(hidden), "ca_dense2")
        gate = keras.layers.Activation("sigmoid", name="ca_sigmoid")(gate)  # 2· is in the output kernel
        heads = _Op(lambda t, g: t * tf.reshape(g, [-1, h, 1, 1]), name="ca_scale")(heads, gate)
        heads = q(heads, "ca_scale")
    merged = _Op(lambda t: tf.reshape(tf.transpose(t, [0, 2, 1, 3]), [-1, n, h * d]),
                 name="merge_heads")(heads)
    x = q(EdgeDense(*weights.output, relu=True, quantize_weights=qat, name="attention_output")(merged),
          "attention_output")
    x = _Op(lambda t: tf.reduce_mean(t, axis=1), name="pool")(x)
    x = q(x, "pool")
    x = q(EdgeDense(*weights.classifier, quantize_weights=qat, name="classifier")(x), "classifier_logits")
    return keras.layers.Softmax(name="probabilities")(x)


def _core(x, model, form: str, quantizers, qat: bool):
    if form == "explicit":
        return _explicit_core(x, core_weights(model), quantizers, qat)
    # Sliced: the trained layers after the standardisation, reused as they are.
    tail = keras.Model(model.get_layer(NORMALIZATION_LAYER).output, model.output, name="core")
    return tail(x)


def choose_form(model, form: Optional[str] = None) -> tuple:
    """`(form, note)`: "explicit" where supported (or asked), else "sliced" with the reason."""
    if form not in (None,) + GRAPH_FORMS:
        raise ValueError(f"form must be one of {GRAPH_FORMS}. Received: form={form!r}")
    reason = explicit_support(model)
    if form == "explicit" and reason:
        raise ModelFileError(f"the explicit edge graph does not cover model {model.name!r}: {reason}")
    if form == "sliced":
        return "sliced", "sliced Keras graph (asked for)"
    if reason:
        return "sliced", f"sliced Keras graph: {reason}"
    return "explicit", "explicit graph: BN folded, 1/sqrt(d) and CA's 2x folded, symmetric K/V ranges"


def mfcc_edge_model(model, batch_size: int = 1, form: Optional[str] = None, qat: bool = False) -> EdgeGraph:
    """The edge model on standardised MFCC `(batch_size, n_mfcc, frames)` → probabilities.

    Args:
        model: a trained sercal-keras model (raw MFCC input, standardisation inside).
        batch_size: fixed batch of the edge graph (1 for the edge files).
        form: "explicit", "sliced" or None (explicit where supported).
        qat: insert fake-quant nodes on every activation and weight (training mode).
    """
    check_sercal_model(model)
    form, note = choose_form(model, form)
    if qat and form != "explicit":
        raise ModelFileError(f"quantization-aware training needs the explicit edge graph: {note}")
    n_mfcc, frames = model.input_shape[1:]
    inputs = keras.Input((n_mfcc, frames), batch_size=batch_size, name="mfcc_standardized")
    quantizers: List[ActivationQuantizer] = []
    outputs = _core(inputs, model, form, quantizers, qat)
    edge = keras.Model(inputs, outputs, name="edge")  # short: it prefixes every tensor name in the file
    return EdgeGraph(edge, form, "mfcc", quantizers, note)


def _standardized_waveform_mfcc(inputs, feature_config, mean: np.ndarray, std: np.ndarray):
    """The in-graph `MFCC` layer (float32 always) then `(x - mean) / std`: (B, F, T)."""
    from sercal_keras.audio import MFCC

    mfcc = MFCC.from_feature_config(feature_config, name="mfcc")(inputs)  # (B, F, T, 1)
    return _Op(
        lambda t: (tf.squeeze(t, -1) - tf.constant(mean.reshape(1, -1, 1))) * tf.constant(
            (1.0 / std).reshape(1, -1, 1)),
        name="standardize",
    )(mfcc)


def _check_feature_shape(model, feature_config) -> None:
    n_mfcc, frames = model.input_shape[1:]
    if tuple(feature_config.feature_shape) != (n_mfcc, frames):
        raise ModelFileError(
            f"feature config gives MFCC of shape {feature_config.feature_shape} but model {model.name!r} "
            f"takes {(n_mfcc, frames)}; the model card and the model disagree."
        )


def waveform_edge_model(model, feature_config, batch_size: int = 1, form: Optional[str] = None,
                        qat: bool = False) -> EdgeGraph:
    """The end-to-end model: waveform `(batch_size, segment_samples)` → probabilities.

    The in-graph `MFCC` layer (float32 always) and the model's standardisation
    (as `(x - mean) / std`) precede the same core as `mfcc_edge_model`.
    """
    check_sercal_model(model)
    form, note = choose_form(model, form)
    if qat and form != "explicit":
        raise ModelFileError(f"quantization-aware training needs the explicit edge graph: {note}")
    _check_feature_shape(model, feature_config)
    mean, std = normalization_stats(model)
    inputs = keras.Input((feature_config.segment_samples,), batch_size=batch_size, name="waveform")
    standardized = _standardized_waveform_mfcc(inputs, feature_config, mean, std)
    quantizers: List[ActivationQuantizer] = []
    outputs = _core(standardized, model, form, quantizers, qat)
    edge = keras.Model(inputs, outputs, name="edge")
    return EdgeGraph(edge, form, "waveform", quantizers, note)


def ensemble_edge_model(models: Sequence[keras.Model], input_kind: str, feature_config, batch_size: int = 1,
                        form: Optional[str] = None) -> EdgeGraph:
    """One edge graph averaging the probabilities of several models (a seed ensemble in one file).

    The input is that of `mfcc_edge_model` (MFCC standardised with the first
    member's statistics) or of `waveform_edge_model`; each member gets its own
    core (as a nested model `member<i>`), preceded by a per-row affine map when
    its own standardisation differs from the first member's (members trained
    with different validation speakers do), so every member sees exactly its
    own inputs. The output is the mean of the members' probabilities, as
    `sercal_keras.EmotionEnsemble` and `edge_demo --ensemble` compute it.

    Args:
        models: two or more trained sercal-keras models with the same input
            shape and number of classes.
        input_kind: "mfcc" or "waveform".
        feature_config: the members' `FeatureConfig` (the waveform front-end).
        batch_size: fixed batch of the edge graph (1 for the edge files).
        form: "explicit", "sliced" or None (explicit where supported), per member.

    Returns:
        An `EdgeGraph` whose quantizers are all members' (for int8 calibration).

    Example:
    >>> graph = ensemble_edge_model([model_a, model_b, model_c], "mfcc", config)  # doctest: +SKIP
    """
    if input_kind not in ("mfcc", "waveform"):
        raise ValueError(f"input_kind must be 'mfcc' or 'waveform'. Received: input_kind={input_kind!r}")
    if len(models) < 2:
        raise ModelFileError(f"an ensemble needs at least 2 models, got {len(models)}")
    for model in models:
        check_sercal_model(model)
        _check_feature_shape(model, feature_config)
    classes = {int(model.output_shape[-1]) for model in models}
    if len(classes) != 1:
        raise ModelFileError(f"the ensemble's models have different numbers of classes: {sorted(classes)}")
    forms = [choose_form(model, form) for model in models]
    mean, std = normalization_stats(models[0])
    shape = tuple(models[0].input_shape[1:])
    if input_kind == "mfcc":
        inputs = keras.Input(shape, batch_size=batch_size, name="mfcc_standardized")
        standardized = inputs
    else:
        inputs = keras.Input((feature_config.segment_samples,), batch_size=batch_size, name="waveform")
        standardized = _standardized_waveform_mfcc(inputs, feature_config, mean, std)
    quantizers: List[ActivationQuantizer] = []
    outputs = []
    for index, (model, (member_form, _)) in enumerate(zip(models, forms)):
        member_input = keras.Input(shape, name=f"member{index}_input")
        x = member_input
        own_mean, own_std = normalization_stats(model)
        if not (np.allclose(own_mean, mean, rtol=1e-6, atol=1e-6) and np.allclose(own_std, std, rtol=1e-6)):
            # (raw - own_mean) / own_std from (raw - mean) / std, per row
            scale = (std / own_std).astype(np.float32).reshape(1, -1, 1)
            shift = ((mean - own_mean) / own_std).astype(np.float32).reshape(1, -1, 1)
            x = _Op(lambda t, a=scale, b=shift: t * tf.constant(a) + tf.constant(b), name="restandardize")(x)
        core = keras.Model(member_input, _core(x, model, member_form, quantizers, False), name=f"member{index}")
        outputs.append(core(standardized))
    probabilities = keras.layers.Average(name="ensemble_mean")(outputs)
    edge = keras.Model(inputs, probabilities, name="edge")
    member_forms = sorted({member_form for member_form, _ in forms})
    note = (f"ensemble of {len(models)} models, the mean of their probabilities; members: "
            + "; ".join(sorted({member_note for _, member_note in forms})))
    return EdgeGraph(edge, member_forms[0] if len(member_forms) == 1 else "mixed", input_kind, quantizers, note)


def explicit_matches(model, edge: EdgeGraph, samples: np.ndarray, atol: float = 1e-4) -> float:
    """Max |Δ probability| between the edge graph (float, quantizers off) and the Keras model.

    `samples` are raw MFCC `(n, F, T)`; they are standardised for the MFCC graph.
    """
    mean, std = normalization_stats(model)
    reference = np.asarray(model.predict(samples, verbose=0, batch_size=32))
    standardized = ((samples - mean[None, :, None]) / std[None, :, None]).astype(np.float32)
    got = np.concatenate([np.asarray(edge.model(standardized[i:i + 1], training=False))
                          for i in range(len(samples))])
    return float(np.max(np.abs(got - reference)))


def standardize(features: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Raw MFCC `(n, F, T)` → standardised, as the MFCC edge model expects."""
    mean = np.asarray(mean, np.float32).reshape(1, -1, 1)
    std = np.asarray(std, np.float32).reshape(1, -1, 1)
    return ((np.asarray(features, np.float32) - mean) / std).astype(np.float32)
