"""TensorFlow's CPU thread pools for training.

TensorFlow's default gives every op all the cores (intra-op) and runs as many ops side by side (inter-op). Our
training steps are many small ops (a recurrent layer's loop over time, dropout, the optimizer's per-variable
updates) on tensors of a few hundred kilobytes, and splitting such an op across threads costs more than it saves:
on 2 cores a multiply-add over [20, 32, 256] floats took 36 us with 2 intra-op threads against 11 us with one. The
two directions of a bidirectional layer are independent chains of ops, so two inter-op threads keep both cores
busy. Measured with a one-off variant of `training.benchmark --threads 2 --repeats 3` that set intra-op 1 or 2
(inter-op 2 both), one run after the other on a quiet machine: pos_ewt's real batches 11.2 vs 13.5 ms per step
(SRU 6.9 vs 8.1), 64 x 64 rows 57.9 vs 59.3, 16 x 256 rows 124.9 vs 115.6 (long rows of large ops lose 8%).
Measured on 2 cores only; on more cores each of the two op streams gets half of them.
"""

from __future__ import annotations

import os

INTER_OP_THREADS = 2  # the two directions of a bidirectional layer


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def training_threads(cores: int) -> tuple[int, int]:
    """(intra-op, inter-op) threads for training on `cores` cores."""
    if cores < 1:
        raise ValueError(f"cores must be at least 1, got {cores}")
    inter = min(INTER_OP_THREADS, cores)
    return max(1, cores // inter), inter


def configure_threads(cores: int | None = None) -> tuple[int, int] | None:
    """Sets TensorFlow's thread pools to `training_threads(cores)` (default: the available cores) and returns
    them; None where TensorFlow already runs in this process (its pools are fixed then, and stay as they are)."""
    import tensorflow as tf

    intra, inter = training_threads(available_cores() if cores is None else cores)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra)
        tf.config.threading.set_inter_op_parallelism_threads(inter)
    except RuntimeError:  # "... cannot be modified after initialization"
        return None
    return intra, inter
