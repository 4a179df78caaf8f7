"""What every benchmark records beside its numbers: command, commit, machine, versions."""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict

from sercal_keras.io_utils import write_json, write_text
from sercal_keras.model_card import library_versions

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def git_commit() -> str:
    """The checkout's commit (with `-dirty` when the tree has changes), or `unknown`."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True).stdout
        return commit + ("-dirty" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance(module: str) -> Dict[str, Any]:
    """The exact command (`python -m <module> <args>`), git commit, machine and versions."""
    return {
        "command": " ".join(["python", "-m", module] + [shlex.quote(a) for a in sys.argv[1:]]),
        "git_commit": git_commit(),
        "machine": {"cpu": cpu_name(), "cpu_count": os.cpu_count(), "platform": platform.platform()},
        "versions": library_versions(),
    }


def write_results(name: str, payload: Dict[str, Any], markdown: str, results_dir: Path = RESULTS_DIR) -> Path:
    """Writes `<name>.json` and `<name>.md` atomically and returns the JSON path."""
    write_text(Path(results_dir) / f"{name}.md", markdown)
    return write_json(Path(results_dir) / f"{name}.json", payload)


def markdown_table(headers, rows) -> str:
    """A GitHub Markdown table from a header list and rows of cells."""
    lines = ["| " + " | ".join(str(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
