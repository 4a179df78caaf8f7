"""The CNN backbone over MFCC segments (Xu et al., 2020; Kim et al., 2022)."""

from __future__ import annotations

import functools

import keras


def conv_bn_relu(x, filters: int, kernel_size, name: str, padding: str = "same",
                 batch_norm_momentum: float = 0.99):
    """Conv2D (no bias) → BatchNorm → ReLU, named `<name>_conv/_bn/_relu`."""
    x = keras.layers.Conv2D(filters, kernel_size, padding=padding, use_bias=False, name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(momentum=batch_norm_momentum, name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def cnn_backbone(x, batch_norm_momentum: float = 0.99):
    """Maps `(batch, 26, 63, 1)` MFCC maps to a `(batch, 6, 15, 80)` feature map.

    Two parallel first convolutions, one tall in frequency (10×2, frequency
    padding 4) and one long in time (2×8, time padding 3), both give 25×62 and
    are concatenated to 16 channels; then 3×3 blocks of 32 (+max-pool),
    48 (+max-pool), 64 and 80 channels. The spatial sizes scale with the input.

    Args:
        x: symbolic tensor `(batch, freq, time, 1)`.
        batch_norm_momentum: momentum of the BatchNorm moving statistics
            (Keras' default 0.99; PyTorch's default corresponds to 0.9).

    Returns:
        Symbolic tensor `(batch, freq', time', 80)`.
    """
    block = functools.partial(conv_bn_relu, batch_norm_momentum=batch_norm_momentum)
    freq_branch = keras.layers.ZeroPadding2D(((4, 4), (0, 0)), name="freq_pad")(x)
    freq_branch = block(freq_branch, 8, (10, 2), "freq", padding="valid")
    time_branch = keras.layers.ZeroPadding2D(((0, 0), (3, 3)), name="time_pad")(x)
    time_branch = block(time_branch, 8, (2, 8), "time", padding="valid")
    x = keras.layers.Concatenate(name="first_concat")([freq_branch, time_branch])
    x = block(x, 32, 3, "block1")
    x = keras.layers.MaxPooling2D(2, name="block1_pool")(x)
    x = block(x, 48, 3, "block2")
    x = keras.layers.MaxPooling2D(2, name="block2_pool")(x)
    x = block(x, 64, 3, "block3")
    return block(x, 80, 3, "block4")
