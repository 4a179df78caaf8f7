import numpy as np

from benchmarks.linear_probe import probe_ua, utterance_statistics
from sercal_keras.data import SegmentSet
from sercal_keras.data.splits import Fold


def test_utterance_statistics_are_mean_and_std_over_segments_and_frames():
    features = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    stats = utterance_statistics(SegmentSet(features, np.zeros(2, np.int64), np.array([1, 1])), 2)
    assert stats.shape == (2, 6) and not stats[0].any()  # utterance 0 has no segments
    np.testing.assert_allclose(stats[1, :3], features.mean(axis=(0, 2)))
    np.testing.assert_allclose(stats[1, 3:], features.std(axis=(0, 2)))


def test_means_only_removes_each_speakers_mean_and_keeps_its_spread():
    from sercal_keras.data import standardize_by_speaker

    rng = np.random.default_rng(0)
    features = (rng.normal(size=(4, 2, 3)) * [[[1.0]], [[1.0]], [[3.0]], [[3.0]]] + [[[0.0]], [[0.0]], [[5.0]], [[5.0]]])
    out = standardize_by_speaker(SegmentSet(features.astype(np.float32), np.zeros(4, np.int64), np.arange(4)),
                                 ["a", "a", "b", "b"], means_only=True)
    np.testing.assert_allclose(out.features[2:].mean(axis=(0, 2)), 0.0, atol=1e-5)
    shift = out.features[2:] - features[2:]  # a pure shift per coefficient: nothing is rescaled
    np.testing.assert_allclose(shift, np.broadcast_to(shift[:1, :, :1], shift.shape), atol=1e-5)


def test_probe_separates_separable_classes_and_not_noise():
    rng = np.random.default_rng(0)
    labels = np.arange(40) % 2
    separable = rng.normal(size=(40, 4)) + 4 * labels[:, None]
    folds = [Fold("a", np.arange(20), np.arange(20, 40), True, ()), Fold("b", np.arange(20, 40), np.arange(20), True, ())]
    assert probe_ua(separable, labels, folds) == [1.0, 1.0]
    assert np.mean(probe_ua(rng.normal(size=(40, 4)), labels, folds)) < 0.8


def test_main_screens_the_feature_config_it_is_given(tmp_path, monkeypatch):
    import json

    from benchmarks.linear_probe import main

    monkeypatch.setenv("SERCAL_CACHE_DIR", str(tmp_path / "cache"))
    name = tmp_path / "probe"
    assert main(["--corpus", "synthetic", "--data-dir", str(tmp_path / "cache"), "--protocol", "speaker_folds",
                 "--features", "n_mfcc=13", "n_fft=512", "--name", str(name)]) == 0
    payload = json.loads(name.with_suffix(".json").read_text())
    assert payload["features"]["n_mfcc"] == 13 and payload["features"]["n_fft"] == 512
    assert len(payload["rows"]) == 3 and all(0.0 <= row["ua"] <= 1.0 for row in payload["rows"])
    assert "13 MFCC" in name.with_suffix(".md").read_text()
