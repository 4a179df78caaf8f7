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
        where the candidate is higher), `sign_test_p` (two-sided), and each
        side's own `candidate_mean`/`_std` and `baseline_mean`/`_std` over
        the same pairs.

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
    for side, scores in (("candidate", candidate), ("baseline", baseline)):
        values = np.array([scores[k] for k in keys], dtype=float)
        result[f"{side}_mean"] = float(values.mean()) if n else math.nan
        result[f"{side}_std"] = float(values.std(ddof=1)) if n >= 2 else math.nan
    wins, losses = int((diffs > 0).sum()), int((diffs < 0).sum())
    result["wins"] = wins
    result["losses"] = losses
    result["sign_test_p"] = float(stats.binomtest(wins, wins + losses).pvalue) if wins + losses else 1.0
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in result.items()}


def pp_interval(result: Mapping[str, float]) -> str:
    """A paired difference as text: mean and 95 % interval in percentage points.

    Example:
    >>> pp_interval({"mean": 0.049, "ci95_low": 0.016, "ci95_high": 0.082})
    '+4.9 pp [+1.6, +8.2]'
    """
    return (f"{100 * result['mean']:+.1f} pp "
            f"[{100 * result['ci95_low']:+.1f}, {100 * result['ci95_high']:+.1f}]")


def run_scores(record: Mapping, metric: str = "ua") -> Dict[Key, float]:
    """A variant's utterance-level `metric` per (fold, seed), from its `runs` list.

    Args:
        record: a variant record of a `benchmarks.accuracy` results file (or a
            cross-validation summary): `{"runs": [{"fold", "seed", "utterance_<metric>"}, ...]}`.
        metric: `ua`, `wa` or `macro_f1`.

    Returns:
        `{(fold, seed): value}`, ready for `paired_difference`.
    """
    return {(r["fold"], int(r["seed"])): float(r[f"utterance_{metric}"]) for r in record["runs"]}


#: The "variant" of a `benchmarks.seed_ensemble` result: one ensemble per fold.
ENSEMBLE = "ensemble"


def _runs_of(spec: str) -> Dict[Key, float]:
    """`results.json:variant` → that variant's utterance UA per (fold, seed).

    A `benchmarks.seed_ensemble` result (`name.json:ensemble`) gives one value
    per fold, its ensemble's UA, under seed -1: two ensembles of the same folds
    pair by fold. A result that rescores runs (`benchmarks.weight_averaging`,
    `selection_rules`, `test_time_speed`: one row per run with `<model>_ua`)
    gives that model's UA per (fold, seed), e.g. `weight_averaging_x.json:averaged`,
    so a rescored model pairs with the runs of another grid.
    """
    import json
    from pathlib import Path

    path, _, variant = spec.rpartition(":")
    if not path:
        raise SystemExit(f"expected RESULTS.json:VARIANT, got {spec!r}")
    if not Path(path).is_file():
        raise SystemExit(f"{path} does not exist: run the benchmark that writes it first "
                         "(python -m benchmarks.accuracy ... --name NAME writes benchmarks/results/NAME.json)")
    try:
        payload = json.loads(Path(path).read_text())
    except ValueError as error:
        raise SystemExit(f"{path} is not a results JSON file ({error})") from None
    rows = payload.get("rows") if "variants" not in payload else None
    if rows and "seed" in rows[0]:  # a rescoring result: one row per run, one `<model>_ua` per scored model
        models = sorted(key[:-3] for key, value in rows[0].items() if key.endswith("_ua") and isinstance(value, float))
        if variant not in models:
            raise SystemExit(f"{path} scores each run as {', '.join(models)}: write {path}:{models[0]}")
        scores = {(row["fold"], int(row["seed"])): float(row[f"{variant}_ua"]) for row in rows}
        if len(scores) < len(rows):
            raise SystemExit(f"{path} scores some (fold, seed) twice (runs of several grids or variants): "
                             "rescore one grid's variant per results file to pair it")
        return scores
    if rows is not None:  # a seed_ensemble result
        if variant != ENSEMBLE:
            raise SystemExit(f"{path} is a seed-ensemble result: write {path}:{ENSEMBLE}")
        return {(row["fold"], -1): float(row["ensemble_ua"]) for row in rows}
    record = payload["variants"].get(variant)
    if record is None:
        raise SystemExit(f"{path} has no variant {variant!r}")
    return run_scores(record)


def _line(result: Mapping[str, float]) -> str:
    return (f"ΔUA {pp_interval(result)} (95 % t), {result['wins']}/{result['n']} wins, p {result['p_value']:.3f}, "
            f"sd of the differences {100 * result['std']:.1f} pp; UA over these pairs "
            f"{100 * result['candidate_mean']:.1f} ± {100 * result['candidate_std']:.1f} vs "
            f"{100 * result['baseline_mean']:.1f} ± {100 * result['baseline_std']:.1f} %")


def main(argv=None) -> int:
    """Paired UA difference of two variants from two grids' results (e.g. two recipes).

    With several CANDIDATE BASELINE couples, each couple is reported and then
    all their pairs pooled into one paired estimate (e.g. fa_ca − mhsa under
    several recipes, each recipe applied to both variants alike).
    """
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.paired",
        description="Paired utterance-UA difference CANDIDATE − BASELINE over their common (fold, seed) runs. "
                    "Give several CANDIDATE BASELINE couples to pool their pairs as well.",
        epilog="Example: python -m benchmarks.paired benchmarks/results/exp_emodb_x.json:mhsa "
               "benchmarks/results/emodb_speaker-folds.json:mhsa. A benchmarks.seed_ensemble result is "
               "NAME.json:ensemble (one pair per fold); a rescoring result (weight_averaging, selection_rules, "
               "test_time_speed) is NAME.json:MODEL for each of its MODEL_ua columns, e.g. "
               "weight_averaging_x.json:averaged.")
    parser.add_argument("specs", nargs="+", metavar="RESULTS.json:VARIANT",
                        help="CANDIDATE BASELINE [CANDIDATE BASELINE ...]")
    parser.add_argument("--seeds", type=int, nargs="+", metavar="SEED",
                        help="pair only the runs of these seeds (e.g. the seeds run after a screen chose the idea)")
    args = parser.parse_args(argv)
    if len(args.specs) % 2:
        parser.error(f"expected CANDIDATE BASELINE couples, got {len(args.specs)} spec(s): add the missing baseline")
    couples = list(zip(args.specs[0::2], args.specs[1::2]))
    pooled_candidate: Dict[Key, float] = {}
    pooled_baseline: Dict[Key, float] = {}
    for index, (candidate_spec, baseline_spec) in enumerate(couples):
        candidate, baseline = _runs_of(candidate_spec), _runs_of(baseline_spec)
        if args.seeds is not None:
            candidate = {key: v for key, v in candidate.items() if key[1] in args.seeds}
        result = paired_difference(candidate, baseline)
        if len(couples) > 1:
            shown = _line(result) if result["n"] >= 2 else f"{result['n']} common pair(s)"
            print(f"{candidate_spec} − {baseline_spec}: {shown}")
        # Keys stay distinct per couple: a fold/seed of one recipe is not the same pair in another.
        pooled_candidate.update({(f"{index}:{fold}", seed): v for (fold, seed), v in candidate.items()})
        pooled_baseline.update({(f"{index}:{fold}", seed): v for (fold, seed), v in baseline.items()})
    result = paired_difference(pooled_candidate, pooled_baseline)
    if result["n"] < 2:
        print(f"{result['n']} common (fold, seed) pair(s): nothing to compare")
        return 1
    print(("pooled: " if len(couples) > 1 else "") + _line(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
