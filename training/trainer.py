"""One training run (one fold × one seed) under a `tf.distribute` strategy.

corpus → fold (speaker-independent by default) → validation speakers carved
from the training speakers → cached MFCC segments (training hop for training,
evaluation hop for validation and test) → normalisation fitted on the training
segments → model (Normalization inside) → `fit` with validation-UA selection,
early stopping, `BackupAndRestore`, `TerminateOnNaN`, TensorBoard → best
weights → test metrics (segment and utterance level) → run directory.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from sercal_keras import metrics
from sercal_keras.errors import ConfigError, SercalError
from sercal_keras.io_utils import atomic_path, write_json, write_text
from sercal_keras.reporting import plot_confusion
from training import plots
from training.distillation import distillation_targets
from training.run_dir import (CHECKPOINT_DIR, CONFIG_NAME, EPOCH_WEIGHTS_DIR, METRICS_NAME, MODEL_NAME,
                              epoch_weights_name)
from training.weight_averaging import describe_saved_model, describe_window, load_averaged_weights


class TrainingDivergedError(SercalError):
    """The loss became NaN/Inf (TerminateOnNaN stopped the run)."""


@dataclasses.dataclass
class CorpusData:
    """A corpus with its folds and all its segments, extracted once per hop.

    Attributes:
        corpus: the `Corpus`.
        folds: the protocol's folds.
        feature_config: the `FeatureConfig`.
        cache_dir: the feature cache root (None: the library default).
        train_segments: every utterance cut with the training hop (after `extract`).
        eval_segments: every utterance cut with the evaluation hop (after `extract`).
        speeds: speed-perturbation factors whose copies join `train_segments`
            (same utterance indices, so a fold's training utterances bring
            their perturbed copies and no other split sees them).
        noise_snrs: SNRs (dB) of the noisy copies of the training audio that
            join `train_segments` as the speed copies do (noise on the audio
            as recorded, not on the speed copies).
    """

    corpus: Any
    folds: List[Any]
    feature_config: Any
    cache_dir: Optional[str] = None
    train_segments: Any = None
    eval_segments: Any = None
    speeds: Tuple[float, ...] = ()
    noise_snrs: Tuple[float, ...] = ()

    @property
    def labels(self) -> List[str]:
        return list(self.corpus.labels)

    def extract(self, log: Callable[[str], None] = print) -> "CorpusData":
        """Extracts (or reads from the cache) the features of every utterance, both hops."""
        from sercal_keras.data import SegmentSet, extract_segments

        if self.train_segments is None:
            started = time.perf_counter()
            fc = self.feature_config
            copies = [(speed, None) for speed in (1.0, *self.speeds)] + [(1.0, snr) for snr in self.noise_snrs]
            train = [extract_segments(self.corpus, None, fc, training=True, cache_dir=self.cache_dir, speed=speed,
                                      noise_snr_db=snr)
                     for speed, snr in copies]
            self.train_segments = train[0] if len(train) == 1 else SegmentSet(
                *(np.concatenate([getattr(t, field) for t in train])
                  for field in ("features", "labels", "utterance_index")), train[0].skipped)
            self.eval_segments = extract_segments(self.corpus, None, fc, training=False, cache_dir=self.cache_dir)
            extras = []
            if self.speeds:
                extras.append(f"speed copies x{', x'.join(f'{s:g}' for s in self.speeds)}")
            if self.noise_snrs:
                extras.append(f"noisy copies at {', '.join(f'{s:g}' for s in self.noise_snrs)} dB SNR")
            perturbed = f" (with {'; '.join(extras)})" if extras else ""
            log(f"features: {len(self.train_segments)} training-hop{perturbed} / {len(self.eval_segments)} eval-hop "
                f"segments ({time.perf_counter() - started:.1f} s)")
        return self


def subset(segment_set, indices):
    """The segments of the utterances in `indices` (a `SegmentSet` again)."""
    from sercal_keras.data import SegmentSet

    mask = np.isin(segment_set.utterance_index, np.asarray(indices, np.int64))
    return SegmentSet(segment_set.features[mask], segment_set.labels[mask], segment_set.utterance_index[mask])


def load_data(config, log: Callable[[str], None] = print) -> CorpusData:
    """Reads the corpus and makes the folds (features come later, with `CorpusData.extract`)."""
    from sercal_keras.data import load_corpus, make_folds
    from training.config import PROTOCOLS

    data_dir = config.data_dir
    if config.corpus == "synthetic" and data_dir is None:
        data_dir = config.cache_dir  # the synthetic corpus' "data_dir" is its cache root
    try:
        corpus = load_corpus(config.corpus, data_dir, **config.corpus_options)
    except ConfigError as error:
        raise ConfigError(f"--corpus {config.corpus} / --corpus-option: {error}") from None
    try:
        folds = make_folds(corpus, PROTOCOLS[config.protocol_name], seed=0)
    except ConfigError as error:
        raise ConfigError(f"--protocol {config.protocol_name}: {error}") from None
    log(f"{corpus.name}: {len(corpus)} utterances, {len(corpus.speaker_ids)} speakers, "
        f"{len(folds)} {config.protocol_name} folds")
    return CorpusData(corpus, folds, config.feature_config(), config.cache_dir,
                      speeds=tuple(config.speed_perturbation), noise_snrs=tuple(config.noise_snr_db))


@dataclasses.dataclass
class RunSplits:
    """One run's segments: training, validation and test, as the model sees them.

    Attributes:
        train: the training utterances' training-hop segments (speed/noise copies included).
        validation: the validation utterances' evaluation-hop segments (may be empty).
        test: the test fold's evaluation-hop segments.
        train_index: corpus indices of the training utterances.
        validation_index: corpus indices of the validation utterances.
        speaker_card: the model card's `speaker_prior` entry for per-speaker
            normalisation (empty otherwise).
    """

    train: Any
    validation: Any
    test: Any
    train_index: np.ndarray
    validation_index: np.ndarray
    speaker_card: Dict[str, Any]


def split_run_data(config, data: CorpusData, fold, seed: int) -> RunSplits:
    """A run's splits: validation speakers drawn from the fold's training speakers by `seed`.

    The one place that decides which segments a run trains, validates and is
    tested on (the trainer, and benchmarks that revisit a run's training
    data, e.g. the BatchNorm recompute of `benchmarks.weight_averaging`).
    With `feature_normalization: speaker` every split is standardised by its
    own speakers' statistics (test speakers: their unlabelled test audio).

    Raises:
        ConfigError: the validation split is impossible, or the fold has no usable audio.
    """
    from sercal_keras.audio.frontend import SPEAKER_PRIOR_WEIGHT
    from sercal_keras.data import standardize_by_speaker, validation_split
    from sercal_keras.data.speaker_normalization import speaker_prior

    corpus = data.corpus
    if config.validation_fraction > 0:
        try:
            train_idx, val_idx = validation_split(corpus, fold.train, config.validation_fraction, seed=seed,
                                                  speaker_independent=fold.speaker_independent)
        except ConfigError as error:
            raise ConfigError(f"--validation-fraction: {error}") from None
    else:
        train_idx, val_idx = np.asarray(fold.train), np.zeros(0, np.int64)
    train_set = subset(data.train_segments, train_idx)
    val_set = subset(data.eval_segments, val_idx)
    test_set = subset(data.eval_segments, fold.test)
    if len(train_set) == 0 or len(test_set) == 0:
        raise ConfigError(f"--folds: fold {fold.name} has no usable training or test audio")
    speaker_card = {}
    if config.feature_normalization == "speaker":
        # what inference pulls a new speaker's statistics towards: the training speakers' average
        prior_mean, prior_std = speaker_prior(subset(data.eval_segments, fold.train), corpus.speakers)
        speaker_card = {"speaker_prior": {"mean": prior_mean.ravel().tolist(), "std": prior_std.ravel().tolist(),
                                          "weight": SPEAKER_PRIOR_WEIGHT}}
        train_set, val_set, test_set = (standardize_by_speaker(s, corpus.speakers) if len(s) else s
                                        for s in (train_set, val_set, test_set))
    return RunSplits(train_set, val_set, test_set, np.asarray(train_idx), np.asarray(val_idx), speaker_card)


def select_folds(config, folds) -> List[Tuple[int, Any]]:
    """The `(index, Fold)` pairs a config asks for; raises `ConfigError` naming `--folds`."""
    if config.folds is None:
        return [(0, folds[0])]
    if config.folds == ["all"]:
        return list(enumerate(folds))
    by_name = {f.name: i for i, f in enumerate(folds)}
    chosen = []
    for item in config.folds:
        if item in by_name:
            index = by_name[item]
        elif item.lstrip("-").isdigit() and 0 <= int(item) < len(folds):
            index = int(item)
        else:
            names = ", ".join(f"{i}={f.name}" for i, f in enumerate(folds))
            raise ConfigError(f"--folds: no fold {item!r} in protocol {config.protocol_name}; folds: {names}")
        if index not in [i for i, _ in chosen]:
            chosen.append((index, folds[index]))
    return chosen


def build_and_compile(config, num_classes: int, mean, variance, feature_shape, compile_model: bool = True):
    """The model of a config (call inside `strategy.scope()`), compiled for training."""
    import keras

    from sercal_keras.models import build_model

    try:
        model = build_model(
            config.variant,
            num_classes=num_classes,
            input_shape=feature_shape,
            dropout=config.dropout,
            feature_mean=mean,
            feature_variance=variance,
            **config.model_options,
        )
    except ValueError as error:
        if not config.model_options:
            raise
        raise ConfigError(f"--model-option: {error}") from None
    if compile_model:
        # mixup / label smoothing train on one-hot (soft) labels; the paper recipe on class indices
        loss = (keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)
                if config.soft_labels else "sparse_categorical_crossentropy")
        model.compile(
            optimizer=keras.optimizers.Adam(
                learning_rate=config.learning_rate, weight_decay=config.weight_decay or None,
                use_ema=config.ema_momentum > 0, ema_momentum=config.ema_momentum,
            ),
            loss=loss,
            metrics=["accuracy"],
            jit_compile=False,  # XLA gave no gain on CPU (DESIGN §5) and costs compile time
        )
    return model


def training_augmentation(config, mean):
    """The `BatchAugmentation` of a config (SpecAugment, mixup), or None when all are off.

    Masked cells take the training mean of their coefficient, i.e. 0 after the
    model's `Normalization`.
    """
    from sercal_keras.data.augment import BatchAugmentation

    augmentation = BatchAugmentation(
        time_masks=config.time_masks,
        time_width=config.time_mask_width,
        freq_masks=config.freq_masks,
        freq_width=config.freq_mask_width,
        fill_value=[float(v) for v in np.asarray(mean).reshape(-1)],
        mixup_alpha=config.mixup_alpha,
    )
    return augmentation if augmentation.active else None


def balanced_class_weights(labels: np.ndarray, num_classes: int) -> Dict[int, float]:
    """`Model.fit`'s `class_weight` for `--class-weighting balanced`: n / (k · n_c) per class present.

    Every class then carries the same total weight in the loss, as every
    emotion carries the same weight in UA. Classes absent from `labels` get no
    entry (weight 1 in Keras; they never occur).

    Example:
    >>> balanced_class_weights(np.array([0, 0, 0, 1]), 3)
    {0: 0.6666666666666666, 1: 2.0}
    """
    counts = np.bincount(np.asarray(labels, np.int64), minlength=num_classes)
    present = np.flatnonzero(counts)
    return {int(c): float(len(labels) / (len(present) * counts[c])) for c in present}


def synchronize_batch_norm(model) -> int:
    """Makes every BatchNormalization layer use global-batch statistics across replicas.

    With several replicas each one would otherwise normalise with the statistics
    of its own share of the batch, so training would depend on the number of
    devices; synchronised, a step on N replicas computes what one device computes
    on the global batch (tested: two logical CPUs vs one). Only the training
    model is changed; the saved model is built fresh (its config unchanged).
    Returns the number of layers changed.
    """
    import keras

    count = 0
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True
            count += 1
    return count


def prebuild_for_multi_worker(model, segment_set, strategy, num_classes: Optional[int] = None) -> None:
    """Works around Keras 3 failing `fit` under `MultiWorkerMirroredStrategy`.

    Keras 3.15's TF trainer builds the model's metrics from the first batch with
    an eager cross-worker `strategy.reduce` (`_maybe_symbolic_build`), which
    raises "Attempt to convert a value (PerReplica…) to a Tensor" with several
    workers (keras-team/keras#20585, open). The model is fully built here from
    a local batch instead, and that step is skipped for this model.
    """
    labels = segment_set.labels[:2].astype("int32")
    if num_classes is not None:  # one-hot labels (mixup / label smoothing)
        labels = np.eye(num_classes, dtype="float32")[labels]
    batch = (segment_set.features[:2], labels)
    with strategy.scope():
        model._symbolic_build(data_batch=batch)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None


def restore_backup(backup, model) -> int:
    """Restores a `BackupAndRestore` backup into `model` now; returns the epoch training resumes at (0: none).

    `fit` restores it again when it starts (the same files, so the same state); restoring first
    tells the data pipeline which epoch comes next.
    """
    backup.set_model(model)
    backup.on_train_begin()
    return int(getattr(model, "_initial_epoch", None) or 0)  # where Keras' own fit loop starts


def train_run(config, data: CorpusData, fold_index: int, fold, seed: int, run_dir: Path, distribution,
              log: Callable[[str], None] = print, work_dir: Optional[Path] = None) -> Dict[str, Any]:
    """Trains and evaluates one fold × seed; returns the metrics dict written to `metrics.json`.

    Only the chief writes `run_dir`; other workers write the same files to
    `work_dir`, a private temporary folder (see `Distribution.worker_dir`)
    deleted at the end.
    """
    import keras
    import tensorflow as tf

    from sercal_keras.data import batches_per_epoch, fit_normalization, make_dataset
    from sercal_keras.model_card import ModelCard, library_versions
    from training.callbacks import EpochScalars, ValidationUA, lr_scheduler, make_predict_fn

    corpus, fc = data.corpus, data.feature_config
    labels = data.labels
    if distribution.is_chief or work_dir is None:
        work_dir = run_dir
    work_dir.mkdir(parents=True, exist_ok=True)
    checkpoints = work_dir / CHECKPOINT_DIR
    started = time.perf_counter()

    # ---- data: validation speakers from the training speakers only
    keras.utils.set_random_seed(seed)
    splits = split_run_data(config, data, fold, seed)
    train_set, val_set, test_set, val_idx = splits.train, splits.validation, splits.test, splits.validation_index
    train_idx, speaker_card = splits.train_index, splits.speaker_card
    mean, variance = fit_normalization(train_set.features)
    speakers = np.array(corpus.speakers, dtype=object)
    val_speakers = sorted({str(s) for s in speakers[val_idx]}) if len(val_idx) else []
    log(f"  train {len(train_set)} segments ({len(train_idx)} utterances), "
        f"validation {len(val_idx)} utterances (speakers {', '.join(val_speakers) or 'none'}), "
        f"test {len(fold.test)} utterances (speakers {', '.join(fold.test_speakers) or 'mixed'})")

    # ---- model under the strategy
    if config.mixed_precision and not any("GPU" in d.upper() for d in distribution.devices):
        log("  note: --mixed-precision on CPU is slower than float32; it is meant for GPUs")
    keras.mixed_precision.set_global_policy("mixed_float16" if config.mixed_precision else "float32")
    try:
        with distribution.strategy.scope():
            model = build_and_compile(config, len(labels), mean, variance, fc.feature_shape)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    if distribution.num_replicas > 1:
        synchronize_batch_norm(model)
    if distribution.kind == "multi_worker":
        prebuild_for_multi_worker(model, train_set, distribution.strategy,
                                  len(labels) if config.soft_labels else None)
    global_batch = distribution.global_batch(config.batch_size)
    # Several workers must run identical steps: every batch full (the remainder
    # changes every epoch, as the data is reshuffled).
    drop_remainder = distribution.kind == "multi_worker"
    # A last batch with fewer segments than replicas leaves a replica without any, and the
    # synchronised BatchNorm all-reduce then fails on mismatched shapes: drop those few
    # segments (a different, reshuffled few every epoch).
    drop_remainder |= 0 < len(train_set) % global_batch < distribution.num_replicas
    if drop_remainder and len(train_set) < global_batch:
        raise ConfigError(f"--batch-size: the global batch ({global_batch}) exceeds the {len(train_set)} "
                          "training segments of this fold")
    # A resumed run restores weights, optimizer and epoch first: its data then starts at that
    # epoch, the order and augmentation of which depend on (seed, epoch) only, so the resumed
    # run trains exactly as an uninterrupted one.
    backup = keras.callbacks.BackupAndRestore(str(checkpoints / "backup"), double_checkpoint=True)
    with distribution.strategy.scope():  # the optimizer's variables may be built here
        first_epoch = restore_backup(backup, model)
    # distillation: the teachers' softened probabilities mixed into the targets (None without teachers)
    targets, teachers = distillation_targets(config, corpus.name, fold, labels, fc.to_dict(), train_set, log=log)
    dataset = make_dataset(train_set, global_batch, shuffle=True, seed=seed, drop_remainder=drop_remainder,
                           num_classes=len(labels) if config.soft_labels else None,
                           augment=training_augmentation(config, mean), epochs=config.epochs,
                           first_epoch=min(first_epoch, config.epochs), targets=targets)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dataset = dataset.with_options(options)

    validation = (val_set.features, val_set.labels, val_set.utterance_index) if len(val_set) else None
    class_weight = None
    if config.class_weighting == "balanced":
        class_weight = balanced_class_weights(train_set.labels, len(labels))
        log("  class weights: " + ", ".join(f"{labels[c]} {w:.2f}" for c, w in class_weight.items()))
    # Weight averaging reads the epochs' weights at the end: kept in the run directory when asked
    # to, else in the checkpoint folder (resumable like the rest, deleted with it).
    epoch_weights_dir = (work_dir / EPOCH_WEIGHTS_DIR if config.keep_epoch_weights
                         else checkpoints / EPOCH_WEIGHTS_DIR if config.average_from_epoch else None)
    monitor = ValidationUA(checkpoints, labels, validation, patience=config.patience,
                           history_path=work_dir / "history.csv", epoch_weights_dir=epoch_weights_dir)
    callbacks = [
        monitor,
        backup,
        lr_scheduler(config),
        keras.callbacks.TerminateOnNaN(),
        EpochScalars(work_dir / "logs"),
    ]
    fit_verbose = {0: 0, 1: 2, 2: 1}[config.verbosity] if distribution.is_chief else 0
    if monitor.state.get("finished"):
        log("  training had finished before; evaluating the saved weights")
    else:
        done = len(monitor.state["history"])
        if done:
            log(f"  resuming after epoch {done} of {config.epochs}")
        model.fit(dataset, epochs=config.epochs, initial_epoch=first_epoch, verbose=fit_verbose, callbacks=callbacks,
                  shuffle=False, class_weight=class_weight,
                  steps_per_epoch=batches_per_epoch(len(train_set), global_batch, drop_remainder))
    state = ValidationUA.load_state(checkpoints)
    history = state["history"]
    if not state.get("finished"):
        bad = next((row["epoch"] for row in history if not math.isfinite(row.get("loss", 0.0))), None)
        raise TrainingDivergedError(
            f"fold {fold.name} seed {seed}: the loss became NaN/Inf at epoch {bad if bad is None else bad + 1}; "
            "lower --learning-rate or check the features, then start over with --overwrite"
        )
    best_epoch = state["best_epoch"] if validation is not None else len(history) - 1
    averaged_epochs = None
    if config.average_from_epoch:
        # an early stop before the window opens leaves the last epoch alone
        averaged_epochs = [min(config.average_from_epoch, len(history)), len(history)]
        load_averaged_weights(model, [epoch_weights_dir / epoch_weights_name(epoch)
                                      for epoch in range(averaged_epochs[0], averaged_epochs[1] + 1)])
        selection = describe_window(averaged_epochs)
        log(f"  model: {selection}")
    else:
        weights = monitor.best_weights_path if validation is not None else monitor.last_weights_path
        model.load_weights(str(weights))
        selection = describe_saved_model(config.average_from_epoch, validation is not None)

    # ---- a clean float32, uncompiled copy for the artifact and evaluation
    inference_model = build_and_compile(config, len(labels), mean, variance, fc.feature_shape, compile_model=False)
    inference_model.set_weights(model.get_weights())
    predict = make_predict_fn(inference_model)
    probs = predict(test_set.features)
    model_validation_ua = None  # the saved model's (for an average, not any epoch's)
    if validation is not None:
        model_validation_ua = metrics.evaluate_segments(predict(val_set.features), val_set.labels,
                                                        val_set.utterance_index, labels)["utterance"]["ua"]
    result = metrics.evaluate_segments(probs, test_set.labels, test_set.utterance_index, labels)
    train_seconds = sum(float(row.get("seconds") or 0.0) + float(row.get("validation_seconds") or 0.0)
                        for row in history)
    epoch_seconds = [float(row["seconds"]) for row in history if row.get("seconds")]
    info = {
        "corpus": corpus.name,
        "protocol": config.protocol_name,
        "fold": fold.name,
        "fold_index": fold_index,
        "seed": seed,
        "variant": config.variant,
        "labels": labels,
        "speaker_independent": bool(fold.speaker_independent),
        "test_speakers": list(fold.test_speakers),
        "validation_speakers": val_speakers,
        "model_selection": selection,
        "best_epoch": None if best_epoch is None else int(best_epoch) + 1,
        "best_validation_ua": state.get("best_ua"),
        "averaged_epochs": averaged_epochs,
        "validation_ua": model_validation_ua,
        "epochs_run": len(history),
        "stopped_early": bool(state.get("stopped_early")),
        "num_train_segments": len(train_set),
        "num_validation_utterances": int(len(val_idx)),
        "num_test_utterances": int(len(np.unique(test_set.utterance_index))),
        "num_test_segments": len(test_set),
        "replicas": distribution.num_replicas,
        "global_batch_size": global_batch,
        "train_seconds": round(train_seconds, 2),
        # training throughput: segments / median training time of an epoch (validation excluded)
        "segments_per_second": round(len(train_set) / np.median(epoch_seconds), 1) if epoch_seconds else None,
    }
    if teachers:
        info["teachers"] = [str(run) for run in teachers]
    metrics_doc = {**info, "utterance": result["utterance"], "segment": result["segment"]}

    # ---- artifacts (metrics.json last: its presence marks the run finished)
    run_config = dataclasses.replace(config, folds=[fold.name], seeds=[seed], output_dir=str(run_dir))
    versions = library_versions()
    with atomic_path(work_dir / MODEL_NAME) as tmp:
        inference_model.save(tmp)
    if distribution.is_chief:
        ModelCard(
            labels=labels,
            feature_config=fc.to_dict(),
            feature_mean=[float(v) for v in mean],
            feature_std=[float(v) for v in np.sqrt(variance)],
            corpus=corpus.name,
            variant=config.variant,
            versions=versions,
            extra={**{k: info[k] for k in ("protocol", "fold", "fold_index", "seed", "test_speakers",
                                            "validation_speakers", "best_epoch", "averaged_epochs",
                                            "speaker_independent")},
                   "feature_normalization": config.feature_normalization, **speaker_card},
        ).save(work_dir / "model_card.json")
        write_json(work_dir / CONFIG_NAME, run_config.to_dict())
        write_json(work_dir / "versions.json", versions)
        from training.callbacks import history_csv

        write_text(work_dir / "history.csv", history_csv(history))
        title = f"{config.variant} · {corpus.name} {fold.name} seed {seed}"
        plot_confusion(result["utterance"]["confusion_matrix"], labels, work_dir / "confusion.png",
                             title=f"{title} · utterances, UA {result['utterance']['ua']:.1%}")
        plots.plot_training_curves(history, work_dir / "training_curves.png",
                                   best_epoch=None if best_epoch is None else int(best_epoch), title=title,
                                   averaged_epochs=averaged_epochs)
        write_json(work_dir / METRICS_NAME, metrics_doc)
        shutil.rmtree(checkpoints, ignore_errors=True)
    else:
        shutil.rmtree(work_dir, ignore_errors=True)
    metrics_doc["wall_seconds"] = round(time.perf_counter() - started, 1)
    return metrics_doc
