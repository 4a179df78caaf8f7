"""`python -m export.report`: the quantization accuracy report of a trained run.

Usage:
    python -m export.report runs/emodb_fold0
    python -m export.report runs/emodb_fold0 --corpus emodb --data-dir ../shared/data/emodb \\
        --modes float32 float16 dynamic int8 qat --keep-float attention_softmax \\
        --output-dir benchmarks/results/quantization_emodb

For the float Keras model and every TFLite variant, on the same evaluation
utterances (the run's test fold by default, evaluation hop, as `metrics.json`):
WA, UA, macro-F1 and per-class recall (utterance level, the headline, and
segment level), their change vs float, top-1 agreement with float, mean
KL(float‖variant), file size, latency per segment (LiteRT, 1 thread and all
threads, warm-up excluded, median and p95), the XNNPACK partition count and
the ops it leaves out, a per-layer error table from
`tf.lite.experimental.QuantizationDebugger`, the effect of keeping the worst
layers float (selective quantization), and confusion matrices (PNG) of float
and int8. Markdown + JSON + PNG go to one folder, written atomically (a new
folder is renamed into place). No model files are written.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from sercal_keras.errors import ConfigError, SercalError

DEFAULT_MODES = ("float32", "float16", "dynamic", "int8")
TARGETS = {"ua_drop_pp": 0.5, "agreement": 0.98, "size_ratio": 0.30, "latency_ms": 0.6}


@dataclasses.dataclass
class Variant:
    """One model evaluated in the report."""

    name: str  # e.g. "int8", "int8 + float attention_softmax"
    mode: str
    input_kind: str
    keep_float: List[str]
    content: Optional[bytes]  # None for the Keras model
    probs: np.ndarray
    metrics: Dict[str, Any]
    extra: Dict[str, Any] = dataclasses.field(default_factory=dict)


# ---------------------------------------------------------------------------
# Per-layer quantization error (QuantizationDebugger)
# ---------------------------------------------------------------------------


def layer_errors(edge, representative: np.ndarray, debug_inputs: np.ndarray) -> List[Dict[str, Any]]:
    """Per-layer error of full-int8 quantization, each layer fed the *quantized* previous output.

    Uses `tf.lite.experimental.QuantizationDebugger` (NumericVerify ops).
    Two numbers per layer: RMSE / scale (≈ 0.29 = 1/√12 is pure rounding;
    much more means clipping or lossy arithmetic) and RMSE / RMS of the float
    output (the relative error: how much of the signal the layer loses, which
    ranks the layers).

    Returns:
        Rows sorted by relative RMSE, largest first: `{"layer", "tensor", "op",
        "rmse_over_scale", "rmse", "scale", "max_abs_error", "float_range",
        "relative_rmse"}`.
    """
    import tensorflow as tf

    from export.convert import OUTPUT_LAYER, _quiet, _representative, make_converter
    from export.convert import _observe

    edge.set_quantizer_mode("observe", only_symmetric=True)
    for quantizer in edge.quantizers:
        quantizer.seen.assign(0.0)
    _observe(edge, representative)
    edge.set_quantizer_mode("fixed", only_symmetric=True)
    converter = make_converter(edge.model, "int8", representative)

    def direct(name):
        def metric(float_values, quant_values, scale, zero_point):
            dequantized = (quant_values.astype(np.float64) - zero_point) * scale
            diff = float_values.astype(np.float64) - dequantized
            if name == "rmse":
                return float(np.sqrt(np.mean(diff ** 2)))
            if name == "scale":
                return float(scale)
            if name == "max_abs_error":
                return float(np.max(np.abs(diff)))
            if name == "float_range":
                return float(np.max(float_values) - np.min(float_values))
            return float(np.sqrt(np.mean(float_values.astype(np.float64) ** 2)))

        return metric

    options = tf.lite.experimental.QuantizationDebugOptions(
        layer_direct_compare_metrics={n: direct(n) for n in ("rmse", "scale", "max_abs_error", "float_range",
                                                             "float_rms")})
    with _quiet():
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=_representative(debug_inputs), debug_options=options)
        # The debugger's own interpreter applies XNNPACK and does not keep intermediate tensors, so
        # the NumericVerify inputs it reads come back overwritten (values ~1e37). Run its debug model
        # on the builtin kernels with every tensor preserved instead.
        debugger._quant_interpreter = tf.lite.Interpreter(
            model_content=debugger.quant_model, experimental_preserve_all_tensors=True,
            experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        debugger._initialize_stats()
        debugger.run()
    names = [layer.name for layer in edge.model.layers] + [OUTPUT_LAYER]
    patterns = [(name, re.compile(r"(^|/)" + re.escape(name) + r"(_\d+)?/")) for name in names]
    ops = {}
    interpreter = debugger._quant_interpreter  # the op types of the verified tensors
    tensor_names = {t["index"]: t["name"] for t in interpreter.get_tensor_details()}
    for op in interpreter._get_ops_details():
        for out in op["outputs"]:
            ops[tensor_names.get(int(out), "")] = op["op_name"]
    rows = []
    for tensor, stats in debugger.layer_statistics.items():
        original = re.sub(r"^NumericVerify/", "", tensor)
        original = re.sub(r":\d+$", "", original)
        layer = next((name for name, pattern in patterns if pattern.search(original)), OUTPUT_LAYER)
        scale = stats.get("scale") or float("nan")
        rows.append({
            "layer": layer,
            "tensor": original[:160],
            "op": ops.get(original, ""),
            "rmse_over_scale": float(stats["rmse"] / scale) if scale else float("nan"),
            "rmse": float(stats["rmse"]),
            "scale": float(scale),
            "max_abs_error": float(stats["max_abs_error"]),
            "float_range": float(stats["float_range"]),
            "relative_rmse": float(stats["rmse"] / stats["float_rms"]) if stats["float_rms"] else 0.0,
        })
    rows.sort(key=lambda r: -r["relative_rmse"] if np.isfinite(r["relative_rmse"]) else 0)
    return rows


def worst_layers(rows: Sequence[Dict[str, Any]], count: int) -> List[str]:
    """The `count` distinct layers with the largest relative error."""
    chosen: List[str] = []
    for row in rows:
        if row["layer"] not in chosen:
            chosen.append(row["layer"])
        if len(chosen) == count:
            break
    return chosen


# ---------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------


def variant_metrics(probs: np.ndarray, data, labels: Sequence[str], reference: Optional[np.ndarray]):
    """Utterance/segment metrics and, against `reference` (float Keras), agreement and KL."""
    from sercal_keras import metrics

    from export.checks import kl_divergence

    result = metrics.evaluate_segments(probs, data.labels, data.utterance_index, labels)
    if reference is not None:
        ids, utt_ref = metrics.aggregate_by_utterance(reference, data.utterance_index)
        _, utt_probs = metrics.aggregate_by_utterance(probs, data.utterance_index)
        _, utt_true = metrics.utterance_labels(data.labels, data.utterance_index)
        result["agreement_segment"] = float(np.mean(reference.argmax(1) == probs.argmax(1)))
        result["agreement_utterance"] = float(np.mean(utt_ref.argmax(1) == utt_probs.argmax(1)))
        ranked = np.sort(utt_ref, axis=1)
        margins = ranked[:, -1] - ranked[:, -2]  # float top-1 minus top-2 utterance probability
        result["median_float_margin"] = float(np.median(margins))
        result["utterance_flips"] = [
            {"utterance": int(ids[i]), "true": labels[int(utt_true[i])], "float": labels[int(utt_ref[i].argmax())],
             "variant": labels[int(utt_probs[i].argmax())], "float_margin": round(float(margins[i]), 4)}
            for i in np.flatnonzero(utt_ref.argmax(1) != utt_probs.argmax(1))]
        result["mean_kl"] = float(np.mean(kl_divergence(reference, probs)))
        result["max_abs_diff"] = float(np.max(np.abs(reference - probs)))
    return result


def _pct(value, digits=1):
    return "–" if value is None else f"{100 * value:.{digits}f}"


def _pp(value):
    return "–" if value is None else f"{100 * value:+.1f}"


def _training_summary(config: Dict[str, Any], extra: Dict[str, Any]) -> str:
    """One line on how the run was trained (`python -m training.fit` settings)."""
    if not config.get("epochs"):
        return ""
    parts = [f"`python -m training.fit` {config.get('variant', '?')}, {config['epochs']} epochs, batch "
             f"{config.get('batch_size')}, Adam lr {config.get('learning_rate')} ({config.get('lr_schedule')}), "
             f"weight decay {config.get('weight_decay')}, dropout {config.get('dropout')}"]
    if extra.get("averaged_epochs"):
        from training.weight_averaging import describe_window

        parts.append(f"the {describe_window(extra['averaged_epochs'])} (weight averaging, no epoch selected)")
    elif extra.get("validation_speakers"):
        parts.append(f"model selection on validation speakers {', '.join(extra['validation_speakers'])} "
                     f"(best epoch {extra.get('best_epoch')})")
    return "; ".join(parts)


def build_markdown(doc: Dict[str, Any]) -> str:
    """The report's Markdown, readable on its own."""
    from sercal_keras.reporting import markdown_table

    lines = [f"# Quantization accuracy report: {doc['run']['name']}", ""]
    run = doc["run"]
    lines += [
        f"Model `{run['model']}` ({run['variant']}, {run['corpus']}, fold {run.get('fold') or '?'}, seed "
        f"{run.get('seed', '?')}; SHA-256 `{run['sha256'][:16]}…`). Evaluation: {doc['data']['evaluation']} — "
        f"{doc['data']['segments']} segments of {doc['data']['utterances']} utterances. Calibration: "
        f"{doc['data']['representative_size']} segments of {doc['data']['representative']}. "
        f"Latency: LiteRT {doc['environment']['versions'].get('ai-edge-litert', '?')} with XNNPACK on "
        f"{doc['environment']['cpu']} ({doc['environment']['cpu_count']} threads), batch 1, "
        f"{doc['latency_runs']} timed invokes after {doc['latency_warmup']} warm-up.",
        "",
        "Command: `" + doc["command"] + "`",
        "",
    ]
    if doc["run"].get("training"):
        lines += ["Training (from the run's config.json and card): " + doc["run"]["training"] + ".", ""]
    if doc.get("run_metrics_check"):
        lines += [doc["run_metrics_check"], ""]
    lines += ["## Main table (utterance level; Δ vs the float Keras model)", ""]
    headers = ["model", "input", "size KB (% f32)", "UA %", "ΔUA pp", "WA %", "macro-F1 %",
               "agree seg %", "agree utt %", "mean KL", "1 thread ms: median (p95; CPU)", f"{doc['environment']['cpu_count']} "
               "threads ms", "XNNPACK partitions"]
    rows = []
    for v in doc["variants"]:
        utt = v["metrics"]["utterance"]
        lat = v.get("latency") or {}
        one, many = lat.get("1_thread"), lat.get("all_threads")
        part = v.get("xnnpack")
        part_text = "–" if not part else f"{part['partitions']}" + (
            " (+ " + ", ".join(sorted({f"{u['op']} {u['dtype']}" for u in part["undelegated"]})) + ")"
            if part["undelegated"] else "")
        rows.append([
            v["name"], v["input_kind"],
            "–" if v.get("size_bytes") is None else f"{v['size_bytes'] / 1024:.0f} ({_pct(v.get('size_ratio'), 0)}%)",
            _pct(utt["ua"]), _pp(v.get("delta_ua")), _pct(utt["wa"]), _pct(utt["macro_f1"]),
            _pct(v["metrics"].get("agreement_segment")), _pct(v["metrics"].get("agreement_utterance")),
            "–" if v["metrics"].get("mean_kl") is None else f"{v['metrics']['mean_kl']:.4f}",
            "–" if not one else f"{one['median_ms']:.3f} ({one['p95_ms']:.3f}; CPU {one['cpu_median_ms']:.3f})",
            "–" if not many else f"{many['median_ms']:.3f} ({many['p95_ms']:.3f})",
            part_text,
        ])
    lines += [markdown_table(headers, rows), ""]
    lines += ["Segment-level UA (same segments): " + ", ".join(
        f"{v['name']} {_pct(v['metrics']['segment']['ua'])}" for v in doc["variants"]) + ".", ""]

    lines += ["## Targets (DESIGN.md §6)", ""]
    for check in doc["targets"]:
        lines.append(f"- {'✅' if check['met'] else '❌'} {check['text']}")
    lines.append("")
    counts = {k: n for k, n in doc["variants"][0]["metrics"]["utterance"]["support"].items() if n}
    if counts:
        per_class = {k: 100.0 / n / len(counts) for k, n in counts.items()}
        largest, smallest = min(per_class, key=per_class.get), max(per_class, key=per_class.get)
        lines += [f"Resolution of this test set: one utterance changes UA by {per_class[largest]:.2f} pp "
                  f"({largest}, {counts[largest]} utterances) to {per_class[smallest]:.1f} pp ({smallest}, "
                  f"{counts[smallest]}); one segment is {100 / doc['data']['segments']:.2f} pp of segment "
                  "agreement.", ""]
    lines += summary_lines(doc)
    flips = [(v["name"], v["input_kind"], f) for v in doc["variants"][1:]
             for f in v["metrics"].get("utterance_flips", [])]
    if flips:
        margin = doc["variants"][1]["metrics"].get("median_float_margin")
        lines += ["Utterances whose prediction changes vs float (float margin = top-1 minus top-2 of the "
                  "float model's utterance probabilities" + (f"; median over all utterances {margin:.2f}"
                                                               if margin is not None else "") + "):", ""]
        lines += [markdown_table(["model", "input", "utterance", "true", "float →", "→ variant", "float margin"],
                                 [[n, k, f["utterance"], f["true"], f["float"], f["variant"], f"{f['float_margin']:.3f}"]
                                  for n, k, f in flips]), ""]

    labels = doc["labels"]
    lines += ["## Per-class recall (utterance level, %; Δ pp vs float)", ""]
    headers = ["class", "support"] + [v["name"] + (" (wave)" if v["input_kind"] == "waveform" else "")
                                     for v in doc["variants"]]
    float_recall = doc["variants"][0]["metrics"]["utterance"]["per_class_recall"]
    support = doc["variants"][0]["metrics"]["utterance"]["support"]
    rows = []
    for label in labels:
        row = [label, support[label]]
        for i, v in enumerate(doc["variants"]):
            recall = v["metrics"]["utterance"]["per_class_recall"][label]
            if i == 0 or recall is None or float_recall[label] is None:
                row.append(_pct(recall))
            else:
                row.append(f"{_pct(recall)} ({_pp(recall - float_recall[label])})")
        rows.append(row)
    lines += [markdown_table(headers, rows), ""]

    if doc.get("layer_errors"):
        lines += ["## Which layers lose most in full int8 (QuantizationDebugger)", "",
                  "Each layer is fed the quantized output of the previous one and compared with its float "
                  "result on the same input (NumericVerify). Sorted by the relative error RMSE / RMS of the "
                  "float output (the share of the signal lost in that layer); RMSE/scale ≈ 0.29 is pure "
                  "rounding, larger values mean clipping or lossy arithmetic. Top 12:", ""]
        headers = ["layer", "op", "RMSE / RMS", "RMSE/scale", "RMSE", "scale", "max |err|", "float range"]
        rows = [[r["layer"], r["op"], f"{r['relative_rmse']:.3f}", f"{r['rmse_over_scale']:.2f}", f"{r['rmse']:.3g}",
                 f"{r['scale']:.3g}", f"{r['max_abs_error']:.3g}", f"{r['float_range']:.3g}"]
                for r in doc["layer_errors"][:12]]
        lines += [markdown_table(headers, rows), ""]
    if doc.get("keep_float"):
        lines += ["## Selective quantization: keeping layers float (`--keep-float`)", "",
                  "Int8 with the named edge-graph layers left in float32 (the debugger's denylist; "
                  "QUANTIZE/DEQUANTIZE around them). Same evaluation as above.", ""]
        headers = ["float layers", "UA %", "ΔUA pp", "agree seg %", "agree utt %", "mean KL", "size KB",
                   "1 thread ms", "XNNPACK partitions"]
        rows = []
        for v in doc["keep_float"]:
            utt = v["metrics"]["utterance"]
            one = (v.get("latency") or {}).get("1_thread")
            rows.append([", ".join(v["keep_float"]), _pct(utt["ua"]), _pp(v.get("delta_ua")),
                         _pct(v["metrics"]["agreement_segment"]), _pct(v["metrics"]["agreement_utterance"]),
                         f"{v['metrics']['mean_kl']:.4f}", f"{v['size_bytes'] / 1024:.0f}",
                         "–" if not one else f"{one['median_ms']:.3f}",
                         str((v.get("xnnpack") or {}).get("partitions", "–"))])
        best = max(doc["keep_float"], key=lambda v: (v["metrics"]["agreement_segment"], -v["metrics"]["mean_kl"]))
        lines += [markdown_table(headers, rows), "",
                  "Export it with `python -m export.tflite <run> --mode int8 --keep-float "
                  f"{' '.join(best['keep_float'])}` (file `*_int8-mixed.tflite`).", ""]
    lines += ["## What converts to what", ""]
    for v in doc["variants"][1:] + doc.get("keep_float", []):
        ops = ", ".join(f"{k}×{n}" for k, n in v.get("ops", {}).items())
        lines.append(f"- **{v['name']}** ({v['input_kind']}): {v.get('method', '')}. Ops: {ops}."
                     + (f" Float parts: {', '.join(v['float_layers'])}." if v.get("float_layers") else ""))
    lines.append("")
    for note in doc.get("notes", []):
        lines.append(f"- {note}")
    if doc.get("qat"):
        q = doc["qat"]
        lines += ["", f"QAT: {q['epochs']} epochs of fake-quant fine-tuning on {q['segments']} training segments "
                      f"(targets: {q['target']}), loss {' → '.join(f'{x:.4f}' for x in q['loss'])}."]
    lines += ["", "## Confusion matrices (utterance level)", ""]
    for name, path in doc["figures"].items():
        lines.append(f"![{name}]({path})")
    lines += ["", f"Versions: " + ", ".join(f"{k} {v}" for k, v in doc["environment"]["versions"].items())
              + f". Git: {doc['environment'].get('git_commit', '?')}.", ""]
    return "\n".join(lines)


def summary_lines(doc: Dict[str, Any]) -> List[str]:
    """A few sentences on where the int8 loss comes from and what helps, from the numbers."""
    variants = {(v["name"], v["input_kind"]): v for v in doc["variants"]}
    int8 = variants.get(("int8", "mfcc"))
    if not int8:
        return []
    lines = ["## Summary", ""]
    flips = int8["metrics"].get("utterance_flips", [])
    margin = int8["metrics"].get("median_float_margin")
    text = (f"Full int8 changes UA by {_pp(int8['delta_ua'])} pp and agrees with float on "
            f"{_pct(int8['metrics']['agreement_segment'])} % of segments: {len(flips)} of "
            f"{doc['data']['utterances']} utterances change their prediction")
    if flips:
        text += (" (" + "; ".join(f"{f['true']}: {f['float']} → {f['variant']}, float margin "
                                  f"{f['float_margin']:.3f}" for f in flips) + ")")
        if margin is not None:
            text += f", near-ties of the float model (median margin over all utterances {margin:.2f})"
    lines.append(text + ".")
    errors = doc.get("layer_errors") or []
    if errors:
        top = errors[:2]
        lines.append("Per layer the largest relative error is in " + " and ".join(
            f"{r['layer']} ({r['op']}, {100 * r['relative_rmse']:.1f} % of its RMS; 8-bit step {r['scale']:.3g} "
            f"on a range of {r['float_range']:.3g})" for r in top) + ".")
        bias = next((r for r in errors if r["layer"] == "focus_attention" and r["op"] == "MUL"), None)
        logits = next((r for r in errors if r["layer"] == "focus_add"), None)
        if bias and logits and logits["scale"]:
            lines.append(f"The Focus-Attention bias spans {bias['float_range']:.3g}, i.e. "
                         f"{bias['float_range'] / logits['scale']:.1f} steps of the attention logits' 8-bit grid "
                         "(step " f"{logits['scale']:.3g}): in int8 most of the focus prior is rounded away.")
    if doc.get("keep_float"):
        best = max(doc["keep_float"], key=lambda v: (v["metrics"]["agreement_segment"], -v["metrics"]["mean_kl"]))
        lines.append(f"Keeping `{', '.join(best['keep_float'])}` float gives "
                     f"{_pct(best['metrics']['agreement_segment'])} % segment agreement, ΔUA {_pp(best['delta_ua'])} "
                     f"pp, {best['xnnpack']['partitions']} XNNPACK partition(s), "
                     f"{best['latency']['1_thread']['median_ms']:.3f} ms.")
    qat = variants.get(("qat", "mfcc"))
    if qat:
        better = qat["metrics"]["agreement_segment"] > int8["metrics"]["agreement_segment"]
        lines.append(f"QAT ({doc['qat']['epochs']} epochs) {'improves on' if better else 'does not beat'} "
                     f"post-training int8: agreement {_pct(qat['metrics']['agreement_segment'])} % vs "
                     f"{_pct(int8['metrics']['agreement_segment'])} %, ΔUA {_pp(qat['delta_ua'])} pp.")
    return lines[:2] + ["- " + line for line in lines[2:]] + [""]


def target_checks(doc: Dict[str, Any]) -> List[Dict[str, Any]]:
    variants = {(v["name"], v["input_kind"]): v for v in doc["variants"]}
    int8 = variants.get(("int8", "mfcc"))
    f32 = variants.get(("float32", "mfcc"))
    checks = []
    if int8:
        drop = -int8["delta_ua"]
        checks.append({"name": "ua_drop", "met": drop <= TARGETS["ua_drop_pp"] / 100 + 1e-9,
                       "text": f"full int8 loses ≤ 0.5 pp UA vs float: ΔUA {_pp(int8['delta_ua'])} pp"})
        agreement = int8["metrics"]["agreement_segment"]
        checks.append({"name": "agreement", "met": agreement >= TARGETS["agreement"],
                       "text": f"top-1 agreement ≥ 98 % of segments: {_pct(agreement)} % "
                               f"(utterances {_pct(int8['metrics']['agreement_utterance'])} %)"})
        if f32:
            ratio = int8["size_bytes"] / f32["size_bytes"]
            checks.append({"name": "size", "met": ratio <= TARGETS["size_ratio"],
                           "text": f"int8 file ≤ 30 % of float32: {_pct(ratio)} % "
                                   f"({int8['size_bytes'] / 1024:.0f} KB vs {f32['size_bytes'] / 1024:.0f} KB)"})
            one_q, one_f = int8["latency"]["1_thread"]["median_ms"], f32["latency"]["1_thread"]["median_ms"]
            checks.append({"name": "latency_vs_float", "met": one_q <= one_f,
                           "text": f"int8 no slower than float32 on one thread: {one_q:.3f} vs {one_f:.3f} ms"})
            checks.append({"name": "latency", "met": one_q <= TARGETS["latency_ms"],
                           "text": f"int8 ≤ 0.6 ms per segment on one thread: {one_q:.3f} ms"})
        checks.append({"name": "partitions", "met": int8["xnnpack"]["partitions"] <= 2,
                       "text": f"int8 XNNPACK partitions: {int8['xnnpack']['partitions']} (ops left to "
                               "LiteRT's builtin kernels: " + (", ".join(
                                   f"{u['op']} {u['dtype']}" for u in int8["xnnpack"]["undelegated"]) or "none")
                               + ")"})
    return checks


def write_report_dir(output_dir: Path, markdown: str, doc: Dict[str, Any], figures: Dict[str, Any]) -> Path:
    """Writes report.md, report.json and the PNGs into a fresh folder, then renames it into place."""
    from sercal_keras.io_utils import write_json, write_text
    from sercal_keras.reporting import plot_confusion

    output_dir = Path(output_dir)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = output_dir.parent / f".{output_dir.name}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        write_text(staging / "report.md", markdown)
        write_json(staging / "report.json", doc)
        for filename, (matrix, labels, title) in figures.items():
            plot_confusion(matrix, labels, staging / filename, title)
        old = None
        if output_dir.exists():
            old = output_dir.parent / f".{output_dir.name}.old-{os.getpid()}"
            os.replace(output_dir, old)
        os.replace(staging, output_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output_dir


def make_report(model_path, output_dir=None, modes: Sequence[str] = DEFAULT_MODES, inputs: str = "mfcc",
                corpus: Optional[str] = None, data_dir: Optional[str] = None, cache_dir: Optional[str] = None,
                split: str = "test", representative_size: int = 200, keep_float: Sequence[str] = (),
                keep_float_candidates: int = 2, qat_epochs: int = 3, qat_target: str = "teacher",
                latency_runs: int = 200, latency_warmup: int = 20, debug_size: int = 100,
                log: Callable[[str], None] = print) -> Path:
    """Builds the report; returns the folder. Raises typed errors before writing anything."""
    from sercal_keras.provenance import cpu_name, git_commit, library_versions

    from export.convert import convert
    from export.edge_model import mfcc_edge_model, waveform_edge_model
    from export.latency import latency_profile
    from export.litert_runtime import LiteRTModel, op_counts, xnnpack_partitions
    from export.qat import qat_edge_graph, train_qat
    from export.representative import load_fold, split_segments
    from export.tflite import (check_output_dir, edge_inputs, gather_data, load_source, parse_inputs,
                               parse_modes, plan_variants)

    requested = list(modes)
    modes = parse_modes(requested)
    kinds = parse_inputs(inputs)
    skipped: List[str] = []
    pairs = plan_variants(requested, kinds, lambda message: skipped.append(message))
    if split not in ("train", "test"):
        raise ConfigError(f"--split must be 'train' or 'test'. Received: {split!r}")
    for name, value in (("--representative-size", representative_size), ("--latency-runs", latency_runs),
                        ("--debug-size", debug_size)):
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be an int >= 1. Received: {value!r}")
    if output_dir is not None:
        check_output_dir(Path(output_dir))
    source = load_source(model_path)
    output_dir = Path(output_dir) if output_dir is not None else source.run_dir / "quantization_report"
    check_output_dir(output_dir)
    config = dict(source.config or {})
    if corpus:
        config["corpus"] = corpus
    if not config.get("corpus"):
        raise ConfigError(f"{source.run_dir}: no config.json naming the corpus; pass --corpus and --data-dir")
    source.config = config
    data = gather_data(source, kinds, modes, representative_size, 1, None, corpus, data_dir, cache_dir, log)
    corpus_data, fold = load_fold(config, data_dir=data_dir, cache_dir=cache_dir)
    evaluation = split_segments(corpus_data, fold, source.feature_config, split, "waveform" in kinds,
                                cache_dir=cache_dir or config.get("cache_dir"), training_hop=False,
                                speaker_normalization=source.speaker_normalization)
    if len(evaluation) == 0:
        raise ConfigError(f"the {split} split of fold {fold.name} has no usable audio")
    labels = list(source.card.labels)
    log(f"evaluation: {len(evaluation)} segments of {len(np.unique(evaluation.utterance_index))} utterances")

    started = time.perf_counter()
    reference = np.asarray(source.model.predict(evaluation.features, batch_size=64, verbose=0), np.float32)
    variants: List[Variant] = [Variant("keras float", "keras", "mfcc", [], None, reference,
                                       variant_metrics(reference, evaluation, labels, None))]
    trained = None
    qat_doc = None
    if "qat" in modes:
        trained, losses = train_qat(source.model, data.training.features, data.training.labels,
                                    epochs=qat_epochs, target=qat_target, log=log)
        qat_doc = {"epochs": qat_epochs, "target": qat_target, "loss": losses, "segments": len(data.training)}

    def graph_for(kind, mode):
        if mode == "qat":
            return qat_edge_graph(source.model, trained, kind, source.feature_config)
        if kind == "mfcc":
            return mfcc_edge_model(source.model, batch_size=1)
        return waveform_edge_model(source.model, source.feature_config, batch_size=1)

    def evaluate(kind, mode, keep=()):
        graph = graph_for(kind, mode)
        rep = edge_inputs(source, data.representative, kind) if mode in ("int8", "qat") else None
        conversion = convert(graph, mode, rep, keep_float=keep)
        probs = LiteRTModel(conversion.content, num_threads=os.cpu_count()).predict(
            edge_inputs(source, evaluation, kind))
        name = mode if not keep else f"{mode} + float {', '.join(keep)}"
        variant = Variant(name, mode, kind, list(keep), conversion.content, probs,
                          variant_metrics(probs, evaluation, labels, reference))
        variant.extra = {"method": conversion.method, "float_layers": conversion.float_layers,
                         "notes": conversion.notes, "graph": graph.note}
        log(f"{name} ({kind}): UA {variant.metrics['utterance']['ua']:.1%}, agreement "
            f"{variant.metrics['agreement_segment']:.1%} ({time.perf_counter() - started:.0f} s)")
        return variant, graph

    int8_graph = None
    for kind, mode in pairs:
        variant, graph = evaluate(kind, mode)
        variants.append(variant)
        if kind == "mfcc" and mode == "int8":
            int8_graph = graph

    layer_rows = []
    if int8_graph is not None:
        debug = edge_inputs(source, evaluation.sample(debug_size, seed=2), "mfcc")
        layer_rows = layer_errors(int8_graph, edge_inputs(source, data.representative, "mfcc"), debug)
        log(f"layer errors: worst {', '.join(worst_layers(layer_rows, 3))}")
    candidates = [[item.strip() for item in k.split(",")] if isinstance(k, str) else list(k) for k in keep_float]
    if int8_graph is not None and int8_graph.form != "explicit" and keep_float_candidates:
        # The sliced graph is one nested Keras model: no per-layer names to keep float or to measure.
        log(f"keep-float candidates: none ({int8_graph.note})")
    elif layer_rows and keep_float_candidates:
        for layer in worst_layers(layer_rows, keep_float_candidates) + ["attention"]:
            if [layer] not in candidates:
                candidates.append([layer])
    keep_variants = []
    if "int8" in modes:
        for keep in candidates:
            variant, _ = evaluate("mfcc", "int8", keep)
            keep_variants.append(variant)

    float32 = next((v for v in variants if v.mode == "float32" and v.input_kind == "mfcc"), None)
    float_ua = variants[0].metrics["utterance"]["ua"]
    docs = []
    for v in variants + keep_variants:
        d = {"name": v.name, "mode": v.mode, "input_kind": v.input_kind, "keep_float": v.keep_float,
             "metrics": v.metrics, "delta_ua": v.metrics["utterance"]["ua"] - float_ua,
             "delta_recall": {label: (None if v.metrics["utterance"]["per_class_recall"][label] is None
                                      or variants[0].metrics["utterance"]["per_class_recall"][label] is None
                                      else v.metrics["utterance"]["per_class_recall"][label]
                                      - variants[0].metrics["utterance"]["per_class_recall"][label])
                              for label in labels},
             **v.extra}
        if v.content is not None:
            d["size_bytes"] = len(v.content)
            d["size_ratio"] = len(v.content) / len(float32.content) if float32 else None
            d["latency"] = latency_profile(v.content, runs=latency_runs, warmup=latency_warmup)
            d["xnnpack"] = xnnpack_partitions(v.content)
            d["ops"] = op_counts(v.content)
        docs.append(d)
    main_docs, keep_docs = docs[:len(variants)], docs[len(variants):]

    figures = {"confusion_float.png": (variants[0].metrics["utterance"]["confusion_matrix"], labels,
                                       f"float Keras · UA {float_ua:.1%}")}
    for v in variants:
        if v.mode in ("int8", "qat") and v.input_kind == "mfcc":
            figures[f"confusion_{v.mode}.png"] = (v.metrics["utterance"]["confusion_matrix"], labels,
                                                  f"{v.name} TFLite · UA {v.metrics['utterance']['ua']:.1%}")
    run_metrics = None
    metrics_path = source.run_dir / "metrics.json"
    if metrics_path.is_file() and split == "test":
        try:
            saved = json.loads(metrics_path.read_text())["utterance"]["ua"]
            run_metrics = (f"Check: the float model's UA here, {float_ua:.2%}, vs `metrics.json` of the run, "
                           f"{saved:.2%} ({'same' if abs(saved - float_ua) < 1e-9 else 'DIFFERENT'}).")
        except (KeyError, ValueError, OSError):
            run_metrics = None
    extra = source.card.extra
    doc = {
        "format": "sercal-keras/quantization-report/1",
        "command": " ".join(["python", "-m", "export.report"] + sys.argv[1:]) if sys.argv[0].endswith(
            "report.py") or "export.report" in " ".join(sys.argv) else "make_report(...)",
        "run": {"name": source.run_dir.name, "model": str(source.model_path), "sha256": source.sha256,
                "variant": source.card.variant, "corpus": source.card.corpus, "fold": extra.get("fold"),
                "seed": extra.get("seed"), "training": _training_summary(config, extra)},
        "data": {"evaluation": evaluation.source, "segments": len(evaluation),
                 "utterances": int(len(np.unique(evaluation.utterance_index))),
                 "representative": data.representative.source, "representative_size": len(data.representative)},
        "labels": labels,
        "latency_runs": latency_runs,
        "latency_warmup": latency_warmup,
        "variants": main_docs,
        "keep_float": keep_docs,
        "layer_errors": layer_rows,
        "qat": qat_doc,
        "notes": sorted({note for v in variants for note in v.extra.get("notes", [])}) + [
            s[0].upper() + s[1:] + " (not offered)." for s in skipped],
        "figures": {name.replace(".png", ""): name for name in figures},
        "environment": {"cpu": cpu_name(), "cpu_count": os.cpu_count(), "versions": library_versions(),
                        "git_commit": git_commit()},
        "run_metrics_check": run_metrics,
        "targets_definition": TARGETS,
    }
    doc["targets"] = target_checks(doc)
    markdown = build_markdown(doc)
    path = write_report_dir(output_dir, markdown, doc, figures)
    log(f"report: {path / 'report.md'} ({time.perf_counter() - started:.0f} s)")
    return path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m export.report",
        description=("Quantization accuracy report of a trained run: the float Keras model and every TFLite "
                     "variant on the same evaluation utterances (accuracy, agreement, KL, size, latency, "
                     "XNNPACK partitions, per-layer quantization error, confusion matrices). Writes "
                     "report.md, report.json and PNGs into one folder."),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("run", help="run directory (model.keras, model_card.json, config.json)")
    parser.add_argument("--corpus", default=None, help="override the run config's corpus")
    parser.add_argument("--data-dir", default=None, help="override the run config's corpus folder")
    parser.add_argument("--cache-dir", default=None, help="feature cache (default: the run config's)")
    parser.add_argument("--split", default="test", choices=["test", "train"],
                        help="evaluate on the fold's test utterances (default) or its training utterances")
    parser.add_argument("--output-dir", default=None, help="report folder (default: <run>/quantization_report)")
    parser.add_argument("--modes", nargs="+", default=list(DEFAULT_MODES),
                        help="TFLite variants: float32 float16 dynamic int8 qat (or all)")
    parser.add_argument("--input", default="mfcc", choices=["mfcc", "waveform", "both"],
                        help="which edge graphs to evaluate")
    parser.add_argument("--representative-size", type=int, default=200, help="calibration segments")
    parser.add_argument("--keep-float", nargs="+", default=[], metavar="LAYER",
                        help="also evaluate int8 with these layers float (comma-join several for one variant)")
    parser.add_argument("--keep-float-candidates", type=int, default=2,
                        help="also try keeping each of the N worst layers (debugger) float, and the "
                             "'attention' group; 0: off")
    parser.add_argument("--qat-epochs", type=int, default=3, help="QAT epochs (with --modes qat)")
    parser.add_argument("--qat-target", default="teacher", choices=["teacher", "labels"])
    parser.add_argument("--latency-runs", type=int, default=200, help="timed invokes per latency number")
    parser.add_argument("--debug-size", type=int, default=100, help="segments for the per-layer debugger")
    parser.add_argument("--json", action="store_true", help="print report.json's path and main numbers as JSON")
    parser.add_argument("--quiet", action="store_true")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    log = (lambda message: None) if args.quiet else (lambda message: print(message, file=sys.stderr))
    try:
        path = make_report(args.run, args.output_dir, args.modes, args.input, args.corpus, args.data_dir,
                           args.cache_dir, args.split, args.representative_size, args.keep_float,
                           args.keep_float_candidates, args.qat_epochs, args.qat_target, args.latency_runs,
                           debug_size=args.debug_size, log=log)
    except SercalError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2 if isinstance(error, ConfigError) else 1
    if args.json:
        doc = json.loads((path / "report.json").read_text())
        print(json.dumps({"report": str(path / "report.md"), "variants": [
            {"name": v["name"], "input": v["input_kind"], "ua": v["metrics"]["utterance"]["ua"],
             "agreement": v["metrics"].get("agreement_segment"), "size_bytes": v.get("size_bytes")}
            for v in doc["variants"]]}, indent=2))
    else:
        print(path / "report.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
