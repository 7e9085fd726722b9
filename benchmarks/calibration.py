"""A fixed CPU workload timed inside each benchmark worker, so figures from different days can be compared.

A float32 1024 x 1024 matrix product in NumPy (its BLAS threads follow OMP_NUM_THREADS, which the benchmark sets to
the run's thread count for both sides), 15 repeats after 3 warm-up ones: the median in milliseconds. A machine
that is busier, throttled or slower reads a larger figure; the ratio ours / reference is meant to stay put.
"""

from __future__ import annotations

import time

import numpy as np

SIZE = 1024


def calibration_ms(repeats: int = 15, warmup: int = 3) -> float:
    a = np.random.default_rng(0).standard_normal((SIZE, SIZE), dtype=np.float32)
    b = a.T.copy()
    times = []
    for i in range(warmup + repeats):
        start = time.perf_counter()
        np.dot(a, b)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return round(1000 * float(np.median(times)), 3)
