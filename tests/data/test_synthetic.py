"""The synthetic corpus: deterministic, cached, and learnable across speakers."""

import time

import numpy as np
import pytest
import soundfile as sf

from sercal_keras.data.features import extract_segments
from sercal_keras.data.registry import load_corpus
from sercal_keras.data.splits import make_folds
from sercal_keras.data.synthetic import load_synthetic


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    start = time.perf_counter()
    corpus = load_corpus("synthetic", root)
    return corpus, time.perf_counter() - start, root


def test_default_corpus_shape(generated):
    corpus, seconds, root = generated
    assert len(corpus) == 240
    assert corpus.labels == ("neutral", "happy", "sad", "angry")
    assert corpus.counts() == {"neutral": 60, "happy": 60, "sad": 60, "angry": 60}
    assert corpus.speaker_ids == ("s01", "s02", "s03", "s04", "s05", "s06")
    assert {u.gender for u in corpus.utterances if u.speaker in ("s01", "s03", "s05")} == {"male"}
    assert {u.gender for u in corpus.utterances if u.speaker in ("s02", "s04", "s06")} == {"female"}
    folder = corpus.utterances[0].path.parent
    assert folder.parent == root / "synthetic" and len(folder.name) == 12  # version hash
    durations = []
    for utt in corpus.utterances:
        info = sf.info(utt.path)
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        durations.append(info.duration)
    assert 1.5 <= min(durations) and max(durations) <= 3.5
    assert seconds < 30  # "a few seconds" on a free core; generous for a shared CI box


def test_class_acoustics_follow_the_profiles(generated):
    corpus, _, _ = generated
    rms = {label: [] for label in corpus.labels}
    for utt in corpus.utterances:
        x, _ = sf.read(utt.path, dtype="float32")
        rms[utt.label].append(np.sqrt(np.mean(x**2)))
    level = {k: 20 * np.log10(np.mean(v)) for k, v in rms.items()}
    assert level["angry"] > level["happy"] > level["neutral"] > level["sad"]


def test_generation_is_deterministic_and_seeded(tmp_path):
    a = load_synthetic(tmp_path / "a", num_speakers=2, utterances_per_class=1)
    b = load_synthetic(tmp_path / "b", num_speakers=2, utterances_per_class=1)
    c = load_synthetic(tmp_path / "c", num_speakers=2, utterances_per_class=1, seed=1)
    assert len(a) == 8
    for ua, ub, uc in zip(a.utterances, b.utterances, c.utterances):
        assert ua.path.read_bytes() == ub.path.read_bytes()
        assert ua.path.read_bytes() != uc.path.read_bytes()
    assert a.utterances[0].path.parent.name != c.utterances[0].path.parent.name


def test_only_missing_files_are_regenerated(tmp_path):
    corpus = load_synthetic(tmp_path, num_speakers=1, utterances_per_class=2)
    victim = corpus.utterances[3].path
    original = victim.read_bytes()
    stamps = {u.path: u.path.stat().st_mtime_ns for u in corpus.utterances}
    victim.unlink()
    time.sleep(0.01)
    again = load_synthetic(tmp_path, num_speakers=1, utterances_per_class=2)
    assert victim.read_bytes() == original
    for utt in again.utterances:
        if utt.path != victim:
            assert utt.path.stat().st_mtime_ns == stamps[utt.path]
    assert not list(victim.parent.glob(".*tmp*"))  # atomic writes leave nothing behind


def test_cache_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SERCAL_CACHE_DIR", str(tmp_path / "env"))
    corpus = load_corpus("synthetic", num_speakers=1, utterances_per_class=1)
    assert (tmp_path / "env" / "synthetic") in corpus.utterances[0].path.parents


def _softmax_regression(x, y, num_classes, steps=400, lr=0.5, l2=1e-3):
    """Plain numpy multinomial logistic regression (full-batch gradient descent)."""
    w = np.zeros((x.shape[1], num_classes))
    b = np.zeros(num_classes)
    onehot = np.eye(num_classes)[y]
    for _ in range(steps):
        z = x @ w + b
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        grad = p - onehot
        w -= lr * (x.T @ grad / len(x) + l2 * w)
        b -= lr * grad.mean(axis=0)
    return w, b


def test_a_model_learns_it_speaker_independently(generated):
    """Mean MFCC per utterance + logistic regression, trained on 4 speakers,
    tested on the 2 held out (3 gender-balanced folds): well above the 25 %
    chance level of 4 classes."""
    corpus, _, root = generated
    segments = extract_segments(corpus, training=True, cache_dir=root)
    ids = np.arange(len(corpus))
    x = np.stack([segments.features[segments.utterance_index == i].mean(axis=(0, 2)) for i in ids])
    y = corpus.label_ids
    accuracies = []
    for fold in make_folds(corpus, "speaker_folds", num_folds=3, seed=0):
        mean, std = x[fold.train].mean(0), x[fold.train].std(0) + 1e-8
        w, b = _softmax_regression((x[fold.train] - mean) / std, y[fold.train], 4)
        predicted = np.argmax(((x[fold.test] - mean) / std) @ w + b, axis=1)
        accuracies.append(np.mean(predicted == y[fold.test]))
    print("held-out speaker accuracy per fold:", np.round(accuracies, 3))
    assert min(accuracies) >= 0.5, accuracies
    assert np.mean(accuracies) >= 0.6, accuracies
