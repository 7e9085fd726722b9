"""Wall-time measurement of model calls, and the latency input rows every timing uses."""

from __future__ import annotations

import time

import numpy as np


def time_calls(fn, runs: int) -> dict[str, float]:
    """Median and p90 wall time of `fn()` in milliseconds over `runs` calls, after 5 warm-up calls."""
    for _ in range(5):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000.0)
    return {"p50": float(np.median(times)), "p90": float(np.percentile(times, 90))}


def time_interleaved(fns: dict, runs: int, rounds: int = 5) -> dict[str, dict[str, float]]:
    """Median and p90 ms of each `fns[name]()`, the calls interleaved: `rounds` rounds, each timing every function
    for runs // rounds calls (after warm-up), so that a noisy spell on a shared machine hits every side alike."""
    per_round = max(1, runs // rounds)
    for fn in fns.values():
        for _ in range(5):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            for _ in range(per_round):
                start = time.perf_counter()
                fn()
                times[name].append((time.perf_counter() - start) * 1000.0)
    return {name: {"p50": float(np.median(t)), "p90": float(np.percentile(t, 90))} for name, t in times.items()}


def latency_input(data, tokens: int) -> dict[str, np.ndarray]:
    """One row of `tokens` real ids per input (the rows of EncodedData or IdRows `data` joined until the length
    is reached)."""
    features = {}
    for name, rows in data.inputs.items():
        x = np.concatenate(rows)[:tokens]
        reps = int(np.ceil(tokens / len(x)))
        features[name] = np.tile(x, (reps,) + (1,) * (x.ndim - 1))[None, :tokens]
    return features
