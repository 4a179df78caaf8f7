"""Model-selection rules compared on the same training runs: which epoch to keep.

A run of `python -m training.fit` keeps the epoch with the best validation UA
(the earliest on ties). With two validation speakers that number is noisy, and
a barely trained epoch of the high-learning-rate phase can tie or beat the
trained ones (experiments.md, "Next": model selection). This script scores
another rule on runs trained with `--keep-epoch-weights`: **the best
validation UA among the epochs from `--start-epoch` on, the latest on ties**
(default start: the first epoch with a lower learning rate than the first),
and **repair**: training's pick unless it lies before `--start-epoch`, and
then the late rule's (research log #44). All rules see the same training
trajectory, so their differences are the selection alone: paired comparisons
without training noise.

For every run it reads `history.csv` (validation UA and learning rate per
epoch), checks that the current rule gives the run's recorded `best_epoch`,
and where the two rules pick different epochs it loads those epochs' weights
and scores them on the run's test fold exactly as the run was scored
(`EmotionRecognizer.predict_speakers` + `metrics.evaluate_segments`; the
current rule's epoch must reproduce `metrics.json`'s UA). Writes
`benchmarks/results/<name>.{json,md}`.

Example:
    python -m benchmarks.selection_rules runs/benchmarks/exp_ravdess_default_recipe/mhsa/*_seed* \\
        --name selection_rules_ravdess_default_recipe
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from benchmarks.common import (markdown_table, require_selected_epoch, rescore_parser, run_test_fold, started,
                               write_results)


def current_rule(val_ua: Sequence[float]) -> int:
    """1-based epoch of the best validation UA, the earliest on ties (what training does).

    Example:
    >>> current_rule([0.6, 0.5, 0.6, 0.4])
    1
    """
    return int(np.argmax(val_ua)) + 1


def late_rule(val_ua: Sequence[float], start_epoch: int) -> int:
    """1-based epoch of the best validation UA among epochs >= `start_epoch`, the latest on ties.

    Example:
    >>> late_rule([0.6, 0.5, 0.6, 0.4, 0.6], start_epoch=2)
    5
    """
    if not 1 <= start_epoch <= len(val_ua):
        raise ValueError(f"start_epoch must lie in [1, {len(val_ua)}]. Received: start_epoch={start_epoch}")
    tail = np.asarray(val_ua[start_epoch - 1:], np.float64)
    return start_epoch + int(np.flatnonzero(tail == tail.max())[-1])


def repair_rule(val_ua: Sequence[float], start_epoch: int) -> int:
    """Training's pick (`current_rule`) unless it lies before `start_epoch`; then `late_rule`'s.

    Example:
    >>> repair_rule([0.6, 0.5, 0.6, 0.4, 0.6], start_epoch=2), repair_rule([0.5, 0.6, 0.6], start_epoch=2)
    (5, 2)
    """
    current = current_rule(val_ua)
    return current if current >= start_epoch else late_rule(val_ua, start_epoch)


def first_drop_epoch(learning_rates: Sequence[float]) -> int:
    """1-based first epoch whose learning rate is below the first epoch's (1 when it never drops).

    Example:
    >>> first_drop_epoch([1e-3] * 10 + [1e-4] * 10)
    11
    """
    lower = np.flatnonzero(np.asarray(learning_rates) < learning_rates[0])
    return int(lower[0]) + 1 if len(lower) else 1


def read_history(run: Path) -> Dict[str, List[float]]:
    with open(run / "history.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or "val_ua" not in rows[0]:
        raise SystemExit(f"{run}: history.csv has no validation UA (trained without validation?)")
    return {"val_ua": [float(r["val_ua"]) for r in rows], "learning_rate": [float(r["learning_rate"]) for r in rows]}


def epoch_weights(run: Path, epoch: int) -> Path:
    """The kept weights of `epoch` (1-based) of `run`; SystemExit naming the file and the fix when missing."""
    from training.run_dir import EPOCH_WEIGHTS_DIR, epoch_weights_name

    path = Path(run) / EPOCH_WEIGHTS_DIR / epoch_weights_name(epoch)
    if not path.is_file():
        raise SystemExit(f"{path} is missing: train the runs with --keep-epoch-weights")
    return path


def epoch_ua(recognizer, epoch: int, run: Path, segments, corpus, labels) -> float:
    """Test UA of `run` with the weights of `epoch` (1-based), scored as the run was."""
    from benchmarks.seed_ensemble import member_probabilities
    from sercal_keras.metrics import evaluate_segments

    recognizer.model.load_weights(str(epoch_weights(run, epoch)))
    probs = member_probabilities(recognizer, segments, corpus)
    return float(evaluate_segments(probs, segments.labels, segments.utterance_index, labels)["utterance"]["ua"])


def score_run(run: Path, start_epoch: Optional[int], data_dir: Optional[str]) -> Dict[str, Any]:
    """Both rules' epochs on one run, and their test UA (computed only where they differ)."""
    history = read_history(run)
    metrics = json.loads((run / "metrics.json").read_text())
    require_selected_epoch(run, metrics)
    start = start_epoch or first_drop_epoch(history["learning_rate"])
    current, late = current_rule(history["val_ua"]), late_rule(history["val_ua"], start)
    repair = repair_rule(history["val_ua"], start)
    if current != metrics["best_epoch"]:
        raise SystemExit(f"{run}: the current rule gives epoch {current}, metrics.json says {metrics['best_epoch']}")
    recorded = float(metrics["utterance"]["ua"])
    row = {"run": str(run), "fold": metrics["fold"], "seed": metrics["seed"], "start_epoch": start,
           "current_epoch": current, "late_epoch": late, "repair_epoch": repair, "current_ua": recorded,
           "late_ua": recorded, "repair_ua": recorded}
    if late != current:
        from sercal_keras.data import extract_segments
        from sercal_keras.inference import EmotionRecognizer

        corpus, fold = run_test_fold(run, data_dir)
        recognizer = EmotionRecognizer.load(run)
        segments = extract_segments(corpus, fold.test, recognizer.feature_config, training=False)
        labels = list(corpus.labels)
        again = epoch_ua(recognizer, current, run, segments, corpus, labels)
        if not np.isclose(again, recorded, atol=1e-6):
            raise SystemExit(f"{run}: epoch {current}'s weights give UA {again:.4f}, metrics.json says "
                             f"{recorded:.4f}; the saved epochs are not the ones training selected from")
        row["late_ua"] = epoch_ua(recognizer, late, run, segments, corpus, labels)
        if repair == late:  # the repair rule moves a pick only to the late rule's epoch
            row["repair_ua"] = row["late_ua"]
    return row


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = rescore_parser("benchmarks.selection_rules", __doc__, "run directories trained with --keep-epoch-weights")
    parser.add_argument("--start-epoch", type=int, default=None,
                        help="first epoch the late rule may pick (1-based; default: the first lr drop)")
    args = parser.parse_args(argv)

    source = started("benchmarks.selection_rules")
    from benchmarks.paired import paired_difference, pp_interval

    rows = []
    for run in map(Path, args.runs):
        row = score_run(run, args.start_epoch, args.data_dir)
        rows.append(row)
        print(f"{run}: epoch {row['current_epoch']} → {row['late_epoch']}, UA {100 * row['current_ua']:.1f} → "
              f"{100 * row['late_ua']:.1f}", flush=True)
    # One pair per run: runs of several variants or grids share (fold, seed) pairs
    key = lambda r: (r["run"], r["seed"])  # noqa: E731
    paired = paired_difference({key(r): r["late_ua"] for r in rows}, {key(r): r["current_ua"] for r in rows})
    repair = paired_difference({key(r): r["repair_ua"] for r in rows}, {key(r): r["current_ua"] for r in rows})
    changed = sum(r["late_epoch"] != r["current_epoch"] for r in rows)
    repaired = sum(r["repair_epoch"] != r["current_epoch"] for r in rows)
    summary = {"runs": len(rows), "runs_with_another_epoch": changed, "runs_repaired": repaired,
               "current_ua_mean": float(np.mean([r["current_ua"] for r in rows])),
               "late_ua_mean": float(np.mean([r["late_ua"] for r in rows])), "late_minus_current": paired,
               "repair_ua_mean": float(np.mean([r["repair_ua"] for r in rows])), "repair_minus_current": repair}
    payload = {**source, "rows": rows, "summary": summary}
    table = [[r["fold"], str(r["seed"]), str(r["current_epoch"]), str(r["late_epoch"]), str(r["repair_epoch"]),
              f"{100 * r['current_ua']:.1f}", f"{100 * r['late_ua']:.1f}", f"{100 * r['repair_ua']:.1f}"]
             for r in rows]
    markdown = (
        "# Model selection: best validation UA over all epochs (earliest on ties) against the best from the "
        "first learning-rate drop on (latest on ties), and the repair rule\n\n"
        f"Command: `{payload['command']}`  \nCommit: `{payload['git_commit']}`\n\n"
        f"{len(rows)} runs, {changed} of them with another epoch under the late rule. Test UA (utterance level, %): "
        f"{100 * summary['current_ua_mean']:.1f} → {100 * summary['late_ua_mean']:.1f}; late − current, paired by "
        f"run: {pp_interval(paired)}, "
        f"{paired['wins']}/{paired['n']} runs better. Repair rule (the late rule's epoch only where training picked "
        f"one before the start): {repaired} runs moved, {100 * summary['repair_ua_mean']:.1f} %, repair − current "
        f"{pp_interval(repair)}.\n\n"
        + markdown_table(["fold", "seed", "epoch (current)", "epoch (late)", "epoch (repair)", "UA current", "UA late",
                          "UA repair"], table)
    )
    write_results(args.name, payload, markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
