"""`make_dataset`: a `SegmentSet` as a batched, prefetched tf.data pipeline."""

from __future__ import annotations

import math
import secrets
from typing import Callable, Optional

import numpy as np
import tensorflow as tf

from sercal_keras.data.features import SegmentSet
from sercal_keras.errors import ConfigError


def batches_per_epoch(num_segments: int, batch_size: int, drop_remainder: bool = False) -> int:
    """How many batches one epoch of `make_dataset` holds (`steps_per_epoch` for `fit`)."""
    return num_segments // batch_size if drop_remainder else math.ceil(num_segments / batch_size)


def make_dataset(
    segment_set: SegmentSet,
    batch_size: int = 32,
    shuffle: bool = False,
    seed: Optional[int] = 0,
    drop_remainder: bool = False,
    num_classes: Optional[int] = None,
    augment: Optional[Callable] = None,
    epochs: int = 1,
    first_epoch: int = 0,
    targets: Optional[np.ndarray] = None,
) -> tf.data.Dataset:
    """Batches of `(features, labels)` from cached segment features, epoch after epoch.

    The features live in memory (EmoDB is ~10 MB), so the pipeline is
    `from_tensor_slices` → batch → prefetch; it is never the training
    bottleneck. The dataset holds epochs `first_epoch, …, epochs - 1` back to
    back, `batches_per_epoch(...)` batches each, so it goes to
    `fit(..., initial_epoch=first_epoch, steps_per_epoch=...)`. With `shuffle`,
    an epoch's order and its batches' augmentation seeds are stateless
    functions of `(seed, epoch)`: every epoch differs from the others, the
    same seed gives the same run, and a run resumed at epoch `k` sees exactly
    what an uninterrupted run sees from epoch `k` on.

    Args:
        segment_set: features (N, n_mfcc, frames) float32 and int labels (N,).
        batch_size: segments per batch.
        shuffle: a new order every epoch (training); else the stored order.
        seed: shuffle and augmentation seed; `None` for a different run each time.
        drop_remainder: drop the last, smaller batch of every epoch.
        num_classes: if given, the labels are one-hot float32 `(B, num_classes)`
            (for mixup and label smoothing); else int32 class indices.
        augment: optional training augmentation applied to every batch,
            `augment(features, labels, seed) -> (features, labels)` with an
            int64 scalar `seed` that differs per batch and per epoch and is
            reproducible for a given `seed` (e.g.
            `sercal_keras.data.augment.BatchAugmentation`).
        epochs: the epoch after the last one the dataset holds.
        first_epoch: the first epoch it holds (0-based; a resumed run's next epoch).
        targets: optional soft targets `(N, num_classes)` used instead of the
            one-hot labels (distillation, `training.distillation`); needs `num_classes`.

    Returns:
        A `tf.data.Dataset` of `(float32 (B, n_mfcc, frames), int32 (B,))`
        (labels `float32 (B, num_classes)` with `num_classes`).

    Example:
    >>> ds = make_dataset(train_set, batch_size=32, shuffle=True, seed=0, epochs=30)  # doctest: +SKIP
    >>> steps = batches_per_epoch(len(train_set), 32)  # doctest: +SKIP
    >>> model.fit(ds, epochs=30, steps_per_epoch=steps)  # doctest: +SKIP
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be a positive int. Received: batch_size={batch_size}")
    if not 0 <= first_epoch <= epochs:
        raise ConfigError(f"make_dataset needs 0 <= first_epoch <= epochs. Received: first_epoch={first_epoch}, "
                          f"epochs={epochs}")
    if seed is None:
        seed = secrets.randbits(31)
    features = tf.convert_to_tensor(segment_set.features, dtype=tf.float32)
    labels = tf.convert_to_tensor(segment_set.labels, dtype=tf.int32)
    if num_classes is not None:
        labels = tf.one_hot(labels, int(num_classes), dtype=tf.float32)
    if targets is not None:
        if num_classes is None or np.shape(targets) != (len(segment_set), int(num_classes)):
            raise ConfigError(f"make_dataset: targets must have shape (segments, num_classes) = "
                              f"({len(segment_set)}, {num_classes}). Received: {np.shape(targets)}")
        labels = tf.convert_to_tensor(targets, dtype=tf.float32)
    count = len(segment_set)
    steps = batches_per_epoch(count, batch_size, drop_remainder)

    def one_epoch(epoch):
        order = tf.range(count, dtype=tf.int32)
        if shuffle and count:
            order = tf.random.experimental.stateless_shuffle(order, seed=tf.stack([tf.constant(seed, tf.int64), epoch]))
        batches = tf.data.Dataset.from_tensor_slices(order).batch(batch_size, drop_remainder=drop_remainder)
        batches = batches.map(lambda index: (tf.gather(features, index), tf.gather(labels, index)))
        if augment is None:
            return batches

        def augmented(batch, batch_features_labels):
            # the batch's seed, a stateless function of (seed, its number counted over all epochs)
            batch_seed = tf.random.stateless_uniform(
                [], seed=tf.stack([tf.constant(seed, tf.int64), epoch * steps + batch]), minval=None, maxval=None,
                dtype=tf.int64)
            return augment(*batch_features_labels, batch_seed)

        return batches.enumerate().map(augmented, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    ds = tf.data.Dataset.range(first_epoch, epochs).flat_map(one_epoch)
    return ds.prefetch(tf.data.AUTOTUNE)
