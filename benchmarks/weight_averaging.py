"""Weight averaging after the fact: the mean of the weights of the low-learning-rate epochs against training's pick.

Averages of predictions (seed ensembles, test-time speeds) gain accuracy but
cost inference; an average of weights (stochastic weight averaging, Izmailov
et al. 2018) costs nothing at inference. For every run trained with
`--keep-epoch-weights` this script averages the weights of every epoch from
`--start-epoch` (default: the first epoch with a lower learning rate than the
first) to the last, BatchNorm's moving statistics included, and scores the
averaged model on the run's test fold exactly as the run was scored
(`training.evaluate.evaluate_model`; the run's own model must reproduce its
`metrics.json` first). With `--recompute-batch-norm` the averaged model is also
scored with its BatchNorm statistics recomputed over the run's own training
segments (`training.weight_averaging.recompute_batch_norm`; the SWA recipe,
research log #51). Nothing is selected: no validation score is read. Writes
`benchmarks/results/<name>.{json,md}`: per run both UAs, and averaged −
selected paired by run, pooled and per corpus (research log #47).

Example:
    python -m benchmarks.weight_averaging runs/benchmarks/exp_emodb_speed4/mhsa/*_seed* \\
        --name weight_averaging_emodb_speed4
    python -m benchmarks.weight_averaging runs/benchmarks/exp_emodb_swa_constant_lr/mhsa/*_seed* \\
        --recompute-batch-norm --name weight_averaging_swa
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from benchmarks.common import (grid_name, markdown_table, paired_by_run, paired_lines, reproduced_scores,
                               require_selected_epoch, rescore_parser, rescore_runs, run_test_fold, started,
                               write_results)
from training.weight_averaging import load_averaged_weights, recompute_batch_norm

_CORPUS_DATA: Dict[str, Any] = {}  # the extracted segments of each corpus/feature/copies setting, shared by runs


def training_segments(run: Path, data_dir: Optional[str]):
    """The run's own training segments (its training split, speed/noise copies included), as the trainer made them."""
    from training.config import TrainConfig
    from training.trainer import load_data, split_run_data

    saved = json.loads((run / "config.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    config = TrainConfig.from_saved({**saved, **({"data_dir": data_dir} if data_dir else {})},
                                    source=str(run / "config.json"))
    key = json.dumps([config.corpus, config.data_dir, config.corpus_options, config.protocol_name, config.features,
                      config.speed_perturbation, config.noise_snr_db, config.cache_dir], sort_keys=True)
    if key not in _CORPUS_DATA:
        _CORPUS_DATA[key] = load_data(config, log=lambda message: None).extract(log=lambda message: None)
    data = _CORPUS_DATA[key]
    fold = next(f for f in data.folds if f.name == metrics["fold"])
    return split_run_data(config, data, fold, metrics["seed"]).train


def score_run(run: Path, start_epoch: Optional[int], data_dir: Optional[str],
              recompute: bool = False) -> Dict[str, Any]:
    """One run's recorded test UA and that of its weights averaged from `start_epoch` (default: first lr drop),
    and with `recompute` that of the average with its BatchNorm statistics recomputed on the training segments."""
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
    recomputed = {}
    if recompute:
        recompute_batch_norm(recognizer.model, training_segments(run, data_dir).features)
        scores = evaluate_model(recognizer, corpus, fold.test)["utterance"]
        recomputed = {"recomputed_ua": float(scores["ua"]), "recomputed_wa": float(scores["wa"])}
    return {"run": str(run), "corpus": config["corpus"], "variant": config.get("variant"), "fold": metrics["fold"],
            "seed": metrics["seed"], "selected_epoch": metrics.get("best_epoch"), "epochs": [start, last],
            "selected_ua": float(selected["ua"]), "averaged_ua": float(averaged["ua"]), "selected_wa": float(selected["wa"]),
            "averaged_wa": float(averaged["wa"]), **recomputed}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = rescore_parser("benchmarks.weight_averaging", __doc__, "run directories trained with --keep-epoch-weights")
    parser.add_argument("--start-epoch", type=int, default=None,
                        help="first epoch averaged (1-based; default: the first lr drop); the last is the run's last")
    parser.add_argument("--recompute-batch-norm", action="store_true",
                        help="also score the average with BatchNorm statistics recomputed on the run's training "
                        "segments (SWA)")
    args = parser.parse_args(argv)

    source = started("benchmarks.weight_averaging")
    recompute = args.recompute_batch_norm
    rows = rescore_runs(args.runs, lambda run: score_run(run, args.start_epoch, args.data_dir, recompute),
                        lambda r: (f"epoch {r['selected_epoch']} {100 * r['selected_ua']:.1f} → epochs "
                                   f"{r['epochs'][0]}–{r['epochs'][1]} averaged {100 * r['averaged_ua']:.1f}"
                                   + (f", BatchNorm recomputed {100 * r['recomputed_ua']:.1f}" if recompute else "")))
    summary = paired_by_run(rows, "averaged_ua", "selected_ua")
    payload = {**source, "rows": rows, "summary": summary}
    sections = "Test UA (utterance level, %). Averaged − selected, paired by run:\n\n" + paired_lines(summary)
    if recompute:
        payload["summary_recomputed"] = {"vs_selected": paired_by_run(rows, "recomputed_ua", "selected_ua"),
                                         "vs_averaged": paired_by_run(rows, "recomputed_ua", "averaged_ua")}
        sections += ("\n\nAveraged with BatchNorm recomputed − selected:\n\n"
                     + paired_lines(payload["summary_recomputed"]["vs_selected"])
                     + "\n\nAveraged with BatchNorm recomputed − averaged:\n\n"
                     + paired_lines(payload["summary_recomputed"]["vs_averaged"]))
    table = [[grid_name(r["run"]), r["fold"], str(r["seed"]),
              str(r["selected_epoch"]), f"{r['epochs'][0]}–{r['epochs'][1]}", f"{100 * r['selected_ua']:.1f}",
              f"{100 * r['averaged_ua']:.1f}"] + ([f"{100 * r['recomputed_ua']:.1f}"] if recompute else [])
             for r in rows]
    markdown = (
        "# Weight averaging: the mean of the epochs' weights against the selected epoch\n\n"
        f"Command: `{payload['command']}`  \nCommit: `{payload['git_commit']}`\n\n"
        + sections + "\n\n"
        + markdown_table(["grid/variant", "fold", "seed", "selected epoch", "epochs averaged", "UA selected",
                          "UA averaged"] + (["UA averaged, BatchNorm recomputed"] if recompute else []), table)
    )
    write_results(args.name, payload, markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
