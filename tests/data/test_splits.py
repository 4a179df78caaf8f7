"""Splits: presets, speaker-disjointness, gender balance, validation carving."""

from collections import Counter

import numpy as np
import pytest

from sercal_keras.data.corpus import Corpus, Utterance
from sercal_keras.data.splits import make_folds, validation_split
from sercal_keras.errors import ConfigError

EMODB_MALES = {"03", "10", "11", "12", "15"}


def fake_corpus(name, speakers, per_speaker=6, labels=("a", "b", "c"), gender=None, sessions=None):
    utts = []
    for s in speakers:
        g = gender(s) if gender else None
        for k in range(per_speaker):
            session = sessions(s) if sessions else None
            utts.append(Utterance(f"{s}_{k}.wav", labels[k % len(labels)], s, g, session, f"{s}_{k}"))
    return Corpus(name, labels, tuple(utts))


def emodb_like():
    speakers = ["03", "08", "09", "10", "11", "12", "13", "14", "15", "16"]
    return fake_corpus("emodb", speakers, gender=lambda s: "male" if s in EMODB_MALES else "female")


def ravdess_like(num_actors):
    actors = [f"{a:02d}" for a in range(1, num_actors + 1)]
    return fake_corpus("ravdess", actors, gender=lambda s: "male" if int(s) % 2 else "female")


def assert_partition_and_disjoint(corpus, folds):
    tests = np.concatenate([f.test for f in folds])
    assert sorted(tests) == list(range(len(corpus)))  # every utterance tested once
    for fold in folds:
        assert not set(fold.train) & set(fold.test)
        assert len(fold.train) + len(fold.test) == len(corpus)
        train_speakers = {corpus.speakers[i] for i in fold.train}
        test_speakers = {corpus.speakers[i] for i in fold.test}
        assert fold.speaker_independent
        assert not train_speakers & test_speakers
        assert set(fold.test_speakers) == test_speakers


def test_emodb_preset_speaker_pairs():
    corpus = emodb_like()
    folds = make_folds(corpus)
    assert [f.test_speakers for f in folds] == [
        ("03", "08"), ("09", "10"), ("11", "13"), ("12", "14"), ("15", "16"),
    ]  # fmt: skip
    assert [f.name for f in folds][0] == "speakers-03+08"
    assert_partition_and_disjoint(corpus, folds)


@pytest.mark.parametrize("num_actors, num_folds", [(16, 4), (24, 6)])
def test_ravdess_presets(num_actors, num_folds):
    corpus = ravdess_like(num_actors)
    folds = make_folds(corpus, "speaker_folds")
    assert len(folds) == num_folds
    assert folds[0].test_speakers == ("01", "02", "03", "04")
    assert folds[-1].test_speakers[-1] == f"{num_actors:02d}"
    assert_partition_and_disjoint(corpus, folds)


@pytest.mark.parametrize("num_folds", [2, 3, 5])
def test_generic_speaker_folds_are_disjoint_and_gender_balanced(num_folds):
    corpus = ravdess_like(10)  # no preset for 10 actors: generic folds
    folds = make_folds(corpus, "speaker_folds", num_folds=num_folds, seed=3)
    assert len(folds) == num_folds
    assert_partition_and_disjoint(corpus, folds)
    for fold in folds:
        genders = Counter(int(s) % 2 for s in fold.test_speakers)
        assert abs(genders[0] - genders[1]) <= 1


def test_generic_folds_depend_on_seed_only():
    corpus = ravdess_like(10)
    a = make_folds(corpus, num_folds=5, seed=1)
    b = make_folds(corpus, num_folds=5, seed=1)
    c = make_folds(corpus, num_folds=5, seed=2)
    assert [f.test_speakers for f in a] == [f.test_speakers for f in b]
    assert [f.test_speakers for f in a] != [f.test_speakers for f in c]


def test_explicit_num_folds_overrides_the_preset():
    corpus = emodb_like()
    folds = make_folds(corpus, num_folds=2)
    assert len(folds) == 2
    assert_partition_and_disjoint(corpus, folds)


def test_loso():
    corpus = emodb_like()
    folds = make_folds(corpus, "loso")
    assert [f.name for f in folds] == [f"loso-{s}" for s in corpus.speaker_ids]
    assert_partition_and_disjoint(corpus, folds)


def test_session_folds_need_sessions():
    with pytest.raises(ConfigError, match="needs sessions"):
        make_folds(emodb_like(), "session")
    corpus = fake_corpus("csv", ["a", "b", "c", "d"], sessions=lambda s: "S1" if s in "ab" else "S2")
    folds = make_folds(corpus, "session")
    assert [f.name for f in folds] == ["session-S1", "session-S2"]
    assert_partition_and_disjoint(corpus, folds)


def test_random_folds_are_marked_speaker_dependent_and_stratified():
    corpus = emodb_like()
    folds = make_folds(corpus, "random", num_folds=5, seed=0)
    assert all(not f.speaker_independent for f in folds)
    assert all(f.name.startswith("speaker-dependent-") for f in folds)
    tests = np.concatenate([f.test for f in folds])
    assert sorted(tests) == list(range(len(corpus)))
    for fold in folds:  # 20 of each class; 4 per class in each fold
        assert set(Counter(corpus.label_ids[fold.test]).values()) == {4}
    # Speakers overlap, which is why the flag exists.
    assert {corpus.speakers[i] for i in folds[0].train} & {corpus.speakers[i] for i in folds[0].test}


def test_speaker_protocols_need_speakers():
    utts = tuple(Utterance(f"{k}.wav", "ab"[k % 2], None, None, None, str(k)) for k in range(8))
    corpus = Corpus("folder", ("a", "b"), utts)
    with pytest.raises(ConfigError, match="protocol='random'"):
        make_folds(corpus, "loso")
    assert len(make_folds(corpus, "random", num_folds=2)) == 2


@pytest.mark.parametrize("protocol, kwargs", [("kfold", {}), ("speaker_folds", {"num_folds": 11})])
def test_bad_protocol_arguments(protocol, kwargs):
    with pytest.raises(ConfigError):
        make_folds(emodb_like(), protocol, **kwargs)


# ------------------------------------------------------------------ validation


def test_validation_split_holds_out_whole_training_speakers():
    corpus = emodb_like()
    for fold in make_folds(corpus):
        train, val = validation_split(corpus, fold.train, fraction=0.25, seed=0)
        assert sorted(np.concatenate([train, val])) == sorted(fold.train)
        train_speakers = {corpus.speakers[i] for i in train}
        val_speakers = {corpus.speakers[i] for i in val}
        test_speakers = {corpus.speakers[i] for i in fold.test}
        assert len(val_speakers) == 2  # round(0.25 * 8)
        assert not train_speakers & val_speakers
        assert not val_speakers & test_speakers
        genders = {corpus.utterances[i].gender for i in val}
        assert genders == {"male", "female"}  # alternating genders


def test_validation_split_is_deterministic_by_seed():
    corpus = emodb_like()
    train = make_folds(corpus)[0].train
    a = validation_split(corpus, train, seed=5)[1]
    b = validation_split(corpus, train, seed=5)[1]
    np.testing.assert_array_equal(a, b)
    others = [validation_split(corpus, train, seed=s)[1] for s in range(6)]
    assert len({tuple(o) for o in others}) > 1


def test_speaker_dependent_validation_split_is_stratified():
    corpus = emodb_like()
    train = np.arange(len(corpus))
    train_part, val = validation_split(corpus, train, fraction=0.2, seed=0, speaker_independent=False)
    assert len(val) == 12 and set(Counter(corpus.label_ids[val]).values()) == {4}
    assert not set(train_part) & set(val)


def test_validation_split_needs_two_training_speakers():
    corpus = emodb_like()
    only_one = [i for i, s in enumerate(corpus.speakers) if s == "03"]
    with pytest.raises(ConfigError, match=">= 2 training speakers"):
        validation_split(corpus, only_one)
    with pytest.raises(ConfigError, match="fraction"):
        validation_split(corpus, np.arange(10), fraction=1.5)
