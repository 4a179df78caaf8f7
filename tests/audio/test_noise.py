import numpy as np
import pytest

from sercal_keras.audio.noise import add_noise


def _snr_db(clean, noisy):
    return 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean((noisy - clean).astype(np.float64) ** 2))


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 20.0, 40.0])
def test_the_noise_sits_at_the_requested_snr(snr_db):
    t = np.arange(32000) / 16000
    tone = (0.3 * np.sin(2 * np.pi * 220.0 * t)).astype("float32")
    noisy = add_noise(tone, snr_db, seed=3)
    assert noisy.dtype == np.float32 and noisy.shape == tone.shape
    assert abs(_snr_db(tone, noisy) - snr_db) < 0.2
    # white: the noise spreads over the whole band, not at the tone
    spectrum = np.abs(np.fft.rfft(noisy - tone)) ** 2
    assert spectrum[: len(spectrum) // 2].sum() == pytest.approx(spectrum[len(spectrum) // 2:].sum(), rel=0.1)


def test_the_same_seed_gives_the_same_copy_and_another_seed_another():
    x = np.random.default_rng(0).uniform(-0.5, 0.5, 8000).astype("float32")
    np.testing.assert_array_equal(add_noise(x, 20.0, seed=7), add_noise(x, 20.0, seed=7))
    assert not np.array_equal(add_noise(x, 20.0, seed=7), add_noise(x, 20.0, seed=8))


def test_silence_stays_silent_and_bad_snrs_are_refused():
    silent = np.zeros(1000, np.float32)
    out = add_noise(silent, 10.0)
    np.testing.assert_array_equal(out, silent)
    assert out is not silent
    assert add_noise(np.zeros(0, np.float32), 10.0).shape == (0,)
    for snr_db in (-20.0, 80.0, float("nan")):
        with pytest.raises(ValueError, match="Received: snr_db="):
            add_noise(silent, snr_db)
