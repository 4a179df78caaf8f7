"""`benchmarks.edge_latency` runs end to end on given models (tiny settings, nothing written)."""

from __future__ import annotations


def test_benchmark_measures_given_models(edge_models, capsys):
    from benchmarks.edge_latency import main

    models = [edge_models.tflite["float32"], edge_models.tflite["int8"]]
    assert main([*map(str, models), "--runs", "8", "--warmup", "2", "--rounds", "2", "--stream-seconds", "3",
                 "--no-write"]) == 0
    out = capsys.readouterr().out
    assert "| `mfcc_float32.tflite` |" in out or "mfcc_float32" in out
    assert "int8 no slower than float32" in out and "streaming RTF" in out


def test_benchmark_rejects_missing_models(tmp_path, capsys):
    from benchmarks.edge_latency import main

    assert main([str(tmp_path / "absent.tflite"), "--no-write"]) == 2
    assert "not found" in capsys.readouterr().err
