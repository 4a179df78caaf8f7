"""Test-time speed perturbation: one trained model scored on its test audio as recorded and sped up/down.

Seed ensembles gain 5–7 pp over their members (the research log, #19, #26,
#36): single models are noisy functions of their input. Averaging one model
over several versions of the same utterance is the cheap relative of that.
This script scores every given run twice on its test fold: as the run was
scored (each utterance as recorded; the recomputed UA must reproduce
`metrics.json`), and with copies of every test utterance at other speeds
(`change_speed`; by default the run's own training `speed_perturbation`
factors, so nothing is chosen by looking at test data). The segments of all
copies of an utterance are pooled into one mean of their probabilities, the
rule one copy already uses (`metrics.evaluate_segments`). A per-speaker model
standardises each copy of a speaker's audio by that copy's own statistics, as
its plain score does. Writes `benchmarks/results/<name>.{json,md}`: per run
both UAs, and with-speeds − plain paired by run, pooled and per corpus.

Example:
    python -m benchmarks.test_time_speed runs/benchmarks/exp_ravdess_default_recipe/fa_ca/*_seed* \\
        --name test_time_speed_ravdess
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from benchmarks.common import markdown_table, provenance, run_test_fold, write_results


def pooled_copies_scores(copies: Sequence[tuple], labels: Sequence[str]) -> Dict[str, Any]:
    """Utterance metrics of the segments of several copies of the same utterances, pooled per utterance.

    Args:
        copies: `(segment_probs, segments)` per copy: probabilities `(n_i, num_classes)` and the
            `SegmentSet` they were computed on (its labels and utterance index).
        labels: class names.

    Returns:
        `metrics.evaluate_segments(...)["utterance"]` over the concatenated segments, so an
        utterance's prediction is the mean over the segments of all its copies.

    Example:
    >>> from sercal_keras.data import SegmentSet
    >>> plain = SegmentSet(np.zeros((2, 1, 1), np.float32), np.array([0, 1]), np.array([0, 1]))
    >>> slow = SegmentSet(np.zeros((1, 1, 1), np.float32), np.array([1]), np.array([1]))
    >>> p_plain, p_slow = np.array([[0.9, 0.1], [0.6, 0.4]]), np.array([[0.0, 1.0]])
    >>> pooled_copies_scores([(p_plain, plain)], ["x", "y"])["ua"], pooled_copies_scores(
    ...     [(p_plain, plain), (p_slow, slow)], ["x", "y"])["ua"]
    (0.5, 1.0)
    """
    from sercal_keras.metrics import evaluate_segments

    probs = np.concatenate([p for p, _ in copies])
    seg_labels = np.concatenate([s.labels for _, s in copies])
    owners = np.concatenate([s.utterance_index for _, s in copies])
    return evaluate_segments(probs, seg_labels, owners, labels)["utterance"]


def score_run(run: Path, speeds: Optional[Sequence[float]], data_dir: Optional[str]) -> Dict[str, Any]:
    """One run's test UA as recorded and with the test audio at `speeds` too (default: its training speeds)."""
    from benchmarks.seed_ensemble import member_probabilities
    from sercal_keras.data import extract_segments
    from sercal_keras.inference import EmotionRecognizer

    config = json.loads((run / "config.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    speeds = [float(s) for s in (speeds if speeds is not None else config.get("speed_perturbation") or [])]
    if not speeds or any(s == 1.0 for s in speeds):
        raise SystemExit(f"{run}: no test-time speeds (the run was trained without speed perturbation and "
                         "--speeds was not given; 1.0 is always included and cannot be given)")
    corpus, fold = run_test_fold(run, data_dir)
    recognizer = EmotionRecognizer.load(run)
    labels = list(corpus.labels)
    copies = []
    for speed in [1.0] + speeds:
        segments = extract_segments(corpus, fold.test, recognizer.feature_config, training=False, speed=speed)
        copies.append((member_probabilities(recognizer, segments, corpus), segments))
        if speed == 1.0:
            plain = pooled_copies_scores(copies, labels)
            recorded = float(metrics["utterance"]["ua"])
            if not np.isclose(plain["ua"], recorded, atol=1e-6):
                raise SystemExit(f"{run}: recomputed UA {plain['ua']:.4f}, metrics.json says {recorded:.4f}; "
                                 "the run and this script disagree")
    with_speeds = pooled_copies_scores(copies, labels)
    return {"run": str(run), "corpus": config["corpus"], "variant": config.get("variant"), "fold": metrics["fold"],
            "seed": metrics["seed"], "speeds": [1.0] + speeds, "plain_ua": float(plain["ua"]),
            "with_speeds_ua": float(with_speeds["ua"]), "plain_wa": float(plain["wa"]),
            "with_speeds_wa": float(with_speeds["wa"])}


def summarize(rows: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """With-speeds − plain paired by run: pooled over all rows (`"all"`) and per corpus."""
    from benchmarks.paired import paired_difference

    groups: Dict[str, List[Dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups["all"].append(row)
        groups[row["corpus"]].append(row)
    return {name: paired_difference({(r["run"], 0): r["with_speeds_ua"] for r in group},
                                    {(r["run"], 0): r["plain_ua"] for r in group})
            for name, group in groups.items()}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.test_time_speed",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run directories (training.fit output)")
    parser.add_argument("--speeds", nargs="+", type=float, default=None,
                        help="test-time speed factors besides 1.0 (default: each run's training speed_perturbation)")
    parser.add_argument("--data-dir", help="corpus folder (default: each run's config)")
    parser.add_argument("--name", default="test_time_speed", help="results name")
    args = parser.parse_args(argv)

    from training.config import import_library_quietly

    import_library_quietly()
    rows = []
    for done, run in enumerate(map(Path, args.runs), start=1):
        row = score_run(run, args.speeds, args.data_dir)
        rows.append(row)
        print(f"[{done}/{len(args.runs)}] {run}: UA {100 * row['plain_ua']:.1f} → {100 * row['with_speeds_ua']:.1f}",
              flush=True)
    summary = summarize(rows)
    payload = {**provenance("benchmarks.test_time_speed"), "rows": rows, "summary": summary}
    fmt = lambda d: (f"{100 * d['mean']:+.1f} pp [{100 * d['ci95_low']:+.1f}, {100 * d['ci95_high']:+.1f}], "  # noqa: E731
                     f"{d['wins']}/{d['n']} runs better, p {d['p_value']:.3g}")
    lines = "\n".join(f"- {name}: {fmt(d)}" for name, d in summary.items())
    table = [[Path(r["run"]).parent.parent.name + "/" + Path(r["run"]).parent.name, r["fold"], str(r["seed"]),
              f"{100 * r['plain_ua']:.1f}", f"{100 * r['with_speeds_ua']:.1f}"] for r in rows]
    markdown = (
        "# Test-time speed perturbation: each run on its test audio as recorded, and pooled with sped-up/down "
        "copies\n\n"
        f"Command: `{payload['command']}`  \nCommit: `{payload['git_commit']}`\n\n"
        "Test UA (utterance level, %). With speeds − plain, paired by run:\n\n" + lines + "\n\n"
        + markdown_table(["grid/variant", "fold", "seed", "UA plain", "UA with speeds"], table)
    )
    write_results(args.name, payload, markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
