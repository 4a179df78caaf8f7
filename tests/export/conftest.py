"""Fixtures of the export tests: a small trained model, a hand-made run dir, data files.

The model is the real graph (`build_model("fa_ca")`) with 2 heads of size 8,
trained for a few epochs on MFCC-shaped data whose classes differ by a
band-limited pattern, so its probabilities are confident and an int8 file has
something to agree with. Everything is built once per session.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

NUM_CLASSES = 4
LABELS = ["neutral", "happy", "sad", "angry"]


def make_mfcc(count: int, seed: int):
    """Raw-MFCC-like segments (count, 26, 63) and labels: class c adds a moving pattern in band c."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % NUM_CLASSES
    x = rng.normal(0.0, 1.0, (count, 26, 63))
    x += np.linspace(-150.0, 10.0, 26)[None, :, None] * 0.1  # per-coefficient offsets (un-standardised)
    t = np.arange(63)
    for i, c in enumerate(labels):
        band = slice(2 + 6 * c, 6 + 6 * c)
        x[i, band, :] += 2.5 * np.sin(t / (2.0 + c) + rng.uniform(0, 6))[None, :]
    x *= np.linspace(1.0, 4.0, 26)[None, :, None]
    return x.astype(np.float32), labels.astype(np.int64)


@pytest.fixture(scope="session")
def trained_model():
    import keras

    from sercal_keras.models import build_model

    keras.utils.set_random_seed(0)
    x, y = make_mfcc(128, seed=0)
    mean = x.mean(axis=(0, 2))
    variance = x.var(axis=(0, 2))
    model = build_model("fa_ca", num_classes=NUM_CLASSES, num_heads=2, head_dim=8, feature_mean=mean,
                        feature_variance=variance)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=16, epochs=6, verbose=0)
    # Make Focus- and Calibration-Attention matter (they start as the identity).
    model.get_layer("focus_attention").beta.assign(np.array([0.8, -0.5], np.float32))
    excite = model.get_layer("calibration_attention").excite_dense
    excite.bias.assign(np.array([0.7, -0.9], np.float32))
    return model


@pytest.fixture(scope="session")
def run_dir(trained_model, tmp_path_factory):
    """A hand-made run directory: model.keras + model_card.json (no config.json)."""
    from sercal_keras.audio.frontend import FeatureConfig
    from sercal_keras.model_card import ModelCard

    path = tmp_path_factory.mktemp("run")
    trained_model.save(path / "model.keras")
    layer = trained_model.get_layer("mfcc_standardization")
    mean = np.asarray(layer.mean).reshape(-1)
    std = np.sqrt(np.asarray(layer.variance).reshape(-1))
    ModelCard(labels=LABELS, feature_config=FeatureConfig().to_dict(), feature_mean=mean.tolist(),
              feature_std=std.tolist(), corpus="handmade", variant="fa_ca",
              extra={"fold": "none", "seed": 0}).save(path / "model_card.json")
    return path


@pytest.fixture(scope="session")
def mfcc_npy(tmp_path_factory):
    """Raw MFCC segments (48, 26, 63) as a .npy file (representative data)."""
    path = tmp_path_factory.mktemp("data") / "mfcc.npy"
    np.save(path, make_mfcc(48, seed=1)[0])
    return path


@pytest.fixture(scope="session")
def held_out():
    """Held-out raw MFCC segments and labels."""
    return make_mfcc(64, seed=2)


@pytest.fixture(scope="session")
def waveform_npy(tmp_path_factory):
    """Waveform segments (8, 32000): tones + noise with class-dependent pitch."""
    rng = np.random.default_rng(3)
    t = np.arange(32000) / 16000.0
    waves = [0.3 * np.sin(2 * np.pi * (150 + 60 * k) * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 2 * t))
             + 0.02 * rng.standard_normal(32000) for k in range(8)]
    path = tmp_path_factory.mktemp("wave") / "waves.npy"
    np.save(path, np.asarray(waves, np.float32))
    return path


def read_json(path: Path):
    return json.loads(Path(path).read_text())
