"""One builder for every model variant: the paper preset and its ablations."""

from __future__ import annotations

from typing import Optional, Sequence

import keras
import numpy as np

from sercal_keras.layers import (
    CalibrationAttention,
    ConvCalibration,
    FeatureGateFocus,
    FocusAttention,
    HeadFusionAttention,
    InputEnergy,
    MultiHeadSelfAttention,
)
from sercal_keras.models.backbone import cnn_backbone

#: Variant name → (attention, focus?, calibration?). `fa_ca` is the paper preset.
VARIANTS = {
    "fa_ca": ("mhsa", True, True),
    "mhsa": ("mhsa", False, False),
    "fa": ("mhsa", True, False),
    "ca": ("mhsa", False, True),
    "head_fusion": ("head_fusion", False, False),
}
FOCUS_FORMS = ("prior", "gate")
FOCUS_SOURCES = ("cnn", "energy")
CALIBRATION_FORMS = ("se", "conv")


def build_model(
    variant: str = "fa_ca",
    num_classes: int = 4,
    input_shape: Sequence[int] = (26, 63),
    num_heads: int = 4,
    head_dim: int = 64,
    dropout: float = 0.0,
    attention_dropout: float = 0.0,
    feature_mean: Optional[Sequence[float]] = None,
    feature_variance: Optional[Sequence[float]] = None,
    focus_form: str = "prior",
    focus_source: str = "cnn",
    focus_prior_init: float = 0.0,
    calibration_form: str = "se",
    calibration_context: Optional[int] = None,
    batch_norm_momentum: float = 0.99,
    name: Optional[str] = None,
) -> keras.Model:
    """Builds the functional CNN + attention model for MFCC segments.

    The graph (DESIGN.md §1): raw MFCC `(batch, n_mfcc, frames)` → per-
    coefficient standardisation (a `Normalization` layer holding the training
    statistics, so a saved model is self-contained) → CNN backbone → the
    `F·T` time–frequency positions → [FocusAttention bias] → multi-head
    self-attention (per-head outputs) → [CalibrationAttention] → output
    projection → ReLU → global average pooling → [dropout] → softmax.

    Args:
        variant: one of `VARIANTS`: `"fa_ca"` (paper preset: FA + CA + MHSA),
            `"mhsa"`, `"fa"`, `"ca"`, or `"head_fusion"` (Xu et al. baseline).
        num_classes: int, number of emotion classes.
        input_shape: `(n_mfcc, frames)` of one segment.
        num_heads: int, attention heads.
        head_dim: int, size of each head.
        dropout: float, dropout before the classifier.
        attention_dropout: float, dropout on the attention probabilities.
        feature_mean: per-coefficient mean `(n_mfcc,)` fitted on training data;
            None for 0 (e.g. before fitting).
        feature_variance: per-coefficient variance `(n_mfcc,)`; None for 1.
        focus_form: `"prior"` (adopted: bias on the attention logits) or
            `"gate"` (first attempt: multiplicative feature gate).
        focus_source: where the `"prior"` reads amplitude: `"cnn"` (adopted:
            the feature map's maximum over channels) or `"energy"` (the
            input's MFCC c0, i.e. frame log-energy, via `InputEnergy`).
        focus_prior_init: initial per-head strength `β` of the `"prior"`
            (0 = the adopted identity start, i.e. plain MHSA at step 0; e.g.
            0.6 with the amplitude range of ~3.3 seen on EmoDB gives the
            loudest position of a segment ~7× the attention odds of the
            quietest). Still learned.
        calibration_form: `"se"` (adopted: SE gate over heads) or `"conv"`
            (first attempt: per-position sigmoid Conv1D).
        calibration_context: None (one weight per head) or an odd window of
            positions for the local-context SE gate.
        batch_norm_momentum: momentum of the backbone's BatchNorm moving
            statistics (Keras' default 0.99; 0.9 is PyTorch's default, and
            follows the weights faster when an epoch has few steps).
        name: model name; defaults to `sercal_<variant>`.

    Returns:
        An uncompiled functional `keras.Model` mapping `(batch, n_mfcc,
        frames)` float32 MFCC to `(batch, num_classes)` probabilities.

    Example:
    >>> model = build_model("fa_ca", num_classes=7)
    >>> model.output_shape
    (None, 7)
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {sorted(VARIANTS)}. Received: variant={variant!r}")
    if focus_form not in FOCUS_FORMS:
        raise ValueError(f"focus_form must be one of {FOCUS_FORMS}. Received: focus_form={focus_form!r}")
    if focus_source not in FOCUS_SOURCES:
        raise ValueError(f"focus_source must be one of {FOCUS_SOURCES}. Received: focus_source={focus_source!r}")
    if focus_source != "cnn" and focus_form != "prior":
        raise ValueError(f"focus_source={focus_source!r} needs focus_form='prior'. Received: focus_form={focus_form!r}")
    if isinstance(focus_prior_init, bool) or not isinstance(focus_prior_init, (int, float)) or not np.isfinite(
        focus_prior_init
    ):
        raise ValueError(f"focus_prior_init must be a finite number. Received: focus_prior_init={focus_prior_init!r}")
    if focus_prior_init != 0.0 and focus_form != "prior":
        raise ValueError(
            f"focus_prior_init needs focus_form='prior'. Received: focus_form={focus_form!r}, "
            f"focus_prior_init={focus_prior_init}"
        )
    if calibration_form not in CALIBRATION_FORMS:
        raise ValueError(
            f"calibration_form must be one of {CALIBRATION_FORMS}. Received: calibration_form={calibration_form!r}"
        )
    if not 0 <= batch_norm_momentum < 1:
        raise ValueError(f"batch_norm_momentum must lie in [0, 1). Received: batch_norm_momentum={batch_norm_momentum}")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2. Received: num_classes={num_classes}")
    n_mfcc, frames = (int(d) for d in input_shape)
    attention, use_focus, use_calibration = VARIANTS[variant]

    mean = np.zeros(n_mfcc, "float32") if feature_mean is None else np.asarray(feature_mean, "float32")
    variance = np.ones(n_mfcc, "float32") if feature_variance is None else np.asarray(feature_variance, "float32")
    if mean.shape != (n_mfcc,) or variance.shape != (n_mfcc,):
        raise ValueError(
            f"feature_mean and feature_variance must have shape ({n_mfcc},). "
            f"Received: {mean.shape} and {variance.shape}"
        )

    inputs = keras.Input((n_mfcc, frames), name="mfcc")
    standardized = keras.layers.Normalization(
        axis=1, mean=mean.tolist(), variance=variance.tolist(), name="mfcc_standardization"
    )(inputs)
    x = keras.layers.Reshape((n_mfcc, frames, 1), name="add_channel")(standardized)
    x = cnn_backbone(x, batch_norm_momentum=batch_norm_momentum)
    _, height, width, channels = x.shape
    positions = keras.layers.Reshape((height * width, channels), name="positions")(x)

    attention_bias = None
    if use_focus and focus_form == "gate":
        positions = FeatureGateFocus(name="focus_attention")(positions)
    elif use_focus:
        amplitude = None
        if focus_source == "energy":
            amplitude = InputEnergy(grid=(height, width), name="input_energy")(standardized)
        attention_bias = FocusAttention(
            num_heads=num_heads,
            beta_initializer=keras.initializers.Constant(float(focus_prior_init)),
            name="focus_attention",
        )(positions, amplitude=amplitude)

    if attention == "head_fusion":
        heads = HeadFusionAttention(num_heads=num_heads, head_dim=head_dim, name="head_fusion_attention")(positions)
    else:
        heads = MultiHeadSelfAttention(
            num_heads=num_heads, head_dim=head_dim, dropout=attention_dropout, name="self_attention"
        )(positions, attention_bias=attention_bias)

    if use_calibration and calibration_form == "conv":
        heads = ConvCalibration(name="calibration_attention")(heads)
    elif use_calibration:
        heads = CalibrationAttention(context_size=calibration_context, name="calibration_attention")(heads)

    x = keras.layers.EinsumDense("bnhd,hdc->bnc", output_shape=(height * width, channels), bias_axes="c",
                                 name="attention_output")(heads)
    x = keras.layers.ReLU(name="attention_relu")(x)
    x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="classifier", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=name or f"sercal_{variant}")
