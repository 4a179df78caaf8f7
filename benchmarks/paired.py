"""Paired comparison of two model variants over the same folds and seeds."""

from __future__ import annotations

import math
from typing import Dict, Mapping, Tuple

import numpy as np
from scipy import stats

Key = Tuple[str, int]  # (fold name, seed)


def paired_difference(candidate: Mapping[Key, float], baseline: Mapping[Key, float]) -> Dict[str, float]:
    """Mean paired difference `candidate − baseline` with a 95 % t interval.

    Only (fold, seed) pairs present in both are used: a pair is the same test
    speakers, the same seed, the same recipe; only the variant differs.

    Args:
        candidate: metric per (fold, seed) of the variant under test.
        baseline: metric per (fold, seed) of the reference variant.

    Returns:
        dict with `n` (pairs), `mean`, `std` (of the differences), `ci95_low`,
        `ci95_high`, `t`, `p_value` (two-sided paired t-test), `wins` (pairs
        where the candidate is higher) and `sign_test_p` (two-sided).

    Example:
    >>> paired_difference({("f1", 0): 0.7, ("f2", 0): 0.6}, {("f1", 0): 0.6, ("f2", 0): 0.6})["mean"]
    0.05
    """
    keys = sorted(set(candidate) & set(baseline))
    diffs = np.array([candidate[k] - baseline[k] for k in keys], dtype=float)
    n = len(diffs)
    result = {"n": n, "mean": float(diffs.mean()) if n else math.nan}
    if n < 2:
        result.update(std=math.nan, ci95_low=math.nan, ci95_high=math.nan, t=math.nan, p_value=math.nan)
    else:
        std = float(diffs.std(ddof=1))
        half = float(stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n)
        t = result["mean"] / (std / math.sqrt(n)) if std > 0 else math.copysign(math.inf, result["mean"]) if result["mean"] else 0.0
        p = float(2 * stats.t.sf(abs(t), n - 1)) if math.isfinite(t) else 0.0
        result.update(std=std, ci95_low=result["mean"] - half, ci95_high=result["mean"] + half, t=t, p_value=p)
    wins, losses = int((diffs > 0).sum()), int((diffs < 0).sum())
    result["wins"] = wins
    result["losses"] = losses
    result["sign_test_p"] = float(stats.binomtest(wins, wins + losses).pvalue) if wins + losses else 1.0
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in result.items()}
