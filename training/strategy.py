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


def make_distribution() -> Distribution:
    """Builds the strategy for this process (see the module docstring)."""
    import tensorflow as tf

    tf_config = read_tf_config()
    if cluster_size(tf_config) > 1:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
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
