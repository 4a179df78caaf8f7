"""Per-class recall of two sets of runs, paired by (fold, seed): which emotions a change moves.

A recipe change is decided on UA (the mean of the per-class recalls); this
shows where that UA comes from. Each run's `metrics.json` (written by
`training.fit`) holds its utterance-level per-class recall and confusion
matrix; runs of the two sets are paired by fold and seed, as
`benchmarks.paired` pairs them, and every class gets its paired difference
with a 95 % t interval. The confusion matrices are summed over each set's
runs to name the largest confusions. Nothing is retrained or rescored.

Example:
    python -m benchmarks.per_class \\
        --candidate runs/benchmarks/exp_x_logmel64/mhsa/*_seed* \\
        --baseline runs/benchmarks/exp_x/mhsa/*_seed* --name per_class_x
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from benchmarks.common import markdown_table, started, write_results
from benchmarks.paired import Key, paired_difference, pp_interval


def read_runs(runs: Sequence[str], side: str) -> Tuple[List[str], Dict[Key, Dict[str, Any]]]:
    """The labels and each run's utterance metrics, keyed by (fold, seed).

    Raises SystemExit naming the run when its `metrics.json` is missing, when
    two runs share a (fold, seed), or when the runs' label sets differ.
    """
    labels: Optional[List[str]] = None
    by_key: Dict[Key, Dict[str, Any]] = {}
    for run in map(Path, runs):
        path = run / "metrics.json"
        if not path.is_file():
            raise SystemExit(f"{side} run {run}: no metrics.json (give training.fit run directories)")
        metrics = json.loads(path.read_text())
        key = (metrics["fold"], int(metrics["seed"]))
        if key in by_key:
            raise SystemExit(f"{side} run {run}: a second run of fold {key[0]}, seed {key[1]}")
        run_labels = list(metrics["utterance"]["labels"])
        if labels is not None and run_labels != labels:
            raise SystemExit(f"{side} run {run}: labels {run_labels} differ from {labels}")
        labels = run_labels
        by_key[key] = metrics["utterance"]
    return labels or [], by_key


def largest_confusions(confusion: np.ndarray, labels: Sequence[str], top: int = 4) -> List[Dict[str, Any]]:
    """The `top` off-diagonal cells of a summed confusion matrix (rows: true class).

    Example:
    >>> largest_confusions(np.array([[8, 2], [5, 5]]), ["a", "b"], top=1)
    [{'true': 'b', 'predicted': 'a', 'count': 5, 'share_of_true': 0.5}]
    """
    off = np.array(confusion, dtype=float)
    np.fill_diagonal(off, -1.0)
    order = np.argsort(-off, axis=None, kind="stable")[:top]
    rows, cols = np.unravel_index(order, off.shape)
    support = np.asarray(confusion).sum(axis=1)
    return [{"true": labels[i], "predicted": labels[j], "count": int(confusion[i][j]),
             "share_of_true": round(float(confusion[i][j]) / max(int(support[i]), 1), 6)}
            for i, j in zip(rows, cols) if off[i, j] > 0]


def compare_per_class(candidate: Dict[Key, Dict[str, Any]], baseline: Dict[Key, Dict[str, Any]],
                      labels: Sequence[str]) -> Dict[str, Any]:
    """Per class: both sets' mean recall over the common (fold, seed) pairs and the paired difference."""
    keys = sorted(set(candidate) & set(baseline))
    if len(keys) < 2:
        raise SystemExit(f"{len(keys)} common (fold, seed) pair(s); a paired comparison needs two or more")
    classes = {}
    for label in labels:
        c = {k: float(candidate[k]["per_class_recall"][label]) for k in keys}
        b = {k: float(baseline[k]["per_class_recall"][label]) for k in keys}
        classes[label] = paired_difference(c, b)
    confusion = {side: np.sum([np.asarray(runs[k]["confusion_matrix"]) for k in keys], axis=0)
                 for side, runs in (("candidate", candidate), ("baseline", baseline))}
    return {
        "pairs": [list(k) for k in keys],
        "classes": classes,
        "ua": {side: round(float(np.mean([runs[k]["ua"] for k in keys])), 6)
               for side, runs in (("candidate", candidate), ("baseline", baseline))},
        "confusion": {side: m.tolist() for side, m in confusion.items()},
        "largest_confusions": {side: largest_confusions(m, labels) for side, m in confusion.items()},
    }


def _confusion_text(cells: Sequence[Dict[str, Any]]) -> str:
    return "; ".join(f"{c['true']} → {c['predicted']} {c['count']} ({100 * c['share_of_true']:.0f} %)" for c in cells)


def to_markdown(payload: Dict[str, Any]) -> str:
    result = payload["comparison"]
    rows = [[label, f"{100 * d['candidate_mean']:.1f}", f"{100 * d['baseline_mean']:.1f}",
             pp_interval(d),
             f"{d['wins']}/{d['n']}"] for label, d in result["classes"].items()]
    return (
        "# Per-class recall: candidate against baseline, paired by fold and seed\n\n"
        f"Command: `{payload['command']}`  \nCommit: `{payload['git_commit']}`\n\n"
        f"{len(result['pairs'])} pairs; utterance-level recall (%), each set's mean over the pairs, and the paired "
        f"difference with its 95 % t interval. UA over the pairs: {100 * result['ua']['candidate']:.1f} "
        f"(candidate) against {100 * result['ua']['baseline']:.1f} (baseline).\n\n"
        + markdown_table(["class", "candidate", "baseline", "difference [95 %]", "pairs ahead"], rows)
        + "\nLargest confusions (true → predicted, summed over the pairs' runs, share of the true class's "
        "utterances):\n\n"
        f"- candidate: {_confusion_text(result['largest_confusions']['candidate'])}\n"
        f"- baseline: {_confusion_text(result['largest_confusions']['baseline'])}\n"
    )


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.per_class", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("Example:")[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidate", nargs="+", required=True, metavar="RUN", help="run directories of the change")
    parser.add_argument("--baseline", nargs="+", required=True, metavar="RUN", help="run directories to compare with")
    parser.add_argument("--name", default="per_class", help="results name")
    args = parser.parse_args(argv)

    source = started("benchmarks.per_class")
    labels, candidate = read_runs(args.candidate, "candidate")
    baseline_labels, baseline = read_runs(args.baseline, "baseline")
    if labels != baseline_labels:
        raise SystemExit(f"the candidate's labels {labels} differ from the baseline's {baseline_labels}")
    payload = {**source, "labels": labels, "comparison": compare_per_class(candidate, baseline, labels)}
    markdown = to_markdown(payload)
    write_results(args.name, payload, markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
