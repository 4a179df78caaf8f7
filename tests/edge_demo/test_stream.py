"""`edge_demo.stream`: ring buffer, windows, smoothing, the --wav simulation, no-microphone exit."""

from __future__ import annotations

import json

import numpy as np

from tests.edge_demo.conftest import DEVICE_ONLY, run_edge


class _FakeModel:
    """Records the windows it is given; the 'probability' of class 0 is the window's first sample."""

    def __init__(self, segment_samples=40, hop=10, rate=10):
        from edge_demo.frontend_loader import load_frontend

        self.feature_config = load_frontend().FeatureConfig(
            sample_rate=rate, segment_seconds=segment_samples / rate, eval_hop_seconds=hop / rate,
            n_fft=4, hop_length=2, n_mels=4, n_mfcc=2)
        self.labels = ("a", "b")
        self.windows = []

    def classify_segments(self, segments):
        self.windows.append(np.array(segments[0]))
        first = float(segments[0][0]) / 1000.0
        return np.array([[first, 1.0 - first]], np.float32)


def test_windows_equal_segment_waveform_for_any_block_size():
    from edge_demo.frontend_loader import load_frontend
    from edge_demo.stream import StreamClassifier

    frontend = load_frontend()
    signal = np.arange(1, 138, dtype=np.float32)
    expected = frontend.segment_waveform(signal, 40, 10)
    expected = expected[: 1 + (len(signal) - 40) // 10]  # full windows only; no padded tail
    for block in (1, 3, 10, 17, 40, 137):
        model = _FakeModel()
        stream = StreamClassifier(model, smooth=1)
        updates = []
        for start in range(0, len(signal), block):
            updates += stream.push(signal[start:start + block])
        assert stream.finish() == []
        np.testing.assert_array_equal(np.stack(model.windows), expected, err_msg=f"block={block}")
        assert [u.end_s for u in updates] == [(40 + 10 * i) / 10 for i in range(len(expected))]
        assert stream.real_time_factor > 0


def test_smoothing_is_the_mean_of_the_last_k_windows():
    from edge_demo.stream import StreamClassifier

    model = _FakeModel()
    stream = StreamClassifier(model, smooth=3)
    updates = stream.push(np.arange(1, 101, dtype=np.float32))
    raw = np.array([u.raw_probabilities for u in updates])
    for i, update in enumerate(updates):
        np.testing.assert_allclose(update.probabilities, raw[max(0, i - 2): i + 1].mean(axis=0), rtol=1e-6)


def test_hop_option_and_short_stream_padding():
    from edge_demo.stream import StreamClassifier

    model = _FakeModel()
    stream = StreamClassifier(model, hop_seconds=2.0)  # 20 samples
    assert len(stream.push(np.ones(80, np.float32))) == 1 + (80 - 40) // 20
    short = StreamClassifier(_FakeModel())
    assert short.push(np.full(25, 5.0, np.float32)) == []
    (update,) = short.finish()
    assert update.padded
    window = short.model.windows[0]
    assert window.shape == (40,) and np.all(window[:25] == 5.0) and np.all(window[25:] == 0.0)


def test_stream_cli_simulates_a_file(edge_models, blocker_dir):
    from edge_demo.audio import load_audio
    from edge_demo.runtime import EdgeModel

    wav = edge_models.wavs[0]
    result = run_edge(blocker_dir, "stream", "--model", edge_models.tflite["int8"], "--wav", wav, "--json",
                      "--smooth", "2", blocked=DEVICE_ONLY)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    updates = [line["update"] for line in lines if "update" in line]
    summary = lines[-1]["summary"]
    assert summary["updates"] == len(updates) >= 1
    assert summary["hop_s"] == 0.4 and summary["window_s"] == 2.0 and summary["smooth"] == 2
    assert 0 < summary["real_time_factor"] < 1
    # Each window's raw probabilities are those of the same window classified in-process.
    model = EdgeModel(edge_models.tflite["int8"])
    waveform = load_audio(wav, 16000).waveform
    full = model.segments(waveform)[: len(updates)]
    np.testing.assert_allclose([u["raw_probabilities"] for u in updates], model.classify_segments(full), atol=1e-6)
    assert updates[-1]["end_s"] == 2.0 + 0.4 * (len(updates) - 1)


def test_stream_ensemble_averages_every_window(edge_models, blocker_dir):
    from edge_demo.audio import load_audio
    from edge_demo.runtime import EdgeModel

    wav, members = edge_models.wavs[0], [edge_models.tflite["int8"], edge_models.tflite["float32"]]
    result = run_edge(blocker_dir, "stream", "--model", members[0], "--ensemble", members[1], "--wav", wav,
                      "--json", blocked=DEVICE_ONLY)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    updates = [line["update"] for line in lines if "update" in line]
    assert [m["model"] for m in lines[-1]["summary"]["members"]] == [str(m) for m in members]
    waveform = load_audio(wav, 16000).waveform
    singles = [EdgeModel(m) for m in members]
    full = singles[0].segments(waveform)[: len(updates)]
    expected = np.mean([model.classify_segments(full) for model in singles], axis=0)
    np.testing.assert_allclose([u["raw_probabilities"] for u in updates], expected, atol=1e-6)
    assert [u["label"] for u in updates] == [edge_models.labels[int(np.argmax(p))] for p in expected]


def test_stream_text_display_and_realtime_flag(edge_models, blocker_dir, tmp_path):
    import wave

    from edge_demo.audio import load_audio

    waveform = load_audio(edge_models.wavs[0], 16000).waveform[:16000 * 2 + 3200]  # 2.2 s
    clip = tmp_path / "short.wav"
    with wave.open(str(clip), "wb") as f:
        f.setnchannels(1), f.setsampwidth(2), f.setframerate(16000)
        f.writeframes((np.clip(waveform, -1, 1) * 32767).astype("<i2").tobytes())
    result = run_edge(blocker_dir, "stream", "--model", edge_models.tflite["float32"], "--wav", clip,
                      "--realtime", "--hop", "0.1", blocked=DEVICE_ONLY)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3 + 1  # windows ending at 2.0, 2.1, 2.2 s; then the summary
    assert any(label in lines[0] for label in edge_models.labels) and ("█" in lines[0] or "░" in lines[0])
    assert "real-time factor" in lines[-1]


def test_microphone_without_sounddevice_exits_with_a_clear_message(edge_models, blocker_dir):
    result = run_edge(blocker_dir, "stream", "--model", edge_models.tflite["int8"], blocked=DEVICE_ONLY)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "sounddevice" in line and "--wav" in line


_FAKE_SOUNDDEVICE = """
import threading, time
import numpy as np

class InputStream:
    \"\"\"A microphone that plays a 220 Hz tone in `blocksize` blocks from its own thread.\"\"\"
    def __init__(self, samplerate, channels, dtype, blocksize, device, callback):
        assert channels == 1 and dtype == "float32"
        self.rate, self.block, self.callback, self.stopped = samplerate, blocksize, callback, False
        print(f"fake microphone: device={device!r} rate={samplerate} block={blocksize}", flush=True)

    def __enter__(self):
        def run():
            start = 0
            while not self.stopped:
                t = np.arange(start, start + self.block) / self.rate
                self.callback((0.2 * np.sin(2 * np.pi * 220 * t)).astype("float32")[:, None], self.block, None, None)
                start += self.block
                time.sleep(0.001)
        threading.Thread(target=run, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.stopped = True

def query_devices():
    return "  0 fake microphone, ALSA (1 in, 0 out)"
"""


def test_live_microphone_path_with_a_fake_sounddevice(edge_models, blocker_dir, tmp_path):
    (tmp_path / "sounddevice.py").write_text(_FAKE_SOUNDDEVICE)
    blocked = tuple(b for b in DEVICE_ONLY if b != "sounddevice")
    result = run_edge(blocker_dir, "stream", "--list-devices", blocked=blocked, extra_path=[tmp_path])
    assert result.returncode == 0 and "fake microphone" in result.stdout
    result = run_edge(blocker_dir, "stream", "--model", edge_models.tflite["int8"], "--device", "0",
                      "--duration", "3", "--json", blocked=blocked, extra_path=[tmp_path])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "fake microphone: device=0 rate=16000 block=6400"
    updates = [json.loads(line)["update"] for line in lines[1:-1]]
    summary = json.loads(lines[-1])["summary"]
    # --duration 3 stops at the first whole block past 3 s: 8 blocks of 0.4 s.
    assert [u["end_s"] for u in updates] == [2.0, 2.4, 2.8, 3.2] and summary["updates"] == 4
    assert summary["source"] == "microphone 0" and summary["audio_s"] == 3.2
