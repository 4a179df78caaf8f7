"""Head-fusion attention of Xu et al. (2020), the baseline of this line of work."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="sercal_keras")
class HeadFusionAttention(keras.layers.Layer):
    """Element-wise attention per head: `softmax(Q ⊙ K) ⊙ V`.

    Xu et al. ("Head Fusion", 2020) replace dot-product attention with an
    element-wise form: for every head and position, the query and key are
    multiplied element-wise, normalised with a softmax over the head's feature
    dimension (PyTorch's implicit `dim=1` on their `(batch, channels, F, T)`
    maps), and multiplied with the value. Positions never look at one another.
    It is kept as the `head_fusion` variant so that baseline can be reproduced
    side by side with MHSA. Its output has the same per-head layout as
    `MultiHeadSelfAttention`, so the rest of the model is shared.

    Args:
        num_heads: int, number of heads.
        head_dim: int, size of each head.
        kernel_initializer: initializer of the projection kernels.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: tensor `(batch, positions, channels)`.

    Returns:
        Per-head outputs `(batch, positions, heads, head_dim)`.

    Example:
    >>> heads = HeadFusionAttention(num_heads=4, head_dim=16)(np.zeros((2, 90, 80), "float32"))
    >>> tuple(heads.shape)
    (2, 90, 4, 16)

    Reference:
    - [Xu et al., 2020, Head Fusion](https://arxiv.org/abs/2009.05264)
    """

    def __init__(self, num_heads: int = 4, head_dim: int = 64, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if not isinstance(num_heads, int) or num_heads < 1:
            raise ValueError(f"num_heads must be a positive int. Received: num_heads={num_heads}")
        if not isinstance(head_dim, int) or head_dim < 1:
            raise ValueError(f"head_dim must be a positive int. Received: head_dim={head_dim}")
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, inputs_shape):
        if len(inputs_shape) != 3:
            raise ValueError(
                "HeadFusionAttention expects inputs of shape (batch, positions, channels). "
                f"Received: inputs_shape={inputs_shape}"
            )
        projection = dict(
            equation="bnc,chd->bnhd",
            output_shape=(None, self.num_heads, self.head_dim),
            bias_axes="hd",
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
        )
        self.query_dense = keras.layers.EinsumDense(name="query", **projection)
        self.key_dense = keras.layers.EinsumDense(name="key", **projection)
        self.value_dense = keras.layers.EinsumDense(name="value", **projection)
        for dense in (self.query_dense, self.key_dense, self.value_dense):
            dense.build(inputs_shape)
        self.built = True

    def call(self, inputs):
        weights = ops.softmax(ops.multiply(self.query_dense(inputs), self.key_dense(inputs)), axis=-1)
        return ops.multiply(weights, self.value_dense(inputs))

    def compute_output_shape(self, inputs_shape):
        return (inputs_shape[0], inputs_shape[1], self.num_heads, self.head_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "head_dim": self.head_dim,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
