"""Audio decoding: any file → 16 kHz mono float32 in [-1, 1].

Three ways in, one result:
- `load_audio(path)` (default backend "soundfile"): WAV (8/16/24/32-bit int,
  float), FLAC and OGG through libsndfile, any rate resampled with soxr (HQ),
  channels averaged to mono. The path every corpus reader and app uses.
- `decode_wav_tf(contents)`: `tf.audio.decode_wav` inside a graph or tf.data
  pipeline, for 16-bit PCM WAV bytes already at the target rate.
- `load_audio(path, backend="tfio")`: tensorflow-io's decoders and resampler.
  tensorflow-io is abandoned upstream and its native ops load only on
  TF 2.17.1 (DESIGN §3), so it is an optional extra
  (`pip install "sercal-keras[tfio]"`), imported only when asked for.

Every failure is an `AudioDecodeError` that names the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import numpy as np

from sercal_keras.audio import frontend
from sercal_keras.errors import AudioDecodeError, ConfigError

PathLike = Union[str, "os.PathLike[str]"]
BACKENDS = ("soundfile", "tfio")

_TFIO_FIX = (
    'Install the optional backend with `pip install "sercal-keras[tfio]"` '
    "(it pins tensorflow 2.17.1 and numpy<2: tensorflow-io's audio ops do not load "
    'on newer TensorFlow), or use the default backend="soundfile".'
)


class TfioUnavailableError(ConfigError, ImportError):
    """`backend="tfio"` was asked for but tensorflow-io cannot be imported."""


def load_audio(
    path: PathLike, sample_rate: int = 16000, backend: str = "soundfile"
) -> np.ndarray:
    """Decodes an audio file to mono float32 in [-1, 1] at `sample_rate`.

    Multi-channel audio is averaged to mono. Other rates are resampled with
    soxr (HQ) for the soundfile backend, with `tfio.audio.resample` for the
    tfio backend. Float files may hold values beyond full scale, and
    resampling can overshoot slightly near full scale: the result is clipped
    to [-1, 1], so every backend gives the same range. Memory is linear in
    the duration (a 10-minute file is ~38 MB of float32).

    Args:
        path: a WAV, FLAC or OGG file (soundfile); WAV/FLAC/OGG/MP3 (tfio).
        sample_rate: the rate to return, in Hz.
        backend: `"soundfile"` (default) or `"tfio"` (optional extra).

    Returns:
        float32 array (n,).

    Raises:
        AudioDecodeError: missing, empty, corrupt or non-audio file, or
            NaN/Inf samples.
        TfioUnavailableError: `backend="tfio"` without tensorflow-io.
        ConfigError: unknown backend.

    Example:
    >>> waveform = load_audio("03a01Fa.wav")  # doctest: +SKIP
    >>> waveform.dtype, waveform.ndim  # doctest: +SKIP
    (dtype('float32'), 1)
    """
    if backend not in BACKENDS:
        raise ConfigError(f"Unknown audio backend {backend!r}; choose one of {BACKENDS}.")
    path = Path(path)
    if not path.is_file():
        raise AudioDecodeError(
            f"Audio file not found: {path}. Check the path (and the corpus data_dir)."
        )
    if backend == "tfio":
        waveform, rate = _decode_tfio(path, sample_rate)
    else:
        waveform, rate = _decode_soundfile(path)
    try:
        frontend.check_waveform(waveform, path)
    except frontend.FrontendError as e:
        raise AudioDecodeError(str(e)) from e
    if rate != sample_rate:
        import soxr  # only needed here; comes with librosa

        waveform = soxr.resample(waveform, rate, sample_rate, quality="HQ")
    return np.clip(waveform, -1.0, 1.0).astype(np.float32, copy=False)


def _decode_soundfile(path: Path):
    import soundfile as sf

    try:
        samples, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # libsndfile reports every format problem as one error type
        raise AudioDecodeError(
            f"Cannot decode {path}: {e}. The file is empty, truncated, corrupt or not "
            "audio; re-export it as WAV/FLAC/OGG (e.g. `ffmpeg -i <file> out.wav`)."
        ) from e
    return frontend.to_mono(samples), int(rate)


def _import_tfio():
    try:
        import tensorflow_io as tfio
    except Exception as e:  # ImportError, or a native-op load failure on newer TF
        raise TfioUnavailableError(
            f"backend='tfio' needs tensorflow-io, which cannot be imported here ({e}). "
            + _TFIO_FIX
        ) from e
    return tfio


def _decode_tfio(path: Path, sample_rate: int):
    tfio = _import_tfio()
    import tensorflow as tf

    try:
        audio = tfio.audio.AudioIOTensor(str(path))
        samples = audio.to_tensor()
        rate = int(audio.rate.numpy())
    except Exception as e:
        raise AudioDecodeError(f"tensorflow-io cannot decode {path}: {e}") from e
    samples = _int_to_float(samples)
    waveform = tf.reduce_mean(samples, axis=-1)
    if rate != sample_rate:  # resample here so soxr is not needed on this path
        waveform = tfio.audio.resample(waveform, rate_in=rate, rate_out=sample_rate)
        rate = sample_rate
    return waveform.numpy().astype(np.float32), rate


def _int_to_float(samples):
    """tfio returns the stored integer type; scale it as soundfile does."""
    import tensorflow as tf

    if samples.dtype == tf.uint8:
        return (tf.cast(samples, tf.float32) - 128.0) / 128.0
    if samples.dtype.is_integer:
        return tf.cast(samples, tf.float32) / float(2 ** (samples.dtype.size * 8 - 1))
    return tf.cast(samples, tf.float32)


def decode_wav_tf(contents, sample_rate: int = 16000):
    """Decodes 16-bit PCM WAV bytes in a TensorFlow graph (e.g. in tf.data).

    `tf.audio.decode_wav` reads 16-bit PCM only and cannot resample, so the
    file must already be at `sample_rate`; the op fails at run time with a
    message saying so otherwise. Channels are averaged to mono.

    Args:
        contents: scalar `tf.string` tensor with the file's bytes.
        sample_rate: the rate the WAV must have.

    Returns:
        float32 tensor (n,) in [-1, 1).

    Example:
    >>> ds = tf.data.Dataset.list_files("wav/*.wav")  # doctest: +SKIP
    >>> ds = ds.map(lambda p: decode_wav_tf(tf.io.read_file(p)))  # doctest: +SKIP
    """
    import tensorflow as tf

    samples, rate = tf.audio.decode_wav(contents)
    check = tf.debugging.assert_equal(
        rate,
        tf.constant(sample_rate, tf.int32),
        message=(
            f"decode_wav_tf needs {sample_rate} Hz WAV and cannot resample: convert the "
            "files with sercal_keras.audio.load_audio, or use backend='tfio'"
        ),
    )
    with tf.control_dependencies([check]):
        return tf.reduce_mean(samples, axis=-1)
