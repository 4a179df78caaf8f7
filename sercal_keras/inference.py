"""`EmotionRecognizer`: audio file or waveform → emotion label and probabilities.

The path is exactly the training/evaluation one (ARCHITECTURE.md):
`load_audio` → `segment_waveform` with the **evaluation hop** → `mfcc` →
model (its `Normalization` layer holds the training statistics) → segment
probabilities → utterance probabilities as their mean. The feature settings
come from the model card (`model_card.json`) beside the model, so inference
always computes the features the model was trained on.

A model trained with per-speaker normalisation (`--feature-normalization
speaker`) standardises the MFCC by the speaker's own statistics: `adapt`
computes them from unlabelled utterances of the speaker, or `predict_files(paths,
adapt=True)` from the files being classified (all one speaker's), each shrunk
towards the training speakers' average stored in the card (`shrink_statistics`);
without either, that average alone is used.

**Test-time speeds** (`test_time_speeds=(0.9, 1.1)`, off by default): every
utterance is also classified sped up and slowed down (`change_speed`, the
training augmentation), and its probabilities are the mean over the segments
of all copies. Research log #42: +1.6 pp UA [+0.9, +2.3] over 72 paired runs
of models trained with those speeds (+0.9 [+0.1, +1.8] over the 45 runs trained
after that decision, #48), for ~3× the model calls (the copies hold
1 + 1/0.9 + 1/1.1 ≈ 3 times the audio) and two resamplings.

Example:
>>> recognizer = EmotionRecognizer.load("runs/emodb_fa_ca")  # doctest: +SKIP
>>> result = recognizer.predict_file("03a01Wa.wav")
>>> result.label, round(result.probabilities["anger"], 2)
('anger', 0.93)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from sercal_keras.audio.decode import load_audio, prepare_waveform
from sercal_keras.audio.frontend import (
    SPEAKER_PRIOR_WEIGHT,
    FeatureConfig,
    aggregate_utterance,
    check_test_time_speeds,
    mfcc,
    segment_waveform,
    shrink_statistics,
    speaker_statistics,
    standardize,
)
from sercal_keras.audio.speed_perturbation import change_speed
from sercal_keras.errors import ConfigError, ModelFileError, SpeakerStatisticsError
from sercal_keras.model_card import ModelCard, card_path_for

PathLike = Union[str, Path]
MODEL_NAME = "model.keras"


@dataclasses.dataclass(frozen=True)
class EmotionPrediction:
    """The result for one utterance.

    Attributes:
        label: the predicted class (argmax of `probabilities`).
        probabilities: class name → utterance probability (mean over segments;
            with test-time speeds, over the segments of every copy).
        segment_probabilities: (num_segments, num_classes) float32, one row per
            2 s segment taken every evaluation hop (0.4 s by default), of the
            audio as recorded.
        labels: class names in the model's output order.
        segment_starts: start time in seconds of each segment.
        source: the file it came from, if any.
    """

    label: str
    probabilities: Dict[str, float]
    segment_probabilities: np.ndarray
    labels: Tuple[str, ...]
    segment_starts: Tuple[float, ...]
    source: Optional[str] = None

    @property
    def confidence(self) -> float:
        """The probability of the predicted label."""
        return self.probabilities[self.label]

    @property
    def segment_labels(self) -> List[str]:
        """The argmax label of each segment."""
        return [self.labels[i] for i in np.argmax(self.segment_probabilities, axis=1)]

    def to_dict(self) -> Dict:
        """A JSON-ready dict."""
        return {
            "source": self.source,
            "label": self.label,
            "confidence": self.confidence,
            "probabilities": dict(self.probabilities),
            "segments": [
                {"start": start, "probabilities": dict(zip(self.labels, map(float, row)))}
                for start, row in zip(self.segment_starts, self.segment_probabilities)
            ],
        }


def resolve_model_path(path: PathLike) -> Path:
    """The `model.keras` meant by `path`: the file, a run directory holding it, or a
    cross-validation directory holding exactly one run.

    Raises:
        ModelFileError: nothing there, or several runs to choose from (listed).
    """
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise ModelFileError(f"{path}: no such model file or run directory.")
    if (path / MODEL_NAME).is_file():
        return path / MODEL_NAME
    candidates = sorted(p.parent for p in path.glob(f"*/{MODEL_NAME}"))
    if len(candidates) == 1:
        return candidates[0] / MODEL_NAME
    if not candidates:
        raise ModelFileError(f"{path}: no {MODEL_NAME} in it or its sub-directories; has the training finished?")
    names = ", ".join(p.name for p in candidates[:8]) + (", ..." if len(candidates) > 8 else "")
    raise ModelFileError(f"{path} holds {len(candidates)} runs ({names}); pass one of them.")


class EmotionRecognizer:
    """A trained sercal-keras model with the front-end it was trained with.

    Args:
        model: the Keras model (raw MFCC (batch, n_mfcc, frames) → probabilities).
        card: its `ModelCard` (labels, `FeatureConfig`, normalisation).
        batch_size: segments per model call.
        test_time_speeds: speed factors (besides 1) at which every utterance is
            also classified, its copies' segments pooled (module docstring);
            e.g. the training `speed_perturbation`, `(0.9, 1.1)`. Default: none.

    Raises:
        ConfigError: a test-time speed outside `frontend.SPEED_RANGE`, 1, or repeated.

    Example:
    >>> recognizer = EmotionRecognizer.load("runs/x/model.keras")  # doctest: +SKIP
    >>> recognizer.predict(np.zeros(32000, np.float32), 16000).label
    >>> EmotionRecognizer.load("runs/x", test_time_speeds=(0.9, 1.1)).predict_file("a.wav")  # doctest: +SKIP
    """

    def __init__(self, model, card: ModelCard, batch_size: int = 64, test_time_speeds: Sequence[float] = ()):
        self.test_time_speeds = test_time_speeds
        self.model = model
        self.card = card
        self.batch_size = int(batch_size)
        self.labels: Tuple[str, ...] = tuple(card.labels)
        self.feature_config = FeatureConfig.from_dict(card.feature_config)
        #: `(mean, std)` of the current speaker's MFCC (per-speaker models only; see `adapt`).
        self.speaker_statistics: Optional[Tuple[np.ndarray, np.ndarray]] = None
        #: the same speaker's statistics at each test-time speed (set by `adapt` with the others).
        self.test_time_statistics: Dict[float, Tuple[np.ndarray, np.ndarray]] = {}
        outputs = model.output_shape[-1]
        if outputs != len(self.labels):
            raise ModelFileError(
                f"the model has {outputs} outputs but its card lists {len(self.labels)} labels; "
                "the card does not belong to this model."
            )
        expected = tuple(model.input_shape[1:])
        if expected != tuple(self.feature_config.feature_shape):
            raise ModelFileError(
                f"the model takes {expected} inputs but the card's FeatureConfig gives "
                f"{self.feature_config.feature_shape}; the card does not belong to this model."
            )

    @property
    def test_time_speeds(self) -> Tuple[float, ...]:
        """Speed factors (besides 1) at which every utterance is also classified; `()` = off."""
        return self._test_time_speeds

    @test_time_speeds.setter
    def test_time_speeds(self, speeds: Sequence[float]) -> None:
        try:
            self._test_time_speeds = check_test_time_speeds(speeds)
        except ValueError as error:
            raise ConfigError(str(error)) from None

    @property
    def speeds(self) -> Tuple[float, ...]:
        """Every copy an utterance is classified at: 1 (as recorded), then `test_time_speeds`."""
        return (1.0,) + self.test_time_speeds

    @classmethod
    def load(cls, path: PathLike, batch_size: int = 64, test_time_speeds: Sequence[float] = ()) -> "EmotionRecognizer":
        """Loads `model.keras` (a file, a run directory, or a CV directory with one run)
        and the `model_card.json` beside it (`test_time_speeds`: as in the constructor).

        Raises:
            ModelFileError: no model, no card, or a card that does not fit the model.
        """
        import keras

        import sercal_keras  # noqa: F401  (registers the layers)

        model_path = resolve_model_path(path)
        card = ModelCard.load(card_path_for(model_path))
        try:
            model = keras.models.load_model(model_path, compile=False)
        except Exception as error:  # noqa: BLE001  (Keras raises many kinds)
            raise ModelFileError(f"{model_path}: cannot load the model ({error}).") from error
        recognizer = cls(model, card, batch_size=batch_size, test_time_speeds=test_time_speeds)
        recognizer.model_path = model_path
        return recognizer

    # --------------------------------------------------------------- features
    def features(self, waveform: np.ndarray) -> np.ndarray:
        """MFCC of the evaluation-hop segments of a prepared waveform: (n, n_mfcc, frames)."""
        fc = self.feature_config
        segments = segment_waveform(waveform, fc.segment_samples, fc.hop_samples(training=False))
        return mfcc(segments, fc)

    def copies_features(self, waveform: np.ndarray) -> List[np.ndarray]:
        """`features` of a prepared waveform at each of `speeds`: as recorded first, then each test-time speed."""
        rate = self.feature_config.sample_rate
        return [self.features(waveform if speed == 1.0 else change_speed(waveform, speed, rate))
                for speed in self.speeds]

    @property
    def speaker_prior(self) -> Optional[Tuple[np.ndarray, np.ndarray]]:
        """The training speakers' average `(mean, std)` from the card (per-speaker models), or None."""
        prior = self.card.extra.get("speaker_prior")
        if not self.needs_speaker_statistics or not prior:
            return None
        return (np.asarray(prior["mean"], np.float32).reshape(-1, 1),
                np.asarray(prior["std"], np.float32).reshape(-1, 1))

    def _speaker_statistics_from(self, features: List[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
        statistics = speaker_statistics(np.concatenate(features))
        prior = self.speaker_prior
        if prior is None:  # a card written before the prior was stored
            return statistics
        return shrink_statistics(statistics, prior, len(features),
                                 float(self.card.extra["speaker_prior"].get("weight", SPEAKER_PRIOR_WEIGHT)))

    @property
    def needs_speaker_statistics(self) -> bool:
        """True for models trained with per-speaker normalisation (`--feature-normalization speaker`)."""
        return self.card.speaker_normalization

    def adapt(self, sources: Sequence[Union[PathLike, np.ndarray]]) -> None:
        """Sets the speaker statistics from unlabelled utterances of the speaker.

        Args:
            sources: audio files, or waveforms already at the model's sample
                rate, of the one speaker whose speech is classified next
                (`benchmarks.speaker_enrolment` measures how many are enough).

        Raises:
            ConfigError: the model does not use per-speaker statistics, or no audio was given.
            AudioDecodeError: a file cannot be read.
        """
        if not self.needs_speaker_statistics:
            raise ConfigError("this model uses one global normalisation (trained with --feature-normalization "
                              "global); it takes no speaker statistics")
        copies = [self.copies_features(load_audio(s, self.feature_config.sample_rate)
                                       if isinstance(s, (str, Path)) else np.asarray(s, np.float32))
                  for s in sources]
        if not copies:
            raise ConfigError("adapt() needs at least one utterance of the speaker")
        self._adapt_copies(copies)

    def _adapt_copies(self, copies: List[List[np.ndarray]]) -> None:
        """Speaker statistics at every speed from `copies[utterance][speed]` features."""
        by_speed = [self._speaker_statistics_from(list(files)) for files in zip(*copies)]
        self.speaker_statistics = by_speed[0]
        self.test_time_statistics = dict(zip(self.test_time_speeds, by_speed[1:]))

    def predict_features(self, features: np.ndarray,
                         statistics: Optional[Tuple[np.ndarray, np.ndarray]] = None) -> np.ndarray:
        """Segment probabilities (n, num_classes) for MFCC segments (n, n_mfcc, frames).

        Args:
            features: raw MFCC segments.
            statistics: the speaker's `(mean, std)` for a per-speaker model;
                default the ones `adapt` set, else the card's training-speaker
                average. Ignored by global models.

        Raises:
            SpeakerStatisticsError: a per-speaker model without statistics
                (its card predates the stored average and `adapt` was not called).
        """
        features = np.asarray(features, np.float32)
        if len(features) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        if self.needs_speaker_statistics:
            statistics = next((s for s in (statistics, self.speaker_statistics, self.speaker_prior)
                               if s is not None), None)
            if statistics is None:
                raise SpeakerStatisticsError(
                    "this model was trained with per-speaker normalisation (--feature-normalization speaker): "
                    "call recognizer.adapt([...]) with a few utterances of the speaker first, or "
                    "predict_files(paths, adapt=True) when the files are all one speaker's")
            features = standardize(features, statistics)
        out = [
            np.asarray(self.model.predict_on_batch(features[start : start + self.batch_size]))
            for start in range(0, len(features), self.batch_size)
        ]
        return np.concatenate(out).astype(np.float32)

    def predict_speakers(self, features: np.ndarray, speakers: Sequence[str],
                         statistics: Optional[Dict[str, Tuple[np.ndarray, np.ndarray]]] = None) -> np.ndarray:
        """Segment probabilities of several speakers' MFCC segments, each speaker standardised apart.

        Args:
            features: raw MFCC segments (n, n_mfcc, frames).
            speakers: the speaker of each segment (n,).
            statistics: speaker → `(mean, std)`; a speaker left out (or all,
                when None) takes the statistics of their own segments here,
                as training took its test speakers'.

        Returns:
            (n, num_classes) float32. A global model (no per-speaker
            normalisation) predicts all segments at once, ignoring `speakers`:
            so this one call scores a test set as training scored it.
        """
        if not self.needs_speaker_statistics:
            return self.predict_features(features)
        features = np.asarray(features, np.float32)
        speakers = np.asarray(speakers, dtype=object)
        statistics = statistics or {}
        probs = np.zeros((len(features), len(self.labels)), np.float32)
        for speaker in np.unique(speakers):
            own = speakers == speaker
            own_statistics = statistics.get(speaker)
            if own_statistics is None:
                own_statistics = speaker_statistics(features[own])
            probs[own] = self.predict_features(features[own], own_statistics)
        return probs

    def _predict_copies(self, copies: List[np.ndarray]) -> List[np.ndarray]:
        """Segment probabilities of the features at each of `speeds`, each copy with its speaker statistics."""
        return [self.predict_features(features, self.test_time_statistics.get(speed) if speed != 1.0 else None)
                for speed, features in zip(self.speeds, copies)]

    def _result(self, copies_probs: List[np.ndarray], source: Optional[str]) -> EmotionPrediction:
        """The prediction from the segment probabilities of each copy (the recorded audio first)."""
        segment_probs, num_segments = copies_probs[0], len(copies_probs[0])
        utterance = aggregate_utterance(np.concatenate(copies_probs))
        hop = self.feature_config.eval_hop_seconds
        return EmotionPrediction(
            label=self.labels[int(np.argmax(utterance))],
            probabilities={label: float(p) for label, p in zip(self.labels, utterance)},
            segment_probabilities=segment_probs,
            labels=self.labels,
            segment_starts=tuple(round(i * hop, 6) for i in range(num_segments)),
            source=source,
        )

    # ------------------------------------------------------------- prediction
    def predict(self, waveform, sample_rate: int) -> EmotionPrediction:
        """Predicts the emotion of one waveform ((n,) or (n, channels), any rate)."""
        prepared = prepare_waveform(waveform, sample_rate, self.feature_config.sample_rate)
        return self._result(self._predict_copies(self.copies_features(prepared)), None)

    def predict_file(self, path: PathLike) -> EmotionPrediction:
        """Predicts the emotion of an audio file (WAV/FLAC/OGG, any rate, mono or not)."""
        return self.predict_files([path])[0]

    def predict_files(self, paths: Sequence[PathLike], adapt: bool = False) -> List[EmotionPrediction]:
        """Predicts several files, their segments batched together.

        Args:
            paths: audio files.
            adapt: per-speaker models only: the files are one speaker's, and
                their own MFCC statistics (shrunk towards the training
                speakers' average) replace the speaker statistics first.

        Raises:
            AudioDecodeError: a file cannot be read (names the file).
            SpeakerStatisticsError: a per-speaker model, no `adapt()` before and `adapt=False`.
        """
        copies = [self.copies_features(load_audio(path, self.feature_config.sample_rate)) for path in paths]
        if not copies:
            return []
        if adapt:
            if not self.needs_speaker_statistics:
                raise ConfigError("adapt=True: this model uses one global normalisation; it takes no "
                                  "speaker statistics")
            self._adapt_copies(copies)
        # every file's segments of one speed in one batch run, then split back per file
        by_speed = list(zip(*copies))  # [speed][file] features
        probs = self._predict_copies([np.concatenate(files) for files in by_speed])
        per_file = zip(*[np.split(p, np.cumsum([len(f) for f in files])[:-1]) for p, files in zip(probs, by_speed)])
        return [self._result(list(file_probs), str(path)) for file_probs, path in zip(per_file, paths)]

    def __repr__(self) -> str:
        speeds = f", test_time_speeds={list(self.test_time_speeds)}" if self.test_time_speeds else ""
        return (f"EmotionRecognizer(variant={self.card.variant!r}, corpus={self.card.corpus!r}, "
                f"labels={list(self.labels)}{speeds})")


__all__ = ["EmotionPrediction", "EmotionRecognizer", "resolve_model_path"]
