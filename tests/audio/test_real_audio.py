"""Slow checks on the real corpora in ../shared/data (skipped when absent)."""

import librosa
import numpy as np
import pytest
import soundfile as sf

from sercal_keras.audio import frontend
from sercal_keras.audio.decode import load_audio
from sercal_keras.audio.mfcc_layer import MFCC
from tests.conftest import requires_shared_data

pytestmark = [pytest.mark.slow, requires_shared_data]

# Stated tolerances on real speech (values reach ~640): numpy and graph
# versions vs librosa, absolute, after float32 arithmetic in other orders.
NUMPY_ATOL = 2e-3
LAYER_ATOL = 2e-3
ORIGINALS = "ravdess_original_sample/Actor_01"
STEREO = {"03-01-02-01-01-02-01", "03-01-08-01-02-02-01"}


@pytest.fixture(scope="module")
def emodb_segments(shared_data):
    files = sorted((shared_data / "emodb" / "wav").glob("*.wav"))[::45]  # 12 files, all speakers
    segments = [
        frontend.segment_waveform(load_audio(f), 32000, 6400) for f in files
    ]
    return np.concatenate(segments)


def test_numpy_and_layer_mfcc_match_librosa_on_emodb(emodb_segments):
    expected = np.stack([librosa.feature.mfcc(y=s, sr=16000, n_mfcc=26) for s in emodb_segments])
    numpy_mfcc = frontend.mfcc(emodb_segments)
    layer_mfcc = MFCC()(emodb_segments).numpy()[..., 0]
    assert np.abs(expected).max() > 100  # real speech, not silence
    np.testing.assert_allclose(numpy_mfcc, expected, atol=NUMPY_ATOL, rtol=0)
    np.testing.assert_allclose(layer_mfcc, expected, atol=LAYER_ATOL, rtol=0)


def test_ravdess_originals_decode_and_match_the_16k_versions(shared_data):
    originals = sorted((shared_data / ORIGINALS).glob("*.wav"))
    assert len(originals) == 6
    for path in originals:
        info = sf.info(path)
        assert info.samplerate == 48000
        assert info.channels == (2 if path.stem in STEREO else 1)
        assert b"FLLR" in path.read_bytes()[:4096]  # the release's padding chunk
        waveform = load_audio(path)
        reference, rate = sf.read(
            shared_data / "ravdess16k" / "Actor_01" / path.name, dtype="float32"
        )
        assert rate == 16000 and waveform.shape == reference.shape
        # The 16 kHz copies were made with soxr HQ and stored as 16-bit PCM.
        np.testing.assert_allclose(waveform, reference, atol=2e-4)


def test_numpy_only_wav_path_reads_the_ravdess_release(shared_data):
    """frontend.read_wav (stdlib chunk parser) handles FLLR and stereo, and its
    numpy resampler lands close to soxr."""
    for path in sorted((shared_data / ORIGINALS).glob("*.wav")):
        samples, rate = frontend.read_wav(path)
        np.testing.assert_array_equal(samples, sf.read(path, dtype="float32")[0])
        waveform = frontend.load_wav(path)
        reference, _ = sf.read(shared_data / "ravdess16k" / "Actor_01" / path.name, dtype="float32")
        assert waveform.shape == reference.shape
        err = np.sqrt(np.mean((waveform - reference) ** 2) / np.mean(reference**2))
        assert err < 0.02
