"""Where a result came from: library versions, git commit, machine. Stdlib only."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any, Dict, Optional

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


def _first_cpu_fields(cpuinfo: Path = Path("/proc/cpuinfo")) -> Dict[str, str]:
    """The `key: value` lines of the first processor in a cpuinfo file; empty without one."""
    try:
        first_cpu = cpuinfo.read_text().split("\n\n", 1)[0]
    except OSError:
        return {}
    pairs = (line.split(":", 1) for line in first_cpu.splitlines() if ":" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def cpu_name() -> str:
    """The CPU model (from /proc/cpuinfo where there is one)."""
    return _first_cpu_fields().get("model name") or platform.processor() or platform.machine()


#: The x86 vector extensions TensorFlow's CPU kernels (oneDNN, Eigen) choose their code paths by.
SIMD_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")


def cpu_signature(cpuinfo: Path = Path("/proc/cpuinfo")) -> Optional[str]:
    """An x86 CPU's family, model, stepping and vector extensions; None elsewhere.

    Two hosts can share a model name ("AMD EPYC") and still differ here; float
    results of a training run follow the instruction set its kernels use, so a
    rerun that does not match bit for bit can be told apart by this line.

    Example:
    >>> cpu_signature()  # doctest: +SKIP
    'family 25 model 17 stepping 1; avx avx2 fma'
    """
    fields = _first_cpu_fields(cpuinfo)
    flags = set(fields.get("flags", "").split())
    numbers = " ".join(f"{key.split()[-1]} {fields[key]}" for key in ("cpu family", "model", "stepping") if key in fields)
    if not numbers:  # not an x86 layout (an ARM board lists "CPU part" and "Features" instead)
        return None
    return f"{numbers}; {' '.join(f for f in SIMD_FLAGS if f in flags) or 'no AVX'}"


def machine_info() -> Dict[str, Any]:
    """CPU model and signature, core count, platform, and the 1-minute load average now.

    The load average says whether other work shared the CPU during a timing
    (above the core count, timings are inflated); the signature tells hosts of
    one model name apart (see `cpu_signature`).
    """
    try:
        load = round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        load = None
    return {"cpu": cpu_name(), "cpu_signature": cpu_signature(), "cpu_count": os.cpu_count(),
            "platform": platform.platform(), "load_average_1min": load}
