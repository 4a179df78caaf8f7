"""IEMOCAP reader (the release layout, 4 classes).

Layout of `IEMOCAP_full_release/`:
```
Session1..Session5/sentences/wav/<dialog>/<utterance>.wav
Session1..Session5/dialog/EmoEvaluation/<dialog>.txt
```
Each EmoEvaluation block starts with a tab-separated summary line
`[6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5000, 2.5000, 2.5000]`
followed by the individual evaluators' lines (`C-E1:`, `A-E2:` …), which are
skipped. The consensus label gives the class: neutral (neu), happy (hap, exc or
both, see `happy`), sad, angry; the other labels (fru, fea, sur, dis, oth, xxx)
are left out. The speaker is the session plus the gender letter before the
utterance number (`Ses01F_impro01_M012` → speaker "Ses01M", male).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, Union

from sercal_keras.data.corpus import Corpus, Utterance, require_dir
from sercal_keras.data.labels import IEMOCAP_ALL_CODES, IEMOCAP_LABELS
from sercal_keras.errors import ConfigError, CorpusLayoutError

LAYOUT = (
    "<data_dir>/Session1..5/sentences/wav/<dialog>/<utterance>.wav and "
    "<data_dir>/Session1..5/dialog/EmoEvaluation/<dialog>.txt"
)
SUBSETS = ("improvised", "scripted", "all")
HAPPY_OPTIONS = ("hap+exc", "hap", "exc")
_SUMMARY = re.compile(
    r"^\[(?P<start>[\d.]+) - (?P<end>[\d.]+)\]\t(?P<utt>\S+)\t(?P<label>\S+)\t\["
)
_UTTERANCE = re.compile(r"^Ses(?P<session>\d\d)[FM]_(?P<kind>impro|script)\S*_(?P<gender>[FM])\d+$")


def label_codes(happy: str = "hap+exc") -> Dict[str, str]:
    """IEMOCAP consensus code → class name for the 4-class set.

    Args:
        happy: which codes make the happy class: "hap+exc" (the merged set most
            papers use), "hap" alone, or "exc" alone (Xu et al.).
    """
    if happy not in HAPPY_OPTIONS:
        raise ConfigError(f"happy must be one of {HAPPY_OPTIONS}. Received: happy={happy!r}")
    codes = {"neu": "neutral", "sad": "sad", "ang": "angry"}
    codes.update({code: "happy" for code in happy.split("+")})
    return codes


def load_iemocap(
    data_dir: Union[str, Path], subset: str = "improvised", happy: str = "hap+exc"
) -> Corpus:
    """Reads IEMOCAP: 4 classes, 10 speakers in 5 sessions.

    Args:
        data_dir: `IEMOCAP_full_release/` (the folder holding `Session1`…).
        subset: "improvised" (the CNN + attention papers' usual choice),
            "scripted" or "all" dialogs.
        happy: codes merged into happy: "hap+exc", "hap" or "exc".

    Returns:
        A `Corpus` named "iemocap" with `session` "Session1".."Session5".

    Raises:
        CorpusLayoutError: missing folders, an annotation line naming an
            unknown label or a missing wav file, or no utterances at all.
        ConfigError: bad `subset` or `happy`.

    Example:
    >>> corpus = load_iemocap("IEMOCAP_full_release")  # doctest: +SKIP
    >>> corpus.labels  # doctest: +SKIP
    ('neutral', 'happy', 'sad', 'angry')
    """
    if subset not in SUBSETS:
        raise ConfigError(f"subset must be one of {SUBSETS}. Received: subset={subset!r}")
    codes = label_codes(happy)
    root = require_dir(data_dir, "IEMOCAP", LAYOUT)
    sessions = sorted(p for p in root.glob("Session*") if p.is_dir())
    if not sessions:
        raise CorpusLayoutError(f"No Session* folders in {root}. Expected layout: {LAYOUT}.")
    utterances = []
    for session in sessions:
        eval_dir = session / "dialog" / "EmoEvaluation"
        annotations = sorted(eval_dir.glob("*.txt"))
        if not annotations:
            raise CorpusLayoutError(
                f"No annotation files in {eval_dir}. Expected layout: {LAYOUT}."
            )
        for txt in annotations:
            utterances.extend(_read_annotations(txt, session, subset, codes))
    if not utterances:
        raise CorpusLayoutError(
            f"No IEMOCAP utterances with labels {sorted(codes)} (subset={subset!r}) "
            f"under {root}."
        )
    utterances.sort(key=lambda u: u.utterance_id)
    return Corpus("iemocap", IEMOCAP_LABELS, tuple(utterances))


def _read_annotations(txt: Path, session: Path, subset: str, codes: Dict[str, str]):
    for line in txt.read_text(encoding="utf-8", errors="replace").splitlines():
        match = _SUMMARY.match(line)
        if match is None:  # evaluator lines, headers, blank lines
            continue
        name, code = match["utt"], match["label"]
        if code not in IEMOCAP_ALL_CODES:
            raise CorpusLayoutError(
                f"Unknown IEMOCAP label {code!r} for {name} in {txt}; known labels: "
                f"{', '.join(IEMOCAP_ALL_CODES)}."
            )
        parts = _UTTERANCE.match(name)
        if parts is None:
            raise CorpusLayoutError(
                f"Utterance name {name!r} in {txt} is not in the IEMOCAP pattern "
                "SesNN[FM]_<impro|script>…_[FM]NNN."
            )
        kind = "improvised" if parts["kind"] == "impro" else "scripted"
        if code not in codes or subset not in ("all", kind):
            continue
        dialog = name.rsplit("_", 1)[0]
        wav = session / "sentences" / "wav" / dialog / f"{name}.wav"
        if not wav.is_file():
            raise CorpusLayoutError(
                f"{txt} annotates {name}, but {wav} does not exist. Expected layout: "
                f"{LAYOUT}."
            )
        gender = parts["gender"]
        yield Utterance(
            path=wav,
            label=codes[code],
            speaker=f"Ses{parts['session']}{gender}",
            gender="female" if gender == "F" else "male",
            session=session.name,
            utterance_id=name,
        )
