"""`benchmarks.selection_rules` and `--keep-epoch-weights`: another selection rule on the same runs."""

import csv
import json
import shutil

import numpy as np
import pytest

from benchmarks.selection_rules import current_rule, first_drop_epoch, late_rule, main, repair_rule


def test_rules():
    val = [0.6, 0.4, 0.6, 0.5, 0.6, 0.3]
    assert current_rule(val) == 1  # what training does: the earliest best
    assert late_rule(val, start_epoch=2) == 5 and late_rule(val, start_epoch=6) == 6
    # repair: training's pick stands unless it lies before the start, then the late rule's
    assert repair_rule(val, start_epoch=2) == 5 and repair_rule([0.5, 0.6, 0.4, 0.6], start_epoch=2) == 2
    assert first_drop_epoch([1e-3, 1e-3, 1e-4]) == 3 and first_drop_epoch([1e-3] * 3) == 1
    with pytest.raises(ValueError, match="start_epoch"):
        late_rule(val, start_epoch=7)


@pytest.fixture
def run(picking_run):
    return picking_run  # 3 epochs, every epoch's weights kept, the best validation epoch picked


def test_every_epoch_is_kept_and_the_selected_one_is_the_model(run):
    import keras

    import sercal_keras  # noqa: F401

    files = sorted(p.name for p in (run / "epoch_weights").iterdir())
    assert files == ["epoch01.weights.h5", "epoch02.weights.h5", "epoch03.weights.h5"]
    best = json.loads((run / "metrics.json").read_text())["best_epoch"]
    model = keras.models.load_model(run / "model.keras", compile=False)
    saved = [w.copy() for w in model.get_weights()]
    model.load_weights(str(run / "epoch_weights" / f"epoch{best:02d}.weights.h5"))
    for a, b in zip(saved, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def _staged(run, tmp_path, val_ua, best_epoch, weights_of):
    """A copy of `run` with a written history, best epoch and epoch files (`weights_of[e]`: source epoch or 'noise')."""
    import keras

    import sercal_keras  # noqa: F401

    copy = tmp_path / "staged"
    shutil.copytree(run, copy)
    model = keras.models.load_model(copy / "model.keras", compile=False)
    trained = [w.copy() for w in model.get_weights()]
    rng = np.random.default_rng(0)
    for epoch, source in weights_of.items():
        model.set_weights(trained if source == "model" else [w + rng.normal(0, 0.5, w.shape).astype(w.dtype)
                                                             for w in trained])
        model.save_weights(str(copy / "epoch_weights" / f"epoch{epoch:02d}.weights.h5"))
    with open(copy / "history.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["epoch", "val_ua", "learning_rate"])
        for epoch, (ua, lr) in enumerate(zip(val_ua, [1e-3, 1e-4, 1e-4])):
            writer.writerow([epoch, ua, lr])
    metrics = json.loads((copy / "metrics.json").read_text())
    metrics["best_epoch"] = best_epoch
    (copy / "metrics.json").write_text(json.dumps(metrics))
    return copy, metrics["utterance"]["ua"]


def test_main_scores_the_late_epoch_where_the_rules_differ(run, tmp_path):
    # current rule: epoch 2 (the model's weights); late rule from the first lr drop (epoch 2), latest tie: epoch 3
    staged, recorded = _staged(run, tmp_path, [0.3, 0.7, 0.7], 2, {1: "noise", 2: "model", 3: "noise"})
    name = tmp_path / "rules"
    assert main([str(staged), "--name", str(name)]) == 0
    (row,) = json.loads(name.with_suffix(".json").read_text())["rows"]
    assert (row["start_epoch"], row["current_epoch"], row["late_epoch"], row["repair_epoch"]) == (2, 2, 3, 2)
    assert row["current_ua"] == pytest.approx(recorded) and row["repair_ua"] == row["current_ua"]
    assert 0.0 <= row["late_ua"] <= 1.0
    assert "late rule" in name.with_suffix(".md").read_text()


def test_main_refuses_epoch_files_that_are_not_what_training_selected(run, tmp_path):
    # epoch 2's file holds weights whose test UA is not the one recorded for the selected epoch 2
    # (noise would not do: a tiny run at chance level scores what noise scores)
    staged, recorded = _staged(run, tmp_path, [0.3, 0.7, 0.7], 2, {1: "noise", 2: "model", 3: "noise"})
    metrics = json.loads((staged / "metrics.json").read_text())
    metrics["utterance"]["ua"] = recorded + 0.25 if recorded < 0.5 else recorded - 0.25
    (staged / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(SystemExit, match="not the ones training selected"):
        main([str(staged), "--name", str(tmp_path / "x")])


def test_main_refuses_a_history_that_disagrees_with_the_metrics(run, tmp_path):
    staged, _ = _staged(run, tmp_path, [0.9, 0.7, 0.7], 2, {1: "noise", 2: "model", 3: "noise"})
    with pytest.raises(SystemExit, match="metrics.json says 2"):
        main([str(staged), "--name", str(tmp_path / "x")])


def test_main_pairs_run_by_run_when_runs_share_fold_and_seed(run, tmp_path):
    # two grids (or variants) of the same folds and seeds: each run is its own pair, none overwrites another
    a, b = tmp_path / "grid_a" / "run", tmp_path / "grid_b" / "run"
    shutil.copytree(run, a)
    shutil.copytree(run, b)
    name = tmp_path / "rules"
    assert main([str(a), str(b), "--name", str(name)]) == 0
    summary = json.loads(name.with_suffix(".json").read_text())["summary"]
    assert summary["runs"] == 2 and summary["late_minus_current"]["n"] == 2


def test_main_repairs_a_pick_before_the_first_drop(run, tmp_path):
    staged, recorded = _staged(run, tmp_path, [0.8, 0.7, 0.7], 1, {1: "model", 2: "noise", 3: "noise"})
    name = tmp_path / "rules"
    assert main([str(staged), "--name", str(name)]) == 0
    payload = json.loads(name.with_suffix(".json").read_text())
    (row,) = payload["rows"]
    assert (row["current_epoch"], row["late_epoch"], row["repair_epoch"]) == (1, 3, 3)
    assert row["repair_ua"] == row["late_ua"] and row["current_ua"] == pytest.approx(recorded)
    assert payload["summary"]["runs_repaired"] == 1
    assert "Repair rule" in name.with_suffix(".md").read_text()
