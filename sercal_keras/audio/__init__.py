"""Audio front-end: decode, resample, segment, MFCC (numpy, librosa reference, Keras layer)."""

from sercal_keras.audio.decode import (
    BACKENDS,
    TfioUnavailableError,
    decode_wav_tf,
    load_audio,
    load_audio_tfio,
    prepare_waveform,
)
from sercal_keras.audio.frontend import (
    FeatureConfig,
    FrontendError,
    aggregate_utterance,
    mel_filterbank,
    mfcc,
    read_wav,
    resample,
    segment_waveform,
    speaker_statistics,
    standardize,
    to_mono,
)
from sercal_keras.audio.mfcc_layer import MFCC
from sercal_keras.audio.mfcc_librosa import mfcc_librosa

__all__ = [
    "BACKENDS",
    "FeatureConfig",
    "FrontendError",
    "MFCC",
    "TfioUnavailableError",
    "aggregate_utterance",
    "decode_wav_tf",
    "load_audio",
    "load_audio_tfio",
    "mel_filterbank",
    "mfcc",
    "mfcc_librosa",
    "prepare_waveform",
    "read_wav",
    "resample",
    "segment_waveform",
    "speaker_statistics",
    "standardize",
    "to_mono",
]
