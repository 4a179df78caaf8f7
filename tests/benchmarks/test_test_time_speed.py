"""`benchmarks.test_time_speed`: one run scored on its test audio as recorded and with sped-up/down copies."""

import json
import shutil

import pytest

from benchmarks.common import paired_by_run
from benchmarks.test_time_speed import main


def test_summary_pairs_run_by_run_per_corpus_and_pooled():
    rows = [{"run": f"r{i}", "corpus": corpus, "plain_ua": 0.5, "with_speeds_ua": 0.5 + gain}
            for i, (corpus, gain) in enumerate([("emodb", 0.1), ("emodb", 0.1), ("ravdess", -0.1), ("ravdess", -0.3)])]
    summary = paired_by_run(rows, "with_speeds_ua", "plain_ua")
    assert summary["emodb"]["n"] == 2 and summary["emodb"]["mean"] == pytest.approx(0.1)
    assert summary["ravdess"]["mean"] == pytest.approx(-0.2)
    assert summary["all"]["n"] == 4 and summary["all"]["mean"] == pytest.approx(-0.05)


@pytest.fixture
def run(default_recipe_run):
    return default_recipe_run(0)  # the default recipe: trained with speeds 0.9 and 1.1


def test_main_reproduces_the_plain_score_and_scores_the_training_speeds(run, tmp_path):
    name = tmp_path / "tts"
    assert main([str(run), "--name", str(name)]) == 0
    payload = json.loads(name.with_suffix(".json").read_text())
    (row,) = payload["rows"]
    assert row["speeds"] == [1.0, 0.9, 1.1]
    assert row["plain_ua"] == pytest.approx(json.loads((run / "metrics.json").read_text())["utterance"]["ua"])
    assert 0.0 <= row["with_speeds_ua"] <= 1.0
    assert payload["summary"]["all"]["n"] == 1
    assert "With speeds − plain" in name.with_suffix(".md").read_text()
    # the same number `python -m training.evaluate --test-time-speeds` gives
    from training.evaluate import main as evaluate

    assert evaluate([str(run), "--test-time-speeds", "0.9,1.1", "--quiet", "--output-dir", str(tmp_path / "ev")]) == 0
    evaluated = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert evaluated["test_time_speeds"] == [0.9, 1.1]
    assert evaluated["utterance"]["ua"] == pytest.approx(row["with_speeds_ua"])


def test_main_refuses_a_run_it_cannot_reproduce(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    metrics = json.loads((copy / "metrics.json").read_text())
    metrics["utterance"]["ua"] = metrics["utterance"]["ua"] + 0.25
    (copy / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(SystemExit, match="the run and this script disagree"):
        main([str(copy), "--name", str(tmp_path / "x")])


def test_main_needs_speeds_for_a_run_trained_without(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    config = json.loads((copy / "config.json").read_text())
    config["speed_perturbation"] = []
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(SystemExit, match="no test-time speeds"):
        main([str(copy), "--name", str(tmp_path / "x")])
    with pytest.raises(SystemExit, match="--speeds: test_time_speeds must be distinct"):
        main([str(run), "--speeds", "1.0", "--name", str(tmp_path / "x")])


def test_results_name_the_code_scoring_started_from(tmp_path, monkeypatch):
    # a commit landing while runs are scored must not be named as the code that scored them
    import benchmarks.common as common
    import benchmarks.test_time_speed as tts

    commits = iter(["start", "end"])
    monkeypatch.setattr(common, "provenance", lambda module: {"command": "x", "git_commit": next(commits)})
    row = {"run": "r", "corpus": "emodb", "plain_ua": 0.5, "with_speeds_ua": 0.6, "fold": "f", "seed": 0}
    monkeypatch.setattr(tts, "score_run", lambda run, speeds, data_dir: (common.provenance("later"), row)[1])
    name = tmp_path / "tts"
    assert main(["r", "--name", str(name)]) == 0
    assert json.loads(name.with_suffix(".json").read_text())["git_commit"] == "start"
