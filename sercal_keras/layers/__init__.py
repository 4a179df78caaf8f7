"""Keras layers of sercal-keras. Importing this module registers them all."""

from sercal_keras.audio.mfcc_layer import MFCC  # the in-graph front-end, for waveform-input models

from sercal_keras.layers.calibration_attention import CalibrationAttention
from sercal_keras.layers.conv_calibration import ConvCalibration
from sercal_keras.layers.feature_gate_focus import FeatureGateFocus
from sercal_keras.layers.focus_attention import FocusAttention
from sercal_keras.layers.head_fusion_attention import HeadFusionAttention
from sercal_keras.layers.input_energy import InputEnergy
from sercal_keras.layers.multi_head_self_attention import MultiHeadSelfAttention

__all__ = [
    "CalibrationAttention",
    "ConvCalibration",
    "FeatureGateFocus",
    "FocusAttention",
    "HeadFusionAttention",
    "InputEnergy",
    "MFCC",
    "MultiHeadSelfAttention",
]
