"""Which `tf.distribute` strategy a training run uses, and which process writes the run directory.

- A cluster in `TF_CONFIG` (or built by `cluster_config` from `--workers` / `--worker-index`) with two or more
  workers: `MultiWorkerMirroredStrategy`. Every worker runs the same command; worker 0 is the chief.
- One process that sees two or more GPUs: `MirroredStrategy`.
- Otherwise the default strategy (one device), as without any of this.

The config's `batch_size` is the global batch: with N workers each takes every N-th row of each global batch, so
the learning-rate schedule, steps per epoch and the data order do not change with the number of workers.
Only the chief writes the run directory (model, vocabularies, metrics, checkpoints, logs); the other workers
write to a temporary folder they delete.
"""

from __future__ import annotations

import json
import os


def cluster_config(workers: list[str], index: int) -> dict:
    """A TF_CONFIG dict for `workers` ("host:port" each) with this process as worker `index`."""
    if len(workers) < 2:
        raise ValueError(f"--workers needs two or more host:port entries, got {workers}")
    for w in workers:
        host, sep, port = w.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"--workers: {w!r} is not host:port")
    if not 0 <= index < len(workers):
        raise ValueError(f"--worker-index must be in [0, {len(workers) - 1}], got {index}")
    return {"cluster": {"worker": list(workers)}, "task": {"type": "worker", "index": index}}


def tf_config() -> dict | None:
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValueError(f"TF_CONFIG is not valid JSON: {e}") from None
    if not isinstance(config, dict) or "cluster" not in config or "task" not in config:
        raise ValueError('TF_CONFIG must hold "cluster" and "task"')
    return config


def num_workers() -> int:
    config = tf_config()
    if config is None:
        return 1
    return sum(len(v) for k, v in config["cluster"].items() if k in ("worker", "chief"))


def is_chief() -> bool:
    """True on the process that writes the run directory: the only process, the `chief` task, or worker 0
    of a cluster without a chief."""
    config = tf_config()
    if config is None or num_workers() < 2:
        return True
    task = config["task"]
    if "chief" in config["cluster"]:
        return task.get("type") == "chief"
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0


def make_strategy():
    """The strategy for this process (see the module docstring). Call before any other TensorFlow work."""
    import tensorflow as tf

    if num_workers() >= 2:
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.RING
        )
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    if len(tf.config.list_physical_devices("GPU")) >= 2:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def describe(strategy) -> str:
    if num_workers() >= 2:  # tf.distribute.MultiWorkerMirroredStrategy's class is CollectiveAllReduceStrategy
        return (f"MultiWorkerMirroredStrategy: {num_workers()} workers, {strategy.num_replicas_in_sync} replicas, "
                f"chief: {is_chief()}")
    return f"{type(strategy).__name__}: {strategy.num_replicas_in_sync} replica(s)"
