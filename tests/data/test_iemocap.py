"""IEMOCAP reader on a tiny fake tree with the release's layout and annotation lines."""

import numpy as np
import pytest
import soundfile as sf

from sercal_keras.data.registry import load_corpus
from sercal_keras.data.splits import make_folds
from sercal_keras.errors import ConfigError, CorpusLayoutError

HEADER = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"

# dialog → [(utterance suffix, consensus label)], as in the release.
DIALOGS = {
    "Session1": {
        "Ses01F_impro01": [("F000", "neu"), ("M001", "exc"), ("F002", "fru"), ("M003", "ang")],
        "Ses01F_script01_1": [("F000", "sad"), ("M001", "hap"), ("F002", "neu")],
    },
    "Session2": {
        "Ses02M_impro02": [("M000", "hap"), ("F001", "xxx"), ("F002", "sad"), ("M003", "exc")],
    },
}


def annotation_block(start, name, label):
    """A summary line then evaluator lines, formatted as in EmoEvaluation/*.txt."""
    return (
        f"[{start:.4f} - {start + 1.9456:.4f}]\t{name}\t{label}\t[2.5000, 2.5000, 2.5000]\n"
        "C-E2:\tNeutral;\t()\n"
        "C-E3:\tAnger; Frustration;\t(mildly annoyed)\n"
        "C-F1:\tNeutral;\t(curious)\n"
        "A-E3:\tval 3; act 2; dom  2;\t()\n"
        "A-F1:\tval 3; act 2; dom  1;\t()\n\n"
    )


def make_tree(root, dialogs=DIALOGS, write_wavs=True):
    for session, by_dialog in dialogs.items():
        eval_dir = root / session / "dialog" / "EmoEvaluation"
        eval_dir.mkdir(parents=True)
        for dialog, turns in by_dialog.items():
            text = HEADER + "".join(
                annotation_block(6.2901 + 5 * i, f"{dialog}_{suffix}", label)
                for i, (suffix, label) in enumerate(turns)
            )
            (eval_dir / f"{dialog}.txt").write_text(text)
            wav_dir = root / session / "sentences" / "wav" / dialog
            wav_dir.mkdir(parents=True)
            for suffix, _ in turns if write_wavs else []:
                sf.write(wav_dir / f"{dialog}_{suffix}.wav", np.zeros(800, np.float32), 16000)
    return root


def summary(corpus):
    return [(u.utterance_id, u.label, u.speaker, u.gender, u.session) for u in corpus.utterances]


def test_improvised_with_excited_merged_into_happy(tmp_path):
    corpus = load_corpus("iemocap", make_tree(tmp_path))
    assert corpus.labels == ("neutral", "happy", "sad", "angry")
    assert summary(corpus) == [
        ("Ses01F_impro01_F000", "neutral", "Ses01F", "female", "Session1"),
        ("Ses01F_impro01_M001", "happy", "Ses01M", "male", "Session1"),
        ("Ses01F_impro01_M003", "angry", "Ses01M", "male", "Session1"),
        ("Ses02M_impro02_F002", "sad", "Ses02F", "female", "Session2"),
        ("Ses02M_impro02_M000", "happy", "Ses02M", "male", "Session2"),
        ("Ses02M_impro02_M003", "happy", "Ses02M", "male", "Session2"),
    ]
    path = corpus.utterances[0].path
    assert path == tmp_path / "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav"


@pytest.mark.parametrize(
    "subset, happy, expected",
    [
        ("scripted", "hap+exc", ["Ses01F_script01_1_F000", "Ses01F_script01_1_F002", "Ses01F_script01_1_M001"]),
        ("all", "hap+exc", 9),
        ("improvised", "hap", ["Ses01F_impro01_F000", "Ses01F_impro01_M003", "Ses02M_impro02_F002", "Ses02M_impro02_M000"]),
        ("improvised", "exc", ["Ses01F_impro01_F000", "Ses01F_impro01_M001", "Ses01F_impro01_M003", "Ses02M_impro02_F002", "Ses02M_impro02_M003"]),
    ],
)  # fmt: skip
def test_subset_and_happy_options(tmp_path, subset, happy, expected):
    corpus = load_corpus("iemocap", make_tree(tmp_path), subset=subset, happy=happy)
    ids = [u.utterance_id for u in corpus.utterances]
    assert ids == expected if isinstance(expected, list) else len(ids) == expected


def test_leave_one_session_out_is_speaker_independent(tmp_path):
    corpus = load_corpus("iemocap", make_tree(tmp_path), subset="all")
    folds = make_folds(corpus, "session")
    assert [f.name for f in folds] == ["session-Session1", "session-Session2"]
    for fold in folds:
        assert fold.speaker_independent
        train = {corpus.speakers[i] for i in fold.train}
        assert not train & {corpus.speakers[i] for i in fold.test}


def test_unknown_label_names_label_and_file(tmp_path):
    dialogs = {"Session1": {"Ses01F_impro01": [("F000", "neu"), ("M001", "joy")]}}
    make_tree(tmp_path, dialogs)
    with pytest.raises(CorpusLayoutError, match="'joy'.*Ses01F_impro01_M001.*Ses01F_impro01.txt"):
        load_corpus("iemocap", tmp_path)


def test_missing_wav_is_a_layout_error(tmp_path):
    make_tree(tmp_path, write_wavs=False)
    with pytest.raises(CorpusLayoutError, match="does not exist"):
        load_corpus("iemocap", tmp_path)


def test_missing_annotations_is_a_layout_error(tmp_path):
    (tmp_path / "Session1" / "sentences" / "wav").mkdir(parents=True)
    with pytest.raises(CorpusLayoutError, match="EmoEvaluation"):
        load_corpus("iemocap", tmp_path)


@pytest.mark.parametrize("options", [{"subset": "impro"}, {"happy": "joy"}])
def test_bad_options_are_config_errors(tmp_path, options):
    with pytest.raises(ConfigError):
        load_corpus("iemocap", make_tree(tmp_path), **options)
