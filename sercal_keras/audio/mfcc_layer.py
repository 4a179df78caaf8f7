"""`MFCC`: the front-end as a Keras layer, so a model can take raw waveforms."""

from __future__ import annotations

import math
from typing import Optional

import keras
import tensorflow as tf

from sercal_keras.audio import frontend


@keras.saving.register_keras_serializable(package="sercal_keras")
class MFCC(keras.layers.Layer):
    """MFCC of each waveform in a batch, computed in the graph.

    The same numbers as `sercal_keras.audio.frontend.mfcc` (and so as
    `librosa.feature.mfcc(y=segment, sr=16000, n_mfcc=26)`), written with
    TensorFlow ops that the TFLite converter maps to builtin ops only (PAD,
    RFFT2D, FULLY_CONNECTED/BATCH_MATMUL, LOG, REDUCE_MAX, …). It lets a model
    (and its .tflite file) take 2 s of 16 kHz audio directly, for streaming on a
    device. Steps: zero-pad n_fft/2 on both sides (librosa's `center=True`),
    `tf.signal.frame`, periodic Hann, `tf.signal.rfft`, power, the librosa mel
    matrix as a constant, `10·log10(max(S, 1e-10))` clipped `top_db` below each
    waveform's maximum, DCT-II (ortho) as a matrix product.

    It always computes in float32, whatever the dtype policy: the log of the
    power spectrum spans a range (1e-10 … 1e5) float16 cannot hold, and a
    float16 waveform would lose most of a 16-bit sample's precision. So inputs
    are not autocast; only the output is cast to the compute dtype (float16
    under `mixed_float16`).

    Args:
        sample_rate: waveform rate in Hz.
        n_mfcc: cepstral coefficients returned.
        n_fft: FFT size and window length in samples.
        hop_length: STFT hop in samples.
        n_mels: mel bands; `None` means `FeatureConfig`'s default for the
            representation (128 under MFCCs, 64 log-mel bands).
        fmin: lowest mel frequency in Hz.
        fmax: highest mel frequency in Hz; `None` means Nyquist.
        top_db: dynamic range kept below each waveform's loudest mel bin.
        representation: `"mfcc"`, or `"log_mel"` for the clipped log-mel
            bands without the DCT (`FeatureConfig.representation`).
        **kwargs: base layer arguments (`name`, `dtype`, …).

    Call arguments:
        inputs: float waveforms (batch, samples), e.g. (B, 32000).

    Returns:
        (batch, rows, 1 + samples // hop_length, 1), e.g. (B, 26, 63, 1);
        rows is n_mfcc, or n_mels for log-mel.

    Example:
    >>> layer = MFCC()
    >>> layer(tf.zeros((2, 32000))).shape
    TensorShape([2, 26, 63, 1])

    Reference:
        Kim, An, Kim, "Improving Speech Emotion Recognition Through Focus and
        Calibration Attention Mechanisms", Interspeech 2022,
        https://arxiv.org/abs/2208.10491 (features as in Xu et al.).
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_mfcc: int = 26,
        n_fft: int = 2048,
        hop_length: int = 512,
        n_mels: Optional[int] = None,
        fmin: float = 0.0,
        fmax: Optional[float] = None,
        top_db: float = 80.0,
        representation: str = "mfcc",
        **kwargs,
    ):
        kwargs.pop("autocast", None)
        super().__init__(autocast=False, **kwargs)
        # FeatureConfig validates the arguments (ValueError naming the value).
        self._config = frontend.FeatureConfig(
            sample_rate=sample_rate,
            n_mfcc=n_mfcc,
            n_fft=n_fft,
            hop_length=hop_length,
            n_mels=n_mels,
            fmin=fmin,
            fmax=fmax,
            top_db=top_db,
            representation=representation,
        )
        self.sample_rate = sample_rate
        self.n_mfcc = n_mfcc
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.n_mels = self._config.n_mels  # resolved, so get_config saves the number
        self.fmin = fmin
        self.fmax = fmax
        self.top_db = top_db
        self.representation = representation
        # Constants, not weights: they follow from the config, so saved models
        # stay small and cannot drift from the numpy front-end.
        self._window = frontend.hann_window(n_fft)
        self._mel_t = frontend.mel_filterbank(self._config).T  # (bins, mels)
        self._projection = frontend.feature_projection(self._config)  # (mels, rows) or None

    @classmethod
    def from_feature_config(cls, config: frontend.FeatureConfig, **kwargs) -> "MFCC":
        """The layer computing `config`'s features."""
        return cls(
            sample_rate=config.sample_rate,
            n_mfcc=config.n_mfcc,
            n_fft=config.n_fft,
            hop_length=config.hop_length,
            n_mels=config.n_mels,
            fmin=config.fmin,
            fmax=config.fmax,
            top_db=config.top_db,
            representation=config.representation,
            **kwargs,
        )

    def call(self, inputs):
        x = tf.cast(inputs, tf.float32)
        half = self.n_fft // 2
        x = tf.pad(x, [[0, 0], [half, half]])
        frames = self._frame(x)  # (B, T, n_fft)
        spectrum = tf.signal.rfft(frames * tf.constant(self._window))
        power = tf.math.real(spectrum) ** 2 + tf.math.imag(spectrum) ** 2
        mel = tf.matmul(power, tf.constant(self._mel_t))  # (B, T, mels)
        db = (10.0 / math.log(10.0)) * tf.math.log(tf.maximum(mel, 1e-10))
        db = tf.maximum(db, tf.reduce_max(db, axis=[1, 2], keepdims=True) - self.top_db)
        if self._projection is not None:
            db = tf.matmul(db, tf.constant(self._projection))  # (B, T, n_mfcc)
        out = tf.expand_dims(tf.transpose(db, [0, 2, 1]), -1)
        return tf.cast(out, self.compute_dtype)

    def _frame(self, x):
        length = x.shape[-1]
        if length is None or self.n_fft % self.hop_length:
            return tf.signal.frame(x, self.n_fft, self.hop_length)
        # With a static length and n_fft a multiple of the hop (the default),
        # frames are k consecutive hop-sized blocks: reshape, k slices and a
        # concat keep every shape static in the TFLite graph, where
        # tf.signal.frame would add a dynamic SHAPE/RANGE/GATHER sub-graph.
        hop, k = self.hop_length, self.n_fft // self.hop_length
        num_frames = 1 + (length - self.n_fft) // hop
        num_blocks = num_frames + k - 1
        blocks = tf.reshape(x[:, : num_blocks * hop], [-1, num_blocks, hop])
        return tf.concat([blocks[:, i : i + num_frames] for i in range(k)], axis=-1)

    def compute_output_shape(self, input_shape):
        samples = input_shape[-1]
        frames = None if samples is None else 1 + samples // self.hop_length
        return (input_shape[0], self._config.feature_rows, frames, 1)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "sample_rate": self.sample_rate,
                "n_mfcc": self.n_mfcc,
                "n_fft": self.n_fft,
                "hop_length": self.hop_length,
                "n_mels": self.n_mels,
                "fmin": self.fmin,
                "fmax": self.fmax,
                "top_db": self.top_db,
                "representation": self.representation,
            }
        )
        return config
