"""Weight averaging (`--average-from-epoch`): the saved model is the mean of the epochs' weights."""

from __future__ import annotations

import numpy as np
import pytest

from tests.training.conftest import SMALL, SMALL_CORPUS, read_json
from training.config import config_from_args
from training.fit import main
from training.weight_averaging import average_weights, load_averaged_weights, recompute_batch_norm


def test_average_weights_is_the_elementwise_mean_in_each_arrays_dtype():
    a = [np.array([1.0, 2.0], np.float32), np.array(4, np.int64)]
    b = [np.array([3.0, 6.0], np.float32), np.array(4, np.int64)]
    mean = average_weights([a, b])
    np.testing.assert_array_equal(mean[0], [2.0, 4.0])
    assert mean[0].dtype == np.float32 and mean[1].dtype == np.int64 and mean[1] == 4
    with pytest.raises(ValueError, match="different models"):
        average_weights([a, b[:1]])
    with pytest.raises(ValueError, match="at least one"):
        average_weights([])


def test_load_averaged_weights_sets_the_mean_of_the_files(tmp_path):
    import keras

    def model():
        inputs = keras.Input((3,))
        return keras.Model(inputs, keras.layers.BatchNormalization()(keras.layers.Dense(2)(inputs)))

    first, second, target = model(), model(), model()
    first.save_weights(str(tmp_path / "a.weights.h5"))
    second.set_weights([w + 1.0 for w in first.get_weights()])  # BatchNorm statistics included
    second.save_weights(str(tmp_path / "b.weights.h5"))
    load_averaged_weights(target, [tmp_path / "a.weights.h5", tmp_path / "b.weights.h5"])
    for got, w in zip(target.get_weights(), first.get_weights()):
        np.testing.assert_allclose(got, w + 0.5, rtol=1e-6)
    with pytest.raises(FileNotFoundError, match="c.weights.h5"):
        load_averaged_weights(target, [tmp_path / "a.weights.h5", tmp_path / "c.weights.h5"])


def test_recomputed_batch_norm_normalises_each_layers_input_in_graph_order():
    import keras

    inputs = keras.Input((4, 5, 1))
    x = keras.layers.Conv2D(3, 2, padding="same", name="conv1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.Dropout(0.5)(x)  # off in inference mode, as in the statistics
    x = keras.layers.Conv2D(2, 2, padding="same", name="conv2")(x)
    x = keras.layers.BatchNormalization(name="bn2")(x)
    model = keras.Model(inputs, x)
    for layer in ("bn1", "bn2"):  # stale statistics, as a weight average leaves them
        model.get_layer(layer).moving_mean.assign([5.0] * model.get_layer(layer).moving_mean.shape[0])
        model.get_layer(layer).moving_variance.assign([9.0] * model.get_layer(layer).moving_variance.shape[0])
    features = np.random.default_rng(0).normal(3.0, 2.0, (50, 4, 5, 1)).astype(np.float32)

    assert recompute_batch_norm(model, features, batch_size=7) == 2
    # both outputs standardised per channel: bn2's statistics were taken after bn1's were recomputed
    for layer in ("bn1", "bn2"):
        out = np.asarray(keras.Model(model.input, model.get_layer(layer).output)(features, training=False))
        np.testing.assert_allclose(out.mean(axis=(0, 1, 2)), 0.0, atol=1e-4)
        np.testing.assert_allclose(out.std(axis=(0, 1, 2)), 1.0, atol=1e-2)  # epsilon 1e-3 shrinks it a little
    with pytest.raises(ValueError, match="at least one"):
        recompute_batch_norm(model, features[:0])


def test_the_saved_model_is_the_mean_of_the_window_and_the_run_says_so(warm_cache, tmp_path):
    import keras

    import sercal_keras  # noqa: F401  (registers the layers for load_model)

    out = tmp_path / "averaged"
    assert main(SMALL + ["--epochs", "3", "--variant", "mhsa", "--average-from-epoch", "2", "--keep-epoch-weights",
                         "--output-dir", str(out)]) == 0
    metrics = read_json(out / "metrics.json")
    assert metrics["averaged_epochs"] == [2, 3]
    assert metrics["model_selection"] == "mean of the weights of epochs 2-3"
    assert 0.0 <= metrics["validation_ua"] <= 1.0 and metrics["best_epoch"] in (1, 2, 3)  # still recorded
    assert read_json(out / "model_card.json")["extra"]["averaged_epochs"] == [2, 3]
    saved = keras.models.load_model(out / "model.keras")
    expected = keras.models.clone_model(saved)
    load_averaged_weights(expected, [out / "epoch_weights" / f"epoch{e:02d}.weights.h5" for e in (2, 3)])
    for got, want in zip(saved.get_weights(), expected.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    epoch3 = keras.models.clone_model(saved)
    epoch3.load_weights(out / "epoch_weights" / "epoch03.weights.h5")
    assert max(float(np.abs(a - b).max()) for a, b in zip(saved.get_weights(), epoch3.get_weights())) > 1e-6


def test_without_validation_or_kept_weights_the_epoch_files_go_with_the_checkpoints(warm_cache, tmp_path):
    out = tmp_path / "averaged"
    assert main(SMALL + ["--epochs", "2", "--average-from-epoch", "1", "--validation-fraction", "0",
                         "--output-dir", str(out)]) == 0
    metrics = read_json(out / "metrics.json")
    assert metrics["averaged_epochs"] == [1, 2] and metrics["validation_ua"] is None
    assert not (out / "epoch_weights").exists() and not (out / ".checkpoints").exists()


def test_the_default_trains_every_speaker_and_saves_the_mean_from_epoch_11(warm_cache, capsys, tmp_path):
    from training.config import paper_preset

    default, paper = config_from_args([]), paper_preset()
    assert (default.validation_fraction, default.average_from_epoch) == (0.0, 11)  # research log #52
    assert (paper.validation_fraction, paper.average_from_epoch) == (0.2, 0)  # the paper picks an epoch
    out = tmp_path / "default"
    assert main(SMALL_CORPUS + ["--batch-size", "8", "--quiet", "--epochs", "2", "--output-dir", str(out)]) == 0
    metrics = read_json(out / "metrics.json")
    assert metrics["validation_speakers"] == [] and metrics["validation_ua"] is None
    assert metrics["averaged_epochs"] == [2, 2]  # the window opens after the last epoch: the last epoch alone
    assert not (out / "epoch_weights").exists() and not (out / ".checkpoints").exists()
    bad = tmp_path / "bad"
    assert main(SMALL + ["--average-from-epoch", "-1", "--output-dir", str(bad)]) == 2
    assert "--average-from-epoch must be >= 0" in capsys.readouterr().err
    assert not bad.exists()


def test_rescoring_benchmarks_refuse_an_averaged_run(tmp_path):
    from benchmarks.common import require_selected_epoch

    require_selected_epoch(tmp_path, {"best_epoch": 3, "averaged_epochs": None})  # a selected epoch: fine
    with pytest.raises(SystemExit, match="mean of the weights of epochs 11-30"):
        require_selected_epoch(tmp_path, {"best_epoch": 3, "averaged_epochs": [11, 30]})


def test_the_export_report_names_an_averaged_model():
    from export.report import _training_summary

    config = {"epochs": 30, "variant": "mhsa", "batch_size": 32, "learning_rate": 0.001, "lr_schedule": "step",
              "weight_decay": 1e-6, "dropout": 0.0}
    averaged = _training_summary(config, {"validation_speakers": ["12", "16"], "best_epoch": 15,
                                          "averaged_epochs": [11, 30]})
    assert "mean of the weights of epochs 11-30" in averaged and "best epoch" not in averaged
    selected = _training_summary(config, {"validation_speakers": ["12", "16"], "best_epoch": 15})
    assert "(best epoch 15)" in selected
