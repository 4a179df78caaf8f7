"""Audio decoding: any file → 16 kHz mono float32 in [-1, 1].

Three ways in, one result:
- `load_audio(path)` (default backend "soundfile"): WAV (8/16/24/32-bit int,
  float), FLAC and OGG through libsndfile, any rate resampled with soxr (HQ),
  channels averaged to mono. The path every corpus reader and app uses.
- `decode_wav_tf(contents)`: `tf.audio.decode_wav` inside a graph or tf.data
  pipeline, for 16-bit PCM WAV bytes already at the target rate.
- `load_audio(path, backend="tfio")`, and `load_audio_tfio(path)` in a graph
  or tf.data pipeline: tensorflow-io's decoders and resampler (WAV, FLAC, Ogg
  Vorbis, MP3, any rate), the same samples within a tested tolerance.
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
    tfio backend (`load_audio_tfio` says how close the two are). Float files
    may hold values beyond full scale, and resampling can overshoot slightly
    near full scale: the result is clipped to [-1, 1], so every backend gives
    the same range. Memory is linear in
    the duration (a 10-minute file is ~38 MB of float32).

    Args:
        path: a WAV, FLAC, OGG or MP3 file.
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
    return prepare_waveform(waveform, rate, sample_rate, source=str(path))


def prepare_waveform(waveform, sample_rate: int, target_rate: int = 16000, source: str = "<array>") -> np.ndarray:
    """Mono float32 in [-1, 1] at `target_rate`: what `load_audio` does after decoding.

    The one place where decoded audio (from a file, a microphone or an array a
    user passes in) is checked, mixed down, resampled and clipped.

    Args:
        waveform: samples, `(n,)` or `(n, channels)`.
        sample_rate: their rate in Hz.
        target_rate: the rate to return (soxr HQ when it differs).
        source: what to name in error messages (a path, `"<array>"`).

    Returns:
        float32 array (n',).

    Raises:
        AudioDecodeError: empty input, a wrong shape, or NaN/Inf samples.

    Example:
    >>> prepare_waveform(np.zeros((8000, 2)), 8000).shape
    (16000,)
    """
    waveform = frontend.to_mono(np.asarray(waveform, dtype=np.float32))
    if waveform.ndim != 1:
        raise AudioDecodeError(f"{source}: waveform must be (n,) or (n, channels); got shape {waveform.shape}")
    if int(sample_rate) <= 0:
        raise AudioDecodeError(f"{source}: sample rate must be positive; got {sample_rate}")
    try:
        frontend.check_waveform(waveform, source)
    except frontend.FrontendError as e:
        raise AudioDecodeError(str(e)) from e
    if int(sample_rate) != int(target_rate):
        import soxr  # only needed here; comes with librosa

        waveform = soxr.resample(waveform, int(sample_rate), int(target_rate), quality="HQ")
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
    import re

    _import_tfio()
    import tensorflow as tf

    try:
        waveform = _eager_load_audio_tfio(sample_rate)(str(path))
    except tf.errors.OpError as e:
        # First line of TensorFlow's message, without its "{{function_node ...}}" tags.
        reason = re.sub(r"\{\{[^}]*\}\}\s*", "", e.message.strip().splitlines()[0])
        raise AudioDecodeError(
            f"tensorflow-io cannot decode {path}: {reason}. The file is empty, truncated, "
            "corrupt, not audio or in an encoding tensorflow-io lacks; try "
            'backend="soundfile".'
        ) from e
    return waveform.numpy(), sample_rate


_EAGER_TFIO = {}


def _eager_load_audio_tfio(sample_rate: int):
    """`load_audio_tfio` traced once per rate, so eager calls do not re-trace it."""
    if sample_rate not in _EAGER_TFIO:
        import tensorflow as tf

        _EAGER_TFIO[sample_rate] = tf.function(
            lambda path: load_audio_tfio(path, sample_rate),
            input_signature=[tf.TensorSpec([], tf.string)],
            autograph=False,
        )
    return _EAGER_TFIO[sample_rate]


def load_audio_tfio(path, sample_rate: int = 16000):
    """Decodes and resamples an audio file with tensorflow-io, in a TensorFlow graph.

    The in-graph twin of `load_audio(path, sample_rate, backend="tfio")` (which
    calls it), for `tf.data` pipelines, safe with `num_parallel_calls`:

        ds = tf.data.Dataset.from_tensor_slices(paths).map(load_audio_tfio)

    Reads WAV (8/16/24/32-bit integer, 32-bit float), FLAC, Ogg Vorbis and MP3 with
    tensorflow-io's decoders, scales samples to [-1, 1] as soundfile does, averages
    channels and resamples other rates to `sample_rate` with tensorflow-io's
    resampler, re-aligned in time and length to soxr's output. The decoded samples
    equal the default backend's (WAV, FLAC: bit for bit). Resampled audio band-limited
    to 6 kHz matches soxr within 50 dB SNR over the whole file and 70 dB away from
    its first and last 2.5 ms, real 48 kHz speech within 80 dB below 6.5 kHz
    (tests/audio/test_decode.py); 7-8 kHz content is attenuated more than by soxr
    (speex's filter: -0.4 dB at 7 kHz, -10 dB at 7.5 kHz).
    Needs the optional extra `sercal-keras[tfio]` (TF 2.17.1, DESIGN §3).

    Args:
        path: scalar `tf.string` (or str): the file's path.
        sample_rate: the rate to return, in Hz.

    Returns:
        float32 tensor (n,) in [-1, 1].

    Raises:
        TfioUnavailableError: tensorflow-io cannot be imported.
        tf.errors.OpError (when run): the file is missing, not audio, in an
            unsupported encoding, or holds NaN/Inf samples.

    Example:
    >>> ds = tf.data.Dataset.from_tensor_slices(paths).map(load_audio_tfio)  # doctest: +SKIP
    """
    _import_tfio()
    import tensorflow as tf

    # Stateless ops on the file's bytes only: tensorflow-io's AudioIOTensor keeps one
    # reader per graph node, which parallel tf.data calls share (files get mixed up).
    contents = tf.io.read_file(path)
    header = tf.strings.join([tf.strings.substr(contents, 0, 4096), _ZEROS])
    magic = tf.strings.substr(header, 0, 4)
    kind = tf.argmax(
        tf.cast(
            tf.stack(
                [
                    tf.equal(magic, "RIFF"),
                    tf.equal(magic, "fLaC"),
                    tf.equal(magic, "OggS"),
                    _looks_like_mp3(header),
                    True,
                ]
            ),
            tf.int32,
        ),
        output_type=tf.int32,
    )
    check = tf.debugging.Assert(
        kind < 4, ["not a WAV, FLAC, Ogg Vorbis or MP3 file (by its first bytes)"]
    )
    with tf.control_dependencies([check]):
        kind = tf.identity(kind)
    samples, rate = tf.switch_case(
        kind,
        [
            lambda: _tfio_wav(contents, header),
            lambda: _tfio_flac(contents, header),
            lambda: _tfio_vorbis(contents, header),
            lambda: _tfio_mp3(contents, header),
        ],
    )
    waveform = tf.debugging.assert_all_finite(
        tf.reduce_mean(samples, axis=-1), "the file holds NaN/Inf samples"
    )
    waveform = tf.cond(
        tf.equal(rate, sample_rate),
        lambda: waveform,
        lambda: _tfio_resample(waveform, rate, sample_rate),
    )
    return tf.reshape(tf.clip_by_value(waveform, -1.0, 1.0), [-1])


_ZEROS = "\0" * 64  # header padding, so that reading past a short file's end gives zeros


def _uint_at(header, offset, size):
    """Little-endian unsigned integer of `size` (1, 2, 4) bytes at `offset`, as int64."""
    import tensorflow as tf

    dtype = {1: tf.uint8, 2: tf.uint16, 4: tf.int32}[size]  # decode_raw has no uint32
    value = tf.cast(tf.io.decode_raw(tf.strings.substr(header, offset, size), dtype)[0], tf.int64)
    return value % 2**32 if size == 4 else value


def _offset_of(header, marker):
    """Byte offset of the first `marker` in `header` (its length if absent)."""
    import tensorflow as tf

    return tf.cast(tf.strings.length(tf.strings.split(header, marker)[0]), tf.int64)


def _by_dtype(index, decode, kinds):
    """tf.switch_case over decoders for `kinds` (tensorflow-io needs a static dtype)."""
    import tensorflow as tf

    return tf.switch_case(index, [lambda kind=kind: decode(kind) for kind in kinds])


def _tfio_wav(contents, header):
    import tensorflow as tf

    tfio = _import_tfio()
    fmt = _offset_of(header, "fmt ")
    check = tf.debugging.Assert(
        fmt < tf.cast(tf.strings.length(header), tf.int64), ["WAV file without a fmt chunk"]
    )
    with tf.control_dependencies([check]):
        fmt = tf.identity(fmt)
    tag = _uint_at(header, fmt + 8, 2)
    rate = _uint_at(header, fmt + 12, 4)
    bits = _uint_at(header, fmt + 22, 2)
    sub_format = _uint_at(header, fmt + 32, 2)  # WAVE_FORMAT_EXTENSIBLE's SubFormat
    integer = tf.logical_or(
        tf.equal(tag, 1), tf.logical_and(tf.equal(tag, 0xFFFE), tf.equal(sub_format, 1))
    )
    # tensorflow-io 0.37.1 reads a WAV's chunks without the pad byte after an
    # odd-sized chunk: a file ending in one (the RAVDESS originals) reads past its
    # end. Eight zero bytes at the end let it finish.
    padded = tf.strings.join([contents, "\0" * 8])
    kinds = (tf.uint8, tf.int16, tf.int32, tf.float32)
    index = tf.argmax(tf.cast(tf.equal(bits, [8, 16, 24, 32]), tf.int32), output_type=tf.int32)
    check = tf.debugging.Assert(
        tf.reduce_any(tf.equal(bits, [8, 16, 24, 32])), ["unsupported WAV bits per sample:", bits]
    )
    with tf.control_dependencies([check]):
        index = tf.identity(index)

    def decode(kind):
        samples = tfio.audio.decode_wav(padded, dtype=kind)
        if kind == tf.float32:  # tensorflow-io returns 32-bit integer PCM as float32 bits
            return tf.cond(
                integer, lambda: _int_to_float(tf.bitcast(samples, tf.int32)), lambda: samples
            )
        return _int_to_float(samples)

    return _by_dtype(index, decode, kinds), rate


def _tfio_flac(contents, header):
    import tensorflow as tf

    tfio = _import_tfio()
    # STREAMINFO, the first metadata block: 20-bit rate at byte 18, 5-bit bits-1 after.
    b18, b19, b20, b21 = (_uint_at(header, i, 1) for i in (18, 19, 20, 21))
    rate = b18 * 4096 + b19 * 16 + b20 // 16
    bits = (b20 % 2) * 16 + b21 // 16 + 1
    kinds = (tf.uint8, tf.int16, tf.int32)
    index = tf.cast(tf.where(bits <= 8, 0, tf.where(bits <= 16, 1, 2)), tf.int32)

    def decode(kind):
        return _int_to_float(tfio.audio.decode_flac(contents, dtype=kind))

    return _by_dtype(index, decode, kinds), rate


def _tfio_vorbis(contents, header):
    tfio = _import_tfio()
    # Vorbis identification header: "\x01vorbis", version (4), channels (1), rate (4).
    rate = _uint_at(header, _offset_of(header, "\x01vorbis") + 12, 4)
    return tfio.audio.decode_vorbis(contents), rate


_MP3_RATES = (  # by MPEG version bits (2.5, reserved, 2, 1), then the rate index
    (11025, 12000, 8000, 0),
    (0, 0, 0, 0),
    (22050, 24000, 16000, 0),
    (44100, 48000, 32000, 0),
)


def _mp3_sync(header):
    """Offsets in `header` where an MPEG audio frame header (11 set sync bits) starts."""
    import tensorflow as tf

    data = tf.cast(tf.io.decode_raw(header, tf.uint8), tf.int32)
    sync = tf.logical_and(tf.equal(data[:-1], 0xFF), tf.equal(data[1:] // 32, 7))
    return data, tf.cast(tf.where(sync)[:, 0], tf.int64)


def _looks_like_mp3(header):
    import tensorflow as tf

    _, syncs = _mp3_sync(tf.strings.substr(header, 0, 4))
    return tf.logical_or(tf.equal(tf.strings.substr(header, 0, 3), "ID3"), tf.size(syncs) > 0)


def _tfio_mp3(contents, header):
    import tensorflow as tf

    tfio = _import_tfio()
    # Skip an ID3v2 tag (10 bytes + a 4 x 7-bit "syncsafe" size), then the first frame.
    id3 = tf.equal(tf.strings.substr(header, 0, 3), "ID3")
    size = sum(_uint_at(header, 6 + i, 1) * 128 ** (3 - i) for i in range(4))
    start = tf.where(id3, 10 + size, 0)
    frames = tf.strings.join([tf.strings.substr(contents, start, 4096), _ZEROS])
    data, syncs = _mp3_sync(frames)
    check = tf.debugging.Assert(tf.size(syncs) > 0, ["no MPEG audio frame found"])
    with tf.control_dependencies([check]):
        first = syncs[0]
    version = (data[first + 1] // 8) % 4
    rate = tf.gather_nd(tf.constant(_MP3_RATES, tf.int64), [version, (data[first + 2] // 4) % 4])
    return tfio.audio.decode_mp3(contents), rate


# tensorflow-io 0.37.1 resamples with speex at a fixed quality 4, whose filter is
# 64 taps per input sample for upsampling and 64 * rate_in / rate_out (rounded up to a
# multiple of 8) for downsampling, given reduced rates. Its output lags the input by
# half the filter length, in input samples, and `tfio.audio.resample` keeps
# len * rate_out // rate_in samples: the first ~2 ms of its output are filter warm-up and
# the last ~2 ms of the audio are lost. `_tfio_resample` removes that lag exactly.
_SPEEX_BASE_TAPS = 64


def _tfio_resample(waveform, rate_in, rate_out: int):
    """`tfio.audio.resample`, without its lag and with soxr's output length.

    With g = gcd(rate_in, rate_out), num = rate_in / g and den = rate_out / g,
    speex's lag is D = taps / 2 input samples. Padding the input with P = k * num - D
    zeros (k = ceil(D / num)) makes the lag k * num input samples = k * den output
    samples, a whole number, which is dropped: no fractional delay is left. The end is
    padded with D + num zeros so that the filter is flushed, and the output is cut to
    round(n * rate_out / rate_in) samples, as soxr returns.
    """
    import tensorflow as tf

    tfio = _import_tfio()
    rate_in = tf.cast(rate_in, tf.int64)
    rate_out = tf.constant(rate_out, tf.int64)
    gcd, _ = tf.while_loop(lambda a, b: b > 0, lambda a, b: (b, a % b), (rate_in, rate_out))
    num, den = rate_in // gcd, rate_out // gcd
    taps = tf.where(
        num > den, ((_SPEEX_BASE_TAPS * num // den - 1) // 8) * 8 + 8, _SPEEX_BASE_TAPS
    )
    lag = taps // 2
    k = (lag + num - 1) // num
    n = tf.shape(waveform, out_type=tf.int64)[0]
    n_out = (2 * n * rate_out + rate_in) // (2 * rate_in)
    padded = tf.pad(waveform, [[k * num - lag, lag + num]])
    resampled = tfio.audio.resample(padded, rate_in=rate_in, rate_out=rate_out)
    return resampled[k * den : k * den + n_out]


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
