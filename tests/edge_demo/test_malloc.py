"""`edge_demo.keep_large_buffers`: the front-end's STFT temporaries are not page-faulted anew per window."""

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

# Minor page faults while the edge front-end computes 30 windows' log-mel bands, after one warm-up window.
FAULTS_SCRIPT = """
import edge_demo, resource, sys
import numpy as np
from edge_demo.frontend_loader import load_frontend
frontend = load_frontend()
config = frontend.FeatureConfig(representation="log_mel")
window = np.random.default_rng(0).normal(0, 0.1, (1, config.segment_samples)).astype(np.float32)
frontend.mfcc(window, config)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(30):
    frontend.mfcc(window, config)
print(edge_demo.keep_large_buffers(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""

glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")


def run(**env):
    proc = subprocess.run([sys.executable, "-c", FAULTS_SCRIPT], cwd=REPO_ROOT, capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    taken, faults = proc.stdout.split()
    return taken == "True", int(faults)


@glibc_only
def test_windows_reuse_their_buffers_instead_of_faulting_them_in():
    taken, faults = run()
    assert taken
    # glibc's own start: blocks over 128 KB come from mmap and go back on free
    _, faults_default = run(MALLOC_MMAP_THRESHOLD_="131072")
    assert faults * 10 < faults_default, (faults, faults_default)


@glibc_only
def test_a_malloc_setting_of_the_user_wins():
    taken, _ = run(MALLOC_TRIM_THRESHOLD_="131072")
    assert not taken
