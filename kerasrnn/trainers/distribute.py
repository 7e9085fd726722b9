"""Which `tf.distribute` strategy a training run uses, and which process writes the run directory.

- A cluster in `TF_CONFIG` (or built by `cluster_config` from `--workers` / `--worker-index`) with two or more
  workers: `MultiWorkerMirroredStrategy`. Every worker runs the same command; worker 0 is the chief.
- One process that sees two or more GPUs: `MirroredStrategy`.
- Otherwise the default strategy (one device), as without any of this.

The config's `batch_size` is the global batch: with N workers each takes every N-th row of each global batch, so
the learning-rate schedule, steps per epoch and the data order do not change with the number of workers.
Only the chief writes the run directory (model, vocabularies, metrics, checkpoints, logs); the other workers
write to a temporary folder they delete. On `--resume` the chief reads its checkpoint and `broadcast` sends the state
and every weight, optimizer slot and dropout seed state to the others, so every worker continues from the same
checkpoint and data position without a shared file system.

A worker that dies: TensorFlow's coordination service (heartbeats to the chief's task) aborts the collectives of
the others once it has not heard from a worker for `worker_timeout` seconds; `training_failure` turns that error into
`WorkerLost`, which names the worker. Workers must all start within `max(worker_timeout, STARTUP_SECONDS)` seconds.
"""

from __future__ import annotations

import json
import os
import re

import numpy as np

DEFAULT_WORKER_TIMEOUT = 60.0
STARTUP_SECONDS = 120.0


class WorkerLost(RuntimeError):
    """A worker of a multi-worker run stopped answering; the message names it and says how to continue."""


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


def make_strategy(worker_timeout: float = DEFAULT_WORKER_TIMEOUT):
    """The strategy for this process (see the module docstring). Call before any other TensorFlow work.
    `worker_timeout`: seconds without a heartbeat after which a worker counts as dead (multi-worker only)."""
    import tensorflow as tf

    if num_workers() >= 2:
        if worker_timeout <= 0:
            raise ValueError(f"--worker-timeout must be > 0 seconds, got {worker_timeout}")
        _configure_coordination(worker_timeout)
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


def _configure_coordination(worker_timeout: float) -> None:
    """The coordination service MultiWorkerMirroredStrategy would configure itself (same leader and jobs), with our
    heartbeat and registration timeouts instead of TensorFlow's defaults."""
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
    from tensorflow.python.eager import context

    if context.context().coordination_service is not None:
        return
    config = tf_config()
    jobs = [coordination_config_pb2.CoordinatedJob(name=job, num_tasks=len(config["cluster"][job]))
            for job in ("chief", "worker") if job in config["cluster"]]
    leader = "chief" if "chief" in config["cluster"] else "worker"
    context.context().configure_coordination_service(
        service_type="standalone", service_leader=f"/job:{leader}/replica:0/task:0", coordinated_jobs=jobs,
        heartbeat_timeout_in_ms=int(worker_timeout * 1000),
        cluster_register_timeout_in_ms=int(max(worker_timeout, STARTUP_SECONDS) * 1000))


def worker_address(task_type: str, index: int) -> str:
    config = tf_config() or {"cluster": {}}
    hosts = config["cluster"].get(task_type, [])
    return hosts[index] if 0 <= index < len(hosts) else "?"


def training_failure(error: Exception, worker_timeout: float) -> WorkerLost | None:
    """`WorkerLost` for a TensorFlow error that says a peer is gone (None for any other error)."""
    import tensorflow as tf

    if num_workers() < 2 or not isinstance(error, (tf.errors.UnavailableError, tf.errors.AbortedError,
                                                   tf.errors.DeadlineExceededError, tf.errors.InternalError)):
        return None
    text = str(error)
    tasks = sorted(set(re.findall(r"/job:(\w+)/replica:\d+/task:(\d+)", text)))
    me = tf_config()["task"]
    lost = [(job, int(i)) for job, i in tasks if (job, int(i)) != (me["type"], int(me.get("index", 0)))]
    if not lost and "heartbeat" not in text and "unavailable" not in text.lower() and "abort" not in text.lower():
        return None
    who = ", ".join(f"{job} {i} ({worker_address(job, i)})" for job, i in lost) or "a peer worker"
    return WorkerLost(
        f"{who} stopped answering (no heartbeat for {worker_timeout:g} s, --worker-timeout); this worker stopped "
        "too. Start every worker again with the same command and --resume: they continue from the chief's last "
        "epoch checkpoint")


def broadcast(strategy, arrays: list) -> list[np.ndarray]:
    """The chief's `arrays` on every worker (the others pass arrays of the same shapes; their values are ignored):
    an all-reduce sum in which only the chief contributes, in float64 (exact for float32 and for integers below
    2**53)."""
    import tensorflow as tf

    chief = is_chief()
    dtypes = [np.asarray(a).dtype for a in arrays]
    values = [tf.constant(np.asarray(a, np.float64) if chief else np.zeros(np.shape(a), np.float64))
              for a in arrays]

    def replica_sum(*vals):  # identity: tensors placed on this replica's device, as all_reduce needs
        return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM,
                                                              [tf.identity(v) for v in vals])

    out = tf.function(lambda *vals: strategy.run(replica_sum, args=vals))(*values)
    return [np.asarray(strategy.experimental_local_results(o)[0]).astype(d) for o, d in zip(out, dtypes,
                                                                                              strict=True)]


def broadcast_json(strategy, obj) -> object:
    """The chief's JSON-serialisable `obj` on every worker (what the others pass is ignored)."""
    data = np.frombuffer(json.dumps(obj).encode("utf-8"), np.uint8) if is_chief() else np.zeros(0, np.uint8)
    (size,) = broadcast(strategy, [np.array([data.size], np.int64)])
    (received,) = broadcast(strategy, [data if is_chief() else np.zeros(int(size[0]), np.uint8)])
    return json.loads(received.tobytes().decode("utf-8"))
