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

import json
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from benchmarks.common import (grid_name, markdown_table, paired_by_run, paired_lines, reproduced_scores,
                               require_selected_epoch, rescore_parser, rescore_runs, run_test_fold, started,
                               write_results)
from training.weight_averaging import load_averaged_weights


def score_run(run: Path, start_epoch: Optional[int], data_dir: Optional[str]) -> Dict[str, Any]:
    """One run's recorded test UA and that of its weights averaged from `start_epoch` (default: first lr drop)."""
    from benchmarks.selection_rules import epoch_weights, first_drop_epoch, read_history
    from sercal_keras.inference import EmotionRecognizer
    from training.evaluate import evaluate_model

    config = json.loads((run / "config.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    require_selected_epoch(run, metrics)
    history = read_history(run)
    last = len(history["val_ua"])
    start = start_epoch or first_drop_epoch(history["learning_rate"])
    if not 1 <= start <= last:
        raise SystemExit(f"{run}: --start-epoch must lie in [1, {last}]. Received: {start}")
    paths = [epoch_weights(run, epoch) for epoch in range(start, last + 1)]  # all there before any work
    corpus, fold = run_test_fold(run, data_dir)
    recognizer = EmotionRecognizer.load(run)
    selected = reproduced_scores(run, recognizer, corpus, fold)
    load_averaged_weights(recognizer.model, paths)
    averaged = evaluate_model(recognizer, corpus, fold.test)["utterance"]
    return {"run": str(run), "corpus": config["corpus"], "variant": config.get("variant"), "fold": metrics["fold"],
            "seed": metrics["seed"], "selected_epoch": metrics.get("best_epoch"), "epochs": [start, last],
            "selected_ua": float(selected["ua"]), "averaged_ua": float(averaged["ua"]), "selected_wa": float(selected["wa"]),
            "averaged_wa": float(averaged["wa"])}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = rescore_parser("benchmarks.weight_averaging", __doc__, "run directories trained with --keep-epoch-weights")
    parser.add_argument("--start-epoch", type=int, default=None,
                        help="first epoch averaged (1-based; default: the first lr drop); the last is the run's last")
    args = parser.parse_args(argv)

    source = started("benchmarks.weight_averaging")
    rows = rescore_runs(args.runs, lambda run: score_run(run, args.start_epoch, args.data_dir),
                        lambda r: (f"epoch {r['selected_epoch']} {100 * r['selected_ua']:.1f} → epochs "
                                   f"{r['epochs'][0]}–{r['epochs'][1]} averaged {100 * r['averaged_ua']:.1f}"))
    summary = paired_by_run(rows, "averaged_ua", "selected_ua")
    payload = {**source, "rows": rows, "summary": summary}
    table = [[grid_name(r["run"]), r["fold"], str(r["seed"]),
              str(r["selected_epoch"]), f"{r['epochs'][0]}–{r['epochs'][1]}", f"{100 * r['selected_ua']:.1f}",
              f"{100 * r['averaged_ua']:.1f}"] for r in rows]
    markdown = (
        "# Weight averaging: the mean of the weights from the first learning-rate drop on, against the selected "
        "epoch\n\n"
        f"Command: `{payload['command']}`  \nCommit: `{payload['git_commit']}`\n\n"
        "Test UA (utterance level, %). Averaged − selected, paired by run:\n\n" + paired_lines(summary) + "\n\n"
        + markdown_table(["grid/variant", "fold", "seed", "selected epoch", "epochs averaged", "UA selected",
                          "UA averaged"], table)
    )
    write_results(args.name, payload, markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
