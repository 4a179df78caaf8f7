"""Per-speaker models on the device: `--adapt` / `--speaker-audio` standardise as the Keras side does."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from tests.edge_demo.conftest import mark_per_speaker, run_edge  # noqa: F401  (fixtures via conftest)


@pytest.fixture(scope="module")
def speaker_models(edge_models, tmp_path_factory):
    """The float32 MFCC .tflite and the .keras model, both with cards saying 'per-speaker'."""
    root = tmp_path_factory.mktemp("speaker_models")
    tflite = edge_models.tflite["float32"]
    shutil.copy(tflite, root / "speaker.tflite")
    mark_per_speaker(tflite.with_suffix(".json"), root / "speaker.json", sidecar=True)
    shutil.copy(edge_models.keras_path, root / "model.keras")
    mark_per_speaker(edge_models.keras_path.parent / "model_card.json", root / "model_card.json", sidecar=False)
    return root


def _probabilities(doc, labels):
    return np.array([[r["probabilities"][label] for label in labels] for r in doc["results"]])


def test_adapt_matches_the_keras_recognizer(edge_models, speaker_models, blocker_dir):
    from sercal_keras import EmotionRecognizer

    wavs = edge_models.wavs
    result = run_edge(blocker_dir, "classify", speaker_models / "speaker.tflite", *wavs, "--adapt", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["feature_normalization"] == "speaker"
    expected = EmotionRecognizer.load(speaker_models).predict_files(wavs, adapt=True)
    expected = np.array([[p.probabilities[label] for label in edge_models.labels] for p in expected])
    got = _probabilities(doc, edge_models.labels)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    # the standardisation changed the answer: the global path gives other probabilities
    unadapted = np.array([edge_models.reference[str(w)] for w in wavs])
    assert np.abs(got - unadapted).max() > 1e-2

    # enrolment audio instead of the files themselves: the same statistics, the same numbers
    result = run_edge(blocker_dir, "classify", speaker_models / "speaker.tflite", wavs[0], "--speaker-audio",
                      *wavs, "--json")
    assert result.returncode == 0, result.stderr
    np.testing.assert_allclose(_probabilities(json.loads(result.stdout), edge_models.labels), got[:1], atol=1e-5)


def test_per_speaker_model_without_statistics_exits_2_with_the_fix(edge_models, speaker_models, blocker_dir):
    result = run_edge(blocker_dir, "classify", speaker_models / "speaker.tflite", edge_models.wavs[0])
    assert result.returncode == 2 and not result.stdout
    assert "per-speaker normalisation" in result.stderr and "--adapt" in result.stderr


def test_global_model_refuses_adapt(edge_models, blocker_dir):
    result = run_edge(blocker_dir, "classify", edge_models.tflite["float32"], edge_models.wavs[0], "--adapt")
    assert result.returncode == 2 and "global normalisation" in result.stderr


def test_stream_takes_the_speakers_statistics_from_enrolment_audio(edge_models, speaker_models, blocker_dir):
    from edge_demo.audio import load_audio
    from edge_demo.runtime import EdgeModel

    model_path, wavs = speaker_models / "speaker.tflite", edge_models.wavs
    refused = run_edge(blocker_dir, "stream", "--model", model_path, "--wav", wavs[0], "--json")
    assert refused.returncode == 2 and "--speaker-audio" in refused.stderr
    result = run_edge(blocker_dir, "stream", "--model", model_path, "--wav", wavs[0], "--json",
                      "--speaker-audio", *wavs[:3])
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    updates = [line["update"] for line in lines if "update" in line]
    assert updates
    model = EdgeModel(model_path)
    model.adapt([load_audio(w, 16000).waveform for w in wavs[:3]])
    windows = model.segments(load_audio(wavs[0], 16000).waveform)[: len(updates)]
    np.testing.assert_allclose([u["raw_probabilities"] for u in updates], model.classify_segments(windows),
                               atol=1e-6)


@pytest.fixture(scope="module")
def prior_models(edge_models, speaker_models, tmp_path_factory):
    """The per-speaker pair again, the cards now holding a training-speaker average (as training writes it)."""
    from sercal_keras.audio import load_audio
    from sercal_keras.audio.frontend import FeatureConfig, mfcc, segment_waveform, speaker_statistics

    config = FeatureConfig()
    segments = np.concatenate([segment_waveform(load_audio(w, 16000), 32000, 6400) for w in edge_models.wavs[3:]])
    mean, std = speaker_statistics(mfcc(segments, config))
    prior = {"mean": mean.ravel().tolist(), "std": std.ravel().tolist(), "weight": 10.0}
    root = tmp_path_factory.mktemp("prior_models")
    for name, sidecar in (("speaker.json", True), ("model_card.json", False)):
        card = json.loads((speaker_models / name).read_text())
        (card["extra"]["training"] if sidecar else card["extra"])["speaker_prior"] = prior
        (root / name).write_text(json.dumps(card))
    shutil.copy(speaker_models / "speaker.tflite", root / "speaker.tflite")
    shutil.copy(speaker_models / "model.keras", root / "model.keras")
    return root


def test_with_a_stored_average_no_audio_is_needed_and_enrolment_is_shrunk(edge_models, prior_models, blocker_dir):
    from sercal_keras import EmotionRecognizer

    wavs = edge_models.wavs[:3]
    recognizer = EmotionRecognizer.load(prior_models)
    plain = run_edge(blocker_dir, "classify", prior_models / "speaker.tflite", *wavs, "--json")
    assert plain.returncode == 0, plain.stderr  # the training speakers' average stands in
    expected = [[p.probabilities[label] for label in edge_models.labels] for p in recognizer.predict_files(wavs)]
    np.testing.assert_allclose(_probabilities(json.loads(plain.stdout), edge_models.labels), expected, atol=1e-4)

    enrolled = run_edge(blocker_dir, "classify", prior_models / "speaker.tflite", *wavs, "--speaker-audio",
                        *edge_models.wavs[3:5], "--json")
    assert enrolled.returncode == 0, enrolled.stderr
    recognizer.adapt(edge_models.wavs[3:5])  # two utterances against the average's weight of 10
    expected = [[p.probabilities[label] for label in edge_models.labels] for p in recognizer.predict_files(wavs)]
    got = _probabilities(json.loads(enrolled.stdout), edge_models.labels)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert np.abs(got - _probabilities(json.loads(plain.stdout), edge_models.labels)).max() > 1e-3


def test_per_speaker_test_time_speeds_match_the_recognizer(edge_models, speaker_models, prior_models, blocker_dir):
    from sercal_keras import EmotionRecognizer

    wavs, speeds = edge_models.wavs[:3], ("--test-time-speeds", "0.9", "1.1")
    recognizer = EmotionRecognizer.load(speaker_models, test_time_speeds=(0.9, 1.1))
    expected = [[p.probabilities[label] for label in edge_models.labels]
                for p in recognizer.predict_files(wavs, adapt=True)]
    assert set(recognizer.test_time_statistics) == {0.9, 1.1}  # each copy by its own speed's statistics
    adapted = run_edge(blocker_dir, "classify", speaker_models / "speaker.tflite", *wavs, "--adapt", *speeds, "--json")
    assert adapted.returncode == 0, adapted.stderr
    got = _probabilities(json.loads(adapted.stdout), edge_models.labels)
    np.testing.assert_allclose(got, expected, atol=1e-4)  # soxr on both sides: the same copies and statistics
    plain = run_edge(blocker_dir, "classify", speaker_models / "speaker.tflite", *wavs, "--adapt", "--json")
    assert np.abs(got - _probabilities(json.loads(plain.stdout), edge_models.labels)).max() > 1e-3

    enrolled = run_edge(blocker_dir, "classify", speaker_models / "speaker.tflite", wavs[0], "--speaker-audio", *wavs,
                        *speeds, "--json")
    assert enrolled.returncode == 0, enrolled.stderr
    np.testing.assert_allclose(_probabilities(json.loads(enrolled.stdout), edge_models.labels), got[:1], atol=1e-5)

    # no speaker audio: the card's training-speaker average serves every copy, on both sides
    averaged = run_edge(blocker_dir, "classify", prior_models / "speaker.tflite", *wavs, *speeds, "--json")
    assert averaged.returncode == 0, averaged.stderr
    expected = [[p.probabilities[label] for label in edge_models.labels]
                for p in EmotionRecognizer.load(prior_models, test_time_speeds=(0.9, 1.1)).predict_files(wavs)]
    np.testing.assert_allclose(_probabilities(json.loads(averaged.stdout), edge_models.labels), expected, atol=1e-4)


def test_bad_test_time_speeds_stop_a_per_speaker_model_before_any_audio(edge_models, speaker_models, blocker_dir):
    result = run_edge(blocker_dir, "classify", speaker_models / "speaker.tflite", *edge_models.wavs[:2], "--adapt",
                      "--test-time-speeds", "1.0")
    assert result.returncode == 2 and not result.stdout
    assert "--test-time-speeds" in result.stderr and "distinct factors" in result.stderr
    from edge_demo.audio import load_audio
    from edge_demo.runtime import EdgeModel, EdgeModelError

    model = EdgeModel(speaker_models / "speaker.tflite")
    with pytest.raises(EdgeModelError, match="distinct factors"):
        model.adapt([load_audio(edge_models.wavs[0], 16000).waveform], (1.0,))
