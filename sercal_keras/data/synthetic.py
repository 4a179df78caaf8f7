"""A generated emotional-speech corpus: the offline default of every command.

Deterministic synthetic voiced speech: a harmonic source with a pitch contour
and jitter, vowel-like formant filters that change every syllable, and a
syllable-rate amplitude envelope. Pitch, energy, tempo, jitter, pitch range
and spectral tilt depend on the class (neutral / happy / sad / angry, the
IEMOCAP 4-class set) and on a per-speaker offset, so a model can learn the
classes across speakers (the tests check that, speaker-independently). It
proves the plumbing, not accuracy on real speech.

Default: 6 speakers (3 male, 3 female) × 4 classes × 10 = 240 utterances of
1.5–3.5 s, 16-bit 16 kHz WAV, written atomically into
`<cache>/synthetic/<version hash>/` (cache: argument, `$SERCAL_CACHE_DIR`, or
`~/.cache/sercal_keras`) and generated only when missing (~1–2 s for all).
"""

from __future__ import annotations

import hashlib
import io
import json
import wave
from pathlib import Path
from typing import Optional, Union

import numpy as np
from scipy import signal

from sercal_keras.data.cache import cache_root
from sercal_keras.data.corpus import Corpus, Utterance
from sercal_keras.data.labels import SYNTHETIC_LABELS
from sercal_keras.errors import ConfigError
from sercal_keras.io_utils import write_bytes

# Bump when the generator changes: it is part of the cache folder's hash.
GENERATOR_VERSION = 1
SAMPLE_RATE = 16000

# Per class: pitch factor, pitch range (semitones), pitch slope (semitones over
# the utterance), RMS level (dBFS), syllables/s, jitter (relative), spectral
# tilt (harmonic k has amplitude k**-tilt), breath noise level.
_CLASS_PROFILES = {
    "neutral": dict(pitch=1.00, range=2.0, slope=-1.0, level=-26.0, rate=4.0, jitter=0.004, tilt=1.6, breath=0.02),
    "happy": dict(pitch=1.35, range=6.0, slope=1.5, level=-21.0, rate=5.2, jitter=0.008, tilt=1.2, breath=0.02),
    "sad": dict(pitch=0.88, range=1.0, slope=-3.0, level=-32.0, rate=2.8, jitter=0.004, tilt=2.2, breath=0.06),
    "angry": dict(pitch=1.25, range=5.0, slope=-2.0, level=-17.0, rate=5.6, jitter=0.02, tilt=0.8, breath=0.03),
}  # fmt: skip
# Vowel formants (Hz) and bandwidths, a few English vowels.
_VOWELS = np.array(
    [[730, 1090, 2440], [270, 2290, 3010], [530, 1840, 2480], [570, 840, 2410], [440, 1020, 2240]],
    dtype=np.float64,
)
_BANDWIDTHS = np.array([80.0, 100.0, 120.0])


def load_synthetic(
    cache_dir: Optional[Union[str, Path]] = None,
    num_speakers: int = 6,
    utterances_per_class: int = 10,
    seed: int = 0,
) -> Corpus:
    """The synthetic corpus, generating any missing file first.

    Args:
        cache_dir: cache root (default `$SERCAL_CACHE_DIR` or
            `~/.cache/sercal_keras`); files go to `synthetic/<hash>/` in it.
        num_speakers: speakers, alternately male and female ("s01" male,
            "s02" female, …).
        utterances_per_class: utterances per speaker and class.
        seed: changes every random draw (and the folder hash).

    Returns:
        A `Corpus` named "synthetic" with labels neutral, happy, sad, angry.

    Example:
    >>> corpus = load_synthetic()  # doctest: +SKIP
    >>> len(corpus), corpus.speaker_ids[:2]  # doctest: +SKIP
    (240, ('s01', 's02'))
    """
    if num_speakers < 1 or utterances_per_class < 1:
        raise ConfigError(
            "num_speakers and utterances_per_class must be >= 1. Received: "
            f"num_speakers={num_speakers}, utterances_per_class={utterances_per_class}"
        )
    params = dict(
        version=GENERATOR_VERSION,
        num_speakers=num_speakers,
        utterances_per_class=utterances_per_class,
        seed=seed,
        sample_rate=SAMPLE_RATE,
    )
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    folder = cache_root(cache_dir) / "synthetic" / digest
    utterances = []
    for s in range(num_speakers):
        speaker = f"s{s + 1:02d}"
        for c, label in enumerate(SYNTHETIC_LABELS):
            for k in range(utterances_per_class):
                path = folder / f"{speaker}_{label}_{k:02d}.wav"
                if not path.is_file():  # written atomically: present means complete
                    rng = np.random.default_rng([seed, s, c, k])
                    waveform = synthesize(label, _speaker_traits(seed, s), rng)
                    write_bytes(path, _wav_bytes(waveform))
                gender = "male" if s % 2 == 0 else "female"
                utterances.append(Utterance(path, label, speaker, gender, None, path.stem))
    return Corpus("synthetic", SYNTHETIC_LABELS, tuple(utterances))


def _speaker_traits(seed: int, index: int) -> dict:
    rng = np.random.default_rng([seed, 10_000 + index])
    male = index % 2 == 0
    return dict(
        f0=(110.0 if male else 205.0) * np.exp(rng.normal(0, 0.08)),
        formant_scale=(1.0 if male else 1.15) * np.exp(rng.normal(0, 0.03)),
        level=rng.normal(0, 1.5),  # dB
        rate=np.exp(rng.normal(0, 0.08)),
        tilt=rng.normal(0, 0.12),
    )


def synthesize(label: str, speaker: dict, rng: np.random.Generator) -> np.ndarray:
    """One utterance of synthetic voiced speech, float32 at 16 kHz.

    Args:
        label: a class of `SYNTHETIC_LABELS`.
        speaker: traits from the speaker (f0, formant_scale, level, rate, tilt).
        rng: the utterance's random generator.
    """
    p = _CLASS_PROFILES[label]
    sr = SAMPLE_RATE
    n = int(rng.uniform(1.5, 3.5) * sr)
    t = np.arange(n) / sr
    u = t / t[-1]  # 0 → 1 over the utterance

    # Pitch: class level × speaker, a slow contour of class range, a slope,
    # and jitter (random per-period fluctuation, interpolated from 200 Hz).
    contour = 0.5 * p["range"] * np.sin(2 * np.pi * rng.uniform(0.4, 0.9) * t + rng.uniform(0, 6.3))
    semitones = contour + p["slope"] * (u - 0.5)
    knots = np.arange(int(t[-1] / 0.005) + 2) * 0.005
    jitter = np.interp(t, knots, rng.normal(0, 1, len(knots)))
    f0 = speaker["f0"] * p["pitch"] * 2 ** (semitones / 12) * (1 + p["jitter"] * jitter)
    phase = 2 * np.pi * np.cumsum(f0) / sr

    # Harmonic source, amplitudes k**-tilt, up to 3.8 kHz; z**k by recursion
    # (one complex multiply per harmonic instead of a sin).
    tilt = max(0.3, p["tilt"] + speaker["tilt"])
    z = np.exp(1j * phase)
    zk = z.copy()
    source = np.zeros(n)
    for k in range(1, int(3800 / f0.max()) + 1):
        source += k**-tilt * zk.imag
        zk *= z
    source += p["breath"] * rng.normal(0, 1, n)

    # Syllables: a smooth envelope at the class' tempo; each syllable gets a
    # vowel, realised by cross-fading between vowel-filtered versions.
    rate = p["rate"] * speaker["rate"] * np.exp(rng.normal(0, 0.05))
    syllable_phase = np.cumsum(rate * (1 + 0.25 * np.sin(2 * np.pi * 0.5 * t + rng.uniform(0, 6.3)))) / sr
    envelope = np.sin(np.pi * (syllable_phase % 1.0)) ** 1.5
    vowel_of_syllable = rng.integers(0, len(_VOWELS), int(syllable_phase[-1]) + 2)
    which = vowel_of_syllable[syllable_phase.astype(int)]
    voiced = np.zeros(n)
    for v in np.unique(which):
        voiced += np.where(which == v, _formant_filter(source, _VOWELS[v] * speaker["formant_scale"]), 0.0)
    x = voiced * envelope * np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.05)  # 50 ms fades

    level = p["level"] + speaker["level"] + rng.normal(0, 1.0)
    x *= 10 ** (level / 20) / (np.sqrt(np.mean(x**2)) + 1e-12)
    x += 10 ** (-65 / 20) * rng.normal(0, 1, n)  # a quiet noise floor, like a room
    return np.clip(x, -0.98, 0.98).astype(np.float32)


def _formant_filter(x: np.ndarray, formants: np.ndarray) -> np.ndarray:
    """Cascade of two-pole resonators at `formants` with unit gain at DC."""
    for f, bw in zip(formants, _BANDWIDTHS):
        r = np.exp(-np.pi * bw / SAMPLE_RATE)
        a = [1.0, -2 * r * np.cos(2 * np.pi * f / SAMPLE_RATE), r * r]
        x = signal.lfilter([sum(a)], a, x)
    return x


def _wav_bytes(waveform: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes((np.clip(waveform, -1, 1) * 32767).astype("<i2").tobytes())
    return buffer.getvalue()
