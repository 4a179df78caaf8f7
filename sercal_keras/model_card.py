"""The JSON card stored beside every model: what the edge and apps need to use it.

A run directory holds `model.keras` and `model_card.json`; every exported
`.tflite` gets a `<name>.json` card with the same fields plus its tensor details.
One definition, read by training, evaluation, export, reports and the edge demo.
Imports nothing heavy (the edge runtime reads cards as plain JSON).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Dict, List, Optional

from sercal_keras.errors import ModelFileError
from sercal_keras.io_utils import write_json
from sercal_keras.provenance import library_versions  # noqa: F401  (part of this module's API)

CARD_FORMAT = "sercal-keras/model-card/1"
MODEL_CARD_NAME = "model_card.json"


@dataclasses.dataclass
class ModelCard:
    """Labels, features and normalisation of a trained model.

    Args:
        labels: class names in the model's output order.
        feature_config: `FeatureConfig.to_dict()` of the front-end used in training.
        feature_mean: per-coefficient mean fitted on the training data.
        feature_std: per-coefficient standard deviation fitted on the training data.
        corpus: name of the training corpus.
        variant: model variant (`fa_ca`, `mhsa`, ...).
        versions: library versions at training time.
        extra: anything else (fold, seed, TFLite tensor details, ...).

    Example:
    >>> card = ModelCard(labels=["neutral", "angry"], feature_config={}, feature_mean=[0.0],
    ...                  feature_std=[1.0])
    >>> ModelCard.from_dict(card.to_dict()) == card
    True
    """

    labels: List[str]
    feature_config: Dict[str, Any]
    feature_mean: List[float]
    feature_std: List[float]
    corpus: str = ""
    variant: str = ""
    versions: Dict[str, str] = dataclasses.field(default_factory=dict)
    extra: Dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def feature_normalization(self) -> str:
        """`--feature-normalization` of training: `"global"` (also for cards from before the option) or `"speaker"`."""
        return self.extra.get("feature_normalization", "global")

    @property
    def speaker_normalization(self) -> bool:
        """True for a model trained with per-speaker normalisation (`--feature-normalization speaker`)."""
        return self.feature_normalization == "speaker"

    def to_dict(self) -> Dict[str, Any]:
        return {"format": CARD_FORMAT, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: Dict[str, Any], source: str = "<dict>") -> "ModelCard":
        data = dict(data)
        data.pop("format", None)
        names = {f.name for f in dataclasses.fields(cls)}
        missing = [n for n in ("labels", "feature_config", "feature_mean", "feature_std") if n not in data]
        if missing:
            raise ModelFileError(f"{source}: model card lacks {missing}; re-export or retrain to regenerate it.")
        extra = {k: v for k, v in data.items() if k not in names}
        card = cls(**{k: v for k, v in data.items() if k in names})
        card.extra.update(extra)
        return card

    def save(self, path) -> Path:
        """Writes the card as JSON atomically."""
        return write_json(path, self.to_dict())

    @classmethod
    def load(cls, path) -> "ModelCard":
        """Reads a card; raises `ModelFileError` naming the file when it is absent or invalid."""
        path = Path(path)
        if not path.is_file():
            raise ModelFileError(
                f"{path}: model card not found. It is written next to the model by "
                "`python -m training.fit` / `python -m export.tflite`; keep the two together."
            )
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise ModelFileError(f"{path}: not a readable JSON model card ({error}).") from error
        return cls.from_dict(data, source=str(path))


def card_path_for(model_path, name: Optional[str] = None) -> Path:
    """The card beside a model: `model_card.json` for `.keras`, `<stem>.json` for `.tflite`."""
    model_path = Path(model_path)
    if model_path.suffix == ".tflite":
        return model_path.with_suffix(".json")
    return model_path.parent / (name or MODEL_CARD_NAME)
