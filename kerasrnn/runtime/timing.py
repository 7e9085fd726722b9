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


def latency_input(data, tokens: int) -> dict[str, np.ndarray]:
    """One row of `tokens` real token ids (EncodedData `data` joined until the length is reached)."""
    tok = np.concatenate(data.token_ids)[:tokens]
    reps = int(np.ceil(tokens / len(tok)))
    features = {"token_ids": np.tile(tok, reps)[None, :tokens]}
    if data.char_ids is not None:
        ch = np.concatenate(data.char_ids)[:tokens]
        features["char_ids"] = np.tile(ch, (reps, 1))[None, :tokens]
    return features
