"""Feature extraction, its on-disk cache, bad files, normalisation, tf.data."""

import os
import warnings

import keras
import numpy as np
import pytest
import soundfile as sf

from sercal_keras.audio import frontend
from sercal_keras.audio.frontend import FeatureConfig
from sercal_keras.data import features as features_module
from sercal_keras.data.corpus import Corpus, Utterance
from sercal_keras.data.features import SegmentSet, extract_segments, fit_normalization
from sercal_keras.data.pipeline import batches_per_epoch, make_dataset
from sercal_keras.errors import ConfigError
from tests.audio.audio_test_utils import speech_like


def write_corpus(root, seconds=(0.1, 2.0, 3.3, 4.0), labels=("a", "b")):
    utts = []
    for i, s in enumerate(seconds):
        path = root / f"u{i}.wav"
        sf.write(path, speech_like(s, seed=i), 16000, subtype="PCM_16")
        utts.append(Utterance(path, labels[i % len(labels)], f"s{i % 2}", None, None, f"u{i}"))
    return Corpus("csv", labels, tuple(utts))


def reference_segments(corpus, indices, training):
    """Straight-line reference: soundfile → segment → numpy mfcc, per file."""
    config = FeatureConfig()
    hop = config.hop_samples(training)
    feats, labels, owners = [], [], []
    for i in indices:
        x, _ = sf.read(corpus.utterances[i].path, dtype="float32")
        seg = frontend.segment_waveform(x, 32000, hop)
        feats.append(frontend.mfcc(seg))
        labels += [corpus.label_ids[i]] * len(seg)
        owners += [i] * len(seg)
    return np.concatenate(feats), np.array(labels), np.array(owners)


@pytest.mark.parametrize("training", [True, False])
def test_extract_segments_matches_the_straight_path(tmp_path, training):
    corpus = write_corpus(tmp_path)
    result = extract_segments(corpus, [3, 0, 2], training=training, cache_dir=tmp_path / "c")
    feats, labels, owners = reference_segments(corpus, [3, 0, 2], training)
    assert result.features.shape[1:] == (26, 63) and result.features.dtype == np.float32
    np.testing.assert_array_equal(result.features, feats)
    np.testing.assert_array_equal(result.labels, labels)
    np.testing.assert_array_equal(result.utterance_index, owners)
    assert result.skipped == ()
    # The 0.1 s clip is one padded segment, never dropped.
    assert np.sum(result.utterance_index == 0) == 1


def test_cache_is_used_and_invalidated(tmp_path, monkeypatch):
    corpus = write_corpus(tmp_path)
    cache = tmp_path / "cache"
    first = extract_segments(corpus, training=True, cache_dir=cache)
    files = list((cache / "features").glob("*.npz"))
    assert len(files) == 1

    calls = []
    real = features_module.load_audio
    monkeypatch.setattr(features_module, "load_audio", lambda *a, **k: calls.append(a) or real(*a, **k))
    again = extract_segments(corpus, training=True, cache_dir=cache)
    assert calls == []  # served from disk
    np.testing.assert_array_equal(again.features, first.features)

    extract_segments(corpus, training=False, cache_dir=cache)  # other hop → other key
    assert len(calls) == len(corpus)
    extract_segments(corpus, training=True, config=FeatureConfig(top_db=60.0), cache_dir=cache)
    assert len(calls) == 2 * len(corpus)

    # A changed file (size and mtime) invalidates the cache.
    path = corpus.utterances[1].path
    sf.write(path, speech_like(2.5, seed=9), 16000, subtype="PCM_16")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    calls.clear()
    changed = extract_segments(corpus, training=True, cache_dir=cache)
    assert len(calls) == len(corpus)
    assert not np.array_equal(changed.features, first.features)
    assert len(list((cache / "features").glob("*.npz"))) == 4
    assert not list((cache / "features").glob(".*"))  # no temporary files left

    calls.clear()
    extract_segments(corpus, training=True, cache_dir=cache, cache=False)
    assert len(calls) == len(corpus)


def _speed_125(x):
    from sercal_keras.audio.speed_perturbation import change_speed

    return change_speed(x, 1.25)


def _noise_10db(x):
    from sercal_keras.audio.noise import add_noise

    return add_noise(x, 10.0, seed=3)  # seeded by the utterance's corpus index


@pytest.mark.parametrize(
    "options, perturb, num_segments",
    [
        ({"speed": 1.25}, _speed_125, 2),  # 4 s → 3.2 s at 1.25x: 2 segments, not 3
        ({"noise_snr_db": 10.0}, _noise_10db, 3),
    ],
    ids=["speed", "noise"],
)
def test_perturbed_features_are_their_own_cache_entry_and_the_same_each_time(tmp_path, options, perturb,
                                                                              num_segments):
    corpus = write_corpus(tmp_path)
    cache = tmp_path / "cache"
    plain = extract_segments(corpus, [3], training=True, cache_dir=cache)
    perturbed = extract_segments(corpus, [3], training=True, cache_dir=cache, **options)
    assert len(list((cache / "features").glob("*.npz"))) == 2
    x, _ = sf.read(corpus.utterances[3].path, dtype="float32")
    expected = frontend.mfcc(frontend.segment_waveform(perturb(x), 32000, 16000))
    np.testing.assert_allclose(perturbed.features, expected, atol=1e-4)
    assert len(plain) == 3 and len(perturbed) == num_segments and set(perturbed.utterance_index) == {3}
    assert not np.allclose(perturbed.features[:2], plain.features[:2])
    from_cache = extract_segments(corpus, [3], training=True, cache_dir=cache, **options)
    recomputed = extract_segments(corpus, [3], training=True, cache_dir=cache, cache=False, **options)
    np.testing.assert_array_equal(from_cache.features, perturbed.features)
    np.testing.assert_array_equal(recomputed.features, perturbed.features)


def test_bad_files_are_reported_skipped_and_kept_out_of_the_cache(tmp_path):
    corpus = write_corpus(tmp_path)
    bad = tmp_path / "broken.wav"
    bad.write_text("not audio")
    nan = tmp_path / "nan.wav"
    sf.write(nan, np.full(16000, np.nan, np.float32), 16000, subtype="FLOAT")
    extra = (Utterance(bad, "a", "s0", None, None, "broken"), Utterance(nan, "b", "s1", None, None, "nan"))
    corpus = Corpus("csv", corpus.labels, corpus.utterances + extra)
    cache = tmp_path / "cache"
    with pytest.warns(UserWarning) as record:
        result = extract_segments(corpus, training=True, cache_dir=cache)
    messages = [str(w.message) for w in record]
    assert any("broken.wav" in m for m in messages) and any("NaN/Inf" in m for m in messages)
    assert [p for p, _ in result.skipped] == [str(bad), str(nan)]
    assert not np.isin([4, 5], result.utterance_index).any()
    good = extract_segments(corpus, [0, 1, 2, 3], training=True, cache=False)
    np.testing.assert_array_equal(result.features, good.features)
    # Served from the cache, the skip list comes back and is reported again.
    with pytest.warns(UserWarning) as record:
        cached = extract_segments(corpus, training=True, cache_dir=cache)
    assert sorted(str(w.message).split(":")[0] for w in record) == [f"Skipped {bad}", f"Skipped {nan}"]
    assert cached.skipped == result.skipped
    # Fixing the file changes its size/mtime, so it is picked up next time.
    sf.write(bad, speech_like(1.0), 16000, subtype="PCM_16")
    with pytest.warns(UserWarning, match="nan.wav"):
        fixed = extract_segments(corpus, training=True, cache_dir=cache)
    assert [p for p, _ in fixed.skipped] == [str(nan)]
    assert 4 in fixed.utterance_index


def test_all_silent_file_gives_finite_features(tmp_path):
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(40000, np.float32), 16000, subtype="PCM_16")
    corpus = Corpus("csv", ("a",), (Utterance(silent, "a", "s", None, None, "silent"),))
    result = extract_segments(corpus, training=False, cache=False)
    assert np.all(np.isfinite(result.features))
    np.testing.assert_allclose(result.features[:, 0], -100 * np.sqrt(128), rtol=1e-5)


@pytest.mark.slow
def test_ten_minute_file_through_extract_segments(tmp_path):
    """Works; memory ~ 40 MB of waveform + 10 MB of features (documented)."""
    path = tmp_path / "long.wav"
    sf.write(path, np.tile(speech_like(2.0), 300), 16000, subtype="PCM_16")
    corpus = Corpus("csv", ("a",), (Utterance(path, "a", "s", None, None, "long"),))
    result = extract_segments(corpus, training=False, cache=False)
    assert result.features.shape == (1 + (600 * 16000 - 32000) // 6400, 26, 63)
    assert np.all(np.isfinite(result.features))


def test_corrupt_cache_file_is_recomputed(tmp_path):
    corpus = write_corpus(tmp_path, seconds=(1.0,))
    cache = tmp_path / "cache"
    first = extract_segments(corpus, cache_dir=cache)
    (path,) = (cache / "features").glob("*.npz")
    path.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable feature cache"):
        again = extract_segments(corpus, cache_dir=cache)
    np.testing.assert_array_equal(again.features, first.features)


# ---------------------------------------------------------------- normalisation


def test_fit_normalization_matches_numpy_and_keras_adapt():
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(50, 26, 63)).astype(np.float32)
    x *= np.arange(1, 27, dtype=np.float32)[None, :, None]
    mean, variance = fit_normalization(x)
    assert mean.shape == variance.shape == (26,) and mean.dtype == np.float32
    flat = x.transpose(1, 0, 2).reshape(26, -1).astype(np.float64)
    np.testing.assert_allclose(mean, flat.mean(1), rtol=1e-5)
    np.testing.assert_allclose(variance, flat.var(1), rtol=1e-5)
    layer = keras.layers.Normalization(axis=1)
    layer.adapt(x)
    np.testing.assert_allclose(np.ravel(layer.mean), mean, rtol=1e-4)
    np.testing.assert_allclose(np.ravel(layer.variance), variance, rtol=1e-4)
    fixed = keras.layers.Normalization(axis=1, mean=mean, variance=variance)
    out = keras.ops.convert_to_numpy(fixed(x))
    np.testing.assert_allclose(out.mean(axis=(0, 2)), 0, atol=1e-4)
    np.testing.assert_allclose(out.std(axis=(0, 2)), 1, atol=1e-3)


def test_fit_normalization_rejects_empty():
    with pytest.raises(ConfigError, match="N >= 1"):
        fit_normalization(np.zeros((0, 26, 63)))


# --------------------------------------------------------------------- tf.data


def _toy_set(n=70):
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(n, 26, 63)).astype(np.float32)
    feats[:, 0, 0] = np.arange(n)  # identifies each segment
    return SegmentSet(feats, np.arange(n) % 4, np.arange(n))


def _order(ds):
    return [int(v) for x, _ in ds for v in x[:, 0, 0].numpy()]


def test_make_dataset_shapes_and_types():
    ds = make_dataset(_toy_set(), batch_size=32)
    batches = list(ds)
    assert [len(y) for _, y in batches] == [32, 32, 6]
    x, y = batches[0]
    assert x.dtype.name == "float32" and tuple(x.shape) == (32, 26, 63)
    assert y.dtype.name == "int32"
    assert _order(ds) == list(range(70))  # no shuffle: order kept
    assert [len(y) for _, y in make_dataset(_toy_set(), 32, drop_remainder=True)] == [32, 32]


def test_make_dataset_shuffle_is_deterministic_with_a_seed():
    a = _order(make_dataset(_toy_set(), 16, shuffle=True, seed=1))
    b = _order(make_dataset(_toy_set(), 16, shuffle=True, seed=1))
    c = _order(make_dataset(_toy_set(), 16, shuffle=True, seed=2))
    assert a == b and a != c
    assert sorted(a) == list(range(70)) and a != list(range(70))
    two = _order(make_dataset(_toy_set(), 16, shuffle=True, seed=1, epochs=2))
    assert two[:70] == a and two[70:] != a and sorted(two[70:]) == list(range(70))  # a new order every epoch
    assert _order(make_dataset(_toy_set(), 16, shuffle=True, seed=1, epochs=2, first_epoch=1)) == two[70:]  # resumed


def test_make_dataset_serves_soft_targets_with_their_segments():
    targets = np.random.default_rng(1).dirichlet(np.ones(4), size=70).astype(np.float32)
    for x, y in make_dataset(_toy_set(), 16, shuffle=True, seed=3, num_classes=4, targets=targets):
        np.testing.assert_array_equal(y.numpy(), targets[x[:, 0, 0].numpy().astype(int)])  # each row with its segment
    with pytest.raises(ConfigError, match="targets"):
        make_dataset(_toy_set(), 16, targets=targets)  # soft targets need num_classes
    with pytest.raises(ConfigError, match="targets"):
        make_dataset(_toy_set(), 16, num_classes=4, targets=targets[:10])


def test_make_dataset_holds_the_epochs_asked_for():
    ds = make_dataset(_toy_set(), 32, epochs=3, first_epoch=1)
    assert [len(y) for _, y in ds] == [32, 32, 6] * 2
    assert batches_per_epoch(70, 32) == 3 and batches_per_epoch(70, 32, drop_remainder=True) == 2
    assert len(list(make_dataset(_toy_set(), 32, shuffle=True, epochs=2, first_epoch=2))) == 0  # nothing left
    with pytest.raises(ConfigError, match="first_epoch"):
        make_dataset(_toy_set(), 32, epochs=2, first_epoch=3)


def test_make_dataset_feeds_a_keras_model():
    inputs = keras.Input((26, 63))
    outputs = keras.layers.Dense(4, activation="softmax")(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, outputs)
    model.compile("adam", "sparse_categorical_crossentropy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        history = model.fit(make_dataset(_toy_set(), 32, shuffle=True), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
