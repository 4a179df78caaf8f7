"""The baseline and first-attempt layers kept for side-by-side comparisons."""

import keras
import numpy as np

from sercal_keras.layers import ConvCalibration, FeatureGateFocus, HeadFusionAttention
from tests.layer_test_utils import run_layer_test


def test_head_fusion_contract():
    run_layer_test(HeadFusionAttention, {"num_heads": 2, "head_dim": 3}, (2, 6, 4), (2, 6, 2, 3), 6)


def test_head_fusion_matches_numpy():
    x = np.random.default_rng(0).normal(size=(2, 5, 4)).astype("float32")
    layer = HeadFusionAttention(num_heads=2, head_dim=3)
    out = keras.ops.convert_to_numpy(layer(x))
    wq, bq, wk, bk, wv, bv = layer.get_weights()
    q = np.einsum("bnc,chd->bnhd", x, wq) + bq
    k = np.einsum("bnc,chd->bnhd", x, wk) + bk
    v = np.einsum("bnc,chd->bnhd", x, wv) + bv
    e = np.exp(q * k - (q * k).max(-1, keepdims=True))
    np.testing.assert_allclose(out, e / e.sum(-1, keepdims=True) * v, rtol=1e-4, atol=1e-6)


def test_feature_gate_contract_and_form():
    run_layer_test(FeatureGateFocus, {"gamma": 1.0, "temperature": 1.0}, (2, 6, 4), (2, 6, 4), 2)
    x = np.random.default_rng(0).uniform(0, 0.1, size=(1, 6, 3)).astype("float32")
    x[0, 2, 1] = 2.0
    out = keras.ops.convert_to_numpy(FeatureGateFocus(gamma=1.0)(x))
    np.testing.assert_allclose(out[0, 2], 2.0 * x[0, 2], rtol=1e-5)  # loudest position doubled
    np.testing.assert_allclose(keras.ops.convert_to_numpy(FeatureGateFocus(gamma=0.0)(x)), x)


def test_conv_calibration_contract_and_range():
    run_layer_test(ConvCalibration, {"kernel_size": 3}, (2, 6, 2, 3), (2, 6, 2, 3), 2)
    heads = np.random.default_rng(0).normal(size=(1, 6, 2, 3)).astype("float32")
    ratio = keras.ops.convert_to_numpy(ConvCalibration()(heads)) / heads
    assert np.all(ratio > 0) and np.all(ratio < 1)
