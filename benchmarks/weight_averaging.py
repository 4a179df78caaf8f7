"""Weight averaging after the fact: the mean of the weights of the low-learning-rate epochs against training's pick.

Averages of predictions (seed ensembles, test-time speeds) gain accuracy but
cost inference; an average of weights (stochastic weight averaging, Izmailov
et al. 2018) costs nothing at inference. For every run trained with
`--keep-epoch-weights` this script averages the weights of every epoch from
`--start-epoch` (default: the first epoch with a lower learning rate than the
first) to the last, BatchNorm's moving statistics included (no
recalibration), and scores the averaged model on the run's test fold exactly
as the run was scored (`training.evaluate.evaluate_model`; the run's own model
must reproduce its `metrics.json` first). Nothing is selected: no validation
score is read. Writes `benchmarks/results/<name>.{json,md}`: per run both
UAs, and averaged − selected paired by run, pooled and per corpus (research
log #47).

Example:
    python -m benchmarks.weight_averaging runs/benchmarks/exp_emodb_speed4/mhsa/*_seed* \\
        --name weight_averaging_emodb_speed4
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from benchmarks.common import markdown_table, provenance, run_test_fold, write_results


def average_weights(weight_sets: Sequence[List[np.ndarray]]) -> List[np.ndarray]:
    """The element-wise mean of several `model.get_weights()` lists, each array in its own dtype.

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


def score_run(run: Path, start_epoch: Optional[int], data_dir: Optional[str]) -> Dict[str, Any]:
    """One run's recorded test UA and that of its weights averaged from `start_epoch` (default: first lr drop)."""
    from benchmarks.selection_rules import first_drop_epoch, read_history
    from sercal_keras.inference import EmotionRecognizer
    from training.evaluate import evaluate_model
    from training.run_dir import EPOCH_WEIGHTS_DIR

    config = json.loads((run / "config.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    history = read_history(run)
    last = len(history["val_ua"])
    start = start_epoch or first_drop_epoch(history["learning_rate"])
    if not 1 <= start <= last:
        raise SystemExit(f"{run}: --start-epoch must lie in [1, {last}]. Received: {start}")
    paths = [run / EPOCH_WEIGHTS_DIR / f"epoch{epoch:02d}.weights.h5" for epoch in range(start, last + 1)]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise SystemExit(f"{missing[0]} is missing: train the runs with --keep-epoch-weights")
    corpus, fold = run_test_fold(run, data_dir)
    recognizer = EmotionRecognizer.load(run)
    recorded = float(metrics["utterance"]["ua"])
    selected = evaluate_model(recognizer, corpus, fold.test)["utterance"]
    if not np.isclose(selected["ua"], recorded, atol=1e-6):
        raise SystemExit(f"{run}: recomputed UA {selected['ua']:.4f}, metrics.json says {recorded:.4f}; "
                         "the run and this script disagree")
    weight_sets = []
    for path in paths:
        recognizer.model.load_weights(str(path))
        weight_sets.append([w.copy() for w in recognizer.model.get_weights()])
    recognizer.model.set_weights(average_weights(weight_sets))
    averaged = evaluate_model(recognizer, corpus, fold.test)["utterance"]
    return {"run": str(run), "corpus": config["corpus"], "variant": config.get("variant"), "fold": metrics["fold"],
            "seed": metrics["seed"], "selected_epoch": metrics.get("best_epoch"), "epochs": [start, last],
            "selected_ua": recorded, "averaged_ua": float(averaged["ua"]), "selected_wa": float(selected["wa"]),
            "averaged_wa": float(averaged["wa"])}


def summarize(rows: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """Averaged − selected paired by run: pooled over all rows (`"all"`) and per corpus."""
    from benchmarks.paired import paired_difference

    groups: Dict[str, List[Dict[str, Any]]] = {"all": list(rows)}
    for row in rows:
        groups.setdefault(row["corpus"], []).append(row)
    return {name: paired_difference({(r["run"], 0): r["averaged_ua"] for r in group},
                                    {(r["run"], 0): r["selected_ua"] for r in group})
            for name, group in groups.items()}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.weight_averaging",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run directories trained with --keep-epoch-weights")
    parser.add_argument("--start-epoch", type=int, default=None,
                        help="first epoch averaged (1-based; default: the first lr drop); the last is the run's last")
    parser.add_argument("--data-dir", help="corpus folder (default: each run's config)")
    parser.add_argument("--name", default="weight_averaging", help="results name")
    args = parser.parse_args(argv)

    from training.config import import_library_quietly

    import_library_quietly()
    source = provenance("benchmarks.weight_averaging")  # the code this started from, not what is checked out at the end
    rows = []
    for done, run in enumerate(map(Path, args.runs), start=1):
        row = score_run(run, args.start_epoch, args.data_dir)
        rows.append(row)
        print(f"[{done}/{len(args.runs)}] {run}: epoch {row['selected_epoch']} {100 * row['selected_ua']:.1f} → "
              f"epochs {row['epochs'][0]}–{row['epochs'][1]} averaged {100 * row['averaged_ua']:.1f}", flush=True)
    summary = summarize(rows)
    payload = {**source, "rows": rows, "summary": summary}
    fmt = lambda d: (f"{100 * d['mean']:+.1f} pp [{100 * d['ci95_low']:+.1f}, {100 * d['ci95_high']:+.1f}], "  # noqa: E731
                     f"{d['wins']}/{d['n']} runs better, p {d['p_value']:.3g}")
    lines = "\n".join(f"- {name}: {fmt(d)}" for name, d in summary.items())
    table = [[Path(r["run"]).parent.parent.name + "/" + Path(r["run"]).parent.name, r["fold"], str(r["seed"]),
              str(r["selected_epoch"]), f"{r['epochs'][0]}–{r['epochs'][1]}", f"{100 * r['selected_ua']:.1f}",
              f"{100 * r['averaged_ua']:.1f}"] for r in rows]
    markdown = (
        "# Weight averaging: the mean of the weights from the first learning-rate drop on, against the selected "
        "epoch\n\n"
        f"Command: `{payload['command']}`  \nCommit: `{payload['git_commit']}`\n\n"
        "Test UA (utterance level, %). Averaged − selected, paired by run:\n\n" + lines + "\n\n"
        + markdown_table(["grid/variant", "fold", "seed", "selected epoch", "epochs averaged", "UA selected",
                          "UA averaged"], table)
    )
    write_results(args.name, payload, markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
