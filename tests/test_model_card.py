"""The model card: what apps, export and the edge read beside a model."""

from sercal_keras.model_card import ModelCard


def _card(**extra):
    return ModelCard(labels=["neutral", "angry"], feature_config={}, feature_mean=[0.0], feature_std=[1.0],
                     extra=extra)


def test_speaker_normalization_is_read_from_the_training_setting():
    assert _card(feature_normalization="speaker").speaker_normalization
    assert not _card(feature_normalization="global").speaker_normalization
    assert not _card().speaker_normalization  # cards from before the option: global statistics
    assert (_card(feature_normalization="speaker").feature_normalization, _card().feature_normalization) == (
        "speaker", "global")


def test_speaker_normalization_survives_a_json_round_trip(tmp_path):
    path = _card(feature_normalization="speaker").save(tmp_path / "model_card.json")
    assert ModelCard.load(path).speaker_normalization
