"""Recipe options beyond the paper preset: SpecAugment, mixup, label smoothing, training hop."""

from __future__ import annotations

import numpy as np
import pytest

from tests.training.conftest import SMALL, SMALL_CORPUS, read_json
from training.config import TrainConfig, config_from_args
from training.fit import main


def test_flags_set_the_options_and_defaults_are_off():
    assert TrainConfig().soft_labels is False
    config = config_from_args(["--time-masks", "2", "--time-mask-width", "12", "--freq-masks", "1",
                               "--freq-mask-width", "4", "--mixup-alpha", "0.2", "--label-smoothing", "0.1",
                               "--train-hop-seconds", "0.5"])
    assert (config.time_masks, config.time_mask_width, config.freq_masks, config.freq_mask_width) == (2, 12, 1, 4)
    assert (config.mixup_alpha, config.label_smoothing, config.soft_labels) == (0.2, 0.1, True)
    assert config.features == {"representation": "log_mel", "train_hop_seconds": 0.5}  # added to the default's
    assert config.feature_config().train_hop_seconds == 0.5


def test_feature_flags_set_the_front_end():
    config = config_from_args(["--feature", "representation=log_mel", "--feature", "n_mels=64",
                               "--train-hop-seconds", "0.5"])
    assert config.features == {"representation": "log_mel", "n_mels": 64, "train_hop_seconds": 0.5}
    assert config.feature_config().feature_shape == (64, 63)
    assert config.feature_config().feature_name == "64 log-mel bands"
    # MFCCs by flag: the paper's front-end (26 of 128 mel bands), not MFCCs over the default's 64 bands
    mfcc = config_from_args(["--feature", "representation=mfcc"]).feature_config()
    assert mfcc.feature_shape == (26, 63) and mfcc.n_mels == 128
    assert config_from_args(["--feature", "n_mels=40"]).feature_config().feature_name == "40 log-mel bands"
    forty = config_from_args(["--feature", "representation=mfcc", "--feature", "n_mfcc=40"]).feature_config()
    assert forty.feature_name == "40 MFCC" and forty.n_mels == 128


def test_model_options_reach_the_builder(tmp_path):
    from training.trainer import build_and_compile

    config = config_from_args(["--model-option", "calibration_context=5", "--model-option", "focus_source=energy",
                               "--model-option", "focus_prior_init=0.6", "--model-option", "attention_blocks=2"])
    assert config.model_options == {"calibration_context": 5, "focus_source": "energy", "focus_prior_init": 0.6,
                                    "attention_blocks": 2}
    assert TrainConfig.from_dict({"model_options": "{calibration_context: 3}"}).model_options == {"calibration_context": 3}
    model = build_and_compile(config, 4, None, None, (26, 63), compile_model=False)
    assert model.get_layer("calibration_attention").context_size == 5
    assert model.get_layer("input_energy").grid == (6, 15)
    np.testing.assert_allclose(np.asarray(model.get_layer("focus_attention").beta), 0.6)
    np.testing.assert_allclose(np.asarray(model.get_layer("focus_attention_2").beta), 0.6)
    assert model.get_layer("calibration_attention_2").context_size == 5


def test_bad_model_option_fails_before_the_run_directory(warm_cache, capsys, tmp_path):
    out = tmp_path / "out"
    assert main(SMALL + ["--model-option", "calibration_context=4", "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--model-option" in err and "context_size" in err, err
    assert not out.exists()


def test_speed_copies_join_the_training_segments_only(warm_cache):
    from training.trainer import load_data

    base = TrainConfig(corpus_options={"num_speakers": 4, "utterances_per_class": 2}, speed_perturbation=[])
    plain = load_data(base, log=lambda m: None).extract(log=lambda m: None)
    config = config_from_args(SMALL_CORPUS + ["--speed-perturbation", "0.9,1.1"])
    assert config.speed_perturbation == [0.9, 1.1] == TrainConfig().speed_perturbation  # the default
    assert config_from_args(["--speed-perturbation", ""]).speed_perturbation == []  # off, as in the paper preset
    perturbed = load_data(config, log=lambda m: None).extract(log=lambda m: None)
    assert perturbed.speeds == (0.9, 1.1)
    assert len(perturbed.train_segments) > 2 * len(plain.train_segments)
    np.testing.assert_array_equal(perturbed.train_segments.features[: len(plain.train_segments)],
                                  plain.train_segments.features)
    # The copies keep their utterance's index (so folds split them with it) and label.
    assert set(perturbed.train_segments.utterance_index) == set(plain.train_segments.utterance_index)
    owners, labels = perturbed.train_segments.utterance_index, perturbed.train_segments.labels
    assert all(len(set(labels[owners == i])) == 1 for i in set(owners))
    np.testing.assert_array_equal(perturbed.eval_segments.features, plain.eval_segments.features)


def test_noisy_copies_join_the_training_segments_only(warm_cache):
    from training.trainer import load_data

    base = TrainConfig(corpus_options={"num_speakers": 4, "utterances_per_class": 2}, speed_perturbation=[])
    plain = load_data(base, log=lambda m: None).extract(log=lambda m: None)
    config = config_from_args(SMALL_CORPUS + ["--speed-perturbation", "", "--noise-snr-db", "20,10"])
    assert config.noise_snr_db == [20.0, 10.0] and TrainConfig().noise_snr_db == []  # off by default
    logged = []
    noisy = load_data(config, log=lambda m: None).extract(log=logged.append)
    assert noisy.noise_snrs == (20.0, 10.0) and "noisy copies at 20, 10 dB SNR" in logged[0]
    n = len(plain.train_segments)
    assert len(noisy.train_segments) == 3 * n
    np.testing.assert_array_equal(noisy.train_segments.features[:n], plain.train_segments.features)
    for copy in (1, 2):  # same utterances and labels, different features
        np.testing.assert_array_equal(noisy.train_segments.utterance_index[copy * n:(copy + 1) * n],
                                      plain.train_segments.utterance_index)
        np.testing.assert_array_equal(noisy.train_segments.labels[copy * n:(copy + 1) * n], plain.train_segments.labels)
        assert not np.allclose(noisy.train_segments.features[copy * n:(copy + 1) * n], plain.train_segments.features)
    np.testing.assert_array_equal(noisy.eval_segments.features, plain.eval_segments.features)
    assert TrainConfig.from_dict({"noise_snr_db": "20"}, source="--set").noise_snr_db == [20.0]


def test_benchmark_set_values_are_coerced_from_strings():
    # benchmarks.accuracy --set passes every value as a string
    config = TrainConfig.from_dict({"time_masks": "2", "time_mask_width": "12", "mixup_alpha": "0.2",
                                    "features": '{"train_hop_seconds": 0.5}'}, source="--set")
    assert (config.time_masks, config.time_mask_width, config.mixup_alpha) == (2, 12, 0.2)
    assert TrainConfig.from_dict({"features": "{train_hop_seconds: 0.25}"}).features == {"train_hop_seconds": 0.25}


@pytest.mark.parametrize(
    "args, flag",
    [
        (["--time-masks", "2"], "--time-mask-width"),
        (["--freq-mask-width", "3"], "--freq-masks"),
        (["--time-masks", "1", "--time-mask-width", "64"], "--time-mask-width"),
        (["--freq-masks", "1", "--freq-mask-width", "65"], "--freq-mask-width"),  # of 64 log-mel bands
        (["--feature", "representation=mfcc", "--freq-masks", "1", "--freq-mask-width", "27"], "--freq-mask-width"),
        (["--time-masks", "-1", "--time-mask-width", "5"], "--time-masks"),
        (["--mixup-alpha", "-0.5"], "--mixup-alpha"),
        (["--label-smoothing", "1"], "--label-smoothing"),
        (["--train-hop-seconds", "abc"], "--train-hop-seconds"),
        (["--train-hop-seconds", "-1"], "--train-hop-seconds"),
        (["--model-option", "heads=2"], "--model-option"),
        (["--feature", "representation=cqt"], "--feature"),
        (["--feature", "n_mel=64"], "--feature"),
        (["--feature", "n_mels"], "--feature"),
        (["--feature", "n_mfcc=40"], "--feature"),  # MFCC count on the log-mel default: say so, don't ignore it
        (["--speed-perturbation", "1.0"], "--speed-perturbation"),
        (["--speed-perturbation", "0.9,0.9"], "--speed-perturbation"),
        (["--speed-perturbation", "3"], "--speed-perturbation"),
        (["--speed-perturbation", "fast"], "--speed-perturbation"),
        (["--noise-snr-db", "80"], "--noise-snr-db"),
        (["--noise-snr-db", "20,20"], "--noise-snr-db"),
        (["--noise-snr-db", "loud"], "--noise-snr-db"),
        (["--model-option", "calibration_context"], "--model-option"),
        (["--feature-normalization", "utterance"], "--feature-normalization"),
        (["--class-weighting", "inverse"], "--class-weighting"),
    ],
)
def test_bad_options_exit_2_naming_the_flag(args, flag, capsys, tmp_path):
    assert main(args + ["--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and flag in err, err


def test_soft_labels_compile_a_categorical_loss():
    import keras

    from training.trainer import build_and_compile, training_augmentation

    mean, var = np.zeros(26, "float32"), np.ones(26, "float32")
    plain = build_and_compile(TrainConfig(variant="mhsa"), 4, mean, var, (26, 63))
    assert plain.loss == "sparse_categorical_crossentropy"
    smooth = build_and_compile(TrainConfig(variant="mhsa", label_smoothing=0.1), 4, mean, var, (26, 63))
    assert isinstance(smooth.loss, keras.losses.CategoricalCrossentropy)
    assert smooth.loss.get_config()["label_smoothing"] == 0.1
    assert training_augmentation(TrainConfig(), mean) is None
    aug = training_augmentation(TrainConfig(time_masks=1, time_mask_width=5, mixup_alpha=0.2), mean + 3)
    assert aug.active and aug.fill_value == [3.0] * 26


def test_a_run_with_every_option_trains_and_reports(warm_cache, tmp_path):
    out = tmp_path / "augmented"
    rc = main(SMALL + ["--epochs", "2", "--variant", "mhsa", "--time-masks", "2", "--time-mask-width", "8",
                       "--freq-masks", "1", "--freq-mask-width", "3", "--mixup-alpha", "0.3",
                       "--label-smoothing", "0.1", "--ema-momentum", "0.95", "--class-weighting", "balanced",
                       "--output-dir", str(out)])
    assert rc == 0
    metrics = read_json(out / "metrics.json")
    assert 0 <= metrics["utterance"]["ua"] <= 1 and metrics["epochs_run"] == 2
    assert metrics["best_validation_ua"] is not None  # the validation-UA callback still works
    saved = read_json(out / "config.json")
    assert (saved["mixup_alpha"], saved["label_smoothing"], saved["time_masks"], saved["ema_momentum"],
            saved["class_weighting"]) == (0.3, 0.1, 2, 0.95, "balanced")


def test_balanced_class_weights_give_every_class_the_same_total_weight():
    from training.trainer import balanced_class_weights

    labels = np.array([0] * 6 + [1] * 3 + [3] * 1)  # class 2 absent
    weights = balanced_class_weights(labels, 4)
    assert sorted(weights) == [0, 1, 3]
    totals = [weights[c] * np.sum(labels == c) for c in weights]
    np.testing.assert_allclose(totals, len(labels) / 3)
    assert TrainConfig().class_weighting == "none"


def test_class_weights_reach_fit_and_the_log(warm_cache, tmp_path, monkeypatch, capsys):
    import keras

    seen = {}
    fit = keras.Model.fit

    def spy(self, *args, **kwargs):
        seen["class_weight"] = kwargs.get("class_weight")
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", spy)
    assert main(SMALL + ["--epochs", "1", "--variant", "mhsa", "--output-dir", str(tmp_path / "plain")]) == 0
    assert seen["class_weight"] is None
    assert main(SMALL_CORPUS + ["--batch-size", "8", "--epochs", "1", "--variant", "mhsa", "--class-weighting",
                                "balanced", "--output-dir", str(tmp_path / "balanced")]) == 0
    from benchmarks.weight_averaging import training_segments
    from training.trainer import balanced_class_weights

    # the weights of the run's own training segments (speed copies included), recomputed independently
    labels = training_segments(tmp_path / "balanced", None).labels
    assert seen["class_weight"] == pytest.approx(balanced_class_weights(labels, 4))
    counts = np.bincount(labels, minlength=4)
    assert sorted(seen["class_weight"]) == [c for c in range(4) if counts[c]]
    assert "class weights: " in capsys.readouterr().out


def test_ema_selects_and_saves_the_averaged_weights_and_trains_on_the_raw_ones(tmp_path):
    import keras

    from training.callbacks import ValidationUA
    from training.trainer import build_and_compile

    assert TrainConfig().ema_momentum == 0.0
    config = config_from_args(["--variant", "mhsa", "--ema-momentum", "0.9"])
    rng = np.random.default_rng(0)
    features = rng.normal(size=(48, 26, 63)).astype("float32")
    labels = rng.integers(0, 4, 48)
    model = build_and_compile(config, 4, np.zeros(26, "float32"), np.ones(26, "float32"), (26, 63))
    assert model.optimizer.use_ema and model.optimizer.ema_momentum == 0.9

    seen = []  # after ValidationUA: (the model's weights, the optimizer's averages) at each epoch end

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            swap = keras.callbacks.SwapEMAWeights()
            swap.set_model(self.model)
            raw = [w.copy() for w in self.model.get_weights()]
            swap.on_test_begin()
            averaged = [w.copy() for w in self.model.get_weights()]
            swap.on_test_end()
            seen.append((raw, averaged))

    monitor = ValidationUA(tmp_path, ["a", "b", "c", "d"], (features[:16], labels[:16], np.arange(16)))
    model.fit(features, labels, batch_size=8, epochs=3, verbose=0, callbacks=[monitor, Record()])
    best_epoch = ValidationUA.load_state(tmp_path)["best_epoch"]
    raw, averaged = seen[best_epoch]
    # Training went on from the raw weights: they differ from the averages (0.9 over 18 steps).
    assert max(float(np.abs(r - a).max()) for r, a in zip(raw, averaged)) > 1e-4
    fresh = build_and_compile(config, 4, np.zeros(26, "float32"), np.ones(26, "float32"), (26, 63),
                              compile_model=False)
    fresh.load_weights(tmp_path / "best.weights.h5")
    for saved, expected in zip(fresh.trainable_weights, model.trainable_weights):
        index = [id(v) for v in model.weights].index(id(expected))
        np.testing.assert_allclose(keras.ops.convert_to_numpy(saved), averaged[index], atol=1e-6)


def test_bad_ema_momentum_fails_before_the_run_directory(warm_cache, capsys, tmp_path):
    out = tmp_path / "out"
    assert main(SMALL + ["--ema-momentum", "1.5", "--output-dir", str(out)]) == 2
    assert "--ema-momentum must lie in [0, 1)" in capsys.readouterr().err
    assert not out.exists()


def test_speaker_normalization_standardises_each_training_speaker(warm_cache, tmp_path, capsys):
    assert TrainConfig().feature_normalization == "global"
    assert TrainConfig.from_dict({"feature_normalization": "speaker"}, source="--set").feature_normalization == "speaker"
    out = tmp_path / "speaker"
    assert main(SMALL + ["--epochs", "1", "--variant", "mhsa", "--feature-normalization", "speaker",
                         "--output-dir", str(out)]) == 0
    card = read_json(out / "model_card.json")
    assert card["extra"]["feature_normalization"] == "speaker"
    # every training speaker was standardised on its own, so the pooled statistics the
    # model's Normalization layer holds are those of standard scores
    np.testing.assert_allclose(card["feature_mean"], 0, atol=1e-4)
    np.testing.assert_allclose(card["feature_std"], 1, atol=1e-3)
    assert read_json(out / "config.json")["feature_normalization"] == "speaker"
    # the training speakers' average raw feature statistics, for speakers without enrolment audio
    prior = card["extra"]["speaker_prior"]
    assert len(prior["mean"]) == len(prior["std"]) == 64 and min(prior["std"]) > 0 and prior["weight"] == 10.0
    assert prior["mean"][0] < -10  # raw decibels of the lowest band, not standardised values (mean 0)
    # re-evaluation standardises the test speakers the way training did: the same confusion matrix
    import json

    from training.evaluate import main as evaluate

    capsys.readouterr()
    assert evaluate([str(out), "--json", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["utterance"]["confusion_matrix"] == read_json(out / "metrics.json")["utterance"]["confusion_matrix"]


def test_a_log_mel_run_trains_exports_and_runs_on_the_edge(warm_cache, tmp_path):
    """`representation: log_mel` end to end: the run, its card, both .tflite inputs
    (the waveform one computes the log-mel bands in the graph) and the edge runtime."""
    from edge_demo.runtime import EdgeModel
    from export.tflite import main as export_main
    from sercal_keras.inference import EmotionRecognizer
    from tests.audio.audio_test_utils import speech_like

    config = tmp_path / "log_mel.yaml"
    config.write_text("features: {representation: log_mel, n_mels: 32}\n")
    out = tmp_path / "log_mel_run"
    assert main(SMALL + ["--epochs", "1", "--variant", "mhsa", "--config", str(config), "--output-dir", str(out)]) == 0
    recognizer = EmotionRecognizer.load(out)
    assert recognizer.feature_config.representation == "log_mel"
    assert recognizer.model.input_shape[1:] == (32, 63)

    assert export_main([str(out), "--input", "both", "--quiet"]) == 0
    waveform = speech_like(seconds=3.0, seed=7)
    reference = recognizer.predict(waveform, 16000).segment_probabilities
    paths = sorted((out / "tflite").glob("*.tflite"))
    assert len(paths) == 2  # MFCC-shaped input and waveform input
    for path in paths:
        edge = EdgeModel(path)
        assert edge.feature_config.feature_shape == (32, 63)
        _, segment_probs = edge.classify_waveform(waveform)
        np.testing.assert_allclose(segment_probs, reference, atol=2e-3, err_msg=path.name)
