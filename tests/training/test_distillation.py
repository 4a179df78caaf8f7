"""Distillation from finished runs (`--teacher`): targets, teacher matching, and a student run."""

from __future__ import annotations

import shutil

import keras
import numpy as np
import pytest

from sercal_keras.errors import ConfigError
from tests.training.conftest import SMALL, read_json
from training.config import TrainConfig, config_from_args
from training.distillation import blend_targets, soften, teacher_runs, teachers_for_fold
from training.fit import main


def test_soften_is_the_identity_at_one_and_flattens_above():
    p = np.array([[0.97, 0.02, 0.01], [0.2, 0.5, 0.3]], np.float32)
    np.testing.assert_allclose(soften(p, 1.0), p, atol=1e-6)
    warm = soften(p, 3.0)
    np.testing.assert_allclose(warm.sum(axis=1), 1.0, atol=1e-6)
    assert (warm.max(axis=1) < p.max(axis=1)).all()  # flatter
    np.testing.assert_array_equal(warm.argmax(axis=1), p.argmax(axis=1))  # same ranking
    # a zero probability is clipped, not log(0)
    assert np.isfinite(soften(np.array([[1.0, 0.0]]), 2.0)).all()
    with pytest.raises(ValueError, match="temperature"):
        soften(p, 0.0)


def test_blend_targets_mixes_the_labels_with_the_teachers_mean():
    a = np.array([[0.6, 0.4], [0.0, 1.0]])
    b = np.array([[1.0, 0.0], [0.4, 0.6]])
    targets = blend_targets(np.array([0, 1]), [a, b], 2, weight=0.5, temperature=1.0)
    np.testing.assert_allclose(targets, [[0.5 + 0.5 * 0.8, 0.5 * 0.2], [0.5 * 0.2, 0.5 + 0.5 * 0.8]], atol=1e-6)
    only_teachers = blend_targets(np.array([0, 1]), [a], 2, weight=1.0, temperature=1.0)
    np.testing.assert_allclose(only_teachers, np.clip(a, 1e-7, 1), atol=1e-6)


def test_flags_and_validation():
    config = config_from_args(["--teacher", "runs/a", "--teacher", "runs/b", "--distillation-weight", "0.7",
                               "--distillation-temperature", "3"])
    assert (config.teachers, config.distillation_weight, config.distillation_temperature) == (
        ["runs/a", "runs/b"], 0.7, 3.0)
    assert config.soft_labels and not TrainConfig().soft_labels
    assert TrainConfig.from_dict({"teachers": "runs/a,runs/b"}).teachers == ["runs/a", "runs/b"]
    assert TrainConfig.from_dict({"teachers": ["my runs/a"]}).teachers == ["my runs/a"]  # a file's list: spaces kept
    for flag, value in (("--distillation-weight", "0"), ("--distillation-weight", "1.5"),
                        ("--distillation-temperature", "0")):
        with pytest.raises(ConfigError, match=flag):
            config_from_args([flag, value])


def test_teachers_must_be_tested_on_the_students_fold(trained_run, tmp_path):
    metrics, card = read_json(trained_run / "metrics.json"), read_json(trained_run / "model_card.json")
    runs = teacher_runs([str(trained_run.parent)])
    assert runs == [trained_run]
    args = (metrics["corpus"], metrics["protocol"], metrics["fold"], metrics["test_speakers"], metrics["labels"],
            card["feature_config"], "global")
    assert teachers_for_fold(runs, *args) == [trained_run]
    with pytest.raises(ConfigError, match="no teacher run for .* fold speakers-other"):
        teachers_for_fold(runs, *args[:2], "speakers-other", *args[3:])
    with pytest.raises(ConfigError, match="other features"):
        teachers_for_fold(runs, *args[:6], "speaker")
    with pytest.raises(ConfigError, match="labels"):
        teachers_for_fold(runs, *args[:4], list(reversed(metrics["labels"])), *args[5:])
    with pytest.raises(ConfigError, match="no finished run"):
        teacher_runs([str(tmp_path)])
    with pytest.raises(ConfigError, match="not a directory"):
        teacher_runs([str(tmp_path / "missing")])


def test_a_student_trains_on_its_teachers_targets(trained_run, tmp_path, monkeypatch):
    import sercal_keras.data as data_package

    seen, make_dataset = {}, data_package.make_dataset

    def spy(segment_set, *args, targets=None, **kwargs):  # the trainer imports make_dataset at run time
        seen["targets"], seen["labels"] = targets, segment_set.labels
        return make_dataset(segment_set, *args, targets=targets, **kwargs)

    monkeypatch.setattr(data_package, "make_dataset", spy)
    out = tmp_path / "student"
    assert main(SMALL + ["--epochs", "1", "--teacher", str(trained_run), "--distillation-weight", "0.6",
                         "--output-dir", str(out)]) == 0
    student = read_json(out / "metrics.json")
    assert student["teachers"] == [str(trained_run)]
    assert read_json(out / "config.json")["teachers"] == [str(trained_run)]

    # the targets the student trained on: 0.4 x its labels + 0.6 x the teacher's softened probabilities
    targets, labels = seen["targets"], seen["labels"]
    assert targets.shape == (student["num_train_segments"], len(student["labels"]))
    teacher = keras.models.load_model(trained_run / "model.keras")
    from training.trainer import load_data, split_run_data

    config = config_from_args(SMALL + ["--epochs", "1"])
    data = load_data(config, log=lambda m: None).extract(log=lambda m: None)
    train_set = split_run_data(config, data, data.folds[0], seed=0).train
    np.testing.assert_array_equal(train_set.labels, labels)
    expected = blend_targets(labels, [np.asarray(teacher.predict(train_set.features, verbose=0))],
                             len(student["labels"]), weight=0.6, temperature=2.0)
    np.testing.assert_allclose(targets, expected, atol=1e-5)


def test_a_teacher_of_another_fold_is_refused_before_anything_is_written(trained_run, tmp_path, capsys):
    teachers = tmp_path / "teachers"
    shutil.copytree(trained_run, teachers / "other")
    out = tmp_path / "student"
    assert main(SMALL + ["--folds", "1", "--epochs", "1", "--teacher", str(teachers), "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--teacher" in err and "no teacher run for" in err, err
    assert not out.exists()
