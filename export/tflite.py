"""`python -m export.tflite`: a trained model → `.tflite` files + sidecar cards.

Usage:
    python -m export.tflite runs/emodb_fold0 --mode all --input both
    python -m export.tflite runs/emodb_fold0/model.keras --mode int8 --representative-size 300
    python -m export.tflite runs/x --mode int8 --representative-data segments.npy
    python -m export.tflite runs/x --mode qat --qat-epochs 3

Every file is converted with builtin ops only, loaded with LiteRT and checked
against the Keras model on held-out segments (the run's test fold) *before*
anything is written; a failing check raises `ExportError` and writes nothing.
Each `<name>.tflite` gets `<name>.json` (a `ModelCard`) that the edge runtime
reads: labels, `FeatureConfig`, normalisation mean/std, input/output tensor
details with quantization, `input_kind`, `mode`, the source model's SHA-256,
versions, the ops, XNNPACK partitions and the check's numbers.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from sercal_keras.errors import ConfigError, ExportError, ModelFileError, SercalError

INPUT_KINDS = ("mfcc", "waveform")
MODEL_NAME = "model.keras"
DEFAULT_MIN_AGREEMENT = 0.95
#: Float files must reproduce the Keras probabilities this closely.
FLOAT_TOLERANCE = {"float32": 1e-3, "float16": 2e-2}


# ---------------------------------------------------------------------------
# The source model
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class Source:
    """A trained model with its card (and training config when it comes from a run dir)."""

    model_path: Path
    model: Any
    card: Any  # ModelCard
    config: Optional[Dict[str, Any]]
    sha256: str
    mean: np.ndarray
    std: np.ndarray
    #: For an ensemble: every member (the fields above are the first member's).
    members: Tuple["Source", ...] = ()

    @property
    def run_dir(self) -> Path:
        return self.model_path.parent

    @property
    def feature_config(self):
        from sercal_keras.audio.frontend import FeatureConfig

        return FeatureConfig.from_dict(self.card.feature_config)

    @property
    def speaker_normalization(self) -> bool:
        """Trained with per-speaker normalisation: its inputs are speaker-standardised MFCC."""
        return self.card.speaker_normalization


def predict(source: Source, features: np.ndarray) -> np.ndarray:
    """The Keras reference on raw MFCC: the model's probabilities, or the members' mean for an ensemble."""
    models = [member.model for member in source.members] or [source.model]
    return np.mean([np.asarray(model.predict(features, batch_size=64, verbose=0), np.float32)
                    for model in models], axis=0).astype(np.float32)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_model_path(path) -> Path:
    """A `.keras` file, or a run directory holding `model.keras`; `ModelFileError` otherwise."""
    path = Path(path)
    if path.is_dir():
        candidate = path / MODEL_NAME
        if candidate.is_file():
            return candidate
        runs = sorted(p.parent.name for p in path.glob(f"*/{MODEL_NAME}"))
        hint = f"; it holds runs {', '.join(runs[:8])}: pass one of them" if runs else ""
        raise ModelFileError(f"{path}: no {MODEL_NAME} in this directory{hint}.")
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file or run directory.")
    return path


def load_source(path) -> Source:
    """Loads a sercal-keras model, its card and (if present) its training config.

    Raises:
        ModelFileError: missing path, no model card beside it, not a Keras 3
            `.keras` archive, not a sercal-keras model, or card and model disagree.
    """
    from sercal_keras.model_card import ModelCard, card_path_for

    from export.edge_model import check_sercal_model, normalization_stats
    from export.representative import read_run_config

    model_path = resolve_model_path(path)
    card = ModelCard.load(card_path_for(model_path))  # before the (slow) model load
    try:
        from sercal_keras.audio.frontend import FeatureConfig

        feature_config = FeatureConfig.from_dict(card.feature_config)
    except (TypeError, ValueError) as error:
        raise ModelFileError(f"{card_path_for(model_path)}: invalid feature_config ({error})") from error
    import keras

    import sercal_keras  # noqa: F401  (registers the layers)

    try:
        model = keras.models.load_model(model_path, compile=False, safe_mode=True)
    except Exception as error:  # noqa: BLE001  (zip, h5, deserialization errors)
        raise ModelFileError(
            f"{model_path}: not a loadable Keras 3 .keras model of sercal-keras "
            f"({type(error).__name__}: {str(error).splitlines()[0][:300] if str(error) else ''})"
        ) from error
    check_sercal_model(model)
    if tuple(model.input_shape[1:]) != tuple(feature_config.feature_shape):
        raise ModelFileError(f"{model_path}: the model takes {tuple(model.input_shape[1:])} but its card's "
                             f"features are {feature_config.feature_shape}")
    if model.output_shape[-1] != len(card.labels):
        raise ModelFileError(f"{model_path}: {model.output_shape[-1]} outputs but the card lists "
                             f"{len(card.labels)} labels")
    mean, std = normalization_stats(model)
    card_mean = np.asarray(card.feature_mean, np.float32)
    card_std = np.asarray(card.feature_std, np.float32)
    if card_mean.shape != mean.shape or not (np.allclose(card_mean, mean, rtol=1e-4, atol=1e-4)
                                             and np.allclose(card_std, std, rtol=1e-3, atol=1e-4)):
        raise ModelFileError(f"{card_path_for(model_path)}: normalisation mean/std differ from the model's "
                             f"{'mfcc_standardization'} layer; the card belongs to another model")
    return Source(model_path, model, card, read_run_config(model_path.parent), sha256_of(model_path), mean, std)


def load_ensemble(paths: Sequence) -> Source:
    """Loads several models as one ensemble `Source` (exported as one graph averaging them).

    The members must share labels, features and feature normalisation, and,
    where they come from run directories, corpus, protocol and fold: the
    export checks the file on the first member's held-out data, which has to
    be held out for every member.

    Raises:
        ModelFileError: a member cannot be loaded, or the members disagree.
    """
    from export.representative import training_split

    sources = [load_source(path) for path in paths]
    first = sources[0]
    for other in sources[1:]:
        for what, mine, theirs in (
            ("labels", list(first.card.labels), list(other.card.labels)),
            ("features", first.feature_config, other.feature_config),
            ("feature normalisation", first.speaker_normalization, other.speaker_normalization),
        ):
            if mine != theirs:
                raise ModelFileError(f"{other.model_path}: its {what} differ from {first.model_path}'s "
                                     f"({theirs!r} vs {mine!r}); an ensemble's members must share them")
        if first.config and other.config and training_split(first.config) != training_split(other.config):
            raise ModelFileError(
                f"{other.model_path} was trained on {training_split(other.config)} and {first.model_path} on "
                f"{training_split(first.config)} (corpus, protocol, fold): the ensemble's check needs test data "
                "held out from every member; export the members of one fold together")
    return dataclasses.replace(first, members=tuple(sources))


# ---------------------------------------------------------------------------
# Options and their validation (before any work)
# ---------------------------------------------------------------------------


def parse_modes(modes: Sequence[str]) -> List[str]:
    from export.convert import ALL_MODES, MODES

    result: List[str] = []
    for item in modes:
        for mode in str(item).split(","):
            mode = mode.strip()
            if mode == "all":
                chosen = list(ALL_MODES)
            elif mode in MODES:
                chosen = [mode]
            else:
                raise ConfigError(f"--mode {mode!r} is not supported; choose from {', '.join(MODES)} or all")
            result += [m for m in chosen if m not in result]
    if not result:
        raise ConfigError("--mode: no mode given")
    return result


#: (input kind, mode) pairs that are not offered, and why (see export.convert).
UNSUPPORTED = {("waveform", "dynamic"): "dynamic-range quantization destroys the float MFCC front-end"}


def plan_variants(requested: Sequence[str], kinds: Sequence[str], log: Callable[[str], None] = print):
    """The (kind, mode) pairs to make. An unsupported pair asked for by name is a `ConfigError`;
    one that only comes from `all` is skipped with a message."""
    modes = parse_modes(requested)
    named = {m.strip() for item in requested for m in str(item).split(",") if m.strip() not in ("", "all")}
    pairs = []
    for kind in kinds:
        for mode in modes:
            reason = UNSUPPORTED.get((kind, mode))
            if reason and mode in named:
                raise ConfigError(f"--mode {mode} with --input {kind} is not offered: {reason}; "
                                  "use float16 or int8 (its front-end stays float)")
            if reason:
                log(f"skipping {kind} {mode}: {reason}")
                continue
            pairs.append((kind, mode))
    return pairs


def parse_inputs(value: str) -> List[str]:
    if value == "both":
        return list(INPUT_KINDS)
    if value not in INPUT_KINDS:
        raise ConfigError(f"--input must be mfcc, waveform or both. Received: {value!r}")
    return [value]


def check_output_dir(output_dir: Path) -> None:
    """Raises `ConfigError` unless files can be created in `output_dir` (nothing is created)."""
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise ConfigError(f"--output-dir {output_dir}: exists and is not a directory")
    probe = output_dir
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"--output-dir {output_dir}: {probe} is not writable")


def check_options(modes, inputs, representative_size, min_agreement, qat_epochs, verify_size):
    if not isinstance(representative_size, int) or representative_size < 1:
        raise ConfigError(f"--representative-size must be an int >= 1. Received: {representative_size!r}")
    if not isinstance(verify_size, int) or verify_size < 1:
        raise ConfigError(f"--verify-size must be an int >= 1. Received: {verify_size!r}")
    if not 0.0 <= float(min_agreement) <= 1.0:
        raise ConfigError(f"--min-agreement must be in [0, 1]. Received: {min_agreement!r}")
    if "qat" in modes and (not isinstance(qat_epochs, int) or qat_epochs < 1):
        raise ConfigError(f"--qat-epochs must be an int >= 1. Received: {qat_epochs!r}")


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class ExportInputs:
    representative: Any  # SegmentData (calibration, training side)
    held_out: Any  # SegmentData (verification)
    held_out_is_test: bool
    training: Any = None  # SegmentData (QAT)


def gather_data(source: Source, inputs: Sequence[str], modes: Sequence[str], representative_size: int,
                verify_size: int, representative_data=None, corpus=None, data_dir=None, cache_dir=None,
                log: Callable[[str], None] = print) -> ExportInputs:
    """The calibration, verification (and QAT) segments; `ConfigError` when they cannot be had."""
    from export.convert import INTEGER_MODES
    from export.representative import from_npy, load_fold, split_segments

    config = dict(source.config or {})
    if corpus:
        config["corpus"] = corpus
    feature_config = source.feature_config
    want_waveforms = "waveform" in inputs
    if want_waveforms and source.speaker_normalization:
        raise ConfigError("--input waveform: this model was trained with per-speaker normalisation "
                          "(--feature-normalization speaker), which needs the speaker's statistics between the "
                          "MFCC and the model; the end-to-end waveform graph cannot hold them. Export --input mfcc.")
    by_speaker = {"speaker_normalization": source.speaker_normalization}
    representative = held_out = training = None
    held_out_is_test = False
    if representative_data is not None:
        representative = from_npy(representative_data, feature_config).sample(representative_size)
    if config.get("corpus"):
        corpus_data, fold = load_fold(config, data_dir=data_dir, cache_dir=cache_dir)
        log(f"data: {corpus_data.name} fold {fold.name} ({len(fold.train)} training / {len(fold.test)} test "
            "utterances)")
        if representative is None or "qat" in modes:
            training = split_segments(corpus_data, fold, feature_config, "train", want_waveforms,
                                      cache_dir=cache_dir or config.get("cache_dir"), **by_speaker)
            if representative is None:
                representative = training.sample(representative_size, seed=0)
        held_out = split_segments(corpus_data, fold, feature_config, "test", want_waveforms,
                                  cache_dir=cache_dir or config.get("cache_dir"), **by_speaker).sample(verify_size,
                                                                                                       seed=1)
        held_out_is_test = True
    needs_calibration = any(m in INTEGER_MODES for m in modes)
    if representative is None:
        if needs_calibration:
            raise ConfigError(
                f"{source.run_dir}: no training config.json to draw a representative dataset from; "
                "pass --representative-data segments.npy (raw MFCC (n, 26, 63) or waveforms (n, 32000))")
    if "qat" in modes and (training is None or training.labels is None):
        raise ConfigError("--mode qat needs the run's training data (config.json with the corpus, "
                          "or --corpus/--data-dir)")
    if held_out is None:
        if representative is not None:
            held_out = representative
            log("warning: no held-out data (no config.json); checking on the representative segments")
        else:
            from export.representative import SegmentData

            rng = np.random.default_rng(0)
            raw = rng.standard_normal((min(verify_size, 32),) + tuple(feature_config.feature_shape))
            raw = (raw * source.std[None, :, None] + source.mean[None, :, None]).astype(np.float32)
            held_out = SegmentData(raw, None, source="random MFCC-range inputs (no data given)")
            log("warning: no data given; checking the float conversion on random inputs only")
    if want_waveforms:
        for name, data in (("representative", representative), ("held-out", held_out)):
            if data is not None and data.waveforms is None and (name == "held-out" or needs_calibration):
                raise ConfigError(
                    f"--input waveform needs waveform segments for the {name} set: a run with config.json "
                    "(its audio), or --representative-data with waveforms (n, samples)")
    return ExportInputs(representative, held_out, held_out_is_test, training)


# ---------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class ExportedModel:
    """One converted and verified model, ready to be written."""

    name: str
    input_kind: str
    mode: str
    content: bytes
    card: Any  # ModelCard
    verification: Dict[str, Any]
    conversion: Any  # export.convert.Conversion


def edge_inputs(source: Source, data, input_kind: str) -> np.ndarray:
    """The edge graph's inputs for `data`: standardised MFCC or waveforms."""
    from export.edge_model import standardize

    if input_kind == "mfcc":
        return standardize(data.features, source.mean, source.std)
    return np.asarray(data.waveforms, np.float32)


def build_card(source: Source, exported_input: str, mode: str, conversion, verification, details,
               partitions, ops, extra_info) -> Any:
    from sercal_keras.model_card import ModelCard, library_versions

    fc = source.feature_config
    card = source.card
    features = fc.feature_kind
    input_description = {
        # Input kind "mfcc" is the feature input whatever the representation (the name predates log-mel).
        "mfcc": (f"standardised features (1, {fc.feature_rows}, {fc.num_frames}), {fc.feature_name}: "
                 f"librosa-style {features} of a segment, minus feature_mean, divided by feature_std (per row), "
                 "i.e. the output of the model's mfcc_standardization layer"
                 + (f"; per-speaker model: the {features} are first standardised by the speaker's own per-row "
                    "mean and std (extra.training.feature_normalization = speaker)"
                    if source.speaker_normalization else "")),
        "waveform": (f"float32 waveform (1, {fc.segment_samples}): {fc.segment_seconds} s mono at "
                     f"{fc.sample_rate} Hz in [-1, 1]; {features} and standardisation run inside the model"),
    }[exported_input]
    extra = {
        "input_kind": exported_input,
        "input_description": input_description,
        "mode": mode,
        "quantized": mode in ("int8", "qat"),
        "input": details["input"],
        "output": details["output"],
        "output_description": "class probabilities (softmax) in `labels` order",
        "sample_rate": fc.sample_rate,
        "segment_samples": fc.segment_samples,
        "segment_seconds": fc.segment_seconds,
        "eval_hop_samples": fc.hop_samples(training=False),
        "train_hop_samples": fc.hop_samples(training=True),
        "batch_size": 1,
        "source_model": source.model_path.name,
        "source_model_sha256": source.sha256,
        "graph": conversion.notes[0] if conversion.notes else "",
        "conversion": conversion.method,
        "float_layers": conversion.float_layers,
        "notes": conversion.notes[1:],
        "ops": ops,
        "xnnpack": partitions,
        "verification": verification,
        "training": {k: v for k, v in card.extra.items()},
        "training_versions": card.versions,
    }
    if source.members:
        extra["ensemble"] = {
            "combination": "mean of the members' probabilities, inside the graph",
            "members": [{"model": str(member.model_path), "sha256": member.sha256, "variant": member.card.variant}
                        for member in source.members],
        }
        extra["source_model"] = [str(member.model_path) for member in source.members]
        extra["source_model_sha256"] = [member.sha256 for member in source.members]
    extra.update(extra_info)
    return ModelCard(
        labels=list(card.labels),
        feature_config=fc.to_dict(),
        feature_mean=[float(v) for v in source.mean],
        feature_std=[float(v) for v in source.std],
        corpus=card.corpus,
        variant=card.variant,
        versions=library_versions(),
        extra=extra,
    )


def file_stem(source: Source, input_kind: str, mode: str, keep_float: Sequence[str]) -> str:
    suffix = "-mixed" if keep_float and mode in ("int8", "qat") else ""
    stem = f"ensemble{len(source.members)}" if source.members else source.model_path.stem
    return f"{stem}_{input_kind}_{mode}{suffix}"


def convert_and_verify(source: Source, graph, mode: str, data: ExportInputs, reference: np.ndarray,
                       min_agreement: float, keep_float: Sequence[str] = (), extra_info=None,
                       log: Callable[[str], None] = print) -> ExportedModel:
    """Converts one edge graph, checks it with LiteRT against the Keras model, and builds its card."""
    from export.checks import verify_agreement
    from export.convert import convert
    from export.litert_runtime import LiteRTModel, op_counts, tensor_info, xnnpack_partitions

    kind = graph.input_kind
    started = time.perf_counter()
    representative = None
    if data.representative is not None and mode in ("int8", "qat"):
        representative = edge_inputs(source, data.representative, kind)
    conversion = convert(graph, mode, representative,
                         keep_float=keep_float if mode in ("int8", "qat") else ())
    what = f"{mode} {kind} model"
    held_out = edge_inputs(source, data.held_out, kind)
    verification = verify_agreement(conversion.content, held_out, reference, min_agreement, what=what,
                                    max_abs_diff=FLOAT_TOLERANCE.get(mode) if kind == "mfcc" else None)
    verification.update({"min_agreement": min_agreement, "data": data.held_out.source,
                         "held_out": data.held_out_is_test})
    runner = LiteRTModel(conversion.content, num_threads=1)
    details = {"input": tensor_info(runner.input), "output": tensor_info(runner.output)}
    partitions = xnnpack_partitions(conversion.content)
    info = {"representative": None if representative is None else {
        "size": int(len(representative)), "data": data.representative.source}}
    info.update(extra_info or {})
    card = build_card(source, kind, mode, conversion, verification, details, partitions,
                      op_counts(conversion.content), info)
    name = file_stem(source, kind, mode, keep_float)
    log(f"{name}: {len(conversion.content) / 1024:.0f} KB, agreement {verification['agreement']:.1%} "
        f"on {verification['count']} segments, max |Δp| {verification['max_abs_diff']:.2g}, "
        f"{partitions['partitions']} XNNPACK partition(s) ({time.perf_counter() - started:.1f} s)")
    return ExportedModel(name, kind, mode, conversion.content, card, verification, conversion)


def export_models(source: Source, pairs: Sequence[tuple], data: ExportInputs,
                  min_agreement: float = DEFAULT_MIN_AGREEMENT, keep_float: Sequence[str] = (),
                  qat_epochs: int = 3, qat_target: str = "teacher", form: Optional[str] = None,
                  log: Callable[[str], None] = print) -> List[ExportedModel]:
    """Converts and verifies every (input kind, mode) pair; writes nothing."""
    modes = [mode for _, mode in pairs]
    from export.edge_model import ensemble_edge_model, mfcc_edge_model, waveform_edge_model
    from export.qat import qat_edge_graph, quantizer_ranges, train_qat

    reference = predict(source, data.held_out.features)
    trained = None
    qat_info: Dict[str, Any] = {}
    if "qat" in modes:
        trained, losses = train_qat(source.model, data.training.features, data.training.labels,
                                    epochs=qat_epochs, target=qat_target, log=log)
        qat_info = {"qat": {"epochs": qat_epochs, "target": qat_target, "loss": losses,
                            "segments": int(len(data.training)), "ranges": quantizer_ranges(trained)}}
    results = []
    for kind, mode in pairs:
        if source.members:
            graph = ensemble_edge_model([member.model for member in source.members], kind, source.feature_config,
                                        batch_size=1, form=form)
        elif mode == "qat":
            graph = qat_edge_graph(source.model, trained, kind, source.feature_config)
        elif kind == "mfcc":
            graph = mfcc_edge_model(source.model, batch_size=1, form=form)
        else:
            graph = waveform_edge_model(source.model, source.feature_config, batch_size=1, form=form)
        results.append(convert_and_verify(source, graph, mode, data, reference, min_agreement,
                                          keep_float, qat_info if mode == "qat" else None, log))
    return results


def write_exports(results: Sequence[ExportedModel], output_dir: Path) -> List[Path]:
    """Writes each `.tflite` and its `.json` card atomically (the card after its model)."""
    from sercal_keras.io_utils import write_bytes
    from sercal_keras.model_card import card_path_for

    written = []
    for result in results:
        path = Path(output_dir) / f"{result.name}.tflite"
        write_bytes(path, result.content)
        result.card.save(card_path_for(path))
        written += [path, card_path_for(path)]
    return written


def export_tflite(model_path, modes: Sequence[str] = ("float32",), output_dir=None, inputs: str = "mfcc",
                  representative_size: int = 200, representative_data=None, corpus: Optional[str] = None,
                  data_dir: Optional[str] = None, cache_dir: Optional[str] = None,
                  min_agreement: float = DEFAULT_MIN_AGREEMENT, keep_float: Sequence[str] = (),
                  qat_epochs: int = 3, qat_target: str = "teacher", verify_size: int = 300,
                  form: Optional[str] = None, log: Callable[[str], None] = print) -> List[Path]:
    """The whole export: validate, load, gather data, convert + verify all, then write all.

    Args:
        model_path: a run directory or `.keras` file; or a list of several,
            exported as **one** ensemble graph (the mean of their
            probabilities, `ensemble<N>_<input>_<mode>.tflite`; needs
            `output_dir`, and no `qat`).

    Returns:
        The written paths (`.tflite` and `.json` alternately).

    Raises:
        ConfigError, ModelFileError, ExportError: before anything is written.
    """
    paths = [model_path] if isinstance(model_path, (str, os.PathLike)) else list(model_path)
    requested = list(modes)
    modes = parse_modes(requested)
    kinds = parse_inputs(inputs)
    check_options(modes, kinds, representative_size, min_agreement, qat_epochs, verify_size)
    if len(paths) > 1:
        if "qat" in modes:
            raise ConfigError("--mode qat fine-tunes one model; for an ensemble, export int8 (or QAT each member "
                              "and run them with edge_demo --ensemble)")
        if output_dir is None:
            raise ConfigError(f"{len(paths)} models make one ensemble file: pass --output-dir (it does not "
                              "belong in any one member's run directory)")
    pairs = plan_variants(requested, kinds, log)
    if output_dir is not None:
        check_output_dir(Path(output_dir))
    source = load_source(paths[0]) if len(paths) == 1 else load_ensemble(paths)
    if source.members:
        log(f"ensemble of {len(source.members)}: " + ", ".join(str(m.model_path) for m in source.members))
    output_dir = Path(output_dir) if output_dir is not None else source.run_dir / "tflite"
    check_output_dir(output_dir)
    data = gather_data(source, kinds, modes, representative_size, verify_size, representative_data,
                       corpus, data_dir, cache_dir, log)
    results = export_models(source, pairs, data, min_agreement, keep_float, qat_epochs, qat_target, form, log)
    return write_exports(results, output_dir)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m export.tflite",
        description=(
            "Convert a trained sercal-keras model to LiteRT (.tflite) files for Raspberry Pi / Android, "
            "each checked with LiteRT against the Keras model on held-out segments before it is written, "
            "each with a <name>.json card (labels, features, normalisation, tensor quantization, …). "
            "Builtin ops only, batch 1."),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("model", nargs="+",
                        help="a run directory (with model.keras, model_card.json, config.json) or a model.keras "
                             "with its model_card.json beside it; several (e.g. the seeds of one fold) make one "
                             "ensemble file averaging their probabilities (needs --output-dir)")
    parser.add_argument("--mode", nargs="+", default=["float32"],
                        help="float32, float16, dynamic, int8 (full integer), qat (QAT fine-tuning, then "
                             "int8), or all (= float32 float16 dynamic int8); several allowed")
    parser.add_argument("--input", default="mfcc", choices=["mfcc", "waveform", "both"],
                        help="mfcc: the model's standardised features in ((1, 64, 63) log-mel bands for a "
                             "model of the default recipe, (1, 26, 63) MFCC for the paper preset); waveform: "
                             "2 s of 16 kHz audio (1, 32000) in, features in the graph")
    parser.add_argument("--output-dir", default=None, help="where to write (default: <run dir>/tflite)")
    parser.add_argument("--representative-size", type=int, default=200,
                        help="calibration segments drawn from the run's training utterances")
    parser.add_argument("--representative-data", default=None,
                        help=".npy of raw features (n, rows, 63) or waveform (n, 32000) segments, instead "
                             "of the run's training data")
    parser.add_argument("--corpus", default=None, help="override the run config's corpus")
    parser.add_argument("--data-dir", default=None, help="override the run config's corpus folder")
    parser.add_argument("--cache-dir", default=None, help="feature cache (default: the run config's)")
    parser.add_argument("--min-agreement", type=float, default=DEFAULT_MIN_AGREEMENT,
                        help="fail (write nothing) when top-1 agreement with the Keras model on held-out "
                             "segments is below this")
    parser.add_argument("--verify-size", type=int, default=300, help="held-out segments for the check")
    parser.add_argument("--keep-float", nargs="+", default=[], metavar="LAYER",
                        help="edge-graph layers to keep float in int8/qat (selective quantization), e.g. "
                             "attention_softmax; the file is then named *_int8-mixed")
    parser.add_argument("--qat-epochs", type=int, default=3, help="QAT fine-tuning epochs (--mode qat)")
    parser.add_argument("--qat-target", default="teacher", choices=["teacher", "labels"],
                        help="QAT targets: the float model's probabilities or the true labels")
    parser.add_argument("--graph", default=None, choices=["explicit", "sliced"],
                        help="edge graph form (default: explicit where the variant is supported)")
    parser.add_argument("--json", action="store_true", help="print the written files as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress messages")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    log = (lambda message: None) if args.quiet else (lambda message: print(message, file=sys.stderr))
    try:
        written = export_tflite(
            args.model if len(args.model) > 1 else args.model[0], args.mode, args.output_dir, args.input, args.representative_size,
            args.representative_data, args.corpus, args.data_dir, args.cache_dir, args.min_agreement,
            args.keep_float, args.qat_epochs, args.qat_target, args.verify_size, args.graph, log)
    except SercalError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2 if isinstance(error, ConfigError) else 1
    if args.json:
        print(json.dumps({"written": [str(p) for p in written]}, indent=2))
    else:
        for path in written:
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
