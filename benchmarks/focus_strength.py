"""How strongly trained Focus-Attention priors steer attention, per run.

FA adds the logit bias `(β_h/τ)·a_j` to every query's attention over key `j`
(`FocusAttention`). Its effect on one segment is the bias *spread*: the largest
`|β_h/τ|` times the range of the amplitude `a` over the segment's positions
(max − min). A spread of `s` logits changes the attention odds of the loudest
versus the quietest position by at most `exp(s)`; near 0 the prior is off. This
script measures it on each run's own test utterances (evaluation hop), for the
amplitude the model reads (the CNN map's channel maximum, or the input energy
with `focus_source="energy"`), and writes `benchmarks/results/<name>.{json,md}`.

Example:
    python -m benchmarks.focus_strength runs/benchmarks/exp_emodb_fa_energy/fa_ca/*_seed0 \\
        runs/benchmarks/exp_emodb_ca_context5/fa_ca/*_seed0 --name focus_strength_emodb
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from benchmarks.common import markdown_table, provenance, run_test_fold, write_results
from benchmarks.fa_figure import focus_inputs


def prior_spread(model, features: np.ndarray) -> Dict[str, Any]:
    """max|β/τ|, the amplitude range per segment and the bias spread (medians over segments)."""
    import keras

    focus = model.get_layer("focus_attention")
    strength = keras.ops.convert_to_numpy(focus.beta) * np.exp(-float(keras.ops.convert_to_numpy(focus.log_temperature)))
    positions, amplitude = focus_inputs(model, features)
    amplitude = positions.max(axis=-1) if amplitude is None else amplitude
    ranges = amplitude.max(axis=1) - amplitude.min(axis=1)
    spread = float(np.abs(strength).max() * np.median(ranges))
    return {"strength_per_head": [round(float(s), 4) for s in strength],
            "max_abs_strength": float(np.abs(strength).max()),
            "median_amplitude_range": float(np.median(ranges)),
            "median_bias_spread": spread, "odds_factor": float(np.exp(spread)), "segments": int(len(features))}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.focus_strength",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run directories of trained models with Focus-Attention")
    parser.add_argument("--data-dir", help="corpus folder (default: each run's config)")
    parser.add_argument("--name", default="focus_strength", help="results name")
    args = parser.parse_args(argv)

    from training.config import import_library_quietly

    import_library_quietly()
    import keras

    from sercal_keras.audio import FeatureConfig
    from sercal_keras.data import extract_segments
    from sercal_keras.model_card import ModelCard

    rows: List[Dict[str, Any]] = []
    for run in map(Path, args.runs):
        model = keras.models.load_model(run / "model.keras")
        if "focus_attention" not in {layer.name for layer in model.layers}:
            print(f"{run}: no Focus-Attention layer; skipped")
            continue
        corpus, fold = run_test_fold(run, args.data_dir)
        features = extract_segments(corpus, fold.test, FeatureConfig.from_dict(
            ModelCard.load(run / "model_card.json").feature_config), training=False).features
        source = "energy" if "input_energy" in {layer.name for layer in model.layers} else "cnn"
        row = {"run": str(run), "fold": fold.name, "amplitude": source, **prior_spread(model, features)}
        rows.append(row)
        print(f"{run}: {source} amplitude, max|β/τ| {row['max_abs_strength']:.3f}, range "
              f"{row['median_amplitude_range']:.2f}, spread {row['median_bias_spread']:.2f} logits", flush=True)

    payload = {**provenance("benchmarks.focus_strength"), "runs": rows}
    table = [[r["run"], r["amplitude"], f"{r['max_abs_strength']:.3f}", f"{r['median_amplitude_range']:.2f}",
              f"{r['median_bias_spread']:.2f}", f"× {r['odds_factor']:.2f}", r["segments"]] for r in rows]
    markdown = (
        "# Focus-Attention strength of trained runs\n\n"
        f"Command: `{payload['command']}`  \nCommit: `{payload['git_commit']}`\n\n"
        "Per run, on its fold's test segments: the largest learned strength |β_h/τ|, the median "
        "within-segment range of the amplitude FA reads, and their product, the median bias spread in "
        "logits (the attention odds of the loudest vs the quietest position change by at most the "
        "factor shown).\n\n"
        + markdown_table(["run", "amplitude", "max abs(β/τ)", "amplitude range", "bias spread (logits)",
                          "odds", "segments"], table)
    )
    write_results(args.name, payload, markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
