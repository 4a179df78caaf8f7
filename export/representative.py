"""The data export needs: calibration (representative) and evaluation segments.

Where they come from, in order:

1. The run's `config.json` (written by `python -m training.fit`): corpus,
   data dir, protocol and fold. The representative set is drawn from the
   fold's **training** utterances (training hop, as the model saw them); the
   held-out check and the report use the fold's **test** utterances
   (evaluation hop, as `metrics.json`). Features come through the data API
   (`load_corpus` → `make_folds` → `extract_segments`, cached); waveforms for
   the end-to-end model are cut from the same files with the same
   `segment_waveform`, in the same order.
2. A user-given `.npy`: raw MFCC segments `(n, n_mfcc, frames)` (the model's
   input, before standardisation), or waveform segments `(n, samples)` (their
   MFCC is computed with the numpy front-end, so they serve both inputs).

Everything is validated (non-empty, finite, right shape) before any
conversion, with a `ConfigError` that names the file or flag.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np

from sercal_keras.errors import ConfigError, SercalError

CONFIG_NAME = "config.json"


@dataclasses.dataclass
class SegmentData:
    """Segments for calibration or evaluation.

    Args:
        features: raw MFCC `(n, n_mfcc, frames)` float32 (the Keras model's input).
        waveforms: the matching waveform segments `(n, samples)`, or None.
        labels: class of each segment `(n,)`, or None (unlabelled .npy).
        utterance_index: utterance of each segment `(n,)`, or None.
        source: where the segments come from, for the sidecar and report.
    """

    features: np.ndarray
    waveforms: Optional[np.ndarray] = None
    labels: Optional[np.ndarray] = None
    utterance_index: Optional[np.ndarray] = None
    source: str = ""

    def __len__(self) -> int:
        return len(self.features)

    def take(self, indices) -> "SegmentData":
        indices = np.asarray(indices, np.int64)
        pick = lambda a: None if a is None else a[indices]  # noqa: E731
        return SegmentData(self.features[indices], pick(self.waveforms), pick(self.labels),
                           pick(self.utterance_index), self.source)

    def sample(self, size: int, seed: int = 0) -> "SegmentData":
        """At most `size` segments drawn without replacement (deterministic), in their original order."""
        if size >= len(self):
            return self
        rng = np.random.default_rng(seed)
        return self.take(np.sort(rng.choice(len(self), size, replace=False)))


def read_run_config(run_dir: Path) -> Optional[Dict[str, Any]]:
    """The training `config.json` of a run directory, or None when there is none."""
    path = Path(run_dir) / CONFIG_NAME
    if not path.is_file():
        return None
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ConfigError(f"{path}: unreadable training config ({error})") from error
    if not isinstance(config, dict) or "corpus" not in config:
        raise ConfigError(f"{path}: not a training config (no 'corpus'); pass --representative-data instead")
    return config


def _protocol(config: Dict[str, Any]) -> str:
    protocol = config.get("protocol")
    if not protocol:
        protocol = "session" if config.get("corpus") == "iemocap" else "speaker-folds"
    return str(protocol).replace("-", "_")


def training_split(config: Dict[str, Any]) -> tuple:
    """`(corpus, protocol, fold)` a run's config trained on; runs that share it share their test data."""
    return config.get("corpus"), _protocol(config), (config.get("folds") or [None])[0]


def load_fold(config: Dict[str, Any], corpus_name: Optional[str] = None, data_dir: Optional[str] = None,
              cache_dir: Optional[str] = None, fold: Optional[str] = None):
    """`(corpus, fold)` of a run config, with optional overrides (the features come from the model card).

    Raises:
        ConfigError: unknown fold, or a corpus that cannot be read (naming the flags).
    """
    from sercal_keras.data import load_corpus, make_folds

    name = corpus_name or config.get("corpus")
    directory = data_dir if data_dir is not None else config.get("data_dir")
    cache = cache_dir if cache_dir is not None else config.get("cache_dir")
    if name == "synthetic" and directory is None:
        directory = cache  # the synthetic corpus' data_dir is its cache root (as training does)
    try:
        corpus = load_corpus(name, directory, **(config.get("corpus_options") or {}))
        folds = make_folds(corpus, _protocol(config), seed=0)
    except SercalError as error:
        raise ConfigError(f"cannot read the run's corpus {name!r} from {directory!r} ({error}); "
                          "pass --corpus/--data-dir") from error
    wanted = fold or (config.get("folds") or [None])[0]
    if wanted is None:
        chosen = folds[0]
    else:
        by_name = {f.name: f for f in folds}
        if wanted in by_name:
            chosen = by_name[wanted]
        elif str(wanted).isdigit() and int(wanted) < len(folds):
            chosen = folds[int(wanted)]
        else:
            raise ConfigError(f"fold {wanted!r} is not a fold of {name} ({', '.join(by_name)})")
    return corpus, chosen


def waveform_segments(corpus, indices, feature_config, training: bool):
    """Waveform segments of utterances, cut exactly as `extract_segments` cuts them."""
    from sercal_keras.audio import load_audio, segment_waveform
    from sercal_keras.errors import AudioDecodeError

    hop = feature_config.hop_samples(training)
    segments, owners = [], []
    for i in indices:
        try:
            waveform = load_audio(corpus.utterances[i].path, feature_config.sample_rate)
        except AudioDecodeError:
            continue  # extract_segments skips the same files
        cut = segment_waveform(waveform, feature_config.segment_samples, hop)
        segments.append(cut)
        owners.append(np.full(len(cut), i, np.int64))
    if not segments:
        return np.zeros((0, feature_config.segment_samples), np.float32), np.zeros(0, np.int64)
    return np.concatenate(segments).astype(np.float32), np.concatenate(owners)


def split_segments(corpus, fold, feature_config, split: str, with_waveforms: bool,
                   cache_dir: Optional[str] = None, training_hop: Optional[bool] = None,
                   speaker_normalization: bool = False) -> SegmentData:
    """The segments of a fold's `train` or `test` utterances.

    By default training utterances are cut with the training hop (as the model
    saw them: calibration, QAT) and test utterances with the evaluation hop
    (as `metrics.json`); `training_hop` overrides that. With
    `speaker_normalization` (models trained with `--feature-normalization
    speaker`) each speaker's MFCC is standardised by that speaker's own
    statistics over the split, as training did: `features` is then the model's input.
    """
    from sercal_keras.data import extract_segments, standardize_by_speaker

    if split not in ("train", "test"):
        raise ConfigError(f"--split must be 'train' or 'test'. Received: {split!r}")
    training = split == "train" if training_hop is None else bool(training_hop)
    indices = np.asarray(fold.train if split == "train" else fold.test, np.int64)
    segments = extract_segments(corpus, indices, feature_config, training=training, cache_dir=cache_dir)
    if speaker_normalization and len(segments):
        segments = standardize_by_speaker(segments, corpus.speakers)
    data = SegmentData(segments.features.astype(np.float32), None, segments.labels, segments.utterance_index,
                       f"{corpus.name} fold {fold.name} {split} utterances "
                       f"({'training' if training else 'evaluation'} hop"
                       f"{', each speaker standardised' if speaker_normalization else ''})")
    if with_waveforms:
        waveforms, owners = waveform_segments(corpus, indices, feature_config, training)
        if len(owners) != len(data) or np.any(owners != data.utterance_index):
            raise ConfigError("the cached features and the audio files disagree (files changed since the "
                              "features were cached?); clear the feature cache and retry")
        data.waveforms = waveforms
    return data


def validate_segments(array: np.ndarray, feature_config, what: str) -> np.ndarray:
    """Checks a float array of MFCC `(n, F, T)` or waveform `(n, samples)` segments."""
    array = np.asarray(array)
    mfcc_shape = tuple(feature_config.feature_shape)
    samples = feature_config.segment_samples
    if array.ndim == 0 or array.shape[0] == 0 or array.size == 0:
        raise ConfigError(f"{what} is empty; it needs at least one segment")
    if array.shape[1:] not in (mfcc_shape, (samples,)):
        raise ConfigError(
            f"{what} has shape {array.shape}; expected MFCC segments (n, {mfcc_shape[0]}, {mfcc_shape[1]}) "
            f"or waveform segments (n, {samples})"
        )
    if not np.issubdtype(array.dtype, np.number):
        raise ConfigError(f"{what} holds {array.dtype} values; expected floats")
    array = array.astype(np.float32)
    if not np.all(np.isfinite(array)):
        raise ConfigError(f"{what} holds NaN or Inf values")
    return array


def from_npy(path, feature_config) -> SegmentData:
    """Segments from a user's `.npy` (raw MFCC or waveform segments); raises `ConfigError`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--representative-data {path}: no such file")
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ConfigError(f"--representative-data {path}: not a readable .npy array ({error})") from error
    array = validate_segments(array, feature_config, f"--representative-data {path}")
    if array.ndim == 2:
        from sercal_keras.audio.frontend import mfcc

        return SegmentData(mfcc(array, feature_config).astype(np.float32), array, source=f"{path} (waveforms)")
    return SegmentData(array, None, source=f"{path} (MFCC)")
