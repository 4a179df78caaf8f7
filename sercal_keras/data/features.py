"""Segment features of a corpus, computed once and cached on disk.

file → `load_audio` → `segment_waveform` → `mfcc` (the numpy front-end), for
each utterance, stacked into a `SegmentSet`. The result is cached as one .npz
keyed by a hash of the `FeatureConfig`, the hop (training or evaluation), the
labels and the file list with sizes and modification times: change any of
them and the features are recomputed. Files that cannot be decoded are
reported (a warning naming the file and the reason), skipped and listed in
`SegmentSet.skipped`; they never make it into the features.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
from pathlib import Path
from typing import Callable, Optional, Sequence, Tuple, Union

import numpy as np

from sercal_keras.audio.decode import load_audio
from sercal_keras.audio.frontend import FeatureConfig, mfcc, segment_waveform
from sercal_keras.audio.noise import add_noise
from sercal_keras.audio.speed_perturbation import change_speed
from sercal_keras.data.cache import cache_root
from sercal_keras.data.corpus import Corpus
from sercal_keras.errors import AudioDecodeError, ConfigError
from sercal_keras.io_utils import atomic_path

# Bump when extraction changes in a way the key cannot see.
FEATURES_VERSION = 1


@dataclasses.dataclass(frozen=True, eq=False)
class SegmentSet:
    """The segments of some utterances, ready for `make_dataset`.

    Args:
        features: MFCC, float32 (N, n_mfcc, frames), e.g. (N, 26, 63).
        labels: integer class of each segment, (N,) int64.
        utterance_index: corpus index of each segment's utterance, (N,) int64
            (group by it to aggregate segment predictions per utterance).
        skipped: `(path, reason)` of each file that could not be used.
    """

    features: np.ndarray
    labels: np.ndarray
    utterance_index: np.ndarray
    skipped: Tuple[Tuple[str, str], ...] = ()

    def __len__(self) -> int:
        return len(self.labels)


def extract_segments(
    corpus: Corpus,
    indices: Optional[Sequence[int]] = None,
    config: FeatureConfig = FeatureConfig(),
    training: bool = False,
    cache_dir: Optional[Union[str, Path]] = None,
    cache: bool = True,
    progress: Optional[Callable[[int, int], None]] = None,
    speed: float = 1.0,
    noise_snr_db: Optional[float] = None,
) -> SegmentSet:
    """MFCC segments of `corpus.utterances[indices]`, from the cache if possible.

    Args:
        corpus: the corpus.
        indices: utterances to use (default: all), e.g. a fold's `train`.
        config: the feature definition.
        training: segment with the training hop (True) or evaluation hop.
        cache_dir: cache root (default `$SERCAL_CACHE_DIR` or
            `~/.cache/sercal_keras`); the file goes to `features/` in it.
        cache: read and write the cache (False: always recompute, write nothing).
        progress: called as `progress(done, total)` after each file.
        speed: speed-perturbation factor applied to each waveform before it
            is cut (`change_speed`; 1 = the audio as recorded). Training data
            augmentation only: evaluation always uses 1.
        noise_snr_db: add white noise at this SNR (`add_noise`, seeded by the
            utterance's corpus index, so the copy is the same every time) after
            the speed change; None = none. Training data augmentation only.

    Returns:
        A `SegmentSet`; `skipped` lists the files left out and why.

    Example:
    >>> corpus = load_corpus("synthetic")  # doctest: +SKIP
    >>> train = extract_segments(corpus, fold.train, training=True)  # doctest: +SKIP
    >>> train.features.shape[1:]  # doctest: +SKIP
    (26, 63)
    """
    indices = np.arange(len(corpus)) if indices is None else np.asarray(indices, np.int64)
    key = _cache_key(corpus, indices, config, training, speed, noise_snr_db)
    path = cache_root(cache_dir) / "features" / f"{corpus.name}-{key[:24]}.npz"
    if cache and path.is_file():
        cached = _read_cache(path)
        if cached is not None:
            _warn_skipped(cached.skipped)
            return cached
    result = _extract(corpus, indices, config, training, progress, speed, noise_snr_db)
    _warn_skipped(result.skipped)
    if cache:
        with atomic_path(path) as tmp:
            np.savez(
                tmp,
                features=result.features,
                labels=result.labels,
                utterance_index=result.utterance_index,
                skipped=np.array(result.skipped, dtype=str).reshape(-1, 2),
                key=np.array(key),
            )
    return result


def fit_normalization(features: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Per-coefficient mean and variance of training features.

    Fit on the training segments only; the model holds the result in its
    `keras.layers.Normalization` (axis = the coefficient axis).

    Args:
        features: (N, n_mfcc, frames) MFCC (or a `SegmentSet`).

    Returns:
        `(mean, variance)`, each float32 (n_mfcc,); variance is the population
        variance over segments and frames, as `Normalization.adapt` computes.

    Example:
    >>> mean, var = fit_normalization(np.ones((4, 26, 63)))
    >>> mean.shape, float(var.max())
    ((26,), 0.0)
    """
    features = getattr(features, "features", features)
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 3 or len(features) == 0:
        raise ConfigError(
            "fit_normalization needs features (N >= 1, n_mfcc, frames). "
            f"Received shape {features.shape}"
        )
    mean = features.mean(axis=(0, 2))
    variance = features.var(axis=(0, 2))
    return mean.astype(np.float32), variance.astype(np.float32)


def _extract(corpus, indices, config, training, progress, speed=1.0, noise_snr_db=None) -> SegmentSet:
    hop = config.hop_samples(training)
    label_ids = corpus.label_ids
    features, labels, owners, skipped = [], [], [], []
    for done, i in enumerate(indices, start=1):
        utt = corpus.utterances[i]
        try:
            waveform = load_audio(utt.path, config.sample_rate)
        except AudioDecodeError as e:
            skipped.append((str(utt.path), str(e)))
        else:
            if speed != 1.0:
                waveform = change_speed(waveform, speed, config.sample_rate)
            if noise_snr_db is not None:
                waveform = add_noise(waveform, noise_snr_db, seed=int(i))
            segments = segment_waveform(waveform, config.segment_samples, hop)
            features.append(mfcc(segments, config))
            labels.append(np.full(len(segments), label_ids[i], np.int64))
            owners.append(np.full(len(segments), i, np.int64))
        if progress is not None:
            progress(done, len(indices))
    if not features:
        empty = np.zeros((0,) + config.feature_shape, np.float32)
        return SegmentSet(empty, np.zeros(0, np.int64), np.zeros(0, np.int64), tuple(skipped))
    return SegmentSet(
        np.concatenate(features), np.concatenate(labels), np.concatenate(owners), tuple(skipped)
    )


def _cache_key(corpus: Corpus, indices: np.ndarray, config: FeatureConfig, training: bool, speed: float = 1.0,
               noise_snr_db: Optional[float] = None) -> str:
    label_ids = corpus.label_ids
    files = []
    for i in indices:
        path = Path(corpus.utterances[i].path)
        try:
            stat = path.stat()
            state = [stat.st_size, stat.st_mtime_ns]
        except OSError:
            state = None  # missing now; it will be skipped, and fixed later → new key
        files.append([str(path.resolve()), state, int(label_ids[i]), int(i)])
    payload = {
        "version": FEATURES_VERSION,
        "config": config.to_dict(),
        "hop": config.hop_samples(training),
        "labels": list(corpus.labels),
        "files": files,
    }
    if speed != 1.0:  # only then, so the keys of unperturbed features stay what they were
        payload["speed"] = float(speed)
    if noise_snr_db is not None:
        payload["noise_snr_db"] = float(noise_snr_db)
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _read_cache(path: Path) -> Optional[SegmentSet]:
    try:
        with np.load(path) as data:
            skipped = tuple((str(p), str(r)) for p, r in data["skipped"])
            return SegmentSet(
                data["features"], data["labels"], data["utterance_index"], skipped
            )
    except Exception as e:  # unreadable or from an old layout: recompute, overwrite
        warnings.warn(f"Ignoring unreadable feature cache {path} ({e}); recomputing.", stacklevel=3)
        return None


def _warn_skipped(skipped) -> None:
    for path, reason in skipped:
        warnings.warn(f"Skipped {path}: {reason}", stacklevel=3)
