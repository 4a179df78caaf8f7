"""Multi-head self-attention that exposes its per-head outputs."""

from __future__ import annotations

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="sercal_keras")
class MultiHeadSelfAttention(keras.layers.Layer):
    """Scaled dot-product self-attention that returns one output per head.

    Unlike `keras.layers.MultiHeadAttention`, this layer stops before the output
    projection and returns the per-head outputs `(batch, positions, heads,
    head_dim)`, so that `CalibrationAttention` can weight each head before the
    heads are mixed. It also accepts an additive `attention_bias` on the logits,
    which is how `FocusAttention` steers attention toward loud positions
    (Kim et al., 2022). With neither, it is the attention of Vaswani et al.

    Args:
        num_heads: int, number of attention heads.
        head_dim: int, size of each head's query, key and value.
        dropout: float in [0, 1), dropout on the attention probabilities.
        use_bias: bool, whether the query and value projections have biases
            (a key bias is cancelled by the softmax, so there is none).
        kernel_initializer: initializer of the projection kernels.
        bias_initializer: initializer of the projection biases.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: tensor `(batch, positions, channels)`.
        attention_bias: optional tensor added to the attention logits, shape
            broadcastable to `(batch, heads, positions, positions)`, e.g.
            `(batch, heads, 1, positions)` for a bias per key.
        return_attention_scores: bool, also return the attention probabilities.
        training: bool, whether dropout is active.

    Returns:
        Per-head outputs `(batch, positions, heads, head_dim)`, and with
        `return_attention_scores=True` also the probabilities
        `(batch, heads, positions, positions)` (queries × keys).

    Example:
    >>> layer = MultiHeadSelfAttention(num_heads=4, head_dim=16)
    >>> heads = layer(np.zeros((2, 90, 80), "float32"))
    >>> tuple(heads.shape)
    (2, 90, 4, 16)

    Reference:
    - [Vaswani et al., 2017](https://arxiv.org/abs/1706.03762)
    - [Kim et al., 2022](https://arxiv.org/abs/2208.10491)
    """

    def __init__(
        self,
        num_heads: int = 4,
        head_dim: int = 64,
        dropout: float = 0.0,
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(num_heads, int) or num_heads < 1:
            raise ValueError(f"num_heads must be a positive int. Received: num_heads={num_heads}")
        if not isinstance(head_dim, int) or head_dim < 1:
            raise ValueError(f"head_dim must be a positive int. Received: head_dim={head_dim}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1). Received: dropout={dropout}")
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.dropout = dropout
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def build(self, inputs_shape):
        if len(inputs_shape) != 3:
            raise ValueError(
                "MultiHeadSelfAttention expects inputs of shape (batch, positions, "
                f"channels). Received: inputs_shape={inputs_shape}"
            )
        projection = dict(
            equation="bnc,chd->bnhd",
            output_shape=(None, self.num_heads, self.head_dim),
            bias_axes="hd" if self.use_bias else None,
            kernel_initializer=self.kernel_initializer,
            bias_initializer=self.bias_initializer,
            dtype=self.dtype_policy,
        )
        self.query_dense = keras.layers.EinsumDense(name="query", **projection)
        # No key bias: it adds q·b_k, the same for every key of a query, which
        # the softmax over keys cancels; it would get no gradient.
        self.key_dense = keras.layers.EinsumDense(name="key", **{**projection, "bias_axes": None})
        self.value_dense = keras.layers.EinsumDense(name="value", **projection)
        for dense in (self.query_dense, self.key_dense, self.value_dense):
            dense.build(inputs_shape)
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)
        self.built = True

    def call(self, inputs, attention_bias=None, return_attention_scores=False, training=None):
        query = self.query_dense(inputs)
        key = self.key_dense(inputs)
        value = self.value_dense(inputs)
        # Scale the query, not the logits: one multiply on (B, N, H, d) instead of (B, H, N, N).
        query = ops.multiply(query, ops.cast(1.0 / math.sqrt(self.head_dim), query.dtype))
        logits = ops.einsum("bqhd,bkhd->bhqk", query, key)
        if attention_bias is not None:
            logits = ops.add(logits, ops.cast(attention_bias, logits.dtype))
        scores = ops.softmax(logits, axis=-1)
        dropped = self.dropout_layer(scores, training=training)
        heads = ops.einsum("bhqk,bkhd->bqhd", dropped, value)
        if return_attention_scores:
            return heads, scores
        return heads

    def compute_output_shape(self, inputs_shape, attention_bias_shape=None):
        return (inputs_shape[0], inputs_shape[1], self.num_heads, self.head_dim)

    def compute_output_spec(self, inputs, attention_bias=None, return_attention_scores=False, training=None):
        batch, positions = inputs.shape[0], inputs.shape[1]
        heads = keras.KerasTensor((batch, positions, self.num_heads, self.head_dim), dtype=self.compute_dtype)
        if return_attention_scores:
            scores = keras.KerasTensor((batch, self.num_heads, positions, positions), dtype=self.compute_dtype)
            return heads, scores
        return heads

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "head_dim": self.head_dim,
                "dropout": self.dropout,
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            }
        )
        return config
