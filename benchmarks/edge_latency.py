"""Edge latency: per-segment LiteRT latency and the streaming real-time factor.

For each `.tflite` (with its sidecar), measured through the edge runtime
(`edge_demo.runtime.EdgeModel`, numpy + LiteRT, the code a device runs):

- **invoke**: one segment through the interpreter (set_tensor + invoke +
  get_tensor), batch 1, `--threads` threads (default 1), warm-up runs excluded;
  median / p95 / mean in ms. For waveform-input models this includes the
  in-graph MFCC.
- **features**: the numpy MFCC + standardisation of one 2 s window (MFCC
  models; the front-end loaded by `edge_demo.frontend_loader`).
- **window**: features + quantise + invoke + dequantise for one window, the
  work behind one streaming update.
- **streaming RTF**: `edge_demo.stream.StreamClassifier` fed `--stream-seconds`
  of audio in hop-sized blocks (as a microphone delivers them); processing
  time (ring buffer, features, model, smoothing) / audio time. Median of 3 passes.
- XNNPACK partitions (DELEGATE nodes in the interpreter) and file size.

The models are measured in interleaved rounds, so a burst of load from other
programs hits all of them alike; the 1-minute load average is recorded. The
measuring happens before TensorFlow is ever imported in this process.

Without model paths, the models are built first on the synthetic corpus:
`python -m training.fit --corpus synthetic --folds 0 --seeds 0 --epochs N`
then `python -m export.tflite <run> --mode float32 int8 --input both`, in
`--workdir` (default `runs/edge_latency`; reused when already there, unless
`--rebuild`). Results: `benchmarks/results/edge_latency.{json,md}`.

Examples:
    python -m benchmarks.edge_latency                       # build + measure, ~3 min on 2 cores
    python -m benchmarks.edge_latency runs/x/tflite/*.tflite --runs 500
    python -m benchmarks.edge_latency model_int8.tflite --threads 1 4 --name edge_latency_pi
"""

from __future__ import annotations

import edge_demo  # noqa: F401  (first: sets numpy's BLAS to one thread before numpy loads)

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

PROG = "python -m benchmarks.edge_latency"
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WORKDIR = REPO_ROOT / "runs" / "edge_latency"
TARGETS = {"int8_invoke_ms": 0.6, "rtf": 0.01}  # DESIGN.md §6


# ------------------------------------------------------------------ building


def build_models(workdir: Path, epochs: int, rebuild: bool, log=print) -> Dict[str, Any]:
    """Trains on the synthetic corpus and exports float32 + int8, MFCC + waveform input."""
    run_dir = workdir / "run"
    tflite_dir = run_dir / "tflite"
    commands = [
        [sys.executable, "-m", "training.fit", "--corpus", "synthetic", "--folds", "0", "--seeds", "0",
         "--epochs", str(epochs), "--output-dir", str(run_dir), "--cache-dir", str(workdir / "cache"), "--quiet"]
        + (["--overwrite"] if rebuild else []),
        [sys.executable, "-m", "export.tflite", str(run_dir), "--mode", "float32", "int8", "--input", "both",
         "--quiet"],
    ]
    existing = sorted(tflite_dir.glob("*.tflite")) if tflite_dir.is_dir() else []
    if existing and not rebuild:
        log(f"[edge_latency] reusing {len(existing)} models in {tflite_dir} (--rebuild to retrain)")
    else:
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        for command in commands:
            log("[edge_latency] $ " + " ".join(_short(c) for c in command))
            done = subprocess.run(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
            if done.returncode != 0:
                raise SystemExit(f"{PROG}: error: building the models failed:\n{done.stdout[-3000:]}")
        existing = sorted(tflite_dir.glob("*.tflite"))
    return {"models": existing, "commands": [" ".join(_short(c) for c in command) for command in commands],
            "run_dir": str(run_dir.relative_to(REPO_ROOT) if run_dir.is_relative_to(REPO_ROOT) else run_dir)}


def _short(arg: str) -> str:
    if arg == sys.executable:
        return "python"
    try:
        return str(Path(arg).relative_to(REPO_ROOT)) if Path(arg).is_absolute() else arg
    except ValueError:
        return arg


# ----------------------------------------------------------------- measuring


def stream_audio(seconds: float, sample_rate: int = 16000, seed: int = 0) -> np.ndarray:
    """Deterministic voiced-speech-like audio: harmonics with moving pitch, syllable envelope, noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    f0 = 150 + 40 * np.sin(2 * np.pi * 0.7 * t) + 15 * np.sin(2 * np.pi * 5.3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    voiced = sum(np.sin(k * phase) * k ** -1.3 for k in range(1, 16))
    envelope = np.clip(np.sin(2 * np.pi * 2.2 * t), 0, None) ** 2
    return (0.15 * voiced * envelope + 0.003 * rng.standard_normal(n)).astype(np.float32)


def _stats(seconds: Sequence[float]) -> Dict[str, float]:
    ms = np.asarray(seconds, np.float64) * 1000
    return {"median_ms": round(float(np.median(ms)), 4), "p95_ms": round(float(np.percentile(ms, 95)), 4),
            "mean_ms": round(float(np.mean(ms)), 4), "min_ms": round(float(np.min(ms)), 4), "n": int(ms.size)}


class Subject:
    """One model under test, with its timing samples (wall clock and thread CPU time)."""

    def __init__(self, path: Path, threads: int):
        from edge_demo.runtime import EdgeModel

        self.path = Path(path)
        self.threads = threads
        self.model = EdgeModel(self.path, num_threads=threads)
        config = self.model.feature_config
        self.window = stream_audio(config.segment_seconds, config.sample_rate, seed=1)[None, :]
        self.features_input = self.model.features(self.window)
        self.times: Dict[str, List[float]] = {k: [] for k in (
            "invoke", "invoke_cpu", "features", "features_cpu", "window", "window_cpu")}

    @property
    def name(self) -> str:
        return self.path.stem

    def warm_up(self, runs: int) -> None:
        self.model.time_invoke(repeats=1, warmup=runs)
        for _ in range(max(1, runs // 4)):
            self.model.classify_segments(self.window)

    def measure_round(self, runs: int) -> None:
        wall, cpu = self.model.time_invoke(repeats=runs, warmup=0, with_cpu=True)
        self.times["invoke"] += list(wall)
        self.times["invoke_cpu"] += list(cpu)
        for _ in range(max(1, runs // 4)):
            start, cpu_start = time.perf_counter(), time.thread_time()
            self.model.features(self.window)
            middle, cpu_middle = time.perf_counter(), time.thread_time()
            self.model.predict_features(self.features_input)
            end, cpu_end = time.perf_counter(), time.thread_time()
            self.times["features"].append(middle - start)
            self.times["features_cpu"].append(cpu_middle - cpu_start)
            self.times["window"].append(end - start)
            self.times["window_cpu"].append(cpu_end - cpu_start)

    def stream_rtf(self, audio: np.ndarray, passes: int = 3) -> Dict[str, Any]:
        from edge_demo.stream import StreamClassifier

        rtfs, cpu_rtfs, updates, hop = [], [], 0, 1
        for _ in range(passes):
            stream = StreamClassifier(self.model)
            hop = stream.hop
            for start in range(0, len(audio), hop):
                stream.push(audio[start:start + hop])
            rtfs.append(stream.real_time_factor)
            cpu_rtfs.append(stream.cpu_real_time_factor)
            updates = stream.updates
        return {"rtf": round(float(np.median(rtfs)), 6), "cpu_rtf": round(float(np.median(cpu_rtfs)), 6),
                "rtf_passes": [round(float(r), 6) for r in rtfs],
                "cpu_rtf_passes": [round(float(r), 6) for r in cpu_rtfs],
                "hop_s": hop / self.model.feature_config.sample_rate, "updates": updates,
                "audio_s": round(len(audio) / self.model.feature_config.sample_rate, 3)}

    def result(self, stream: Dict[str, Any]) -> Dict[str, Any]:
        extra = self.model.card.raw.get("extra", {})
        sidecar_xnnpack = extra.get("xnnpack")
        mfcc = self.model.input_kind == "mfcc"
        return {
            "model": _short(str(self.path)),
            "input_kind": self.model.input_kind,
            "mode": self.model.card.mode,
            "threads": self.threads,
            "size_kb": round(self.path.stat().st_size / 1024, 1),
            "input": {"shape": list(self.model.input_spec.shape), "dtype": self.model.input_spec.dtype},
            "xnnpack_partitions": self.model.delegate_partitions(),
            "sidecar_xnnpack": sidecar_xnnpack.get("partitions") if isinstance(sidecar_xnnpack, dict) else None,
            "invoke": _stats(self.times["invoke"]),
            "invoke_cpu": _stats(self.times["invoke_cpu"]),
            "features": _stats(self.times["features"]) if mfcc else None,
            "features_cpu": _stats(self.times["features_cpu"]) if mfcc else None,
            "window": _stats(self.times["window"]),
            "window_cpu": _stats(self.times["window_cpu"]),
            "stream": stream,
        }


def measure(paths: Sequence[Path], threads: int, runs: int, warmup: int, rounds: int, stream_seconds: float,
            log=print) -> List[Dict[str, Any]]:
    subjects = [Subject(p, threads) for p in paths]
    for subject in subjects:
        subject.warm_up(warmup)
    per_round = max(1, runs // rounds)
    for r in range(rounds):
        for subject in subjects:
            subject.measure_round(per_round)
        log(f"[edge_latency] threads={threads}: round {r + 1}/{rounds}")
    audio = stream_audio(stream_seconds)
    streams = {}
    for subject in subjects:
        streams[subject.name] = subject.stream_rtf(audio)
    return [subject.result(streams[subject.name]) for subject in subjects]


# ------------------------------------------------------------------ reporting


def _reporting():
    """`(provenance, write_results)` from `benchmarks.common`, or stand-ins on a device.

    `benchmarks.common` imports `sercal_keras` (Keras); on a Raspberry Pi with
    only numpy + LiteRT the stand-ins record the same fields they can.
    """
    try:
        from benchmarks.common import provenance, write_results

        return provenance, write_results
    except ImportError:
        return _device_provenance, _device_write_results


def _device_provenance(module: str) -> Dict[str, Any]:
    import platform
    import shlex
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for dist in ("numpy", "ai-edge-litert", "tflite-runtime", "soundfile", "soxr"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    cpu = platform.machine()
    for path, prefix in (("/proc/device-tree/model", ""), ("/proc/cpuinfo", "model name")):
        try:
            text = Path(path).read_text(errors="replace").replace("\x00", "")
        except OSError:
            continue
        if not prefix:
            cpu = text.strip() or cpu
            break
        for line in text.splitlines():
            if line.startswith(prefix):
                cpu = line.split(":", 1)[1].strip()
                break
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                                text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {"command": " ".join(["python", "-m", module] + [shlex.quote(a) for a in sys.argv[1:]]),
            "git_commit": commit,
            "machine": {"cpu": cpu, "cpu_count": os.cpu_count(), "platform": platform.platform()},
            "versions": versions}


def _device_write_results(name: str, payload: Dict[str, Any], text: str) -> Path:
    import json

    results = Path(__file__).resolve().parent / "results"
    results.mkdir(parents=True, exist_ok=True)
    for suffix, content in ((".md", text), (".json", json.dumps(payload, indent=2, default=str) + "\n")):
        target = results / f"{name}{suffix}"
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(content)
        os.replace(tmp, target)
    return results / f"{name}.json"


def _markdown_table(headers, rows) -> str:
    lines = ["| " + " | ".join(str(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def markdown(payload: Dict[str, Any]) -> str:
    markdown_table = _markdown_table

    rows = []
    for r in payload["results"]:
        features = (f"{r['features']['median_ms']} / {r['features_cpu']['median_ms']}" if r["features"]
                    else "in graph")
        rows.append([
            f"`{Path(r['model']).name}`", r["input_kind"], r["mode"], r["threads"], r["size_kb"],
            r["xnnpack_partitions"], r["invoke"]["median_ms"], r["invoke"]["p95_ms"], r["invoke_cpu"]["median_ms"],
            features, f"{r['window']['median_ms']} / {r['window_cpu']['median_ms']}",
            f"{r['stream']['rtf']} / {r['stream']['cpu_rtf']}",
        ])
    checks = payload["checks"]
    lines = [
        "# Edge latency (LiteRT, numpy front-end)",
        "",
        f"Command: `{payload['command']}`  ",
        f"Commit: `{payload['git_commit']}`  ",
        f"Machine: {payload['machine']['cpu']} ({payload['machine']['cpu_count']} cores, "
        f"{payload['machine'].get('platform', '')}; 1-min load average {payload['load_average'][0]:.2f} at start, "
        f"{payload['load_average_end'][0]:.2f} at end: other jobs shared the CPU when it exceeds 1)  ",
        f"Interpreter: {payload['interpreter']}; numpy BLAS threads: {payload['openblas_threads']}  ",
        f"Models: {payload['models_source']}",
        "",
        markdown_table(
            ["model", "input", "mode", "threads", "KB", "XNNPACK partitions", "invoke median ms", "invoke p95 ms",
             "invoke CPU median ms", "features median ms (wall / CPU)", "window median ms (wall / CPU)",
             "stream RTF (wall / CPU)"], rows),
        "invoke = set_tensor + invoke + get_tensor for one 2 s segment (batch 1), "
        f"{payload['runs']} runs after {payload['warmup']} warm-up runs, interleaved over {payload['rounds']} rounds; "
        "features = numpy MFCC + standardisation of one window; window = features + quantise + invoke + "
        "dequantise (one streaming update); stream RTF = processing / audio time over "
        f"{payload['stream_seconds']:.0f} s fed in hop-sized blocks (median of 3 passes, features included). "
        "Wall = `time.perf_counter`; CPU = `time.thread_time` of the measuring thread (LiteRT with 1 thread and "
        "numpy with 1 BLAS thread run there), i.e. the work without the time other jobs on this shared machine "
        "held the CPU. p95 and wall-clock RTF are inflated by that load; the CPU columns are the cost a "
        "dedicated core would see.",
        "",
        "## Targets (DESIGN.md §6)",
        "",
    ]
    for check in checks:
        verdict = "" if check["met"] is None else f" → **{'met' if check['met'] else 'not met'}**"
        lines.append(f"- {check['what']}: {check['value']}{verdict}")
    lines.append("")
    return "\n".join(lines)


def evaluate_targets(results: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    checks = []
    one_thread = [r for r in results if r["threads"] == 1]
    by_key = {(r["input_kind"], r["mode"]): r for r in one_thread}
    int8, f32 = by_key.get(("mfcc", "int8")), by_key.get(("mfcc", "float32"))
    if int8:
        value = int8["invoke"]["median_ms"]
        checks.append({"what": f"int8 feature-input model ≤ {TARGETS['int8_invoke_ms']} ms per segment on one x86 thread",
                       "value": f"{value} ms (wall median; CPU {int8['invoke_cpu']['median_ms']} ms)",
                       "met": value <= TARGETS["int8_invoke_ms"]})
        checks.append({"what": "int8 graph delegated to XNNPACK in as few partitions as possible (count reported)",
                       "value": f"{int8['xnnpack_partitions']} partition(s)", "met": None})
    if int8 and f32:
        checks.append({"what": "int8 no slower than float32 (invoke median)",
                       "value": f"{int8['invoke']['median_ms']} vs {f32['invoke']['median_ms']} ms",
                       "met": int8["invoke"]["median_ms"] <= f32["invoke"]["median_ms"]})
    for r in one_thread:
        stream = r["stream"]
        checks.append({"what": f"streaming RTF ≤ {TARGETS['rtf']} ({r['input_kind']} {r['mode']}, features "
                               "included)", "value": f"wall {stream['rtf']}, CPU {stream['cpu_rtf']}",
                       "met": stream["cpu_rtf"] <= TARGETS["rtf"]})
    return checks


# ----------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Without MODEL paths: " + __doc__.split("Without model paths, ")[1])
    parser.add_argument("models", nargs="*", metavar="MODEL.tflite",
                        help="models to measure (each with its <name>.json sidecar); none: build them")
    parser.add_argument("--threads", type=int, nargs="+", default=[1], help="interpreter threads (default 1)")
    parser.add_argument("--runs", type=int, default=400, help="timed invokes per model (default 400)")
    parser.add_argument("--warmup", type=int, default=40, help="untimed invokes first (default 40)")
    parser.add_argument("--rounds", type=int, default=8, help="interleaved rounds (default 8)")
    parser.add_argument("--stream-seconds", type=float, default=60.0, help="audio streamed for the RTF (default 60)")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="where models are built (no MODEL)")
    parser.add_argument("--epochs", type=int, default=10, help="training epochs when building (default 10)")
    parser.add_argument("--rebuild", action="store_true", help="retrain and re-export even if models exist")
    parser.add_argument("--name", default="edge_latency", help="results file stem under benchmarks/results/")
    parser.add_argument("--no-write", action="store_true", help="print only; write no results files")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if min(args.threads) < 1 or args.runs < 1 or args.warmup < 0 or args.rounds < 1 or args.stream_seconds <= 2:
        print(f"{PROG}: error: --threads/--runs/--rounds must be >= 1, --warmup >= 0, --stream-seconds > 2",
              file=sys.stderr)
        return 2
    build = None
    paths = [Path(p) for p in args.models]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        print(f"{PROG}: error: not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    if not paths:
        build = build_models(args.workdir, args.epochs, args.rebuild)
        paths = build["models"]
    load_start = os.getloadavg()
    results = []
    from edge_demo.runtime import EdgeError

    try:
        for threads in args.threads:
            results += measure(paths, threads, args.runs, args.warmup, args.rounds, args.stream_seconds)
    except EdgeError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    load_end = os.getloadavg()

    provenance, write_results = _reporting()  # may import Keras: only after the measuring
    from edge_demo.runtime import interpreter_class

    payload = {
        **provenance("benchmarks.edge_latency"),
        "interpreter": interpreter_class()[1],
        "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
        "load_average": [round(x, 2) for x in load_start],
        "load_average_end": [round(x, 2) for x in load_end],
        "runs": args.runs, "warmup": args.warmup, "rounds": args.rounds, "stream_seconds": args.stream_seconds,
        "models_source": (f"built on the synthetic corpus ({args.epochs} epochs): "
                          + "; ".join(f"`{c}`" for c in build["commands"])) if build else "given on the command line",
        "build": build and {k: v for k, v in build.items() if k != "models"},
        "results": results,
    }
    payload["checks"] = evaluate_targets(results)
    text = markdown(payload)
    if not args.no_write:
        write_results(args.name, payload, text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
