import numpy as np
import pytest

from sercal_keras.audio.speed_perturbation import change_speed


def _dominant_hz(x, sample_rate=16000):
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.fft.rfftfreq(len(x), 1.0 / sample_rate)[np.argmax(spectrum)]


@pytest.mark.parametrize("factor", [0.9, 1.1, 1.25])
def test_length_and_pitch_scale_with_the_factor(factor):
    t = np.arange(32000) / 16000
    tone = (0.5 * np.sin(2 * np.pi * 440.0 * t)).astype("float32")
    out = change_speed(tone, factor)
    assert out.dtype == np.float32 and len(out) == round(32000 / factor)
    assert abs(_dominant_hz(out) - 440.0 * factor) < 2.0  # sox `speed`: the pitch moves with the tempo


def test_factor_one_is_a_copy_and_bad_factors_are_refused():
    x = np.linspace(-0.5, 0.5, 100).astype("float32")
    out = change_speed(x, 1.0)
    np.testing.assert_array_equal(out, x)
    assert out is not x
    for factor in (0.3, 2.5):
        with pytest.raises(ValueError, match="Received: factor="):
            change_speed(x, factor)


def test_without_soxr_the_numpy_resampler_gives_the_same_copy(monkeypatch):
    # a device without soxr (the edge runtime) makes its test-time copies with the front-end's resampler
    import sys

    t = np.arange(32000) / 16000
    speech_like = (0.3 * np.sin(2 * np.pi * 220.0 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype("float32")
    with_soxr = change_speed(speech_like, 0.9)
    monkeypatch.setitem(sys.modules, "soxr", None)  # `import soxr` now fails
    without = change_speed(speech_like, 0.9)
    assert without.shape == with_soxr.shape
    assert np.sqrt(np.mean((without - with_soxr) ** 2)) < 0.01 * np.sqrt(np.mean(with_soxr ** 2))
    with pytest.raises(ValueError, match="needs soxr"):
        change_speed(speech_like, 0.93333)  # 14933.28 Hz: not a whole rate
