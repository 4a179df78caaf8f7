"""Additive noise at a set signal-to-noise ratio: the training-data copies of `noise_snr_db`."""

from __future__ import annotations

import numpy as np

#: SNRs outside this range are either inaudible (> 60 dB) or mostly noise (< -10 dB).
SNR_RANGE_DB = (-10.0, 60.0)


def add_noise(waveform: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    """`waveform` plus white Gaussian noise at `snr_db` below the waveform's mean power.

    The noise is drawn from `np.random.default_rng(seed)`, so one utterance gets
    the same noisy copy every time (the copies are cached as features). The
    power is the mean square over the whole waveform, pauses included; a
    silent waveform is returned unchanged (there is no signal to set a ratio by).

    Args:
        waveform: mono float32 samples `(n,)`.
        snr_db: signal-to-noise ratio in dB, within `SNR_RANGE_DB`.
        seed: seed of the noise.

    Returns:
        float32 samples `(n,)`, clipped to [-1, 1].

    Example:
    >>> x = np.sin(np.linspace(0, 2000, 16000)).astype(np.float32)
    >>> noisy = add_noise(x, 20.0)
    >>> round(float(10 * np.log10(np.mean(x**2) / np.mean((noisy - x) ** 2))))
    20
    """
    if not SNR_RANGE_DB[0] <= snr_db <= SNR_RANGE_DB[1]:
        raise ValueError(f"snr_db must lie in {list(SNR_RANGE_DB)}. Received: snr_db={snr_db}")
    waveform = np.asarray(waveform, np.float32)
    power = float(np.mean(np.square(waveform, dtype=np.float64))) if waveform.size else 0.0
    if power == 0.0:
        return waveform.copy()
    scale = np.sqrt(power / 10.0 ** (snr_db / 10.0))
    noise = np.random.default_rng(seed).standard_normal(waveform.shape) * scale
    return np.clip(waveform + noise, -1.0, 1.0).astype(np.float32)
