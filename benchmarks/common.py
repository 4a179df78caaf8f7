"""What every benchmark records beside its numbers: command, commit, machine, versions."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

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
