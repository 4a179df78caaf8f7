"""`python -m training.evaluate`: same metrics as training, other folds, label checks."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.training.conftest import read_json
from training.evaluate import main


def test_re_evaluating_the_test_fold_reproduces_metrics_json(trained_run, capsys):
    assert main([str(trained_run), "--json", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    trained = read_json(trained_run / "metrics.json")
    assert result["split"] == "speaker-folds:speakers-s01"
    for level in ("utterance", "segment"):
        assert result[level]["confusion_matrix"] == trained[level]["confusion_matrix"]
        assert result[level]["ua"] == pytest.approx(trained[level]["ua"])
    out = trained_run / "evaluations" / "synthetic_speaker-folds_speakers-s01"
    assert (out / "metrics.json").is_file() and (out / "confusion.png").is_file()


def test_all_folds_of_a_protocol(trained_run, capsys, tmp_path):
    out = tmp_path / "ev"
    assert main([str(trained_run / "model.keras"), "--corpus", "synthetic", "--protocol", "loso", "--folds", "all",
                 "--output-dir", str(out)]) == 0
    captured = capsys.readouterr()
    assert "not speaker-independent" in captured.err  # other folds' speakers were trained on
    summary = read_json(out / "summary.json")
    assert len(summary["results"]) == 4
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["loso-s01", "loso-s02", "loso-s03", "loso-s04"]
    assert (out / "summary.md").is_file()


def _folder_corpus(tmp_path, cache_dir, classes):
    """A folder corpus (one sub-folder per class) made of synthetic files."""
    wavs = sorted(cache_dir.glob("synthetic/*/*.wav"))
    assert wavs
    root = tmp_path / "folder"
    for i, label in enumerate(classes):
        (root / label).mkdir(parents=True)
        for wav in wavs[2 * i : 2 * i + 2]:
            shutil.copy(wav, root / label / wav.name)
    return root


def test_unknown_labels_are_refused_then_mapped_or_dropped(trained_run, cache_dir, tmp_path, capsys):
    root = _folder_corpus(tmp_path, cache_dir, ["angry", "bored", "happy"])
    base = [str(trained_run), "--corpus", "folder", "--data-dir", str(root), "--output-dir", str(tmp_path / "o")]
    assert main(base) == 2
    err = capsys.readouterr().err.strip()
    assert "bored" in err and "--label-map" in err and len(err.splitlines()) == 1

    assert main(base + ["--label-map", "bored=sad", "--json", "--quiet"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["utterance"]["support"] == {"neutral": 0, "happy": 2, "sad": 2, "angry": 2}
    assert "no ['neutral']" in captured.err  # warns: a model class is absent

    assert main(base + ["--drop-unknown-labels", "--json", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["num_test_utterances"] == 4


def test_bad_model_path_exits_2(tmp_path, capsys):
    assert main([str(tmp_path / "nothing")]) == 2
    assert "no such model" in capsys.readouterr().err


def test_bad_test_time_speeds_exit_2(trained_run, capsys):
    assert main([str(trained_run), "--test-time-speeds", "0.9,fast"]) == 2
    assert "--test-time-speeds takes comma-separated factors" in capsys.readouterr().err
    assert main([str(trained_run), "--test-time-speeds", "1.0"]) == 2
    assert "test_time_speeds must be distinct factors" in capsys.readouterr().err
