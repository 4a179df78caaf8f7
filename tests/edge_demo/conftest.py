"""Fixtures for the edge runtime tests: a small trained model, its .tflite files, WAVs.

`edge_models` (session scope, ~30-40 s on 2 cores) trains the paper preset for
a few epochs on a 4-speaker synthetic corpus (3 speakers train, 1 held out),
then exports `.tflite` files with their sidecars through `export.tflite`
(`load_source` → `export_models` → `write_exports`, the code behind
`python -m export.tflite`): MFCC input float32 and int8, waveform input float32.
The Keras reference is `sercal_keras.inference.EmotionRecognizer`.

`run_edge(...)` runs `python -m edge_demo.<tool>` in a subprocess in which
importing TensorFlow, Keras, librosa, scipy and `sercal_keras` raises
ImportError (a `sitecustomize` on PYTHONPATH installs a `sys.meta_path`
finder), as on a device that has only numpy and LiteRT.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
#: What the device does not have. soundfile/soxr/sounddevice are blocked per test where it matters.
HEAVY = ("tensorflow", "keras", "librosa", "scipy", "sercal_keras", "tf_keras", "jax", "torch")
DEVICE_ONLY = HEAVY + ("soundfile", "soxr", "sounddevice")

_SITECUSTOMIZE = textwrap.dedent(
    '''
    """Test bootstrap: importing the modules named in $EDGE_TEST_BLOCKED raises ImportError."""
    import os
    import sys

    _BLOCKED = tuple(filter(None, os.environ.get("EDGE_TEST_BLOCKED", "").split(",")))


    class _Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in _BLOCKED:
                raise ModuleNotFoundError(f"import of {name!r} is blocked by the edge test bootstrap")
            return None


    sys.meta_path.insert(0, _Blocker())
    '''
)


@pytest.fixture(scope="session")
def blocker_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("edge_blocker")
    (path / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    return path


def edge_env(blocker_dir: Path, blocked: Sequence[str] = HEAVY, extra_path: Sequence[Path] = ()) -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(blocker_dir), *map(str, extra_path), str(REPO_ROOT)])
    env["EDGE_TEST_BLOCKED"] = ",".join(blocked)
    env.pop("SERCAL_FRONTEND", None)
    return env


def run_edge(blocker_dir: Path, tool: str, *args, blocked: Sequence[str] = HEAVY, timeout: float = 120,
             cwd: Optional[Path] = None, extra_path: Sequence[Path] = ()) -> subprocess.CompletedProcess:
    """`python -m edge_demo.<tool> args…` with the heavy modules blocked."""
    return subprocess.run(
        [sys.executable, "-m", f"edge_demo.{tool}", *[str(a) for a in args]],
        cwd=str(cwd or REPO_ROOT), env=edge_env(blocker_dir, blocked, extra_path),
        capture_output=True, text=True, timeout=timeout,
    )


# --------------------------------------------------------------------- models


@dataclasses.dataclass
class EdgeModels:
    root: Path
    labels: List[str]
    keras_path: Path
    tflite: Dict[str, Path]  # "float32", "int8", "waveform" → .tflite (sidecar beside it)
    wavs: List[Path]  # held-out speaker, one per class first
    reference: Dict[str, np.ndarray]  # wav path → Keras utterance probabilities
    reference_segments: Dict[str, np.ndarray]  # wav path → Keras segment probabilities
    source: str  # "export" or "in-test conversion"


@dataclasses.dataclass
class SyntheticSplit:
    """The 4-speaker synthetic corpus cut for one FeatureConfig: 3 speakers train, the last is held out."""

    corpus: Any
    train_idx: np.ndarray
    test_idx: np.ndarray
    train: Any  # SegmentSet (features of the training speakers' segments)
    test: Any  # SegmentSet (held-out speaker, evaluation hop)
    train_waves: np.ndarray
    test_waves: np.ndarray


def mark_per_speaker(card_path: Path, target: Path, sidecar: bool) -> None:
    """A copy of a card saying 'trained with per-speaker normalisation' (where training or export puts it)."""
    card = json.loads(Path(card_path).read_text())
    extra = card.setdefault("extra", {})
    (extra.setdefault("training", {}) if sidecar else extra)["feature_normalization"] = "speaker"
    Path(target).write_text(json.dumps(card))


def synthetic_split(cache_dir: Path, config) -> SyntheticSplit:
    """The edge tests' corpus and its segments for `config` (audio generated once in `cache_dir`)."""
    from export.representative import waveform_segments
    from sercal_keras.data.features import extract_segments
    from sercal_keras.data.registry import load_corpus

    corpus = load_corpus("synthetic", cache_dir, num_speakers=4, utterances_per_class=5)
    speakers = np.array([u.speaker for u in corpus.utterances])
    held_out = sorted(set(speakers))[-1]
    train_idx, test_idx = np.where(speakers != held_out)[0], np.where(speakers == held_out)[0]
    return SyntheticSplit(
        corpus, train_idx, test_idx,
        extract_segments(corpus, train_idx, config, training=True, cache=False),
        extract_segments(corpus, test_idx, config, training=False, cache=False),
        waveform_segments(corpus, train_idx, config, training=True)[0],
        waveform_segments(corpus, test_idx, config, training=False)[0],
    )


def export_files(keras_path: Path, split: SyntheticSplit, out: Path, pairs) -> Dict[tuple, Path]:
    """The export engineer's real path: `export.tflite` convert + verify + sidecar, written to `out`.

    Returns each `(input_kind, mode)` of `pairs` → its `.tflite` (sidecar beside it).
    """
    from export.representative import SegmentData
    from export.tflite import ExportInputs, export_models, load_source, write_exports

    source = load_source(keras_path)
    data = ExportInputs(
        representative=SegmentData(split.train.features, split.train_waves, source="edge test: training speakers"),
        held_out=SegmentData(split.test.features, split.test_waves, source="edge test: held-out speaker"),
        held_out_is_test=True,
    )
    results = export_models(source, list(pairs), data, min_agreement=0.0, log=lambda message: None)
    by_name = {p.stem: p for p in write_exports(results, out) if p.suffix == ".tflite"}
    return {(kind, mode): by_name[f"{keras_path.stem}_{kind}_{mode}"] for kind, mode in pairs}


def keras_reference(model, keras_path: Path, wavs: Sequence[Path], config):
    """Keras-side (utterance, segment) probabilities per file, keyed by path.

    `EmotionRecognizer` (the library's reference) when it exists; otherwise the
    same path written out: load_audio → segment (eval hop) → mfcc → model → mean.
    """
    try:
        from sercal_keras.inference import EmotionRecognizer
    except ImportError:
        EmotionRecognizer = None
    out = {}
    if EmotionRecognizer is not None:
        predictions = EmotionRecognizer.load(keras_path).predict_files(list(wavs))
        for wav, prediction in zip(wavs, predictions):
            probs = np.array([prediction.probabilities[label] for label in prediction.labels], np.float32)
            out[str(wav)] = (probs, np.asarray(prediction.segment_probabilities, np.float32))
        return out
    from sercal_keras.audio import load_audio
    from sercal_keras.audio.frontend import aggregate_utterance, mfcc, segment_waveform

    for wav in wavs:
        waveform = load_audio(wav, config.sample_rate)
        segments = segment_waveform(waveform, config.segment_samples, config.hop_samples(training=False))
        probs = np.asarray(model.predict(mfcc(segments, config), verbose=0, batch_size=32))
        out[str(wav)] = (aggregate_utterance(probs), probs)
    return out


@pytest.fixture(scope="session")
def edge_models(tmp_path_factory) -> EdgeModels:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from sercal_keras.audio.frontend import FeatureConfig
    from sercal_keras.data.features import fit_normalization
    from sercal_keras.model_card import ModelCard, card_path_for
    from sercal_keras.models import build_model

    out = tmp_path_factory.mktemp("edge_models")
    config = FeatureConfig()
    split = synthetic_split(out / "cache", config)
    corpus, train, test_idx = split.corpus, split.train, split.test_idx
    mean, variance = fit_normalization(train.features)

    keras.utils.set_random_seed(0)
    model = build_model("fa_ca", num_classes=len(corpus.labels), feature_mean=mean, feature_variance=variance)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    model.fit(train.features, train.labels, epochs=12, batch_size=16, verbose=0)
    keras_path = out / "model.keras"
    model.save(keras_path)

    std = np.maximum(np.sqrt(variance), keras.config.epsilon())
    card = ModelCard(labels=list(corpus.labels), feature_config=config.to_dict(), feature_mean=mean.tolist(),
                     feature_std=std.tolist(), corpus="synthetic", variant="fa_ca")
    card.save(card_path_for(keras_path))
    files = export_files(keras_path, split, out, [("mfcc", "float32"), ("mfcc", "int8"), ("waveform", "float32")])
    tflite = {"float32": files["mfcc", "float32"], "int8": files["mfcc", "int8"], "waveform": files["waveform", "float32"]}
    source = "export.tflite"

    # Held-out speaker: first one file per class, then the rest.
    wav_dir = out / "wavs"
    wav_dir.mkdir()
    by_class: Dict[int, List[int]] = {}
    for i in test_idx:
        by_class.setdefault(corpus.labels.index(corpus.utterances[i].label), []).append(int(i))
    order = [v[0] for v in by_class.values()] + [i for v in by_class.values() for i in v[1:]]
    wavs = []
    for i in order:
        u = corpus.utterances[i]
        target = wav_dir / f"{u.label}_{Path(u.path).stem}.wav"
        shutil.copyfile(u.path, target)
        wavs.append(target)
    references = keras_reference(model, keras_path, wavs, config)
    reference = {k: v[0] for k, v in references.items()}
    reference_segments = {k: v[1] for k, v in references.items()}
    return EdgeModels(out, list(corpus.labels), keras_path, tflite, wavs, reference, reference_segments, source)
