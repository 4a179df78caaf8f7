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
rule one copy already uses. Both scores come from
`training.evaluate.evaluate_model` (`python -m training.evaluate
--test-time-speeds`), with and without the recognizer's `test_time_speeds`,
so this is the evaluation every model gets. A per-speaker model
standardises each copy of a speaker's audio by that copy's own statistics, as
its plain score does. Writes `benchmarks/results/<name>.{json,md}`: per run
both UAs, and with-speeds − plain paired by run, pooled and per corpus.

Example:
    python -m benchmarks.test_time_speed runs/benchmarks/exp_ravdess_default_recipe/fa_ca/*_seed* \\
        --name test_time_speed_ravdess
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from benchmarks.common import (grid_name, markdown_table, paired_by_run, paired_lines, reproduced_scores,
                               rescore_parser, rescore_runs, run_test_fold, started, write_results)


def score_run(run: Path, speeds: Optional[Sequence[float]], data_dir: Optional[str]) -> Dict[str, Any]:
    """One run's test UA as recorded and with the test audio at `speeds` too (default: its training speeds).

    Both scores come from `training.evaluate.evaluate_model`, the evaluation every
    model gets, with and without the recognizer's `test_time_speeds`.
    """
    from sercal_keras.errors import ConfigError
    from sercal_keras.inference import EmotionRecognizer
    from training.evaluate import evaluate_model

    config = json.loads((run / "config.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    speeds = [float(s) for s in (speeds if speeds is not None else config.get("speed_perturbation") or [])]
    if not speeds:
        raise SystemExit(f"{run}: no test-time speeds (the run was trained without speed perturbation and "
                         "--speeds was not given)")
    corpus, fold = run_test_fold(run, data_dir)
    plain = EmotionRecognizer.load(run)
    try:
        with_speeds = EmotionRecognizer(plain.model, plain.card, test_time_speeds=speeds)
    except ConfigError as error:
        raise SystemExit(f"--speeds: {error}") from None
    plain_scores = reproduced_scores(run, plain, corpus, fold)
    speed_scores = evaluate_model(with_speeds, corpus, fold.test)["utterance"]
    return {"run": str(run), "corpus": config["corpus"], "variant": config.get("variant"), "fold": metrics["fold"],
            "seed": metrics["seed"], "speeds": list(with_speeds.speeds), "plain_ua": float(plain_scores["ua"]),
            "with_speeds_ua": float(speed_scores["ua"]), "plain_wa": float(plain_scores["wa"]),
            "with_speeds_wa": float(speed_scores["wa"])}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = rescore_parser("benchmarks.test_time_speed", __doc__, "run directories (training.fit output)")
    parser.add_argument("--speeds", nargs="+", type=float, default=None,
                        help="test-time speed factors besides 1.0 (default: each run's training speed_perturbation)")
    args = parser.parse_args(argv)

    source = started("benchmarks.test_time_speed")
    rows = rescore_runs(args.runs, lambda run: score_run(run, args.speeds, args.data_dir),
                        lambda r: f"UA {100 * r['plain_ua']:.1f} → {100 * r['with_speeds_ua']:.1f}")
    summary = paired_by_run(rows, "with_speeds_ua", "plain_ua")
    payload = {**source, "rows": rows, "summary": summary}
    table = [[grid_name(r["run"]), r["fold"], str(r["seed"]), f"{100 * r['plain_ua']:.1f}",
              f"{100 * r['with_speeds_ua']:.1f}"] for r in rows]
    markdown = (
        "# Test-time speed perturbation: each run on its test audio as recorded, and pooled with sped-up/down "
        "copies\n\n"
        f"Command: `{payload['command']}`  \nCommit: `{payload['git_commit']}`\n\n"
        "Test UA (utterance level, %). With speeds − plain, paired by run:\n\n" + paired_lines(summary) + "\n\n"
        + markdown_table(["grid/variant", "fold", "seed", "UA plain", "UA with speeds"], table)
    )
    write_results(args.name, payload, markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
