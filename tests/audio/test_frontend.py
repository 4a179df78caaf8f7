"""The numpy front-end, held to librosa / scipy / soundfile / soxr as oracles."""

import importlib.util
import struct
import subprocess
import sys
from pathlib import Path

import librosa
import numpy as np
import pytest
import scipy.fft
import soundfile as sf
import soxr

from sercal_keras.audio import frontend
from sercal_keras.audio.frontend import FeatureConfig, FrontendError
from tests.audio.audio_test_utils import speech_like

FRONTEND_FILE = Path(frontend.__file__)
# numpy MFCC vs librosa: float32 arithmetic in a different order; values reach
# ~1100 in magnitude (silence: -100·sqrt(128)).
MFCC_ATOL, MFCC_RTOL = 2e-3, 1e-5


def librosa_mfcc(segment):
    return librosa.feature.mfcc(y=segment, sr=16000, n_mfcc=26)


# ------------------------------------------------------------------ FeatureConfig


def test_feature_config_defaults_are_the_paper_preset():
    config = FeatureConfig()
    assert config.segment_samples == 32000
    assert config.num_frames == 63
    assert config.feature_shape == (26, 63)
    assert config.hop_samples(training=True) == 16000
    assert config.hop_samples(training=False) == 6400


def test_feature_config_round_trip_and_unknown_keys():
    config = FeatureConfig(n_mfcc=20, top_db=60.0)
    assert FeatureConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="Unknown FeatureConfig keys"):
        FeatureConfig.from_dict({**config.to_dict(), "n_fftt": 1024})


def test_feature_config_log_mel_shape_and_round_trip():
    config = FeatureConfig(representation="log_mel", n_mels=64)
    assert config.feature_rows == 64 and config.feature_shape == (64, 63)
    assert config.feature_name == "64 log-mel bands" and FeatureConfig().feature_name == "26 MFCC"
    assert config.to_dict()["representation"] == "log_mel"
    assert FeatureConfig.from_dict(config.to_dict()) == config
    # n_mfcc is unused for log-mel, so it cannot conflict with fewer bands
    assert FeatureConfig(representation="log_mel", n_mels=20).feature_shape == (20, 63)


def test_feature_config_default_representation_is_not_written():
    """MFCC configs serialise as before the field existed: old readers and
    feature-cache keys see the same dict."""
    assert "representation" not in FeatureConfig().to_dict()
    assert FeatureConfig.from_dict(FeatureConfig().to_dict()).representation == "mfcc"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_mfcc": 0}, "n_mfcc=0"),
        ({"n_mfcc": 200}, "n_mfcc cannot exceed"),
        ({"fmax": 9000.0}, "fmax"),
        ({"representation": "mel"}, "representation='mel'"),
    ],
)
def test_feature_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FeatureConfig(**kwargs)


# ------------------------------------------------------------------------ read_wav


@pytest.mark.parametrize(
    "subtype, atol",
    [("PCM_U8", 0), ("PCM_16", 0), ("PCM_24", 0), ("PCM_32", 0), ("FLOAT", 0), ("DOUBLE", 0)],
)
def test_read_wav_matches_soundfile(tmp_path, subtype, atol):
    x = np.random.default_rng(1).uniform(-0.9, 0.9, (1000, 2)).astype(np.float32)
    path = tmp_path / f"{subtype}.wav"
    sf.write(path, x, 22050, subtype=subtype)
    expected, rate = sf.read(path, dtype="float32")
    got, got_rate = frontend.read_wav(path)
    assert got_rate == rate == 22050
    assert got.shape == (1000, 2) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-7)


def test_read_wav_extensible_header_and_unknown_chunk(tmp_path):
    """WAVE_FORMAT_EXTENSIBLE (soundfile writes it for >2 channels) and an
    extra chunk before 'data', like RAVDESS' FLLR padding."""
    x = np.random.default_rng(2).uniform(-0.5, 0.5, (500, 3)).astype(np.float32)
    path = tmp_path / "ext.wav"
    sf.write(path, x, 16000, subtype="PCM_16")
    data = path.read_bytes()
    pos = data.index(b"data")
    fllr = b"FLLR" + struct.pack("<I", 5) + b"\0" * 5 + b"\0"  # odd size → pad byte
    patched = data[:pos] + fllr + data[pos:]
    patched = patched[:4] + struct.pack("<I", len(patched) - 8) + patched[8:]
    path.write_bytes(patched)
    got, rate = frontend.read_wav(path)
    np.testing.assert_array_equal(got, sf.read(path, dtype="float32")[0])


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "not a RIFF/WAVE"),
        (b"hello, I am a text file\n", "not a RIFF/WAVE"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00", "truncated or corrupt"),
    ],
)
def test_read_wav_errors_name_the_file(tmp_path, content, match):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(FrontendError, match=match) as info:
        frontend.read_wav(path)
    assert str(path) in str(info.value)


def test_load_wav_rejects_nan(tmp_path):
    path = tmp_path / "nan.wav"
    sf.write(path, np.array([0.1, np.nan, 0.2] * 100, np.float32), 16000, subtype="FLOAT")
    with pytest.raises(FrontendError, match="NaN/Inf") as info:
        frontend.load_wav(path)
    assert str(path) in str(info.value)


# ---------------------------------------------------------------- mono, resample


def test_to_mono_averages_channels():
    x = np.array([[1.0, 0.0], [0.5, -0.5]], np.float32)
    np.testing.assert_array_equal(frontend.to_mono(x), [0.5, 0.0])


@pytest.mark.parametrize("orig_sr", [48000, 44100, 8000, 22050])
def test_resample_agrees_with_soxr(orig_sr):
    t = np.arange(int(1.0 * orig_sr)) / orig_sr
    x = (0.5 * np.sin(2 * np.pi * 440 * t) + 0.3 * np.sin(2 * np.pi * 2500 * t)).astype(np.float32)
    got = frontend.resample(x, orig_sr, 16000)
    want = soxr.resample(x, orig_sr, 16000, quality="HQ")
    assert got.shape == want.shape
    middle = slice(200, -200)  # edges: the filters start differently
    rel = np.sqrt(np.mean((got - want)[middle] ** 2) / np.mean(want[middle] ** 2))
    assert rel < 5e-3


def test_resample_removes_content_above_the_new_nyquist():
    t = np.arange(48000) / 48000
    x = np.sin(2 * np.pi * 12000 * t).astype(np.float32)  # above 8 kHz: must vanish
    assert np.abs(frontend.resample(x, 48000, 16000)[100:-100]).max() < 1e-3


# ---------------------------------------------------------------------- segments


@pytest.mark.parametrize(
    "length, hop, expected",
    [
        (1600, 16000, 1),  # 0.1 s: one zero-padded segment
        (32000, 16000, 1),  # exactly 2 s
        (39999, 16000, 1),  # tail 7999 < hop/2: covered by the overlap, dropped
        (40000, 16000, 2),  # tail 8000 = hop/2: kept, zero-padded
        (48000, 16000, 2),  # windows at 0 and 1 s, no tail
        (56000, 16000, 3),  # windows at 0, 1 s + a padded third
        (40000, 6400, 2),  # windows at 0, 0.4 s; tail 1600 < 3200: dropped
        (41600, 6400, 3),  # tail 3200 = hop/2: kept
    ],
)
def test_segment_counts(length, hop, expected):
    segments = frontend.segment_waveform(np.ones(length, np.float32), 32000, hop)
    assert segments.shape == (expected, 32000)


def test_segments_hold_the_right_samples_and_zero_padding():
    x = np.arange(1, 50001, dtype=np.float32)
    segments = frontend.segment_waveform(x, 32000, 16000)
    assert segments.shape == (2, 32000)  # tail 50000-48000=2000 < 8000 → dropped
    np.testing.assert_array_equal(segments[0], x[:32000])
    np.testing.assert_array_equal(segments[1], x[16000:48000])
    short = frontend.segment_waveform(x[:1600], 32000, 16000)
    assert short.shape == (1, 32000)
    np.testing.assert_array_equal(short[0, :1600], x[:1600])
    assert not short[0, 1600:].any()
    padded = frontend.segment_waveform(x[:40000], 32000, 16000)
    assert padded.shape == (2, 32000)
    np.testing.assert_array_equal(padded[1, :24000], x[16000:40000])
    assert not padded[1, 24000:].any()


def test_segment_waveform_rejects_stereo():
    with pytest.raises(ValueError, match="1-D"):
        frontend.segment_waveform(np.zeros((100, 2), np.float32), 32000, 16000)


# ---------------------------------------------------------------------------- MFCC


def test_mel_filterbank_equals_librosa():
    np.testing.assert_allclose(
        frontend.mel_filterbank(FeatureConfig()),
        librosa.filters.mel(sr=16000, n_fft=2048),
        atol=1e-8,
    )
    config = FeatureConfig(n_mels=64, fmin=50.0, fmax=7000.0, n_fft=1024)
    np.testing.assert_allclose(
        frontend.mel_filterbank(config),
        librosa.filters.mel(sr=16000, n_fft=1024, n_mels=64, fmin=50.0, fmax=7000.0),
        atol=1e-8,
    )


def test_dct_matrix_equals_scipy_ortho_dct():
    x = np.random.default_rng(0).normal(size=(5, 128))
    want = scipy.fft.dct(x, type=2, norm="ortho", axis=-1)[:, :26]
    np.testing.assert_allclose(x @ frontend.dct_matrix(26, 128).T, want, atol=1e-4)


def test_hann_window_is_periodic_like_scipy():
    import scipy.signal

    np.testing.assert_allclose(
        frontend.hann_window(2048), scipy.signal.get_window("hann", 2048), atol=1e-7
    )


@pytest.mark.parametrize(
    "name",
    ["speech", "silence", "clipping", "full_scale_noise", "dc", "impulse", "short_clip"],
)
def test_mfcc_equals_librosa(name):
    rng = np.random.default_rng(3)
    signals = {
        "speech": speech_like(),
        "silence": np.zeros(32000, np.float32),
        "clipping": np.clip(speech_like() * 20, -1, 1),
        "full_scale_noise": rng.uniform(-1, 1, 32000).astype(np.float32),
        "dc": np.full(32000, 0.5, np.float32),
        "impulse": np.eye(1, 32000, 16000, dtype=np.float32)[0],
        "short_clip": frontend.segment_waveform(speech_like(0.1), 32000, 16000)[0],
    }
    segment = signals[name]
    got = frontend.mfcc(segment[None])
    assert got.shape == (1, 26, 63) and got.dtype == np.float32
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got[0], librosa_mfcc(segment), atol=MFCC_ATOL, rtol=MFCC_RTOL)


@pytest.mark.parametrize("name", ["speech", "silence", "clipping"])
def test_log_mel_equals_librosa(name):
    config = FeatureConfig(representation="log_mel", n_mels=64)
    segment = {
        "speech": speech_like(),
        "silence": np.zeros(32000, np.float32),
        "clipping": np.clip(speech_like() * 20, -1, 1),
    }[name]
    got = frontend.mfcc(segment[None], config)
    assert got.shape == (1, 64, 63) and got.dtype == np.float32
    mel = librosa.feature.melspectrogram(y=segment, sr=16000, n_mels=64)
    np.testing.assert_allclose(got[0], librosa.power_to_db(mel, top_db=80.0), atol=MFCC_ATOL, rtol=MFCC_RTOL)


def test_mel_bands_default_by_representation():
    """`n_mels` left out: 128 under MFCCs (librosa's, the paper's), 64 log-mel bands; given, it is kept."""
    assert FeatureConfig().n_mels == 128 and FeatureConfig().feature_shape == (26, 63)
    log_mel = FeatureConfig(representation="log_mel")
    assert log_mel.n_mels == 64 and log_mel.feature_shape == (64, 63)
    assert log_mel.to_dict()["n_mels"] == 64  # resolved: model files and cache keys hold the number
    assert FeatureConfig.from_dict(log_mel.to_dict()) == log_mel
    assert FeatureConfig(representation="log_mel", n_mels=40).feature_shape == (40, 63)
    assert FeatureConfig(n_mels=64).n_mels == 64


def test_mfcc_is_the_dct_of_the_log_mel_bands():
    """The two representations share everything before the DCT."""
    segments = np.stack([speech_like(seed=4), 0.01 * speech_like(seed=5)])
    log_mel = frontend.mfcc(segments, FeatureConfig(representation="log_mel", n_mels=128))
    cepstra = scipy.fft.dct(log_mel, type=2, norm="ortho", axis=1)[:, :26]
    np.testing.assert_allclose(frontend.mfcc(segments), cepstra, atol=MFCC_ATOL, rtol=MFCC_RTOL)


def test_mfcc_is_per_segment_across_chunks():
    """top_db clips per segment, so a loud neighbour must not change a quiet
    segment; and batches larger than the internal chunk give the same result."""
    quiet = 0.001 * speech_like(seed=1)
    loud = speech_like(seed=2)
    batch = np.stack([loud] * 40 + [quiet])
    got = frontend.mfcc(batch)
    np.testing.assert_allclose(got[-1], librosa_mfcc(quiet), atol=MFCC_ATOL, rtol=MFCC_RTOL)
    # equal up to float32 rounding: the GEMM kernel may differ by row position within a chunk (seen
    # on one CPU: 7.6e-5 on values ~150); a chunk-level leak would differ by whole decibels
    np.testing.assert_allclose(got[0], got[39], atol=1e-3, rtol=1e-5)


def test_silence_mfcc_is_known_value():
    got = frontend.mfcc(np.zeros((1, 32000), np.float32))[0]
    np.testing.assert_allclose(got[0], -100.0 * np.sqrt(128), rtol=1e-5)
    np.testing.assert_allclose(got[1:], 0.0, atol=1e-3)


def test_aggregate_utterance_is_the_mean():
    probs = np.array([[0.8, 0.2], [0.4, 0.6]])
    np.testing.assert_allclose(frontend.aggregate_utterance(probs), [0.6, 0.4])
    with pytest.raises(ValueError):
        frontend.aggregate_utterance(np.zeros((0, 3)))


# ------------------------------------------------------------------ standalone


def test_frontend_loads_standalone_without_heavy_imports():
    """edge_demo loads frontend.py by path on devices without TF/Keras/librosa."""
    code = f"""
import importlib.util, sys
spec = importlib.util.spec_from_file_location("frontend", {str(FRONTEND_FILE)!r})
frontend = importlib.util.module_from_spec(spec)
spec.loader.exec_module(frontend)
import numpy as np
out = frontend.mfcc(np.zeros((1, 32000), np.float32))
heavy = [m for m in ("tensorflow", "keras", "librosa", "scipy", "sercal_keras") if m in sys.modules]
print(out.shape, heavy)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(1, 26, 63) []"


def test_frontend_source_imports_only_numpy_and_stdlib():
    spec = importlib.util.find_spec("sercal_keras.audio.frontend")
    source = Path(spec.origin).read_text()
    imports = {
        line.split()[1].split(".")[0]
        for line in source.splitlines()
        if line.startswith(("import ", "from "))
    }
    assert imports <= {"__future__", "dataclasses", "functools", "math", "os", "struct", "typing", "numpy"}, imports
