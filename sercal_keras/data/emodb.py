"""EmoDB (Berlin Database of Emotional Speech) reader.

Files are named `SSTTTEv.wav`: speaker SS, text TTT, emotion letter E (German:
W Wut, L Langeweile, E Ekel, A Angst, F Freude, T Trauer, N neutral), version
v. 535 files, 10 speakers, 7 classes (`labels.EMODB_LABELS`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional, Union

from sercal_keras.data.corpus import Corpus, Utterance, require_dir
from sercal_keras.data.labels import EMODB_CODES, EMODB_LABELS
from sercal_keras.errors import CorpusLayoutError

LAYOUT = "<data_dir>/wav/SSTTTEv.wav (or the .wav files directly in data_dir), e.g. 03a01Fa.wav"
MALE_SPEAKERS = ("03", "10", "11", "12", "15")
FEMALE_SPEAKERS = ("08", "09", "13", "14", "16")
_NAME = re.compile(r"^(?P<speaker>\d\d)(?P<text>[a-z]\d\d)(?P<emotion>[A-Z])(?P<version>[a-z])$")


def load_emodb(data_dir: Union[str, Path]) -> Corpus:
    """Reads EmoDB: 7 classes, speaker = first two characters of the name.

    Args:
        data_dir: the EmoDB folder (holding `wav/`) or the `wav/` folder itself.

    Returns:
        A `Corpus` named "emodb", utterances sorted by file name.

    Raises:
        CorpusLayoutError: missing folder, no .wav files, a file name not in
            the `SSTTTEv` pattern, or an unknown emotion letter.

    Example:
    >>> corpus = load_emodb("../shared/data/emodb")  # doctest: +SKIP
    >>> len(corpus), corpus.counts()["anger"]  # doctest: +SKIP
    (535, 127)
    """
    root = require_dir(data_dir, "EmoDB", LAYOUT)
    wav_dir = root / "wav" if (root / "wav").is_dir() else root
    files = sorted(wav_dir.glob("*.wav"))
    if not files:
        raise CorpusLayoutError(f"No .wav files in {wav_dir}. Expected layout: {LAYOUT}.")
    utterances = []
    for path in files:
        match = _NAME.match(path.stem)
        if match is None:
            raise CorpusLayoutError(
                f"{path} is not named like an EmoDB file (SSTTTEv.wav, e.g. 03a01Fa.wav). "
                "Move other files out of the corpus folder."
            )
        code = match["emotion"]
        if code not in EMODB_CODES:
            raise CorpusLayoutError(
                f"Unknown EmoDB emotion letter {code!r} in {path}; known letters: "
                f"{''.join(EMODB_CODES)} ({', '.join(EMODB_LABELS)})."
            )
        speaker = match["speaker"]
        utterances.append(
            Utterance(
                path=path,
                label=EMODB_CODES[code],
                speaker=speaker,
                gender=_gender(speaker),
                session=None,
                utterance_id=path.stem,
            )
        )
    return Corpus("emodb", EMODB_LABELS, tuple(utterances))


def _gender(speaker: str) -> Optional[str]:
    if speaker in MALE_SPEAKERS:
        return "male"
    return "female" if speaker in FEMALE_SPEAKERS else None
