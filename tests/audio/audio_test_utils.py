"""Test signals shared by the audio and data tests."""

import numpy as np


def speech_like(seconds=2.0, sr=16000, seed=0, f0=140.0):
    """A voiced, amplitude-modulated harmonic signal with some noise, float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.1 * np.sin(2 * np.pi * 0.8 * t))) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 20))
    x *= 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    return (0.2 * x / np.abs(x).max() + 0.01 * rng.normal(size=t.size)).astype(np.float32)
