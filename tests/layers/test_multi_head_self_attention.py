import keras
import numpy as np
import pytest

from sercal_keras.layers import MultiHeadSelfAttention
from tests.layer_test_utils import run_layer_test


def test_layer_contract():
    run_layer_test(
        MultiHeadSelfAttention,
        init_kwargs={"num_heads": 2, "head_dim": 8, "dropout": 0.0},
        input_shape=(3, 10, 12),
        expected_output_shape=(3, 10, 2, 8),
        expected_num_trainable_weights=5,
    )


def _numpy_attention(layer, x, bias=None):
    """Reference: per-head softmax(QK^T/sqrt(d) + bias) V written out with numpy loops."""
    wq, bq, wk, wv, bv = [np.asarray(w) for w in layer.get_weights()]
    batch, positions, _ = x.shape
    heads = np.zeros((batch, positions, layer.num_heads, layer.head_dim))
    for b in range(batch):
        for h in range(layer.num_heads):
            q = x[b] @ wq[:, h] + bq[h]
            k = x[b] @ wk[:, h]
            v = x[b] @ wv[:, h] + bv[h]
            logits = q @ k.T / np.sqrt(layer.head_dim)
            if bias is not None:
                logits = logits + np.broadcast_to(bias[b, h], logits.shape)
            probs = np.exp(logits - logits.max(-1, keepdims=True))
            probs /= probs.sum(-1, keepdims=True)
            heads[b, :, h] = probs @ v
    return heads


@pytest.mark.parametrize("with_bias", [False, True])
def test_matches_numpy_reference_and_projection(with_bias):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 7, 5)).astype("float32")
    layer = MultiHeadSelfAttention(num_heads=3, head_dim=4)
    bias = rng.normal(size=(2, 3, 1, 7)).astype("float32") * 3 if with_bias else None
    heads = keras.ops.convert_to_numpy(layer(x, attention_bias=bias))
    expected = _numpy_attention(layer, x, bias)
    np.testing.assert_allclose(heads, expected, rtol=1e-4, atol=1e-5)
    # Heads concatenated and projected: the model's EinsumDense equals a plain matmul on the concat.
    projection = keras.layers.EinsumDense("bnhd,hdc->bnc", output_shape=(7, 6), bias_axes="c")
    projected = keras.ops.convert_to_numpy(projection(heads))
    kernel, proj_bias = [np.asarray(w) for w in projection.get_weights()]
    concat = expected.reshape(2, 7, 12)
    np.testing.assert_allclose(projected, concat @ kernel.reshape(12, 6) + proj_bias, rtol=1e-4, atol=1e-5)


def test_returns_scores_that_are_distributions():
    x = np.random.default_rng(1).normal(size=(2, 6, 4)).astype("float32")
    heads, scores = MultiHeadSelfAttention(num_heads=2, head_dim=3)(x, return_attention_scores=True)
    scores = keras.ops.convert_to_numpy(scores)
    assert scores.shape == (2, 2, 6, 6)
    np.testing.assert_allclose(scores.sum(-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("kwargs", [{"num_heads": 0}, {"head_dim": -1}, {"dropout": 1.0}])
def test_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError, match="Received"):
        MultiHeadSelfAttention(**kwargs)
