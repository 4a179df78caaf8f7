"""Training and inference throughput per model variant, plus size and FLOPs.

Measures, on this machine, for every variant: parameters, FLOPs per 2 s
segment (TensorFlow's profiler on the frozen inference graph), training
segments/s (`model.fit`, batch 32, first epoch excluded as warm-up, fastest
of the timed epochs), inference
segments/s (Keras `predict`, batch 32; and a compiled call at batch 1), and,
separately, the input pipeline (the tf.data pipeline over cached features,
which must never be the bottleneck). Writes
`benchmarks/results/throughput.{json,md}`.

Example:
    python -m benchmarks.throughput              # all variants, ~2 min on 2 cores
    python -m benchmarks.throughput --variants mhsa fa_ca --segments 512
"""

from __future__ import annotations

import argparse
import time
from typing import Dict, List

import numpy as np

from benchmarks.common import markdown_table, provenance, write_results
from sercal_keras.provenance import machine_info


def count_flops(model) -> int:
    """Floating-point operations of one forward pass at batch 1 (TF profiler)."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    spec = tf.TensorSpec((1, *model.input_shape[1:]), tf.float32)
    frozen = convert_variables_to_constants_v2(
        tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    )
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return int(tf.compat.v1.profiler.profile(graph=frozen.graph, options=options).total_float_ops)


def _rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1)


def _best_rate(count: int, run, repeats: int = 3) -> float:
    """Segments/s of the fastest of `repeats` timed calls of `run()`: the least disturbed by other work."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return _rate(count, min(times))


def measure_variant(variant: str, segments: int, epochs: int, num_classes: int) -> Dict[str, float]:
    import keras
    import tensorflow as tf

    from sercal_keras.models import build_model

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    features = rng.normal(size=(segments, 26, 63)).astype("float32")
    labels = rng.integers(0, num_classes, size=segments)
    dataset = (
        tf.data.Dataset.from_tensor_slices((features, labels)).shuffle(segments, seed=0)
        .batch(32).cache().prefetch(tf.data.AUTOTUNE)
    )
    model = build_model(variant, num_classes=num_classes)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")

    model.fit(dataset, epochs=1, verbose=0)  # warm-up: tracing and graph building
    epoch_times = []
    timer = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: epoch_times.append(-time.perf_counter()),
        on_epoch_end=lambda epoch, logs: epoch_times.__setitem__(-1, epoch_times[-1] + time.perf_counter()),
    )
    model.fit(dataset, epochs=epochs, verbose=0, callbacks=[timer])
    train_rate = _rate(segments, min(epoch_times))  # the fastest epoch: the least disturbed by other work

    model.predict(features, batch_size=32, verbose=0)  # warm-up
    predict_rate = _best_rate(segments, lambda: model.predict(features, batch_size=32, verbose=0))

    single = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    one = features[:1]
    for _ in range(10):
        single(one)
    count = min(segments, 300)

    def call_one_by_one():
        for i in range(count):
            single(features[i : i + 1])

    batch1_rate = _best_rate(count, call_one_by_one)
    return {
        "params": int(model.count_params()),
        "mflops_per_segment": round(count_flops(model) / 1e6, 2),
        "train_segments_per_s": train_rate,
        "predict_b32_segments_per_s": predict_rate,
        "call_b1_segments_per_s": batch1_rate,
    }


def measure_input_pipeline(segments: int) -> float:
    """Segments/s the tf.data pipeline delivers from in-memory cached features."""
    import tensorflow as tf

    features = np.zeros((segments, 26, 63), "float32")
    dataset = (
        tf.data.Dataset.from_tensor_slices((features, np.zeros(segments, "int64")))
        .shuffle(segments, seed=0).batch(32).prefetch(tf.data.AUTOTUNE)
    )
    for _ in dataset:  # warm-up
        pass
    start = time.perf_counter()
    for _ in range(3):
        for _ in dataset:
            pass
    return _rate(3 * segments, time.perf_counter() - start)


def main(argv: List[str] = None) -> int:
    from sercal_keras.models import VARIANTS

    parser = argparse.ArgumentParser(prog="python -m benchmarks.throughput", description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", nargs="+", default=sorted(VARIANTS), choices=sorted(VARIANTS))
    parser.add_argument("--segments", type=int, default=1024, help="synthetic MFCC segments per epoch (default 1024)")
    parser.add_argument("--epochs", type=int, default=3, help="timed training epochs after one warm-up epoch (the fastest counts; default 3)")
    parser.add_argument("--num-classes", type=int, default=7)
    parser.add_argument("--name", default="throughput", help="results file stem under benchmarks/results/")
    args = parser.parse_args(argv)

    load_at_start = machine_info()["load_average_1min"]
    results = {}
    for variant in args.variants:
        print(f"[throughput] {variant} …", flush=True)
        results[variant] = measure_variant(variant, args.segments, args.epochs, args.num_classes)
        print(f"[throughput] {variant}: {results[variant]}", flush=True)
    pipeline_rate = measure_input_pipeline(args.segments * 4)
    payload = {**provenance("benchmarks.throughput"), "variants": results,
               "input_pipeline_segments_per_s": pipeline_rate}
    rows = [
        [v, f"{r['params']:,}", r["mflops_per_segment"], r["train_segments_per_s"],
         r["predict_b32_segments_per_s"], r["call_b1_segments_per_s"]]
        for v, r in results.items()
    ]
    markdown = (
        "# Throughput per variant\n\n"
        f"Command: `{payload['command']}`  \nCommit: `{payload['git_commit']}`  \n"
        f"Machine: {payload['machine']['cpu']} ({payload['machine']['cpu_count']} cores; 1-min load average "
        f"{load_at_start} at the start, {payload['machine']['load_average_1min']} at the end"
        # At the start the load is other work's; by the end it includes this benchmark's own threads.
        + (": other work was running, the rates are low" if load_at_start > 1.0 else "")
        + "). Rates: the fastest of 3 timed passes (training: of --epochs epochs).\n\n"
        + markdown_table(
            ["variant", "params", "MFLOPs / segment", "train seg/s (b32)", "predict seg/s (b32)", "call seg/s (b1)"], rows
        )
        + f"\nInput pipeline (tf.data over cached features, batch 32): {pipeline_rate:,.0f} segments/s.\n"
    )
    write_results(args.name, payload, markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
