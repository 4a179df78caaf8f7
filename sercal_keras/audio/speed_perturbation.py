"""Speed perturbation of a waveform (Ko et al., 2015): the training-data copies at 0.9x / 1.1x."""

from __future__ import annotations

import numpy as np

from sercal_keras.audio.frontend import SPEED_RANGE  # noqa: F401  (one definition, shared with the edge runtime)


def change_speed(waveform: np.ndarray, factor: float, sample_rate: int = 16000) -> np.ndarray:
    """Plays `waveform` `factor` times faster: tempo and pitch both scale, as `sox speed`.

    The samples are read as if recorded at `factor · sample_rate` and resampled
    (soxr HQ) back to `sample_rate`, so the result has `len / factor` samples.
    This is the waveform augmentation of Kaldi recipes: unlike masking the
    features, it makes new, natural-sounding speakers (vocal-tract length and
    speaking rate move together).

    Args:
        waveform: mono float32 samples `(n,)`.
        factor: speed factor in `SPEED_RANGE`; 1 returns a copy.
        sample_rate: rate of `waveform` (and of the result), in Hz.

    Returns:
        float32 samples `(round(n / factor),)` at `sample_rate`.

    Example:
    >>> change_speed(np.zeros(16000, np.float32), 1.25).shape
    (12800,)
    """
    if not SPEED_RANGE[0] <= factor <= SPEED_RANGE[1]:
        raise ValueError(f"factor must lie in {list(SPEED_RANGE)}. Received: factor={factor}")
    waveform = np.asarray(waveform, np.float32)
    if factor == 1.0:
        return waveform.copy()
    import soxr  # comes with librosa; the library's resampler

    out = soxr.resample(waveform, float(sample_rate) * factor, float(sample_rate), quality="HQ")
    return np.clip(out, -1.0, 1.0).astype(np.float32, copy=False)
