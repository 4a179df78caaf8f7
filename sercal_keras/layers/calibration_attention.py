"""Calibration-Attention: a learned weight for every attention head."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="sercal_keras")
class CalibrationAttention(keras.layers.Layer):
    """Re-weights attention heads with a squeeze-and-excitation gate.

    Kim et al. (2022) add Calibration-Attention to modulate the information
    flow by giving each attention head its own weight, and to use the
    surrounding context better. This is our reconstruction (the paper's full
    text is not available): the squeeze `s_h` is the mean of head `h`'s output
    over positions and dims; the excitation is
    `w = 2 · sigmoid(W2 · relu(W1 · s + b1) + b2)` with `W1, W2: heads → heads`;
    the output is the head outputs times `w` (broadcast over positions and dims).

    `W2` and `b2` start at zero, so `w = 1` and the layer starts as the identity.
    `w` lies in (0, 2): a head can be amplified or switched off (`b2_h → -∞`).
    With `context_size=k`, the squeeze is taken per position over a window of
    `k` neighbouring positions (padding excluded), so each position gets its own
    head weights from its local context.

    Args:
        context_size: None for one weight per head and segment, or an odd int
            `k >= 1` for per-position weights from a window of `k` positions.
        kernel_initializer: initializer of `W1`.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: per-head outputs `(batch, positions, heads, head_dim)` from
            `MultiHeadSelfAttention`.
        return_weights: bool, also return the head weights `w`.

    Returns:
        The re-weighted head outputs, same shape as `inputs`; with
        `return_weights=True` also `w`: `(batch, heads)`, or
        `(batch, positions, heads)` with `context_size`.

    Example:
    >>> heads = np.random.rand(2, 90, 4, 16).astype("float32")
    >>> out = CalibrationAttention()(heads)
    >>> bool(np.allclose(out, heads))  # identity at initialisation
    True

    Reference:
    - [Kim et al., 2022](https://arxiv.org/abs/2208.10491)
    - [Hu et al., 2018, Squeeze-and-Excitation](https://arxiv.org/abs/1709.01507)
    """

    def __init__(self, context_size: int | None = None, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if context_size is not None and (
            not isinstance(context_size, int) or context_size < 1 or context_size % 2 == 0
        ):
            raise ValueError(
                f"context_size must be None or a positive odd int. Received: context_size={context_size}"
            )
        self.context_size = context_size
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, inputs_shape):
        if len(inputs_shape) != 4:
            raise ValueError(
                "CalibrationAttention expects inputs of shape (batch, positions, heads, "
                f"head_dim). Received: inputs_shape={inputs_shape}"
            )
        num_heads = inputs_shape[2]
        self.squeeze_dense = keras.layers.Dense(
            num_heads, activation="relu", kernel_initializer=self.kernel_initializer,
            name="squeeze", dtype=self.dtype_policy,
        )
        # Zero kernel and bias: w = 2·sigmoid(0) = 1, the identity at the start.
        self.excite_dense = keras.layers.Dense(
            num_heads, kernel_initializer="zeros", bias_initializer="zeros",
            name="excite", dtype=self.dtype_policy,
        )
        squeezed_shape = (inputs_shape[0], num_heads) if self.context_size is None else (
            inputs_shape[0], inputs_shape[1], num_heads)
        self.squeeze_dense.build(squeezed_shape)
        self.excite_dense.build(squeezed_shape)
        self.built = True

    def head_weights(self, inputs):
        """The head weights `w` in (0, 2): `(batch, heads)` or `(batch, positions, heads)`."""
        if self.context_size is None:
            squeezed = ops.mean(inputs, axis=(1, 3))
        else:
            per_position = ops.mean(inputs, axis=3)  # (batch, positions, heads)
            squeezed = ops.average_pool(
                per_position, pool_size=self.context_size, strides=1, padding="same"
            )
        return 2.0 * ops.sigmoid(self.excite_dense(self.squeeze_dense(squeezed)))

    def call(self, inputs, return_weights=False):
        weights = self.head_weights(inputs)
        if self.context_size is None:
            broadcast = ops.expand_dims(ops.expand_dims(weights, 1), -1)  # (B, 1, H, 1)
        else:
            broadcast = ops.expand_dims(weights, -1)  # (B, N, H, 1)
        outputs = ops.multiply(inputs, ops.cast(broadcast, inputs.dtype))
        if return_weights:
            return outputs, weights
        return outputs

    def compute_output_shape(self, inputs_shape):
        return tuple(inputs_shape)

    def compute_output_spec(self, inputs, return_weights=False):
        outputs = keras.KerasTensor(inputs.shape, dtype=self.compute_dtype)
        if return_weights:
            shape = (inputs.shape[0], inputs.shape[2]) if self.context_size is None else (
                inputs.shape[0], inputs.shape[1], inputs.shape[2])
            return outputs, keras.KerasTensor(shape, dtype=self.compute_dtype)
        return outputs

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "context_size": self.context_size,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
