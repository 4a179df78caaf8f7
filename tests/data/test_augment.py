"""Training augmentation on cached segments: SpecAugment masks, mixup, and their tf.data wiring."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from sercal_keras.data import SegmentSet, make_dataset
from sercal_keras.data.augment import BatchAugmentation, mixup, spec_augment
from sercal_keras.errors import ConfigError

SEED = tf.constant([3, 4], tf.int64)


def _segments(n=40, classes=4):
    rng = np.random.RandomState(0)
    features = (rng.randn(n, 26, 63) + 10.0).astype("float32")  # never equal to the fill values
    return SegmentSet(features, np.arange(n) % classes, np.arange(n))


def _runs(mask_1d):
    """Lengths of the runs of True in a 1-D bool array."""
    padded = np.concatenate([[0], mask_1d.astype(int), [0]])
    edges = np.flatnonzero(np.diff(padded))
    return edges[1::2] - edges[::2]


def test_time_masks_cover_whole_columns_within_the_width_and_take_the_fill_per_coefficient():
    x = _segments().features[:32]
    fill = np.arange(26, dtype="float32") * -1.0 - 1.0  # distinct per coefficient, never in x
    out = spec_augment(tf.constant(x), SEED, time_masks=2, time_width=10, freq_masks=0, freq_width=0,
                       fill_value=fill).numpy()
    masked = out != x
    assert masked.any()
    columns = masked.all(axis=1)  # (B, frames): a time mask takes every coefficient
    np.testing.assert_array_equal(masked.any(axis=1), columns)
    for row in columns:
        assert row.sum() <= 2 * 10 and all(run <= 2 * 10 for run in _runs(row))
    np.testing.assert_array_equal(out[masked], np.broadcast_to(fill[None, :, None], x.shape)[masked])


def test_freq_masks_cover_whole_rows_and_widths_are_bounded():
    x = _segments().features[:32]
    out = spec_augment(tf.constant(x), SEED, 0, 0, freq_masks=1, freq_width=4, fill_value=0.0).numpy()
    masked = out != x
    rows = masked.all(axis=2)
    np.testing.assert_array_equal(masked.any(axis=2), rows)
    assert rows.sum(axis=1).max() <= 4 and rows.sum() > 0
    assert (out[masked] == 0).all()


def test_no_masks_is_the_identity():
    x = _segments().features[:8]
    np.testing.assert_array_equal(spec_augment(tf.constant(x), SEED, 0, 10, 0, 4).numpy(), x)
    assert not BatchAugmentation(time_masks=0, time_width=10).active


def test_mixup_mixes_features_and_labels_with_the_same_weights():
    classes = 4
    labels = np.arange(32) % classes
    x = np.broadcast_to(labels[:, None, None], (32, 2, 3)).astype("float32")  # feature value = class index
    y = np.eye(classes, dtype="float32")[labels]
    mx, my = mixup(tf.constant(x), tf.constant(y), SEED, alpha=0.4)
    mx, my = mx.numpy(), my.numpy()
    np.testing.assert_allclose(my.sum(axis=1), 1.0, atol=1e-6)
    assert (my >= 0).all() and (my < 1 - 1e-3).any()  # soft labels appear
    np.testing.assert_allclose(mx[:, 0, 0], my @ np.arange(classes), atol=1e-5)  # same λ for x and y
    with pytest.raises(ConfigError, match="one-hot"):
        mixup(tf.constant(x), tf.constant(labels), SEED, alpha=0.4)


def test_dataset_augments_per_batch_reproducibly_and_differently_each_epoch():
    segments = _segments()
    aug = BatchAugmentation(time_masks=2, time_width=12, freq_masks=2, freq_width=4, fill_value=0.0, mixup_alpha=0.2)
    both = list(make_dataset(segments, 16, shuffle=True, seed=0, num_classes=4, augment=aug, epochs=2))
    epoch_1, epoch_2 = both[:3], both[3:]
    again = list(make_dataset(segments, 16, shuffle=True, seed=0, num_classes=4, augment=aug))
    resumed = list(make_dataset(segments, 16, shuffle=True, seed=0, num_classes=4, augment=aug, epochs=2,
                                first_epoch=1))
    for got, want in zip(resumed, epoch_2, strict=True):  # a resumed run sees what an uninterrupted one sees
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    assert [b[0].shape for b in epoch_1] == [(16, 26, 63), (16, 26, 63), (8, 26, 63)]
    assert epoch_1[0][1].shape == (16, 4) and epoch_1[0][1].dtype == tf.float32
    np.testing.assert_allclose(epoch_1[0][0], again[0][0])
    assert not np.allclose(epoch_1[0][0], epoch_2[0][0])


def test_without_options_the_dataset_is_the_paper_pipeline():
    segments = _segments()
    plain = list(make_dataset(segments, 16, shuffle=True, seed=0))
    assert plain[0][1].dtype == tf.int32 and plain[0][1].shape == (16,)
    features = np.concatenate([b[0].numpy() for b in plain])
    np.testing.assert_array_equal(np.sort(features.reshape(len(features), -1), axis=0),
                                  np.sort(segments.features.reshape(len(segments), -1), axis=0))


def test_bad_options_raise():
    with pytest.raises(ConfigError, match="time_masks"):
        BatchAugmentation(time_masks=-1)
    with pytest.raises(ConfigError, match="mixup_alpha"):
        BatchAugmentation(mixup_alpha=-0.1)
