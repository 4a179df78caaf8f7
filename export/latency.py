"""Latency of a `.tflite` per segment with LiteRT (numpy + ai_edge_litert only).

One invoke = one segment (the edge files have batch 1). Warm-up invokes are
excluded; the median and the 95th percentile of the timed invokes are reported,
for one thread and for all the machine's threads, with XNNPACK (LiteRT's
default) and optionally without it.
"""

from __future__ import annotations

import os
import time
from typing import Any, Dict, Optional, Sequence

import numpy as np

from export.litert_runtime import ModelSource, input_range_sample, make_interpreter


def measure_latency(model: ModelSource, num_threads: int = 1, runs: int = 200, warmup: int = 20,
                    xnnpack: bool = True, seed: int = 0) -> Dict[str, Any]:
    """Times `runs` invokes after `warmup` ones.

    Returns:
        `{"threads", "xnnpack", "runs", "median_ms", "p95_ms", "mean_ms", "min_ms"}`, plus
        `"cpu_median_ms"` (thread CPU time) with one thread.
    """
    if runs < 1 or warmup < 0:
        raise ValueError(f"runs must be >= 1 and warmup >= 0. Received: runs={runs}, warmup={warmup}")
    interpreter = make_interpreter(model, num_threads=num_threads, xnnpack=xnnpack)
    detail = interpreter.get_input_details()[0]
    x = input_range_sample(detail["shape"], detail["dtype"], np.random.default_rng(seed))
    interpreter.set_tensor(detail["index"], x)
    for _ in range(warmup):
        interpreter.invoke()
    times = np.empty(runs)
    cpu = np.empty(runs)
    for i in range(runs):
        cpu_started = time.thread_time()
        started = time.perf_counter()
        interpreter.invoke()
        times[i] = time.perf_counter() - started
        cpu[i] = time.thread_time() - cpu_started
    times *= 1e3
    cpu *= 1e3
    result = {
        "threads": num_threads,
        "xnnpack": xnnpack,
        "runs": runs,
        "median_ms": round(float(np.median(times)), 4),
        "p95_ms": round(float(np.percentile(times, 95)), 4),
        "mean_ms": round(float(times.mean()), 4),
        "min_ms": round(float(times.min()), 4),
    }
    if num_threads == 1:
        # One LiteRT thread runs on the calling thread: its CPU time is the work itself, without
        # the time other processes held the core (wall-clock p95 on a shared machine is mostly that).
        result["cpu_median_ms"] = round(float(np.median(cpu)), 4)
    return result


def latency_profile(model: ModelSource, runs: int = 200, warmup: int = 20,
                    threads: Optional[Sequence[int]] = None, without_xnnpack: bool = False) -> Dict[str, Any]:
    """Latency with 1 thread and with all threads (and without XNNPACK if asked).

    Returns:
        `{"1_thread": {...}, "all_threads": {...}[, "1_thread_no_xnnpack": {...}]}`.
    """
    all_threads = os.cpu_count() or 1
    result = {
        "1_thread": measure_latency(model, 1, runs, warmup),
        "all_threads": measure_latency(model, all_threads, runs, warmup),
    }
    if without_xnnpack:
        result["1_thread_no_xnnpack"] = measure_latency(model, 1, runs, warmup, xnnpack=False)
    return result
