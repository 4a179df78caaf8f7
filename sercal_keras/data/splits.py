"""Train/test folds and validation splits (DESIGN §4).

Speaker-independent protocols are the default: no speaker is ever in both the
training and the test part of a fold (nor in training and validation).
- "speaker_folds": k folds grouped by speaker, each fold gender-balanced where
  possible; the published presets when the corpus has exactly their speakers:
  EmoDB 5 pairs {03,08} {09,10} {11,13} {12,14} {15,16}; RAVDESS 4 folds of
  actors {1-4} {5-8} {9-12} {13-16}, or 6 folds of 4 on all 24 actors.
- "loso": leave one speaker out.
- "session": leave one session out (IEMOCAP).
- "random": stratified utterance folds, the split Xu et al. used; speakers
  overlap, so these folds are marked `speaker_independent=False` and named
  "speaker-dependent-…".
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from sercal_keras.data.corpus import Corpus
from sercal_keras.errors import ConfigError

PROTOCOLS = ("speaker_folds", "loso", "session", "random")

EMODB_SPEAKER_FOLDS: Tuple[Tuple[str, ...], ...] = (
    ("03", "08"),
    ("09", "10"),
    ("11", "13"),
    ("12", "14"),
    ("15", "16"),
)
RAVDESS_16_FOLDS = tuple(tuple(f"{a:02d}" for a in range(i, i + 4)) for i in range(1, 17, 4))
RAVDESS_24_FOLDS = tuple(tuple(f"{a:02d}" for a in range(i, i + 4)) for i in range(1, 25, 4))
PRESETS: Dict[str, Tuple[Tuple[Tuple[str, ...], ...], ...]] = {
    "emodb": (EMODB_SPEAKER_FOLDS,),
    "ravdess": (RAVDESS_16_FOLDS, RAVDESS_24_FOLDS),
}


@dataclasses.dataclass(frozen=True, eq=False)
class Fold:
    """One train/test split of a corpus, as sorted utterance indices.

    Args:
        name: e.g. "speakers-03+08", "loso-03", "session-Session1",
            "speaker-dependent-random-1of5".
        train: indices of the training utterances.
        test: indices of the test utterances.
        speaker_independent: False when speakers can be in both parts.
        test_speakers: the held-out speakers (empty for random folds).
    """

    name: str
    train: np.ndarray
    test: np.ndarray
    speaker_independent: bool = True
    test_speakers: Tuple[str, ...] = ()


def make_folds(
    corpus: Corpus,
    protocol: str = "speaker_folds",
    num_folds: Optional[int] = None,
    seed: int = 0,
) -> List[Fold]:
    """The folds of a protocol.

    Args:
        corpus: the corpus to split.
        protocol: one of `PROTOCOLS` (see the module docstring).
        num_folds: for "speaker_folds" and "random". `None`: the corpus preset
            if it has one (EmoDB 5, RAVDESS 4 or 6), else 5 (at most one per
            speaker). A number other than the preset's gives generic folds.
        seed: shuffles speakers (generic speaker folds) or utterances (random).

    Returns:
        A list of `Fold`s whose test parts partition the corpus.

    Raises:
        ConfigError: unknown protocol, too few speakers/sessions for the
            folds, or speakers/sessions unknown where the protocol needs them.

    Example:
    >>> folds = make_folds(load_corpus("emodb", "emodb"))  # doctest: +SKIP
    >>> [f.name for f in folds][:2]  # doctest: +SKIP
    ['speakers-03+08', 'speakers-09+10']
    """
    if protocol not in PROTOCOLS:
        raise ConfigError(f"Unknown split protocol {protocol!r}; choose one of {PROTOCOLS}.")
    if protocol == "random":
        return _random_folds(corpus, num_folds or 5, seed)
    if protocol == "session":
        sessions = [u.session for u in corpus.utterances]
        if any(s is None for s in sessions):
            raise ConfigError(
                f"protocol='session' needs sessions; corpus {corpus.name!r} has none "
                "(only IEMOCAP and CSV manifests with a session column do)."
            )
        groups = [(s,) for s in sorted(set(sessions))]
        return _group_folds(corpus, np.array(sessions), groups, "session", min_groups=2)
    speakers = _require_speakers(corpus, protocol)
    if protocol == "loso":
        groups = [(s,) for s in corpus.speaker_ids]
        return _group_folds(corpus, speakers, groups, "loso", min_groups=2)
    groups = _preset(corpus, num_folds) or _balanced_groups(corpus, num_folds, seed)
    return _group_folds(corpus, speakers, groups, "speakers", min_groups=2)


def validation_split(
    corpus: Corpus,
    train: Sequence[int],
    fraction: float = 0.2,
    seed: int = 0,
    speaker_independent: bool = True,
) -> Tuple[np.ndarray, np.ndarray]:
    """Carves a validation set out of a fold's training part.

    Speaker-independent (default): whole training speakers are moved to
    validation, about `fraction` of them (at least one), alternating genders
    where possible; deterministic for a seed. Otherwise a stratified random
    `fraction` of the training utterances (for speaker-dependent folds).

    Args:
        corpus: the corpus.
        train: the fold's training indices.
        fraction: share of the training speakers (or utterances) to hold out.
        seed: which speakers/utterances are chosen.
        speaker_independent: hold out speakers (True) or utterances (False).

    Returns:
        `(train, validation)` sorted index arrays, disjoint, covering `train`.

    Raises:
        ConfigError: `fraction` not in (0, 1), or fewer than two training speakers.

    Example:
    >>> fold = make_folds(corpus)[0]  # doctest: +SKIP
    >>> train, val = validation_split(corpus, fold.train, seed=0)  # doctest: +SKIP
    """
    if not 0 < fraction < 1:
        raise ConfigError(f"fraction must be in (0, 1). Received: fraction={fraction}")
    train = np.asarray(sorted(train), dtype=np.int64)
    rng = np.random.default_rng(seed)
    if not speaker_independent:
        labels = corpus.label_ids[train]
        val = [
            idx[: int(round(fraction * len(idx)))]
            for idx in (rng.permutation(train[labels == c]) for c in np.unique(labels))
        ]
        val = np.sort(np.concatenate(val)).astype(np.int64)
        return np.setdiff1d(train, val), val
    speakers = np.array(_require_speakers(corpus, "validation_split"), dtype=object)
    train_speakers = sorted(set(speakers[train]))
    if len(train_speakers) < 2:
        raise ConfigError(
            f"A speaker-independent validation split needs >= 2 training speakers; got "
            f"{train_speakers}. Use a fixed epoch budget, or speaker_independent=False."
        )
    count = min(len(train_speakers) - 1, max(1, int(round(fraction * len(train_speakers)))))
    gender = {u.speaker: u.gender for u in corpus.utterances}
    by_gender = [
        [str(s) for s in rng.permutation([s for s in train_speakers if gender[s] == g])]
        for g in ("male", "female", None)
    ]
    chosen = []
    while len(chosen) < count:  # alternate male, female, unknown
        for queue in by_gender:
            if queue and len(chosen) < count:
                chosen.append(queue.pop(0))
    is_val = np.isin(speakers[train], chosen)
    return train[~is_val], train[is_val]


def _require_speakers(corpus: Corpus, what: str) -> np.ndarray:
    speakers = corpus.speakers
    if any(s is None for s in speakers):
        raise ConfigError(
            f"{what} needs a speaker for every utterance; corpus {corpus.name!r} has "
            "utterances without one. Give speakers (folder: speaker_regex=, CSV: a "
            "speaker column) or use the speaker-dependent protocol='random'."
        )
    return np.array(speakers, dtype=object)


def _preset(corpus: Corpus, num_folds: Optional[int]):
    present = set(corpus.speaker_ids)
    for groups in PRESETS.get(corpus.name, ()):
        if num_folds in (None, len(groups)) and present == {s for g in groups for s in g}:
            return list(groups)
    return None


def _balanced_groups(corpus: Corpus, num_folds: Optional[int], seed: int):
    speakers = list(corpus.speaker_ids)
    k = num_folds if num_folds is not None else min(5, len(speakers))
    if not 2 <= k <= len(speakers):
        raise ConfigError(
            f"speaker_folds needs 2 <= num_folds <= number of speakers ({len(speakers)}). "
            f"Received: num_folds={num_folds}"
        )
    gender = {u.speaker: u.gender for u in corpus.utterances}
    rng = np.random.default_rng(seed)
    # Deal males, then females, then unknown round-robin: every fold gets a
    # gender mix as even as the counts allow.
    ordered = []
    for g in ("male", "female", None):
        ordered += [str(s) for s in rng.permutation([s for s in speakers if gender[s] == g])]
    groups = [[] for _ in range(k)]
    for i, speaker in enumerate(ordered):
        groups[i % k].append(speaker)
    return [tuple(sorted(g)) for g in groups]


def _group_folds(corpus, keys, groups, prefix, min_groups) -> List[Fold]:
    if len(groups) < min_groups:
        raise ConfigError(
            f"Corpus {corpus.name!r} has {len(groups)} {prefix} group(s) {groups}; a "
            f"held-out protocol needs at least {min_groups}."
        )
    folds = []
    for group in groups:
        is_test = np.isin(keys, list(group))
        test = np.flatnonzero(is_test)
        test_speakers = {corpus.utterances[i].speaker for i in test}
        train_speakers = {corpus.utterances[i].speaker for i in np.flatnonzero(~is_test)}
        # True only when provably so (sessions could share or hide speakers).
        independent = None not in test_speakers and not test_speakers & train_speakers
        folds.append(
            Fold(
                name=f"{prefix}-{'+'.join(group)}",
                train=np.flatnonzero(~is_test),
                test=test,
                speaker_independent=independent,
                test_speakers=tuple(sorted(test_speakers - {None})),
            )
        )
    return folds


def _random_folds(corpus: Corpus, k: int, seed: int) -> List[Fold]:
    if not 2 <= k <= len(corpus):
        raise ConfigError(f"random needs 2 <= num_folds <= {len(corpus)}. Received: {k}")
    labels = corpus.label_ids
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(corpus), dtype=np.int64)
    offset = 0
    for c in np.unique(labels):  # stratified: deal each class round-robin
        idx = rng.permutation(np.flatnonzero(labels == c))
        fold_of[idx] = (np.arange(len(idx)) + offset) % k
        offset += len(idx)
    return [
        Fold(
            name=f"speaker-dependent-random-{i + 1}of{k}",
            train=np.flatnonzero(fold_of != i),
            test=np.flatnonzero(fold_of == i),
            speaker_independent=False,
        )
        for i in range(k)
    ]
