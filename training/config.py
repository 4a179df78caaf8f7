"""The training configuration: one dataclass, read from flags and/or a JSON/YAML file.

Precedence: dataclass defaults (the paper recipe, DESIGN.md §1) < the config file
(`--config paper.yaml`) < flags given on the command line. Every value is
validated before any work starts; an invalid one raises `ConfigError` whose
message names the flag (and the config file when the value came from it), and
the CLI turns that into exit code 2 with a one-line message.

The module imports nothing heavy, so `--help` and flag errors are instant.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple


#: Corpora the registry knows (checked again by `load_corpus`).
CORPORA = ("synthetic", "emodb", "ravdess", "iemocap", "folder", "csv")
#: CLI protocol names → the names `sercal_keras.data.splits.make_folds` takes.
PROTOCOLS = {"loso": "loso", "speaker-folds": "speaker_folds", "session": "session", "random": "random"}
VARIANT_NAMES = ("fa_ca", "mhsa", "fa", "ca", "head_fusion")  # == sercal_keras.models.VARIANTS
LR_SCHEDULES = ("step", "cosine", "constant")
FEATURE_NORMALIZATIONS = ("global", "speaker")
CLASS_WEIGHTINGS = ("none", "balanced")
#: Fields that say where and how loudly to run, not what to train: a run
#: directory may be continued with different values of these.
RUNTIME_FIELDS = ("output_dir", "overwrite", "verbosity", "cache_dir", "folds", "seeds", "json_output")


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a training run (or a cross-validation).

    The defaults are the recommended recipe on the embedded synthetic corpus:
    the paper preset (DESIGN.md §1: `fa_ca`, Adam lr 1e-3, weight decay 1e-6,
    batch 32, 50 epochs, lr ÷10 every 10 epochs) plus speed perturbation of
    the training audio (0.9× and 1.1× copies), the one recipe change with
    paired evidence (`benchmarks/results/experiments.md`). `paper_preset()`
    (`configs/paper.yaml`) is the paper's recipe itself.

    Args:
        corpus: registry name (`synthetic`, `emodb`, `ravdess`, `iemocap`, `folder`, `csv`).
        data_dir: the corpus folder (not needed for `synthetic`).
        corpus_options: extra keyword arguments for `load_corpus`.
        protocol: `loso`, `speaker-folds`, `session` or `random`; None = the
            corpus' speaker-independent default (`session` for IEMOCAP,
            `speaker-folds` otherwise).
        folds: fold indices (0-based) or names to run; `["all"]` = every fold;
            None = the first fold only.
        variant: model variant (`fa_ca` is the paper preset).
        epochs: maximum epochs per run.
        batch_size: batch size **per replica**; the global batch is this times
            the number of replicas (GPUs, logical devices or workers).
        learning_rate: initial Adam learning rate.
        weight_decay: Adam weight decay (Keras' decoupled form).
        lr_schedule: `step` (× `lr_step_factor` every `lr_step_epochs`),
            `cosine` (per epoch, from `learning_rate` towards 0), `constant`.
        lr_step_epochs: epochs between steps of the `step` schedule.
        lr_step_factor: factor of each step.
        ema_momentum: keep an exponential moving average of the weights with
            this momentum (Keras' `use_ema`; e.g. 0.99 ≈ the last 100 steps)
            and select, save and export the averaged weights; 0 = off.
        seeds: training seeds; each fold is trained once per seed.
        dropout: dropout before the classifier.
        time_masks: SpecAugment time masks per training segment (0 = off).
        time_mask_width: maximum width of a time mask, in frames (63 per 2 s segment).
        freq_masks: SpecAugment masks over feature rows per training segment (0 = off).
        freq_mask_width: maximum width of a mask over feature rows (of 64 log-mel bands by default).
        mixup_alpha: mixup of training segments within a batch, λ ~ Beta(α, α)
            (0 = off); the labels become soft and the loss categorical.
        label_smoothing: cross-entropy label smoothing (0 = off).
        class_weighting: `none`, or `balanced`: each training segment's loss
            weighted by n / (k · n_c), n_c the training segments of its
            class (k classes present), so every emotion weighs the same in
            the loss as it does in UA (`class_weight` of `Model.fit`).
        speed_perturbation: extra speed factors for the training audio (e.g.
            `[0.9, 1.1]`): each training utterance is also resampled at each
            factor (tempo and pitch, as `sox speed`) and cut into training
            segments; validation and test audio are never perturbed. [] = off
            (the paper preset).
        noise_snr_db: SNRs in dB (e.g. `[20]`): each training utterance is
            also used with white noise added at each SNR (`add_noise`; on the
            audio as recorded); validation and test audio never. [] = off.
        feature_normalization: `global` (the paper's: one mean and variance
            per coefficient, fitted on the training segments, inside the
            model) or `speaker` (research option: each speaker's MFCC first
            standardised by that speaker's own statistics, test speakers'
            from their unlabelled test audio; `standardize_by_speaker`).
        validation_fraction: share of the training *speakers* held out for
            validation UA (curves, early stopping, and, with
            `average_from_epoch` 0, the choice of the best epoch). 0, the
            default, trains on every training speaker (research log #52:
            +2.7 pp [+0.3, +5.1] UA over 30 paired EmoDB runs, with the
            weight average instead of a pick).
        patience: early stopping after this many epochs without a better
            validation UA; 0 = off.
        mixed_precision: train with the `mixed_float16` policy (GPUs).
        features: `FeatureConfig` fields to override (e.g. `{"train_hop_seconds": 0.5}`).
            The default, `{"representation": "log_mel"}`, feeds 64 log-mel bands
            instead of the paper's 26 MFCCs (research log #93–#97: +4.4 pp UA
            [+2.8, +5.9] over 42 paired EmoDB and RAVDESS runs); `{}`, as in
            `configs/paper.yaml`, is the paper's front-end. A config file's
            `features` replaces the whole mapping; flags add to it.
        model_options: `build_model` settings beyond the variant (`MODEL_OPTIONS`,
            e.g. `{"calibration_context": 5}` or `{"focus_source": "energy"}`);
            empty = the variant's defaults (the paper preset's forms).
        output_dir: where the run directory goes; None = `runs/<corpus>_<variant>_<time>`.
        average_from_epoch: N >= 1: the saved model is the element-wise mean
            of the weights of epochs N..last (1-based; stochastic weight
            averaging, BatchNorm statistics averaged too, `weight_averaging.py`)
            instead of one epoch; validation UA, if any, is still computed
            (history, early stopping) but selects nothing. The default 11 is
            the first lr drop of the default schedule; a window that would
            open after the last epoch keeps the last epoch alone. 0 = off:
            the best validation epoch (the last one without validation).
        teachers: finished runs (or folders of runs) of the same corpus,
            protocol and features whose class probabilities the run is also
            trained on (knowledge distillation, `training.distillation`): each
            fold uses the teachers tested on that fold. [] = off.
        distillation_weight: share of the teachers' softened probabilities in
            the training targets, in (0, 1] (the rest is the one-hot label).
        distillation_temperature: temperature T > 0 of the teachers'
            probabilities (`softmax(log p / T)`); > 1 flattens them.
        keep_epoch_weights: also write every epoch's weights (as validation saw
            them) to `epoch_weights/epochNN.weights.h5` in the run directory,
            ~1 MB each, for offline studies of model-selection rules
            (`benchmarks.selection_rules`). Changes nothing in training.
        overwrite: replace an existing run directory.
        cache_dir: cache folder for generated audio and features; None = the
            library default (`$SERCAL_CACHE_DIR` or `~/.cache/sercal_keras`).
        verbosity: 0 quiet, 1 one line per epoch and per run, 2 progress bars.
        json_output: print the summary as JSON on stdout at the end.
    """

    corpus: str = "synthetic"
    data_dir: Optional[str] = None
    corpus_options: Dict[str, Any] = dataclasses.field(default_factory=dict)
    protocol: Optional[str] = None
    folds: Optional[List[str]] = None
    variant: str = "fa_ca"
    epochs: int = 50
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 1e-6
    lr_schedule: str = "step"
    lr_step_epochs: int = 10
    lr_step_factor: float = 0.1
    ema_momentum: float = 0.0
    seeds: List[int] = dataclasses.field(default_factory=lambda: [0])
    dropout: float = 0.0
    time_masks: int = 0
    time_mask_width: int = 0
    freq_masks: int = 0
    freq_mask_width: int = 0
    mixup_alpha: float = 0.0
    label_smoothing: float = 0.0
    class_weighting: str = "none"
    speed_perturbation: List[float] = dataclasses.field(default_factory=lambda: [0.9, 1.1])
    noise_snr_db: List[float] = dataclasses.field(default_factory=list)
    feature_normalization: str = "global"
    validation_fraction: float = 0.0
    patience: int = 0
    mixed_precision: bool = False
    features: Dict[str, Any] = dataclasses.field(default_factory=lambda: {"representation": "log_mel"})
    model_options: Dict[str, Any] = dataclasses.field(default_factory=dict)
    output_dir: Optional[str] = None
    average_from_epoch: int = 11
    teachers: List[str] = dataclasses.field(default_factory=list)
    distillation_weight: float = 0.5
    distillation_temperature: float = 2.0
    keep_epoch_weights: bool = False
    overwrite: bool = False
    cache_dir: Optional[str] = None
    verbosity: int = 1
    json_output: bool = False

    # ------------------------------------------------------------------ helpers
    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<dict>") -> "TrainConfig":
        """Builds and validates a config from a mapping (config-file keys)."""
        config = cls()
        config.update(data, source=source)
        config.validate()
        return config

    def update(self, data: Mapping[str, Any], source: str = "<dict>") -> None:
        """Sets fields from a mapping; unknown keys and bad types raise `ConfigError`."""
        for raw_key, value in data.items():
            key = ALIASES.get(str(raw_key).replace("-", "_"), str(raw_key).replace("-", "_"))
            if key not in FIELD_NAMES:
                raise _error(
                    f"{source}: unknown key {raw_key!r}; known keys: {', '.join(sorted(FIELD_NAMES))}"
                )
            setattr(self, key, _coerce(key, value, source))

    @classmethod
    def from_saved(cls, data: Mapping[str, Any], source: str = "<dict>") -> "TrainConfig":
        """A config saved by an earlier version (a run's `config.json`).

        Fields it predates were options that did not exist yet, so they take
        their paper-preset values (off), not today's defaults.
        """
        return cls.from_dict(with_predated_fields(data), source=source)

    def identity(self) -> Dict[str, Any]:
        """The fields that define what is trained (everything but `RUNTIME_FIELDS`)."""
        return {k: v for k, v in self.to_dict().items() if k not in RUNTIME_FIELDS}

    @property
    def protocol_name(self) -> str:
        """The protocol in CLI spelling, with the corpus default filled in."""
        if self.protocol:
            return self.protocol
        return "session" if self.corpus == "iemocap" else "speaker-folds"

    def feature_config(self):
        """The `FeatureConfig` of this run (defaults + `features` overrides)."""
        from sercal_keras.audio.frontend import FeatureConfig

        return FeatureConfig(**self.features)

    @property
    def soft_labels(self) -> bool:
        """Whether training uses one-hot/soft labels (mixup, label smoothing or distillation)."""
        return self.mixup_alpha > 0 or self.label_smoothing > 0 or bool(self.teachers)

    def validate(self) -> "TrainConfig":
        """Checks every value; raises `ConfigError` naming the flag at fault."""
        def fail(field: str, message: str):
            raise _error(f"{flag(field)} {message}")

        if self.corpus not in CORPORA:
            fail("corpus", f"must be one of {', '.join(CORPORA)}. Received: {self.corpus!r}")
        if self.corpus != "synthetic":
            if not self.data_dir:
                if self.corpus in ("folder", "csv") or not os.environ.get("SERCAL_DATA_DIR"):
                    fail("data_dir", f"is required for corpus {self.corpus!r} (the folder holding its audio"
                         f"{'; or set $SERCAL_DATA_DIR' if self.corpus not in ('folder', 'csv') else ''})")
            elif self.corpus == "csv":
                if not Path(self.data_dir).expanduser().is_file():
                    fail("data_dir", f"must be the CSV manifest file for corpus 'csv'; not a file: {self.data_dir}")
            elif not Path(self.data_dir).expanduser().is_dir():
                fail("data_dir", f"is not a directory: {self.data_dir}")
        if self.protocol is not None and self.protocol not in PROTOCOLS:
            fail("protocol", f"must be one of {', '.join(PROTOCOLS)}. Received: {self.protocol!r}")
        if self.folds is not None:
            if not self.folds or any(not str(f).strip() for f in self.folds):
                fail("folds", f"must name fold indices or names, or 'all'. Received: {self.folds!r}")
            if "all" in self.folds and len(self.folds) > 1:
                fail("folds", f"'all' cannot be combined with other folds. Received: {self.folds!r}")
        if self.variant not in VARIANT_NAMES:
            fail("variant", f"must be one of {', '.join(VARIANT_NAMES)}. Received: {self.variant!r}")
        for field in ("epochs", "batch_size", "lr_step_epochs"):
            if getattr(self, field) < 1:
                fail(field, f"must be a positive integer. Received: {getattr(self, field)}")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            fail("learning_rate", f"must be a positive number. Received: {self.learning_rate}")
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            fail("weight_decay", f"must be >= 0. Received: {self.weight_decay}")
        if self.lr_schedule not in LR_SCHEDULES:
            fail("lr_schedule", f"must be one of {', '.join(LR_SCHEDULES)}. Received: {self.lr_schedule!r}")
        if not 0 < self.lr_step_factor <= 1:
            fail("lr_step_factor", f"must lie in (0, 1]. Received: {self.lr_step_factor}")
        if not 0 <= self.ema_momentum < 1:
            fail("ema_momentum", f"must lie in [0, 1) (0 = off; e.g. 0.99). Received: {self.ema_momentum}")
        if not self.seeds:
            fail("seeds", "must list at least one seed")
        if any(s < 0 for s in self.seeds) or len(set(self.seeds)) != len(self.seeds):
            fail("seeds", f"must be distinct non-negative integers. Received: {self.seeds}")
        if not 0 <= self.dropout < 1:
            fail("dropout", f"must lie in [0, 1). Received: {self.dropout}")
        for count, width, axis in (("time_masks", "time_mask_width", "frames"),
                                   ("freq_masks", "freq_mask_width", "coefficients")):
            for field in (count, width):
                if getattr(self, field) < 0:
                    fail(field, f"must be >= 0 (0 = off). Received: {getattr(self, field)}")
            if bool(getattr(self, count)) != bool(getattr(self, width)):
                fail(count if not getattr(self, count) else width,
                     f"must be > 0 when {flag(count if getattr(self, count) else width)} is > 0 "
                     f"(SpecAugment needs a number of masks and a maximum width in {axis})")
        if not (self.mixup_alpha >= 0 and math.isfinite(self.mixup_alpha)):
            fail("mixup_alpha", f"must be >= 0 (0 = off). Received: {self.mixup_alpha}")
        if not 0 <= self.label_smoothing < 1:
            fail("label_smoothing", f"must lie in [0, 1). Received: {self.label_smoothing}")
        # (imports the package, as feature_config() below does)
        from sercal_keras.audio.speed_perturbation import SPEED_RANGE

        for factor in self.speed_perturbation:
            if not SPEED_RANGE[0] <= factor <= SPEED_RANGE[1] or factor == 1.0:
                fail("speed_perturbation", f"factors must lie in {list(SPEED_RANGE)} and not be 1 (the audio itself "
                     f"is always used). Received: {self.speed_perturbation}")
        if len(set(self.speed_perturbation)) != len(self.speed_perturbation):
            fail("speed_perturbation", f"factors must be distinct. Received: {self.speed_perturbation}")
        from sercal_keras.audio.noise import SNR_RANGE_DB

        if any(not SNR_RANGE_DB[0] <= snr <= SNR_RANGE_DB[1] for snr in self.noise_snr_db) or (
                len(set(self.noise_snr_db)) != len(self.noise_snr_db)):
            fail("noise_snr_db", f"SNRs must be distinct and lie in {list(SNR_RANGE_DB)} dB. "
                 f"Received: {self.noise_snr_db}")
        if self.class_weighting not in CLASS_WEIGHTINGS:
            fail("class_weighting",
                 f"must be one of {', '.join(CLASS_WEIGHTINGS)}. Received: {self.class_weighting!r}")
        if self.feature_normalization not in FEATURE_NORMALIZATIONS:
            fail("feature_normalization", f"must be one of {', '.join(FEATURE_NORMALIZATIONS)}. "
                 f"Received: {self.feature_normalization!r}")
        if not 0 <= self.validation_fraction < 1:
            fail("validation_fraction", f"must lie in [0, 1). Received: {self.validation_fraction}")
        if self.average_from_epoch < 0:
            fail("average_from_epoch", f"must be >= 0 (0 = off: keep the best validation epoch, or the last). "
                 f"Received: {self.average_from_epoch}")
        if not 0 < self.distillation_weight <= 1:
            fail("distillation_weight", f"must lie in (0, 1] (the teachers' share of the targets). "
                 f"Received: {self.distillation_weight}")
        if not self.distillation_temperature > 0:
            fail("distillation_temperature", f"must be > 0 (1 = the teachers' probabilities as they are). "
                 f"Received: {self.distillation_temperature}")
        if self.patience < 0:
            fail("patience", f"must be >= 0 (0 = no early stopping). Received: {self.patience}")
        if self.patience and not self.validation_fraction:
            fail("patience", "needs a validation split: set --validation-fraction > 0 or --patience 0")
        if self.verbosity not in (0, 1, 2):
            fail("verbosity", f"must be 0, 1 or 2. Received: {self.verbosity}")
        from sercal_keras.audio.frontend import FeatureConfig

        feature_fields = [f.name for f in dataclasses.fields(FeatureConfig)]
        unknown = sorted(set(self.features) - set(feature_fields))
        if unknown:
            fail("features", f"has unknown keys {unknown}; known: {', '.join(feature_fields)}")
        try:
            feature_config = self.feature_config()
        except (TypeError, ValueError) as error:
            fail("features", f"is not a valid FeatureConfig: {error}")
        if feature_config.representation == "log_mel" and "n_mfcc" in self.features:
            # log-mel bands are the default: n_mfcc alone would be ignored without a word
            fail("features", "sets n_mfcc, which log-mel bands (the default representation) do not use; "
                 "add representation=mfcc for MFCCs (e.g. --feature representation=mfcc --feature n_mfcc=40)")
        unknown = sorted(set(self.model_options) - set(MODEL_OPTIONS))
        if unknown:
            fail("model_options", f"has unknown keys {unknown}; known: {', '.join(MODEL_OPTIONS)}")
        n_coef, n_frames = feature_config.feature_shape
        if self.time_mask_width > n_frames:
            fail("time_mask_width", f"must be <= the {n_frames} frames of a segment. Received: {self.time_mask_width}")
        if self.freq_mask_width > n_coef:
            fail("freq_mask_width", f"must be <= the {n_coef} feature rows ({feature_config.feature_name}). "
                 f"Received: {self.freq_mask_width}")
        if self.output_dir is not None and Path(self.output_dir).exists() and not Path(self.output_dir).is_dir():
            fail("output_dir", f"exists and is not a directory: {self.output_dir}")
        return self


#: The paper preset as a config file (DESIGN.md §1): the defaults without speed perturbation.
PAPER_PRESET = Path(__file__).resolve().parent / "configs" / "paper.yaml"


def paper_preset() -> TrainConfig:
    """The paper's recipe (`configs/paper.yaml`): the defaults without speed perturbation.

    Example:
    >>> paper_preset().speed_perturbation, TrainConfig().speed_perturbation
    ([], [0.9, 1.1])
    """
    config = TrainConfig()
    config.update(load_config_file(PAPER_PRESET), source=str(PAPER_PRESET))
    return config.validate()


def with_predated_fields(saved: Mapping[str, Any]) -> Dict[str, Any]:
    """Saved config values (a run's `config.json`, a results file's recipe) with every
    field they predate at its paper-preset value: an option that did not exist was off."""
    return {**paper_preset().to_dict(), **saved}


def _error(message: str):
    """A `sercal_keras.errors.ConfigError`, imported late (the package imports Keras)."""
    from sercal_keras.errors import ConfigError

    return ConfigError(message)


# ---------------------------------------------------------------- field metadata
FIELD_NAMES = tuple(f.name for f in dataclasses.fields(TrainConfig))
ALIASES = {"lr": "learning_rate", "seed": "seeds", "fold": "folds", "quiet": "verbosity"}
FLAGS = {
    "verbosity": "--quiet/--verbose",
    "json_output": "--json",
    "features": "features (config file, --feature or --train-hop-seconds)",
    "corpus_options": "--corpus-option",
    "model_options": "--model-option",
    "teachers": "--teacher",
}
#: `build_model` keyword arguments a config may set through `model_options`.
MODEL_OPTIONS = ("num_heads", "head_dim", "attention_dropout", "focus_form", "focus_source",
                 "focus_prior_init", "calibration_form", "calibration_context", "batch_norm_momentum",
                 "attention_blocks")


def flag(field: str) -> str:
    """The command-line flag of a field (`batch_size` → `--batch-size`)."""
    return FLAGS.get(field, "--" + field.replace("_", "-"))


def _split_list(value) -> List[str]:
    if isinstance(value, (list, tuple)):
        items = []
        for v in value:
            items.extend(_split_list(v))
        return items
    return [part for part in str(value).replace(",", " ").split() if part]


def _coerce(key: str, value: Any, source: str) -> Any:
    """Converts a config-file or flag value to the field's type, or raises `ConfigError`."""
    def bad(kind: str):
        return _error(f"{flag(key)} must be {kind}. Received: {value!r} (from {source})")

    if key in ("epochs", "batch_size", "lr_step_epochs", "patience", "verbosity", "time_masks", "time_mask_width",
               "freq_masks", "freq_mask_width", "average_from_epoch"):
        if isinstance(value, bool):
            raise bad("an integer")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise bad("an integer") from None
        if not number.is_integer():
            raise bad("an integer")
        return int(number)
    if key in ("learning_rate", "weight_decay", "lr_step_factor", "ema_momentum", "dropout", "validation_fraction",
               "mixup_alpha", "label_smoothing", "distillation_weight", "distillation_temperature"):
        if isinstance(value, bool):
            raise bad("a number")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise bad("a number") from None
    if key in ("mixed_precision", "overwrite", "json_output", "keep_epoch_weights"):
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "yes", "1", "on"):
            return True
        if str(value).lower() in ("false", "no", "0", "off"):
            return False
        raise bad("true or false")
    if key in ("speed_perturbation", "noise_snr_db"):
        try:
            return [float(s) for s in _split_list(value)]
        except ValueError:
            raise bad("a list of numbers (e.g. 0.9,1.1)") from None
    if key == "teachers":
        if value is None:
            return []
        if isinstance(value, (list, tuple)):  # a config file's list: one path per item, spaces allowed
            return [str(v) for v in value]
        return [part.strip() for part in str(value).split(",") if part.strip()]
    if key == "seeds":
        items = _split_list(value)
        try:
            return [int(s) for s in items]
        except ValueError:
            raise bad("a list of integers (e.g. 0,1,2)") from None
    if key == "folds":
        if value is None:
            return None
        items = _split_list(value)
        return ["all"] if [i.lower() for i in items] == ["all"] else items
    if key in ("corpus_options", "features", "model_options"):
        if isinstance(value, str):  # `--set features={train_hop_seconds: 0.5}` (YAML or JSON)
            import yaml

            try:
                value = yaml.safe_load(value)
            except Exception:
                raise bad("a mapping") from None
        if not isinstance(value, Mapping):
            raise bad("a mapping")
        return dict(value)
    if key in ("data_dir", "output_dir", "protocol", "cache_dir"):
        return None if value is None else str(value)
    if key in ("corpus", "variant", "lr_schedule", "feature_normalization", "class_weighting"):
        if value is None:
            raise bad("a string")
        return str(value)
    return value


def load_config_file(path) -> Dict[str, Any]:
    """Reads a JSON or YAML config file into a dict (keys not yet checked)."""
    path = Path(path)
    if not path.is_file():
        raise _error(f"--config file not found: {path}")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except ValueError as error:  # json.JSONDecodeError and yaml.YAMLError
        raise _error(f"--config {path} is not valid {path.suffix[1:].upper() or 'YAML'}: {error}") from None
    except Exception as error:  # yaml.YAMLError is no ValueError
        raise _error(f"--config {path} is not valid YAML: {error}".splitlines()[0]) from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise _error(f"--config {path} must hold a mapping of keys to values, not {type(data).__name__}")
    return dict(data)


# ------------------------------------------------------------------- the parser
class OneLineErrorParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr and exit code 2."""

    def error(self, message: str):  # noqa: D401  (argparse API)
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


_DESCRIPTION = """\
Train the sercal-keras model (CNN + multi-head self-attention with Focus- and
Calibration-Attention) on MFCC segments, under tf.distribute (all GPUs, the CPU
when none, several workers when TF_CONFIG names them).

With no arguments: the paper preset (fa_ca, 50 epochs, Adam 1e-3, step lr) plus 0.9x/1.1x
speed copies of the training audio, on the embedded synthetic corpus, first speaker fold,
into runs/synthetic_fa_ca_<time>/. The paper's recipe alone: --config training/configs/paper.yaml.
"""

_EPILOG = """\
examples:
  python -m training.fit
  python -m training.fit --corpus emodb --data-dir ../shared/data/emodb \\
      --protocol speaker-folds --folds all --output-dir runs/emodb_fa_ca_seed0
  python -m training.fit --config training/configs/paper.yaml --seeds 0,1,2 --epochs 30
  python -m training.fit --output-dir runs/x     # again after a crash: resumes

A run directory holds model.keras (best epoch on validation UA), model_card.json,
metrics.json (test fold: WA, UA, macro-F1, per-class recall, confusion; segment and
utterance level), history.csv, confusion.png, training_curves.png, config.json,
versions.json and TensorBoard logs/. Several folds/seeds give one such directory
each (<fold>_seed<k>/) plus summary.json and summary.md (mean ± std).
Re-running the same command skips finished runs and resumes an interrupted one
from its last epoch; --overwrite starts over.
"""


def build_parser() -> argparse.ArgumentParser:
    """The `python -m training.fit` argument parser (every default is SUPPRESS,
    so that only flags actually given override the config file)."""
    d = TrainConfig()
    p = OneLineErrorParser(
        prog="python -m training.fit",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        argument_default=argparse.SUPPRESS,
    )
    p.add_argument("--config", metavar="FILE", help="JSON or YAML file of settings (keys as the flags, "
                   "e.g. batch_size: 32); flags given override it. See training/configs/paper.yaml.")
    data = p.add_argument_group("data")
    data.add_argument("--corpus", choices=CORPORA, help=f"corpus to train on (default: {d.corpus})")
    data.add_argument("--data-dir", metavar="DIR", help="the corpus folder (not needed for synthetic)")
    data.add_argument("--corpus-option", metavar="KEY=VALUE", action="append", dest="corpus_option",
                      help="extra option for the corpus reader, repeatable (e.g. subset=improvised)")
    data.add_argument("--protocol", choices=tuple(PROTOCOLS),
                      help="split protocol (default: session for iemocap, speaker-folds otherwise; "
                      "random is speaker-dependent and labelled so)")
    data.add_argument("--folds", "--fold", metavar="FOLDS", dest="folds",
                      help="fold indices (0-based) or names, comma-separated, or 'all' for "
                      "cross-validation (default: the first fold)")
    data.add_argument("--validation-fraction", type=str, metavar="F",
                      help=f"share of training speakers held out for validation UA (curves, --patience; picks the "
                      f"best epoch when --average-from-epoch is 0) (default: {d.validation_fraction:g}: every "
                      "training speaker trains)")
    data.add_argument("--cache-dir", metavar="DIR", help="cache for generated audio and features "
                      "(default: $SERCAL_CACHE_DIR or ~/.cache/sercal_keras)")

    model = p.add_argument_group("model and recipe")
    model.add_argument("--variant", choices=VARIANT_NAMES, help=f"model variant (default: {d.variant}, the paper preset)")
    model.add_argument("--model-option", metavar="KEY=VALUE", action="append", dest="model_option",
                       help="build_model setting beyond the variant, repeatable: " + ", ".join(MODEL_OPTIONS)
                       + " (e.g. calibration_context=5, focus_source=energy; default: none)")
    model.add_argument("--dropout", metavar="P", help=f"dropout before the classifier (default: {d.dropout})")
    model.add_argument("--epochs", metavar="N", help=f"maximum epochs (default: {d.epochs})")
    model.add_argument("--time-masks", metavar="N", help="SpecAugment time masks per training segment (default: 0 = off)")
    model.add_argument("--time-mask-width", metavar="FRAMES",
                       help="maximum width of a time mask in frames, of 63 per 2 s segment (default: 0)")
    model.add_argument("--freq-masks", metavar="N",
                       help="SpecAugment masks over feature rows per training segment (default: 0 = off)")
    model.add_argument("--freq-mask-width", metavar="C", help="maximum width of a mask over feature rows (default: 0)")
    model.add_argument("--mixup-alpha", metavar="A",
                       help="mixup of training segments, lambda ~ Beta(A, A) (default: 0 = off)")
    model.add_argument("--label-smoothing", metavar="E", help="cross-entropy label smoothing (default: 0 = off)")
    model.add_argument("--class-weighting", choices=CLASS_WEIGHTINGS,
                       help="balanced: weight each segment's loss by the inverse frequency of its class "
                            f"(default: {d.class_weighting})")
    model.add_argument("--speed-perturbation", metavar="F,F",
                       help="extra speed factors for the training audio, e.g. 0.9,1.1: each training utterance "
                       "is also used resampled at each factor (default: 0.9,1.1; '' = off, as in "
                       "configs/paper.yaml)")
    model.add_argument("--noise-snr-db", metavar="DB,DB",
                       help="SNRs of noisy copies of the training audio, e.g. 20: each training utterance is also "
                       "used with white noise at each SNR (default: '' = off)")
    model.add_argument("--feature-normalization", choices=FEATURE_NORMALIZATIONS,
                       help="global: one feature mean/variance from the training data (default, the paper's); "
                       "speaker: each speaker standardised by their own statistics first (research option)")
    model.add_argument("--train-hop-seconds", metavar="S",
                       help="hop between training segments in seconds (default: 1.0; sets features.train_hop_seconds)")
    model.add_argument("--feature", metavar="KEY=VALUE", action="append", dest="feature_option",
                       help="FeatureConfig setting, repeatable, e.g. --feature n_mels=40 for 40 log-mel bands, "
                       "--feature representation=mfcc for the paper's 26 MFCCs (default: representation=log_mel, "
                       "64 bands)")
    model.add_argument("--batch-size", metavar="N",
                       help=f"batch size per replica; global = N x replicas (default: {d.batch_size})")
    model.add_argument("--learning-rate", "--lr", metavar="LR", dest="learning_rate",
                       help=f"initial Adam learning rate (default: {d.learning_rate:g})")
    model.add_argument("--weight-decay", metavar="WD", help=f"Adam weight decay (default: {d.weight_decay:g})")
    model.add_argument("--lr-schedule", choices=LR_SCHEDULES,
                       help=f"learning-rate schedule (default: {d.lr_schedule}: x{d.lr_step_factor:g} "
                       f"every {d.lr_step_epochs} epochs)")
    model.add_argument("--lr-step-epochs", metavar="N", help=f"epochs per step (default: {d.lr_step_epochs})")
    model.add_argument("--lr-step-factor", metavar="F", help=f"factor per step (default: {d.lr_step_factor:g})")
    model.add_argument("--ema-momentum", metavar="M",
                       help="select and save an exponential moving average of the weights with momentum M, "
                       "e.g. 0.99 (default: 0 = off)")
    model.add_argument("--average-from-epoch", metavar="N",
                       help="save the mean of the weights of epochs N..last (weight averaging; N after the last "
                       f"epoch: the last epoch; 0 = off: the best validation epoch, or the last) (default: "
                       f"{d.average_from_epoch}, the first lr drop of the default schedule)")
    model.add_argument("--patience", metavar="N",
                       help="stop after N epochs without a better validation UA (default: 0 = off)")
    model.add_argument("--seeds", "--seed", metavar="SEEDS", dest="seeds",
                       help="training seed(s), comma-separated; each fold runs once per seed (default: 0)")
    model.add_argument("--mixed-precision", action="store_true",
                       help="mixed_float16 training (for GPUs; slower on CPU)")

    model.add_argument("--teacher", metavar="RUNS", action="append", dest="teachers",
                       help="distil: also train on the class probabilities of these finished runs (a run or a "
                       "folder of runs, repeatable; each fold uses the runs tested on it) (default: none)")
    model.add_argument("--distillation-weight", metavar="W",
                       help=f"the teachers' share of the training targets (default: {d.distillation_weight:g})")
    model.add_argument("--distillation-temperature", metavar="T",
                       help=f"temperature of the teachers' probabilities (default: {d.distillation_temperature:g})")

    out = p.add_argument_group("output")
    out.add_argument("--output-dir", metavar="DIR",
                     help="run directory (default: runs/<corpus>_<variant>_<YYYYmmdd-HHMMSS>)")
    out.add_argument("--overwrite", action="store_true", help="delete an existing run directory first")
    out.add_argument("--keep-epoch-weights", action="store_true",
                     help="also write every epoch's weights to <run>/epoch_weights/ (~1 MB each; for "
                          "benchmarks.selection_rules)")
    out.add_argument("--resume", metavar="DIR",
                     help="continue the run in DIR with its saved config.json (flags may add folds/seeds)")
    loud = out.add_mutually_exclusive_group()
    loud.add_argument("--quiet", "-q", action="store_const", const=0, dest="verbosity",
                      help="print errors and the final summary line only")
    loud.add_argument("--verbose", "-v", action="store_const", const=2, dest="verbosity",
                      help="Keras progress bars within epochs and more detail")
    out.add_argument("--json", action="store_true", dest="json_output",
                     help="print the summary as JSON on stdout at the end")
    return p


def config_from_args(argv: Optional[Sequence[str]] = None) -> TrainConfig:
    """Parses flags (+ config file) into a validated `TrainConfig`.

    Raises:
        SystemExit(2): unknown flags or bad choices (argparse).
        ConfigError: invalid values, named by their flag.
    """
    args = vars(build_parser().parse_args(argv))
    values: Dict[str, Any] = {}
    source = "the command line"
    resume = args.pop("resume", None)
    config_file = args.pop("config", None)
    if resume is not None:
        saved = Path(resume) / "config.json"
        if not saved.is_file():
            raise _error(f"--resume {resume}: no config.json there; is it a run directory of training.fit?")
        if config_file is not None:
            raise _error("--resume and --config cannot be combined: --resume uses the run's config.json")
        config_file = saved
        values["output_dir"] = str(resume)
    config = TrainConfig()
    if config_file is not None:
        data = load_config_file(config_file)
        if resume is not None:  # how loudly to run is not part of the run
            for key in ("verbosity", "json_output", "overwrite"):
                data.pop(key, None)
        config.update(data, source=f"--resume {resume}" if resume is not None else f"--config {config_file}")
    for option_flag, field in (("corpus_option", "corpus_options"), ("model_option", "model_options"),
                               ("feature_option", "features")):
        options = args.pop(option_flag, None)
        if options:
            args[field] = {**getattr(config, field), **parse_key_values(options, flag(field))}
    train_hop = args.pop("train_hop_seconds", None)
    if train_hop is not None:
        try:
            hop = float(train_hop)
        except ValueError:
            raise _error(f"--train-hop-seconds must be a number. Received: {train_hop!r}") from None
        args["features"] = {**args.get("features", config.features), "train_hop_seconds": hop}
    values.update(args)
    if resume is not None and "output_dir" in args and args["output_dir"] != str(resume):
        raise _error("--resume DIR already sets the output directory; drop --output-dir")
    config.update(values, source=source)
    return config.validate()


def parse_key_values(items: Sequence[str], option: str) -> Dict[str, Any]:
    """`["a=1", "b=x"]` → `{"a": 1, "b": "x"}` (values read as YAML scalars)."""
    import yaml

    values = {}
    for item in items:
        if "=" not in item:
            raise _error(f"{option} must be KEY=VALUE. Received: {item!r}")
        key, raw = item.split("=", 1)
        try:
            values[key.strip()] = yaml.safe_load(raw)
        except Exception:
            values[key.strip()] = raw
    return values


def explicit_output_dir(config: TrainConfig) -> Tuple[Path, bool]:
    """The run directory and whether the user named it (else a fresh timestamped name)."""
    if config.output_dir:
        return Path(config.output_dir), True
    import time

    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / f"{config.corpus}_{config.variant}_{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path, False


def import_library_quietly(verbose: bool = False) -> None:
    """Imports `sercal_keras` (hence TensorFlow) with the C++ start-up chatter hidden.

    TensorFlow's native logging writes to file descriptor 2 before Python can
    configure it (`TF_CPP_MIN_LOG_LEVEL` does not silence all of it), so fd 2
    is pointed at /dev/null during the import. Python errors still surface
    afterwards. With `verbose`, nothing is hidden.
    """
    import sys

    if verbose:
        import sercal_keras  # noqa: F401
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real stderr (e.g. captured)
        import sercal_keras  # noqa: F401
        return
    saved, devnull = os.dup(fd), os.open(os.devnull, os.O_WRONLY)
    sys.stderr.flush()
    os.dup2(devnull, fd)
    try:
        import sercal_keras  # noqa: F401
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)


def describe(config: TrainConfig) -> str:
    """A one-line description for logs."""
    return (
        f"{config.variant} on {config.corpus} ({config.protocol_name}), {config.epochs} epochs, "
        f"batch {config.batch_size}/replica, lr {config.learning_rate:g} {config.lr_schedule}"
    )


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(config_from_args().to_dict(), indent=2))
    os._exit(0)
