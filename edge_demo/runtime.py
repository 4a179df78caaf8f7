"""The LiteRT side of the edge demo: sidecar card, interpreter, quantisation.

`EdgeModel` opens a `.tflite` file together with its sidecar (`<stem>.json`, the
model card `python -m export.tflite` writes), checks that the two describe the
same model (input shape and dtype, quantisation, number of classes), and turns
a waveform into class probabilities exactly as the Keras side does:

    waveform ─segment_waveform(eval hop)─▶ segments ─mfcc─▶ [speaker standardisation]
             ─▶ (x − mean) / std ─[quantize]─▶ interpreter (batch 1, per segment) ─[dequantize]─▶
             segment probabilities ─aggregate_utterance─▶ utterance probabilities

For `input_kind="waveform"` models the segments go in as they are (the MFCC is
in the graph). Models trained with per-speaker normalisation (the card's
`extra.training.feature_normalization == "speaker"`) also standardise the MFCC
by the speaker's own statistics (`EdgeModel.adapt`), as training did, or by the
training speakers' average from the card when no audio of the speaker is given. Only numpy, the standard library, the front-end file and a
LiteRT interpreter are used: `ai_edge_litert` (preferred) or `tflite_runtime`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from edge_demo.frontend_loader import load_frontend

CARD_FORMAT_PREFIX = "sercal-keras/model-card/"
INPUT_KINDS = ("mfcc", "waveform")
#: Keras' Normalization divides by max(sqrt(variance), epsilon); the same here.
STD_EPSILON = 1e-7


class EdgeError(Exception):
    """Base class of the edge demo's errors; the message is one line naming the file and the fix."""


class EdgeModelError(EdgeError):
    """The model, its sidecar, or the pair is missing, unreadable or inconsistent."""


class EdgeAudioError(EdgeError):
    """An audio file cannot be read, or holds no usable samples."""


# ----------------------------------------------------------------- interpreter


def interpreter_class() -> Tuple[type, str]:
    """The LiteRT `Interpreter` class and the name of the package that provides it.

    `ai_edge_litert` (the maintained LiteRT wheel) first; `tflite_runtime` (the
    older standalone wheel, still common on Raspberry Pi images) as fallback.

    Raises:
        EdgeModelError: neither is installed.
    """
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai_edge_litert"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter

        return Interpreter, "tflite_runtime"
    except ImportError:
        pass
    raise EdgeModelError(
        "no LiteRT interpreter installed: `pip install ai-edge-litert` (or the older "
        "`tflite-runtime`)."
    )


# ------------------------------------------------------------------------ card


@dataclass(frozen=True)
class TensorSpec:
    """Shape, dtype and affine quantisation of one model tensor (scale 0: not quantised)."""

    shape: Tuple[int, ...]
    dtype: str
    scale: float = 0.0
    zero_point: int = 0

    @property
    def quantized(self) -> bool:
        return self.scale != 0.0

    @classmethod
    def from_card(cls, details: Any, where: str) -> "TensorSpec":
        """Reads `extra.input` / `extra.output` of a sidecar.

        Accepted: `{"shape", "dtype", "scale", "zero_point"}`, or the
        quantisation as `"quantization": [scale, zero_point]` or
        `{"scale", "zero_point"}` (a list of one per-tensor value is unwrapped).
        """
        if not isinstance(details, dict) or "shape" not in details or "dtype" not in details:
            raise ValueError(f"{where} needs 'shape' and 'dtype'")
        scale, zero_point = details.get("scale"), details.get("zero_point")
        quant = details.get("quantization")
        if isinstance(quant, (list, tuple)) and len(quant) == 2:
            scale, zero_point = quant
        elif isinstance(quant, dict):
            scale = quant.get("scale", quant.get("scales", scale))
            zero_point = quant.get("zero_point", quant.get("zero_points", zero_point))
        scale, zero_point = _scalar(scale, 0.0), _scalar(zero_point, 0)
        shape = tuple(-1 if d is None else int(d) for d in details["shape"])
        return cls(shape, np.dtype(details["dtype"]).name, float(scale), int(zero_point))

    @classmethod
    def from_interpreter(cls, details: Dict[str, Any]) -> "TensorSpec":
        shape = details.get("shape_signature")
        if shape is None or len(shape) == 0:
            shape = details["shape"]
        scale, zero_point = details.get("quantization", (0.0, 0))
        return cls(tuple(int(d) for d in shape), np.dtype(details["dtype"]).name,
                   float(scale), int(zero_point))


def _scalar(value, default):
    if value is None:
        return default
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise ValueError(f"per-channel quantisation of a model input/output is not supported ({value})")
        value = value[0]
    return value


@dataclass(frozen=True)
class EdgeCard:
    """What the runtime needs from a `.tflite` sidecar (a sercal-keras model card)."""

    path: Path
    labels: Tuple[str, ...]
    feature_config: Any  # frontend.FeatureConfig
    feature_mean: np.ndarray
    feature_std: np.ndarray
    input_kind: str
    mode: str
    input: Optional[TensorSpec]
    output: Optional[TensorSpec]
    raw: Dict[str, Any]
    speaker_normalization: bool = False
    #: the training speakers' average `(mean, std)` and its weight in utterances (per-speaker models)
    speaker_prior: Optional[Tuple[np.ndarray, np.ndarray]] = None
    speaker_prior_weight: float = 10.0  # load_card sets it (the card's weight, else the front-end's)


def sidecar_path(model_path: Path) -> Path:
    """`model.tflite` → `model.json`, as `card_path_for` in `sercal_keras.model_card`."""
    return Path(model_path).with_suffix(".json")


def load_card(path: Path, frontend=None) -> EdgeCard:
    """Reads and validates a sidecar JSON.

    Raises:
        EdgeModelError: missing file, not JSON, missing fields, or values that
            cannot describe a model (std ≤ 0, mean of the wrong length, ...).
    """
    frontend = frontend or load_frontend()
    path = Path(path)
    if not path.is_file():
        raise EdgeModelError(
            f"{path}: sidecar not found. Every .tflite needs its <name>.json card next to it "
            "(written by `python -m export.tflite`); copy both files together."
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise EdgeModelError(f"{path}: not a readable JSON sidecar ({_one_line(error)}).") from error
    if not isinstance(data, dict):
        raise EdgeModelError(f"{path}: sidecar must be a JSON object.")
    fmt = data.get("format", CARD_FORMAT_PREFIX + "1")
    if not str(fmt).startswith(CARD_FORMAT_PREFIX):
        raise EdgeModelError(f"{path}: unknown card format {fmt!r}; expected {CARD_FORMAT_PREFIX}<n>.")
    extra = data.get("extra") or {}

    def bad(what: str) -> EdgeModelError:
        return EdgeModelError(f"{path}: {what}. Re-export the model with `python -m export.tflite`.")

    missing = [k for k in ("labels", "feature_config", "feature_mean", "feature_std") if k not in data]
    if missing:
        raise bad(f"sidecar lacks {missing}")
    labels = data["labels"]
    if not isinstance(labels, list) or len(labels) < 2 or not all(isinstance(x, str) for x in labels):
        raise bad(f"'labels' must be a list of at least 2 class names, got {labels!r}")
    try:
        config = frontend.FeatureConfig.from_dict(data["feature_config"])
    except (TypeError, ValueError) as error:
        raise bad(f"invalid feature_config ({_one_line(error)})") from error
    try:
        mean = np.asarray(data["feature_mean"], dtype=np.float32).reshape(-1)
        std = np.asarray(data["feature_std"], dtype=np.float32).reshape(-1)
    except (TypeError, ValueError) as error:
        raise bad(f"feature_mean/feature_std are not numbers ({_one_line(error)})") from error
    rows = config.feature_rows
    if mean.shape != (rows,) or std.shape != (rows,):
        raise bad(
            f"feature_mean/feature_std need {rows} values (one per feature row), got "
            f"{mean.size} and {std.size}"
        )
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std > 0)):
        raise bad("feature_mean/feature_std hold NaN/Inf or a std <= 0")
    input_kind = extra.get("input_kind")
    if input_kind not in INPUT_KINDS:
        raise bad(
            f"extra.input_kind must be one of {list(INPUT_KINDS)}, got {input_kind!r} "
            "(is this the training card of a .keras model rather than a .tflite sidecar?)"
        )
    try:
        spec_in = TensorSpec.from_card(extra["input"], "extra.input") if "input" in extra else None
        spec_out = TensorSpec.from_card(extra["output"], "extra.output") if "output" in extra else None
    except (TypeError, ValueError) as error:
        raise bad(f"invalid tensor details ({_one_line(error)})") from error
    training = extra.get("training") or {}
    speaker_normalization = training.get("feature_normalization", "global") == "speaker"
    if speaker_normalization and input_kind != "mfcc":
        raise bad("a per-speaker model must take MFCC input (the speaker statistics sit before the model)")
    prior, prior_weight = None, frontend.SPEAKER_PRIOR_WEIGHT
    if speaker_normalization and training.get("speaker_prior"):
        try:
            entry = training["speaker_prior"]
            prior = (np.asarray(entry["mean"], np.float32).reshape(-1, 1),
                     np.asarray(entry["std"], np.float32).reshape(-1, 1))
            prior_weight = float(entry.get("weight", prior_weight))
        except (KeyError, TypeError, ValueError) as error:
            raise bad(f"extra.training.speaker_prior is not a mean/std pair ({_one_line(error)})") from error
        if prior[0].shape != (rows, 1) or prior[1].shape != (rows, 1) or not np.all(prior[1] > 0):
            raise bad(f"extra.training.speaker_prior needs {rows} means and positive stds")
    return EdgeCard(
        speaker_normalization=speaker_normalization,
        speaker_prior=prior,
        speaker_prior_weight=prior_weight,
        path=path,
        labels=tuple(labels),
        feature_config=config,
        feature_mean=mean,
        feature_std=np.maximum(std, STD_EPSILON),
        input_kind=input_kind,
        mode=str(extra.get("mode", "")),
        input=spec_in,
        output=spec_out,
        raw=data,
    )


@contextlib.contextmanager
def _filtered_stderr():
    """Drops LiteRT's "INFO: Created TensorFlow Lite XNNPACK delegate" line; keeps the rest.

    The interpreter's C++ code writes to file descriptor 2 directly, so the
    descriptor (not `sys.stderr`) is redirected to a temporary file and its
    other lines are written back afterwards.
    """
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, ValueError, OSError):  # e.g. pytest capture without a descriptor
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), fd)
        try:
            yield
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().decode("utf-8", "replace").splitlines(True)
                    if not line.startswith(_QUIET_PREFIXES)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


_QUIET_PREFIXES = ("INFO: Created TensorFlow Lite XNNPACK delegate",)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


# ----------------------------------------------------------------------- model


class EdgeModel:
    """A `.tflite` emotion model with its sidecar, ready to classify waveforms.

    Args:
        model_path: the `.tflite` file.
        card_path: its sidecar; default `<model stem>.json` beside it.
        num_threads: interpreter threads (1 is the latency reference).

    Raises:
        EdgeModelError: missing/unreadable model or sidecar, or a sidecar that
            does not describe this model.

    Example:
    >>> model = EdgeModel("model_int8.tflite")  # doctest: +SKIP
    >>> probs, segment_probs = model.classify_waveform(waveform)  # doctest: +SKIP
    >>> model.labels[int(probs.argmax())]  # doctest: +SKIP
    'angry'
    """

    def __init__(self, model_path, card_path=None, num_threads: int = 1):
        self.frontend = load_frontend()
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise EdgeModelError(f"{self.model_path}: model file not found.")
        if num_threads is not None and int(num_threads) < 1:
            raise EdgeModelError(f"--threads must be >= 1, got {num_threads}.")
        self.num_threads = int(num_threads or 1)
        self.card = load_card(Path(card_path) if card_path else sidecar_path(self.model_path), self.frontend)
        interpreter_cls, self.backend = interpreter_class()
        try:
            with _filtered_stderr():
                self.interpreter = interpreter_cls(model_path=str(self.model_path), num_threads=self.num_threads)
        except (ValueError, RuntimeError) as error:
            raise EdgeModelError(
                f"{self.model_path}: LiteRT cannot load it ({_one_line(error)}); is it a .tflite file?"
            ) from error
        inputs = self.interpreter.get_input_details()
        outputs = self.interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise EdgeModelError(
                f"{self.model_path}: expected 1 input and 1 output tensor, found {len(inputs)} and "
                f"{len(outputs)}."
            )
        self.input_spec = TensorSpec.from_interpreter(inputs[0])
        self.output_spec = TensorSpec.from_interpreter(outputs[0])
        self._check_consistency()
        # Fixed batch of 1: one segment per invoke, the device's streaming case.
        self._input_index = inputs[0]["index"]
        self._output_index = outputs[0]["index"]
        self.segment_shape = tuple(d for d in self.input_spec.shape[1:])
        if tuple(inputs[0]["shape"]) != (1,) + self.segment_shape:
            self.interpreter.resize_tensor_input(self._input_index, [1, *self.segment_shape], strict=False)
        with _filtered_stderr():
            self.interpreter.allocate_tensors()
        self._in_dtype = np.dtype(self.input_spec.dtype)
        self._out_dtype = np.dtype(self.output_spec.dtype)
        #: `(mean, std)` of the current speaker's MFCC, for per-speaker models (see `adapt`).
        self.speaker_statistics: Optional[Tuple[np.ndarray, np.ndarray]] = None
        #: the same at each test-time speed `adapt` was given (speed → `(mean, std)`).
        self.speed_statistics: Dict[float, Tuple[np.ndarray, np.ndarray]] = {}

    # -- properties
    @property
    def labels(self) -> Tuple[str, ...]:
        return self.card.labels

    @property
    def feature_config(self):
        return self.card.feature_config

    @property
    def input_kind(self) -> str:
        return self.card.input_kind

    @property
    def per_speaker(self) -> bool:
        """Trained with per-speaker normalisation (takes the speaker's statistics; see `adapt`)."""
        return self.card.speaker_normalization

    def describe(self) -> Dict[str, Any]:
        """The model's facts, for `--json` output and benchmark reports."""
        return {
            "model": str(self.model_path),
            "card": str(self.card.path),
            "input_kind": self.input_kind,
            "mode": self.card.mode,
            "labels": list(self.labels),
            "input": {"shape": list(self.input_spec.shape), "dtype": self.input_spec.dtype,
                      "scale": self.input_spec.scale, "zero_point": self.input_spec.zero_point},
            "output": {"shape": list(self.output_spec.shape), "dtype": self.output_spec.dtype,
                       "scale": self.output_spec.scale, "zero_point": self.output_spec.zero_point},
            "interpreter": self.backend,
            "threads": self.num_threads,
            "frontend": str(self.frontend.__file__),
            "feature_normalization": "speaker" if self.card.speaker_normalization else "global",
        }

    def delegate_partitions(self) -> int:
        """How many delegate (XNNPACK) partitions the interpreter made; 0 if none.

        Counts the `DELEGATE` nodes LiteRT adds to the graph; each is one
        partition handed to the delegate, the rest runs on builtin kernels.
        """
        try:
            ops = self.interpreter._get_ops_details()  # not public API; fine for a report
        except AttributeError:
            return -1
        return sum(1 for op in ops if op.get("op_name") == "DELEGATE")

    # -- checks
    def _check_consistency(self) -> None:
        card, config = self.card, self.card.feature_config
        where = f"{self.model_path} and its sidecar {card.path}"

        def mismatch(what: str) -> EdgeModelError:
            return EdgeModelError(
                f"{where} do not match: {what}. Keep each .tflite with the .json exported with it."
            )

        got_in, got_out = self.input_spec, self.output_spec
        per_sample = got_in.shape[1:]
        if card.input_kind == "mfcc":
            expected = config.feature_shape
            if tuple(d for d in per_sample if d != 1)[:2] != expected or math.prod(per_sample) != math.prod(expected):
                raise mismatch(
                    f"model input {list(got_in.shape)} is not one MFCC segment {list(expected)} "
                    "(from the card's feature_config)"
                )
        else:
            if math.prod(per_sample) != config.segment_samples:
                raise mismatch(
                    f"model input {list(got_in.shape)} is not one waveform segment of "
                    f"{config.segment_samples} samples (from the card's feature_config)"
                )
        if got_in.dtype not in ("float32", "int8", "uint8"):
            raise mismatch(f"unsupported model input dtype {got_in.dtype}")
        if got_out.shape[-1] != len(card.labels):
            raise mismatch(f"model has {got_out.shape[-1]} outputs but the card has {len(card.labels)} labels")
        for name, spec, got in (("input", card.input, got_in), ("output", card.output, got_out)):
            if spec is None:
                continue
            if _without_batch(spec.shape) != _without_batch(got.shape):
                raise mismatch(f"{name} shape is {list(got.shape)} in the model, {list(spec.shape)} in the card")
            if spec.dtype != got.dtype:
                raise mismatch(f"{name} dtype is {got.dtype} in the model, {spec.dtype} in the card")
            if spec.quantized != got.quantized or (
                got.quantized
                and (not math.isclose(spec.scale, got.scale, rel_tol=1e-5) or spec.zero_point != got.zero_point)
            ):
                raise mismatch(
                    f"{name} quantisation is scale={got.scale:.6g} zero_point={got.zero_point} in the model, "
                    f"scale={spec.scale:.6g} zero_point={spec.zero_point} in the card"
                )

    # -- features
    def features(self, segments: np.ndarray, speed: float = 1.0) -> np.ndarray:
        """Model inputs (float32, not yet quantised) for waveform segments (n, segment_samples).

        `speed`: the test-time speed the segments were cut from (per-speaker
        models standardise by the speaker's statistics at that speed when
        `adapt` computed them, as `EmotionRecognizer` does).
        """
        segments = np.asarray(segments, dtype=np.float32)
        if self.input_kind == "waveform":
            return segments
        mfcc = self.frontend.mfcc(segments, self.feature_config)
        if self.card.speaker_normalization:
            statistics = self.speed_statistics.get(speed) if speed != 1.0 else None
            mfcc = self.frontend.standardize(mfcc, statistics or self.current_speaker_statistics())
        return (mfcc - self.card.feature_mean[:, None]) / self.card.feature_std[:, None]

    def current_speaker_statistics(self, fix: str = "--adapt when the files are one speaker's, or "
                                   "--speaker-audio with a few utterances of the speaker; EdgeModel.adapt in Python"):
        """The statistics a per-speaker model standardises with: those `adapt` set, else the card's
        training-speaker average; `EdgeModelError` naming `fix` when there are neither."""
        statistics = self.speaker_statistics if self.speaker_statistics is not None else self.card.speaker_prior
        if statistics is None:
            raise EdgeModelError(f"{self.model_path} was trained with per-speaker normalisation: give it the "
                                 f"speaker's statistics first ({fix}).")
        return statistics

    def adapt(self, waveforms: Sequence[np.ndarray], test_time_speeds: Sequence[float] = ()) -> None:
        """Sets the speaker statistics from 16 kHz mono waveforms of one speaker (per-speaker models only),
        shrunk towards the card's training-speaker average when it has one (as `EmotionRecognizer.adapt`).

        With `test_time_speeds`, also the statistics of the waveforms at each
        speed (`change_speed`), for classifying with those speeds
        (`classify_copies`).

        Raises:
            EdgeModelError: the model uses one global normalisation, no audio
                was given, or bad speeds.
        """
        if not self.card.speaker_normalization:
            raise EdgeModelError(f"{self.model_path} uses one global normalisation; it takes no speaker audio.")
        if not waveforms:
            raise EdgeModelError("adapting to a speaker needs at least one utterance of theirs.")
        speeds = _checked_speeds(self, test_time_speeds) if test_time_speeds else ()
        rate = self.feature_config.sample_rate
        by_speed = {}
        for speed in (1.0, *speeds):
            copies = waveforms if speed == 1.0 else [_change_speed(self, w, speed, rate) for w in waveforms]
            mfcc = np.concatenate([self.frontend.mfcc(self.segments(w), self.feature_config) for w in copies])
            statistics = self.frontend.speaker_statistics(mfcc)
            if self.card.speaker_prior is not None:  # a few utterances: pulled towards the training speakers
                statistics = self.frontend.shrink_statistics(statistics, self.card.speaker_prior, len(waveforms),
                                                             self.card.speaker_prior_weight)
            by_speed[speed] = statistics
        self.speaker_statistics = by_speed.pop(1.0)
        self.speed_statistics = by_speed

    def segments(self, waveform: np.ndarray) -> np.ndarray:
        """Cuts a 16 kHz mono waveform with the evaluation hop, as training's evaluation did."""
        config = self.feature_config
        return self.frontend.segment_waveform(waveform, config.segment_samples, config.hop_samples(training=False))

    # -- inference
    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """float32 features → the input tensor's dtype, by the input's scale / zero point."""
        spec = self.input_spec
        if not spec.quantized:
            return x.astype(self._in_dtype, copy=False)
        info = np.iinfo(self._in_dtype)
        q = np.round(x / spec.scale) + spec.zero_point
        return np.clip(q, info.min, info.max).astype(self._in_dtype)

    def dequantize_output(self, y: np.ndarray) -> np.ndarray:
        """The output tensor → float32 probabilities, by the output's scale / zero point."""
        spec = self.output_spec
        if not spec.quantized:
            return y.astype(np.float32, copy=False)
        return ((y.astype(np.float32) - spec.zero_point) * spec.scale).astype(np.float32)

    def predict_features(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities (n, classes) for model inputs (n, ...), one invoke per segment."""
        features = np.asarray(features, dtype=np.float32)
        out = np.empty((len(features), len(self.labels)), np.float32)
        shape = (1,) + self.segment_shape
        for i, x in enumerate(features):
            self.interpreter.set_tensor(self._input_index, self.quantize_input(x.reshape(shape)))
            self.interpreter.invoke()
            out[i] = self.dequantize_output(self.interpreter.get_tensor(self._output_index)).reshape(-1)
        return out

    def classify_segments(self, segments: np.ndarray, speed: float = 1.0) -> np.ndarray:
        """Segment probabilities (n, classes) for waveform segments (n, segment_samples) (`speed`: see `features`)."""
        return self.predict_features(self.features(segments, speed))

    def classify_waveform(self, waveform: np.ndarray,
                          test_time_speeds: Sequence[float] = ()) -> Tuple[np.ndarray, np.ndarray]:
        """(utterance probabilities (classes,), segment probabilities (n, classes)); see `classify_copies`."""
        return classify_copies(self, waveform, test_time_speeds)

    def time_invoke(self, repeats: int = 200, warmup: int = 20, seed: int = 0, with_cpu: bool = False):
        """Seconds per invoke (set_tensor + invoke + get_tensor) on random inputs, warm-up excluded.

        Returns the wall-clock times (repeats,); with `with_cpu`, a pair (wall, CPU
        time of this thread): with one interpreter thread the CPU time is the work
        itself, without the waiting a busy machine adds.
        """
        rng = np.random.default_rng(seed)
        shape = (1,) + self.segment_shape
        if self.input_kind == "waveform":
            x = rng.uniform(-0.3, 0.3, shape)
        else:
            x = rng.normal(size=shape)
        q = self.quantize_input(x.astype(np.float32))
        wall, cpu = np.empty(repeats), np.empty(repeats)
        for i in range(warmup + repeats):
            start, cpu_start = time.perf_counter(), time.thread_time()
            self.interpreter.set_tensor(self._input_index, q)
            self.interpreter.invoke()
            self.interpreter.get_tensor(self._output_index)
            if i >= warmup:
                wall[i - warmup] = time.perf_counter() - start
                cpu[i - warmup] = time.thread_time() - cpu_start
        return (wall, cpu) if with_cpu else wall


def classify_copies(model, waveform: np.ndarray,
                    test_time_speeds: Sequence[float] = ()) -> Tuple[np.ndarray, np.ndarray]:
    """A model's (or ensemble's) utterance and segment probabilities for a 16 kHz mono waveform.

    With `test_time_speeds` (e.g. `(0.9, 1.1)`, the default recipe's training
    speeds), the waveform is also classified sped up and slowed down
    (the front-end's `change_speed`, the function that made the training
    copies) and the utterance probabilities are the
    mean over the segments of every copy, as `EmotionRecognizer(...,
    test_time_speeds=...)` computes them (research log #42/#48: +0.9 to +1.6 pp UA); the
    segment probabilities returned stay the recorded audio's. A per-speaker
    model standardises each copy by the speaker's statistics at its speed
    when `adapt(..., test_time_speeds=...)` computed them, else by the ones it
    has (the recorded audio's, or the card's training-speaker average), as
    `EmotionRecognizer` does.

    Raises:
        EdgeModelError: bad speeds.
    """
    segment_probs = model.classify_segments(model.segments(waveform))
    if not test_time_speeds:
        return model.frontend.aggregate_utterance(segment_probs), segment_probs
    rate = model.feature_config.sample_rate
    copies = [segment_probs] + [model.classify_segments(model.segments(_change_speed(model, waveform, speed, rate)),
                                                        speed)
                                for speed in _checked_speeds(model, test_time_speeds)]
    return model.frontend.aggregate_utterance(np.concatenate(copies)), segment_probs


def _checked_speeds(model, test_time_speeds: Sequence[float]) -> Tuple[float, ...]:
    try:
        return tuple(model.frontend.check_test_time_speeds(test_time_speeds))
    except ValueError as error:
        raise EdgeModelError(str(error)) from None


def _change_speed(model, waveform: np.ndarray, speed: float, rate: int) -> np.ndarray:
    try:
        return model.frontend.change_speed(waveform, speed, rate)
    except ValueError as error:  # no soxr and a factor the numpy resampler cannot do
        raise EdgeModelError(str(error)) from None


def _without_batch(shape: Sequence[int]) -> Tuple[int, ...]:
    return tuple(int(d) for d in shape[1:])
