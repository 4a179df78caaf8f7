"""One `.tflite` averaging several models: `python -m export.tflite RUN_A RUN_B ... --output-dir D`."""

import json

import numpy as np
import pytest

from export import tflite
from export.edge_model import ensemble_edge_model, standardize
from export.litert_runtime import LiteRTModel
from sercal_keras.audio.frontend import FeatureConfig
from sercal_keras.errors import ConfigError, ModelFileError
from sercal_keras.model_card import ModelCard
from tests.export.conftest import LABELS, make_mfcc


def _second_member(trained_model, path):
    """Another member: other classifier weights and another standardisation (as a model
    trained with other validation speakers has), saved as a run dir beside its card."""
    from sercal_keras.models import build_model

    layer = trained_model.get_layer("mfcc_standardization")
    mean = np.asarray(layer.mean).reshape(-1) + np.linspace(-2.0, 2.0, 26)
    variance = np.asarray(layer.variance).reshape(-1) * 1.5
    model = build_model("fa_ca", num_classes=len(LABELS), num_heads=2, head_dim=8, feature_mean=mean,
                        feature_variance=variance)
    model.set_weights(trained_model.get_weights())  # the standardisation holds constants, not weights
    classifier = model.get_layer("classifier")
    kernel, bias = classifier.get_weights()
    classifier.set_weights([kernel[:, ::-1] * 0.8, bias[::-1]])
    path.mkdir()
    model.save(path / "model.keras")
    ModelCard(labels=LABELS, feature_config=FeatureConfig().to_dict(), feature_mean=mean.tolist(),
              feature_std=np.sqrt(variance).tolist(), corpus="handmade", variant="fa_ca",
              extra={"fold": "none", "seed": 1}).save(path / "model_card.json")
    return model


@pytest.fixture(scope="module")
def members(trained_model, run_dir, tmp_path_factory):
    other_dir = tmp_path_factory.mktemp("member") / "seed1"
    other = _second_member(trained_model, other_dir)
    return [(run_dir, trained_model), (other_dir, other)]


@pytest.fixture(scope="module")
def exported(members, mfcc_npy, tmp_path_factory):
    out = tmp_path_factory.mktemp("ensemble")
    written = tflite.export_tflite([path for path, _ in members], ["float32", "int8"], out, "mfcc",
                                   representative_size=32, representative_data=mfcc_npy, min_agreement=0.8,
                                   log=lambda m: None)
    return out, written


def _keras_mean(members, raw):
    return np.mean([model.predict(raw, verbose=0) for _, model in members], axis=0)


def test_the_graph_is_the_mean_of_the_members(members):
    models = [model for _, model in members]
    graph = ensemble_edge_model(models, "mfcc", FeatureConfig())
    raw, _ = make_mfcc(6, seed=5)
    card_mean = np.asarray(models[0].get_layer("mfcc_standardization").mean).reshape(-1)
    card_std = np.sqrt(np.asarray(models[0].get_layer("mfcc_standardization").variance).reshape(-1))
    got = np.concatenate([np.asarray(graph.model(standardize(raw[i:i + 1], card_mean, card_std)))
                          for i in range(len(raw))])
    single = [model.predict(raw, verbose=0) for model in models]
    assert np.abs(single[0] - single[1]).max() > 0.1  # the members really differ
    np.testing.assert_allclose(got, np.mean(single, axis=0), atol=1e-5)
    assert [layer.name for layer in graph.model.layers][1:] == ["member0", "member1", "ensemble_mean"]
    assert len(graph.quantizers) == 4  # both members' symmetric K/V quantizers, calibrated for int8


def test_files_and_card(exported, members):
    out, written = exported
    assert sorted(p.name for p in out.iterdir()) == [
        "ensemble2_mfcc_float32.json", "ensemble2_mfcc_float32.tflite",
        "ensemble2_mfcc_int8.json", "ensemble2_mfcc_int8.tflite"]
    card = ModelCard.load(out / "ensemble2_mfcc_int8.json")
    ensemble = card.extra["ensemble"]
    assert [m["model"] for m in ensemble["members"]] == [str(path / "model.keras") for path, _ in members]
    assert all(len(m["sha256"]) == 64 for m in ensemble["members"])
    first = members[0][1].get_layer("mfcc_standardization")
    np.testing.assert_allclose(card.feature_mean, np.asarray(first.mean).reshape(-1), rtol=1e-6)


@pytest.mark.parametrize("mode, atol, agreement", [("float32", 1e-5, 1.0), ("int8", 0.15, 0.8)])
def test_the_file_reproduces_the_keras_mean(exported, members, mode, atol, agreement):
    out, _ = exported
    card = json.loads((out / f"ensemble2_mfcc_{mode}.json").read_text())
    runner = LiteRTModel(out / f"ensemble2_mfcc_{mode}.tflite")
    raw, _ = make_mfcc(40, seed=6)
    got = runner.predict(standardize(raw, card["feature_mean"], card["feature_std"]))
    reference = _keras_mean(members, raw)
    assert np.abs(got - reference).max() <= atol
    assert np.mean(got.argmax(1) == reference.argmax(1)) >= agreement


def test_ensemble_needs_an_output_dir_and_no_qat(members):
    paths = [path for path, _ in members]
    with pytest.raises(ConfigError, match="--output-dir"):
        tflite.export_tflite(paths, log=lambda m: None)
    with pytest.raises(ConfigError, match="qat"):
        tflite.export_tflite(paths, ["qat"], output_dir="unused", log=lambda m: None)


def test_members_with_other_labels_are_refused(members, tmp_path):
    path, model = members[1]
    odd = tmp_path / "odd"
    odd.mkdir()
    model.save(odd / "model.keras")
    card = ModelCard.load(path / "model_card.json")
    card.labels = ["a", "b", "c", "d"]
    card.save(odd / "model_card.json")
    with pytest.raises(ModelFileError, match="labels differ"):
        tflite.export_tflite([members[0][0], odd], output_dir=tmp_path / "out", log=lambda m: None)
    assert not (tmp_path / "out").exists()


def test_cli_takes_several_models(members, mfcc_npy, tmp_path, capsys):
    paths = [str(path) for path, _ in members]
    assert tflite.main(paths + ["--output-dir", str(tmp_path), "--representative-data", str(mfcc_npy),
                                "--quiet"]) == 0
    assert (tmp_path / "ensemble2_mfcc_float32.tflite").is_file()


def test_keep_float_reaches_the_layers_inside_every_member(members, mfcc_npy, tmp_path):
    written = tflite.export_tflite([path for path, _ in members], ["int8"], tmp_path, "mfcc",
                                   representative_size=32, representative_data=mfcc_npy, min_agreement=0.8,
                                   keep_float=["attention_softmax"], log=lambda m: None)
    card = ModelCard.load(written[1])
    assert card.extra["float_layers"] == ["attention_softmax"]
    still_int8 = [node["tensor"] for node in card.extra["xnnpack"]["undelegated"]]
    assert not [name for name in still_int8 if "attention_softmax" in name]  # both members' are float now


def test_members_of_other_folds_are_refused(members, tmp_path):
    import shutil

    copies = []
    for (path, _), fold in zip(members, ("speakers-03+08", "speakers-09+10")):
        copy = tmp_path / path.name
        shutil.copytree(path, copy)
        (copy / "config.json").write_text(json.dumps({"corpus": "emodb", "folds": [fold]}))
        copies.append(copy)
    with pytest.raises(ModelFileError, match="speakers-09\\+10.*speakers-03\\+08.*one fold together"):
        tflite.export_tflite(copies, output_dir=tmp_path / "out", log=lambda m: None)
