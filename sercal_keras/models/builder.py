"""One builder for every model variant: the paper preset and its ablations."""

from __future__ import annotations

import functools
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
    attention_blocks: int = 1,
    name: Optional[str] = None,
) -> keras.Model:
    """Builds the functional CNN + attention model for MFCC segments.

    The graph (DESIGN.md §1): raw MFCC `(batch, n_mfcc, frames)` → per-
    coefficient standardisation (a `Normalization` layer holding the training
    statistics, so a saved model is self-contained) → CNN backbone → the
    `F·T` time–frequency positions → [FocusAttention bias] → multi-head
    self-attention (per-head outputs) → [CalibrationAttention] → output
    projection → ReLU → global average pooling → [dropout] → softmax.
    With `attention_blocks > 1` the attention block (with its FA and CA) is
    repeated on its own output as residual blocks that start as the identity.

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
        attention_blocks: int, how many attention blocks (each with the
            variant's FA and CA) follow the backbone. The first is the paper's;
            each further one adds its output projection to its input
            (residual) and starts with that projection at zero, so the model
            starts as the one-block model. Layer names of block k ≥ 2 end in
            `_k` (`focus_attention_2`, ...).
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
    if isinstance(attention_blocks, bool) or not isinstance(attention_blocks, int) or attention_blocks < 1:
        raise ValueError(f"attention_blocks must be an int >= 1. Received: attention_blocks={attention_blocks!r}")
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

    energy = None
    if use_focus and focus_form == "prior" and focus_source == "energy":
        energy = InputEnergy(grid=(height, width), name="input_energy")(standardized)
    block = functools.partial(
        _attention_block, attention=attention, use_focus=use_focus, use_calibration=use_calibration,
        num_heads=num_heads, head_dim=head_dim, attention_dropout=attention_dropout, focus_form=focus_form,
        energy=energy, focus_prior_init=focus_prior_init, calibration_form=calibration_form,
        calibration_context=calibration_context,
    )
    x = block(positions, suffix="")
    for index in range(2, attention_blocks + 1):
        x = block(x, suffix=f"_{index}")
    x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="classifier", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=name or f"sercal_{variant}")


def _attention_block(positions, suffix: str, attention: str, use_focus: bool, use_calibration: bool,
                     num_heads: int, head_dim: int, attention_dropout: float, focus_form: str, energy,
                     focus_prior_init: float, calibration_form: str, calibration_context: Optional[int]):
    """[FA] → attention → [CA] → output projection, over `(batch, positions, channels)`.

    The first block (`suffix=""`) ends in a ReLU, as in the paper. A further
    block adds its projection to its input instead, with the projection
    starting at zero: it starts as the identity, and no ReLU sits on the
    residual branch (a ReLU at exactly 0 would pass no gradient to it).
    """
    channels = positions.shape[-1]
    first = not suffix
    attention_bias = None
    x = positions
    if use_focus and focus_form == "gate":
        x = FeatureGateFocus(name=f"focus_attention{suffix}")(x)
    elif use_focus:
        attention_bias = FocusAttention(
            num_heads=num_heads,
            beta_initializer=keras.initializers.Constant(float(focus_prior_init)),
            name=f"focus_attention{suffix}",
        )(x, amplitude=energy)

    if attention == "head_fusion":
        heads = HeadFusionAttention(num_heads=num_heads, head_dim=head_dim, name=f"head_fusion_attention{suffix}")(x)
    else:
        heads = MultiHeadSelfAttention(
            num_heads=num_heads, head_dim=head_dim, dropout=attention_dropout, name=f"self_attention{suffix}"
        )(x, attention_bias=attention_bias)

    if use_calibration and calibration_form == "conv":
        heads = ConvCalibration(name=f"calibration_attention{suffix}")(heads)
    elif use_calibration:
        heads = CalibrationAttention(context_size=calibration_context, name=f"calibration_attention{suffix}")(heads)

    projection = keras.layers.EinsumDense(
        "bnhd,hdc->bnc", output_shape=(positions.shape[1], channels), bias_axes="c",
        kernel_initializer="glorot_uniform" if first else "zeros", name=f"attention_output{suffix}",
    )(heads)
    if first:
        return keras.layers.ReLU(name="attention_relu")(projection)
    return keras.layers.Add(name=f"attention_residual{suffix}")([positions, projection])
