"""Weight averaging: one model from the mean of several epochs' weights.

Stochastic weight averaging (Izmailov et al., 2018) in its plainest form: the
element-wise mean of the weights saved at the end of each epoch of a window,
BatchNorm's moving statistics averaged with the rest, or recomputed for the
averaged weights over the training segments (`recompute_batch_norm`, SWA's
"bn_update"). `python -m training.fit --average-from-epoch N` saves the mean of epochs
N..last instead of the best validation epoch, and
`benchmarks.weight_averaging` scores the same mean after the fact on runs
trained with `--keep-epoch-weights`: one function for both, so the research
log's numbers are the option's.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Sequence

import numpy as np


def average_weights(weight_sets: Sequence[List[np.ndarray]]) -> List[np.ndarray]:
    """The element-wise mean of several `model.get_weights()` lists, each array in its own dtype.

    Args:
        weight_sets: one list of arrays per model, all from the same architecture.

    Returns:
        One list of arrays: the means (computed in float64, cast back).

    Example:
    >>> [w.tolist() for w in average_weights([[np.array([1.0, 2.0])], [np.array([3.0, 4.0])]])]
    [[2.0, 3.0]]
    """
    if not weight_sets:
        raise ValueError("average_weights needs at least one set of weights")
    if len({len(s) for s in weight_sets}) != 1:
        raise ValueError("the weight sets come from different models (different numbers of arrays)")
    return [np.mean(np.stack([np.asarray(a, np.float64) for a in arrays]), axis=0).astype(np.asarray(arrays[0]).dtype)
            for arrays in zip(*weight_sets)]


def describe_window(averaged_epochs: Sequence[int]) -> str:
    """How logs, summaries and reports name an averaged model, e.g. `mean of the weights of epochs 11-30`.

    Args:
        averaged_epochs: the first and last epoch averaged (1-based), as `metrics.json` records them.
    """
    first, last = averaged_epochs
    return f"mean of the weights of epochs {first}-{last}"


def describe_saved_model(average_from_epoch: int, has_validation: bool) -> str:
    """Which weights a run's config saves, as logs and summaries say it: the rule, before any epoch has run.

    Args:
        average_from_epoch: the config's `average_from_epoch` (0 = no averaging).
        has_validation: whether the run holds out validation speakers.

    Example:
    >>> describe_saved_model(11, False), describe_saved_model(0, True), describe_saved_model(0, False)
    ('mean of the weights of epochs 11..last', 'best validation UA (utterance level)', 'last epoch')
    """
    if average_from_epoch:
        return f"mean of the weights of epochs {average_from_epoch}..last"
    return "best validation UA (utterance level)" if has_validation else "last epoch"


def load_averaged_weights(model, paths: Sequence[Path]) -> None:
    """Sets `model`'s weights to the mean of the `.weights.h5` files at `paths`.

    Args:
        model: a Keras model of the architecture that saved the files.
        paths: weight files (`model.save_weights`), e.g. one per epoch.

    Raises:
        FileNotFoundError: a file is missing (named; checked before any is read).

    Example:
        load_averaged_weights(model, [run / "epoch_weights" / f"epoch{e:02d}.weights.h5" for e in range(11, 31)])
    """
    paths = [Path(p) for p in paths]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"weight files to average are missing: {', '.join(missing)}")
    weight_sets = []
    for path in paths:
        model.load_weights(str(path))
        weight_sets.append([np.array(w, copy=True) for w in model.get_weights()])
    model.set_weights(average_weights(weight_sets))


def recompute_batch_norm(model, features: np.ndarray, batch_size: int = 256) -> int:
    """Replaces every BatchNorm layer's moving statistics with its input's statistics over `features`.

    The mean of several epochs' moving statistics is not the statistics of
    the mean network, least of all when the epochs differ (a weight average
    at a high learning rate). Layer by layer in graph order, each BatchNorm
    layer's input is computed in inference mode (the layers before it
    already recomputed, dropout off) and its mean and variance over the
    batch and spatial axes become the layer's moving mean and variance: the
    exact population statistics, not a moving average.

    Args:
        model: a functional Keras model whose BatchNormalization layers are
            top-level layers (as `sercal_keras.models` builds them).
        features: model inputs to take the statistics over, e.g. the run's
            training segments `(n, freq, time)`.
        batch_size: segments per forward pass.

    Returns:
        The number of BatchNorm layers recomputed.

    Example:
        load_averaged_weights(model, paths)
        recompute_batch_norm(model, splits.train.features)
    """
    import keras

    if len(features) == 0:
        raise ValueError("recompute_batch_norm needs at least one input segment")
    layers = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in layers:
        probe = keras.Model(model.input, layer.input)
        axis = layer.axis if isinstance(layer.axis, int) else layer.axis[0]
        count, total, squares = 0, 0.0, 0.0
        for start in range(0, len(features), batch_size):
            x = np.asarray(probe(features[start:start + batch_size], training=False), np.float64)
            x = np.moveaxis(x, axis, -1).reshape(-1, x.shape[axis])
            count += len(x)
            total = total + x.sum(axis=0)
            squares = squares + np.square(x).sum(axis=0)
        mean = total / count
        variance = np.maximum(squares / count - np.square(mean), 0.0)
        layer.moving_mean.assign(mean.astype(layer.moving_mean.dtype))
        layer.moving_variance.assign(variance.astype(layer.moving_variance.dtype))
    return len(layers)
