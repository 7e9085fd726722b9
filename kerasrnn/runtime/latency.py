"""Latency of every artifact of an export folder and of the Keras model, side by side, at batch 1.

TensorFlow fixes its thread pools when it starts, so each thread count is timed in a fresh worker process
(`time_in_process`); `benchmark` runs the workers one after another and merges their results.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from kerasrnn.files import atomic_write_json
from kerasrnn.runtime.timing import latency_input, time_interleaved

ARTIFACT_ORDER = ("keras", "model_fp32.tflite", "model_dynamic.tflite", "model_int8.tflite", "model_int8_staged.tflite",
                  "model_int8_len32.tflite",
                  "model_fp32.onnx", "model_int8.onnx")


def _runners(run, run_dir: Path, threads: int, prefix: str = "") -> tuple[dict, dict]:
    """({name: runner}, {name: stream runner}) of a run's Keras model and its export folder's files."""
    from kerasrnn.runtime.runners import KerasRunner, load_runner, task_specs
    from kerasrnn.runtime.streaming import StreamRunner

    if run.config.task.type == "language_model":
        from kerasrnn.embedder import Embedder

        runners = {f"{prefix}keras": Embedder.from_run(run).top_layer}  # what an embedder export outputs
    else:
        runners = {f"{prefix}keras": KerasRunner(model=run.model)}
    files = sorted((run_dir / "export").glob("model_*.tflite")) + sorted((run_dir / "export").glob("model_*.onnx"))
    streams = {}
    for path in files:
        if "stream" in path.name:
            streams[prefix + path.name] = StreamRunner(path, specs=task_specs(**run.preprocessor.sizes),
                                                       num_threads=threads)
        else:
            runners[prefix + path.name] = load_runner(path, num_threads=threads, **run.preprocessor.sizes)
    return runners, streams


def time_in_process(run_dir, threads: int, seq_lens, runs: int, compare=()) -> dict:
    """Times everything in this process with `threads` threads: {artifact: {seq_len: {"p50", "p90"}}}. The
    artifacts of the runs in `compare` join the same interleaved rounds as "RUN_NAME/ARTIFACT", each fed rows of
    its own run's test split."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from kerasrnn.run import load_run, read_split

    groups = []  # (runners, streams, test data) per run
    for k, directory in enumerate([run_dir, *compare]):
        directory = Path(directory)
        run = load_run(directory)
        groups.append((*_runners(run, directory, threads, f"{directory.name}/" if k else ""),
                       run.encode(read_split(run.config, "test"))))
    # Every artifact at one length is timed in interleaved rounds (`time_interleaved`): the machine is shared.
    results = {name: {} for runners, streams, _ in groups for name in [*runners, *streams]}
    for n in seq_lens:
        fns = {}
        for runners, streams, data in groups:
            features = latency_input(data, n)
            row = {key: x[0] for key, x in features.items()}
            fns.update({name: (lambda r=runner, f=features: r(f)) for name, runner in runners.items()
                        if (getattr(runner, "fixed_length", None) or n) >= n})  # a fixed-length file takes no more
            # A stream: a row of n tokens fed from a fresh state.
            fns.update({name: (lambda s=stream, r=row: (s.reset(), s.feed(r))) for name, stream in streams.items()})
        for name, timing in time_interleaved(fns, runs).items():
            results[name][str(n)] = timing
    step = {}
    for _, streams, data in groups:  # "step": one token fed to a running stream
        token = {key: x[0, :1] for key, x in latency_input(data, 1).items()}
        step.update({name: (lambda s=stream, t=token: s.feed(t)) for name, stream in streams.items()})
    if step:
        for name, timing in time_interleaved(step, runs).items():
            results[name]["step"] = timing
    return results


def benchmark(run_dir, seq_lens=(16, 32, 128), threads=(1, 2), runs: int = 100, compare=()) -> dict:
    """Runs one worker per thread count and writes `export/bench.json` and `export/bench.png`; `compare`: other
    run folders whose exports are timed beside this one's (in the same rounds)."""
    run_dir = Path(run_dir)
    for directory in [run_dir, *map(Path, compare)]:
        if not (directory / "export").is_dir():
            raise FileNotFoundError(f"{directory}/export: no export folder; run deploy.export first")
    out = {"batch": 1, "runs": runs, "seq_lens": list(seq_lens), "threads": list(threads),
           "compare": [str(c) for c in compare], "results": {}}
    for t in threads:
        print(f"[benchmark] timing with {t} thread(s)", flush=True)
        cmd = [sys.executable, "-m", "kerasrnn.runtime.latency", str(run_dir), str(t),
               ",".join(map(str, seq_lens)), str(runs), *map(str, compare)]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"benchmark worker ({t} threads) failed:\n{proc.stderr[-3000:]}")
        out["results"][str(t)] = json.loads(proc.stdout.strip().splitlines()[-1])
    atomic_write_json(out, run_dir / "export" / "bench.json")
    plot(out, run_dir / "export" / "bench.png")
    return out


def plot(bench: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    threads = bench["threads"]
    fig, axes = plt.subplots(1, len(threads), figsize=(6 * len(threads), 4.5), squeeze=False)
    for ax, t in zip(axes[0], threads, strict=True):
        results = bench["results"][str(t)]
        names = [n for n in ARTIFACT_ORDER if n in results] + sorted(set(results) - set(ARTIFACT_ORDER))
        width = 0.8 / len(bench["seq_lens"])
        for k, n in enumerate(bench["seq_lens"]):
            values = [results[name].get(str(n), {}).get("p50", np.nan) for name in names]
            ax.bar(np.arange(len(names)) + k * width, values, width, label=f"{n} tokens")
        ax.set_xticks(np.arange(len(names)) + width * (len(bench["seq_lens"]) - 1) / 2)
        ax.set_xticklabels([n.replace("model_", "") for n in names], rotation=30, ha="right")
        ax.set_yscale("log")
        ax.set_ylabel("median latency, ms (log scale)")
        ax.set_title(f"batch 1, {t} thread(s)")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    run_dir_arg, threads_arg, lens_arg, runs_arg = sys.argv[1:5]
    result = time_in_process(run_dir_arg, int(threads_arg), [int(x) for x in lens_arg.split(",")], int(runs_arg),
                             sys.argv[5:])
    print(json.dumps(result))
