"""`benchmarks.weight_averaging`: the mean of a run's kept epoch weights, scored as the run was."""

import json
import shutil

import pytest

from benchmarks.weight_averaging import main


@pytest.fixture
def run(picking_run):
    return picking_run  # 3 epochs at one learning rate, every epoch's weights kept


def test_one_epoch_averaged_is_that_epoch(run, tmp_path):
    from benchmarks.common import run_test_fold
    from benchmarks.selection_rules import epoch_ua
    from sercal_keras.data import extract_segments
    from sercal_keras.inference import EmotionRecognizer

    name = tmp_path / "avg"
    assert main([str(run), "--start-epoch", "3", "--name", str(name)]) == 0
    payload = json.loads(name.with_suffix(".json").read_text())
    (row,) = payload["rows"]
    assert row["epochs"] == [3, 3]
    assert row["selected_ua"] == pytest.approx(json.loads((run / "metrics.json").read_text())["utterance"]["ua"])
    corpus, fold = run_test_fold(run)
    recognizer = EmotionRecognizer.load(run)
    segments = extract_segments(corpus, fold.test, recognizer.feature_config, training=False)
    assert row["averaged_ua"] == pytest.approx(epoch_ua(recognizer, 3, run, segments, corpus, list(corpus.labels)))
    assert payload["summary"]["all"]["n"] == 1 and "Averaged − selected" in name.with_suffix(".md").read_text()


def test_all_epochs_are_averaged_by_default_without_a_drop(run, tmp_path):
    name = tmp_path / "avg"
    assert main([str(run), "--name", str(name)]) == 0  # 3 epochs at one lr: no drop, so epochs 1-3
    (row,) = json.loads(name.with_suffix(".json").read_text())["rows"]
    assert row["epochs"] == [1, 3] and 0.0 <= row["averaged_ua"] <= 1.0


def test_missing_epoch_weights_and_bad_start_are_named(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "epoch_weights" / "epoch02.weights.h5").unlink()
    with pytest.raises(SystemExit, match="epoch02.weights.h5 is missing"):
        main([str(copy), "--name", str(tmp_path / "x")])
    with pytest.raises(SystemExit, match="--start-epoch must lie in"):
        main([str(run), "--start-epoch", "4", "--name", str(tmp_path / "x")])


def test_batch_norm_recomputed_on_the_runs_own_training_segments(run, tmp_path):
    import keras
    import numpy as np

    from benchmarks.weight_averaging import training_segments
    from sercal_keras.inference import EmotionRecognizer
    from training.weight_averaging import load_averaged_weights

    name = tmp_path / "avg"
    assert main([str(run), "--start-epoch", "2", "--recompute-batch-norm", "--name", str(name)]) == 0
    payload = json.loads(name.with_suffix(".json").read_text())
    (row,) = payload["rows"]
    assert 0.0 <= row["recomputed_ua"] <= 1.0
    assert payload["summary_recomputed"]["vs_averaged"]["all"]["n"] == 1
    assert "BatchNorm recomputed" in name.with_suffix(".md").read_text()
    # the segments are the run's training split: as many as training logged
    segments = training_segments(run, None)
    assert len(segments) == json.loads((run / "metrics.json").read_text())["num_train_segments"]
    # and the first BatchNorm layer now holds its input's statistics over them
    model = EmotionRecognizer.load(run).model
    load_averaged_weights(model, [run / "epoch_weights" / f"epoch{e:02d}.weights.h5" for e in (2, 3)])
    from training.weight_averaging import recompute_batch_norm

    recompute_batch_norm(model, segments.features)
    bn = next(layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization))
    x = np.asarray(keras.Model(model.input, bn.input).predict(segments.features, verbose=0), np.float64)
    np.testing.assert_allclose(np.asarray(bn.moving_mean), x.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(bn.moving_variance), x.var(axis=(0, 1, 2)), rtol=1e-3, atol=1e-5)
