"""Live emotion recognition from a microphone (or a WAV file played as a stream).

    python -m edge_demo.stream --model model_int8.tflite            # microphone
    python -m edge_demo.stream --model model_int8.tflite --wav a.wav  # simulated
    python -m edge_demo.stream --model s0_int8.tflite --ensemble s1_int8.tflite s2_int8.tflite  # seeds averaged

Audio goes into a ring buffer holding the model's window (2 s). Every `--hop`
seconds of new audio (default: the card's evaluation hop, 0.4 s) the newest
window is classified (MFCC + model, or the waveform model); `--smooth K` shows
the mean of the last K windows' probabilities. One line per update, rewritten
in place on a terminal. At the end it prints the real-time factor: processing
time (ring buffer, features, model, smoothing) divided by the audio time
streamed; below 1 keeps up with real time. It is given twice: wall clock, and
the CPU time of the processing thread (the same on an idle device; on a busy
machine the wall clock also counts the time other programs had the CPU).

The microphone needs `sounddevice` (PortAudio); without it the command says so
and exits with status 2. `--wav` runs as fast as possible unless `--realtime`.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time
from dataclasses import dataclass
from typing import Iterable, Iterator, List, Optional, Sequence

import numpy as np

PROG = "python -m edge_demo.stream"
DEFAULT_MODEL = os.environ.get("SERCAL_EDGE_MODEL", "model.tflite")


@dataclass
class Update:
    """One classified window."""

    index: int
    end_s: float  # audio time at the window's end
    label: str
    confidence: float
    probabilities: np.ndarray  # smoothed over the last k windows
    raw_probabilities: np.ndarray  # this window alone
    latency_ms: float  # features + model + smoothing for this window
    padded: bool = False  # a final, zero-padded window (stream shorter than one window)

    def to_dict(self, labels: Sequence[str]) -> dict:
        return {
            "index": self.index,
            "end_s": round(self.end_s, 4),
            "label": self.label,
            "confidence": round(float(self.confidence), 6),
            "probabilities": {x: float(p) for x, p in zip(labels, self.probabilities)},
            "raw_probabilities": [float(p) for p in self.raw_probabilities],
            "latency_ms": round(self.latency_ms, 4),
            "padded": self.padded,
        }


class StreamClassifier:
    """Ring buffer + sliding-window classification of a sample stream.

    The first update comes when one full window has arrived, then one per
    `hop` new samples; the windows start at 0, hop, 2·hop, … exactly as
    `segment_waveform` cuts a file. `finish()` classifies a zero-padded
    window if the stream ended before one full window (as training pads short
    utterances).

    Args:
        model: an `EdgeModel` or `EdgeEnsemble`.
        hop_seconds: seconds between updates; default the card's evaluation hop.
        smooth: average the probabilities of the last `smooth` windows (1: none).
    """

    def __init__(self, model, hop_seconds: Optional[float] = None, smooth: int = 1):
        config = model.feature_config
        self.model = model
        self.sample_rate = config.sample_rate
        self.window = config.segment_samples
        if hop_seconds is None:
            self.hop = config.hop_samples(training=False)
        else:
            self.hop = int(round(hop_seconds * self.sample_rate))
        if self.hop < 1:
            raise ValueError(f"--hop must be positive (>= 1 sample). Received: hop_seconds={hop_seconds}")
        if smooth < 1:
            raise ValueError(f"--smooth must be >= 1. Received: smooth={smooth}")
        self.smooth = int(smooth)
        self._ring = np.zeros(self.window, np.float32)
        self._pos = 0  # next write position = oldest sample once the ring is full
        self.total = 0  # samples received
        self._next_at = self.window
        self._history: collections.deque = collections.deque(maxlen=self.smooth)
        self.updates = 0
        self.processing_s = 0.0  # wall clock
        self.processing_cpu_s = 0.0  # CPU time of this thread (LiteRT with 1 thread runs here too)

    @property
    def audio_s(self) -> float:
        return self.total / self.sample_rate

    @property
    def real_time_factor(self) -> float:
        """Processing time / audio time, wall clock (NaN before any audio)."""
        return self.processing_s / self.audio_s if self.total else float("nan")

    @property
    def cpu_real_time_factor(self) -> float:
        """CPU time of the processing thread / audio time: what the work costs, without the
        waiting a busy machine adds to the wall clock (NaN before any audio). Exact with one
        interpreter thread; with more, the workers' CPU time is not counted."""
        return self.processing_cpu_s / self.audio_s if self.total else float("nan")

    def window_samples(self) -> np.ndarray:
        """The ring's contents in time order (oldest first)."""
        return np.concatenate((self._ring[self._pos:], self._ring[: self._pos]))

    def push(self, samples: np.ndarray) -> List[Update]:
        """Adds mono float32 samples; returns the updates they completed (maybe none)."""
        start, cpu_start = time.perf_counter(), time.thread_time()
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        updates = []
        while samples.size:
            take = min(samples.size, self._next_at - self.total)
            self._write(samples[:take])
            samples = samples[take:]
            self.total += take
            if self.total == self._next_at:
                updates.append(self._classify(self.window_samples(), padded=False))
                self._next_at += self.hop
        self.processing_s += time.perf_counter() - start
        self.processing_cpu_s += time.thread_time() - cpu_start
        return updates

    def finish(self) -> List[Update]:
        """Ends the stream: classifies a zero-padded window if no full window ever arrived."""
        if self.updates or self.total == 0:
            return []
        start, cpu_start = time.perf_counter(), time.thread_time()
        window = np.zeros(self.window, np.float32)
        window[: self.total] = self._ring[: self.total]
        update = self._classify(window, padded=True)
        self.processing_s += time.perf_counter() - start
        self.processing_cpu_s += time.thread_time() - cpu_start
        return [update]

    def _write(self, chunk: np.ndarray) -> None:
        n = chunk.size
        if n >= self.window:
            self._ring[:] = chunk[-self.window:]
            self._pos = 0
            return
        first = min(n, self.window - self._pos)
        self._ring[self._pos: self._pos + first] = chunk[:first]
        self._ring[: n - first] = chunk[first:]
        self._pos = (self._pos + n) % self.window

    def _classify(self, window: np.ndarray, padded: bool) -> Update:
        start = time.perf_counter()
        raw = self.model.classify_segments(window[None, :])[0]
        self._history.append(raw)
        probs = np.mean(self._history, axis=0)
        best = int(np.argmax(probs))
        update = Update(
            index=self.updates,
            end_s=self.total / self.sample_rate,
            label=self.model.labels[best],
            confidence=float(probs[best]),
            probabilities=probs,
            raw_probabilities=raw,
            latency_ms=1000 * (time.perf_counter() - start),
            padded=padded,
        )
        self.updates += 1
        return update


# ----------------------------------------------------------------- sources


def wav_blocks(waveform: np.ndarray, block: int, sample_rate: int, realtime: bool) -> Iterator[np.ndarray]:
    """A file's samples in microphone-sized blocks; paced like a microphone if `realtime`."""
    start = time.perf_counter()
    for offset in range(0, len(waveform), block):
        if realtime:
            due = start + offset / sample_rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        yield waveform[offset: offset + block]


def microphone_blocks(device, sample_rate: int, block: int, duration: Optional[float]) -> Iterator[np.ndarray]:
    """Blocks from the microphone through sounddevice (imported here: optional)."""
    import queue

    import sounddevice as sd

    blocks: "queue.Queue[np.ndarray]" = queue.Queue()

    def callback(indata, frames, time_info, status):  # runs on PortAudio's thread
        if status:
            print(f"\n{PROG}: audio: {status}", file=sys.stderr)
        blocks.put(indata[:, 0].copy())

    received = 0
    with sd.InputStream(samplerate=sample_rate, channels=1, dtype="float32", blocksize=block,
                        device=device, callback=callback):
        while duration is None or received < duration * sample_rate:
            data = blocks.get()
            received += len(data)
            yield data


# ----------------------------------------------------------------- display


def confidence_bar(value: float, width: int = 20) -> str:
    filled = int(round(max(0.0, min(1.0, value)) * width))
    return "█" * filled + "░" * (width - filled)


def format_update(update: Update, rtf: float) -> str:
    return (f"[{update.end_s:7.1f}s] {update.label:<10} {confidence_bar(update.confidence)} "
            f"{update.confidence:4.2f}  {update.latency_ms:6.2f} ms  rtf {rtf:.4f}")


class Display:
    """One line per update: rewritten in place on a TTY, appended otherwise; or JSON lines."""

    def __init__(self, labels: Sequence[str], as_json: bool, stream=None):
        self.labels = list(labels)
        self.as_json = as_json
        self.out = stream or sys.stdout
        self.in_place = not as_json and self.out.isatty()

    def show(self, update: Update, rtf: float) -> None:
        if self.as_json:
            self.out.write(json.dumps({"update": update.to_dict(self.labels)}) + "\n")
        elif self.in_place:
            self.out.write("\r\x1b[2K" + format_update(update, rtf))
        else:
            self.out.write(format_update(update, rtf) + "\n")
        self.out.flush()

    def summary(self, info: dict) -> None:
        if self.as_json:
            self.out.write(json.dumps({"summary": info}) + "\n")
        else:
            if self.in_place:
                self.out.write("\n")
            self.out.write(
                f"{info['updates']} updates over {info['audio_s']:.1f} s of audio; processing "
                f"{info['processing_s']:.3f} s (features + model), real-time factor "
                f"{info['real_time_factor'] or float('nan'):.4f} (CPU time: "
                f"{info['cpu_real_time_factor'] or float('nan'):.4f}); mean {info['mean_latency_ms']:.2f} ms per window\n"
            )
        self.out.flush()


# -------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Live speech emotion recognition from a microphone (sounddevice) or a WAV "
        "file played as a stream, with a .tflite model and its sidecar (numpy + LiteRT only).",
    )
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help="the .tflite model (default: $SERCAL_EDGE_MODEL or ./model.tflite)")
    parser.add_argument("--card", help="sidecar path, if not <model stem>.json beside the model")
    parser.add_argument("--ensemble", nargs="+", metavar="more.tflite", default=[],
                        help="more models of the same recipe (e.g. other seeds), each with its sidecar beside it: "
                        "every window's probabilities are averaged with the first model's")
    parser.add_argument("--device", default=None,
                        help="input device number or name substring (sounddevice); see --list-devices")
    parser.add_argument("--list-devices", action="store_true", help="list audio devices and exit")
    parser.add_argument("--hop", type=float, default=None,
                        help="seconds between updates (default: the card's evaluation hop, 0.4)")
    parser.add_argument("--smooth", type=int, default=1, help="average the last K windows (default 1: off)")
    parser.add_argument("--wav", help="simulate the microphone with this file")
    parser.add_argument("--realtime", action="store_true", help="with --wav: pace the file at real speed")
    parser.add_argument("--duration", type=float, default=None, help="microphone: stop after this many seconds")
    parser.add_argument("--threads", type=int, default=1, help="interpreter threads (default 1)")
    parser.add_argument("--json", action="store_true", help="JSON lines: one per update, then a summary")
    parser.add_argument("--speaker-audio", nargs="+", metavar="file.wav",
                        help="per-speaker models: a few utterances of the speaker, for their MFCC statistics")
    return parser


def _parse_device(value):
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return value


def _import_sounddevice():
    try:
        import sounddevice
    except (ImportError, OSError) as error:
        raise SystemExit(
            f"{PROG}: error: live input needs sounddevice ({' '.join(str(error).split())}): "
            "`pip install sounddevice` (on Raspberry Pi OS also `sudo apt install libportaudio2`); "
            "or simulate a microphone with --wav FILE."
        ) from None
    return sounddevice


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list_devices:
        try:
            sd = _import_sounddevice()
        except SystemExit as error:
            print(error, file=sys.stderr)
            return 2
        print(sd.query_devices())
        return 0
    if args.smooth < 1 or (args.hop is not None and args.hop <= 0):
        print(f"{PROG}: error: --smooth must be >= 1 and --hop > 0.", file=sys.stderr)
        return 2
    if args.wav is None:  # fail before loading anything if the microphone cannot work
        try:
            _import_sounddevice()
        except SystemExit as error:
            print(error, file=sys.stderr)
            return 2

    from edge_demo.audio import load_audio
    from edge_demo.ensemble import load_model_or_ensemble
    from edge_demo.frontend_loader import FrontendNotFoundError
    from edge_demo.runtime import EdgeError

    try:
        model = load_model_or_ensemble(args.model, args.card, args.ensemble, num_threads=args.threads)
        if args.speaker_audio:
            model.adapt([load_audio(path, model.feature_config.sample_rate, frontend=model.frontend).waveform
                         for path in args.speaker_audio])
        elif model.per_speaker:
            model.current_speaker_statistics(fix="--speaker-audio with a few utterances of the speaker")
        classifier = StreamClassifier(model, hop_seconds=args.hop, smooth=args.smooth)
        rate = model.feature_config.sample_rate
        if args.wav is not None:
            audio = load_audio(args.wav, rate, frontend=model.frontend)
            blocks: Iterable[np.ndarray] = wav_blocks(audio.waveform, classifier.hop, rate, args.realtime)
        else:
            blocks = microphone_blocks(_parse_device(args.device), rate, classifier.hop, args.duration)
    except (EdgeError, FrontendNotFoundError, ValueError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2

    display = Display(model.labels, args.json)
    latencies: List[float] = []
    try:
        for block in blocks:
            for update in classifier.push(block):
                latencies.append(update.latency_ms)
                display.show(update, classifier.real_time_factor)
    except KeyboardInterrupt:
        pass
    except Exception as error:  # PortAudio errors: wrong device, unsupported rate, ...
        print(f"\n{PROG}: error: audio input failed: {' '.join(str(error).split())}. Check --device "
              "(see --list-devices); the device must record at the model's rate "
              f"({rate} Hz; ALSA 'default'/'plughw' devices resample).", file=sys.stderr)
        return 1
    for update in classifier.finish():
        latencies.append(update.latency_ms)
        display.show(update, classifier.real_time_factor)
    display.summary({
        **{k: v for k, v in model.describe().items() if k in ("model", "input_kind", "mode", "threads", "members")},
        "source": args.wav or f"microphone {args.device if args.device is not None else '(default)'}",
        "hop_s": classifier.hop / rate,
        "window_s": classifier.window / rate,
        "smooth": classifier.smooth,
        "updates": classifier.updates,
        "audio_s": round(classifier.audio_s, 4),
        "processing_s": round(classifier.processing_s, 6),
        "real_time_factor": round(classifier.real_time_factor, 6) if classifier.total else None,
        "cpu_real_time_factor": round(classifier.cpu_real_time_factor, 6) if classifier.total else None,
        "mean_latency_ms": round(float(np.mean(latencies)), 4) if latencies else 0.0,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
