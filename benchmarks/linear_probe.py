"""A cheap screen for feature ideas: a linear classifier on utterance statistics.

Minutes of CNN training per run make every feature idea expensive to try. This
probe asks a cheaper question first: how separable are the emotions, speaker-
independently, in a representation? Per utterance it takes the evaluation-hop
MFCC segments (`extract_segments`, the training feature path), optionally
standardised per speaker (`standardize_by_speaker`, as `--feature-normalization
speaker`), and summarises them by the mean and standard deviation of every
coefficient over all frames; a logistic regression (fixed C, standardised
inputs: nothing is tuned) is trained on each fold's training speakers and scored
(UA) on its test speakers (scikit-learn, installed with librosa). Writes `benchmarks/results/<name>.{json,md}`.

Example:
    python -m benchmarks.linear_probe --corpus emodb --data-dir ../shared/data/emodb --name linear_probe_emodb
"""

from __future__ import annotations

import argparse
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from benchmarks.common import markdown_table, provenance, write_results


def utterance_statistics(segments, num_utterances: int) -> np.ndarray:
    """(num_utterances, 2 · n_mfcc): per-coefficient mean and std over an utterance's segments and frames."""
    out = np.zeros((num_utterances, 2 * segments.features.shape[1]), np.float64)
    for utterance in np.unique(segments.utterance_index):
        frames = segments.features[segments.utterance_index == utterance]
        out[utterance] = np.concatenate([frames.mean(axis=(0, 2)), frames.std(axis=(0, 2))])
    return out


def probe_ua(statistics: np.ndarray, label_ids: np.ndarray, folds, c: float = 0.1) -> List[float]:
    """Test UA of a logistic regression per fold (trained on the fold's training utterances)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from sercal_keras.metrics import confusion_matrix, unweighted_accuracy

    uas = []
    for fold in folds:
        classifier = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000))
        classifier.fit(statistics[fold.train], label_ids[fold.train])
        predicted = classifier.predict(statistics[fold.test])
        matrix = confusion_matrix(label_ids[fold.test], predicted, int(label_ids.max()) + 1)
        uas.append(float(unweighted_accuracy(matrix)))
    return uas


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.linear_probe", description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default="emodb", help="corpus name (default emodb)")
    parser.add_argument("--data-dir", required=True, help="the corpus folder")
    parser.add_argument("--protocol", default="speaker_folds", help="folds (default speaker_folds)")
    parser.add_argument("--c", type=float, default=0.1, help="inverse regularisation strength (fixed; default 0.1)")
    parser.add_argument("--features", nargs="*", default=[], metavar="KEY=VALUE",
                        help="FeatureConfig fields to change, e.g. n_fft=512 hop_length=256 (default: the paper's)")
    parser.add_argument("--name", default="linear_probe", help="results name")
    args = parser.parse_args(argv)

    from training.config import import_library_quietly, parse_key_values

    import_library_quietly()
    from sercal_keras.audio.frontend import FeatureConfig
    from sercal_keras.data import extract_segments, load_corpus, make_folds, standardize_by_speaker

    corpus = load_corpus(args.corpus, args.data_dir)
    folds = make_folds(corpus, args.protocol, seed=0)
    feature_config = FeatureConfig(**parse_key_values(args.features, "--features"))
    segments = extract_segments(corpus, None, feature_config, training=False)
    label_ids = np.asarray(corpus.label_ids)
    rows: List[Dict[str, Any]] = []
    for title, features in (("global (one normalisation)", segments),
                            ("per speaker, means only (standardize_by_speaker, means_only)",
                             standardize_by_speaker(segments, corpus.speakers, means_only=True)),
                            ("per speaker (standardize_by_speaker)", standardize_by_speaker(segments, corpus.speakers))):
        uas = probe_ua(utterance_statistics(features, len(corpus)), label_ids, folds, args.c)
        rows.append({"features": title, "ua_per_fold": uas, "ua": float(np.mean(uas))})
        print(f"{title}: UA {100 * np.mean(uas):.1f} % (folds {', '.join(f'{100 * u:.1f}' for u in uas)})",
              flush=True)
    payload = {**provenance("benchmarks.linear_probe"), "corpus": corpus.name, "folds": [f.name for f in folds],
               "features": feature_config.to_dict(), "rows": rows}
    table = [[r["features"], f"{100 * r['ua']:.1f}", " / ".join(f"{100 * u:.1f}" for u in r["ua_per_fold"])]
             for r in rows]
    markdown = (
        f"# Linear probe on {corpus.name}: utterance feature statistics, speaker-independent\n\n"
        f"Command: `{payload['command']}`  \nCommit: `{payload['git_commit']}`\n\n"
        f"Logistic regression (C {args.c}) on per-utterance mean and std of the {feature_config.feature_name} "
        f"(evaluation-hop segments; n_fft {feature_config.n_fft}, hop {feature_config.hop_length}, "
        f"{feature_config.n_mels} mel bands), {len(folds)} {args.protocol} folds, test UA (%).\n\n"
        + markdown_table(["normalisation", "UA (%)", "per fold"], table)
    )
    write_results(args.name, payload, markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
