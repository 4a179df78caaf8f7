"""Focus-Attention: an amplitude prior on the self-attention logits."""

from __future__ import annotations

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="sercal_keras")
class FocusAttention(keras.layers.Layer):
    """Steers each attention head toward the largest-amplitude positions.

    Kim et al. (2022) observe that multi-head self-attention in speech emotion
    recognition does not line up with the signal's amplitude, and add
    Focus-Attention so the network finds the loudest part of a segment. This is
    our reconstruction (the paper's full text is not available): the amplitude
    of position `j` is `a_j = max_c x[j, c]`; the focus map `f = softmax(a / τ)`
    over positions peaks at the loudest part; each head `h` gets the additive
    logit bias `β_h · log f_j` for every key `j`. Because a softmax over keys
    ignores a constant per row, that bias equals `(β_h / τ) · a_j`, which is what
    the graph computes (no log or softmax: cheaper and int8-friendly).

    The amplitude may come from elsewhere: pass `amplitude` (one value per
    position, e.g. the input's MFCC energy from `InputEnergy`) and the layer
    uses it instead of the feature-map maximum.

    `β` starts at zero, so at initialisation the model *is* plain MHSA and
    training only moves away from it where that helps. `τ > 0` is learned
    through `log τ`.

    Args:
        num_heads: int, number of attention heads the bias is made for.
        temperature: float > 0, initial softmax temperature `τ`.
        beta_initializer: initializer of the per-head strengths `β`.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: feature map `(batch, positions, channels)`.
        amplitude: optional `(batch, positions)`; None = `max_c inputs`.
        return_focus_map: bool, also return the focus map `f` (for plots).

    Returns:
        The attention bias `(batch, heads, 1, positions)`, to pass as
        `attention_bias` to `MultiHeadSelfAttention`; with
        `return_focus_map=True` also `f` of shape `(batch, positions)`.

    Example:
    >>> x = np.random.rand(2, 90, 80).astype("float32")
    >>> bias = FocusAttention(num_heads=4)(x)
    >>> tuple(bias.shape)
    (2, 4, 1, 90)

    Reference:
    - [Kim et al., 2022](https://arxiv.org/abs/2208.10491)
    """

    def __init__(self, num_heads: int = 4, temperature: float = 1.0, beta_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        if not isinstance(num_heads, int) or num_heads < 1:
            raise ValueError(f"num_heads must be a positive int. Received: num_heads={num_heads}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0. Received: temperature={temperature}")
        self.num_heads = num_heads
        self.temperature = float(temperature)
        self.beta_initializer = keras.initializers.get(beta_initializer)

    def build(self, inputs_shape):
        if len(inputs_shape) != 3:
            raise ValueError(
                "FocusAttention expects inputs of shape (batch, positions, channels). "
                f"Received: inputs_shape={inputs_shape}"
            )
        self.beta = self.add_weight(
            name="beta", shape=(self.num_heads,), initializer=self.beta_initializer
        )
        self.log_temperature = self.add_weight(
            name="log_temperature",
            shape=(),
            initializer=keras.initializers.Constant(math.log(self.temperature)),
        )
        self.built = True

    def amplitude(self, inputs, amplitude=None):
        """The amplitude `a` of every position, `(batch, positions)`: `amplitude` or the max over channels."""
        return ops.max(inputs, axis=-1) if amplitude is None else ops.cast(amplitude, inputs.dtype)

    def focus_map(self, inputs, amplitude=None):
        """The focus map `f = softmax(a / τ)` over positions, `(batch, positions)`."""
        amplitude = self.amplitude(inputs, amplitude)
        temperature = ops.cast(ops.exp(self.log_temperature), amplitude.dtype)
        return ops.softmax(ops.divide(amplitude, temperature), axis=-1)

    def call(self, inputs, amplitude=None, return_focus_map=False):
        amplitude = self.amplitude(inputs, amplitude)
        # β_h · log softmax(a/τ)_j  ==  (β_h/τ) · a_j  up to a per-row constant.
        strength = ops.cast(self.beta * ops.exp(-self.log_temperature), amplitude.dtype)
        bias = ops.multiply(
            ops.reshape(strength, (1, self.num_heads, 1, 1)),
            ops.expand_dims(ops.expand_dims(amplitude, 1), 1),
        )
        if return_focus_map:
            return bias, self.focus_map(inputs, amplitude)
        return bias

    def compute_output_shape(self, inputs_shape):
        return (inputs_shape[0], self.num_heads, 1, inputs_shape[1])

    def compute_output_spec(self, inputs, amplitude=None, return_focus_map=False):
        bias = keras.KerasTensor(self.compute_output_shape(inputs.shape), dtype=self.compute_dtype)
        if return_focus_map:
            return bias, keras.KerasTensor((inputs.shape[0], inputs.shape[1]), dtype=self.compute_dtype)
        return bias

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "temperature": self.temperature,
                "beta_initializer": keras.initializers.serialize(self.beta_initializer),
            }
        )
        return config
