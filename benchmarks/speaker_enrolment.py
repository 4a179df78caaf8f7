"""How much of a speaker's audio a per-speaker model needs: UA against enrolment size.

A model trained with `--feature-normalization speaker` standardises each
speaker's MFCC by that speaker's own statistics. Training and its test metrics
take a test speaker's statistics from all of their test utterances; on a device
they come from a few utterances (`EmotionRecognizer.adapt`,
`edge_demo.classify --speaker-audio`). This script re-scores each run's test
speakers with statistics from `k` randomly drawn utterances of the speaker
(`--draws` draws per k; every utterance of the speaker is scored, the enrolment
ones included, as they carry no label), from the speaker's neutral utterances
only (calm enrolment speech; the labels pick the audio, nothing else), and from
all of them (which must reproduce the run's `metrics.json`: checked and printed),
and with `--prior-weight w` from k random utterances shrunk towards the average
statistics of the fold's training speakers (worth w utterances). Writes `benchmarks/results/<name>.{json,md}`.

Example:
    python -m benchmarks.speaker_enrolment runs/benchmarks/exp_emodb_speaker_norm/mhsa/*_seed0 \\
        --sizes 1 3 5 10 20 --draws 5 --name speaker_enrolment_emodb
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from benchmarks.common import markdown_table, run_test_fold, started, write_results


def enrolment_statistics(features: np.ndarray, owners: np.ndarray, enrolment: Dict[str, np.ndarray], prior=None,
                         prior_weight: float = 0.0) -> Dict[str, Any]:
    """Speaker → `(mean, std)` from their enrolment utterances (shrunk towards `prior` when
    `prior_weight` > 0; the prior alone for a speaker without enrolment utterances)."""
    from sercal_keras.audio.frontend import shrink_statistics, speaker_statistics

    statistics = {}
    for speaker, utterances in enrolment.items():
        if len(utterances) == 0:  # no audio of the speaker: the training speakers' average alone
            statistics[speaker] = shrink_statistics(None, prior, 0)
            continue
        statistics[speaker] = speaker_statistics(features[np.isin(owners, utterances)])
        if prior_weight > 0:
            statistics[speaker] = shrink_statistics(statistics[speaker], prior, len(utterances), prior_weight)
    return statistics


def enrolment_ua(recognizer, segments, corpus, plan: str, size: Optional[int], draws: int,
                 prior=None, prior_weight: float = 0.0) -> List[float]:
    """UA of the run's test utterances for one enrolment plan, once per draw."""
    from sercal_keras import metrics

    speakers = np.asarray(corpus.speakers, dtype=object)[segments.utterance_index]
    by_speaker = {s: np.unique(segments.utterance_index[speakers == s]) for s in np.unique(speakers)}
    label_ids = np.asarray(corpus.label_ids)
    results = []
    for draw in range(draws):
        rng = np.random.default_rng(draw)
        enrolment = {}
        for speaker, utterances in by_speaker.items():
            if plan == "prior":
                enrolment[speaker] = utterances[:0]
            elif plan == "all":
                enrolment[speaker] = utterances
            elif plan == "neutral":
                enrolment[speaker] = utterances[label_ids[utterances] == corpus.labels.index("neutral")]
            else:
                enrolment[speaker] = rng.choice(utterances, size=min(size, len(utterances)), replace=False)
        statistics = enrolment_statistics(segments.features, segments.utterance_index, enrolment, prior,
                                          prior_weight)
        probs = recognizer.predict_speakers(segments.features, speakers, statistics)
        result = metrics.evaluate_segments(probs, segments.labels, segments.utterance_index, list(corpus.labels))
        results.append(result["utterance"]["ua"])
    return results


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speaker_enrolment",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run directories of models trained with --feature-normalization speaker")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 3, 5, 10, 20],
                        help="enrolment utterances per speaker (default: 1 3 5 10 20)")
    parser.add_argument("--draws", type=int, default=5, help="random draws per size (default 5)")
    parser.add_argument("--prior-weight", type=float, default=0.0,
                        help="also score random enrolment with the statistics shrunk towards the training "
                        "speakers' average, worth this many utterances (default 0: not scored)")
    parser.add_argument("--data-dir", help="corpus folder (default: each run's config)")
    parser.add_argument("--name", default="speaker_enrolment", help="results name")
    args = parser.parse_args(argv)
    if args.draws < 1 or any(k < 1 for k in args.sizes):
        parser.error("--draws and every --sizes value must be >= 1")

    source = started("benchmarks.speaker_enrolment")
    from sercal_keras.data import extract_segments
    from sercal_keras.data.speaker_normalization import speaker_prior
    from sercal_keras.inference import EmotionRecognizer

    plans = [(f"{k} random", "random", k, args.draws) for k in args.sizes] + [
        ("neutral only", "neutral", None, 1), ("all (as training)", "all", None, 1)]
    if args.prior_weight > 0:
        plans += [("none: the training speakers' average", "prior", None, 1)] + [
            (f"{k} random, shrunk (w {args.prior_weight:g})", "shrunk", k, args.draws) for k in args.sizes]
    rows: List[Dict[str, Any]] = []
    for run in map(Path, args.runs):
        recognizer = EmotionRecognizer.load(run)
        if not recognizer.needs_speaker_statistics:
            print(f"{run}: not a per-speaker model; skipped")
            continue
        corpus, fold = run_test_fold(run, args.data_dir)
        segments = extract_segments(corpus, fold.test, recognizer.feature_config, training=False)
        trained_ua = json.loads((run / "metrics.json").read_text())["utterance"]["ua"]
        row: Dict[str, Any] = {"run": str(run), "fold": fold.name, "metrics_json_ua": trained_ua}
        for title, plan, size, draws in plans:
            if plan == "neutral" and "neutral" not in corpus.labels:
                continue
            if plan in ("shrunk", "prior"):
                train = extract_segments(corpus, fold.train, recognizer.feature_config, training=False)
                prior = speaker_prior(train, corpus.speakers)
                row[title] = enrolment_ua(recognizer, segments, corpus, "random" if plan == "shrunk" else "prior",
                                          size, draws, prior, args.prior_weight)
            else:
                row[title] = enrolment_ua(recognizer, segments, corpus, plan, size, draws)
        if not np.isclose(row["all (as training)"][0], trained_ua, atol=1e-6):
            raise SystemExit(f"{run}: statistics from all test audio give UA {row['all (as training)'][0]:.4f}, "
                             f"metrics.json says {trained_ua:.4f}; the runs and this script disagree")
        rows.append(row)
        print(f"{run}: " + ", ".join(f"{title} {100 * np.mean(row[title]):.1f}" for title, *_ in plans
                                     if title in row), flush=True)
    if not rows:
        raise SystemExit("no per-speaker runs among the given directories")

    summary = {}
    for title, *_ in plans:
        means = [float(np.mean(r[title])) for r in rows if title in r]
        if means:
            summary[title] = {"mean": float(np.mean(means)), "runs": len(means),
                              "std_over_runs": float(np.std(means, ddof=1)) if len(means) > 1 else 0.0}
    payload = {**source, "draws": args.draws, "runs": rows, "summary": summary}
    table = [[title, f"{100 * s['mean']:.1f} ± {100 * s['std_over_runs']:.1f}"] for title, s in summary.items()]
    markdown = (
        "# Per-speaker models: UA against the speaker audio their statistics come from\n\n"
        f"Command: `{payload['command']}`  \nCommit: `{payload['git_commit']}`\n\n"
        f"{len(rows)} runs; each run's test utterances, UA (utterance level, %) mean ± sd over runs "
        f"(random enrolment: the mean of {args.draws} draws per run first). Enrolment utterances are drawn "
        "from the speaker's own test utterances, all of which are scored.\n\n"
        + markdown_table(["speaker statistics from", "UA (%)"], table)
    )
    write_results(args.name, payload, markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
