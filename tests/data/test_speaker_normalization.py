"""Per-speaker standardisation: statistics per speaker, offsets removed, order kept."""

import numpy as np

from sercal_keras.data import SegmentSet, standardize_by_speaker


def two_speakers(seed=0):
    """Speaker b is speaker a shifted by +7 and scaled by 3 on every coefficient."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(6, 4, 5)).astype("float32")
    b = (3 * a + 7).astype("float32")
    features = np.concatenate([a, b])
    owners = np.repeat(np.arange(4), 3)  # utterances 0, 1 by speaker a; 2, 3 by speaker b
    return SegmentSet(features, np.arange(12) % 2, owners), ["a", "a", "b", "b"]


def test_each_speaker_has_zero_mean_and_unit_variance_per_coefficient():
    segments, speakers = two_speakers()
    out = standardize_by_speaker(segments, speakers)
    for rows in (slice(0, 6), slice(6, 12)):
        np.testing.assert_allclose(out.features[rows].mean(axis=(0, 2)), 0, atol=1e-5)
        np.testing.assert_allclose(out.features[rows].var(axis=(0, 2)), 1, atol=1e-4)
    assert out.features.dtype == np.float32 and out.features.shape == segments.features.shape


def test_a_speakers_offset_and_scale_are_removed_and_within_speaker_differences_kept():
    segments, speakers = two_speakers()
    out = standardize_by_speaker(segments, speakers)
    # b is an affine copy of a: after standardisation the two speakers coincide
    np.testing.assert_allclose(out.features[6:], out.features[:6], atol=1e-4)
    # ... whereas one global standardisation keeps them apart
    pooled = (segments.features - segments.features.mean()) / segments.features.std()
    assert np.abs(pooled[6:] - pooled[:6]).mean() > 1
    # the ranking of segments within a speaker is untouched
    np.testing.assert_array_equal(np.argsort(out.features[:6, 0, 0]), np.argsort(segments.features[:6, 0, 0]))


def test_labels_utterances_and_input_are_unchanged():
    segments, speakers = two_speakers()
    before = segments.features.copy()
    out = standardize_by_speaker(segments, speakers)
    np.testing.assert_array_equal(out.labels, segments.labels)
    np.testing.assert_array_equal(out.utterance_index, segments.utterance_index)
    np.testing.assert_array_equal(segments.features, before)


def test_a_constant_coefficient_stays_finite():
    features = np.zeros((3, 2, 4), "float32")
    out = standardize_by_speaker(SegmentSet(features, np.zeros(3, np.int64), np.zeros(3, np.int64)), ["a"])
    assert np.isfinite(out.features).all() and np.abs(out.features).max() == 0
