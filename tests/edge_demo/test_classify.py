"""`python -m edge_demo.classify` on a device-like Python: no TensorFlow, Keras, librosa."""

from __future__ import annotations

import json
import wave

import numpy as np
import pytest

from tests.edge_demo.conftest import DEVICE_ONLY, HEAVY, run_edge  # noqa: F401  (fixtures via conftest)


def _classify_json(blocker_dir, model, wavs, *extra, blocked=HEAVY):
    result = run_edge(blocker_dir, "classify", model, *wavs, "--json", *extra, blocked=blocked)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _margin(probs: np.ndarray) -> float:
    top = np.sort(probs)[::-1]
    return float(top[0] - top[1])


def test_bootstrap_really_blocks_heavy_imports(blocker_dir):
    import subprocess
    import sys

    from tests.edge_demo.conftest import edge_env

    for name in ("tensorflow", "keras", "librosa", "sercal_keras"):
        result = subprocess.run([sys.executable, "-c", f"import {name}"], env=edge_env(blocker_dir),
                                capture_output=True, text=True)
        assert result.returncode != 0 and "blocked by the edge test bootstrap" in result.stderr, name


def test_float32_mfcc_model_matches_keras(edge_models, blocker_dir):
    doc = _classify_json(blocker_dir, edge_models.tflite["float32"], edge_models.wavs, "--segments")
    assert doc["input_kind"] == "mfcc" and doc["interpreter"] in ("ai_edge_litert", "tflite_runtime")
    assert doc["frontend"].endswith("sercal_keras/audio/frontend.py")
    assert not doc["errors"] and len(doc["results"]) == len(edge_models.wavs)
    for result in doc["results"]:
        reference = edge_models.reference[result["file"]]
        got = np.array([result["probabilities"][label] for label in edge_models.labels])
        assert result["label"] == edge_models.labels[int(np.argmax(reference))], result["file"]
        np.testing.assert_allclose(got, reference, atol=1e-4)
        np.testing.assert_allclose(result["segment_probabilities"],
                                   edge_models.reference_segments[result["file"]], atol=1e-4)


def test_int8_mfcc_model_gives_the_keras_label(edge_models, blocker_dir):
    doc = _classify_json(blocker_dir, edge_models.tflite["int8"], edge_models.wavs)
    assert doc["input"]["dtype"] == "int8" and doc["input"]["scale"] > 0
    agree = []
    for result in doc["results"]:
        reference = edge_models.reference[result["file"]]
        got = np.array([result["probabilities"][label] for label in edge_models.labels])
        assert np.all(np.abs(got - reference) < 0.15), (result["file"], got, reference)
        same = result["label"] == edge_models.labels[int(np.argmax(reference))]
        if _margin(reference) > 0.1:  # a clear Keras decision: int8 must agree
            assert same, (result["file"], got, reference)
        agree.append(same)
    assert np.mean(agree) >= 0.8


def test_waveform_model_matches_keras(edge_models, blocker_dir):
    doc = _classify_json(blocker_dir, edge_models.tflite["waveform"], edge_models.wavs[:4])
    assert doc["input_kind"] == "waveform" and doc["input"]["shape"][-1] == 32000
    for result in doc["results"]:
        reference = edge_models.reference[result["file"]]
        got = np.array([result["probabilities"][label] for label in edge_models.labels])
        np.testing.assert_allclose(got, reference, atol=2e-3)  # in-graph MFCC vs numpy MFCC
        assert result["label"] == edge_models.labels[int(np.argmax(reference))]


def _write_wav(path, samples: np.ndarray, rate: int):
    pcm = np.clip(np.round(samples * 32767), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(pcm.tobytes())


def test_other_sample_rates_are_resampled_without_soxr(edge_models, blocker_dir, tmp_path):
    from sercal_keras.audio import load_audio

    wav = edge_models.wavs[0]
    reference = edge_models.reference[str(wav)]
    waveform = load_audio(wav, 16000)
    pcm_44k = tmp_path / "clip_44k.wav"
    # Upsampling by the numpy resampler then back down keeps speech within ~-45 dB.
    from edge_demo.frontend_loader import load_frontend

    _write_wav(pcm_44k, load_frontend().resample(waveform, 16000, 44100), 44100)
    doc = _classify_json(blocker_dir, edge_models.tflite["float32"], [pcm_44k], blocked=DEVICE_ONLY)
    result = doc["results"][0]
    assert result["original_sample_rate"] == 44100 and result["resampler"] == "numpy"
    assert result["decoder"] == "stdlib"
    assert result["label"] == edge_models.labels[int(np.argmax(reference))]
    got = np.array([result["probabilities"][label] for label in edge_models.labels])
    np.testing.assert_allclose(got, reference, atol=0.05)


def test_table_output_and_threads(edge_models, blocker_dir):
    result = run_edge(blocker_dir, "classify", edge_models.tflite["int8"], *edge_models.wavs[:2], "--threads", "2")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["file", "label", "conf"] and all(x in lines[0] for x in edge_models.labels)
    assert len(lines) == 2 + 2
    assert "XNNPACK" not in result.stderr  # LiteRT's start-up chatter is filtered


@pytest.mark.parametrize("kind", ["float32", "int8"])
def test_in_process_api_agrees_with_cli(edge_models, kind):
    from edge_demo.audio import load_audio
    from edge_demo.runtime import EdgeModel

    model = EdgeModel(edge_models.tflite[kind])
    assert model.delegate_partitions() >= 1
    wav = edge_models.wavs[1]
    probs, segments = model.classify_waveform(load_audio(wav, 16000).waveform)
    assert segments.shape == edge_models.reference_segments[str(wav)].shape
    np.testing.assert_allclose(probs, segments.mean(axis=0), rtol=1e-6)


def test_ensemble_averages_its_members_probabilities(edge_models, blocker_dir):
    members = [edge_models.tflite["float32"], edge_models.tflite["int8"], edge_models.tflite["waveform"]]
    singles = [_classify_json(blocker_dir, m, edge_models.wavs[:3], "--segments") for m in members]
    doc = _classify_json(blocker_dir, members[0], edge_models.wavs[:3], "--segments", "--ensemble", *members[1:])
    assert [m["model"] for m in doc["members"]] == [str(m) for m in members]
    for i, result in enumerate(doc["results"]):
        expected = np.mean([s["results"][i]["segment_probabilities"] for s in singles], axis=0)
        np.testing.assert_allclose(result["segment_probabilities"], expected, atol=1e-6)
        got = np.array([result["probabilities"][label] for label in edge_models.labels])
        np.testing.assert_allclose(got, expected.mean(axis=0), atol=1e-6)
        assert result["label"] == edge_models.labels[int(np.argmax(got))]


def test_ensemble_refuses_a_member_of_another_recipe(edge_models, blocker_dir, tmp_path):
    import shutil

    other = tmp_path / "other.tflite"
    shutil.copy(edge_models.tflite["int8"], other)
    card = json.loads(edge_models.tflite["int8"].with_suffix(".json").read_text())
    card["labels"] = list(reversed(card["labels"]))
    (tmp_path / "other.json").write_text(json.dumps(card))
    result = run_edge(blocker_dir, "classify", edge_models.tflite["float32"], edge_models.wavs[0],
                      "--ensemble", other)
    assert result.returncode == 2 and "disagree on labels" in result.stderr and str(other) in result.stderr


def test_test_time_speeds_match_the_library(edge_models, blocker_dir):
    from sercal_keras import EmotionRecognizer

    wavs = edge_models.wavs[:4]
    library = EmotionRecognizer.load(edge_models.keras_path, test_time_speeds=(0.9, 1.1)).predict_files(wavs)
    doc = _classify_json(blocker_dir, edge_models.tflite["float32"], wavs, "--segments",
                         "--test-time-speeds", "0.9", "1.1")
    assert doc["test_time_speeds"] == [0.9, 1.1]
    moved = 0
    for result, expected in zip(doc["results"], library):
        want = np.array([expected.probabilities[label] for label in edge_models.labels])
        got = np.array([result["probabilities"][label] for label in edge_models.labels])
        np.testing.assert_allclose(got, want, atol=1e-4)  # soxr on both sides: the same copies
        # segments stay the recorded audio's; the utterance pools the copies
        np.testing.assert_allclose(result["segment_probabilities"], edge_models.reference_segments[result["file"]],
                                   atol=1e-4)
        moved += not np.allclose(got, edge_models.reference[result["file"]], atol=1e-3)
    assert moved  # the copies do change the answer somewhere
    # without soxr (a bare device): the numpy resampler, within its ~-45 dB of soxr
    bare = _classify_json(blocker_dir, edge_models.tflite["float32"], wavs, "--test-time-speeds", "0.9", "1.1",
                          blocked=DEVICE_ONLY)
    for result, expected in zip(bare["results"], library):
        want = np.array([expected.probabilities[label] for label in edge_models.labels])
        np.testing.assert_allclose([result["probabilities"][label] for label in edge_models.labels], want, atol=0.05)


def test_bad_test_time_speeds_exit_2(edge_models, blocker_dir):
    result = run_edge(blocker_dir, "classify", edge_models.tflite["float32"], edge_models.wavs[0],
                      "--test-time-speeds", "1.0")
    assert result.returncode == 2 and "test_time_speeds must be distinct factors" in result.stderr
    assert result.stdout == ""
