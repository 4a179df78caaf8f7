"""`python -m export.tflite`: files, sidecars, the LiteRT check, and bad input."""

import hashlib
import os
import shutil

import keras
import numpy as np
import pytest

from export import tflite
from export.litert_runtime import LiteRTModel, dequantize, quantize
from sercal_keras.errors import ConfigError, ExportError, ModelFileError
from sercal_keras.model_card import ModelCard
from tests.export.conftest import LABELS, read_json


@pytest.fixture(scope="module")
def exported(run_dir, mfcc_npy, tmp_path_factory):
    out = tmp_path_factory.mktemp("tflite")
    written = tflite.export_tflite(run_dir, ["float32", "int8"], out, "mfcc", representative_size=32,
                                   representative_data=mfcc_npy, min_agreement=0.85, log=lambda m: None)
    return out, written


def test_writes_one_tflite_and_one_card_per_mode(exported):
    out, written = exported
    assert sorted(p.name for p in out.iterdir()) == [
        "model_mfcc_float32.json", "model_mfcc_float32.tflite", "model_mfcc_int8.json", "model_mfcc_int8.tflite"]
    assert len(written) == 4 and not [p for p in out.iterdir() if p.name.startswith(".")]


def test_sidecar_contents(exported, run_dir, trained_model):
    out, _ = exported
    card = ModelCard.load(out / "model_mfcc_int8.json")
    assert card.labels == LABELS
    assert card.feature_config["sample_rate"] == 16000 and card.feature_config["segment_seconds"] == 2.0
    layer = trained_model.get_layer("mfcc_standardization")
    np.testing.assert_allclose(card.feature_mean, np.asarray(layer.mean).reshape(-1), rtol=1e-6)
    np.testing.assert_allclose(card.feature_std, np.sqrt(np.asarray(layer.variance).reshape(-1)), rtol=1e-5)
    extra = card.extra
    assert extra["input_kind"] == "mfcc" and extra["mode"] == "int8" and extra["quantized"] is True
    assert extra["input"]["shape"] == [1, 26, 63] and extra["input"]["dtype"] == "int8"
    assert extra["input"]["quantization"]["scale"] > 0
    assert extra["output"]["shape"] == [1, 4] and extra["output"]["dtype"] == "int8"
    assert extra["output"]["quantization"] == {"scale": pytest.approx(1 / 256), "zero_point": -128}
    assert extra["segment_samples"] == 32000 and extra["eval_hop_samples"] == 6400
    digest = hashlib.sha256((run_dir / "model.keras").read_bytes()).hexdigest()
    assert extra["source_model_sha256"] == digest
    assert "tensorflow-cpu" in card.versions or "tensorflow" in card.versions
    assert extra["verification"]["agreement"] >= 0.85 and extra["verification"]["count"] > 0
    assert extra["xnnpack"]["partitions"] >= 1 and "CONV_2D" in extra["ops"]
    assert extra["representative"]["size"] == 32
    float_card = read_json(out / "model_mfcc_float32.json")
    assert float_card["extra"]["input"]["dtype"] == "float32" and float_card["extra"]["quantized"] is False


def test_edge_contract_reproduces_keras(exported, trained_model, held_out):
    """What the edge runtime does: standardise with the card, quantize with the tensor details."""
    out, _ = exported
    raw = held_out[0][:16]
    reference = trained_model.predict(raw, verbose=0)
    for mode, min_agreement in (("float32", 1.0), ("int8", 0.85)):
        card = read_json(out / f"model_mfcc_{mode}.json")
        standardized = (raw - np.array(card["feature_mean"])[None, :, None]) / np.array(
            card["feature_std"])[None, :, None]
        runner = LiteRTModel(out / f"model_mfcc_{mode}.tflite")
        probs = runner.predict(standardized.astype(np.float32))
        assert np.mean(probs.argmax(1) == reference.argmax(1)) >= min_agreement
        if mode == "float32":
            assert np.abs(probs - reference).max() < 1e-4


def test_waveform_model(run_dir, waveform_npy, tmp_path, trained_model):
    from sercal_keras.audio.frontend import FeatureConfig, mfcc

    written = tflite.export_tflite(run_dir, ["float32", "int8"], tmp_path, "waveform", representative_size=8,
                                   representative_data=waveform_npy, min_agreement=0.5, log=lambda m: None)
    assert {p.name for p in written} == {"model_waveform_float32.tflite", "model_waveform_float32.json",
                                         "model_waveform_int8.tflite", "model_waveform_int8.json"}
    waves = np.load(waveform_npy)[:3]
    reference = trained_model.predict(mfcc(waves, FeatureConfig()), verbose=0)
    probs = LiteRTModel(tmp_path / "model_waveform_float32.tflite").predict(waves)
    np.testing.assert_allclose(probs, reference, atol=2e-3)
    card = read_json(tmp_path / "model_waveform_int8.json")["extra"]
    assert card["input_kind"] == "waveform" and card["input"]["shape"] == [1, 32000]
    assert card["input"]["dtype"] == "float32"  # the front-end stays float
    assert card["float_layers"] == ["mfcc", "standardize"]
    assert "RFFT2D" in card["ops"]


def test_quantize_round_trip_known_values():
    q = quantize(np.array([-1.0, 0.0, 0.5, 10.0]), np.int8, 0.01, -3)
    assert q.tolist() == [-103, -3, 47, 127]  # 10.0 saturates
    np.testing.assert_allclose(dequantize(q, 0.01, -3), [-1.0, 0.0, 0.5, 1.30], atol=1e-6)


# ---------------------------------------------------------------------------
# Bad input: a typed error, nothing written
# ---------------------------------------------------------------------------


def _no_files(path):
    return not path.exists() or not any(path.iterdir())


def test_missing_model(tmp_path):
    with pytest.raises(ModelFileError, match="no such model"):
        tflite.export_tflite(tmp_path / "nope", output_dir=tmp_path / "out", log=lambda m: None)
    with pytest.raises(ModelFileError, match="no model.keras"):
        tflite.export_tflite(tmp_path, output_dir=tmp_path / "out", log=lambda m: None)
    assert _no_files(tmp_path / "out")


def test_foreign_keras_model_without_card(tmp_path):
    model = keras.Sequential([keras.Input((26, 63)), keras.layers.Flatten(), keras.layers.Dense(4)])
    model.save(tmp_path / "model.keras")
    with pytest.raises(ModelFileError, match="model card not found"):
        tflite.export_tflite(tmp_path / "model.keras", output_dir=tmp_path / "out", log=lambda m: None)
    assert _no_files(tmp_path / "out")


def test_foreign_keras_model_with_a_card(tmp_path, run_dir):
    model = keras.Sequential([keras.Input((26, 63)), keras.layers.Flatten(), keras.layers.Dense(4)])
    model.save(tmp_path / "model.keras")
    shutil.copy(run_dir / "model_card.json", tmp_path / "model_card.json")
    with pytest.raises(ModelFileError, match="mfcc_standardization"):
        tflite.export_tflite(tmp_path, output_dir=tmp_path / "out", log=lambda m: None)
    assert _no_files(tmp_path / "out")


def test_random_file_as_model(tmp_path, run_dir):
    (tmp_path / "model.keras").write_bytes(os.urandom(2048))
    shutil.copy(run_dir / "model_card.json", tmp_path / "model_card.json")
    with pytest.raises(ModelFileError, match="not a loadable Keras 3"):
        tflite.export_tflite(tmp_path / "model.keras", output_dir=tmp_path / "out", log=lambda m: None)
    assert _no_files(tmp_path / "out")


@pytest.mark.parametrize("array,match", [
    (np.zeros((0, 26, 63), np.float32), "empty"),
    (np.zeros((4, 13, 63), np.float32), "shape"),
    (np.full((4, 26, 63), np.nan, np.float32), "NaN"),
])
def test_bad_representative_data(run_dir, tmp_path, array, match):
    np.save(tmp_path / "rep.npy", array)
    with pytest.raises(ConfigError, match=match):
        tflite.export_tflite(run_dir, ["int8"], tmp_path / "out", representative_data=tmp_path / "rep.npy",
                             log=lambda m: None)
    assert _no_files(tmp_path / "out")


def test_int8_without_any_data_is_a_config_error(run_dir, tmp_path):
    with pytest.raises(ConfigError, match="representative"):
        tflite.export_tflite(run_dir, ["int8"], tmp_path / "out", log=lambda m: None)
    assert _no_files(tmp_path / "out")


def test_waveform_input_needs_waveforms(run_dir, mfcc_npy, tmp_path):
    with pytest.raises(ConfigError, match="waveform segments"):
        tflite.export_tflite(run_dir, ["int8"], tmp_path / "out", "waveform", representative_data=mfcc_npy,
                             log=lambda m: None)


@pytest.mark.parametrize("kwargs,match", [
    ({"modes": ["int4"]}, "not supported"),
    ({"inputs": "spectrogram"}, "--input"),
    ({"representative_size": 0}, "--representative-size"),
    ({"min_agreement": 1.5}, "--min-agreement"),
])
def test_bad_options(run_dir, tmp_path, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        tflite.export_tflite(run_dir, output_dir=tmp_path / "out", log=lambda m: None, **kwargs)
    assert _no_files(tmp_path / "out")


def test_unwritable_output_dir(run_dir, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="not writable"):  # its parent is a file: nothing can go there
        tflite.export_tflite(run_dir, output_dir=tmp_path / "file" / "out", log=lambda m: None)
    with pytest.raises(ConfigError, match="not a directory"):
        tflite.export_tflite(run_dir, output_dir=tmp_path / "file", log=lambda m: None)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if not os.access(locked, os.W_OK):  # (root can write anywhere)
            with pytest.raises(ConfigError, match="not writable"):
                tflite.export_tflite(run_dir, output_dir=locked / "out", log=lambda m: None)
    finally:
        locked.chmod(0o700)
    assert (tmp_path / "file").read_text() == "x" and not any(locked.iterdir())


def test_failed_check_writes_nothing(run_dir, mfcc_npy, tmp_path, monkeypatch):
    """A converted file that disagrees with Keras (here: its outputs are permuted) is never written."""
    from export import litert_runtime

    real_predict = litert_runtime.LiteRTModel.predict
    monkeypatch.setattr(litert_runtime.LiteRTModel, "predict",
                        lambda self, items: np.roll(real_predict(self, items), 1, axis=1))
    with pytest.raises(ExportError, match="agrees with the Keras model on only"):
        tflite.export_tflite(run_dir, ["float32", "int8"], tmp_path / "out", representative_data=mfcc_npy,
                             log=lambda m: None)
    assert _no_files(tmp_path / "out")


def test_cli_exit_codes(run_dir, tmp_path, capsys):
    assert tflite.main([str(run_dir), "--mode", "int4", "--output-dir", str(tmp_path / "out")]) == 2
    assert "not supported" in capsys.readouterr().err
    assert tflite.main([str(tmp_path / "missing"), "--output-dir", str(tmp_path / "out")]) == 1
    assert _no_files(tmp_path / "out")


def test_dynamic_waveform_is_not_offered(run_dir, tmp_path):
    skipped = []
    pairs = tflite.plan_variants(["all"], ["mfcc", "waveform"], skipped.append)
    assert ("waveform", "dynamic") not in pairs and ("mfcc", "dynamic") in pairs and len(skipped) == 1
    with pytest.raises(ConfigError, match="not offered"):
        tflite.export_tflite(run_dir, ["dynamic"], tmp_path / "out", "waveform", log=lambda m: None)
