"""`python -m training.fit`: flags, config files, errors before work, the run directory."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from tests.training.conftest import SMALL, read_json
from training.config import TrainConfig, build_parser, config_from_args
from training.fit import main


def test_help_lists_every_flag(capsys):
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for flag in ("--corpus", "--data-dir", "--protocol", "--folds", "--variant", "--epochs", "--batch-size",
                 "--learning-rate", "--weight-decay", "--lr-schedule", "--seeds", "--output-dir", "--resume",
                 "--overwrite", "--dropout", "--validation-fraction", "--patience", "--mixed-precision",
                 "--quiet", "--verbose", "--config", "examples:"):
        assert flag in text, flag


def test_defaults_are_the_paper_recipe():
    config = config_from_args([])
    assert (config.corpus, config.variant, config.epochs, config.batch_size) == ("synthetic", "fa_ca", 50, 32)
    assert (config.learning_rate, config.weight_decay, config.lr_schedule) == (1e-3, 1e-6, "step")
    assert (config.lr_step_epochs, config.lr_step_factor, config.seeds, config.folds) == (10, 0.1, [0], None)


@pytest.mark.parametrize(
    "args, flag",
    [
        (["--epochs", "0"], "--epochs"),
        (["--epochs", "2.5"], "--epochs"),
        (["--batch-size", "-4"], "--batch-size"),
        (["--learning-rate", "abc"], "--learning-rate"),
        (["--weight-decay", "-1"], "--weight-decay"),
        (["--dropout", "1.5"], "--dropout"),
        (["--validation-fraction", "1"], "--validation-fraction"),
        (["--seeds", "a,b"], "--seeds"),
        (["--seeds", "1,1"], "--seeds"),
        (["--patience", "3", "--validation-fraction", "0"], "--patience"),
        (["--corpus", "emodb", "--data-dir", "/does/not/exist"], "--data-dir"),
        (["--folds", "all,0"], "--folds"),
        (["--variant", "nope"], "--variant"),
        (["--lr-schedule", "linear"], "--lr-schedule"),
        (["--bogus"], "--bogus"),
        (["--corpus-option", "novalue"], "--corpus-option"),
    ],
)
def test_bad_flags_exit_2_with_one_line_naming_the_flag(args, flag, capsys, tmp_path):
    out = tmp_path / "out"
    assert main(args + ["--output-dir", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert flag in err and "error" in err
    assert not out.exists()  # failed before any work


def test_bad_fold_fails_before_training(cache_dir, capsys, tmp_path):
    out = tmp_path / "out"
    assert main(SMALL + ["--folds", "7", "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--folds" in err and "speakers-s01" in err  # lists the folds there are
    assert not out.exists()


def test_config_file_and_flag_precedence(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 7\nbatch-size: 16\nvariant: mhsa\nlr_schedule: cosine\nseeds: [1, 2]\n")
    config = config_from_args(["--config", str(path), "--epochs", "3"])
    assert (config.epochs, config.batch_size, config.variant, config.lr_schedule, config.seeds) == (
        3, 16, "mhsa", "cosine", [1, 2])
    path.write_text(json.dumps({"epochs": 4, "folds": "all"}))
    json_path = path.with_suffix(".json")
    path.rename(json_path)
    assert config_from_args(["--config", str(json_path)]).folds == ["all"]


def test_config_file_unknown_key_is_named(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("epochz: 3\n")
    assert main(["--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "epochz" in err and str(path) in err


def test_defaults_are_the_paper_preset_plus_the_kept_recipe_changes():
    from training.config import PAPER_PRESET, paper_preset

    paper = config_from_args(["--config", str(PAPER_PRESET)]).to_dict()
    assert paper == paper_preset().to_dict()
    # beyond the paper: speed perturbation (#14), every training speaker with the weight average (#52)
    # and 64 log-mel bands instead of 26 MFCCs (#97)
    assert {**paper, "speed_perturbation": [0.9, 1.1], "validation_fraction": 0.0,
            "average_from_epoch": 11, "features": {"representation": "log_mel"}} == TrainConfig().to_dict()
    assert paper["speed_perturbation"] == [] and paper["features"] == {}
    assert TrainConfig().feature_config().feature_shape == (64, 63)
    assert paper_preset().feature_config().feature_shape == (26, 63)


def test_saved_configs_take_paper_values_for_the_fields_they_predate():
    saved = {k: v for k, v in TrainConfig(speed_perturbation=[]).to_dict().items() if k != "speed_perturbation"}
    assert TrainConfig.from_saved(saved).speed_perturbation == []
    assert TrainConfig.from_saved({**saved, "speed_perturbation": [0.9]}).speed_perturbation == [0.9]


def test_single_run_directory(trained_run):
    run = trained_run
    for name in ("model.keras", "model_card.json", "metrics.json", "history.csv", "config.json", "versions.json",
                 "confusion.png", "training_curves.png", "summary.json", "summary.md"):
        assert (run / name).is_file(), name
    assert list((run / "logs").glob("events.out.tfevents.*")), "TensorBoard event file"
    assert not (run / ".checkpoints").exists()  # removed when finished

    metrics = read_json(run / "metrics.json")
    card = read_json(run / "model_card.json")
    labels = ["neutral", "happy", "sad", "angry"]
    assert metrics["labels"] == card["labels"] == labels
    assert card["extra"]["fold"] == metrics["fold"] == "speakers-s01"
    assert card["feature_config"]["eval_hop_seconds"] == 0.4 and len(card["feature_std"]) == 64  # log-mel bands
    assert card["feature_config"]["representation"] == "log_mel"
    # the test speakers are neither in training nor in validation
    assert metrics["test_speakers"] == ["s01"] and "s01" not in metrics["validation_speakers"]
    assert metrics["validation_speakers"], "validation speakers carved from the training speakers"
    # the metrics follow from the confusion matrix (independent recomputation)
    for level in ("utterance", "segment"):
        cm = np.array(metrics[level]["confusion_matrix"])
        assert metrics[level]["wa"] == pytest.approx(np.trace(cm) / cm.sum())
        recalls = [cm[i, i] / cm[i].sum() for i in range(4) if cm[i].sum()]
        assert metrics[level]["ua"] == pytest.approx(np.mean(recalls))
    assert np.sum(metrics["utterance"]["confusion_matrix"]) == metrics["num_test_utterances"] == 8
    # history: one row per epoch, paper learning rate
    rows = list(csv.DictReader((run / "history.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    assert all(float(r["learning_rate"]) == pytest.approx(1e-3) for r in rows)
    assert all(r["val_ua"] != "" for r in rows)
    assert metrics["best_epoch"] in (1, 2)
    # config.json is the exact config and can be fed back as --config
    saved = TrainConfig.from_dict(read_json(run / "config.json"))
    assert saved.epochs == 2 and saved.batch_size == 8 and saved.folds == ["speakers-s01"]


def test_model_loads_with_plain_keras(trained_run):
    import keras

    import sercal_keras  # noqa: F401

    model = keras.models.load_model(trained_run / "model.keras")
    assert model.output_shape == (None, 4)
    assert model.dtype_policy.name == "float32"


def test_same_command_again_skips_and_other_settings_are_refused(trained_run, capsys):
    before = (trained_run / "model.keras").stat().st_mtime_ns
    assert main(SMALL + ["--epochs", "2", "--output-dir", str(trained_run)]) == 0
    assert (trained_run / "model.keras").stat().st_mtime_ns == before  # finished: skipped
    capsys.readouterr()
    assert main(SMALL + ["--epochs", "3", "--output-dir", str(trained_run)]) == 2
    err = capsys.readouterr().err
    assert "different settings" in err and "epochs" in err and "--overwrite" in err


def test_resume_uses_the_saved_config(trained_run, capsys):
    before = (trained_run / "model.keras").stat().st_mtime_ns
    assert main(["--resume", str(trained_run)]) == 0
    assert (trained_run / "model.keras").stat().st_mtime_ns == before
    assert "skipped" in capsys.readouterr().out
    assert main(["--resume", str(trained_run), "--epochs", "9"]) == 2
    assert "different settings" in capsys.readouterr().err


def test_overwrite_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    (tmp_path / "precious.txt").write_text("keep me")
    assert main(SMALL + ["--output-dir", str(tmp_path), "--overwrite"]) == 2
    assert (tmp_path / "precious.txt").is_file()
    assert "not a training run directory" in capsys.readouterr().err


def test_lr_schedules():
    from training.callbacks import lr_for_epoch

    step = [lr_for_epoch(e, 1e-3, "step", 50) for e in (0, 9, 10, 19, 20, 49)]
    assert step == pytest.approx([1e-3, 1e-3, 1e-4, 1e-4, 1e-5, 1e-7])
    cosine = [lr_for_epoch(e, 1e-3, "cosine", 10) for e in (0, 5, 10)]
    assert cosine == pytest.approx([1e-3, 5e-4, 0.0], abs=1e-12)


def test_parser_defaults_are_suppressed():
    # only flags given on the command line override a config file
    assert vars(build_parser().parse_args([])) == {}
