"""The first-attempt Calibration-Attention: a per-position sigmoid gate over heads."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="sercal_keras")
class ConvCalibration(keras.layers.Layer):
    """Gates each head at each position with `sigmoid(Conv1D(head means))`.

    Our first reconstruction of Calibration-Attention (Kim et al., 2022), kept
    so the comparison with the adopted form (`CalibrationAttention`, an SE gate
    that starts at the identity) can be re-run. Each head's output is averaged
    over its dims per position, a `Conv1D` over `kernel_size` neighbouring
    positions maps the heads to one gate per head and position, and a sigmoid
    bounds it to (0, 1). It does not start at the identity (gates start near
    0.5), which is why the prototype lost accuracy with it (DESIGN.md §5).

    Args:
        kernel_size: int >= 1, number of neighbouring positions the gate sees.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: per-head outputs `(batch, positions, heads, head_dim)`.

    Returns:
        The gated head outputs, same shape as `inputs`.

    Example:
    >>> heads = np.random.rand(2, 90, 4, 16).astype("float32")
    >>> tuple(ConvCalibration()(heads).shape)
    (2, 90, 4, 16)

    Reference:
    - [Kim et al., 2022](https://arxiv.org/abs/2208.10491)
    """

    def __init__(self, kernel_size: int = 3, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(kernel_size, int) or kernel_size < 1:
            raise ValueError(f"kernel_size must be a positive int. Received: kernel_size={kernel_size}")
        self.kernel_size = kernel_size

    def build(self, inputs_shape):
        if len(inputs_shape) != 4:
            raise ValueError(
                "ConvCalibration expects inputs of shape (batch, positions, heads, head_dim). "
                f"Received: inputs_shape={inputs_shape}"
            )
        num_heads = inputs_shape[2]
        self.gate_conv = keras.layers.Conv1D(
            num_heads, self.kernel_size, padding="same", activation="sigmoid",
            name="gate", dtype=self.dtype_policy,
        )
        self.gate_conv.build((inputs_shape[0], inputs_shape[1], num_heads))
        self.built = True

    def call(self, inputs):
        gate = self.gate_conv(ops.mean(inputs, axis=-1))  # (batch, positions, heads)
        return ops.multiply(inputs, ops.expand_dims(gate, -1))

    def compute_output_shape(self, inputs_shape):
        return tuple(inputs_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"kernel_size": self.kernel_size})
        return config
