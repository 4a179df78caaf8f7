"""Metrics against hand-computed values and an independent implementation (scikit-learn)."""

import math

import numpy as np
import pytest

from sercal_keras import metrics

# 9 items, 3 classes. Confusion matrix (rows true, columns predicted):
#   [[3, 1, 0],
#    [0, 2, 1],
#    [0, 0, 2]]
Y_TRUE = [0, 0, 0, 0, 1, 1, 1, 2, 2]
Y_PRED = [0, 0, 0, 1, 1, 1, 2, 2, 2]
LABELS = ["neutral", "angry", "sad"]


def test_confusion_matrix_by_hand():
    assert metrics.confusion_matrix(Y_TRUE, Y_PRED, 3).tolist() == [[3, 1, 0], [0, 2, 1], [0, 0, 2]]


def test_scores_by_hand():
    m = metrics.classification_metrics(Y_TRUE, Y_PRED, LABELS)
    assert m["wa"] == pytest.approx(7 / 9)
    # recalls 3/4, 2/3, 2/2
    assert m["ua"] == pytest.approx((3 / 4 + 2 / 3 + 1) / 3)
    assert list(m["per_class_recall"].values()) == pytest.approx([0.75, 2 / 3, 1.0])
    # precisions 3/3, 2/3, 2/3 → F1 6/7, 2/3, 4/5
    assert m["macro_f1"] == pytest.approx((6 / 7 + 2 / 3 + 4 / 5) / 3)
    assert m["support"] == {"neutral": 4, "angry": 3, "sad": 2}
    assert m["count"] == 9


def test_absent_class_is_left_out_of_ua_not_nan():
    # class 2 never true, predicted once: recall None, F1 0 (counts in macro-F1).
    m = metrics.classification_metrics([0, 0, 1, 1], [0, 2, 1, 1], LABELS)
    assert m["per_class_recall"]["sad"] is None
    assert m["ua"] == pytest.approx((0.5 + 1.0) / 2)
    f1_neutral = 2 * 1 / (2 * 1 + 0 + 1)
    assert m["macro_f1"] == pytest.approx((f1_neutral + 1.0 + 0.0) / 3)
    assert not any(isinstance(v, float) and math.isnan(v) for v in m.values() if isinstance(v, float))


def test_against_scikit_learn_on_random_predictions():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    for _ in range(20):
        k = int(rng.integers(2, 8))
        y_true = rng.integers(0, k, 200)
        y_pred = np.where(rng.random(200) < 0.5, y_true, rng.integers(0, k, 200))
        m = metrics.classification_metrics(y_true, y_pred, [str(i) for i in range(k)])
        assert m["wa"] == pytest.approx(sk.accuracy_score(y_true, y_pred))
        assert m["ua"] == pytest.approx(sk.balanced_accuracy_score(y_true, y_pred))
        assert m["macro_f1"] == pytest.approx(sk.f1_score(y_true, y_pred, average="macro"))
        assert m["confusion_matrix"] == sk.confusion_matrix(y_true, y_pred, labels=list(range(k))).tolist()


def test_utterance_aggregation_is_mean_probability():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]])
    utterance = [5, 5, 5, 2]
    ids, utt = metrics.aggregate_by_utterance(probs, utterance)
    assert ids.tolist() == [2, 5]
    np.testing.assert_allclose(utt, [[0.6, 0.4], [(0.9 + 0.2 + 0.3) / 3, (0.1 + 0.8 + 0.7) / 3]])


def test_evaluate_segments_segment_and_utterance_levels():
    # utterance 0 (true 0): segments argmax 0, 1, 1 but mean prob → class 0 (0.9+0.45+0.45 vs ...).
    probs = np.array([[0.9, 0.1], [0.45, 0.55], [0.45, 0.55], [0.2, 0.8]])
    labels = [0, 0, 0, 1]
    utterance = [0, 0, 0, 1]
    result = metrics.evaluate_segments(probs, labels, utterance, ["a", "b"])
    assert result["segment"]["wa"] == pytest.approx(2 / 4)
    assert result["segment"]["confusion_matrix"] == [[1, 2], [0, 1]]
    assert result["utterance"]["wa"] == 1.0
    assert result["utterance"]["count"] == 2


def test_segments_of_one_utterance_must_share_a_label():
    with pytest.raises(ValueError, match="different labels"):
        metrics.evaluate_segments(np.full((2, 2), 0.5), [0, 1], [3, 3], ["a", "b"])


def test_mean_std_uses_sample_std():
    summary = metrics.mean_std([0.5, 0.7, 0.9])
    assert summary["mean"] == pytest.approx(0.7)
    assert summary["std"] == pytest.approx(0.2)  # sqrt(((-.2)^2 + 0 + .2^2) / 2)
    assert metrics.mean_std([0.4]) == {"mean": 0.4, "std": 0.0, "n": 1}
