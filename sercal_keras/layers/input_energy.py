"""Input energy on the CNN's position grid: the amplitude Focus-Attention can read."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="sercal_keras")
class InputEnergy(keras.layers.Layer):
    """Maps one MFCC coefficient of the input onto the attention positions.

    Focus-Attention (Kim et al., 2022) steers attention to the largest-amplitude
    part of a segment. Read from the CNN feature map, "amplitude" is whatever
    the convolutions learned; this layer gives the alternative the abstract
    also fits: the signal's own loudness. MFCC coefficient 0 is the mean log-mel
    energy of a frame (a log envelope of the waveform, on the frames the model
    already sees), so the amplitude of the time column `w` of the CNN map is the
    mean of `c0` over the `stride = frames // width` input frames it pools, and
    every frequency row of that column gets the same value. Positions are in the
    order of the model's `Reshape((height * width, channels))`: `h * width + w`.

    Args:
        grid: `(height, width)` of the CNN feature map whose positions the
            attention runs over.
        coefficient: int, the MFCC coefficient to read (0 = energy).
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: MFCC segments `(batch, n_mfcc, frames)` (standardised or raw;
            the Focus-Attention strength learns the scale).

    Returns:
        `(batch, height * width)` amplitude per position, to pass as
        `amplitude` to `FocusAttention`.

    Example:
    >>> mfcc = np.random.rand(2, 26, 63).astype("float32")
    >>> tuple(InputEnergy(grid=(6, 15))(mfcc).shape)
    (2, 90)

    Reference:
    - [Kim et al., 2022](https://arxiv.org/abs/2208.10491)
    """

    def __init__(self, grid, coefficient: int = 0, **kwargs):
        super().__init__(**kwargs)
        grid = tuple(grid)
        if len(grid) != 2 or any(not isinstance(g, int) or g < 1 for g in grid):
            raise ValueError(f"grid must be two positive ints (height, width). Received: grid={grid}")
        if not isinstance(coefficient, int) or coefficient < 0:
            raise ValueError(f"coefficient must be a non-negative int. Received: coefficient={coefficient}")
        self.grid = grid
        self.coefficient = coefficient

    def build(self, inputs_shape):
        if len(inputs_shape) != 3:
            raise ValueError(
                f"InputEnergy expects MFCC of shape (batch, n_mfcc, frames). Received: inputs_shape={inputs_shape}"
            )
        n_mfcc, frames = inputs_shape[1], inputs_shape[2]
        if self.coefficient >= n_mfcc:
            raise ValueError(f"coefficient {self.coefficient} is out of range for {n_mfcc} MFCC coefficients")
        if frames < self.grid[1]:
            raise ValueError(f"{frames} frames cannot cover a grid {self.grid[1]} positions wide")
        self.built = True

    def call(self, inputs):
        height, width = self.grid
        stride = inputs.shape[2] // width
        energy = inputs[:, self.coefficient, : width * stride]
        columns = ops.mean(ops.reshape(energy, (-1, width, stride)), axis=-1)  # (batch, width)
        return ops.tile(columns, (1, height))  # position h * width + w takes column w

    def compute_output_shape(self, inputs_shape):
        return (inputs_shape[0], self.grid[0] * self.grid[1])

    def get_config(self):
        config = super().get_config()
        config.update({"grid": list(self.grid), "coefficient": self.coefficient})
        return config
