"""The first-attempt Focus-Attention: a multiplicative gate on the features."""

from __future__ import annotations

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="sercal_keras")
class FeatureGateFocus(keras.layers.Layer):
    """Amplifies the features of loud positions: `x ⊙ (1 + γ · f / max f)`.

    Our first reconstruction of Focus-Attention (Kim et al., 2022), kept so the
    comparison with the adopted form (`FocusAttention`, a bias on the attention
    logits) can be re-run. `f = softmax(a / τ)` over positions with the
    amplitude `a_j = max_c x[j, c]`; `γ` and `τ` are learned. With the default
    `gamma=1.0` it does not start at the identity (the form that cost UA in the
    prototype, DESIGN.md §5); `gamma=0.0` gives an identity start.

    Args:
        gamma: float, initial gate strength `γ`.
        temperature: float > 0, initial softmax temperature `τ`.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: feature map `(batch, positions, channels)`.

    Returns:
        The gated features, same shape as `inputs`.

    Example:
    >>> x = np.random.rand(2, 90, 80).astype("float32")
    >>> tuple(FeatureGateFocus()(x).shape)
    (2, 90, 80)

    Reference:
    - [Kim et al., 2022](https://arxiv.org/abs/2208.10491)
    """

    def __init__(self, gamma: float = 1.0, temperature: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0. Received: temperature={temperature}")
        self.gamma = float(gamma)
        self.temperature = float(temperature)

    def build(self, inputs_shape):
        if len(inputs_shape) != 3:
            raise ValueError(
                "FeatureGateFocus expects inputs of shape (batch, positions, channels). "
                f"Received: inputs_shape={inputs_shape}"
            )
        self.gamma_weight = self.add_weight(
            name="gamma", shape=(), initializer=keras.initializers.Constant(self.gamma)
        )
        self.log_temperature = self.add_weight(
            name="log_temperature", shape=(),
            initializer=keras.initializers.Constant(math.log(self.temperature)),
        )
        self.built = True

    def call(self, inputs):
        amplitude = ops.max(inputs, axis=-1)
        temperature = ops.cast(ops.exp(self.log_temperature), amplitude.dtype)
        focus = ops.softmax(ops.divide(amplitude, temperature), axis=-1)
        focus = ops.divide(focus, ops.max(focus, axis=-1, keepdims=True))
        gate = 1.0 + ops.cast(self.gamma_weight, focus.dtype) * focus
        return ops.multiply(inputs, ops.expand_dims(gate, -1))

    def compute_output_shape(self, inputs_shape):
        return tuple(inputs_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"gamma": self.gamma, "temperature": self.temperature})
        return config
