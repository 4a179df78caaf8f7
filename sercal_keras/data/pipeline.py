"""`make_dataset`: a `SegmentSet` as a batched, prefetched tf.data pipeline."""

from __future__ import annotations

from typing import Callable, Optional

import tensorflow as tf

from sercal_keras.data.features import SegmentSet
from sercal_keras.errors import ConfigError


def make_dataset(
    segment_set: SegmentSet,
    batch_size: int = 32,
    shuffle: bool = False,
    seed: Optional[int] = 0,
    drop_remainder: bool = False,
    num_classes: Optional[int] = None,
    augment: Optional[Callable] = None,
) -> tf.data.Dataset:
    """Batches of `(features, labels)` from cached segment features.

    The features live in memory (EmoDB is ~10 MB), so the pipeline is
    `from_tensor_slices` → shuffle (whole set, seeded) → batch → prefetch;
    it is never the training bottleneck. With the same seed, the order of
    every epoch is the same from run to run (it still changes between epochs).

    Args:
        segment_set: features (N, n_mfcc, frames) float32 and int labels (N,).
        batch_size: segments per batch.
        shuffle: shuffle the segments every epoch (training).
        seed: shuffle seed; `None` for a different order every run.
        drop_remainder: drop the last, smaller batch.
        num_classes: if given, the labels are one-hot float32 `(B, num_classes)`
            (for mixup and label smoothing); else int32 class indices.
        augment: optional training augmentation applied to every batch,
            `augment(features, labels, seed) -> (features, labels)` with an
            int64 scalar `seed` that differs per batch and per epoch and is
            reproducible for a given `seed` (e.g.
            `sercal_keras.data.augment.BatchAugmentation`).

    Returns:
        A `tf.data.Dataset` of `(float32 (B, n_mfcc, frames), int32 (B,))`
        (labels `float32 (B, num_classes)` with `num_classes`).

    Example:
    >>> ds = make_dataset(train_set, batch_size=32, shuffle=True, seed=0)  # doctest: +SKIP
    >>> model.fit(ds, epochs=30)  # doctest: +SKIP
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be a positive int. Received: batch_size={batch_size}")
    features = tf.convert_to_tensor(segment_set.features, dtype=tf.float32)
    labels = tf.convert_to_tensor(segment_set.labels, dtype=tf.int32)
    if num_classes is not None:
        labels = tf.one_hot(labels, int(num_classes), dtype=tf.float32)
    ds = tf.data.Dataset.from_tensor_slices((features, labels))
    if shuffle and len(segment_set):
        ds = ds.shuffle(len(segment_set), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if augment is not None:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        ds = tf.data.Dataset.zip(ds, seeds).map(
            lambda batch, batch_seed: augment(batch[0], batch[1], batch_seed),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
    return ds.prefetch(tf.data.AUTOTUNE)
