"""Run directories: layout, reuse rules and finding the model in one.

Layout. One fold and one seed: the output directory *is* the run directory:

    <output_dir>/
      model.keras          best epoch on validation UA (training speakers only), or with
                           --average-from-epoch N the mean of the weights of epochs N..last
      model_card.json      labels, FeatureConfig, normalisation, corpus, variant, versions, fold/seed
      metrics.json         test fold: WA, UA, macro-F1, per-class recall, confusion (segment + utterance)
      history.csv          per epoch: loss, accuracy, val_loss, val_wa, val_ua, learning_rate, seconds, validation_seconds
      confusion.png  training_curves.png
      config.json          the exact config of this run (usable as --config)
      versions.json        library versions
      logs/                TensorBoard
      .checkpoints/        backup + best/last weights while training (removed when done)

Several folds or seeds: one such run directory per fold × seed,
`<output_dir>/<fold>_seed<k>/`, plus `config.json`, `summary.json` and
`summary.md` at the top.

Reuse. An output directory is never silently overwritten: a directory that
holds a run with the same training settings is continued (finished runs,
those with `metrics.json`, are skipped; an interrupted one resumes from its
last epoch); different settings are refused unless `--overwrite`.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Dict, List, Optional

from sercal_keras.errors import ConfigError

CONFIG_NAME = "config.json"
METRICS_NAME = "metrics.json"
MODEL_NAME = "model.keras"
CHECKPOINT_DIR = ".checkpoints"
EPOCH_WEIGHTS_DIR = "epoch_weights"  # --keep-epoch-weights


def epoch_weights_name(epoch: int) -> str:
    """The file of one epoch's weights in `EPOCH_WEIGHTS_DIR` (1-based, as `best_epoch`), e.g. `epoch07.weights.h5`."""
    return f"epoch{epoch:02d}.weights.h5"


def run_name(fold_name: str, seed: int) -> str:
    """The sub-directory of one fold × seed, e.g. `speakers-03+08_seed0`."""
    safe = re.sub(r"[^A-Za-z0-9+._-]", "_", fold_name)
    return f"{safe}_seed{seed}"


def is_single_run(config) -> bool:
    """Whether a config trains exactly one fold × seed (flat run directory)."""
    folds = config.folds
    return (folds is None or (len(folds) == 1 and folds != ["all"])) and len(config.seeds) == 1


def is_finished(run_dir) -> bool:
    """A run is finished when its `metrics.json` exists (written last, atomically)."""
    return (Path(run_dir) / METRICS_NAME).is_file()


def prepare_output_dir(config, output_dir: Path, named: bool, delete: bool) -> None:
    """Checks (and with `--overwrite`, empties) the output directory before any work.

    Args:
        config: the `TrainConfig`.
        output_dir: the directory.
        named: whether the user named it (a generated name is always fresh).
        delete: whether this process may delete it (the chief only).

    Raises:
        ConfigError: the directory holds something else, or a run with different
            settings, and `--overwrite` was not given.
    """
    if not output_dir.exists() or not any(output_dir.iterdir()):
        return
    saved_path = output_dir / CONFIG_NAME
    if not saved_path.is_file():
        raise ConfigError(
            f"--output-dir {output_dir} exists and is not a training run directory (no {CONFIG_NAME}); "
            "choose another directory; --overwrite only replaces run directories"
        )
    if config.overwrite:
        if delete:
            shutil.rmtree(output_dir)
        return
    from training.config import TrainConfig  # local: avoids a cycle at import

    try:
        saved = TrainConfig.from_saved(json.loads(saved_path.read_text()), source=str(saved_path)).identity()
    except Exception as error:  # noqa: BLE001  (any unreadable config: refuse)
        raise ConfigError(f"--output-dir {output_dir}: its {CONFIG_NAME} is unreadable ({error}); use --overwrite") from None
    current = config.identity()
    differing = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
    if differing:
        details = ", ".join(f"{k}: {saved.get(k)!r} → {current.get(k)!r}" for k in differing[:4])
        raise ConfigError(
            f"--output-dir {output_dir} holds a run with different settings ({details}); "
            "use --overwrite to replace it or choose another --output-dir"
        )
    saved_config = json.loads(saved_path.read_text())
    saved_single = is_single_run(TrainConfig.from_saved(saved_config))
    if saved_single and not is_single_run(config):
        raise ConfigError(
            f"--output-dir {output_dir} holds a single run; write cross-validation to another --output-dir"
        )
    if not saved_single and is_single_run(config):
        return  # a single fold/seed inside a cross-validation directory: it goes to its sub-directory


def layout_is_flat(config, output_dir: Path) -> bool:
    """Flat (one run at the top) for a single run, unless the directory already holds several."""
    if not is_single_run(config):
        return False
    if config.overwrite:
        return True
    saved_path = output_dir / CONFIG_NAME
    if saved_path.is_file():
        from training.config import TrainConfig

        return is_single_run(TrainConfig.from_saved(json.loads(saved_path.read_text())))
    return True


def resolve_model_path(path) -> Path:
    """The `model.keras` meant by a path (see `sercal_keras.inference.resolve_model_path`)."""
    from sercal_keras.inference import resolve_model_path as resolve

    return resolve(path)


def list_runs(output_dir) -> List[Path]:
    """The finished run directories under a (cross-validation) output directory."""
    output_dir = Path(output_dir)
    if is_finished(output_dir):
        return [output_dir]
    return sorted(p.parent for p in output_dir.glob(f"*/{METRICS_NAME}"))


def read_json(path) -> Optional[Dict]:
    path = Path(path)
    return json.loads(path.read_text()) if path.is_file() else None
