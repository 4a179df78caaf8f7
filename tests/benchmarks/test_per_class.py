"""`benchmarks.per_class` on hand-made run directories (only their metrics.json is read)."""

import json

import numpy as np
import pytest

from benchmarks.per_class import largest_confusions, main

LABELS = ["anger", "boredom", "neutral"]


def _write_run(path, fold, seed, confusion, labels=LABELS):
    confusion = np.asarray(confusion)
    recall = confusion.diagonal() / confusion.sum(axis=1)
    path.mkdir(parents=True)
    utterance = {"labels": labels, "ua": float(recall.mean()), "confusion_matrix": confusion.tolist(),
                 "per_class_recall": dict(zip(labels, map(float, recall)))}
    (path / "metrics.json").write_text(json.dumps({"fold": fold, "seed": seed, "utterance": utterance}))
    return path


@pytest.fixture
def two_sets(tmp_path):
    """Candidate recovers boredom from neutral on every pair; anger is the same on both sides."""
    candidate, baseline = [], []
    for i, (fold, seed) in enumerate([("f1", 0), ("f1", 1), ("f2", 0)]):
        candidate.append(_write_run(tmp_path / f"c{i}", fold, seed, [[10, 0, 0], [0, 8 - i, 2 + i], [0, 1, 9]]))
        baseline.append(_write_run(tmp_path / f"b{i}", fold, seed, [[10, 0, 0], [0, 4, 6], [0, 1, 9]]))
    baseline.append(_write_run(tmp_path / "b_unpaired", "f3", 0, [[0, 10, 0], [0, 0, 10], [10, 0, 0]]))
    return candidate, baseline


def test_each_class_is_paired_by_fold_and_seed(two_sets, tmp_path):
    candidate, baseline = two_sets
    name = tmp_path / "result"
    assert main(["--candidate", *map(str, candidate), "--baseline", *map(str, baseline), "--name", str(name)]) == 0
    result = json.loads(name.with_suffix(".json").read_text())["comparison"]
    assert result["pairs"] == [["f1", 0], ["f1", 1], ["f2", 0]]  # the unpaired baseline run is left out
    boredom = result["classes"]["boredom"]
    assert boredom["candidate_mean"] == pytest.approx(0.7) and boredom["baseline_mean"] == pytest.approx(0.4)
    assert boredom["mean"] == pytest.approx(0.3) and boredom["wins"] == 3 and boredom["ci95_low"] > 0
    assert result["classes"]["anger"]["mean"] == 0 and result["classes"]["anger"]["wins"] == 0
    assert result["ua"]["baseline"] == pytest.approx((1.0 + 0.4 + 0.9) / 3)
    assert result["largest_confusions"]["baseline"][0] == {
        "true": "boredom", "predicted": "neutral", "count": 18, "share_of_true": 0.6}
    markdown = name.with_suffix(".md").read_text()
    assert "| boredom | 70.0 | 40.0 | +30.0 pp [" in markdown and "boredom → neutral 18 (60 %)" in markdown


def test_largest_confusions_skip_empty_cells():
    assert largest_confusions(np.array([[5, 0], [0, 5]]), ["a", "b"]) == []


def test_bad_run_sets_stop_with_the_run_named(two_sets, tmp_path):
    candidate, baseline = two_sets
    with pytest.raises(SystemExit, match="no metrics.json"):
        main(["--candidate", str(tmp_path / "missing"), "--baseline", *map(str, baseline)])
    with pytest.raises(SystemExit, match="second run of fold f1, seed 0"):
        main(["--candidate", str(candidate[0]), str(candidate[0]), "--baseline", *map(str, baseline)])
    other = _write_run(tmp_path / "other_labels", "f2", 1, np.eye(3, dtype=int) * 5, labels=["a", "b", "c"])
    with pytest.raises(SystemExit, match="labels"):
        main(["--candidate", *map(str, candidate), str(other), "--baseline", *map(str, baseline)])
    with pytest.raises(SystemExit, match="1 common"):
        main(["--candidate", str(candidate[0]), "--baseline", *map(str, baseline)])
