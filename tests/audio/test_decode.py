"""load_audio (soundfile/soxr, tfio) and decode_wav_tf, including bad input."""

import importlib.util

import numpy as np
import pytest
import soundfile as sf
import soxr
import tensorflow as tf

from sercal_keras.audio import decode
from sercal_keras.audio.decode import TfioUnavailableError, decode_wav_tf, load_audio
from sercal_keras.errors import AudioDecodeError, ConfigError

TFIO_SKIP = pytest.mark.skipif(
    importlib.util.find_spec("tensorflow_io") is None,
    reason="tensorflow_io is not installed: install sercal-keras[tfio] (TF 2.17.1); "
    "the tfio CI environment runs these",
)


def tone(seconds=1.0, sr=16000, freq=440.0, amp=0.5, channels=1):
    t = np.arange(int(seconds * sr)) / sr
    x = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def dominant_frequency(x, sr):
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(spectrum)]


# ----------------------------------------------------------------- formats


@pytest.mark.parametrize(
    "fmt, subtype, atol",
    [
        ("WAV", "PCM_U8", 1 / 128),
        ("WAV", "PCM_16", 1 / 32768),
        ("WAV", "PCM_24", 1e-6),
        ("WAV", "PCM_32", 1e-6),
        ("WAV", "FLOAT", 0),
        ("FLAC", "PCM_16", 1 / 32768),
        ("FLAC", "PCM_24", 1e-6),
    ],
)
def test_lossless_formats_decode_to_the_written_samples(tmp_path, fmt, subtype, atol):
    x = tone()
    path = tmp_path / f"x.{fmt.lower()}"
    sf.write(path, x, 16000, format=fmt, subtype=subtype)
    y = load_audio(path)
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_allclose(y, x, atol=atol + 1e-7)


def test_ogg_vorbis_decodes_close_to_the_original(tmp_path):
    x = tone(freq=1000.0)
    path = tmp_path / "x.ogg"
    sf.write(path, x, 16000, format="OGG", subtype="VORBIS")
    y = load_audio(path)
    assert abs(len(y) - len(x)) < 2000
    assert abs(dominant_frequency(y, 16000) - 1000.0) < 5
    assert abs(np.sqrt(np.mean(y**2)) - np.sqrt(np.mean(x**2))) < 0.05


@pytest.mark.parametrize("sr", [8000, 22050, 44100, 48000])
def test_any_rate_is_resampled_to_16k_with_soxr(tmp_path, sr):
    x = tone(sr=sr, freq=1000.0)
    path = tmp_path / "x.wav"
    sf.write(path, x, sr, subtype="FLOAT")
    y = load_audio(path)
    np.testing.assert_allclose(y, soxr.resample(x, sr, 16000, quality="HQ"), atol=1e-6)
    assert len(y) == 16000
    assert abs(dominant_frequency(y, 16000) - 1000.0) < 2


def test_multichannel_is_mixed_to_mono(tmp_path):
    left, right = tone(freq=300.0), tone(freq=700.0, amp=0.25)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], 1), 16000, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(path), (left + right) / 2, atol=1e-7)


def test_float_beyond_full_scale_is_clipped(tmp_path):
    path = tmp_path / "loud.wav"
    sf.write(path, np.array([0.5, 1.7, -3.0, 0.0] * 100, np.float32), 16000, subtype="FLOAT")
    y = load_audio(path)
    assert y.max() == 1.0 and y.min() == -1.0
    np.testing.assert_array_equal(y[:4], [0.5, 1.0, -1.0, 0.0])


# ----------------------------------------------------------------- bad input


def _write_bad(tmp_path, kind):
    path = tmp_path / f"{kind}.wav"
    good = tmp_path / "good.wav"
    sf.write(good, tone(), 16000, subtype="PCM_16")
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("this is not audio, just a text file named .wav\n")
    elif kind == "truncated_header":
        path.write_bytes(good.read_bytes()[:30])
    elif kind == "corrupt_header":
        data = bytearray(good.read_bytes())
        data[8:12] = b"JUNK"
        path.write_bytes(bytes(data))
    elif kind in ("nan", "inf"):
        x = tone()
        x[100] = np.nan if kind == "nan" else np.inf
        sf.write(path, x, 16000, subtype="FLOAT")
    return path


@pytest.mark.parametrize(
    "kind", ["empty", "text", "truncated_header", "corrupt_header", "nan", "inf"]
)
def test_bad_files_raise_audio_decode_error_naming_the_file(tmp_path, kind):
    path = _write_bad(tmp_path, kind)
    with pytest.raises(AudioDecodeError) as info:
        load_audio(path)
    assert str(path) in str(info.value)
    if kind in ("nan", "inf"):
        assert "NaN/Inf" in str(info.value)


def test_missing_file_raises_audio_decode_error(tmp_path):
    with pytest.raises(AudioDecodeError, match="not found") as info:
        load_audio(tmp_path / "nope.wav")
    assert "nope.wav" in str(info.value)


def test_unknown_backend_is_a_config_error(tmp_path):
    path = tmp_path / "x.wav"
    sf.write(path, tone(), 16000)
    with pytest.raises(ConfigError, match="Unknown audio backend 'ffmpeg'"):
        load_audio(path, backend="ffmpeg")


def test_ten_minute_file_loads(tmp_path):
    """Long files work; memory is linear in duration (documented in load_audio)."""
    sr = 16000
    x = np.tile(tone(sr=sr), 600)  # 10 minutes
    path = tmp_path / "long.wav"
    sf.write(path, x, sr, subtype="PCM_16")
    y = load_audio(path)
    assert y.shape == (600 * sr,)
    np.testing.assert_allclose(y[-sr:], x[-sr:], atol=1 / 32768 + 1e-7)


# ----------------------------------------------------------------- decode_wav_tf


def test_decode_wav_tf_equals_load_audio(tmp_path):
    x = np.stack([tone(freq=200.0), tone(freq=900.0, amp=0.3)], 1)
    path = tmp_path / "s.wav"
    sf.write(path, x, 16000, subtype="PCM_16")
    graph = decode_wav_tf(tf.io.read_file(str(path))).numpy()
    np.testing.assert_allclose(graph, load_audio(path), atol=1e-6)


def test_decode_wav_tf_runs_in_tf_data(tmp_path):
    paths = []
    for i in range(3):
        paths.append(str(tmp_path / f"{i}.wav"))
        sf.write(paths[-1], tone(seconds=0.5 + i * 0.25), 16000, subtype="PCM_16")
    ds = tf.data.Dataset.from_tensor_slices(paths).map(
        lambda p: tf.shape(decode_wav_tf(tf.io.read_file(p)))[0]
    )
    assert [int(n) for n in ds] == [8000, 12000, 16000]


def test_decode_wav_tf_rejects_other_rates(tmp_path):
    path = tmp_path / "x.wav"
    sf.write(path, tone(sr=22050), 22050, subtype="PCM_16")
    with pytest.raises(tf.errors.InvalidArgumentError, match="needs 16000 Hz"):
        decode_wav_tf(tf.io.read_file(str(path)))


# ----------------------------------------------------------------- tfio backend


@pytest.mark.skipif(
    importlib.util.find_spec("tensorflow_io") is not None,
    reason="tensorflow_io is installed: the missing-backend error cannot happen",
)
def test_tfio_backend_without_tensorflow_io_says_how_to_fix(tmp_path):
    path = tmp_path / "x.wav"
    sf.write(path, tone(), 16000)
    with pytest.raises(TfioUnavailableError, match=r'pip install "sercal-keras\[tfio\]"') as info:
        load_audio(path, backend="tfio")
    assert isinstance(info.value, ImportError) and isinstance(info.value, ConfigError)
    assert "2.17.1" in str(info.value)


@TFIO_SKIP
@pytest.mark.parametrize("sr", [16000, 44100, 48000])
@pytest.mark.parametrize("fmt, subtype", [("WAV", "PCM_16"), ("FLAC", "PCM_16"), ("WAV", "FLOAT")])
def test_tfio_backend_matches_soundfile(tmp_path, sr, fmt, subtype):
    x = np.stack([tone(sr=sr, freq=500.0), tone(sr=sr, freq=1500.0, amp=0.2)], 1)
    path = tmp_path / f"x.{fmt.lower()}"
    sf.write(path, x, sr, format=fmt, subtype=subtype)
    ref = load_audio(path)
    got = load_audio(path, backend="tfio")
    assert abs(len(got) - len(ref)) <= 2
    n = min(len(got), len(ref))
    if sr == 16000:
        np.testing.assert_allclose(got[:n], ref[:n], atol=1e-4)
    else:  # different resamplers: compare away from the edges, in RMS
        middle = slice(500, n - 500)
        err = np.sqrt(np.mean((got[middle] - ref[middle]) ** 2) / np.mean(ref[middle] ** 2))
        assert err < 0.02


@TFIO_SKIP
def test_tfio_backend_bad_file_is_audio_decode_error(tmp_path):
    path = tmp_path / "bad.wav"
    path.write_text("not audio")
    with pytest.raises(AudioDecodeError, match="bad.wav"):
        load_audio(path, backend="tfio")


def test_tfio_int_scaling_matches_soundfile_convention():
    """The tfio path scales integer samples as soundfile does (no tfio needed)."""
    ints = tf.constant([[-32768], [0], [16384]], tf.int16)
    np.testing.assert_allclose(decode._int_to_float(ints).numpy()[:, 0], [-1.0, 0.0, 0.5])
    bytes_ = tf.constant([[0], [128], [255]], tf.uint8)
    np.testing.assert_allclose(decode._int_to_float(bytes_).numpy()[:, 0], [-1.0, 0.0, 127 / 128])
