"""What averaging several trained models buys: UA of a seed ensemble against its members.

Runs of the same variant and recipe that differ only in their seed disagree a
lot on EmoDB (the test UA of one fold moves by ~7 pp between seeds: the
research log). Averaging their class probabilities is the textbook remedy.
This script groups the given run directories by test fold, recomputes every
member's segment probabilities on the fold's test utterances (each member must
reproduce its `metrics.json` UA: checked), averages them, and scores the
average exactly as a single run is scored (`metrics.evaluate_segments`). A
per-speaker model (`--feature-normalization speaker`) standardises each test
speaker by their own test audio, as its training did. Writes
`benchmarks/results/<name>.{json,md}`: per fold the members' UA and the
ensemble's, and the ensemble against the mean of its members paired by fold.
With `--test-time-speeds`, also the ensemble (`EmotionEnsemble`) scored with
those test-time speeds by `training.evaluate.evaluate_model` (research log #46).

Example:
    python -m benchmarks.seed_ensemble runs/benchmarks/exp_emodb_speaker_norm/mhsa/*_seed* \\
        --name seed_ensemble_emodb_speaker_norm_mhsa
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from benchmarks.common import markdown_table, run_test_fold, started, write_results


def member_probabilities(recognizer, segments, corpus) -> np.ndarray:
    """One run's segment probabilities on its test segments, normalised as its training was."""
    return recognizer.predict_speakers(segments.features,
                                       np.asarray(corpus.speakers, dtype=object)[segments.utterance_index])


def ensemble_scores(member_probs: Sequence[np.ndarray], segments, labels: Sequence[str]) -> Dict[str, Any]:
    """Utterance metrics of each member and of the average of their segment probabilities.

    Args:
        member_probs: one `(num_segments, num_classes)` array per member, same segments.
        segments: the `SegmentSet` they were computed on (labels, utterance index).
        labels: class names.

    Returns:
        `{"members": [utterance metrics, ...], "ensemble": utterance metrics}`.

    Example:
    >>> from sercal_keras.data import SegmentSet
    >>> segs = SegmentSet(np.zeros((2, 1, 1), np.float32), np.array([0, 1]), np.array([0, 1]))
    >>> a, b = np.array([[0.9, 0.1], [0.6, 0.4]]), np.array([[0.4, 0.6], [0.1, 0.9]])
    >>> r = ensemble_scores([a, b], segs, ["x", "y"])
    >>> [m["ua"] for m in r["members"]], r["ensemble"]["ua"]
    ([0.5, 0.5], 1.0)
    """
    from sercal_keras.metrics import evaluate_segments

    shapes = {np.shape(p) for p in member_probs}
    if len(shapes) != 1:
        raise ValueError(f"members scored different segments: probability shapes {sorted(shapes)}")
    score = lambda probs: evaluate_segments(probs, segments.labels, segments.utterance_index, labels)["utterance"]
    return {"members": [score(p) for p in member_probs], "ensemble": score(np.mean(member_probs, axis=0))}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.seed_ensemble", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run directories (training.fit output), several per test fold")
    parser.add_argument("--data-dir", help="corpus folder (default: each run's config)")
    parser.add_argument("--name", default="seed_ensemble", help="results name")
    parser.add_argument("--test-time-speeds", nargs="+", type=float, default=[],
                        help="also score the ensemble with these test-time speeds (e.g. 0.9 1.1)")
    args = parser.parse_args(argv)

    source = started("benchmarks.seed_ensemble")
    from benchmarks.paired import paired_difference, pp_interval
    from sercal_keras.data import extract_segments
    from sercal_keras.ensemble import EmotionEnsemble
    from sercal_keras.errors import ConfigError
    from sercal_keras.inference import EmotionRecognizer
    from training.evaluate import evaluate_model

    by_fold: Dict[str, List[Path]] = defaultdict(list)
    for run in map(Path, args.runs):
        by_fold[json.loads((run / "metrics.json").read_text())["fold"]].append(run)
    rows: List[Dict[str, Any]] = []
    for fold_name, runs in sorted(by_fold.items()):
        if len(runs) < 2:
            raise SystemExit(f"fold {fold_name}: one run ({runs[0]}); an ensemble needs two or more per fold")
        corpus, fold = run_test_fold(runs[0], args.data_dir)
        recognizers = [EmotionRecognizer.load(run) for run in runs]
        configs = {json.dumps(r.feature_config.to_dict(), sort_keys=True) for r in recognizers}
        if len(configs) != 1:
            raise SystemExit(f"fold {fold_name}: the runs use different features; they cannot be averaged")
        segments = extract_segments(corpus, fold.test, recognizers[0].feature_config, training=False)
        scores = ensemble_scores([member_probabilities(r, segments, corpus) for r in recognizers], segments,
                                 list(corpus.labels))
        for run, member in zip(runs, scores["members"]):
            recorded = json.loads((run / "metrics.json").read_text())["utterance"]["ua"]
            if not np.isclose(member["ua"], recorded, atol=1e-6):
                raise SystemExit(f"{run}: recomputed UA {member['ua']:.4f}, metrics.json says {recorded:.4f}; "
                                 "the run and this script disagree")
        row = {"fold": fold_name, "runs": [str(r) for r in runs],
               "member_ua": [m["ua"] for m in scores["members"]], "ensemble_ua": scores["ensemble"]["ua"],
               "ensemble_wa": scores["ensemble"]["wa"], "ensemble_confusion": scores["ensemble"]["confusion_matrix"]}
        if args.test_time_speeds:
            try:
                ensemble = EmotionEnsemble(recognizers, test_time_speeds=args.test_time_speeds)
            except ConfigError as error:
                raise SystemExit(f"--test-time-speeds: {error}") from None
            row["ensemble_with_speeds_ua"] = evaluate_model(ensemble, corpus, fold.test)["utterance"]["ua"]
        rows.append(row)
        with_speeds = (f", with test-time speeds {100 * row['ensemble_with_speeds_ua']:.1f}"
                       if args.test_time_speeds else "")
        print(f"{fold_name}: members {', '.join(f'{100 * u:.1f}' for u in row['member_ua'])} → "
              f"ensemble {100 * row['ensemble_ua']:.1f}{with_speeds}", flush=True)

    ensemble = {(r["fold"], 0): r["ensemble_ua"] for r in rows}
    members_mean = {(r["fold"], 0): float(np.mean(r["member_ua"])) for r in rows}
    paired = paired_difference(ensemble, members_mean)
    every_member = [u for r in rows for u in r["member_ua"]]
    summary = {"folds": len(rows), "members_per_fold": sorted({len(r["runs"]) for r in rows}),
               "member_ua_mean": float(np.mean(every_member)),
               "member_ua_std": float(np.std(every_member, ddof=1)) if len(every_member) > 1 else 0.0,
               "ensemble_ua_mean": float(np.mean([r["ensemble_ua"] for r in rows])),
               "ensemble_ua_std": float(np.std([r["ensemble_ua"] for r in rows], ddof=1)) if len(rows) > 1 else 0.0,
               "ensemble_minus_members_mean": paired}
    if args.test_time_speeds:
        summary["test_time_speeds"] = list(args.test_time_speeds)
        summary["ensemble_with_speeds_ua_mean"] = float(np.mean([r["ensemble_with_speeds_ua"] for r in rows]))
        summary["ensemble_with_speeds_minus_ensemble"] = paired_difference(
            {(r["fold"], 0): r["ensemble_with_speeds_ua"] for r in rows}, ensemble)
    payload = {**source, "rows": rows, "summary": summary}
    speeds_cell = (lambda v: [f"{100 * v:.1f}"]) if args.test_time_speeds else (lambda v: [])  # noqa: E731
    table = [[r["fold"], " / ".join(f"{100 * u:.1f}" for u in r["member_ua"]), f"{100 * np.mean(r['member_ua']):.1f}",
              f"{100 * r['ensemble_ua']:.1f}"] + speeds_cell(r.get("ensemble_with_speeds_ua")) for r in rows]
    table.append(["all folds", f"{100 * summary['member_ua_mean']:.1f} ± {100 * summary['member_ua_std']:.1f} (runs)",
                  f"{100 * summary['member_ua_mean']:.1f}",
                  f"{100 * summary['ensemble_ua_mean']:.1f} ± {100 * summary['ensemble_ua_std']:.1f} (folds)"]
                 + speeds_cell(summary.get("ensemble_with_speeds_ua_mean")))
    header = ["fold", "members", "members' mean", "ensemble"]
    speeds_text = ""
    if args.test_time_speeds:
        header.append("ensemble, test-time speeds " + "/".join(f"{s:g}" for s in args.test_time_speeds))
        d = summary["ensemble_with_speeds_minus_ensemble"]
        speeds_text = f" With test-time speeds − without, paired by fold: {pp_interval(d)}, {d['wins']}/{d['n']} folds."
    markdown = (
        "# Seed ensembles: the average of several runs' probabilities against the runs alone\n\n"
        f"Command: `{payload['command']}`  \nCommit: `{payload['git_commit']}`\n\n"
        "Test UA (utterance level, %) per fold: each member, their mean, and the ensemble (mean of the members' "
        "segment probabilities, scored like one run). Ensemble − mean of members, paired by fold: "
        f"{pp_interval(paired)}, {paired['wins']}/{paired['n']} folds.{speeds_text}\n\n"
        + markdown_table(header, table)
    )
    write_results(args.name, payload, markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
