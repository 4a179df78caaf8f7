"""Evaluation metrics for speech emotion recognition, in numpy alone.

The numbers every report of this project uses (DESIGN.md §4):

- **WA** (weighted accuracy): plain accuracy, the fraction of items right;
- **UA** (unweighted accuracy): the mean of the per-class recalls, so every
  emotion counts the same however rare it is (the headline number);
- **macro-F1**: the mean of the per-class F1 scores;
- the **confusion matrix** (rows: true class, columns: predicted class);
- **utterance aggregation**: an utterance's probabilities are the mean of its
  segments' probabilities (`aggregate_by_utterance`).

Conventions, so that rare or absent classes never produce NaN in a summary:
a class with no true items has no recall: it is reported as `None` in
`per_class_recall` and left out of UA (scikit-learn's `balanced_accuracy_score`
does the same). Macro-F1 averages over the classes that occur in the true or
the predicted labels (scikit-learn's `f1_score(average="macro")` without
`labels=`); a class predicted but never true scores F1 = 0 there.

Imports nothing but numpy, so the edge runtime and the benchmark scripts can
use it without TensorFlow.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np


def _labels_array(values, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D class indices. Received shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        if not np.all(np.equal(np.mod(array, 1), 0)):
            raise ValueError(f"{name} must hold integer class indices. Received dtype {array.dtype}")
        array = array.astype(np.int64)
    return array.astype(np.int64, copy=False)


def confusion_matrix(y_true, y_pred, num_classes: Optional[int] = None) -> np.ndarray:
    """Counts of (true class, predicted class) pairs.

    Args:
        y_true: int class indices, shape (n,).
        y_pred: int class indices, shape (n,).
        num_classes: size of the matrix; defaults to 1 + the largest index seen.

    Returns:
        int64 array (num_classes, num_classes): `cm[i, j]` = items of true class
        `i` predicted as `j`.

    Example:
    >>> confusion_matrix([0, 0, 1, 2], [0, 1, 1, 2])
    array([[1, 1, 0],
           [0, 1, 0],
           [0, 0, 1]])
    """
    y_true = _labels_array(y_true, "y_true")
    y_pred = _labels_array(y_pred, "y_pred")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in length: {y_true.shape} vs {y_pred.shape}")
    seen = int(max(y_true.max(initial=-1), y_pred.max(initial=-1))) + 1
    if num_classes is None:
        num_classes = seen
    if seen > num_classes or (y_true.size and min(y_true.min(), y_pred.min()) < 0):
        raise ValueError(f"class indices must lie in [0, {num_classes}). Received indices up to {seen - 1}")
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def per_class_recall(matrix) -> List[Optional[float]]:
    """Recall of each class from a confusion matrix; `None` for a class with no true items."""
    matrix = np.asarray(matrix, dtype=np.float64)
    support = matrix.sum(axis=1)
    return [float(matrix[i, i] / support[i]) if support[i] > 0 else None for i in range(len(matrix))]


def per_class_precision(matrix) -> List[Optional[float]]:
    """Precision of each class; `None` for a class never predicted."""
    matrix = np.asarray(matrix, dtype=np.float64)
    predicted = matrix.sum(axis=0)
    return [float(matrix[i, i] / predicted[i]) if predicted[i] > 0 else None for i in range(len(matrix))]


def per_class_f1(matrix) -> List[Optional[float]]:
    """F1 of each class (2·TP / (2·TP + FP + FN)); `None` for a class neither true nor predicted."""
    matrix = np.asarray(matrix, dtype=np.float64)
    tp = np.diag(matrix)
    denominator = matrix.sum(axis=0) + matrix.sum(axis=1)  # = 2TP + FP + FN
    return [float(2 * tp[i] / denominator[i]) if denominator[i] > 0 else None for i in range(len(matrix))]


def weighted_accuracy(matrix) -> float:
    """WA: correct items / all items (plain accuracy)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    total = matrix.sum()
    if total == 0:
        raise ValueError("cannot compute accuracy of an empty confusion matrix")
    return float(np.trace(matrix) / total)


def unweighted_accuracy(matrix) -> float:
    """UA: mean recall over the classes that have true items."""
    recalls = [r for r in per_class_recall(matrix) if r is not None]
    if not recalls:
        raise ValueError("cannot compute UA of an empty confusion matrix")
    return float(np.mean(recalls))


def macro_f1(matrix) -> float:
    """Macro-F1: mean F1 over the classes that are true or predicted at least once."""
    scores = [s for s in per_class_f1(matrix) if s is not None]
    if not scores:
        raise ValueError("cannot compute F1 of an empty confusion matrix")
    return float(np.mean(scores))


def classification_metrics(y_true, y_pred, labels: Sequence[str]) -> Dict[str, Any]:
    """Every metric of one set of predictions, as a JSON-ready dict.

    Args:
        y_true: int class indices (n,).
        y_pred: int class indices (n,).
        labels: class names in index order.

    Returns:
        `{"count", "wa", "ua", "macro_f1", "per_class_recall": {label: r|None},
        "per_class_f1": {...}, "support": {label: n}, "confusion_matrix":
        [[...]] (rows true, columns predicted), "labels": [...]}`.

    Example:
    >>> m = classification_metrics([0, 0, 1, 1], [0, 1, 1, 1], ["a", "b"])
    >>> m["wa"], m["ua"]
    (0.75, 0.75)
    """
    labels = [str(label) for label in labels]
    matrix = confusion_matrix(y_true, y_pred, len(labels))
    return {
        "count": int(matrix.sum()),
        "wa": weighted_accuracy(matrix),
        "ua": unweighted_accuracy(matrix),
        "macro_f1": macro_f1(matrix),
        "per_class_recall": dict(zip(labels, per_class_recall(matrix))),
        "per_class_f1": dict(zip(labels, per_class_f1(matrix))),
        "support": dict(zip(labels, (int(s) for s in matrix.sum(axis=1)))),
        "labels": labels,
        "confusion_matrix": matrix.tolist(),
    }


def aggregate_by_utterance(segment_probs, utterance_index) -> Tuple[np.ndarray, np.ndarray]:
    """Utterance probabilities: the mean of each utterance's segment probabilities.

    Args:
        segment_probs: (num_segments, num_classes) probabilities.
        utterance_index: (num_segments,) the utterance each segment belongs to
            (any integer ids; segments of one utterance need not be adjacent).

    Returns:
        `(utterance_ids, utterance_probs)`: the sorted unique ids (u,) and their
        mean probabilities (u, num_classes), float64.

    Example:
    >>> ids, probs = aggregate_by_utterance([[0.8, 0.2], [0.4, 0.6], [0.1, 0.9]], [7, 7, 3])
    >>> ids.tolist(), probs.round(2).tolist()
    ([3, 7], [[0.1, 0.9], [0.6, 0.4]])
    """
    probs = np.asarray(segment_probs, dtype=np.float64)
    index = _labels_array(utterance_index, "utterance_index")
    if probs.ndim != 2 or len(probs) != len(index):
        raise ValueError(
            "segment_probs must be (num_segments, num_classes) with one utterance_index per segment. "
            f"Received shapes {probs.shape} and {index.shape}"
        )
    ids, inverse, counts = np.unique(index, return_inverse=True, return_counts=True)
    sums = np.zeros((len(ids), probs.shape[1]), np.float64)
    np.add.at(sums, inverse, probs)
    return ids, sums / counts[:, None]


def utterance_labels(segment_labels, utterance_index) -> Tuple[np.ndarray, np.ndarray]:
    """The label of each utterance from its segments' labels (which must agree)."""
    labels = _labels_array(segment_labels, "segment_labels")
    index = _labels_array(utterance_index, "utterance_index")
    ids, first = np.unique(index, return_index=True)
    result = labels[first]
    _, inverse = np.unique(index, return_inverse=True)
    if np.any(labels != result[inverse]):
        raise ValueError("segments of one utterance carry different labels")
    return ids, result


def evaluate_segments(segment_probs, segment_labels, utterance_index, labels: Sequence[str]) -> Dict[str, Any]:
    """Segment-level and utterance-level metrics of one evaluation set.

    Args:
        segment_probs: (num_segments, num_classes) model probabilities.
        segment_labels: (num_segments,) true class of each segment.
        utterance_index: (num_segments,) utterance id of each segment.
        labels: class names in index order.

    Returns:
        `{"segment": classification_metrics(...), "utterance": classification_metrics(...)}`,
        utterance predictions being the argmax of the mean segment probabilities.
    """
    probs = np.asarray(segment_probs, dtype=np.float64)
    seg_labels = _labels_array(segment_labels, "segment_labels")
    if probs.ndim != 2 or probs.shape[1] != len(labels):
        raise ValueError(f"segment_probs must be (n, {len(labels)}). Received shape {probs.shape}")
    ids, utt_probs = aggregate_by_utterance(probs, utterance_index)
    _, utt_true = utterance_labels(seg_labels, utterance_index)
    return {
        "segment": classification_metrics(seg_labels, probs.argmax(axis=1), labels),
        "utterance": classification_metrics(utt_true, utt_probs.argmax(axis=1), labels),
    }


def mean_std(values: Sequence[float]) -> Dict[str, Any]:
    """Mean and sample standard deviation (ddof=1; 0 for a single value) of a list."""
    array = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if array.size == 0:
        return {"mean": None, "std": None, "n": 0}
    std = float(array.std(ddof=1)) if array.size > 1 else 0.0
    return {"mean": float(array.mean()), "std": std, "n": int(array.size)}
