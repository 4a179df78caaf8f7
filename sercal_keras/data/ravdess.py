"""RAVDESS reader (speech, audio-only).

Files are named `MM-VV-EE-II-SS-RR-AA.wav`: modality MM (03 audio-only),
vocal channel VV (01 speech, 02 song), emotion EE (01–08), intensity II,
statement SS, repetition RR, actor AA (odd male, even female), in folders
`Actor_AA/`. 8 classes (`labels.RAVDESS_LABELS`); song files are skipped.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Union

from sercal_keras.data.corpus import Corpus, Utterance, require_dir
from sercal_keras.data.labels import RAVDESS_CODES, RAVDESS_LABELS
from sercal_keras.errors import CorpusLayoutError

LAYOUT = "<data_dir>/Actor_01..Actor_24/03-01-EE-II-SS-RR-AA.wav"
_NAME = re.compile(
    r"^(?P<modality>\d\d)-(?P<channel>\d\d)-(?P<emotion>\d\d)-(?P<intensity>\d\d)-"
    r"(?P<statement>\d\d)-(?P<repetition>\d\d)-(?P<actor>\d\d)$"
)


def load_ravdess(data_dir: Union[str, Path]) -> Corpus:
    """Reads RAVDESS speech files: 8 classes, speaker = actor number.

    Args:
        data_dir: the folder holding `Actor_XX/` folders (any rate: the audio
            is resampled on load, so the 48 kHz release and a 16 kHz copy both
            work). Files directly in `data_dir` are read too.

    Returns:
        A `Corpus` named "ravdess"; speakers "01".."24", sorted by actor then name.

    Raises:
        CorpusLayoutError: missing folder, no .wav files, a name not in the
            RAVDESS pattern, or an unknown emotion code.

    Example:
    >>> corpus = load_ravdess("../shared/data/ravdess16k")  # doctest: +SKIP
    >>> len(corpus), corpus.counts()["neutral"]  # doctest: +SKIP
    (960, 64)
    """
    root = require_dir(data_dir, "RAVDESS", LAYOUT)
    files = sorted(root.glob("Actor_*/*.wav")) + sorted(root.glob("*.wav"))
    if not files:
        raise CorpusLayoutError(f"No .wav files under {root}. Expected layout: {LAYOUT}.")
    utterances = []
    for path in files:
        match = _NAME.match(path.stem)
        if match is None:
            raise CorpusLayoutError(
                f"{path} is not named like a RAVDESS file (03-01-EE-II-SS-RR-AA.wav). "
                "Move other files out of the corpus folder."
            )
        if match["channel"] != "01":  # 02 = song: not speech emotion
            continue
        code = match["emotion"]
        if code not in RAVDESS_CODES:
            raise CorpusLayoutError(
                f"Unknown RAVDESS emotion code {code!r} in {path}; known codes: "
                f"{sorted(RAVDESS_CODES)} ({', '.join(RAVDESS_LABELS)})."
            )
        actor = match["actor"]
        utterances.append(
            Utterance(
                path=path,
                label=RAVDESS_CODES[code],
                speaker=actor,
                gender="male" if int(actor) % 2 else "female",
                session=None,
                utterance_id=path.stem,
            )
        )
    if not utterances:
        raise CorpusLayoutError(f"No RAVDESS speech files (vocal channel 01) under {root}.")
    utterances.sort(key=lambda u: (u.speaker, u.utterance_id))
    return Corpus("ravdess", RAVDESS_LABELS, tuple(utterances))
