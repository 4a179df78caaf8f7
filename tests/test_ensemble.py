"""`EmotionEnsemble`: the members' probabilities averaged on the one inference path."""

from __future__ import annotations

import numpy as np
import pytest

from sercal_keras import EmotionEnsemble, EmotionRecognizer
from sercal_keras.audio.frontend import FeatureConfig, standardize
from sercal_keras.errors import ConfigError
from sercal_keras.model_card import ModelCard

LABELS = ["neutral", "happy", "sad", "angry"]


class FixedModel:
    """Stands in for a Keras model: answers one probability row for every segment, records its inputs."""

    input_shape, output_shape = (None, 26, 63), (None, 4)

    def __init__(self, row):
        self.row = np.asarray(row, np.float32)
        self.seen = []

    def predict_on_batch(self, x):
        self.seen.append(np.array(x))
        return np.tile(self.row, (len(x), 1))


def member(row, labels=LABELS, normalization="global", prior=None, **features):
    extra = {"feature_normalization": normalization}
    if prior is not None:
        extra["speaker_prior"] = prior
    card = ModelCard(labels=list(labels), feature_config=FeatureConfig(**features).to_dict(), feature_mean=[0.0] * 26,
                     feature_std=[1.0] * 26, corpus="synthetic", variant="mhsa", extra=extra)
    return EmotionRecognizer(FixedModel(row), card)


def test_probabilities_are_the_members_mean_and_the_label_follows_it():
    ensemble = EmotionEnsemble([member([0.7, 0.1, 0.1, 0.1]), member([0.1, 0.5, 0.3, 0.1]),
                                member([0.1, 0.5, 0.3, 0.1])])
    waveform = np.random.default_rng(0).normal(scale=0.1, size=16000 * 3).astype(np.float32)
    result = ensemble.predict(waveform, 16000)
    np.testing.assert_allclose([result.probabilities[k] for k in LABELS], [0.3, 0.3667, 0.2333, 0.1], atol=1e-4)
    assert result.label == "happy"  # the mean's arg-max, although one member is surest of "neutral"
    features = ensemble.features(waveform)
    assert all(len(np.concatenate(m.model.seen)) == len(features) for m in ensemble.members)  # each member saw every segment once
    assert "3 ×" in repr(ensemble)


def test_members_of_different_recipes_are_refused_by_name():
    with pytest.raises(ConfigError, match="labels"):
        EmotionEnsemble([member([0.25] * 4), member([0.25] * 4, labels=["a", "b", "c", "d"])])
    with pytest.raises(ConfigError, match="FeatureConfig"):
        EmotionEnsemble([member([0.25] * 4), member([0.25] * 4, n_fft=1024)])
    with pytest.raises(ConfigError, match="normalisation"):
        EmotionEnsemble([member([0.25] * 4), member([0.25] * 4, normalization="speaker")])
    with pytest.raises(ConfigError, match="at least one"):
        EmotionEnsemble([])
    with pytest.raises(ConfigError, match="list of model paths"):
        EmotionEnsemble.load("runs/one_model")


def test_per_speaker_members_all_get_the_adapted_statistics():
    prior = {"mean": [0.0] * 26, "std": [1.0] * 26, "weight": 10.0}
    ensemble = EmotionEnsemble([member([0.25] * 4, normalization="speaker", prior=prior) for _ in range(2)])
    rng = np.random.default_rng(1)
    speech = [rng.normal(scale=0.2, size=16000 * 2).astype(np.float32) for _ in range(3)]
    ensemble.adapt(speech)
    assert ensemble.speaker_statistics is not None
    features = ensemble.features(speech[0])
    ensemble.predict_features(features)
    expected = standardize(features, ensemble.speaker_statistics)
    for m in ensemble.members:
        np.testing.assert_allclose(m.model.seen[-1], expected, rtol=1e-6)


def test_test_time_speeds_give_every_member_every_copy():
    ensemble = EmotionEnsemble([member([0.7, 0.1, 0.1, 0.1]), member([0.1, 0.5, 0.3, 0.1])], test_time_speeds=(0.9, 1.1))
    waveform = np.random.default_rng(0).normal(scale=0.1, size=16000 * 3).astype(np.float32)
    result = ensemble.predict(waveform, 16000)
    copies = ensemble.copies_features(waveform)
    assert len(copies) == 3 and len(result.segment_probabilities) == len(copies[0])
    assert all(len(np.concatenate(m.model.seen)) == sum(map(len, copies)) for m in ensemble.members)
    np.testing.assert_allclose([result.probabilities[k] for k in LABELS], [0.4, 0.3, 0.2, 0.1], atol=1e-5)
    with pytest.raises(ConfigError, match="test_time_speeds"):
        EmotionEnsemble([member([0.25] * 4)], test_time_speeds=(1.0,))
