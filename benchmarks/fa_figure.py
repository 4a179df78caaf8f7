"""What Focus-Attention does: attention versus amplitude on real utterances.

The paper's motivation is that MHSA's attention does not line up with the
signal's amplitude. For a trained `mhsa` and a trained `fa_ca` model of the same
fold and seed, this script takes test utterances (speakers the models never
saw), and for each 2 s segment compares the attention each time–frequency
position *receives* (mean over heads and queries) with the waveform's RMS
amplitude in the same time bin. It writes:
- `benchmarks/results/<name>.png`: for a few utterances, the waveform and its
  RMS envelope, FA's focus map, and the attention of `mhsa` and of `fa_ca`;
- `benchmarks/results/<name>.{json,md}`: the mean Pearson correlation between
  attention received per time bin and RMS amplitude per bin, over all test
  segments of the fold, for both models; and FA's learned β and τ.

Example:
    python -m benchmarks.fa_figure \\
        --mhsa runs/benchmarks/emodb_speaker-folds/mhsa/speakers-03+08_seed0 \\
        --fa-ca runs/benchmarks/emodb_speaker-folds/fa_ca/speakers-03+08_seed0 \\
        --data-dir ../shared/data/emodb
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from benchmarks.common import RESULTS_DIR, markdown_table, provenance, run_test_fold, write_results


def focus_inputs(model, features: np.ndarray):
    """What the model's attention and Focus-Attention read: positions (B, P, C) and amplitude (B, P) or None.

    The amplitude is None for the CNN-map form (FA takes the channel maximum
    itself) and the `InputEnergy` output for `focus_source="energy"`.
    """
    import keras

    names = {layer.name for layer in model.layers}
    outputs = [model.get_layer("positions").output]
    if "input_energy" in names:
        outputs.append(model.get_layer("input_energy").output)
    values = keras.Model(model.inputs, outputs).predict(features, verbose=0)
    return (values[0], values[1]) if len(outputs) == 2 else (values, None)


def attention_maps(model, features: np.ndarray, with_focus: bool):
    """Attention received per position (B, F', T') and, with FA, the focus map (B, F', T')."""
    import keras

    height, width = model.get_layer("block4_relu").output.shape[1:3]
    positions, amplitude = focus_inputs(model, features)
    attention = model.get_layer("self_attention")
    focus = None
    bias = None
    if with_focus:
        bias, focus = model.get_layer("focus_attention")(positions, amplitude=amplitude, return_focus_map=True)
        focus = keras.ops.convert_to_numpy(focus).reshape(-1, height, width)
    _, scores = attention(positions, attention_bias=bias, return_attention_scores=True)
    received = keras.ops.convert_to_numpy(scores).mean(axis=(1, 2))  # over heads and queries
    return received.reshape(-1, height, width), focus


def rms_per_bin(segments: np.ndarray, bins: int) -> np.ndarray:
    """RMS amplitude of each segment in `bins` equal time bins, (n, bins)."""
    usable = segments[:, : segments.shape[1] // bins * bins]
    return np.sqrt(np.mean(usable.reshape(len(segments), bins, -1) ** 2, axis=-1))


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    denominator = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denominator) if denominator > 0 else float("nan")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fa_figure", description=__doc__.split("\n\n")[0])
    parser.add_argument("--mhsa", required=True, help="run directory of a trained mhsa model")
    parser.add_argument("--fa-ca", required=True, help="run directory of a trained fa_ca model (same fold and seed)")
    parser.add_argument("--data-dir", help="corpus folder (default: the run's config)")
    parser.add_argument("--examples", type=int, default=3, help="utterances in the figure")
    parser.add_argument("--name", default="fa_attention_emodb")
    args = parser.parse_args(argv)

    from training.config import import_library_quietly

    import_library_quietly()
    import keras

    from sercal_keras.audio import FeatureConfig, load_audio, mfcc, segment_waveform
    from sercal_keras.model_card import ModelCard

    runs = {"mhsa": Path(args.mhsa), "fa_ca": Path(args.fa_ca)}
    models = {k: keras.models.load_model(p / "model.keras") for k, p in runs.items()}
    card = ModelCard.load(runs["fa_ca"] / "model_card.json")
    features_config = FeatureConfig.from_dict(card.feature_config)
    corpus, fold = run_test_fold(runs["fa_ca"], args.data_dir)

    correlations: Dict[str, List[float]] = {"mhsa": [], "fa_ca": []}
    examples = []
    hop = features_config.hop_samples(training=False)
    for n, index in enumerate(fold.test):
        utterance = corpus.utterances[index]
        segments = segment_waveform(load_audio(utterance.path), features_config.segment_samples, hop)
        features = mfcc(segments, features_config)
        maps = {k: attention_maps(m, features, with_focus=(k == "fa_ca")) for k, m in models.items()}
        rms = rms_per_bin(segments, maps["mhsa"][0].shape[2])
        for k in models:
            over_time = maps[k][0].mean(axis=1)  # attention received per time bin
            correlations[k] += [_pearson(a, r) for a, r in zip(over_time, rms)]
        if len(examples) < args.examples and n % max(1, len(fold.test) // args.examples) == 0:
            loudest = int(np.argmax(rms.max(axis=1)))
            examples.append((utterance, segments[loudest], maps["mhsa"][0][loudest], maps["fa_ca"][0][loudest],
                             maps["fa_ca"][1][loudest]))

    focus_layer = models["fa_ca"].get_layer("focus_attention")
    beta = keras.ops.convert_to_numpy(focus_layer.beta).tolist()
    tau = float(np.exp(keras.ops.convert_to_numpy(focus_layer.log_temperature)))
    summary = {k: {"mean_r": float(np.nanmean(v)), "std_r": float(np.nanstd(v)), "segments": len(v)}
               for k, v in correlations.items()}
    _plot(examples, RESULTS_DIR / f"{args.name}.png")
    payload = {**provenance("benchmarks.fa_figure"), "runs": {k: str(p) for k, p in runs.items()},
               "fold": fold.name, "attention_vs_rms_pearson": summary, "fa_beta": beta, "fa_temperature": tau}
    rows = [[k, f"{s['mean_r']:+.3f} ± {s['std_r']:.3f}", s["segments"]] for k, s in summary.items()]
    markdown = (
        f"# Attention versus amplitude ({fold.name}, test speakers)\n\n"
        f"Command: `{payload['command']}`  \nCommit: `{payload['git_commit']}`\n\n"
        "Pearson correlation, per 2 s test segment, between the attention each time bin receives "
        "(mean over heads, queries and frequency rows of the 6 × 15 map) and the waveform's RMS in the "
        "same bin; mean ± std over segments.\n\n"
        + markdown_table(["model", "r (attention, RMS)", "segments"], rows)
        + f"\nFA learned β per head = {[round(b, 3) for b in beta]}, τ = {tau:.3f} "
        "(β > 0: the head attends more to loud positions).\n\n"
        f"![attention and amplitude]({args.name}.png)\n"
    )
    write_results(args.name, payload, markdown)
    print(markdown)
    return 0


def _plot(examples, path: Path) -> None:
    from sercal_keras.io_utils import atomic_path
    from sercal_keras.reporting import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(len(examples), 4, figsize=(14, 2.6 * len(examples)), squeeze=False)
    for row, (utterance, segment, mhsa_map, fa_map, focus) in zip(axes, examples):
        time = np.arange(len(segment)) / 16000.0
        row[0].plot(time, segment, lw=0.4, color="0.4")
        bins = rms_per_bin(segment[None], mhsa_map.shape[1])[0]
        edges = np.linspace(0, len(segment) / 16000.0, len(bins) + 1)
        row[0].step(edges[:-1], bins, where="post", color="C3", label="RMS per bin")
        row[0].set_title(f"{Path(utterance.path).name} ({utterance.label})", fontsize=8)
        row[0].legend(fontsize=6)
        for ax, image, title in ((row[1], focus, "FA focus map f"), (row[2], mhsa_map, "mhsa: attention received"),
                                 (row[3], fa_map, "fa_ca: attention received")):
            ax.imshow(image, aspect="auto", origin="lower", cmap="magma")
            ax.set_title(title, fontsize=8)
            ax.set_xlabel("time bin")
            ax.set_ylabel("freq bin")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
