"""`python -m training.evaluate`: evaluate a saved model on any corpus and split.

The model (a run directory or a `model.keras` with its `model_card.json`) is
evaluated with the features its card describes (evaluation hop), giving the
same metrics and figures as training: WA, UA, macro-F1, per-class recall and
the confusion matrix, segment- and utterance-level.

What is evaluated:
- no `--corpus` (or the model's own corpus) and no `--protocol/--folds`: the
  model's own test fold (from its card), i.e. a re-check of `metrics.json`;
- `--protocol P --folds F|all`: those folds' test parts, one result each;
- another corpus without `--protocol`: all of it.

Labels: the corpus' labels are matched to the model's **by name**. If the
corpus has labels the model does not know, evaluation is refused (exit 2)
unless `--label-map CORPUS=MODEL` maps them or `--drop-unknown-labels` leaves
those utterances out; if the corpus has only some of the model's labels, a
warning says so and UA averages over the classes present.

Exit codes: 0 done; 1 failure while evaluating; 2 invalid flags, model or labels.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

PROG = "python -m training.evaluate"
_DESCRIPTION = """\
Evaluate a saved model (a run directory, or model.keras with model_card.json beside
it) on any corpus and split, with the features its card describes: WA, UA, macro-F1,
per-class recall and the confusion matrix, segment- and utterance-level, as training.

What is evaluated: with no --corpus/--protocol/--folds, the model's own test fold
(a re-check of its metrics.json); with --protocol/--folds, those folds' test parts;
another corpus without --protocol, all of it. Labels are matched by name: a corpus
label the model does not know is refused unless --label-map or --drop-unknown-labels.
"""


def build_parser() -> argparse.ArgumentParser:
    from training.config import CORPORA, PROTOCOLS, OneLineErrorParser

    p = OneLineErrorParser(
        prog=PROG,
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  python -m training.evaluate runs/emodb_fa_ca/speakers-03+08_seed0\n"
        "  python -m training.evaluate runs/x/model.keras --corpus ravdess --data-dir ../shared/data/ravdess16k \\\n"
        "      --label-map angry=anger --label-map happy=happiness --label-map sad=sadness \\\n"
        "      --label-map fearful=fear --drop-unknown-labels\n",
    )
    p.add_argument("model", help="run directory or model.keras (model_card.json must be beside it)")
    p.add_argument("--corpus", choices=CORPORA, help="corpus to evaluate on (default: the model's)")
    p.add_argument("--data-dir", metavar="DIR", help="the corpus folder (default: the training run's, if known)")
    p.add_argument("--corpus-option", metavar="KEY=VALUE", action="append", default=[],
                   help="extra option for the corpus reader, repeatable")
    p.add_argument("--protocol", choices=tuple(PROTOCOLS), help="split protocol for --folds")
    p.add_argument("--folds", "--fold", metavar="FOLDS",
                   help="fold indices or names, comma-separated, or 'all' (needs or defaults --protocol)")
    p.add_argument("--label-map", metavar="CORPUS=MODEL", action="append", default=[],
                   help="map a corpus label to a model label, repeatable")
    p.add_argument("--drop-unknown-labels", action="store_true",
                   help="leave out utterances whose label the model does not know (default: refuse)")
    p.add_argument("--output-dir", metavar="DIR",
                   help="where metrics.json / confusion.png go (default: <run dir>/evaluations/<corpus>_<split>)")
    p.add_argument("--cache-dir", metavar="DIR", help="feature cache (default: $SERCAL_CACHE_DIR or ~/.cache/sercal_keras)")
    p.add_argument("--batch-size", type=int, default=64, metavar="N", help="segments per model call (default: 64)")
    p.add_argument("--test-time-speeds", metavar="F,F", default="",
                   help="also score every utterance at these speeds and pool the copies' segments, e.g. 0.9,1.1 "
                   "(the training speeds; +0.9 to +1.6 pp UA, research log #42/#48; default: off)")
    loud = p.add_mutually_exclusive_group()
    loud.add_argument("--quiet", "-q", action="store_true", help="print only the result line")
    loud.add_argument("--verbose", "-v", action="store_true", help="do not hide TensorFlow's start-up messages")
    p.add_argument("--json", action="store_true", dest="json_output", help="print the results as JSON on stdout")
    return p


def _config_error(message: str):
    from sercal_keras.errors import ConfigError

    return ConfigError(message)


def label_mapping(corpus_labels: Sequence[str], model_labels: Sequence[str], label_map: Dict[str, str],
                  drop_unknown: bool, warn) -> Dict[int, Optional[int]]:
    """Corpus label index → model label index (None: left out); refuses unknown labels.

    Raises:
        ConfigError: a corpus label (after `label_map`) the model does not know,
            without `drop_unknown`; or a `label_map` target that is no model label.
    """
    model_index = {name: i for i, name in enumerate(model_labels)}
    bad_targets = sorted({v for v in label_map.values() if v not in model_index})
    if bad_targets:
        raise _config_error(f"--label-map targets {bad_targets} are not model labels {list(model_labels)}")
    mapping, unknown = {}, []
    for i, name in enumerate(corpus_labels):
        target = label_map.get(name, name)
        if target in model_index:
            mapping[i] = model_index[target]
        else:
            mapping[i] = None
            unknown.append(name)
    if unknown and not drop_unknown:
        raise _config_error(
            f"the corpus has labels the model does not know: {unknown} (model labels: {list(model_labels)}); "
            "map them with --label-map CORPUS=MODEL or leave them out with --drop-unknown-labels"
        )
    if unknown:
        warn(f"warning: leaving out utterances labelled {unknown}: the model does not know these labels")
    covered = {m for m in mapping.values() if m is not None}
    if len(covered) < len(model_labels):
        missing = [model_labels[i] for i in range(len(model_labels)) if i not in covered]
        warn(f"warning: the corpus has no {missing} (model classes); UA averages over the classes present")
    if list(corpus_labels) != list(model_labels) and not unknown:
        warn("note: corpus and model label lists differ; labels are matched by name")
    return mapping


def evaluate_model(recognizer, corpus, indices, cache_dir=None, mapping=None, labels=None) -> Dict[str, Any]:
    """Metrics of `recognizer` on `corpus.utterances[indices]` (the training feature path).

    A per-speaker model standardises each speaker by the statistics of that
    speaker's utterances among `indices`, as training did for its test speakers.
    With `recognizer.test_time_speeds`, every utterance is also scored at those
    speeds (the features of each copy, each copy's speakers standardised by
    that copy's statistics) and its utterance probabilities are the mean over
    the segments of all copies, as `EmotionRecognizer.predict` pools them; the
    segment-level metrics stay those of the audio as recorded.
    """
    import numpy as np

    from sercal_keras import metrics
    from sercal_keras.data import extract_segments

    labels = list(labels or recognizer.labels)
    copies = []  # (probabilities, labels, utterance index) of the kept segments at each speed
    for speed in recognizer.speeds:
        segments = extract_segments(corpus, indices, recognizer.feature_config, training=False, cache_dir=cache_dir,
                                    speed=speed)
        seg_labels = segments.labels
        keep = np.ones(len(seg_labels), bool)
        if mapping is not None:
            mapped = np.array([-1 if mapping[int(c)] is None else mapping[int(c)] for c in seg_labels], np.int64)
            keep = mapped >= 0
            seg_labels = mapped
        if not keep.any():
            raise _config_error("no utterance left to evaluate (every label was left out)")
        features, owners = segments.features[keep], segments.utterance_index[keep]
        # as in training: a per-speaker model standardises each speaker by their own (unlabelled) audio here
        probs = recognizer.predict_speakers(features, np.asarray(corpus.speakers, dtype=object)[owners])
        copies.append((probs, seg_labels[keep], owners))
        if speed == 1.0:
            recorded = segments
            result = metrics.evaluate_segments(probs, seg_labels[keep], owners, labels)
            result["num_test_segments"] = int(keep.sum())
            result["num_test_utterances"] = int(len(np.unique(owners)))
    if recognizer.test_time_speeds:
        pooled = [np.concatenate(parts) for parts in zip(*copies)]
        result["utterance"] = metrics.evaluate_segments(*pooled, labels)["utterance"]
        result["test_time_speeds"] = list(recognizer.test_time_speeds)
    result["skipped_files"] = [list(s) for s in recorded.skipped]
    return result


def main(argv: Optional[Sequence[str]] = None) -> int:
    from training.config import import_library_quietly

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    import_library_quietly(verbose=args.verbose)
    from sercal_keras.errors import ConfigError, SercalError

    try:
        return _run(args)
    except ConfigError as error:
        print(f"{PROG}: error: {' '.join(str(error).split())}", file=sys.stderr, flush=True)
        return 2
    except SercalError as error:
        print(f"{PROG}: error: {' '.join(str(error).split())}", file=sys.stderr, flush=True)
        return 2 if error.__class__.__name__ == "ModelFileError" else 1


def _run(args) -> int:
    import numpy as np

    from sercal_keras.data import load_corpus, make_folds
    from sercal_keras.errors import ConfigError
    from sercal_keras.inference import EmotionRecognizer, resolve_model_path
    from sercal_keras.io_utils import write_json, write_text
    from sercal_keras.reporting import plot_confusion
    from training.config import PROTOCOLS, parse_key_values
    from training.trainer import select_folds

    def say(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr if args.json_output else sys.stdout, flush=True)

    # ---- validate everything cheap first
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be a positive integer. Received: {args.batch_size}")
    if args.data_dir is not None and not Path(args.data_dir).exists():
        raise ConfigError(f"--data-dir does not exist: {args.data_dir}")
    if args.folds is not None and not args.folds.strip():
        raise ConfigError("--folds must name fold indices or names, or 'all'")
    label_map = parse_key_values(args.label_map, "--label-map")
    label_map = {str(k): str(v) for k, v in label_map.items()}
    corpus_options = parse_key_values(args.corpus_option, "--corpus-option")
    model_path = resolve_model_path(args.model)
    run_dir = model_path.parent
    try:
        speeds = [float(f) for f in args.test_time_speeds.split(",") if f.strip()]
    except ValueError:
        raise ConfigError(f"--test-time-speeds takes comma-separated factors, e.g. 0.9,1.1. "
                          f"Received: {args.test_time_speeds!r}") from None
    recognizer = EmotionRecognizer.load(model_path, batch_size=args.batch_size, test_time_speeds=speeds)
    card = recognizer.card
    saved_config = {}
    if (run_dir / "config.json").is_file():
        saved_config = json.loads((run_dir / "config.json").read_text())

    corpus_name = args.corpus or card.corpus
    same_corpus = corpus_name == card.corpus
    data_dir = args.data_dir
    if data_dir is None and same_corpus:
        data_dir = saved_config.get("data_dir")
        corpus_options = {**saved_config.get("corpus_options", {}), **corpus_options}
    if data_dir is None and corpus_name == "synthetic":
        data_dir = args.cache_dir
    corpus = load_corpus(corpus_name, data_dir, **corpus_options)
    mapping = label_mapping(list(corpus.labels), list(recognizer.labels), label_map, args.drop_unknown_labels,
                            warn=lambda m: print(m, file=sys.stderr, flush=True))

    # ---- which split(s)
    splits: List = []  # (name, indices)
    if args.protocol is None and args.folds is None and same_corpus and card.extra.get("fold"):
        protocol = card.extra.get("protocol", "speaker-folds")
        folds = make_folds(corpus, PROTOCOLS[protocol], seed=0)
        match = [f for f in folds if f.name == card.extra["fold"]]
        if not match:
            raise ConfigError(f"the model's test fold {card.extra['fold']!r} is not in this corpus; pass --protocol")
        splits = [(f"{protocol}:{match[0].name}", match[0].test)]
        split_tag = f"{protocol}_{match[0].name}"
    elif args.protocol is None and args.folds is None:
        splits = [("all", np.arange(len(corpus)))]
        split_tag = "all"
    else:
        from training.config import TrainConfig

        protocol = args.protocol or ("session" if corpus_name == "iemocap" else "speaker-folds")
        folds = make_folds(corpus, PROTOCOLS[protocol], seed=0)
        selector = TrainConfig(corpus=corpus_name, protocol=protocol)
        selector.update({"folds": args.folds or "0"}, source="--folds")
        chosen = select_folds(selector, folds)
        splits = [(f"{protocol}:{fold.name}", fold.test) for _, fold in chosen]
        split_tag = f"{protocol}_{'all' if selector.folds == ['all'] else '+'.join(f.name for _, f in chosen)}"
        if same_corpus and card.extra.get("fold") and any(f.name != card.extra["fold"] for _, f in chosen):
            print(f"warning: the model was trained on corpus {corpus_name!r} with test fold "
                  f"{card.extra['fold']!r}; other folds' test speakers were in its training data, so their "
                  "scores are not speaker-independent", file=sys.stderr, flush=True)

    if speeds:  # beside the plain evaluation, not over it
        split_tag += "_speeds" + "+".join(f"{s:g}" for s in speeds)
    output_dir = Path(args.output_dir) if args.output_dir else run_dir / "evaluations" / f"{corpus_name}_{split_tag}"
    results = []
    for name, indices in splits:
        result = evaluate_model(recognizer, corpus, indices, cache_dir=args.cache_dir, mapping=mapping)
        utt = result["utterance"]
        say(f"{name}: UA {utt['ua']:.1%}, WA {utt['wa']:.1%}, macro-F1 {utt['macro_f1']:.1%} "
            f"({result['num_test_utterances']} utterances; segments UA {result['segment']['ua']:.1%})"
            + (f"; utterances also at speeds {', '.join(f'{x:g}' for x in speeds)}" if speeds else ""))
        doc = {"model": str(model_path), "corpus": corpus_name, "split": name, "labels": list(recognizer.labels),
               "label_map": label_map, **result}
        results.append(doc)
        target = output_dir if len(splits) == 1 else output_dir / name.split(":")[-1]
        write_json(target / "metrics.json", doc)
        plot_confusion(utt["confusion_matrix"], recognizer.labels, target / "confusion.png",
                             title=f"{model_path.parent.name} on {corpus_name} {name} · UA {utt['ua']:.1%}")
    from sercal_keras import metrics as M

    summary = {
        "model": str(model_path),
        "corpus": corpus_name,
        "splits": [r["split"] for r in results],
        "metrics": {level: {k: M.mean_std([r[level][k] for r in results]) for k in ("ua", "wa", "macro_f1")}
                    for level in ("utterance", "segment")},
        "results": results,
        "output_dir": str(output_dir),
    }
    if len(results) > 1:
        write_json(output_dir / "summary.json", summary)
        lines = ["| split | utterances | UA | WA | macro-F1 |", "|---|---|---|---|---|"]
        for r in results:
            u = r["utterance"]
            lines.append(f"| {r['split']} | {r['num_test_utterances']} | {100 * u['ua']:.1f} | "
                         f"{100 * u['wa']:.1f} | {100 * u['macro_f1']:.1f} |")
        m = summary["metrics"]["utterance"]
        lines.append(f"| mean ± std | | {100 * m['ua']['mean']:.1f} ± {100 * m['ua']['std']:.1f} | "
                     f"{100 * m['wa']['mean']:.1f} ± {100 * m['wa']['std']:.1f} | "
                     f"{100 * m['macro_f1']['mean']:.1f} ± {100 * m['macro_f1']['std']:.1f} |")
        write_text(output_dir / "summary.md", f"# {model_path} on {corpus_name}\n\n" + "\n".join(lines) + "\n")
    if args.json_output:
        print(json.dumps(summary if len(results) > 1 else results[0], indent=2, default=str), flush=True)
    else:
        say(f"written to {output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
