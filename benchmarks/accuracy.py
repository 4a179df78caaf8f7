"""The accuracy grid: corpus × protocol × variants × seeds, with paired comparisons.

For every variant it runs the cross-validation of `python -m training.fit`
(`training.cross_validation.run_cross_validation`) over all folds and the
given seeds, in `runs/benchmarks/<name>/<variant>/` (resumable: a finished
fold/seed is read back, not retrained, so a long grid can span sittings; several
processes can grow one grid, each with its own `--folds`/`--seeds`, and every
run gets its own `<fold>_seed<k>/` even when a process trains a single one), then
writes `benchmarks/results/<name>.json` and `.md`: WA / UA / macro-F1 mean ±
std per variant, per-fold and per-seed tables, and the paired difference of
each variant against `mhsa` over the same folds and seeds with a 95 % t
interval, the exact command, the git commit and library versions.

The recipe is the paper preset (`training/configs/paper.yaml`, the reference of
the research log), changed only by `--epochs` and `--set KEY=VALUE`; the
library's default recipe adds `--set speed_perturbation=0.9,1.1`.

Example:
    python -m benchmarks.accuracy --corpus emodb --data-dir ../shared/data/emodb \\
        --variants mhsa fa_ca fa ca head_fusion --seeds 0 1 2
    python -m benchmarks.accuracy --quick        # synthetic corpus, a few minutes
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import numpy as np

from benchmarks.common import RESULTS_DIR, markdown_table, provenance, write_results
from benchmarks.paired import paired_difference, run_scores

REPO = Path(__file__).resolve().parents[1]
METRICS = ("ua", "wa", "macro_f1")
BASELINE = "mhsa"
VARIANT_ORDER = ("mhsa", "fa_ca", "fa", "ca", "head_fusion")
QUICK = {"corpus": "synthetic", "variants": ["mhsa", "fa_ca"], "seeds": [0], "epochs": 3}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.accuracy",
        description="Run a corpus × protocol × variants × seeds accuracy grid and write the paired comparison.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("Example:")[1],
    )
    parser.add_argument("--corpus", default="synthetic", help="corpus name (default synthetic)")
    parser.add_argument("--data-dir", help="corpus folder (not needed for synthetic)")
    parser.add_argument("--protocol", help="loso | speaker-folds | session | random (default: the corpus' speaker-independent one)")
    parser.add_argument("--folds", nargs="+", default=["all"], help="fold indices or names (default all)")
    parser.add_argument("--variants", nargs="+", default=["mhsa", "fa_ca", "fa", "ca", "head_fusion"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, help="max epochs per run (default: the training default)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="further training.fit config values for every variant, e.g. dropout=0.3")
    parser.add_argument("--name", help="results name (default <corpus>_<protocol>)")
    parser.add_argument("--runs-dir", default=str(REPO / "runs" / "benchmarks"), help="where the run directories go")
    parser.add_argument("--results-dir", default=str(RESULTS_DIR), help="where the JSON/Markdown go")
    parser.add_argument("--quick", action="store_true",
                        help="synthetic corpus, mhsa + fa_ca, 1 seed, 3 epochs: a few minutes")
    parser.add_argument("--replace", action="store_true",
                        help="overwrite an earlier results file of this name instead of merging with it")
    parser.add_argument("--render-only", action="store_true",
                        help="train nothing: rewrite <name>.md and <name>.png from the existing <name>.json")
    parser.add_argument("--quiet", action="store_true")
    return parser


def _train_config(args, variant: str):
    """The paper preset (the research log's reference recipe), changed only by the flags and `--set`."""
    from training.config import RUNTIME_FIELDS, TrainConfig, paper_preset

    values = {k: v for k, v in paper_preset().to_dict().items() if k not in RUNTIME_FIELDS}
    values |= {"corpus": args.corpus, "folds": list(args.folds), "variant": variant, "seeds": list(args.seeds),
              "verbosity": 0 if args.quiet else 1,
              "output_dir": str(Path(args.runs_dir) / args.name / variant)}
    if args.data_dir:
        values["data_dir"] = args.data_dir
    if args.protocol:
        values["protocol"] = args.protocol
    if args.epochs:
        values["epochs"] = args.epochs
    values.update(item.split("=", 1) for item in args.set)  # coerced and checked by TrainConfig
    return TrainConfig.from_dict(values, source="benchmarks.accuracy")


def run_grid(args) -> Dict[str, Any]:
    """Runs (or resumes) every variant's cross-validation; returns the results payload."""
    from training.cross_validation import run_cross_validation

    started = time.time()
    source = provenance("benchmarks.accuracy")  # the commit whose code trains, not the one at the end
    per_variant, new_runs, config_identity = {}, {}, {}
    for variant in args.variants:
        config = _train_config(args, variant)
        print(f"[accuracy] {args.name}: {variant} (seeds {args.seeds})", flush=True)
        summary = run_cross_validation(config, command=["python", "-m", "benchmarks.accuracy", *sys.argv[1:]],
                                       grid=True)
        per_variant[variant] = summary
        new_runs[variant] = sum(
            1 for r in summary["runs"] if (Path(r["run_dir"]) / "metrics.json").stat().st_mtime >= started
        )
        config_identity = {k: v for k, v in summary["config"].items() if k != "variant"}
    return build_payload(args, per_variant, new_runs, config_identity, source=source)


def build_payload(args, per_variant: Dict[str, Dict[str, Any]], new_runs: Dict[str, int],
                  config_identity: Dict[str, Any], source: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Aggregates the per-variant CV summaries into the grid's results (utterance level).

    `source` is the grid's `provenance` taken when it started (default: taken now).
    """
    variants = {}
    for variant, summary in per_variant.items():
        runs = [{k: r[k] for k in RUN_KEYS} for r in summary["runs"]]
        variants[variant] = {**variant_record(runs), "new_runs": new_runs.get(variant, 0)}
    first = next(iter(per_variant.values()))
    return {
        **(source or provenance("benchmarks.accuracy")),
        "name": args.name,
        "corpus": first["corpus"],
        "protocol": first["protocol"],
        "speaker_independent": first["speaker_independent"],
        "seeds": list(args.seeds),
        "config": config_identity,
        "labels": first["labels"],
        "variants": variants,
        "paired_vs_mhsa": paired_vs_baseline(variants),
    }


def paired_vs_baseline(variants: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    """Each variant's paired UA/WA difference against `mhsa` over their common (fold, seed) runs."""
    if BASELINE not in variants:
        return {}
    return {variant: {m: paired_difference(run_scores(record, m), run_scores(variants[BASELINE], m)) for m in ("ua", "wa")}
            for variant, record in variants.items() if variant != BASELINE}


RUN_KEYS = ("fold", "seed", "utterance_ua", "utterance_wa", "utterance_macro_f1",
            "segment_ua", "segment_wa", "segment_macro_f1", "best_epoch", "epochs_run")


def variant_record(runs: Sequence[Dict[str, Any]], segment: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """A variant's aggregate (mean ± sample std over runs, per fold, per seed) from its run records.

    `segment` overrides the segment-level statistics where the runs do not carry them
    (records written before they were kept per run).
    """
    from sercal_keras.metrics import mean_std

    by_fold, by_seed = defaultdict(list), defaultdict(list)
    for run in runs:
        by_fold[run["fold"]].append(run["utterance_ua"])
        by_seed[int(run["seed"])].append(run["utterance_ua"])
    if segment is None:
        segment = {m: mean_std([r.get(f"segment_{m}") for r in runs]) for m in METRICS}
    return {
        "num_runs": len(runs),
        "utterance": {m: mean_std([r[f"utterance_{m}"] for r in runs]) for m in METRICS},
        "segment": segment,
        "ua_per_fold": {f: float(np.mean(v)) for f, v in sorted(by_fold.items())},
        "ua_per_seed": {str(s): float(np.mean(v)) for s, v in sorted(by_seed.items())},
        "seeds": sorted(by_seed),
        "runs": sorted(runs, key=lambda r: (int(r["seed"]), r["fold"])),
    }


def _seeds(record: Dict[str, Any]) -> list:
    return record.get("seeds") or sorted(int(s) for s in record["ua_per_seed"])


def _pooled(groups: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """Mean and sample std of the union of groups given as {mean, std, n} (exact)."""
    groups = [g for g in groups if g.get("n")]
    if not groups:
        return {"mean": None, "std": None, "n": 0}
    n = sum(g["n"] for g in groups)
    mean = sum(g["n"] * g["mean"] for g in groups) / n
    squares = sum((g["n"] - 1) * (g["std"] or 0.0) ** 2 + g["n"] * (g["mean"] - mean) ** 2 for g in groups)
    return {"mean": mean, "std": (squares / (n - 1)) ** 0.5 if n > 1 else 0.0, "n": n}


def _with_defaults(value: Any, key: str) -> Any:
    """A recipe with the options it predates filled in with their paper-preset values (off).

    The corpus folder counts by its name only: `../shared/data/ravdess16k` seen from one
    checkout and `/abs/path/shared/data/ravdess16k` from a worktree hold the same data,
    while `ravdess16k` and `ravdess_original_sample` do not.
    """
    if key != "config" or not isinstance(value, dict):
        return value
    from training.config import with_predated_fields

    recipe = with_predated_fields(value)
    if recipe.get("data_dir"):
        recipe["data_dir"] = Path(recipe["data_dir"]).name
    return recipe


def merge_with_previous(payload: Dict[str, Any], previous: Dict[str, Any], source: str) -> Dict[str, Any]:
    """Adds the runs of an earlier results file of the same grid to this one.

    A grid can grow over sittings (and machines): `--variants fa ca`, or `--seeds 1 2`,
    next to an earlier `mhsa fa_ca` seed-0 file gives one table and paired comparisons
    over all runs. A (variant, fold, seed) run now replaces its earlier record. Every run
    kept records the command, commit and machine that produced it (`source`), and each
    variant lists them grouped (`sources`; the machine of a pair matters, experiments.md
    #29). Runs of files written before per-run sources get theirs from the earlier
    file's commands by `--variants` and `--seeds` (`earlier_run_source`).

    Raises:
        ConfigError: the earlier file used another corpus, protocol or recipe.
    """
    from sercal_keras.errors import ConfigError

    for key in ("corpus", "protocol", "config"):
        if _with_defaults(previous.get(key), key) != _with_defaults(payload[key], key):
            raise ConfigError(
                f"{source} holds a grid with another {key} ({previous.get(key)!r}, now {payload[key]!r}): "
                "its runs cannot be compared with these. Pass --name for a new results file, or --replace.")
    variants = dict(payload["variants"])
    for variant, earlier in previous["variants"].items():
        current = variants.get(variant)
        done = {(r["fold"], int(r["seed"])) for r in current["runs"]} if current else set()
        kept = [{**r, "source": earlier_run_source(r, variant, earlier, previous)}
                for r in earlier["runs"] if (r["fold"], int(r["seed"])) not in done]
        if not kept:
            continue
        now = [{**r, "source": run_source(payload)} for r in current["runs"]] if current else []
        segment = None  # from the per-run segment scores (n counts the runs that carry them)
        if len(kept) == len(earlier["runs"]) and any("segment_ua" not in r for r in kept):
            # records that predate per-run segment scores: pool their stored statistics (exact)
            segment = {m: _pooled([earlier["segment"][m], *([current["segment"][m]] if current else [])])
                       for m in METRICS}
        variants[variant] = {**variant_record(now + kept, segment), "new_runs": current["new_runs"] if current else 0,
                             "sources": grouped_sources(kept)}
    ordered = sorted(variants, key=lambda v: VARIANT_ORDER.index(v) if v in VARIANT_ORDER else len(VARIANT_ORDER))
    variants = {v: variants[v] for v in ordered}
    seeds = sorted({s for r in variants.values() for s in _seeds(r)})
    return {**payload, "seeds": seeds, "variants": variants, "paired_vs_mhsa": paired_vs_baseline(variants)}


UNRECORDED = {"command": "not recorded", "git_commit": "–", "machine": "–"}


def run_source(payload: Dict[str, Any]) -> Dict[str, str]:
    """The command, commit and machine of a results file: the source of the runs it scored."""
    return {"command": payload["command"], "git_commit": payload["git_commit"],
            "machine": (payload.get("machine") or {}).get("cpu", "–")}


def earlier_run_source(run: Dict[str, Any], variant: str, record: Dict[str, Any],
                       previous: Dict[str, Any]) -> Dict[str, str]:
    """Which command produced a run of an earlier results file.

    Its own `source` where it has one; otherwise the newest of the file's commands
    (its own, then its carried `sources`) whose `--variants` and `--seeds` include the
    run; `UNRECORDED` where none does (a file merged before sources were kept per run
    may have lost an intermediate command).
    """
    if "source" in run:
        return run["source"]
    if not record.get("sources"):
        return run_source(previous)  # nothing carried: the file's own command scored every run
    candidates = [run_source(previous), *({k: v for k, v in s.items() if k != "runs"} for s in record["sources"])]
    for candidate in candidates:
        variants, seeds = _command_list(candidate["command"], "--variants"), _command_list(candidate["command"], "--seeds")
        if (variants is None or variant in variants) and (seeds is None or str(run["seed"]) in seeds):
            return {"machine": "–", **candidate}
    return dict(UNRECORDED)


def _command_list(command: str, option: str) -> Optional[list]:
    """The values after `option` in a command line (None when the option is absent)."""
    tokens = command.split()
    if option not in tokens:
        return None
    values = []
    for token in tokens[tokens.index(option) + 1:]:
        if token.startswith("--"):
            break
        values.append(token)
    return values


def grouped_sources(runs: Sequence[Dict[str, Any]]) -> list:
    """The runs' sources, each once with its number of runs, in order of first appearance."""
    groups: Dict[str, Dict[str, Any]] = {}
    for run in runs:
        source = run["source"]
        key = json.dumps(source, sort_keys=True)
        groups.setdefault(key, {**source, "runs": 0})["runs"] += 1
    return list(groups.values())


def plot_ua_per_variant(payload: Dict[str, Any], path: Path) -> Path:
    """Bar chart of utterance UA per variant: mean ± std over runs, every run as a dot."""
    from sercal_keras.io_utils import atomic_path
    from sercal_keras.reporting import pyplot

    plt = pyplot()
    names = list(payload["variants"])
    fig, ax = plt.subplots(figsize=(1.4 * len(names) + 2, 3.6))
    for i, name in enumerate(names):
        record = payload["variants"][name]
        ua = 100 * np.array([r["utterance_ua"] for r in record["runs"]])
        ax.bar(i, ua.mean(), yerr=ua.std(ddof=0), capsize=5, color="tab:blue" if name == BASELINE else "tab:orange",
               alpha=0.7)
        ax.scatter(i + np.linspace(-0.15, 0.15, len(ua)), ua, s=8, color="black", zorder=3)
    chance = 100.0 / len(payload["labels"])
    ax.axhline(chance, color="grey", linestyle=":", label=f"chance {chance:.0f} %")
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("utterance UA (%)")
    protocol = payload["protocol"] + ("" if payload["speaker_independent"] else " (speaker-dependent)")
    ax.set_title(f"{payload['corpus']}, {protocol}\nmean ± std over folds × seeds, dots: runs", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return Path(path)


def _pm(stats) -> str:
    return "–" if stats["mean"] is None else f"{100 * stats['mean']:.1f} ± {100 * stats['std']:.1f}"


def _model_choice(cfg: Dict[str, Any], speaker_independent: bool) -> str:
    """Which weights each run saved (training's own words) and what was held out for validation."""
    from training.weight_averaging import describe_saved_model

    unit = "speakers" if speaker_independent else "utterances"
    fraction = cfg.get("validation_fraction") or 0
    split = (f"validation on {fraction} of the *training* {unit}" if fraction
             else f"no validation split (all training {unit} train)")
    # average_from_epoch is absent from grids that predate the option: they kept a pick.
    return f"model = {describe_saved_model(cfg.get('average_from_epoch') or 0, bool(fraction))}, {split}"


def to_markdown(payload: Dict[str, Any]) -> str:
    cfg = payload["config"]
    protocol = payload["protocol"] + ("" if payload["speaker_independent"] else
                                      " — **speaker-dependent** (the same speakers in train and test)")
    lines = [
        f"# Accuracy: {payload['corpus']}, {protocol}", "",
        f"Utterance level (mean of segment probabilities), mean ± std over folds × seeds {payload['seeds']}. "
        f"Recipe: {cfg.get('epochs')} epochs max, batch {cfg.get('batch_size')}, Adam lr {cfg.get('learning_rate')} "
        f"({cfg.get('lr_schedule')}), weight decay {cfg.get('weight_decay')}, dropout {cfg.get('dropout')}, "
        + _model_choice(cfg, payload["speaker_independent"]) + " (never on the test fold).", "",
        f"Command: `{payload['command']}`  ", f"Commit: `{payload['git_commit']}`  ",
        f"Machine: {payload['machine']['cpu']} ({payload['machine']['cpu_count']} cores)", "",
        "## Per variant (%)", "",
    ]
    rows = [[v, r["num_runs"], " ".join(str(s) for s in _seeds(r)), _pm(r["utterance"]["ua"]),
             _pm(r["utterance"]["wa"]), _pm(r["utterance"]["macro_f1"]), _pm(r["segment"]["ua"])]
            for v, r in payload["variants"].items()]
    lines.append(markdown_table(["variant", "runs", "seeds", "UA", "WA", "macro-F1", "segment UA"], rows))
    lines += [f"![UA per variant]({payload['name']}.png)", ""]
    if payload["paired_vs_mhsa"]:
        lines += ["## Paired difference vs mhsa (same folds and seeds, percentage points)", ""]
        rows = []
        for v, p in payload["paired_vs_mhsa"].items():
            ua = p["ua"]
            rows.append([v, ua["n"], f"{100 * ua['mean']:+.1f}", f"[{100 * ua['ci95_low']:+.1f}, {100 * ua['ci95_high']:+.1f}]",
                         f"{ua['wins']}/{ua['n']}", f"{ua['p_value']:.3f}", f"{100 * p['wa']['mean']:+.1f}"])
        lines.append(markdown_table(["variant", "pairs", "ΔUA", "95 % CI", "wins", "p (paired t)", "ΔWA"], rows))
    folds = sorted({f for r in payload["variants"].values() for f in r["ua_per_fold"]})
    lines += ["## UA per fold (%, mean over seeds)", ""]
    lines.append(markdown_table(["variant", *folds], [
        [v, *(f"{100 * r['ua_per_fold'][f]:.1f}" if f in r["ua_per_fold"] else "–" for f in folds)]
        for v, r in payload["variants"].items()]))
    seeds = [str(s) for s in payload["seeds"]]
    lines += ["## UA per seed (%, mean over folds)", ""]
    lines.append(markdown_table(["variant", *(f"seed {s}" for s in seeds)], [
        [v, *(f"{100 * r['ua_per_seed'][s]:.1f}" if s in r["ua_per_seed"] else "–" for s in seeds)]
        for v, r in payload["variants"].items()]))
    carried = [[v, s["runs"], f"`{s['command']}`", f"`{s['git_commit']}`", s.get("machine", "–")]
               for v, r in payload["variants"].items() for s in r.get("sources", [])]
    if carried:
        lines += ["## Runs carried over from earlier sittings", "",
                  "Same corpus, protocol and recipe; the tables and paired comparisons use their stored "
                  "per-run scores.", ""]
        lines.append(markdown_table(["variant", "runs", "command", "commit", "machine"], carried))
    lines += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in payload["versions"].items()), ""]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.quick:
        args.corpus, args.variants, args.seeds = QUICK["corpus"], QUICK["variants"], QUICK["seeds"]
        args.epochs = args.epochs or QUICK["epochs"]
    if BASELINE not in args.variants:
        print(f"[accuracy] note: {BASELINE} not in --variants: no paired comparison", file=sys.stderr)
    from training.config import import_library_quietly

    import_library_quietly()
    from sercal_keras.errors import ConfigError, SercalError

    if not args.name:
        protocol = args.protocol or ("session" if args.corpus == "iemocap" else "speaker-folds")
        args.name = f"{args.corpus}_{protocol}" + ("_quick" if args.quick else "")
    results_dir = Path(args.results_dir)
    previous_path = results_dir / f"{args.name}.json"
    try:
        if args.render_only:
            if not previous_path.exists():
                raise ConfigError(f"--render-only: {previous_path} does not exist. Run the grid first.")
            payload = json.loads(previous_path.read_text())
        else:
            payload = run_grid(args)
            if previous_path.exists() and not args.replace:
                payload = merge_with_previous(payload, json.loads(previous_path.read_text()), str(previous_path))
    except SercalError as error:
        print(f"python -m benchmarks.accuracy: error: {error}", file=sys.stderr)
        return 2
    markdown = to_markdown(payload)
    write_results(args.name, payload, markdown, results_dir)
    plot_ua_per_variant(payload, results_dir / f"{args.name}.png")
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
