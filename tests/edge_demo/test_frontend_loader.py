"""The edge MFCC is the library's MFCC (the same file), and it equals librosa."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.edge_demo.conftest import REPO_ROOT, edge_env

LIBRARY_FRONTEND = REPO_ROOT / "sercal_keras" / "audio" / "frontend.py"


def _clip() -> np.ndarray:
    """2.5 s of a voiced-like signal: harmonics with vibrato, an envelope and a little noise."""
    rng = np.random.default_rng(0)
    t = np.arange(40000) / 16000
    f0 = 140 + 20 * np.sin(2 * np.pi * 3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / 16000
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    return (0.2 * voiced * envelope + 0.01 * rng.normal(size=t.size)).astype(np.float32)


def test_edge_loads_the_library_file_itself():
    from edge_demo.frontend_loader import find_frontend, load_frontend

    assert find_frontend() == LIBRARY_FRONTEND.resolve()
    assert Path(load_frontend().__file__).resolve() == LIBRARY_FRONTEND.resolve()


def test_edge_mfcc_equals_library_and_librosa():
    import librosa

    from edge_demo.frontend_loader import load_frontend
    from sercal_keras.audio import frontend as library

    edge = load_frontend()
    config = edge.FeatureConfig()
    segments = edge.segment_waveform(_clip(), config.segment_samples, config.hop_samples(training=False))
    got = edge.mfcc(segments, config)
    np.testing.assert_array_equal(got, library.mfcc(segments, library.FeatureConfig()))
    # Cached constant matrices (frontend_loader) are the very same numbers.
    np.testing.assert_array_equal(edge.mel_filterbank(config), edge.mel_filterbank.__wrapped__(config))
    reference = librosa.feature.mfcc(y=segments[1], sr=16000, n_mfcc=26)
    assert got.shape[1:] == reference.shape == (26, 63)
    assert np.max(np.abs(got[1] - reference)) < 2e-3  # measured 4e-5 on values up to ~160


def test_copy_beside_the_package_is_found_on_a_device(tmp_path):
    """Device layout: edge_demo/ and frontend.py side by side, no sercal_keras anywhere."""
    shutil.copytree(REPO_ROOT / "edge_demo", tmp_path / "edge_demo",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copyfile(LIBRARY_FRONTEND, tmp_path / "frontend.py")
    env = edge_env(Path(tmp_path / "nothing"), blocked=("tensorflow", "keras", "librosa", "sercal_keras"))
    env["PYTHONPATH"] = ""
    code = "from edge_demo.frontend_loader import load_frontend; print(load_frontend().__file__)"
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).resolve() == (tmp_path / "frontend.py").resolve()
    # Nothing there: a clear error naming the places searched.
    (tmp_path / "frontend.py").unlink()
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode != 0 and "sercal front-end not found" in result.stderr
