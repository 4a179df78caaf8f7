"""`Utterance` and `Corpus`: what every corpus reader returns."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from sercal_keras.errors import CorpusLayoutError

GENDERS = ("male", "female")


@dataclasses.dataclass(frozen=True)
class Utterance:
    """One labelled recording.

    Args:
        path: the audio file.
        label: the class name, one of the corpus' `labels`.
        speaker: speaker id (e.g. EmoDB "03", RAVDESS "01", IEMOCAP "Ses01F");
            `None` when unknown (folder/CSV corpora without speaker info).
        gender: "male", "female" or `None` when unknown.
        session: recording session (IEMOCAP "Session1"), else `None`.
        utterance_id: a name unique in the corpus (usually the file stem).
    """

    path: Path
    label: str
    speaker: Optional[str]
    gender: Optional[str]
    session: Optional[str]
    utterance_id: str


@dataclasses.dataclass(frozen=True)
class Corpus:
    """A list of utterances with its label map.

    Utterance indices (positions in `utterances`) are what splits and feature
    sets refer to.

    Args:
        name: registry name ("emodb", "ravdess", …).
        labels: class names; a class's position is its integer label.
        utterances: the recordings, in a deterministic (sorted) order.

    Example:
    >>> corpus = load_corpus("synthetic")  # doctest: +SKIP
    >>> corpus.label_ids[:3], corpus.speakers[:2]  # doctest: +SKIP
    """

    name: str
    labels: Tuple[str, ...]
    utterances: Tuple[Utterance, ...]

    def __post_init__(self):
        known = set(self.labels)
        for utt in self.utterances:
            if utt.label not in known:
                raise CorpusLayoutError(
                    f"Unknown label {utt.label!r} for {utt.path} in corpus {self.name!r}; "
                    f"known labels: {list(self.labels)}."
                )

    def __len__(self) -> int:
        return len(self.utterances)

    @property
    def label_ids(self) -> np.ndarray:
        """Integer label of every utterance, (n,) int64."""
        index = {name: i for i, name in enumerate(self.labels)}
        return np.array([index[u.label] for u in self.utterances], dtype=np.int64)

    @property
    def speakers(self) -> Tuple[Optional[str], ...]:
        """Speaker of every utterance (same order as `utterances`)."""
        return tuple(u.speaker for u in self.utterances)

    @property
    def speaker_ids(self) -> Tuple[str, ...]:
        """The distinct known speakers, sorted."""
        return tuple(sorted({u.speaker for u in self.utterances if u.speaker is not None}))

    def counts(self) -> Dict[str, int]:
        """Number of utterances per class, in label order."""
        ids = self.label_ids
        return {name: int(np.sum(ids == i)) for i, name in enumerate(self.labels)}

    def subset(self, indices: Sequence[int]) -> "Corpus":
        """The corpus restricted to `indices` (same labels)."""
        return Corpus(self.name, self.labels, tuple(self.utterances[i] for i in indices))


def require_dir(path, corpus: str, layout: str) -> Path:
    """Returns `path` as a Path, or raises `CorpusLayoutError` if it is no directory."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise CorpusLayoutError(
            f"{corpus} directory not found: {path}. Expected layout: {layout}. "
            "Pass the right data_dir."
        )
    return path
