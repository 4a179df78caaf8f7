"""Training-time batch augmentation of cached MFCC segments: SpecAugment masks and mixup.

Both work on whole batches, vectorised, with stateless random ops driven by a
per-batch seed (`make_dataset` derives it from the run's seed, the epoch and the
batch, so the draws differ from epoch to epoch but are the same from run to run,
resumed or not). Neither is ever applied to validation or test data.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence, Union

import tensorflow as tf

from sercal_keras.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class BatchAugmentation:
    """What to do to every training batch; all off by default.

    Args:
        time_masks: SpecAugment time masks per segment (0 = none).
        time_width: maximum width of a time mask in frames (each width is
            drawn uniformly from `[0, time_width]`; 63 frames = 2 s).
        freq_masks: SpecAugment masks over MFCC coefficients per segment.
        freq_width: maximum width of a coefficient mask (of `n_mfcc`).
        fill_value: what masked cells become, a scalar or one value per
            coefficient (`(n_mfcc,)`); the training mean, so that masked
            cells are 0 after the model's `Normalization`.
        mixup_alpha: mixup with `λ ~ Beta(α, α)` drawn per segment, mixing
            each segment with another of the same batch (0 = off; the labels
            must then be one-hot).

    Example:
    >>> aug = BatchAugmentation(time_masks=2, time_width=12, freq_masks=2, freq_width=4)
    >>> x, y = aug(tf.ones((8, 26, 63)), tf.one_hot(tf.zeros(8, tf.int32), 7), tf.constant([1, 2], tf.int64))
    """

    time_masks: int = 0
    time_width: int = 0
    freq_masks: int = 0
    freq_width: int = 0
    fill_value: Union[float, Sequence[float]] = 0.0
    mixup_alpha: float = 0.0

    def __post_init__(self):
        for name in ("time_masks", "time_width", "freq_masks", "freq_width"):
            if int(getattr(self, name)) < 0:
                raise ConfigError(f"BatchAugmentation.{name} must be >= 0. Received: {getattr(self, name)}")
        if self.mixup_alpha < 0:
            raise ConfigError(f"BatchAugmentation.mixup_alpha must be >= 0. Received: {self.mixup_alpha}")

    @property
    def spec_augment(self) -> bool:
        return bool(self.time_masks and self.time_width) or bool(self.freq_masks and self.freq_width)

    @property
    def active(self) -> bool:
        return self.spec_augment or self.mixup_alpha > 0

    def __call__(self, features, labels, seed):
        """Augments one batch: `features (B, n_mfcc, frames)`, `labels (B, C)` or `(B,)`, `seed` int64 scalar."""
        seed = tf.stack([tf.cast(seed, tf.int64), tf.constant(0, tf.int64)])
        # one stream per step (masks, mixup, one spare); fixed so results stay reproducible
        seeds = tf.random.experimental.stateless_split(seed, num=3)
        if self.spec_augment:
            features = spec_augment(features, seeds[0], self.time_masks, self.time_width, self.freq_masks,
                                    self.freq_width, self.fill_value)
        if self.mixup_alpha > 0:
            features, labels = mixup(features, labels, seeds[1], self.mixup_alpha)
        return features, labels


def _band_mask(seed, batch: int, length: int, count: int, max_width: int):
    """`(B, length)` bool: True inside any of `count` random bands of width `[0, max_width]`."""
    max_width = min(int(max_width), length)
    w_seed, s_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=2))
    widths = tf.random.stateless_uniform((batch, count), w_seed, minval=0, maxval=max_width + 1, dtype=tf.int32)
    starts = tf.cast(
        tf.floor(tf.random.stateless_uniform((batch, count), s_seed) * tf.cast(length - widths + 1, tf.float32)),
        tf.int32,
    )
    positions = tf.range(length, dtype=tf.int32)[None, None, :]
    inside = (positions >= starts[..., None]) & (positions < (starts + widths)[..., None])  # (B, count, length)
    return tf.reduce_any(inside, axis=1)


def spec_augment(features, seed, time_masks: int, time_width: int, freq_masks: int, freq_width: int,
                 fill_value=0.0):
    """SpecAugment (Park et al., 2019) time and frequency masks on a batch of segments.

    Args:
        features: float `(B, n_mfcc, frames)`.
        seed: stateless seed, int `(2,)`.
        time_masks, time_width: number of time masks and their maximum width in frames.
        freq_masks, freq_width: number of coefficient masks and their maximum width.
        fill_value: scalar or `(n_mfcc,)`: the value of masked cells.

    Returns:
        The masked batch, same shape and dtype.
    """
    shape = tf.shape(features)
    batch, n_coef, n_frames = shape[0], features.shape[1], features.shape[2]
    t_seed, f_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=2))
    masked = tf.zeros_like(features, dtype=tf.bool)
    if time_masks and time_width:
        masked |= _band_mask(t_seed, batch, n_frames, time_masks, time_width)[:, None, :]
    if freq_masks and freq_width:
        masked |= _band_mask(f_seed, batch, n_coef, freq_masks, freq_width)[:, :, None]
    fill = tf.cast(tf.convert_to_tensor(fill_value), features.dtype)
    if fill.shape.rank == 1:
        fill = fill[None, :, None]
    return tf.where(masked, tf.broadcast_to(fill, shape), features)


def mixup(features, labels, seed, alpha: float):
    """mixup (Zhang et al., 2018) within a batch: `λ x_i + (1 − λ) x_π(i)`, the same for the labels.

    Args:
        features: float `(B, ...)`.
        labels: one-hot or soft labels, float `(B, C)`.
        seed: stateless seed, int `(2,)`.
        alpha: the Beta(α, α) parameter of λ (one λ per segment).

    Returns:
        `(features, labels)` mixed; the labels stay distributions (rows sum to 1).
    """
    if labels.shape.rank != 2:
        raise ConfigError("mixup needs one-hot labels (B, num_classes); build the dataset with num_classes=")
    batch = tf.shape(features)[0]
    p_seed, a_seed, b_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=3))
    order = tf.argsort(tf.random.stateless_uniform((batch,), p_seed))
    gamma_a = tf.random.stateless_gamma((batch,), a_seed, alpha=alpha)
    gamma_b = tf.random.stateless_gamma((batch,), b_seed, alpha=alpha)
    lam = gamma_a / tf.maximum(gamma_a + gamma_b, 1e-12)
    lam_x = tf.reshape(tf.cast(lam, features.dtype), tf.concat([[batch], tf.ones([features.shape.rank - 1], tf.int32)], 0))
    lam_y = tf.cast(lam, labels.dtype)[:, None]
    mixed_x = lam_x * features + (1 - lam_x) * tf.gather(features, order)
    mixed_y = lam_y * labels + (1 - lam_y) * tf.gather(labels, order)
    return mixed_x, mixed_y
