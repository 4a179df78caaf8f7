"""Feature-extraction throughput on EmoDB: numpy MFCC, librosa, in-graph layer.

For every EmoDB file: decode (soundfile + soxr) and segment (2 s windows, the
evaluation hop 0.4 s by default), then MFCC by
- `frontend.mfcc` (numpy, the one the data path uses),
- `mfcc_librosa` (the librosa reference, one call per segment),
- the `MFCC` Keras layer (TensorFlow graph, batches of 32),
- the same layer converted to TFLite, run by LiteRT at batch 1 on one thread
  (the edge path; first `--tflite-segments` segments).
Reports segments/s for the MFCC step alone and files/s end to end (decode +
segment + MFCC), best of `--repeats`, and the largest |difference| to librosa.
Writes `benchmarks/results/features.{json,md}`.

Example:
    python -m benchmarks.features                     # ~1 min on 2 cores
    python -m benchmarks.features --limit 50 --repeats 1 --json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np

from benchmarks.common import markdown_table, provenance, write_results

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "emodb"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.features",
        description="Feature-extraction throughput (numpy, librosa, Keras layer, LiteRT) on EmoDB.",
    )
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA.resolve(),
                        help="EmoDB folder (holding wav/). Default: ../shared/data/emodb")
    parser.add_argument("--hop", choices=["eval", "train"], default="eval",
                        help="segment hop: eval 0.4 s (default) or train 1 s")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N files")
    parser.add_argument("--repeats", type=int, default=2, help="timed repeats; the best is kept")
    parser.add_argument("--batch-size", type=int, default=32, help="batch for the Keras layer")
    parser.add_argument("--tflite-segments", type=int, default=200,
                        help="segments run one by one through LiteRT")
    parser.add_argument("--results-dir", type=Path, default=None,
                        help="where features.{json,md} go (default benchmarks/results)")
    parser.add_argument("--json", action="store_true", help="also print the JSON to stdout")
    return parser.parse_args(argv)


def best_time(fn: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def tflite_runner(batch_segments: np.ndarray):
    """Converts the MFCC layer (builtins only) and returns a batch-1 LiteRT runner."""
    import keras
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    from sercal_keras.audio.mfcc_layer import MFCC

    inputs = keras.Input((batch_segments.shape[1],), batch_size=1)
    converter = tf.lite.TFLiteConverter.from_keras_model(keras.Model(inputs, MFCC()(inputs)))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    flatbuffer = converter.convert()
    interpreter = Interpreter(model_content=flatbuffer, num_threads=1)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]["index"]
    out = interpreter.get_output_details()[0]["index"]

    def run(segments):
        results = []
        for segment in segments:
            interpreter.set_tensor(inp, segment[None])
            interpreter.invoke()
            results.append(interpreter.get_tensor(out)[0, ..., 0])
        return np.stack(results)

    return run, len(flatbuffer)


def main(argv=None) -> int:
    args = parse_args(argv)
    wav_dir = args.data_dir / "wav" if (args.data_dir / "wav").is_dir() else args.data_dir
    files = sorted(wav_dir.glob("*.wav"))[: args.limit]
    if not files:
        print(f"error: no EmoDB .wav files in {wav_dir}; pass --data-dir", file=sys.stderr)
        return 2

    import tensorflow as tf

    from sercal_keras.audio import frontend
    from sercal_keras.audio.decode import load_audio
    from sercal_keras.audio.mfcc_layer import MFCC
    from sercal_keras.audio.mfcc_librosa import mfcc_librosa

    config = frontend.FeatureConfig()
    hop = config.hop_samples(training=args.hop == "train")

    def decode_and_segment():
        return np.concatenate(
            [frontend.segment_waveform(load_audio(f), config.segment_samples, hop) for f in files]
        )

    print(f"{len(files)} files: decoding and segmenting (hop {hop / config.sample_rate} s)…", flush=True)
    segments = decode_and_segment()
    decode_s = best_time(decode_and_segment, args.repeats)

    layer = MFCC()
    graph = tf.function(layer.call, input_signature=[tf.TensorSpec((None, config.segment_samples), tf.float32)])

    def layer_mfcc(x):
        return np.concatenate(
            [graph(tf.constant(x[i : i + args.batch_size])).numpy()[..., 0]
             for i in range(0, len(x), args.batch_size)]
        )

    run_tflite, tflite_bytes = tflite_runner(segments)
    tflite_part = segments[: args.tflite_segments]
    methods = {
        "numpy frontend.mfcc": (lambda: frontend.mfcc(segments), segments),
        "librosa reference": (lambda: mfcc_librosa(segments), segments),
        "Keras MFCC layer (TF graph, batch %d)" % args.batch_size: (lambda: layer_mfcc(segments), segments),
        "MFCC layer as TFLite (LiteRT, batch 1, 1 thread)": (lambda: run_tflite(tflite_part), tflite_part),
    }
    print("librosa reference values…", flush=True)
    reference = mfcc_librosa(segments)
    rows: List[Dict[str, object]] = [{
        "method": "decode + segment only",
        "segments": len(segments),
        "seconds": round(decode_s, 3),
        "segments_per_s": round(len(segments) / decode_s, 1),
        "files_per_s": round(len(files) / decode_s, 1),
        "max_abs_diff_vs_librosa": None,
    }]
    for name, (fn, part) in methods.items():
        print(f"timing {name}…", flush=True)
        output = fn()  # warm-up, and the values to compare
        seconds = best_time(fn, 1 if name.startswith("librosa") else args.repeats)
        per_segment = seconds / len(part)
        rows.append({
            "method": name,
            "segments": len(part),
            "seconds": round(seconds, 3),
            "segments_per_s": round(1 / per_segment, 1),
            "ms_per_segment": round(1000 * per_segment, 3),
            # End to end for the whole set: decode + segment, then this MFCC.
            "files_per_s": round(len(files) / (decode_s + per_segment * len(segments)), 1),
            "max_abs_diff_vs_librosa": float(np.abs(output - reference[: len(part)]).max()),
        })

    payload = {
        "benchmark": "features",
        "corpus": "emodb",
        "files": len(files),
        "segments": len(segments),
        "hop_seconds": hop / config.sample_rate,
        "feature_config": config.to_dict(),
        "repeats": args.repeats,
        "tflite_bytes": tflite_bytes,
        "results": rows,
        **provenance("benchmarks.features"),
    }
    table = markdown_table(
        ["method", "segments", "segments/s (MFCC step)", "ms/segment", "files/s (end to end)", "max |Δ| vs librosa"],
        [
            [r["method"], r["segments"], r["segments_per_s"], r.get("ms_per_segment", "–"), r["files_per_s"],
             "–" if r["max_abs_diff_vs_librosa"] is None else f"{r['max_abs_diff_vs_librosa']:.1e}"]
            for r in rows
        ],
    )
    markdown = (
        f"# Feature extraction throughput (EmoDB)\n\n"
        f"{len(files)} files → {len(segments)} segments of 2 s (hop {hop / config.sample_rate} s), "
        f"26 × 63 MFCC each. Best of {args.repeats} runs (librosa: 1), on "
        f"{payload['machine']['cpu']} ({payload['machine']['cpu_count']} cores, shared). "
        "segments/s times the MFCC step alone; files/s is end to end (decode + soxr + segment + "
        f"MFCC). The TFLite model is {tflite_bytes / 1024:.0f} KB.\n\n"
        f"{table}\nCommand: `{payload['command']}` at commit {payload['git_commit']}.\n"
    )
    path = write_results("features", payload, markdown, **({"results_dir": args.results_dir} if args.results_dir else {}))
    print(markdown)
    print(f"wrote {path} and {path.with_suffix('.md')}")
    if args.json:
        print(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
