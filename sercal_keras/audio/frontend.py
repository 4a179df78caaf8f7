"""The audio front-end: file → waveform → segments → MFCC, in numpy alone.

This is the one definition of the features. Training, evaluation, export, the
reports and the edge demo all call these functions, so a model always sees the
same numbers it was trained on.

The file is deliberately **standalone**: it imports only numpy and the standard
library, and nothing from `sercal_keras` (not even relatively), so the edge
runtime can load it by file path on a device that has numpy and LiteRT only:

>>> import importlib.util  # doctest: +SKIP
>>> spec = importlib.util.spec_from_file_location("frontend", "frontend.py")  # doctest: +SKIP
>>> frontend = importlib.util.module_from_spec(spec)  # doctest: +SKIP
>>> spec.loader.exec_module(frontend)  # doctest: +SKIP

(No `from __future__ import annotations` here: with it, the dataclass would
need the module registered in `sys.modules` before it could load this way.)

Its errors are `FrontendError` (a `ValueError`); the library wraps them in
`sercal_keras.errors.AudioDecodeError`.

`mfcc` reproduces `librosa.feature.mfcc(y=segment, sr=16000, n_mfcc=26)` (librosa
defaults: n_fft 2048, hop 512, 128 Slaney mels, power_to_db with top_db 80,
DCT-II ortho); the tests hold it to librosa within 2e-3 (absolute, on values
up to ~1100) on real speech and edge cases.
"""

import dataclasses
import functools
import math
import os
import struct
from typing import Any, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

PathLike = Union[str, "os.PathLike[str]"]

# Segments per numpy batch inside `mfcc`: bounds the (n, frames, n_fft) buffer
# to ~16 MB, so a 10-minute file does not need gigabytes.
_MFCC_CHUNK = 32

# What `mfcc` returns per frame: cepstra (the paper's features) or the log-mel
# bands they are computed from (no DCT).
REPRESENTATIONS = ("mfcc", "log_mel")

# Mel bands when `FeatureConfig.n_mels` is not given: librosa's 128 under the
# paper's MFCCs, and the 64 bands log-mel models were measured with
# (benchmarks/results/experiments.md #93, #96, #97).
DEFAULT_N_MELS = {"mfcc": 128, "log_mel": 64}


class FrontendError(ValueError):
    """A file cannot be read as audio, or holds samples that are not finite."""


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    """Everything that defines the model's input features.

    Stored with every model (`to_dict`), so inference recomputes exactly the
    features the model was trained on. The defaults are the paper preset:
    16 kHz audio, 2 s segments, hop 1 s in training and 0.4 s in evaluation,
    26 MFCCs with librosa's defaults, giving 26 × 63 per segment.

    Args:
        sample_rate: waveform rate in Hz.
        segment_seconds: length of one model input.
        train_hop_seconds: segment hop when building training data.
        eval_hop_seconds: segment hop for evaluation and inference.
        n_mfcc: cepstral coefficients kept.
        n_fft: FFT size (and window length) in samples.
        hop_length: STFT hop in samples.
        n_mels: mel bands; `None` (the default) means 128 for MFCCs
            (librosa's, the paper's) and 64 for log-mel bands.
        fmin: lowest mel frequency in Hz.
        fmax: highest mel frequency in Hz; `None` means Nyquist.
        top_db: dynamic range kept below each segment's loudest mel bin.
        representation: `"mfcc"` (the paper: the first `n_mfcc` DCT-II
            coefficients of the log-mel bands) or `"log_mel"` (the `n_mels`
            log-mel bands themselves, neighbouring rows being neighbouring
            frequencies; `n_mfcc` is then unused).

    Example:
    >>> config = FeatureConfig()
    >>> config.feature_shape, config.hop_samples(training=False)
    ((26, 63), 6400)
    >>> FeatureConfig(representation="log_mel").feature_shape
    (64, 63)
    """

    sample_rate: int = 16000
    segment_seconds: float = 2.0
    train_hop_seconds: float = 1.0
    eval_hop_seconds: float = 0.4
    n_mfcc: int = 26
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: Optional[int] = None
    fmin: float = 0.0
    fmax: Optional[float] = None
    top_db: float = 80.0
    representation: str = "mfcc"

    def __post_init__(self):
        if self.representation not in REPRESENTATIONS:
            raise ValueError(
                f"FeatureConfig.representation must be one of {REPRESENTATIONS}. "
                f"Received: representation={self.representation!r}"
            )
        if self.n_mels is None:  # resolved here, so `to_dict` and cache keys hold the number
            object.__setattr__(self, "n_mels", DEFAULT_N_MELS[self.representation])
        positive = {
            "sample_rate": self.sample_rate,
            "segment_seconds": self.segment_seconds,
            "train_hop_seconds": self.train_hop_seconds,
            "eval_hop_seconds": self.eval_hop_seconds,
            "n_mfcc": self.n_mfcc,
            "n_fft": self.n_fft,
            "hop_length": self.hop_length,
            "n_mels": self.n_mels,
            "top_db": self.top_db,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(
                    f"FeatureConfig.{name} must be positive. Received: {name}={value!r}"
                )
        if self.representation == "mfcc" and self.n_mfcc > self.n_mels:
            raise ValueError(
                "FeatureConfig.n_mfcc cannot exceed n_mels. "
                f"Received: n_mfcc={self.n_mfcc}, n_mels={self.n_mels}"
            )
        nyquist = self.sample_rate / 2
        if not 0 <= self.fmin < (self.fmax or nyquist) <= nyquist:
            raise ValueError(
                "FeatureConfig needs 0 <= fmin < fmax <= sample_rate / 2. "
                f"Received: fmin={self.fmin}, fmax={self.fmax}, "
                f"sample_rate={self.sample_rate}"
            )

    @property
    def segment_samples(self) -> int:
        """Samples in one segment (32000 by default)."""
        return int(round(self.segment_seconds * self.sample_rate))

    @property
    def num_frames(self) -> int:
        """STFT frames per segment with centred frames: 1 + samples // hop."""
        return 1 + self.segment_samples // self.hop_length

    @property
    def feature_rows(self) -> int:
        """Rows of one segment's features: `n_mfcc`, or `n_mels` for log-mel."""
        return self.n_mfcc if self.representation == "mfcc" else self.n_mels

    @property
    def feature_kind(self) -> str:
        """What each row is, for reports and sidecars: "MFCC" or "log-mel bands"."""
        return "MFCC" if self.representation == "mfcc" else "log-mel bands"

    @property
    def feature_name(self) -> str:
        """What the rows are, for reports: "13 MFCC" or "64 log-mel bands"."""
        return f"{self.feature_rows} {self.feature_kind}"

    @property
    def feature_shape(self) -> Tuple[int, int]:
        """Shape of one segment's features: (feature_rows, num_frames)."""
        return (self.feature_rows, self.num_frames)

    def hop_samples(self, training: bool) -> int:
        """Segment hop in samples: the training hop or the evaluation hop."""
        seconds = self.train_hop_seconds if training else self.eval_hop_seconds
        return int(round(seconds * self.sample_rate))

    def to_dict(self) -> dict:
        """A JSON-ready dict of every field.

        `representation` is left out while it is the default `"mfcc"`, so MFCC
        model files and feature-cache keys stay what they were before the
        field existed (and older readers still accept them).
        """
        d = dataclasses.asdict(self)
        if d["representation"] == "mfcc":
            del d["representation"]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "FeatureConfig":
        """Inverse of `to_dict`; unknown keys raise `ValueError` (no silent drift)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(
                f"Unknown FeatureConfig keys {unknown}; known keys: {sorted(known)}. "
                "The model file was probably written by a newer sercal-keras."
            )
        return cls(**dict(d))


# --------------------------------------------------------------------------- WAV


_PCM, _FLOAT, _EXTENSIBLE = 0x0001, 0x0003, 0xFFFE


def read_wav(path: PathLike) -> Tuple[np.ndarray, int]:
    """Reads a RIFF/WAVE file with the standard library and numpy.

    Handles PCM 8/16/24/32-bit integer and IEEE float 32/64-bit samples, plain
    or WAVE_FORMAT_EXTENSIBLE headers, and skips chunks it does not need (e.g.
    the `FLLR` padding chunk in the RAVDESS release). Integer samples are scaled
    to [-1, 1); float samples are returned as stored.

    Args:
        path: a `.wav` file.

    Returns:
        `(samples, sample_rate)`: float32 samples, shape (n,) for mono or
        (n, channels) otherwise.

    Raises:
        FrontendError: the file is missing, empty, not RIFF/WAVE, truncated
            before its audio, or in an unsupported encoding.

    Example:
    >>> samples, rate = read_wav("speech.wav")  # doctest: +SKIP
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise FrontendError(f"Cannot read audio file {path}: {e.strerror or e}.") from e
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise FrontendError(
            f"{path} is not a RIFF/WAVE file (it has {len(data)} bytes and no "
            "'RIFF…WAVE' header). Check that it is a real .wav, or convert it with "
            "`ffmpeg -i <file> -ar 16000 -ac 1 out.wav`."
        )
    fmt, payload = None, None
    pos = 12
    while pos + 8 <= len(data):
        chunk_id = data[pos : pos + 4]
        (size,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        body = data[pos + 8 : pos + 8 + size]  # a truncated last chunk is cut short
        if chunk_id == b"fmt ":
            fmt = body
        elif chunk_id == b"data":
            payload = body
            break
        pos += 8 + size + (size & 1)  # chunks are word-aligned
    if fmt is None or len(fmt) < 16 or payload is None:
        raise FrontendError(
            f"{path} has a truncated or corrupt WAV header (no complete 'fmt ' and "
            "'data' chunks). Re-export or re-download the file."
        )
    tag, channels, rate, _, block_align, bits = struct.unpack("<HHIIHH", fmt[:16])
    if tag == _EXTENSIBLE and len(fmt) >= 26:
        (tag,) = struct.unpack("<H", fmt[24:26])  # first 2 bytes of the sub-format GUID
    if channels < 1 or rate < 1 or block_align != channels * ((bits + 7) // 8):
        raise FrontendError(
            f"{path} has an inconsistent WAV header (channels={channels}, "
            f"rate={rate}, bits={bits}, block_align={block_align})."
        )
    samples = _decode_samples(payload, tag, bits, path)
    n = samples.size // channels
    samples = samples[: n * channels].reshape(n, channels)
    return (samples[:, 0] if channels == 1 else samples), int(rate)


def _decode_samples(payload: bytes, tag: int, bits: int, path: PathLike) -> np.ndarray:
    if tag == _FLOAT and bits in (32, 64):
        dtype = "<f4" if bits == 32 else "<f8"
        usable = len(payload) - len(payload) % (bits // 8)
        return np.frombuffer(payload[:usable], dtype=dtype).astype(np.float32)
    if tag != _PCM or bits not in (8, 16, 24, 32):
        raise FrontendError(
            f"{path} uses an unsupported WAV encoding (format tag {tag:#06x}, {bits} "
            "bits). Supported: PCM 8/16/24/32-bit and IEEE float 32/64-bit; convert "
            "others with `ffmpeg -i <file> -c:a pcm_s16le out.wav`."
        )
    if bits == 8:  # 8-bit WAV is unsigned
        raw = np.frombuffer(payload, dtype=np.uint8)
        return ((raw.astype(np.float32) - 128.0) / 128.0).astype(np.float32)
    if bits == 24:
        raw = np.frombuffer(payload[: len(payload) - len(payload) % 3], dtype=np.uint8)
        triples = raw.reshape(-1, 3).astype(np.int32)
        ints = triples[:, 0] | (triples[:, 1] << 8) | (triples[:, 2] << 16)
        ints = np.where(ints >= 1 << 23, ints - (1 << 24), ints)
        return (ints / float(1 << 23)).astype(np.float32)
    width = bits // 8
    raw = np.frombuffer(payload[: len(payload) - len(payload) % width], dtype=f"<i{width}")
    return (raw / float(1 << (bits - 1))).astype(np.float32)


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Averages the channels of (n, channels) samples; (n,) passes through.

    Example:
    >>> to_mono(np.array([[1.0, 0.0], [0.5, 0.5]], dtype=np.float32))
    array([0.5, 0.5], dtype=float32)
    """
    samples = np.asarray(samples, dtype=np.float32)
    return samples if samples.ndim == 1 else samples.mean(axis=1, dtype=np.float32)


def resample(
    x: np.ndarray, orig_sr: int, target_sr: int, zero_crossings: int = 24
) -> np.ndarray:
    """Resamples a mono signal by a windowed-sinc polyphase filter (numpy only).

    The library resamples with soxr (HQ); this is the fallback for the edge
    runtime, where soxr may be missing. A Kaiser-windowed sinc, low-passed at
    95 % of the lower Nyquist frequency; on speech it differs from soxr HQ by
    about 0.5 % RMS (-45 dB), mostly in the transition band.

    Args:
        x: samples, shape (n,).
        orig_sr: rate of `x` in Hz.
        target_sr: wanted rate in Hz.
        zero_crossings: half-length of the filter, in zero crossings of the
            low-pass sinc; longer is sharper and slower.

    Returns:
        float32 samples at `target_sr`, `round(n * target_sr / orig_sr)` of them
        (as soxr).

    Example:
    >>> resample(np.zeros(48000, np.float32), 48000, 16000).shape
    (16000,)
    """
    x = np.asarray(x, dtype=np.float32)
    if orig_sr == target_sr:
        return x.copy()
    g = math.gcd(int(orig_sr), int(target_sr))
    up, down = int(target_sr) // g, int(orig_sr) // g
    cutoff = 0.95 * min(1.0, up / down)  # of the input Nyquist frequency
    half = int(math.ceil(zero_crossings / cutoff))
    offsets = np.arange(-half + 1, half + 1)
    # Output m sits at input position m*down/up; its fractional part takes only
    # `up` values, so one table of taps per phase serves every output sample.
    phases = np.arange(up) / up
    t = phases[:, None] - offsets[None, :]  # distance from each tap, in input samples
    window = np.i0(8.6 * np.sqrt(np.clip(1 - (t / half) ** 2, 0, 1))) / np.i0(8.6)
    taps = (cutoff * np.sinc(cutoff * t) * window).astype(np.float32)
    n_out = (len(x) * up + down // 2) // down  # round half up, as soxr
    padded = np.concatenate(
        [np.zeros(half, np.float32), x, np.zeros(half + 1, np.float32)]
    )
    out = np.empty(n_out, np.float32)
    for start in range(0, n_out, 65536):  # chunks keep the gather small
        m = np.arange(start, min(start + 65536, n_out))
        base, phase = np.divmod(m * down, up)
        idx = base[:, None] + offsets[None, :] + half
        out[m] = np.einsum("ij,ij->i", padded[idx], taps[phase])
    return out


def load_wav(path: PathLike, sample_rate: int = 16000) -> np.ndarray:
    """Reads a WAV file as mono float32 in [-1, 1] at `sample_rate` (numpy only).

    The dependency-free path used by the edge runtime; the library's
    `sercal_keras.audio.load_audio` does the same through soundfile and soxr and
    reads FLAC/OGG too.

    Raises:
        FrontendError: unreadable file, no samples, or NaN/Inf samples.
    """
    samples, rate = read_wav(path)
    waveform = to_mono(samples)
    check_waveform(waveform, path)
    if rate != sample_rate:
        waveform = resample(waveform, rate, sample_rate)
    return np.clip(waveform, -1.0, 1.0)


def check_waveform(waveform: np.ndarray, path: PathLike) -> None:
    """Raises `FrontendError` naming `path` if `waveform` is empty or not finite."""
    if waveform.size == 0:
        raise FrontendError(f"{path} holds no audio samples (empty data). Re-export it.")
    if not np.all(np.isfinite(waveform)):
        bad = int(np.size(waveform) - np.count_nonzero(np.isfinite(waveform)))
        raise FrontendError(
            f"{path} holds {bad} NaN/Inf samples; the file is corrupt or a float WAV "
            "written from broken data. Re-export it."
        )


# --------------------------------------------------------------- segments, MFCC


def segment_waveform(
    waveform: np.ndarray, segment_samples: int, hop_samples: int
) -> np.ndarray:
    """Cuts a waveform into fixed-length, overlapping segments.

    Segment i starts at sample i * hop. Rules, so no audio is silently lost:
    - a waveform no longer than one segment gives exactly one segment,
      zero-padded at the end (short utterances are kept, not dropped);
    - after the last full window, one more window (zero-padded) is kept when it
      holds at least half a hop of audio not seen before; a shorter tail is
      dropped (it is already covered by the previous window's overlap).

    Args:
        waveform: mono samples, shape (n,).
        segment_samples: segment length (32000 for 2 s at 16 kHz).
        hop_samples: start-to-start distance (16000 training, 6400 evaluation).

    Returns:
        float32 array (num_segments, segment_samples), num_segments >= 1.

    Example:
    >>> segment_waveform(np.ones(1600, np.float32), 32000, 16000).shape  # 0.1 s: padded
    (1, 32000)
    >>> segment_waveform(np.ones(40000, np.float32), 32000, 16000).shape  # tail = hop/2: kept
    (2, 32000)
    >>> segment_waveform(np.ones(40000, np.float32), 32000, 6400).shape  # tail < hop/2: dropped
    (2, 32000)
    """
    waveform = np.asarray(waveform, dtype=np.float32)
    if waveform.ndim != 1:
        raise ValueError(f"waveform must be 1-D (mono). Received shape {waveform.shape}")
    if segment_samples < 1 or hop_samples < 1:
        raise ValueError(
            "segment_samples and hop_samples must be positive. Received: "
            f"segment_samples={segment_samples}, hop_samples={hop_samples}"
        )
    n = len(waveform)
    num = 1 if n <= segment_samples else 1 + (n - segment_samples) // hop_samples
    tail = n - ((num - 1) * hop_samples + segment_samples)  # audio after the last window
    if tail * 2 >= hop_samples:
        num += 1
    padded_length = (num - 1) * hop_samples + segment_samples
    padded = np.zeros(max(padded_length, n), np.float32)
    padded[:n] = waveform
    windows = np.lib.stride_tricks.sliding_window_view(padded, segment_samples)
    return np.ascontiguousarray(windows[: (num - 1) * hop_samples + 1 : hop_samples])


def hz_to_mel(frequencies: np.ndarray) -> np.ndarray:
    """Slaney mel scale (linear below 1 kHz, logarithmic above), as librosa."""
    f = np.asarray(frequencies, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    safe = np.maximum(f, min_log_hz)  # avoids log(0) in the branch np.where discards
    return np.where(f >= min_log_hz, min_log_mel + np.log(safe / min_log_hz) / logstep, f / f_sp)


def mel_to_hz(mels: np.ndarray) -> np.ndarray:
    """Inverse of `hz_to_mel`."""
    m = np.asarray(mels, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def _read_only_cache(function):
    """Memoises a constant-matrix builder; the cached arrays are made read-only.

    Building the mel filterbank costs about as much as the rest of one 2 s
    window's MFCC, which matters when streaming; the config is hashable (frozen).
    """
    cached = functools.lru_cache(maxsize=8)(function)

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        result = cached(*args, **kwargs)
        result.setflags(write=False)
        return result

    wrapper.cache_info = cached.cache_info
    return wrapper


@_read_only_cache
def mel_filterbank(config: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """The Slaney-normalised mel filterbank, identical to `librosa.filters.mel`.

    Returns:
        float32 (n_mels, 1 + n_fft // 2), read-only (cached per config).
    """
    fmax = config.fmax if config.fmax is not None else config.sample_rate / 2
    fft_freqs = np.fft.rfftfreq(config.n_fft, d=1.0 / config.sample_rate)
    mel_points = np.linspace(hz_to_mel(config.fmin), hz_to_mel(fmax), config.n_mels + 2)
    mel_f = mel_to_hz(mel_points)
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]  # Slaney: constant energy per band
    return weights.astype(np.float32)


@_read_only_cache
def dct_matrix(n_out: int, n_in: int) -> np.ndarray:
    """Orthonormal DCT-II as an (n_out, n_in) float32 matrix (`scipy.fft.dct(norm="ortho")`)."""
    k = np.arange(n_out)[:, None]
    n = np.arange(n_in)[None, :]
    basis = np.sqrt(2.0 / n_in) * np.cos(np.pi * k * (2 * n + 1) / (2 * n_in))
    basis[0] /= np.sqrt(2.0)
    return basis.astype(np.float32)


def feature_projection(config: FeatureConfig) -> Optional[np.ndarray]:
    """The (n_mels, feature_rows) matrix from log-mel bands to features.

    The transposed DCT-II for MFCC; `None` for log-mel (the bands are the
    features). Shared by `mfcc` and the in-graph `MFCC` layer.
    """
    if config.representation == "log_mel":
        return None
    return np.ascontiguousarray(dct_matrix(config.n_mfcc, config.n_mels).T)


@_read_only_cache
def hann_window(length: int) -> np.ndarray:
    """Periodic Hann window (`scipy.signal.get_window("hann", length)`), float32."""
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(length) / length)).astype(np.float32)


def mfcc(segments: np.ndarray, config: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """MFCCs of each segment, as `librosa.feature.mfcc(y=segment, sr=16000, n_mfcc=26)`.

    Per segment: centred STFT (n_fft/2 zeros on both sides, periodic Hann),
    power spectrum, Slaney mel filterbank, `10·log10(max(S, 1e-10))` clipped to
    `top_db` below the segment's own maximum, DCT-II (ortho), first `n_mfcc`
    rows. With `config.representation == "log_mel"` the DCT is skipped and the
    `n_mels` clipped log-mel bands are returned (`librosa.power_to_db` of
    `librosa.feature.melspectrogram`). Silence is well defined: an all-zero segment gives -100 dB everywhere,
    so coefficient 0 is -100·sqrt(n_mels) and the rest are 0; never NaN.

    Args:
        segments: float array (n, segment_samples), or (segment_samples,) for one.
        config: the feature definition.

    Returns:
        float32 array (n, feature_rows, frames), frames = 1 + samples // hop_length
        (feature_rows: n_mfcc, or n_mels for log-mel).

    Example:
    >>> mfcc(np.zeros((2, 32000), np.float32)).shape
    (2, 26, 63)
    """
    segments = np.asarray(segments, dtype=np.float32)
    if segments.ndim == 1:
        segments = segments[None, :]
    if segments.ndim != 2:
        raise ValueError(f"segments must be (n, samples). Received shape {segments.shape}")
    n_fft, hop = config.n_fft, config.hop_length
    window = hann_window(n_fft)
    # Contiguous 2-D operands: numpy hands those to BLAS; a transposed view in
    # a stacked (3-D) matmul takes a slow generic loop (~7x slower here).
    mel_t = np.ascontiguousarray(mel_filterbank(config).T)  # (bins, mels)
    projection = feature_projection(config)  # (mels, rows), or None for log-mel
    rows = config.feature_rows
    frames_per_segment = 1 + segments.shape[1] // hop
    out = np.empty((len(segments), rows, frames_per_segment), np.float32)
    for start in range(0, len(segments), _MFCC_CHUNK):
        chunk = segments[start : start + _MFCC_CHUNK]
        padded = np.pad(chunk, ((0, 0), (n_fft // 2, n_fft // 2)))
        frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft, axis=1)[:, ::hop]
        spectrum = np.fft.rfft(frames * window, axis=-1)  # float32 in, complex64 out
        power = spectrum.real**2 + spectrum.imag**2  # (n, frames, bins)
        mel = (power.reshape(-1, power.shape[-1]) @ mel_t).reshape(len(chunk), -1, config.n_mels)
        db = 10.0 * np.log10(np.maximum(mel, np.float32(1e-10)))
        db = np.maximum(db, db.max(axis=(1, 2), keepdims=True) - np.float32(config.top_db))
        if projection is not None:
            db = (db.reshape(-1, config.n_mels) @ projection).reshape(len(chunk), -1, rows)
        out[start : start + len(chunk)] = np.swapaxes(db, 1, 2)
    return out


#: Speed factors (training augmentation, test-time copies) outside this range distort speech
#: beyond what they are for.
SPEED_RANGE = (0.5, 2.0)


def change_speed(waveform: np.ndarray, factor: float, sample_rate: int = 16000) -> np.ndarray:
    """Plays `waveform` `factor` times faster: tempo and pitch both scale, as `sox speed`.

    The samples are read as if recorded at `factor · sample_rate` and resampled
    back to `sample_rate`, so the result has `len / factor` samples. This is
    the waveform augmentation of Kaldi recipes (Ko et al., 2015): unlike masking
    the features, it makes new, natural-sounding speakers (vocal-tract length
    and speaking rate move together); the training copies and the test-time
    copies. Resampler: soxr HQ (it comes with librosa, so the library always
    has it); on a device without soxr, `resample` (numpy), which needs
    `factor · sample_rate` to be a whole number of Hz (0.9 and 1.1 at 16 kHz are).

    Args:
        waveform: mono float32 samples `(n,)`.
        factor: speed factor in `SPEED_RANGE`; 1 returns a copy.
        sample_rate: rate of `waveform` (and of the result), in Hz.

    Returns:
        float32 samples `(round(n / factor),)` at `sample_rate`, clipped to [-1, 1].

    Raises:
        ValueError: a factor outside `SPEED_RANGE`, or one the numpy resampler cannot do.

    Example:
    >>> change_speed(np.zeros(16000, np.float32), 1.25).shape
    (12800,)
    """
    if not SPEED_RANGE[0] <= factor <= SPEED_RANGE[1]:
        raise ValueError(f"factor must lie in {list(SPEED_RANGE)}. Received: factor={factor}")
    waveform = np.asarray(waveform, np.float32)
    if factor == 1.0:
        return waveform.copy()
    rate = float(sample_rate) * factor
    try:
        import soxr
    except ImportError:
        if abs(rate - round(rate)) > 1e-6:
            raise ValueError(f"speed {factor:g} at {sample_rate} Hz needs soxr (`pip install soxr`): the numpy "
                             f"resampler takes whole rates, and {rate:g} Hz is not one.") from None
        out = resample(waveform, int(round(rate)), sample_rate)
    else:
        out = soxr.resample(waveform, rate, float(sample_rate), quality="HQ")
    return np.clip(out, -1.0, 1.0).astype(np.float32, copy=False)


def check_test_time_speeds(speeds: Sequence[float]) -> Tuple[float, ...]:
    """Validated test-time speed factors: distinct, in `SPEED_RANGE`, not 1 (the recorded audio is always used).

    The one check of the library (`EmotionRecognizer(test_time_speeds=...)`) and
    the edge runtime (`edge_demo.classify --test-time-speeds`).

    Raises:
        ValueError: a factor outside the range, 1, or repeated (message says what is allowed).

    Example:
    >>> check_test_time_speeds([0.9, 1.1])
    (0.9, 1.1)
    """
    speeds = tuple(float(s) for s in speeds)
    bad = [s for s in speeds if not SPEED_RANGE[0] <= s <= SPEED_RANGE[1] or s == 1.0]
    if bad or len(set(speeds)) != len(speeds):
        raise ValueError(f"test_time_speeds must be distinct factors in {list(SPEED_RANGE)} other than 1 "
                         f"(the audio as recorded is always used), e.g. 0.9 1.1. Received: {list(speeds)}")
    return speeds


def aggregate_utterance(segment_probs: np.ndarray) -> np.ndarray:
    """Utterance probabilities: the mean of its segments' class probabilities.

    Args:
        segment_probs: (num_segments, num_classes).

    Returns:
        (num_classes,) float32.

    Example:
    >>> aggregate_utterance(np.array([[0.8, 0.2], [0.4, 0.6]]))
    array([0.6, 0.4], dtype=float32)
    """
    segment_probs = np.asarray(segment_probs, dtype=np.float32)
    if segment_probs.ndim != 2 or len(segment_probs) == 0:
        raise ValueError(
            "segment_probs must be (num_segments >= 1, num_classes). "
            f"Received shape {segment_probs.shape}"
        )
    return segment_probs.mean(axis=0)


def speaker_statistics(features: np.ndarray, epsilon: float = 1e-6) -> Tuple[np.ndarray, np.ndarray]:
    """One speaker's per-coefficient mean and standard deviation.

    The statistics of per-speaker normalisation: computed over all of a
    speaker's segments and frames, without labels, from a few of their
    utterances or from the audio being classified itself.

    Args:
        features: the speaker's MFCC segments, (n >= 1, n_mfcc, frames).
        epsilon: added to the variance before the square root.

    Returns:
        `(mean, std)`, each float32 (n_mfcc, 1), ready for `standardize`.

    Example:
    >>> mean, std = speaker_statistics(np.ones((3, 26, 63), np.float32))
    >>> mean.shape, float(mean.max())
    ((26, 1), 1.0)
    """
    features = np.asarray(features)
    if features.ndim != 3 or len(features) == 0:
        raise ValueError(
            f"speaker_statistics needs segments (n >= 1, n_mfcc, frames). Received shape {features.shape}"
        )
    own = features.astype(np.float64)
    mean = own.mean(axis=(0, 2))[:, None]
    std = np.sqrt(own.var(axis=(0, 2)) + epsilon)[:, None]
    return mean.astype(np.float32), std.astype(np.float32)


def standardize(features: np.ndarray, statistics: Tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """MFCC segments standardised by a speaker's `(mean, std)` from `speaker_statistics`.

    Example:
    >>> x = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    >>> standardize(x, speaker_statistics(x)).mean(axis=2).round(6).tolist()
    [[0.0, 0.0]]
    """
    mean, std = statistics
    return ((np.asarray(features, np.float32) - mean) / std).astype(np.float32)


#: How many utterances the training speakers' average statistics count as when a
#: speaker's own statistics are shrunk towards them (`shrink_statistics`).
SPEAKER_PRIOR_WEIGHT = 10.0


def shrink_statistics(
    statistics: Optional[Tuple[np.ndarray, np.ndarray]],
    prior: Tuple[np.ndarray, np.ndarray],
    utterances: int,
    weight: float = SPEAKER_PRIOR_WEIGHT,
) -> Tuple[np.ndarray, np.ndarray]:
    """A speaker's `(mean, std)` from a few utterances, pulled towards the training speakers' average.

    Statistics from a few utterances are noisy and follow their emotions; the
    training speakers' average (`prior`, stored in a per-speaker model's card)
    counts as `weight` utterances against the speaker's `utterances`. With no
    audio of the speaker (`statistics` None or `utterances` 0) it is the prior.

    Example:
    >>> prior = (np.zeros((1, 1), np.float32), np.ones((1, 1), np.float32))
    >>> mean, std = shrink_statistics((np.full((1, 1), 4.0), np.full((1, 1), 2.0)), prior, 10)
    >>> float(mean[0, 0]), round(float(std[0, 0]) ** 2, 3)
    (2.0, 2.5)
    """
    prior_mean, prior_std = (np.asarray(a, np.float32).reshape(-1, 1) for a in prior)
    if statistics is None or utterances <= 0:
        return prior_mean, prior_std
    mean, std = statistics
    share = utterances / (utterances + weight)
    variance = share * np.square(std) + (1 - share) * np.square(prior_std)
    return (share * mean + (1 - share) * prior_mean).astype(np.float32), np.sqrt(variance).astype(np.float32)
