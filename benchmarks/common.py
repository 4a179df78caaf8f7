"""What every benchmark records beside its numbers: command, commit, machine, versions."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from sercal_keras.io_utils import write_json, write_text
from sercal_keras.provenance import git_commit, library_versions, machine_info
from sercal_keras.reporting import markdown_table  # noqa: F401  (re-exported for the benchmarks)

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def provenance(module: str) -> Dict[str, Any]:
    """The exact command (`python -m <module> <args>`), git commit, machine and versions."""
    return {
        "command": " ".join(["python", "-m", module] + [shlex.quote(a) for a in sys.argv[1:]]),
        "git_commit": git_commit(),
        "machine": machine_info(),
        "versions": library_versions(),
    }


def write_results(name: str, payload: Dict[str, Any], markdown: str, results_dir: Path = RESULTS_DIR) -> Path:
    """Writes `<name>.json` and `<name>.md` atomically and returns the JSON path."""
    write_text(Path(results_dir) / f"{name}.md", markdown)
    return write_json(Path(results_dir) / f"{name}.json", payload)


def run_test_fold(run: Path, data_dir: Optional[str] = None) -> Tuple[Any, Any]:
    """The corpus and the test fold a `training.fit` run was evaluated on.

    Read from the run's `config.json` and `metrics.json`, with the folds made as
    the trainer makes them; `data_dir` overrides the config's corpus folder.
    """
    from sercal_keras.data import load_corpus, make_folds
    from training.config import PROTOCOLS, TrainConfig

    config = json.loads((Path(run) / "config.json").read_text())
    fold_name = json.loads((Path(run) / "metrics.json").read_text())["fold"]
    corpus = load_corpus(config["corpus"], data_dir or config.get("data_dir"), **config.get("corpus_options", {}))
    protocol = TrainConfig(corpus=config["corpus"], protocol=config.get("protocol")).protocol_name
    fold = next(f for f in make_folds(corpus, PROTOCOLS[protocol], seed=0) if f.name == fold_name)
    return corpus, fold


def rescore_parser(module: str, doc: str, runs_help: str):
    """The command line every run-rescoring benchmark shares: run directories, `--data-dir`, `--name`.

    Args:
        module: e.g. `benchmarks.selection_rules` (the program name; its last part is the default `--name`).
        doc: the script's docstring (its first paragraph is the description).
        runs_help: what the run directories must be.
    """
    import argparse

    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=doc.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help=runs_help)
    parser.add_argument("--data-dir", help="corpus folder (default: each run's config)")
    parser.add_argument("--name", default=module.rsplit(".", 1)[-1], help="results name")
    return parser


def started(module: str) -> Dict[str, Any]:
    """Imports the library quietly and returns `provenance(module)` taken now, at the start.

    A benchmark records the commit whose code it runs, not the one checked out
    when it ends (results and docs get committed while long runs go on).
    """
    from training.config import import_library_quietly

    import_library_quietly()
    return provenance(module)


def rescore_runs(runs: Sequence[str], score: Callable[[Path], Dict[str, Any]],
                 progress: Callable[[Dict[str, Any]], str]) -> List[Dict[str, Any]]:
    """`score(run)` for every run directory, a progress line (`progress(row)`) after each."""
    rows = []
    for done, run in enumerate(map(Path, runs), start=1):
        rows.append(score(run))
        print(f"[{done}/{len(runs)}] {run}: {progress(rows[-1])}", flush=True)
    return rows


def paired_by_run(rows: Sequence[Dict[str, Any]], candidate: str, baseline: str) -> Dict[str, Any]:
    """`row[candidate] − row[baseline]` paired by run (`row["run"]`): pooled (`"all"`) and per `row["corpus"]`.

    Example:
    >>> rows = [{"run": "a", "corpus": "emodb", "x": 0.6, "y": 0.5}, {"run": "b", "corpus": "emodb", "x": 0.7, "y": 0.5}]
    >>> round(paired_by_run(rows, "x", "y")["emodb"]["mean"], 3)
    0.15
    """
    from benchmarks.paired import paired_difference

    groups: Dict[str, List[Dict[str, Any]]] = {"all": list(rows)}
    for row in rows:
        groups.setdefault(row["corpus"], []).append(row)
    return {name: paired_difference({(r["run"], 0): r[candidate] for r in group},
                                    {(r["run"], 0): r[baseline] for r in group})
            for name, group in groups.items()}


def paired_lines(summary: Dict[str, Dict[str, Any]]) -> str:
    """One Markdown bullet per group of `paired_by_run`: mean pp [95 % interval], wins, p."""
    from benchmarks.paired import pp_interval

    return "\n".join(f"- {name}: {pp_interval(d)}, {d['wins']}/{d['n']} runs better, p {d['p_value']:.3g}" for name, d in summary.items())


def reproduced_scores(run: Path, recognizer, corpus, fold) -> Dict[str, Any]:
    """`training.evaluate.evaluate_model`'s utterance metrics of `recognizer` on the run's test fold,
    after checking they reproduce the run's `metrics.json` UA (SystemExit naming the run otherwise)."""
    import numpy as np

    from training.evaluate import evaluate_model

    scores = evaluate_model(recognizer, corpus, fold.test)["utterance"]
    recorded = float(json.loads((Path(run) / "metrics.json").read_text())["utterance"]["ua"])
    if not np.isclose(scores["ua"], recorded, atol=1e-6):
        raise SystemExit(f"{run}: recomputed UA {scores['ua']:.4f}, metrics.json says {recorded:.4f}; "
                         "the run and this script disagree")
    return scores


def require_selected_epoch(run: Path, metrics: Dict[str, Any]) -> None:
    """SystemExit naming `run` when its model is a weight average (`--average-from-epoch`), not one
    selected epoch: the rescoring benchmarks compare rules against training's selected epoch."""
    from training.weight_averaging import describe_window

    if metrics.get("averaged_epochs"):
        raise SystemExit(f"{run}: its model is the {describe_window(metrics['averaged_epochs'])} "
                         "(--average-from-epoch), not a "
                         "selected epoch; rescore runs trained with --keep-epoch-weights and without "
                         "--average-from-epoch")


def grid_name(run: str) -> str:
    """`<grid>/<variant>` of a run directory `runs/benchmarks/<grid>/<variant>/<run>`."""
    return f"{Path(run).parent.parent.name}/{Path(run).parent.name}"
