import json

import numpy as np
import pytest

from benchmarks.seed_ensemble import ensemble_scores, main
from sercal_keras.data import SegmentSet


def test_the_ensemble_averages_probabilities_not_votes():
    segments = SegmentSet(np.zeros((3, 1, 1), np.float32), np.array([0, 0, 1]), np.array([0, 0, 1]))
    confident_right = np.array([[0.95, 0.05], [0.95, 0.05], [0.1, 0.9]])
    hesitant_wrong = np.array([[0.45, 0.55], [0.45, 0.55], [0.2, 0.8]])
    scores = ensemble_scores([confident_right, hesitant_wrong, hesitant_wrong], segments, ["a", "b"])
    assert [m["ua"] for m in scores["members"]] == [1.0, 0.5, 0.5]
    # a majority vote says "b" for utterance 0; the mean p(a) = (0.95 + 0.45 + 0.45) / 3 ≈ 0.62 says "a"
    assert scores["ensemble"]["ua"] == 1.0
    with pytest.raises(ValueError, match="different segments"):
        ensemble_scores([confident_right, confident_right[:2]], segments, ["a", "b"])


@pytest.fixture
def two_seed_runs(default_recipe_run):
    return [default_recipe_run(0), default_recipe_run(1)]  # one fold, one seed: each output dir is the run


def test_main_reproduces_each_member_and_scores_the_ensemble(two_seed_runs, tmp_path):
    assert len(two_seed_runs) == 2
    name = tmp_path / "ensemble"
    assert main([*map(str, two_seed_runs), "--name", str(name)]) == 0
    payload = json.loads(name.with_suffix(".json").read_text())
    (row,) = payload["rows"]
    recorded = [json.loads((run / "metrics.json").read_text())["utterance"]["ua"] for run in two_seed_runs]
    assert row["member_ua"] == pytest.approx(recorded)
    assert 0.0 <= row["ensemble_ua"] <= 1.0 and np.sum(row["ensemble_confusion"]) == sum(
        json.loads((two_seed_runs[0] / "metrics.json").read_text())["utterance"]["support"].values())
    assert "ensemble" in name.with_suffix(".md").read_text()


def test_main_refuses_a_fold_with_one_run(two_seed_runs, tmp_path):
    with pytest.raises(SystemExit, match="needs two or more"):
        main([str(two_seed_runs[0]), "--name", str(tmp_path / "x")])


def test_the_library_ensemble_scores_what_the_benchmark_scores(two_seed_runs, tmp_path):
    from benchmarks.common import run_test_fold
    from benchmarks.seed_ensemble import member_probabilities
    from sercal_keras import EmotionEnsemble, EmotionRecognizer
    from sercal_keras.data import extract_segments

    corpus, fold = run_test_fold(two_seed_runs[0])
    ensemble = EmotionEnsemble.load(two_seed_runs)
    segments = extract_segments(corpus, fold.test, ensemble.feature_config, training=False)
    members = [member_probabilities(EmotionRecognizer.load(run), segments, corpus) for run in two_seed_runs]
    np.testing.assert_allclose(ensemble.predict_features(segments.features), np.mean(members, axis=0), atol=1e-6)


def test_main_scores_the_ensemble_with_test_time_speeds_as_evaluate_does(two_seed_runs, tmp_path):
    from sercal_keras import EmotionEnsemble
    from training.evaluate import evaluate_model
    from benchmarks.common import run_test_fold

    name = tmp_path / "ensemble"
    assert main([*map(str, two_seed_runs), "--test-time-speeds", "0.9", "1.1", "--name", str(name)]) == 0
    payload = json.loads(name.with_suffix(".json").read_text())
    (row,) = payload["rows"]
    corpus, fold = run_test_fold(two_seed_runs[0])
    plain = evaluate_model(EmotionEnsemble.load(two_seed_runs), corpus, fold.test)["utterance"]["ua"]
    assert plain == pytest.approx(row["ensemble_ua"])  # evaluate_model's ensemble is the benchmark's ensemble
    speeds = EmotionEnsemble.load(two_seed_runs, test_time_speeds=(0.9, 1.1))
    assert row["ensemble_with_speeds_ua"] == pytest.approx(evaluate_model(speeds, corpus, fold.test)["utterance"]["ua"])
    assert payload["summary"]["test_time_speeds"] == [0.9, 1.1]
    assert "test-time speeds 0.9/1.1" in name.with_suffix(".md").read_text()
    with pytest.raises(SystemExit, match="--test-time-speeds"):
        main([*map(str, two_seed_runs), "--test-time-speeds", "1.0", "--name", str(tmp_path / "x")])
