"""Real data: a short EmoDB training run, exported and reported (slow; needs ../shared/data)."""

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT, SHARED_DATA, requires_shared_data


@pytest.mark.slow
@requires_shared_data
def test_emodb_int8_export_and_report(tmp_path):
    run = tmp_path / "run"
    subprocess.run([sys.executable, "-m", "training.fit", "--corpus", "emodb", "--data-dir",
                    str(SHARED_DATA / "emodb"), "--epochs", "8", "--validation-fraction", "0",
                    "--cache-dir", str(tmp_path / "cache"), "--output-dir", str(run), "--quiet"],
                   cwd=REPO_ROOT, check=True)
    from export import report, tflite

    written = tflite.export_tflite(run, ["float32", "int8"], tmp_path / "tflite", "both",
                                   representative_size=100, log=lambda m: None)
    assert len(written) == 8
    card = json.loads((tmp_path / "tflite" / "model_mfcc_int8.json").read_text())["extra"]
    assert card["verification"]["held_out"] is True and card["verification"]["agreement"] >= 0.95
    path = report.make_report(run, tmp_path / "report", modes=["float32", "int8"], representative_size=100,
                              keep_float_candidates=0, latency_runs=50, log=lambda m: None)
    doc = json.loads((path / "report.json").read_text())
    variants = {(v["name"], v["input_kind"]): v for v in doc["variants"]}
    int8 = variants[("int8", "mfcc")]
    assert int8["size_ratio"] <= 0.30
    assert int8["metrics"]["agreement_segment"] >= 0.95
    assert int8["latency"]["1_thread"]["cpu_median_ms"] <= variants[("float32", "mfcc")]["latency"]["1_thread"][
        "cpu_median_ms"]
