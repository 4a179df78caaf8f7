"""Bad models, sidecars and audio: one clear line on stderr each, a non-zero exit, the rest still classified."""

from __future__ import annotations

import json
import shutil
import struct
import wave

import numpy as np
import pytest

from tests.edge_demo.conftest import DEVICE_ONLY, HEAVY, run_edge

PREFIX = "python -m edge_demo.classify: error:"


def _errors(stderr: str):
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert all(line.startswith(PREFIX) for line in lines), stderr  # no tracebacks, no chatter
    return lines


def _pcm16(path, samples, rate=16000, tag=1):
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes((np.asarray(samples) * 20000).astype("<i2").tobytes())
    return path


@pytest.fixture(scope="module")
def bad_wavs(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_wavs")
    tone = np.sin(np.arange(24000) * 0.05)
    files = {}
    data = bytearray(_pcm16(root / "tmp.wav", tone).read_bytes())
    # a-law: format tag 6, 8 bits per sample.
    alaw = bytearray(data)
    i = alaw.find(b"fmt ") + 8
    struct.pack_into("<HHIIHH", alaw, i, 6, 1, 16000, 16000, 1, 8)
    files["alaw"] = root / "alaw.wav"
    files["alaw"].write_bytes(bytes(alaw))
    files["mp3"] = root / "song.wav"  # MP3 bytes (ID3 tag + MPEG frame headers) named .wav
    files["mp3"].write_bytes(b"ID3\x04\x00\x00\x00\x00\x00\x00" + (b"\xff\xfb\x90\x64" + bytes(413)) * 20)
    files["empty"] = root / "empty.wav"
    files["empty"].write_bytes(b"")
    rate0 = bytearray(data)
    struct.pack_into("<I", rate0, rate0.find(b"fmt ") + 12, 0)
    files["rate0"] = root / "rate0.wav"
    files["rate0"].write_bytes(bytes(rate0))
    header_only = bytes(data[: data.find(b"data") + 8])  # a data chunk with no samples
    files["no_samples"] = root / "no_samples.wav"
    files["no_samples"].write_bytes(header_only)
    files["missing"] = root / "missing.wav"
    return files


@pytest.mark.parametrize("case", ["alaw", "mp3", "empty", "rate0", "no_samples", "missing"])
def test_each_bad_file_is_one_line_and_the_good_ones_still_print(edge_models, blocker_dir, bad_wavs, case):
    good = edge_models.wavs[:2]
    result = run_edge(blocker_dir, "classify", edge_models.tflite["int8"], good[0], bad_wavs[case], good[1],
                      "--json", blocked=DEVICE_ONLY)
    assert result.returncode == 1
    (line,) = _errors(result.stderr)
    assert str(bad_wavs[case]) in line
    doc = json.loads(result.stdout)
    assert [r["file"] for r in doc["results"]] == [str(good[0]), str(good[1])]
    assert doc["errors"][0]["file"] == str(bad_wavs[case])
    expected = {"alaw": "unsupported WAV encoding", "mp3": "not a RIFF/WAVE", "empty": "empty file",
                "rate0": "rate=0", "no_samples": "no audio samples", "missing": "no such file"}[case]
    assert expected in line


def test_table_mode_prints_good_files_and_reports_bad_ones(edge_models, blocker_dir, bad_wavs):
    result = run_edge(blocker_dir, "classify", edge_models.tflite["int8"], bad_wavs["mp3"], edge_models.wavs[0],
                      bad_wavs["empty"], blocked=DEVICE_ONLY)
    assert result.returncode == 1
    assert len(_errors(result.stderr)) == 2
    assert str(edge_models.wavs[0]) in result.stdout and str(bad_wavs["mp3"]) not in result.stdout


def test_alaw_decodes_when_soundfile_is_installed(edge_models, blocker_dir, bad_wavs):
    pytest.importorskip("soundfile")
    result = run_edge(blocker_dir, "classify", edge_models.tflite["int8"], bad_wavs["alaw"], "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["results"][0]["decoder"] == "soundfile"
    # ... and the stdlib-only decoder still refuses it, clearly.
    result = run_edge(blocker_dir, "classify", edge_models.tflite["int8"], bad_wavs["alaw"], "--decoder", "stdlib")
    assert result.returncode == 1 and "unsupported WAV encoding" in _errors(result.stderr)[0]


# ------------------------------------------------------------------ model/sidecar


def _copy_model(edge_models, kind, tmp_path, edit=None, name="model"):
    source = edge_models.tflite[kind]
    target = tmp_path / f"{name}.tflite"
    shutil.copyfile(source, target)
    card = json.loads(source.with_suffix(".json").read_text())
    if edit is not None:
        edit(card)
    target.with_suffix(".json").write_text(json.dumps(card))
    return target


def _model_error(edge_models, blocker_dir, model, *words):
    result = run_edge(blocker_dir, "classify", model, edge_models.wavs[0], blocked=DEVICE_ONLY)
    assert result.returncode == 2, result.stdout
    (line,) = _errors(result.stderr)
    assert result.stdout == ""
    for word in words:
        assert word in line, line
    return line


def test_model_without_sidecar(edge_models, blocker_dir, tmp_path):
    model = _copy_model(edge_models, "int8", tmp_path)
    model.with_suffix(".json").unlink()
    _model_error(edge_models, blocker_dir, model, "sidecar not found", str(model.with_suffix(".json")))


def _set(path, value):
    """Edits card[path...]; "*quant" is the quantisation block: `quantization` if the card nests it."""
    def edit(card):
        node = card
        for key in path[:-1]:
            if key == "*quant":
                node = node.get("quantization", node) if isinstance(node.get("quantization"), dict) else node
                continue
            node = node[key]
        node[path[-1]] = value(node[path[-1]]) if callable(value) else value
    return edit


@pytest.mark.parametrize("kind,path,value,words", [
    ("int8", ("labels",), lambda labels: labels + ["bored"], ["4 outputs", "5 labels"]),
    ("int8", ("labels",), lambda labels: labels[:3], ["4 outputs", "3 labels"]),
    ("int8", ("extra", "input", "dtype"), "float32", ["input dtype", "int8", "float32"]),
    ("int8", ("extra", "input", "*quant", "scale"), lambda s: s * 2, ["input quantisation"]),
    ("int8", ("extra", "output", "*quant", "zero_point"), 0, ["output quantisation"]),
    ("float32", ("extra", "input", "shape"), [1, 26, 64], ["input shape"]),
    ("float32", ("extra", "input_kind"), "waveform", ["waveform segment"]),
    ("waveform", ("extra", "input_kind"), "mfcc", ["MFCC segment"]),
    ("float32", ("feature_config", "hop_length"), 256, ["MFCC segment", "[26, 126]"]),
    ("float32", ("feature_mean",), [0.0] * 13, ["feature_mean/feature_std need 26"]),
    ("float32", ("feature_std",), lambda std: [0.0] + std[1:], ["std <= 0"]),
    ("float32", ("extra", "input_kind"), None, ["input_kind"]),
    ("float32", ("feature_config", "frame_rate"), 100, ["invalid feature_config", "frame_rate"]),
])
def test_sidecar_that_does_not_match_the_model(edge_models, blocker_dir, tmp_path, kind, path, value, words):
    model = _copy_model(edge_models, kind, tmp_path, edit=_set(path, value))
    _model_error(edge_models, blocker_dir, model, str(model.with_suffix("")), *words)


def test_sidecar_that_is_not_json_and_model_that_is_not_tflite(edge_models, blocker_dir, tmp_path):
    model = _copy_model(edge_models, "int8", tmp_path)
    model.with_suffix(".json").write_text("{not json")
    _model_error(edge_models, blocker_dir, model, "not a readable JSON sidecar")
    model = _copy_model(edge_models, "int8", tmp_path, name="garbage")
    model.write_bytes(b"this is not a flatbuffer" * 10)
    _model_error(edge_models, blocker_dir, model, "LiteRT cannot load it")
    _model_error(edge_models, blocker_dir, tmp_path / "absent.tflite", "model file not found")


def test_bad_threads_value(edge_models, blocker_dir):
    result = run_edge(blocker_dir, "classify", edge_models.tflite["int8"], edge_models.wavs[0], "--threads", "0",
                      blocked=HEAVY)
    assert result.returncode == 2 and "--threads" in _errors(result.stderr)[0]
