"""`EmotionEnsemble`: several trained models of one recipe, their probabilities averaged.

Runs that differ only in their seed disagree a lot on small corpora; averaging
their segment probabilities removes much of that variance (research log #19:
three seeds gave +2.7 to +5.9 pp UA over the mean of the single runs on EmoDB). The
ensemble is an `EmotionRecognizer`: the same front-end, `adapt`, `predict`,
`predict_file(s)` and `predict_speakers`, with `predict_features` averaging the
members. `benchmarks.seed_ensemble` scores the same average on test folds.

Example:
>>> ensemble = EmotionEnsemble.load(["runs/a_seed0", "runs/a_seed1", "runs/a_seed2"])  # doctest: +SKIP
>>> ensemble.predict_file("03a01Wa.wav").label
'anger'
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from sercal_keras.errors import ConfigError
from sercal_keras.inference import EmotionRecognizer, PathLike


class EmotionEnsemble(EmotionRecognizer):
    """Averages the segment probabilities of models trained on the same labels and features.

    Members must share labels, `FeatureConfig` and feature normalisation (they
    read the same MFCC). For a per-speaker recipe the speaker statistics set by
    `adapt` are given to every member (shrunk towards the first member's
    stored training-speaker average); without `adapt` each member uses its own
    stored average. Members trained on the same speakers (several seeds of one
    run, the intended use) store the same average.

    Args:
        members: the `EmotionRecognizer`s, at least one.
        test_time_speeds: as for `EmotionRecognizer` (the members' own are not used).

    Raises:
        ConfigError: no members, or members that disagree (names both models).

    Example:
    >>> members = [EmotionRecognizer.load(p) for p in ("runs/s0", "runs/s1")]  # doctest: +SKIP
    >>> EmotionEnsemble(members).predict_files(["a.wav", "b.wav"])[0].label
    """

    def __init__(self, members: Sequence[EmotionRecognizer], test_time_speeds: Sequence[float] = ()):
        members = list(members)
        if not members:
            raise ConfigError("an EmotionEnsemble needs at least one model")
        first = members[0]
        for member in members[1:]:
            for what, mine, theirs in (
                ("labels", first.labels, member.labels),
                ("features (FeatureConfig)", first.feature_config, member.feature_config),
                ("feature normalisation", first.needs_speaker_statistics, member.needs_speaker_statistics),
            ):
                if mine != theirs:
                    raise ConfigError(
                        f"ensemble members disagree on {what}: {_name(first)} has {mine!r}, "
                        f"{_name(member)} has {theirs!r}; average only models of one recipe and corpus")
        self.members = members
        self.card = first.card
        self.batch_size = first.batch_size
        self.labels = first.labels
        self.feature_config = first.feature_config
        self.speaker_statistics: Optional[Tuple[np.ndarray, np.ndarray]] = None
        self.test_time_statistics = {}
        self.test_time_speeds = test_time_speeds

    @classmethod
    def load(cls, paths: Sequence[PathLike], batch_size: int = 64,
             test_time_speeds: Sequence[float] = ()) -> "EmotionEnsemble":
        """Loads every model (`EmotionRecognizer.load` on each path) into one ensemble."""
        if isinstance(paths, (str, bytes)) or not hasattr(paths, "__iter__"):
            raise ConfigError("EmotionEnsemble.load takes a list of model paths; for one model use "
                              "EmotionRecognizer.load")
        return cls([EmotionRecognizer.load(path, batch_size=batch_size) for path in paths], test_time_speeds)

    def predict_features(self, features: np.ndarray,
                         statistics: Optional[Tuple[np.ndarray, np.ndarray]] = None) -> np.ndarray:
        """The members' mean segment probabilities (n, num_classes) for raw MFCC segments.

        Args:
            features: raw MFCC segments (n, n_mfcc, frames).
            statistics: the speaker's `(mean, std)` (per-speaker recipes); default
                the ones `adapt` set, else each member's stored average.
        """
        statistics = statistics if statistics is not None else self.speaker_statistics
        return np.mean([m.predict_features(features, statistics) for m in self.members], axis=0).astype(np.float32)

    def __repr__(self) -> str:
        return (f"EmotionEnsemble({len(self.members)} × variant={self.card.variant!r}, corpus={self.card.corpus!r}, "
                f"labels={list(self.labels)})")


def _name(recognizer: EmotionRecognizer) -> str:
    return str(getattr(recognizer, "model_path", repr(recognizer)))


__all__ = ["EmotionEnsemble"]
