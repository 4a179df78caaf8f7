"""Where a result came from: library versions, git commit, machine. Stdlib only."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any, Dict

REPO_ROOT = Path(__file__).resolve().parents[1]


def library_versions() -> Dict[str, str]:
    """Versions of Python and the libraries that shape results (those installed)."""
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for dist in ("sercal-keras", "tensorflow", "tensorflow-cpu", "keras", "numpy", "librosa", "ai-edge-litert"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return versions


# Tracked files that cannot change a result: a benchmark series rewrites its own result files
# between runs, and docs get edited meanwhile; neither makes the code "dirty".
NOT_CODE = (":(exclude)benchmarks/results", ":(exclude)*.md")


def git_commit(root: Path = REPO_ROOT) -> str:
    """The checkout's short commit, or `unknown`.

    `-dirty` is appended when tracked files that can change a result differ from
    the commit (result files under `benchmarks/results/` and Markdown do not count).
    """
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                                text=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *NOT_CODE],
                               cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def cpu_name() -> str:
    """The CPU model (from /proc/cpuinfo where there is one)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> Dict[str, Any]:
    """CPU model, core count, platform, and the 1-minute load average now.

    The load average says whether other work shared the CPU during a timing
    (above the core count, timings are inflated).
    """
    try:
        load = round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        load = None
    return {"cpu": cpu_name(), "cpu_count": os.cpu_count(), "platform": platform.platform(), "load_average_1min": load}
