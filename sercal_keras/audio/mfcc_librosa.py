"""The librosa reference MFCC: the oracle the numpy and in-graph versions match.

Nothing in the data path calls this (it is ~3x slower than `frontend.mfcc`);
tests and `benchmarks/features.py` use it to hold the other two to librosa.
"""

from __future__ import annotations

import numpy as np

from sercal_keras.audio.frontend import FeatureConfig


def mfcc_librosa(segments: np.ndarray, config: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """MFCCs of each segment computed by librosa, one segment at a time.

    One call per segment on purpose: `power_to_db`'s `top_db` clips relative to
    the maximum of the whole array it is given, and the features define it per
    segment. With the default config this is exactly
    `librosa.feature.mfcc(y=segment, sr=16000, n_mfcc=26)`.

    Args:
        segments: float array (n, samples) or (samples,).
        config: the feature definition.

    Returns:
        float32 array (n, feature_rows, frames): MFCC, or the log-mel bands
        for `representation="log_mel"`.

    Example:
    >>> mfcc_librosa(np.zeros((1, 32000), np.float32)).shape  # doctest: +SKIP
    (1, 26, 63)
    """
    import librosa

    segments = np.asarray(segments, dtype=np.float32)
    if segments.ndim == 1:
        segments = segments[None, :]
    if len(segments) == 0:
        frames = 1 + segments.shape[1] // config.hop_length
        return np.zeros((0, config.feature_rows, frames), np.float32)
    out = []
    for segment in segments:
        mel = librosa.feature.melspectrogram(
            y=segment,
            sr=config.sample_rate,
            n_fft=config.n_fft,
            hop_length=config.hop_length,
            n_mels=config.n_mels,
            fmin=config.fmin,
            fmax=config.fmax,
        )
        log_mel = librosa.power_to_db(mel, top_db=config.top_db)
        if config.representation == "log_mel":
            out.append(log_mel)
        else:
            out.append(librosa.feature.mfcc(S=log_mel, n_mfcc=config.n_mfcc))
    return np.stack(out).astype(np.float32)
