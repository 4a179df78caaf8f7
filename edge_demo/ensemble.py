"""`EdgeEnsemble`: several `.tflite` models of one recipe, their probabilities averaged.

The edge side of `sercal_keras.EmotionEnsemble`: each member classifies the
same segments as it would alone (its own sidecar's normalisation and
quantisation), and the ensemble averages their segment probabilities, then the
segments per utterance, as one model does. Several seeds of one recipe are the
intended members (research log #19: +2.7 to +5.9 pp UA on EmoDB for three seeds); the
cost is one interpreter call per member and segment.

Example:
>>> ensemble = EdgeEnsemble([EdgeModel(p) for p in ("s0_int8.tflite", "s1_int8.tflite")])  # doctest: +SKIP
>>> probs, segment_probs = ensemble.classify_waveform(waveform)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np

from edge_demo.runtime import EdgeModel, EdgeModelError, classify_copies


class EdgeEnsemble:
    """Averages the segment probabilities of `EdgeModel`s with the same labels and front-end.

    Args:
        members: the loaded models, at least one. Their quantisation and input
            kind may differ; labels, `FeatureConfig` and feature normalisation
            may not.

    Raises:
        EdgeModelError: no members, or members that disagree (names both files).
    """

    def __init__(self, members: Sequence[EdgeModel]):
        self.members = list(members)
        if not self.members:
            raise EdgeModelError("an ensemble needs at least one model.")
        first = self.members[0]
        for member in self.members[1:]:
            for what, mine, theirs in (("labels", first.labels, member.labels),
                                       ("features (feature_config)", first.feature_config, member.feature_config),
                                       ("feature normalisation", first.per_speaker, member.per_speaker)):
                if mine != theirs:
                    raise EdgeModelError(
                        f"{first.model_path} and {member.model_path} disagree on {what} ({mine!r} vs {theirs!r}); "
                        "an ensemble averages models of one recipe and corpus.")
        self.frontend = first.frontend
        self.model_path = first.model_path

    @property
    def labels(self) -> Tuple[str, ...]:
        return self.members[0].labels

    @property
    def feature_config(self):
        return self.members[0].feature_config

    @property
    def per_speaker(self) -> bool:
        return self.members[0].per_speaker

    def describe(self) -> Dict[str, Any]:
        """The first member's facts, with every member's own under `"members"`."""
        return {**self.members[0].describe(), "members": [m.describe() for m in self.members]}

    def adapt(self, waveforms: Sequence[np.ndarray], test_time_speeds: Sequence[float] = ()) -> None:
        """Each member takes the speaker's statistics (shrunk towards its own sidecar's average; see
        `EdgeModel.adapt`)."""
        for member in self.members:
            member.adapt(waveforms, test_time_speeds)

    def current_speaker_statistics(self, **kwargs):
        """Every member's check (`EdgeModel.current_speaker_statistics`); returns the first member's statistics."""
        statistics = [member.current_speaker_statistics(**kwargs) for member in self.members]
        return statistics[0]

    def segments(self, waveform: np.ndarray) -> np.ndarray:
        return self.members[0].segments(waveform)

    def classify_segments(self, segments: np.ndarray, speed: float = 1.0) -> np.ndarray:
        """The members' mean segment probabilities (n, classes) (`speed`: see `EdgeModel.features`)."""
        return np.mean([m.classify_segments(segments, speed) for m in self.members], axis=0).astype(np.float32)

    def classify_waveform(self, waveform: np.ndarray,
                          test_time_speeds: Sequence[float] = ()) -> Tuple[np.ndarray, np.ndarray]:
        """(utterance probabilities (classes,), segment probabilities (n, classes)); see `classify_copies`."""
        return classify_copies(self, waveform, test_time_speeds)


def load_model_or_ensemble(model_path: str, card_path: Optional[str] = None, more: Sequence[str] = (),
                           num_threads: int = 1) -> Union[EdgeModel, EdgeEnsemble]:
    """The `EdgeModel` of `model_path`, or with `more` paths the `EdgeEnsemble` of all of them.

    What the command-line apps' `--ensemble` does: `card_path` is the first
    model's sidecar; the others sit beside their models.
    """
    model = EdgeModel(model_path, card_path=card_path, num_threads=num_threads)
    if not more:
        return model
    return EdgeEnsemble([model] + [EdgeModel(path, num_threads=num_threads) for path in more])


__all__ = ["EdgeEnsemble", "load_model_or_ensemble"]
