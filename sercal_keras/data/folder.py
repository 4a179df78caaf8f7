"""Generic corpora: a folder per class, or a CSV manifest.

For any other corpus (CREMA-D, TESS, your own recordings):
- folder: `<data_dir>/<class>/<file>.wav|.flac|.ogg`; the speaker comes from
  the file name through `speaker_regex` (its first group), or is unknown.
- CSV: a header row with `path,label` and optionally `speaker`, `gender`,
  `session`; relative paths are relative to the CSV file's folder.

Without speakers, only the speaker-dependent `random` split is possible.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Union

from sercal_keras.data.corpus import GENDERS, Corpus, Utterance, require_dir
from sercal_keras.errors import ConfigError, CorpusLayoutError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
FOLDER_LAYOUT = "<data_dir>/<class name>/<file>.wav (also .flac, .ogg)"
CSV_LAYOUT = "a CSV with a header row path,label[,speaker][,gender][,session]"


def load_folder(
    data_dir: Union[str, Path],
    labels: Optional[Sequence[str]] = None,
    speaker_regex: Optional[str] = None,
) -> Corpus:
    """Reads a folder-per-class corpus.

    Args:
        data_dir: folder whose sub-folders are the classes.
        labels: class names in the order to use; default: the sub-folder
            names, sorted. A sub-folder not in `labels` is an error.
        speaker_regex: regular expression searched in each file stem whose
            first group is the speaker, e.g. `r"^(\\d{4})_"` for CREMA-D.

    Returns:
        A `Corpus` named "folder".

    Raises:
        CorpusLayoutError: missing folder, no audio, a class folder not in
            `labels`, or a file name the `speaker_regex` does not match.

    Example:
    >>> corpus = load_folder("my_corpus", speaker_regex=r"^(\\w+?)_")  # doctest: +SKIP
    """
    root = require_dir(data_dir, "Folder corpus", FOLDER_LAYOUT)
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    pattern = re.compile(speaker_regex) if speaker_regex else None
    labels = tuple(labels) if labels is not None else tuple(p.name for p in class_dirs)
    _check_labels(labels)
    utterances = []
    for class_dir in class_dirs:
        files = _audio_files(class_dir.iterdir())
        if files and class_dir.name not in labels:
            raise CorpusLayoutError(
                f"Unknown label {class_dir.name!r} (folder {class_dir}, e.g. {files[0]}); "
                f"known labels: {list(labels)}. Add it to labels= or move the folder."
            )
        for path in files:
            speaker = _speaker_from_name(path, pattern)
            utterances.append(
                Utterance(path, class_dir.name, speaker, None, None, f"{class_dir.name}/{path.stem}")
            )
    if not utterances:
        raise CorpusLayoutError(f"No audio files under {root}. Expected layout: {FOLDER_LAYOUT}.")
    return Corpus("folder", labels, tuple(utterances))


def load_csv(
    manifest: Union[str, Path], labels: Optional[Sequence[str]] = None
) -> Corpus:
    """Reads a CSV manifest corpus.

    Args:
        manifest: the CSV file, or a folder holding `manifest.csv`.
        labels: class names in order; default: the labels found, sorted. A row
            with a label not in `labels` is an error.

    Returns:
        A `Corpus` named "csv", in row order.

    Raises:
        CorpusLayoutError: missing file, missing columns, an unknown label or
            gender, or a path that does not exist.

    Example:
    >>> corpus = load_csv("data/manifest.csv")  # doctest: +SKIP
    """
    manifest = Path(manifest).expanduser()
    if manifest.is_dir():
        manifest = manifest / "manifest.csv"
    if not manifest.is_file():
        raise CorpusLayoutError(f"CSV manifest not found: {manifest}. Expected {CSV_LAYOUT}.")
    with open(manifest, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"path", "label"} <= set(rows[0]):
        raise CorpusLayoutError(
            f"{manifest} has no rows or lacks the path/label columns. Expected {CSV_LAYOUT}."
        )
    found = sorted({row["label"].strip() for row in rows})
    labels = tuple(labels) if labels is not None else tuple(found)
    _check_labels(labels)
    utterances: List[Utterance] = []
    for line, row in enumerate(rows, start=2):
        label = row["label"].strip()
        if label not in labels:
            raise CorpusLayoutError(
                f"Unknown label {label!r} in {manifest} line {line} ({row['path']}); "
                f"known labels: {list(labels)}."
            )
        path = Path(row["path"].strip())
        path = path if path.is_absolute() else manifest.parent / path
        if not path.is_file():
            raise CorpusLayoutError(f"{manifest} line {line}: audio file not found: {path}.")
        gender = (row.get("gender") or "").strip().lower() or None
        if gender is not None and gender not in GENDERS:
            raise CorpusLayoutError(
                f"{manifest} line {line}: gender must be one of {GENDERS} or empty. "
                f"Received: {gender!r}"
            )
        utterances.append(
            Utterance(
                path=path,
                label=label,
                speaker=(row.get("speaker") or "").strip() or None,
                gender=gender,
                session=(row.get("session") or "").strip() or None,
                utterance_id=row["path"].strip(),
            )
        )
    return Corpus("csv", labels, tuple(utterances))


def _audio_files(paths: Iterable[Path]) -> List[Path]:
    return sorted(p for p in paths if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


def _speaker_from_name(path: Path, pattern) -> Optional[str]:
    if pattern is None:
        return None
    match = pattern.search(path.stem)
    if match is None or not match.groups():
        raise CorpusLayoutError(
            f"speaker_regex {pattern.pattern!r} does not match {path.name} (or has no "
            "group). Fix the regex or rename the file."
        )
    return match.group(1)


def _check_labels(labels) -> None:
    if len(set(labels)) != len(labels):
        raise ConfigError(f"labels must be distinct. Received: labels={list(labels)}")
