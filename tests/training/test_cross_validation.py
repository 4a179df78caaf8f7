"""Cross-validation: several folds × seeds, summary (mean ± std, per-run table), resume skip."""

from __future__ import annotations

import numpy as np
import pytest

from tests.training.conftest import read_json
from training.config import TrainConfig
from training.cross_validation import run_cross_validation


def small_config(out, **overrides) -> TrainConfig:
    values = dict(corpus_options={"num_speakers": 4, "utterances_per_class": 2}, batch_size=8, epochs=1,
                  folds=["0", "speakers-s02"], seeds=[0], output_dir=str(out), verbosity=0)
    values.update(overrides)
    return TrainConfig(**values)


@pytest.fixture(scope="module")
def cv_run(cache_dir, tmp_path_factory):
    """Two folds, one seed, one epoch of the default recipe (no validation split, weight average from epoch 11)."""
    out, log = tmp_path_factory.mktemp("cv") / "cv", []
    return out, run_cross_validation(small_config(out), log=log.append), log


def test_summary_matches_the_runs(cv_run):
    out, summary, _ = cv_run
    names = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert names == ["speakers-s01_seed0", "speakers-s02_seed0"]
    runs = [read_json(out / name / "metrics.json") for name in names]
    assert [r["fold"] for r in runs] == ["speakers-s01", "speakers-s02"]
    assert read_json(out / "summary.json") == summary
    for level in ("utterance", "segment"):
        for key in ("ua", "wa", "macro_f1"):
            values = np.array([r[level][key] for r in runs])
            stats = summary["metrics"][level][key]
            assert stats["mean"] == pytest.approx(values.mean())
            assert stats["std"] == pytest.approx(values.std(ddof=1))
            assert stats["n"] == 2
    pooled = np.sum([r["utterance"]["confusion_matrix"] for r in runs], axis=0)
    assert summary["pooled_utterance_confusion_matrix"] == pooled.tolist()
    assert [row["fold"] for row in summary["runs"]] == ["speakers-s01", "speakers-s02"]
    assert summary["speaker_independent"] is True
    md = (out / "summary.md").read_text()
    assert "| utterance |" in md and "speakers-s02" in md and "mean" in md.lower()


def test_the_summary_names_each_runs_model(cv_run, trained_run):
    out, _, log = cv_run
    # the default recipe: the window opens after the last epoch, so the model is the last epoch's weights
    assert sum("mean of the weights of epochs 1-1/1" in line for line in log) == 2  # the per-run log lines
    summary = (out / "summary.md").read_text()
    assert summary.count("| mean of the weights of epochs 1-1/1 |") == 2 and "| best epoch" not in summary
    assert "model = mean of the weights of epochs 11..last" in summary
    picked = (trained_run / "summary.md").read_text()  # a run that picks its epoch on a validation split
    assert picked.count("| best epoch ") == 1 and "model = best validation UA" in picked
    assert "mean of the weights" not in picked


def test_finished_runs_are_skipped(cv_run):
    out, summary, _ = cv_run
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/model.keras")}
    again = run_cross_validation(small_config(out, seeds=[0]))
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/model.keras")} == stamps
    assert again["metrics"] == summary["metrics"]


def test_more_seeds_train_only_the_new_runs(cv_run):
    out, _, _ = cv_run
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/model.keras")}
    summary = run_cross_validation(small_config(out, seeds=[0, 1], folds=["0"]))
    assert summary["num_runs"] == 2
    assert [(r["fold"], r.get("seed")) for r in summary["runs"]] == [("speakers-s01", 0), ("speakers-s01", 1)]
    assert (out / "speakers-s01_seed1" / "metrics.json").is_file()
    for path, stamp in stamps.items():
        assert path.stat().st_mtime_ns == stamp


def test_same_fold_same_seed_is_deterministic(cv_run, tmp_path):
    """Re-training a finished fold × seed from scratch gives the same test metrics."""
    out, _, _ = cv_run
    summary = run_cross_validation(small_config(tmp_path / "again", folds=["0"]))
    first = read_json(out / "speakers-s01_seed0" / "metrics.json")
    assert summary["runs"][0]["utterance_ua"] == pytest.approx(first["utterance"]["ua"])
    assert summary["metrics"]["segment"]["wa"]["mean"] == pytest.approx(first["segment"]["wa"], abs=1e-6)


def test_summary_records_the_commit_the_run_started_from(cv_run, monkeypatch):
    """A grid runs for hours; commits made meanwhile are not the code that trained."""
    import sercal_keras.provenance as provenance
    import training.trainer as trainer

    head = {"commit": "start00"}
    monkeypatch.setattr(provenance, "git_commit", lambda *args: head["commit"])
    load_data = trainer.load_data

    def load_data_then_commit(*args, **kwargs):  # someone commits while the grid runs
        data = load_data(*args, **kwargs)
        head["commit"] = "later00"
        return data

    monkeypatch.setattr(trainer, "load_data", load_data_then_commit)
    out, _, _ = cv_run
    summary = run_cross_validation(small_config(out, seeds=[0]))  # finished runs: read back, fast
    assert summary["git_commit"] == "start00"
    assert read_json(out / "summary.json")["git_commit"] == "start00"


def test_single_runs_added_to_a_cross_validation_directory_go_to_their_sub_directories(cv_run):
    """One fold × seed at a time (a grid grown run by run) never turns the directory into a flat run."""
    out, _, _ = cv_run
    directory_config = read_json(out / "config.json")
    run_cross_validation(small_config(out, folds=["0"], seeds=[0]))  # finished: read back
    run_cross_validation(small_config(out, folds=["speakers-s02"], seeds=[1]))  # trained
    assert (out / "speakers-s02_seed1" / "metrics.json").is_file()
    assert not (out / "metrics.json").exists() and not (out / "history.csv").exists()
    assert read_json(out / "config.json") == directory_config


def test_a_grid_begun_with_a_single_run_is_laid_out_run_by_run(cache_dir, tmp_path):
    """`--folds X --seeds k` as the first call of a grid (one process per run) does not train flat."""
    from training.run_dir import layout_is_flat

    out = tmp_path / "grid"
    run_cross_validation(small_config(out, folds=["speakers-s02"]), grid=True)
    assert (out / "speakers-s02_seed0" / "metrics.json").is_file() and not (out / "metrics.json").exists()
    assert read_json(out / "config.json")["folds"] == ["all"]
    assert not layout_is_flat(small_config(out, folds=["0"]), out)  # the next process' run: its own folder too


def test_a_run_finished_meanwhile_by_another_process_is_not_trained_again(cache_dir, tmp_path, monkeypatch):
    """Which runs are finished is checked again before each one, not only when the grid starts."""
    import shutil

    import training.trainer as trainer

    out = tmp_path / "cv"
    train_run, trained = trainer.train_run, []

    def train_then_another_process_finishes_the_next(config, data, fold_index, fold, seed, run_dir, *args, **kwargs):
        trained.append(run_dir.name)
        result = train_run(config, data, fold_index, fold, seed, run_dir, *args, **kwargs)
        if len(trained) == 1:  # stands in for the other process, which finishes the next run meanwhile
            shutil.copytree(run_dir, out / "speakers-s02_seed0")
        return result

    monkeypatch.setattr(trainer, "train_run", train_then_another_process_finishes_the_next)
    summary = run_cross_validation(small_config(out))
    assert trained == ["speakers-s01_seed0"]
    assert summary["num_runs"] == 2
