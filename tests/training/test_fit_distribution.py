"""tf.distribute: two logical CPUs give what one device gives; two workers on loopback.

Each case runs in fresh processes: the logical-device split and the
multi-worker runtime must be configured before TensorFlow starts. The two
logical-CPU cases share one process (`TWO_CPU_SCRIPT`), run once per module.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tests.training.conftest import REPO_ROOT, SMALL_CORPUS, free_port, read_json, subprocess_env

TWO_CPU_SCRIPT = textwrap.dedent(
    """
    import sys
    out = sys.argv[1]
    from training.strategy import split_cpu
    split_cpu(2)  # before any other TensorFlow op
    import tensorflow as tf
    from training import cross_validation
    from training.config import TrainConfig
    from training.strategy import Distribution, make_distribution
    from training.trainer import load_data, subset

    # 1. global batch 8 as 1 device x 8 and as 2 logical CPUs x 4 (out/r1, out/r2)
    two = make_distribution()  # what training.fit does: every logical CPU device
    assert two.num_replicas == 2, two.describe()
    one_strategy = tf.distribute.MirroredStrategy(devices=["/cpu:0"])
    one = Distribution(one_strategy, "mirrored", 1, 1, None, 0, True, ("/cpu:0",))
    for distribution, replicas in ((one, 1), (two, 2)):
        cross_validation._DISTRIBUTION = distribution
        config = TrainConfig(corpus_options={"num_speakers": 4, "utterances_per_class": 2}, epochs=2,
                             batch_size=8 // replicas, validation_fraction=0.0, output_dir=f"{out}/r{replicas}",
                             verbosity=0, speed_perturbation=[])  # 74 segments: no batch is dropped
        cross_validation.run_cross_validation(config)

    # 2. a training set of odd size on 2 replicas: its last batch holds 1 segment (out/last_batch)
    cross_validation._DISTRIBUTION = two
    for speeds in ([], [0.9], [1.1], [0.9, 1.1]):  # a training set of odd size: its last batch can hold 1 segment
        config = TrainConfig(corpus_options={"num_speakers": 4, "utterances_per_class": 2}, epochs=1,
                             validation_fraction=0.0, speed_perturbation=speeds, output_dir=f"{out}/last_batch",
                             verbosity=0)
        data = load_data(config, log=lambda m: None).extract(log=lambda m: None)
        n = len(subset(data.train_segments, data.folds[0].train))
        if n % 2:
            break
    assert n % 2, n
    config.batch_size = max(b for b in range(1, 9) if n % (2 * b) == 1)  # per replica: global batch 2b
    print("segments", n, "global batch", 2 * config.batch_size)
    cross_validation.run_cross_validation(config)
    """
)


def losses(run_dir):
    return np.array([float(r["loss"]) for r in csv.DictReader((run_dir / "history.csv").open())])


@pytest.fixture(scope="module")
def two_cpu_runs(warm_cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("two_cpus")
    proc = subprocess.run([sys.executable, "-c", TWO_CPU_SCRIPT, str(out)], cwd=REPO_ROOT,
                          env=subprocess_env(warm_cache), capture_output=True, text=True, timeout=360)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return out


def test_two_logical_cpus_match_one_device(two_cpu_runs):
    """Global batch 8 as 1 device × 8 and as 2 logical CPUs × 4: same losses, same model (float tolerance)."""
    one, two = two_cpu_runs / "r1", two_cpu_runs / "r2"
    meta = read_json(two / "metrics.json")
    assert (meta["replicas"], meta["global_batch_size"]) == (2, 8)
    assert read_json(one / "metrics.json")["replicas"] == 1
    np.testing.assert_allclose(losses(two), losses(one), rtol=5e-3)

    import keras

    import sercal_keras  # noqa: F401

    m1, m2 = keras.models.load_model(one / "model.keras"), keras.models.load_model(two / "model.keras")
    features = np.random.default_rng(0).normal(0, 30, (16, *m1.input_shape[1:])).astype(np.float32)
    p1, p2 = m1.predict(features, verbose=0), m2.predict(features, verbose=0)
    np.testing.assert_allclose(p2, p1, atol=2e-2)


def test_a_last_batch_smaller_than_the_replicas_is_skipped_not_fatal(two_cpu_runs):
    """1 segment left for 2 replicas: one would get none and the synchronised BatchNorm all-reduce fail."""
    assert read_json(two_cpu_runs / "last_batch" / "metrics.json")["replicas"] == 2


def test_two_workers_on_loopback_write_one_model(warm_cache, tmp_path):
    out = tmp_path / "mw"
    ports = [free_port(), free_port()]
    procs = []
    for index in range(2):
        tf_config = {"cluster": {"worker": [f"localhost:{p}" for p in ports]}, "task": {"type": "worker", "index": index}}
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "training.fit", *SMALL_CORPUS, "--epochs", "1", "--batch-size", "4",
             "--output-dir", str(out)],
            cwd=REPO_ROOT, env=subprocess_env(warm_cache, TF_CONFIG=json.dumps(tf_config)),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    try:
        outputs = [p.communicate(timeout=300)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-2000:] for o in outputs)
    assert "MultiWorkerMirroredStrategy: 2 workers, 2 replicas" in outputs[0]
    assert "UA" in outputs[0] and "UA" not in outputs[1]  # only the chief reports
    assert sorted(p.name for p in out.glob("**/*.keras")) == ["model.keras"]
    meta = read_json(out / "metrics.json")
    assert (meta["replicas"], meta["global_batch_size"]) == (2, 8)
    from training.strategy import Distribution

    worker_tmp = Distribution(None, "multi_worker", 2, 2, "worker", 1, False, ()).worker_dir(out)
    assert not worker_tmp.exists(), "the non-chief worker's temporary folder is removed"


def test_mixed_precision_trains_and_saves_a_float32_model(cache_dir, tmp_path):
    from tests.training.conftest import SMALL
    from training.fit import main

    out = tmp_path / "mp"
    assert main(SMALL + ["--epochs", "1", "--mixed-precision", "--validation-fraction", "0", "--model-option",
                         "head_dim=8", "--model-option", "num_heads=2", "--output-dir",
                         str(out)]) == 0
    import keras

    import sercal_keras  # noqa: F401

    assert keras.mixed_precision.global_policy().name == "float32"  # restored
    model = keras.models.load_model(out / "model.keras")
    assert model.dtype_policy.name == "float32"
    assert read_json(out / "config.json")["mixed_precision"] is True
