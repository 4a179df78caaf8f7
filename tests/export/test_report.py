"""`python -m export.report` on a tiny run (hand-made, on a 16-utterance synthetic corpus)."""

import json
import shutil

import numpy as np
import pytest

from export import report
from sercal_keras.errors import ConfigError

CORPUS_OPTIONS = {"num_speakers": 2, "utterances_per_class": 2}


@pytest.fixture(scope="module")
def synthetic_run(run_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("synthetic_run")
    for name in ("model.keras", "model_card.json"):
        shutil.copy(run_dir / name, path / name)
    cache = tmp_path_factory.mktemp("cache")
    (path / "config.json").write_text(json.dumps({
        "corpus": "synthetic", "data_dir": None, "corpus_options": CORPUS_OPTIONS, "protocol": None,
        "folds": None, "cache_dir": str(cache), "features": {}}))
    return path, cache


@pytest.fixture(scope="module")
def built(synthetic_run, tmp_path_factory):
    run, _ = synthetic_run
    out = tmp_path_factory.mktemp("reports") / "quant"
    path = report.make_report(run, out, modes=["float32", "int8"], representative_size=16,
                              keep_float_candidates=1, latency_runs=5, latency_warmup=1, debug_size=4,
                              log=lambda m: None)
    return path, json.loads((path / "report.json").read_text())


def test_report_files(built):
    path, doc = built
    assert sorted(p.name for p in path.iterdir()) == [
        "confusion_float.png", "confusion_int8.png", "report.json", "report.md"]
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no staging folders left
    markdown = (path / "report.md").read_text()
    for heading in ("## Main table", "## Targets", "## Per-class recall", "## Which layers lose most",
                    "## Selective quantization", "![confusion_int8](confusion_int8.png)"):
        assert heading in markdown


def test_float_metrics_are_recomputed_independently(built, synthetic_run, trained_model):
    from sercal_keras import metrics
    from sercal_keras.data import extract_segments, load_corpus, make_folds

    _, doc = built
    _, cache = synthetic_run
    corpus = load_corpus("synthetic", cache, **CORPUS_OPTIONS)
    fold = make_folds(corpus, "speaker_folds")[0]
    segments = extract_segments(corpus, fold.test, training=False, cache_dir=cache)
    probs = trained_model.predict(segments.features, verbose=0)
    expected = metrics.evaluate_segments(probs, segments.labels, segments.utterance_index, doc["labels"])
    keras_float = doc["variants"][0]
    assert keras_float["name"] == "keras float"
    assert keras_float["metrics"]["utterance"]["ua"] == pytest.approx(expected["utterance"]["ua"])
    assert doc["data"]["segments"] == len(segments)


def test_variant_numbers(built):
    _, doc = built
    variants = {v["name"]: v for v in doc["variants"]}
    f32, int8 = variants["float32"], variants["int8"]
    assert f32["metrics"]["agreement_segment"] == 1.0 and f32["metrics"]["mean_kl"] < 1e-6
    assert f32["size_ratio"] == 1.0 and 0 < int8["size_ratio"] < 0.5
    for v in (f32, int8):
        for key in ("1_thread", "all_threads"):
            assert 0 < v["latency"][key]["median_ms"] <= v["latency"][key]["p95_ms"]
        assert v["xnnpack"]["partitions"] >= 1
        assert set(v["delta_recall"]) == set(doc["labels"])
    assert 0.0 <= int8["metrics"]["agreement_segment"] <= 1.0
    assert {row["layer"] for row in doc["layer_errors"]} >= {"block1_conv", "attention_logits"}
    assert any(v["keep_float"] == ["attention"] for v in doc["keep_float"])
    assert {t["name"] for t in doc["targets"]} >= {"ua_drop", "agreement", "size", "latency"}


def test_report_folder_is_replaced_whole(built, synthetic_run):
    path, _ = built
    run, _ = synthetic_run
    report.make_report(run, path, modes=["float32"], representative_size=4, keep_float_candidates=0,
                       latency_runs=2, latency_warmup=0, log=lambda m: None)
    doc = json.loads((path / "report.json").read_text())
    assert [v["name"] for v in doc["variants"]] == ["keras float", "float32"]
    assert not (path / "confusion_int8.png").exists()  # the old folder's files are gone
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]


def test_report_needs_a_labelled_corpus(run_dir, tmp_path):
    with pytest.raises(ConfigError, match="--corpus"):
        report.make_report(run_dir, tmp_path / "out", log=lambda m: None)
    assert not (tmp_path / "out").exists()
    with pytest.raises(ConfigError, match="--latency-runs"):
        report.make_report(run_dir, tmp_path / "out", latency_runs=0, log=lambda m: None)


def test_sliced_graph_forms_get_a_report_without_keep_float_candidates(synthetic_run, trained_model, tmp_path):
    # Forms outside the explicit edge graph (here the local-context CA) convert as one nested
    # Keras model: the report still compares int8 with float, and names why no layer is kept float.
    from sercal_keras.models import build_model
    from tests.export.conftest import NUM_CLASSES

    run, _ = synthetic_run
    sliced = tmp_path / "run"
    shutil.copytree(run, sliced)
    standardization = trained_model.get_layer("mfcc_standardization")  # the card's statistics
    build_model("fa_ca", num_classes=NUM_CLASSES, num_heads=2, head_dim=8, calibration_context=3,
                feature_mean=np.asarray(standardization.mean).reshape(-1),
                feature_variance=np.asarray(standardization.variance).reshape(-1)).save(sliced / "model.keras")
    messages = []
    path = report.make_report(sliced, tmp_path / "quant", modes=["float32", "int8"], representative_size=8,
                              keep_float_candidates=2, latency_runs=2, latency_warmup=0, debug_size=2,
                              log=messages.append)
    doc = json.loads((path / "report.json").read_text())
    assert [v["name"] for v in doc["variants"]][-1].startswith("int8")
    assert not doc["keep_float"]
    assert any("keep-float candidates: none" in m and "local context" in m for m in messages), messages


@pytest.fixture(scope="module")
def speaker_run(synthetic_run, tmp_path_factory):
    """The synthetic run, its card marked as trained with per-speaker normalisation."""
    run, cache = synthetic_run
    path = tmp_path_factory.mktemp("speaker_run")
    for name in ("model.keras", "config.json"):
        shutil.copy(run / name, path / name)
    card = json.loads((run / "model_card.json").read_text())
    card["extra"]["feature_normalization"] = "speaker"
    (path / "model_card.json").write_text(json.dumps(card))
    return path, cache


def test_per_speaker_model_is_evaluated_on_speaker_standardised_segments(speaker_run, tmp_path):
    from export.representative import split_segments
    from sercal_keras.audio.frontend import FeatureConfig
    from sercal_keras.data import extract_segments, load_corpus, make_folds

    run, cache = speaker_run
    corpus = load_corpus("synthetic", cache, num_speakers=4, utterances_per_class=1)
    fold = make_folds(corpus, "speaker_folds")[0]
    data = split_segments(corpus, fold, FeatureConfig(), "train", False, cache_dir=cache, speaker_normalization=True)
    segments = extract_segments(corpus, fold.train, training=True, cache_dir=cache)
    speakers = np.asarray(corpus.speakers)[segments.utterance_index]
    assert len(set(speakers)) > 1
    x = segments.features.copy()
    for speaker in set(speakers):  # written out independently of standardize_by_speaker
        own = speakers == speaker
        x[own] = (x[own] - x[own].mean(axis=(0, 2))[:, None]) / x[own].std(axis=(0, 2))[:, None]
    np.testing.assert_allclose(data.features, x, atol=1e-4)
    # the report asks for them (its evaluation data says so)
    path = report.make_report(run, tmp_path / "r", modes=["float32"], latency_runs=2, latency_warmup=1,
                              debug_size=2, log=lambda m: None)
    doc = json.loads((path / "report.json").read_text())
    assert "each speaker standardised" in doc["data"]["evaluation"]


def test_per_speaker_model_refuses_the_waveform_graph(speaker_run, tmp_path):
    run, _ = speaker_run
    with pytest.raises(ConfigError, match="per-speaker normalisation.*--input mfcc"):
        report.make_report(run, tmp_path / "r", modes=["float32"], inputs="both", log=lambda m: None)
