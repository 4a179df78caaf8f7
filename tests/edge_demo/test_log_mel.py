"""A log-mel model (`FeatureConfig(representation="log_mel")`) on the device path.

The edge runtime reads the representation from the sidecar's feature config and
computes the same log-mel bands as the library (one front-end file); the
waveform file computes them in the graph. Both must give Keras' probabilities.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.edge_demo.conftest import export_files, keras_reference, mark_per_speaker, run_edge, synthetic_split

N_MELS = 40  # not the MFCC default's 26 rows, nor FeatureConfig's default n_mels (128)


@pytest.fixture(scope="module")
def log_mel_export(edge_models, tmp_path_factory):
    """A small log-mel mhsa model on the edge tests' corpus, exported as float32 feature and waveform files."""
    import keras

    from sercal_keras.audio.frontend import FeatureConfig
    from sercal_keras.data.features import fit_normalization
    from sercal_keras.model_card import ModelCard, card_path_for
    from sercal_keras.models import build_model

    config = FeatureConfig(representation="log_mel", n_mels=N_MELS)
    split = synthetic_split(edge_models.root / "cache", config)  # the audio edge_models generated
    assert split.train.features.shape[1:] == (N_MELS, config.num_frames)
    mean, variance = fit_normalization(split.train.features)

    keras.utils.set_random_seed(0)
    model = build_model("mhsa", num_classes=len(edge_models.labels), input_shape=config.feature_shape,
                        num_heads=2, head_dim=8, feature_mean=mean, feature_variance=variance)
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    model.fit(split.train.features, split.train.labels, epochs=4, batch_size=16, verbose=0)
    out = tmp_path_factory.mktemp("log_mel")
    keras_path = out / "model.keras"
    model.save(keras_path)
    ModelCard(labels=edge_models.labels, feature_config=config.to_dict(), feature_mean=mean.tolist(),
              feature_std=np.sqrt(variance).tolist(), corpus="synthetic", variant="mhsa").save(card_path_for(keras_path))

    files = export_files(keras_path, split, out, [("mfcc", "float32"), ("waveform", "float32")])
    reference = {wav: probs for wav, (probs, _) in keras_reference(model, keras_path, edge_models.wavs, config).items()}
    return {kind: path for (kind, _), path in files.items()}, reference


def test_sidecar_describes_log_mel_input(log_mel_export):
    files, _ = log_mel_export
    card = json.loads(files["mfcc"].with_suffix(".json").read_text())
    assert card["feature_config"]["representation"] == "log_mel"
    assert card["extra"]["input"]["shape"] == [1, N_MELS, 63]
    assert f"{N_MELS} log-mel bands" in card["extra"]["input_description"]
    assert "MFCC" not in card["extra"]["input_description"]
    waveform_card = json.loads(files["waveform"].with_suffix(".json").read_text())
    assert "log-mel bands and standardisation run inside the model" in waveform_card["extra"]["input_description"]


@pytest.mark.parametrize("kind, atol", [("mfcc", 1e-4), ("waveform", 2e-3)])
def test_edge_log_mel_model_matches_keras(log_mel_export, edge_models, blocker_dir, kind, atol):
    files, reference = log_mel_export
    result = run_edge(blocker_dir, "classify", files[kind], *edge_models.wavs[:4], "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["input_kind"] == kind and not doc["errors"]
    for item in doc["results"]:
        got = np.array([item["probabilities"][label] for label in edge_models.labels])
        np.testing.assert_allclose(got, reference[item["file"]], atol=atol)


def test_per_speaker_log_mel_model_adapts_on_the_device_as_in_keras(log_mel_export, edge_models, blocker_dir,
                                                                      tmp_path):
    """Per-speaker statistics are per log-mel band for a log-mel model, on the device as in Keras."""
    import shutil

    from sercal_keras import EmotionRecognizer

    files, reference = log_mel_export
    mark_per_speaker(files["mfcc"].with_suffix(".json"), tmp_path / "speaker.json", sidecar=True)
    mark_per_speaker(files["mfcc"].parent / "model_card.json", tmp_path / "model_card.json", sidecar=False)
    shutil.copy(files["mfcc"], tmp_path / "speaker.tflite")
    shutil.copy(files["mfcc"].parent / "model.keras", tmp_path / "model.keras")

    wavs = edge_models.wavs[:4]
    result = run_edge(blocker_dir, "classify", tmp_path / "speaker.tflite", *wavs, "--adapt", "--json")
    assert result.returncode == 0, result.stderr
    got = np.array([[item["probabilities"][label] for label in edge_models.labels]
                    for item in json.loads(result.stdout)["results"]])
    expected = EmotionRecognizer.load(tmp_path).predict_files(wavs, adapt=True)
    np.testing.assert_allclose(got, [[p.probabilities[label] for label in edge_models.labels] for p in expected],
                               atol=1e-4)
    # the speaker's own band statistics moved the answer away from the global standardisation
    assert np.abs(got - np.array([reference[str(w)] for w in wavs])).max() > 1e-2
