"""Per-speaker feature standardisation (a research option of the training recipe).

Speaker-independent SER is hard partly because speakers differ in pitch, timbre
and loudness more than one speaker's emotions do. Standardising each speaker's
MFCC by that speaker's own mean and variance (per coefficient) removes those
offsets and keeps what varies *within* a speaker, e.g. an angry utterance being
louder than the same speaker's neutral ones. The statistics use no labels; for
the test speakers they come from their own (unlabelled) test audio, as in
speaker normalisation in the SER literature, so a model trained this way
expects inputs standardised the same way at inference.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

from sercal_keras.audio.frontend import speaker_statistics, standardize
from sercal_keras.data.features import SegmentSet


def standardize_by_speaker(
    segments: SegmentSet, utterance_speakers: Sequence[str], epsilon: float = 1e-6, means_only: bool = False
) -> SegmentSet:
    """Each speaker's segments standardised by that speaker's own statistics.

    Args:
        segments: a `SegmentSet` (features `(N, n_mfcc, frames)`).
        utterance_speakers: the speaker of every corpus utterance, indexed as
            `segments.utterance_index` (e.g. `corpus.speakers`).
        epsilon: added to the variance before the square root.
        means_only: subtract each speaker's mean only, without dividing by
            their std (a research variant: `benchmarks.linear_probe`).

    Returns:
        A `SegmentSet` with the same labels and utterance indices whose
        features have, per speaker and coefficient, mean 0 and variance 1
        over that speaker's segments and frames.

    Example:
    >>> rng = np.random.default_rng(0)
    >>> features = rng.normal(size=(4, 2, 3)).astype("float32") + [[[0.0]], [[0.0]], [[5.0]], [[5.0]]]
    >>> segs = SegmentSet(features, np.zeros(4, np.int64), np.arange(4))
    >>> out = standardize_by_speaker(segs, ["a", "a", "b", "b"])
    >>> bool(abs(out.features[2:].mean()) < 1e-5)
    True
    """
    speakers = np.asarray(utterance_speakers, dtype=object)[segments.utterance_index]
    features = np.empty_like(segments.features)
    for speaker in np.unique(speakers):
        mask = speakers == speaker
        own = segments.features[mask]
        mean, std = speaker_statistics(own, epsilon)
        features[mask] = standardize(own, (mean, np.ones_like(std) if means_only else std))
    return SegmentSet(features, segments.labels, segments.utterance_index, segments.skipped)


def speaker_prior(segments: SegmentSet, utterance_speakers: Sequence[str]) -> Tuple[np.ndarray, np.ndarray]:
    """The training speakers' average `(mean, std)`: what `shrink_statistics` pulls a new speaker towards.

    The mean of the speakers' own means, and the root of the mean of their own
    variances (within-speaker spread), per coefficient; each `(n_mfcc, 1)`.

    Example:
    >>> features = np.stack([np.full((2, 3), 1.0), np.full((2, 3), 3.0)]).astype("float32")
    >>> mean, std = speaker_prior(SegmentSet(features, np.zeros(2, np.int64), np.arange(2)), ["a", "b"])
    >>> mean.ravel().tolist()
    [2.0, 2.0]
    """
    speakers = np.asarray(utterance_speakers, dtype=object)[segments.utterance_index]
    stats = [speaker_statistics(segments.features[speakers == s]) for s in np.unique(speakers)]
    return (np.mean([m for m, _ in stats], axis=0).astype(np.float32),
            np.sqrt(np.mean([np.square(sd) for _, sd in stats], axis=0)).astype(np.float32))
