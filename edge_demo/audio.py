"""Audio files → 16 kHz mono float32, with numpy and the standard library first.

Decoding: the front-end's `read_wav` (standard library + numpy: PCM 8/16/24/32-bit
and IEEE float WAV). When that cannot decode a file (e.g. a-law/µ-law WAV, FLAC,
OGG) and `soundfile` is installed, soundfile tries; without it the front-end's
error is reported. For PCM/float WAV both give the same samples, so the choice
never changes the features.

Resampling (only when the file's rate differs from the model's): soxr HQ when
`soxr` is installed, which is what training used (`sercal_keras.audio.load_audio`);
otherwise the front-end's numpy windowed-sinc resampler (about -45 dB from soxr
on speech).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from edge_demo.frontend_loader import load_frontend
from edge_demo.runtime import EdgeAudioError

DECODERS = ("auto", "stdlib", "soundfile")


@dataclass
class Audio:
    """A decoded file: `waveform` at `sample_rate`, and how it got there."""

    waveform: np.ndarray
    sample_rate: int
    original_rate: int
    decoder: str
    resampler: Optional[str]

    @property
    def seconds(self) -> float:
        return len(self.waveform) / self.sample_rate


def _soundfile():
    try:
        import soundfile
    except (ImportError, OSError):  # OSError: the wheel is there but libsndfile is not
        return None
    return soundfile


def _soxr():
    try:
        import soxr
    except ImportError:
        return None
    return soxr


def load_audio(path, sample_rate: int = 16000, decoder: str = "auto", frontend=None) -> Audio:
    """Reads an audio file as mono float32 in [-1, 1] at `sample_rate`.

    Args:
        path: a WAV file (other formats when soundfile is installed).
        sample_rate: the model's rate (the card's `feature_config.sample_rate`).
        decoder: `"auto"` (standard library, then soundfile if present),
            `"stdlib"` or `"soundfile"`.
        frontend: the loaded front-end module (default: `load_frontend()`).

    Raises:
        EdgeAudioError: a one-line message naming the file: missing, empty,
            not PCM/float WAV (and no soundfile to decode it), a header with a
            sample rate of 0, no samples, or NaN/Inf samples.
    """
    if decoder not in DECODERS:
        raise EdgeAudioError(f"decoder must be one of {DECODERS}, got {decoder!r}.")
    frontend = frontend or load_frontend()
    path = Path(path)
    if not path.is_file():
        raise EdgeAudioError(f"{path}: no such file.")
    if path.stat().st_size == 0:
        raise EdgeAudioError(f"{path}: empty file (0 bytes); nothing to classify.")

    samples, rate, used = None, 0, decoder
    first_error = None
    if decoder in ("auto", "stdlib"):
        try:
            samples, rate = frontend.read_wav(path)
            used = "stdlib"
        except frontend.FrontendError as error:
            first_error = error
            if decoder == "stdlib":
                raise EdgeAudioError(_one_line(error)) from error
    if samples is None:
        soundfile = _soundfile()
        if soundfile is None:
            if decoder == "soundfile":
                raise EdgeAudioError(
                    f"{path}: decoder 'soundfile' asked for but soundfile is not installed "
                    "(`pip install soundfile`)."
                )
            raise EdgeAudioError(
                _one_line(first_error) + " (Installing soundfile adds a-law/µ-law WAV, FLAC and OGG.)"
            ) from first_error
        try:
            samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
            used = "soundfile"
        except Exception as error:  # libsndfile reports every problem as one error type
            message = _one_line(first_error) if first_error is not None else (
                f"{path}: cannot decode ({_one_line(error)}); convert it with "
                "`ffmpeg -i <file> -ar 16000 -ac 1 out.wav`."
            )
            raise EdgeAudioError(message) from error
    if not rate or rate <= 0:
        raise EdgeAudioError(f"{path}: sample rate is {rate} Hz in the header; the file is corrupt.")
    waveform = frontend.to_mono(samples)
    try:
        frontend.check_waveform(waveform, path)
    except frontend.FrontendError as error:
        raise EdgeAudioError(_one_line(error)) from error
    resampler = None
    if rate != sample_rate:
        soxr = _soxr()
        if soxr is not None:
            waveform = soxr.resample(waveform, rate, sample_rate, quality="HQ").astype(np.float32)
            resampler = "soxr"
        else:
            waveform = frontend.resample(waveform, rate, sample_rate)
            resampler = "numpy"
    waveform = np.clip(waveform, -1.0, 1.0).astype(np.float32, copy=False)
    return Audio(waveform, sample_rate, int(rate), used, resampler)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
