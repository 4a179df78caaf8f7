"""Classify WAV files with a `.tflite` emotion model, using only numpy and LiteRT.

    python -m edge_demo.classify model_int8.tflite a.wav b.wav [--json] [--threads N]
    python -m edge_demo.classify speaker_model.tflite a.wav b.wav --adapt     # one speaker's files
    python -m edge_demo.classify seed0_int8.tflite a.wav --ensemble seed1_int8.tflite seed2_int8.tflite

Reads the model's sidecar (`model_int8.json`), decodes each file, resamples it
to the model's rate if needed, cuts 2 s segments with the evaluation hop from
the card, computes the features (MFCC or log-mel bands, as the card says)
with the library's own front-end (for feature-input models) and standardises
them with the card's mean/std, runs the model one segment at a time, and
averages the segment probabilities per file. A model
trained with per-speaker normalisation standardises by the speaker's feature
statistics: from the files themselves (`--adapt`, all one speaker's) or from a
few other utterances of the speaker (`--speaker-audio`), shrunk towards the
training speakers' average in the sidecar, or that average alone without either.
With `--ensemble`, several models of one recipe (e.g. seeds) classify every
segment and their probabilities are averaged (`edge_demo.ensemble`).

Exit status: 0 when every file was classified; 1 when some file failed (each
failure is one line on stderr, the other files are still classified and
printed); 2 when the model, its sidecar or the arguments are unusable.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

PROG = "python -m edge_demo.classify"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Speech emotion recognition on WAV files with a .tflite model and its "
        "<name>.json sidecar (numpy + LiteRT only; no TensorFlow).",
        epilog="Exit status: 0 all files classified, 1 some file failed (reported on stderr), "
        "2 unusable model/sidecar/arguments.",
    )
    parser.add_argument("model", help="the .tflite model; its sidecar <name>.json must sit beside it")
    parser.add_argument("wavs", nargs="+", metavar="file.wav", help="audio files to classify")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    parser.add_argument("--threads", type=int, default=1, help="interpreter threads (default 1)")
    parser.add_argument("--card", help="sidecar path, if not <model stem>.json beside the model")
    parser.add_argument("--ensemble", nargs="+", metavar="more.tflite", default=[],
                        help="more models of the same recipe (e.g. other seeds), each with its sidecar beside it: "
                        "their probabilities are averaged with the first model's")
    parser.add_argument(
        "--decoder", choices=("auto", "stdlib", "soundfile"), default="auto",
        help="WAV decoding: standard library, then soundfile when installed (auto, default)",
    )
    parser.add_argument("--test-time-speeds", nargs="+", type=float, default=[], metavar="F",
                        help="also classify each file at these speeds (e.g. 0.9 1.1, the default recipe's training "
                        "speeds) and pool the copies' segments: +0.9 to +1.6 pp UA in the research log (#42, #48), "
                        "~3x the work")
    parser.add_argument("--segments", action="store_true",
                        help="also give per-segment probabilities (table: top label per segment)")
    speaker = parser.add_mutually_exclusive_group()
    speaker.add_argument("--adapt", action="store_true",
                         help="per-speaker models: the files are one speaker's; standardise with their statistics")
    speaker.add_argument("--speaker-audio", nargs="+", metavar="file.wav",
                         help="per-speaker models: a few utterances of the speaker to take the statistics from")
    return parser


def classify_file(model, path: str, decoder: str = "auto", audio=None,
                  test_time_speeds: Sequence[float] = ()) -> Dict[str, Any]:
    """One file's result: label, confidence, probabilities, segments, timings (`audio`: already decoded;
    `test_time_speeds`: as `runtime.classify_copies`)."""
    from edge_demo.audio import load_audio

    if audio is None:
        audio = load_audio(path, model.feature_config.sample_rate, decoder=decoder, frontend=model.frontend)
    start = time.perf_counter()
    probs, segment_probs = model.classify_waveform(audio.waveform, test_time_speeds)
    elapsed = time.perf_counter() - start
    best = int(np.argmax(probs))
    return {
        "file": str(path),
        "label": model.labels[best],
        "confidence": float(probs[best]),
        "probabilities": {label: float(p) for label, p in zip(model.labels, probs)},
        "segments": int(len(segment_probs)),
        "segment_probabilities": segment_probs.tolist(),
        "duration_s": round(audio.seconds, 4),
        "original_sample_rate": audio.original_rate,
        "decoder": audio.decoder,
        "resampler": audio.resampler,
        "processing_ms": round(1000 * elapsed, 3),
    }


def format_table(labels: Sequence[str], results: List[Dict[str, Any]], segments: bool = False) -> str:
    """A fixed-width table: file, label, confidence, one column per class, segments."""
    width = max([len("file")] + [len(r["file"]) for r in results])
    label_width = max(len("label"), *(len(x) for x in labels))
    columns = [max(6, len(x)) for x in labels]
    header = (f"{'file':<{width}}  {'label':<{label_width}}  {'conf':>5}  "
              + "  ".join(f"{x:>{w}}" for x, w in zip(labels, columns)) + f"  {'segs':>4}  {'ms':>7}")
    lines = [header, "-" * len(header)]
    for r in results:
        probs = "  ".join(f"{r['probabilities'][x]:>{w}.3f}" for x, w in zip(labels, columns))
        lines.append(f"{r['file']:<{width}}  {r['label']:<{label_width}}  {r['confidence']:>5.2f}  {probs}  "
                     f"{r['segments']:>4}  {r['processing_ms']:>7.1f}")
        if segments:
            hop = r.get("hop_seconds", 0.0)
            tops = [f"{i * hop:.1f}s:{labels[int(np.argmax(p))]}" for i, p in enumerate(r["segment_probabilities"])]
            lines.append("    segments: " + " ".join(tops))
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from edge_demo.ensemble import load_model_or_ensemble
    from edge_demo.frontend_loader import FrontendNotFoundError
    from edge_demo.runtime import EdgeError

    try:
        model = load_model_or_ensemble(args.model, args.card, args.ensemble, num_threads=args.threads)
    except (EdgeError, FrontendNotFoundError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2

    from edge_demo.audio import load_audio

    def decode(path):
        return load_audio(path, model.feature_config.sample_rate, decoder=args.decoder, frontend=model.frontend)

    results, errors = [], []
    audios = {}
    try:
        if args.test_time_speeds:  # bad speeds stop here, before any file, not once per file
            try:
                model.frontend.check_test_time_speeds(args.test_time_speeds)
            except ValueError as error:
                raise EdgeError(f"--test-time-speeds: {error}") from None
        if (args.adapt or args.speaker_audio) and not model.per_speaker:
            raise EdgeError(f"{args.model} uses one global normalisation; drop --adapt/--speaker-audio.")
        # per-speaker models: the speaker's statistics, at every test-time speed too
        if args.speaker_audio:
            model.adapt([decode(path).waveform for path in args.speaker_audio], args.test_time_speeds)
        elif args.adapt:
            for path in args.wavs:  # a file that cannot be read is reported below and left out
                try:
                    audios[path] = decode(path)
                except EdgeError:
                    pass
            model.adapt([audio.waveform for audio in audios.values()], args.test_time_speeds)
        elif model.per_speaker:
            model.current_speaker_statistics()  # the card's average, or an error naming --adapt / --speaker-audio
    except EdgeError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2

    hop_seconds = model.feature_config.hop_samples(training=False) / model.feature_config.sample_rate
    for path in args.wavs:
        try:
            result = classify_file(model, path, decoder=args.decoder, audio=audios.get(path),
                                   test_time_speeds=args.test_time_speeds)
        except EdgeError as error:
            errors.append({"file": str(path), "error": str(error)})
            print(f"{PROG}: error: {error}", file=sys.stderr)
            continue
        result["hop_seconds"] = hop_seconds
        results.append(result)

    if args.json:
        if not args.segments:
            for r in results:
                r.pop("segment_probabilities")
        document = {**model.describe(), "hop_seconds": hop_seconds, "test_time_speeds": args.test_time_speeds,
                    "results": results, "errors": errors}
        print(json.dumps(document, indent=2))
    elif results:
        print(format_table(model.labels, results, segments=args.segments))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
