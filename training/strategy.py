"""Which `tf.distribute` strategy to train under, and who writes the artifacts.

- `TF_CONFIG` naming several tasks (`worker`, optionally `chief`) →
  `MultiWorkerMirroredStrategy`: one replica per device on every worker; the
  chief (task `chief`, else `worker` 0) writes the final artifacts, the others
  write the same files to a private temporary folder that is deleted at the end.
- otherwise `MirroredStrategy` over every visible GPU; with no GPU over every
  logical CPU device (one by default; tests split the CPU into two to check
  that distribution does not change the result).

The global batch is `per_replica_batch × num_replicas_in_sync`. Create the
strategy before any other TensorFlow op: `MultiWorkerMirroredStrategy` must
configure the runtime first.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional


@dataclasses.dataclass
class Distribution:
    """The strategy and this process' place in it.

    Attributes:
        strategy: the `tf.distribute.Strategy`.
        kind: `"mirrored"` or `"multi_worker"`.
        num_replicas: replicas in sync over all workers.
        num_workers: worker processes (1 without TF_CONFIG).
        task_type: `chief`, `worker` or None.
        task_index: this worker's index within its task type.
        is_chief: whether this process writes the final artifacts.
        devices: the local devices of the replicas.
    """

    strategy: Any
    kind: str
    num_replicas: int
    num_workers: int
    task_type: Optional[str]
    task_index: int
    is_chief: bool
    devices: tuple

    def global_batch(self, per_replica: int) -> int:
        return per_replica * self.num_replicas

    def describe(self) -> str:
        where = ", ".join(self.devices)
        if self.kind == "multi_worker":
            return (f"MultiWorkerMirroredStrategy: {self.num_workers} workers, {self.num_replicas} replicas "
                    f"(this: {self.task_type} {self.task_index}{', chief' if self.is_chief else ''}; {where})")
        return f"MirroredStrategy: {self.num_replicas} replica(s) on {where}"

    def worker_dir(self, output_dir) -> Path:
        """Where this process writes: the output dir on the chief, a private temp dir elsewhere.

        The temp dir is deterministic (output dir + task), so a non-chief worker that
        is restarted finds its own training backup again.
        """
        if self.is_chief:
            return Path(output_dir)
        digest = hashlib.sha256(str(Path(output_dir).resolve()).encode()).hexdigest()[:10]
        return Path(tempfile.gettempdir()) / f"sercal-worker-{digest}-{self.task_type}{self.task_index}"


def chief_decides(distribution: Distribution, flags):
    """The chief's list of booleans, on every worker (a collective: all workers must call it).

    Workers may not see the chief's files (other machines, or the chief has just
    deleted them for `--overwrite`), so decisions such as "this run is finished,
    skip it" are taken by the chief and broadcast: every worker must train the
    same runs, or their collective ops would wait for each other forever.
    """
    flags = [bool(f) for f in flags]
    if distribution.kind != "multi_worker" or not flags:
        return flags
    import tensorflow as tf

    mine = tf.constant([1.0 if (f and distribution.is_chief) else 0.0 for f in flags])

    @tf.function
    def broadcast():
        per_replica = distribution.strategy.run(lambda: tf.identity(mine))
        return distribution.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    return [bool(v > 0) for v in broadcast().numpy()]


def read_tf_config() -> Dict[str, Any]:
    """`TF_CONFIG` as a dict ({} when unset); a malformed value raises `ValueError`."""
    raw = os.environ.get("TF_CONFIG", "").strip()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise ValueError("TF_CONFIG must be a JSON object with 'cluster' and 'task'")
    return data


def cluster_size(tf_config: Dict[str, Any]) -> int:
    """Number of training tasks (chief + workers) TF_CONFIG names."""
    cluster = tf_config.get("cluster") or {}
    return len(cluster.get("chief", [])) + len(cluster.get("worker", []))


def is_chief_task(tf_config: Dict[str, Any]) -> bool:
    """The chief is task `chief`, or `worker` 0 when the cluster has no chief."""
    task = tf_config.get("task") or {}
    cluster = tf_config.get("cluster") or {}
    if task.get("type") == "chief":
        return True
    return task.get("type", "worker") == "worker" and int(task.get("index", 0)) == 0 and not cluster.get("chief")


def patch_keras_for_multi_worker() -> bool:
    """Fixes Keras 3's metric reduction under `MultiWorkerMirroredStrategy` (idempotent).

    Keras 3.15's TF trainer reduces the per-step logs with
    `strategy.reduce("MEAN", v, axis=0)` when several workers collaborate;
    the logs are scalars, so every `fit` fails with "Invalid reduction
    dimension 0 for input with 0 dimensions" (tensorflow/tensorflow#72388,
    keras-team/keras#20585, both unresolved upstream). The mean over replicas
    of a scalar is `axis=None`; this replaces the "mean" reduction for the
    multi-worker case only (everything else goes to Keras' own function).
    Returns whether the patch was applied now.
    """
    from keras.src.backend.tensorflow import trainer as tf_trainer

    if getattr(tf_trainer, "_sercal_multi_worker_patch", False):
        return False
    original = tf_trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        multi_worker = tf_trainer._collective_all_reduce_multi_worker(strategy)
        if multi_worker and reduction in ("auto", "mean"):
            from keras.src import tree

            return tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return original(values, strategy, reduction)

    tf_trainer.reduce_per_replica = reduce_per_replica
    tf_trainer._sercal_multi_worker_patch = True
    return True


def make_distribution() -> Distribution:
    """Builds the strategy for this process (see the module docstring)."""
    import tensorflow as tf

    tf_config = read_tf_config()
    if cluster_size(tf_config) > 1:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        patch_keras_for_multi_worker()
        task = tf_config.get("task") or {}
        resolver = strategy.cluster_resolver
        return Distribution(
            strategy=strategy,
            kind="multi_worker",
            num_replicas=strategy.num_replicas_in_sync,
            num_workers=cluster_size(tf_config),
            task_type=resolver.task_type if resolver else task.get("type"),
            task_index=int(resolver.task_id if resolver else task.get("index", 0)),
            is_chief=is_chief_task(tf_config),
            devices=tuple(strategy.extended.worker_devices),
        )
    gpus = tf.config.list_logical_devices("GPU")
    devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
    strategy = tf.distribute.MirroredStrategy(devices=devices)
    return Distribution(
        strategy=strategy,
        kind="mirrored",
        num_replicas=strategy.num_replicas_in_sync,
        num_workers=1,
        task_type=None,
        task_index=0,
        is_chief=True,
        devices=tuple(devices),
    )


def split_cpu(num_devices: int) -> None:
    """Splits the physical CPU into `num_devices` logical devices (call before any TF op).

    For testing distribution on a machine without GPUs.
    """
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(num_devices)]
    )
