"""The label map of every corpus: class names in a fixed, documented order.

A class's index in its tuple is the integer label the model is trained on,
so these orders never change (models store their labels, but old feature
caches and reports rely on them too).

- EmoDB (7): the German letter codes of the file names, W L E A F T N, in
  that order: anger, boredom, disgust, fear, happiness, sadness, neutral.
- RAVDESS speech (8): the emotion field 01–08 of the file names, in order:
  neutral, calm, happy, sad, angry, fearful, disgust, surprised.
- IEMOCAP (4): neutral, happy, sad, angry (neu, hap and/or exc, sad, ang).
- synthetic (4): neutral, happy, sad, angry, as IEMOCAP.
- folder / CSV manifests: the classes found (sorted) or the `labels` given.
"""

from __future__ import annotations

from typing import Dict, Tuple

EMODB_LABELS: Tuple[str, ...] = (
    "anger",
    "boredom",
    "disgust",
    "fear",
    "happiness",
    "sadness",
    "neutral",
)
EMODB_CODES: Dict[str, str] = dict(zip("WLEAFTN", EMODB_LABELS))

RAVDESS_LABELS: Tuple[str, ...] = (
    "neutral",
    "calm",
    "happy",
    "sad",
    "angry",
    "fearful",
    "disgust",
    "surprised",
)
RAVDESS_CODES: Dict[str, str] = {f"{i:02d}": name for i, name in enumerate(RAVDESS_LABELS, 1)}

IEMOCAP_LABELS: Tuple[str, ...] = ("neutral", "happy", "sad", "angry")
# Every consensus label of the IEMOCAP release; those outside the 4-class set
# are skipped by the reader, anything else is a layout error.
IEMOCAP_ALL_CODES: Tuple[str, ...] = (
    "neu", "hap", "exc", "sad", "ang", "fru", "fea", "sur", "dis", "oth", "xxx",
)  # fmt: skip

SYNTHETIC_LABELS: Tuple[str, ...] = ("neutral", "happy", "sad", "angry")

LABEL_MAPS: Dict[str, Tuple[str, ...]] = {
    "emodb": EMODB_LABELS,
    "ravdess": RAVDESS_LABELS,
    "iemocap": IEMOCAP_LABELS,
    "synthetic": SYNTHETIC_LABELS,
}
