"""Corpus readers (EmoDB, RAVDESS, folder, CSV), label maps, registry, bad layouts."""

from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from sercal_keras.data import labels as label_maps
from sercal_keras.data.corpus import Corpus, Utterance
from sercal_keras.data.registry import CORPORA, load_corpus
from sercal_keras.errors import ConfigError, CorpusLayoutError
from tests.conftest import requires_shared_data


def touch_wav(path, seconds=0.05):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(int(16000 * seconds), np.float32), 16000, subtype="PCM_16")
    return path


# ----------------------------------------------------------------- label maps


def test_label_maps_are_fixed_and_documented():
    assert label_maps.EMODB_LABELS == (
        "anger", "boredom", "disgust", "fear", "happiness", "sadness", "neutral",
    )  # fmt: skip
    assert label_maps.EMODB_CODES["W"] == "anger" and label_maps.EMODB_CODES["N"] == "neutral"
    assert label_maps.RAVDESS_CODES["01"] == "neutral" and label_maps.RAVDESS_CODES["08"] == "surprised"
    assert label_maps.IEMOCAP_LABELS == ("neutral", "happy", "sad", "angry")
    assert label_maps.SYNTHETIC_LABELS == label_maps.IEMOCAP_LABELS


def test_corpus_rejects_an_unknown_label_naming_it_and_the_file():
    utt = Utterance("x/a.wav", "joy", "s1", None, None, "a")
    with pytest.raises(CorpusLayoutError, match="'joy'.*x/a.wav"):
        Corpus("folder", ("neutral", "happy"), (utt,))


def test_corpus_label_ids_counts_subset():
    utts = tuple(
        Utterance(f"{i}.wav", lab, f"s{i % 2}", None, None, str(i))
        for i, lab in enumerate(["b", "a", "b", "b"])
    )
    corpus = Corpus("csv", ("a", "b"), utts)
    np.testing.assert_array_equal(corpus.label_ids, [1, 0, 1, 1])
    assert corpus.counts() == {"a": 1, "b": 3}
    assert corpus.speaker_ids == ("s0", "s1")
    assert [u.utterance_id for u in corpus.subset([3, 1]).utterances] == ["3", "1"]


# ----------------------------------------------------------------------- EmoDB


def test_emodb_reader_on_a_fake_tree(tmp_path):
    for name in ["03a01Wa", "08b02Nb", "16a05Tc", "11b09Fd"]:
        touch_wav(tmp_path / "wav" / f"{name}.wav")
    corpus = load_corpus("emodb", tmp_path)
    assert [(u.speaker, u.label, u.gender) for u in corpus.utterances] == [
        ("03", "anger", "male"),
        ("08", "neutral", "female"),
        ("11", "happiness", "male"),
        ("16", "sadness", "female"),
    ]
    assert corpus.labels == label_maps.EMODB_LABELS
    assert load_corpus("emodb", tmp_path / "wav").utterances == corpus.utterances


def test_emodb_unknown_emotion_letter_names_label_and_file(tmp_path):
    path = touch_wav(tmp_path / "03a01Xa.wav")
    with pytest.raises(CorpusLayoutError, match="'X'") as info:
        load_corpus("emodb", tmp_path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("name", ["readme.wav", "3a01Wa.wav"])
def test_emodb_wrong_file_name_is_a_layout_error(tmp_path, name):
    touch_wav(tmp_path / name)
    with pytest.raises(CorpusLayoutError, match="SSTTTEv"):
        load_corpus("emodb", tmp_path)


# --------------------------------------------------------------------- RAVDESS


def test_ravdess_reader_on_a_fake_tree(tmp_path):
    names = {
        "Actor_01": ["03-01-01-01-01-01-01", "03-01-05-02-01-01-01", "03-02-03-01-01-01-01"],
        "Actor_12": ["03-01-08-01-02-02-12"],
    }
    for actor, stems in names.items():
        for stem in stems:
            touch_wav(tmp_path / actor / f"{stem}.wav")
    corpus = load_corpus("ravdess", tmp_path)
    # The song file (vocal channel 02) is skipped.
    assert [(u.speaker, u.label, u.gender) for u in corpus.utterances] == [
        ("01", "neutral", "male"),
        ("01", "angry", "male"),
        ("12", "surprised", "female"),
    ]


def test_ravdess_unknown_emotion_code_names_label_and_file(tmp_path):
    path = touch_wav(tmp_path / "Actor_01" / "03-01-09-01-01-01-01.wav")
    with pytest.raises(CorpusLayoutError, match="'09'") as info:
        load_corpus("ravdess", tmp_path)
    assert str(path) in str(info.value)


# ----------------------------------------------------------------- folder, CSV


def test_folder_reader_with_speaker_regex_and_label_order(tmp_path):
    for cls, files in {"sad": ["1001_a", "1002_b"], "angry": ["1001_c"]}.items():
        for f in files:
            touch_wav(tmp_path / cls / f"{f}.wav")
    (tmp_path / "angry" / "notes.txt").write_text("ignored")
    corpus = load_corpus("folder", tmp_path, speaker_regex=r"^(\d{4})_")
    assert corpus.labels == ("angry", "sad")
    assert [(u.label, u.speaker) for u in corpus.utterances] == [
        ("angry", "1001"),
        ("sad", "1001"),
        ("sad", "1002"),
    ]
    ordered = load_corpus("folder", tmp_path, labels=["sad", "angry"])
    np.testing.assert_array_equal(ordered.label_ids, [1, 0, 0])
    assert ordered.utterances[0].speaker is None


def test_folder_unknown_label_names_label_and_file(tmp_path):
    touch_wav(tmp_path / "sad" / "a.wav")
    touch_wav(tmp_path / "bored" / "b.wav")
    with pytest.raises(CorpusLayoutError, match="'bored'.*b.wav"):
        load_corpus("folder", tmp_path, labels=["sad"])


def test_folder_speaker_regex_must_match(tmp_path):
    touch_wav(tmp_path / "sad" / "nospeaker.wav")
    with pytest.raises(CorpusLayoutError, match="nospeaker.wav"):
        load_corpus("folder", tmp_path, speaker_regex=r"^(\d+)_")


def test_csv_manifest(tmp_path):
    touch_wav(tmp_path / "audio" / "a.wav")
    touch_wav(tmp_path / "audio" / "b.wav")
    (tmp_path / "manifest.csv").write_text(
        "path,label,speaker,gender\naudio/a.wav,happy,spk1,female\naudio/b.wav,sad,spk2,\n"
    )
    corpus = load_corpus("csv", tmp_path)  # a folder holding manifest.csv
    assert corpus.labels == ("happy", "sad")
    assert corpus.utterances[0].path == tmp_path / "audio" / "a.wav"
    assert [(u.speaker, u.gender) for u in corpus.utterances] == [("spk1", "female"), ("spk2", None)]
    minimal = tmp_path / "min.csv"
    minimal.write_text(f"path,label\n{tmp_path / 'audio' / 'b.wav'},sad\n")
    assert load_corpus("csv", minimal).utterances[0].speaker is None


@pytest.mark.parametrize(
    "content, match",
    [
        ("file,emotion\na.wav,sad\n", "path/label columns"),
        ("path,label\na.wav,furious\n", "'furious'.*line 2"),
        ("path,label\nmissing.wav,sad\n", "not found"),
    ],
)
def test_csv_errors_name_the_problem(tmp_path, content, match):
    touch_wav(tmp_path / "a.wav")
    (tmp_path / "m.csv").write_text(content)
    with pytest.raises(CorpusLayoutError, match=match):
        load_corpus("csv", tmp_path / "m.csv", labels=["sad"])


# -------------------------------------------------------------------- registry


@pytest.mark.parametrize("name", ["emodb", "ravdess", "iemocap", "folder", "csv"])
def test_missing_directory_is_a_layout_error_naming_it(tmp_path, name):
    missing = tmp_path / "does_not_exist"
    with pytest.raises(CorpusLayoutError, match="does_not_exist"):
        load_corpus(name, missing)


@pytest.mark.parametrize("name", ["emodb", "ravdess", "iemocap", "folder"])
def test_empty_directory_is_a_layout_error(tmp_path, name):
    with pytest.raises(CorpusLayoutError, match="Expected layout"):
        load_corpus(name, tmp_path)


def test_registry_errors(tmp_path, monkeypatch):
    assert set(CORPORA) == {"synthetic", "emodb", "ravdess", "iemocap", "folder", "csv"}
    with pytest.raises(ConfigError, match="Unknown corpus 'timit'"):
        load_corpus("timit")
    monkeypatch.delenv("SERCAL_DATA_DIR", raising=False)
    with pytest.raises(ConfigError, match="needs a data_dir"):
        load_corpus("emodb")
    touch_wav(tmp_path / "wav" / "03a01Wa.wav")
    with pytest.raises(ConfigError, match="Bad option for corpus 'emodb'"):
        load_corpus("emodb", tmp_path, subset="all")


def test_registry_finds_corpora_under_sercal_data_dir(tmp_path, monkeypatch):
    touch_wav(tmp_path / "emodb" / "wav" / "03a01Wa.wav")
    monkeypatch.setenv("SERCAL_DATA_DIR", str(tmp_path))
    assert len(load_corpus("emodb")) == 1


# ------------------------------------------------------------------ real data


@pytest.mark.slow
@requires_shared_data
def test_emodb_reproduces_the_published_counts(shared_data):
    corpus = load_corpus("emodb", shared_data / "emodb")
    assert len(corpus) == 535
    assert corpus.counts() == {
        "anger": 127, "boredom": 81, "disgust": 46, "fear": 69,
        "happiness": 71, "sadness": 62, "neutral": 79,
    }  # fmt: skip
    per_speaker = Counter(corpus.speakers)
    assert per_speaker == {
        "03": 49, "08": 58, "09": 43, "10": 38, "11": 55,
        "12": 35, "13": 61, "14": 69, "15": 56, "16": 71,
    }  # fmt: skip
    males = {u.speaker for u in corpus.utterances if u.gender == "male"}
    assert males == {"03", "10", "11", "12", "15"}


@pytest.mark.slow
@requires_shared_data
def test_ravdess_reproduces_the_published_counts(shared_data):
    corpus = load_corpus("ravdess", shared_data / "ravdess16k")
    assert len(corpus) == 960
    counts = corpus.counts()
    assert counts.pop("neutral") == 64 and set(counts.values()) == {128}
    assert Counter(corpus.speakers) == {f"{a:02d}": 60 for a in range(1, 17)}
    assert all((int(u.speaker) % 2 == 1) == (u.gender == "male") for u in corpus.utterances)
    originals = load_corpus("ravdess", shared_data / "ravdess_original_sample")
    assert len(originals) == 6 and set(originals.speakers) == {"01"}
