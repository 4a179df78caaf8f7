"""Knowledge distillation: one model trained on the soft targets of a seed ensemble.

Seed ensembles are the largest gain of the research log (+3 to +7 pp UA over
their members on EmoDB and RAVDESS, #19, #57, #59), but they cost one model per
member on a device.
Distillation (Hinton et al., 2015) trains a single student on the ensemble's
class probabilities instead of, or beside, the one-hot labels. Here the
teachers are finished runs of the *same fold* (they trained on the student's
training speakers only: a teacher that saw a test speaker would leak that
speaker's labels into the student, so every teacher's fold is checked), their
probabilities are computed once on the student's training segments (the speed
copies included), softened by a temperature and mixed with the labels:

    target = (1 - weight) · one_hot(label) + weight · mean_t softmax(log p_t / T)

The student is trained on `target` with the categorical cross-entropy, as for
label smoothing. The temperature matters because the teachers trained on these
very segments (training accuracy ~100 %): at T = 1 their probabilities are
almost the labels; T > 1 brings out how they rank the other classes.

`python -m training.fit --teacher RUNS_DIR` turns it on (`TrainConfig.teachers`,
`distillation_weight`, `distillation_temperature`).

Example:
>>> soften(np.array([[0.98, 0.01, 0.01]]), temperature=2.0).round(3).tolist()
[[0.832, 0.084, 0.084]]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from sercal_keras.errors import ConfigError

#: Below this a probability is treated as this (log of a zero softmax output).
_EPSILON = 1e-7


def soften(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities at a temperature: `softmax(log p / T)`, row by row.

    A model's softmax output `p` is `softmax(z)` for logits `z = log p + c`, so
    this equals `softmax(z / T)` without access to the logits.

    Args:
        probabilities: `(n, num_classes)`, rows summing to 1.
        temperature: T > 0; 1 returns the input, larger flattens it.

    Returns:
        float32 `(n, num_classes)`, rows summing to 1.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0. Received: {temperature}")
    logits = np.log(np.clip(np.asarray(probabilities, np.float64), _EPSILON, 1.0)) / float(temperature)
    logits -= logits.max(axis=-1, keepdims=True)
    exp = np.exp(logits)
    return (exp / exp.sum(axis=-1, keepdims=True)).astype(np.float32)


def blend_targets(labels: np.ndarray, teacher_probabilities: Sequence[np.ndarray], num_classes: int,
                  weight: float, temperature: float) -> np.ndarray:
    """The student's training targets: labels mixed with the teachers' softened mean.

    Args:
        labels: int class indices `(n,)`.
        teacher_probabilities: one `(n, num_classes)` array per teacher.
        num_classes: number of classes.
        weight: share of the teachers in the target, in (0, 1].
        temperature: the teachers' temperature (`soften`).

    Returns:
        float32 `(n, num_classes)`, rows summing to 1.

    Example:
    >>> blend_targets(np.array([0]), [np.array([[0.5, 0.5]])], 2, weight=0.5, temperature=1.0).tolist()
    [[0.75, 0.25]]
    """
    if not teacher_probabilities:
        raise ValueError("blend_targets needs at least one teacher")
    one_hot = np.eye(num_classes, dtype=np.float32)[np.asarray(labels, np.int64)]
    teachers = np.mean([soften(p, temperature) for p in teacher_probabilities], axis=0)
    if teachers.shape != one_hot.shape:
        raise ValueError(f"teacher probabilities {teachers.shape} do not match the labels {one_hot.shape}")
    return ((1.0 - weight) * one_hot + weight * teachers).astype(np.float32)


def teacher_runs(paths: Sequence[str]) -> List[Path]:
    """The finished run directories named by `--teacher` paths (a run, or a folder of runs).

    Raises:
        ConfigError: a path is missing or holds no finished run.
    """
    from training.run_dir import list_runs

    runs: List[Path] = []
    for path in paths:
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise ConfigError(f"--teacher {path}: not a directory; give a finished run of training.fit or a "
                              "folder of them")
        found = list_runs(folder)
        if not found:
            raise ConfigError(f"--teacher {path}: no finished run there (no metrics.json); train the teachers "
                              "first")
        runs.extend(r for r in found if r not in runs)
    return runs


def teachers_for_fold(runs: Sequence[Path], corpus: str, protocol: str, fold_name: str,
                      test_speakers: Sequence[str], labels: Sequence[str], feature_config: Dict[str, Any],
                      feature_normalization: str) -> List[Path]:
    """The teacher runs that may teach a run of this fold.

    A teacher must have been tested on the same fold (so it trained on the
    student's training speakers and no test speaker), with the same labels,
    features and feature normalisation (it reads the student's training
    features as they are).

    Raises:
        ConfigError: no run qualifies; the message lists what the runs hold.
        ModelFileError: a run's `model_card.json` is not a readable card.
    """
    from sercal_keras.model_card import MODEL_CARD_NAME, ModelCard
    from training.run_dir import METRICS_NAME, read_json

    chosen, seen = [], []
    for run in runs:
        metrics = read_json(run / METRICS_NAME)
        card_path = run / MODEL_CARD_NAME
        card = ModelCard.load(card_path) if card_path.is_file() else None
        seen.append(f"{run.name} ({metrics.get('corpus')} {metrics.get('protocol')} {metrics.get('fold')})")
        if (metrics.get("corpus"), metrics.get("protocol"), metrics.get("fold")) != (corpus, protocol, fold_name):
            continue
        if sorted(metrics.get("test_speakers") or []) != sorted(test_speakers):
            continue
        if list(metrics.get("labels") or []) != list(labels):
            raise ConfigError(f"--teacher {run}: its labels {metrics.get('labels')} differ from this run's "
                              f"{list(labels)}")
        if card is None or card.feature_config != feature_config or \
                card.feature_normalization != feature_normalization:
            raise ConfigError(f"--teacher {run}: trained on other features (feature config or "
                              "--feature-normalization differ); a teacher must read the student's features")
        chosen.append(run)
    if not chosen:
        raise ConfigError(f"--teacher: no teacher run for {corpus} {protocol} fold {fold_name} "
                          f"(a teacher must be tested on the same fold); found: {', '.join(seen) or 'none'}")
    return chosen


def distillation_targets(config, corpus: str, fold, labels: Sequence[str], feature_config: Dict[str, Any],
                         train_set, log: Callable[[str], None] = print) -> Tuple[Optional[np.ndarray], List[Path]]:
    """The soft training targets of one run and its teacher runs; `(None, [])` without teachers.

    Args:
        config: the `TrainConfig` (`teachers`, `distillation_weight`, `distillation_temperature`).
        corpus: the corpus name, as runs record it.
        fold: the run's `Fold`.
        labels: class names.
        feature_config: the run's `FeatureConfig.to_dict()`.
        train_set: the run's training `SegmentSet`, as the model is fed.
        log: progress output.

    Returns:
        float32 `(len(train_set), len(labels))` targets (or None) and the teacher run directories.

    Raises:
        ConfigError: no teacher run fits the fold (see `teachers_for_fold`).
    """
    if not config.teachers:
        return None, []
    import keras

    from training.callbacks import make_predict_fn
    from training.run_dir import MODEL_NAME

    runs = teachers_for_fold(teacher_runs(config.teachers), corpus, config.protocol_name, fold.name,
                             fold.test_speakers, labels, feature_config, config.feature_normalization)
    probabilities = [make_predict_fn(keras.models.load_model(run / MODEL_NAME, compile=False))(train_set.features)
                     for run in runs]
    targets = blend_targets(train_set.labels, probabilities, len(labels), config.distillation_weight,
                            config.distillation_temperature)
    agreement = float(np.mean(np.argmax(np.mean(probabilities, axis=0), axis=1) == train_set.labels))
    true_class = float(np.mean(targets[np.arange(len(targets)), train_set.labels]))
    log(f"  distillation: {len(runs)} teachers ({', '.join(r.name for r in runs)}), T "
        f"{config.distillation_temperature:g}, weight {config.distillation_weight:g}; the teachers agree with "
        f"{agreement:.1%} of the training labels, mean target on the true class {true_class:.2f}")
    return targets, runs
