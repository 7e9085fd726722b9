"""Training throughput of our Keras pipeline against a PyTorch reference of the seed's model, on the same batches.

Each side runs in its own worker process (clean peak RSS, its own thread setting): ours is `model.fit` on
`training_dataset` (bucketed, right-padded tf.data); the reference is nn.Embedding(padding_idx=0) -> bidirectional
nn.LSTM over `pack_padded_sequence` -> Linear projection -> Linear head, Adam (0.9, 0.999) with gradient-norm
clipping and a cosine schedule with warm-up, fed the very batches `bucket_batches` gives ours. Both models have
the config's sizes without character features (the reference has none).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np

from kerasrnn.files import atomic_write_json

ROOT = Path(__file__).resolve().parents[1]  # the workers run `python -m benchmarks.*` from here
WARMUP_STEPS = 5
SYNTHETIC = {"synthetic_long": (16, 256), "synthetic_64x64": (64, 64)}  # rows per batch, tokens per row
# real_long: the real training sentences joined 8 at a time into long rows of real length spread, 16 rows a batch,
# bucketed by length like every training batch of ours
REAL_LONG = (16, 8)  # rows per batch, sentences per row


def batches_for(config, data, steps: int, seed: int):
    """The first `steps + WARMUP_STEPS` training batches (row indices), epochs chained, as ours sees them."""
    from kerasrnn.data.pipeline import bucket_batches

    out, epoch = [], 0
    while len(out) < steps + WARMUP_STEPS:
        out.extend(bucket_batches(data, config.training.batch_size, seed=seed, epoch=epoch))
        epoch += 1
    return out[: steps + WARMUP_STEPS]


def synthetic_data(vocab_size: int, num_labels: int, rows: int, length: int, seed: int = 0):
    """Long sequences of random ids, all of one length (no padding), with random targets."""
    from kerasrnn.data.pipeline import EncodedData

    rng = np.random.default_rng(seed)
    tokens = [rng.integers(2, vocab_size, length).astype(np.int32) for _ in range(rows)]
    targets = [rng.integers(0, num_labels, length).astype(np.int32) for _ in range(rows)]
    return EncodedData(tokens, None, targets)


def load_case(config_path: str, case: str, seed: int):
    """(config, encoded training data without characters, vocabulary size, number of labels)."""
    from kerasrnn.config import Config
    from kerasrnn.preprocessor import Preprocessor
    from kerasrnn.run import read_split

    config = Config.load(config_path).replace("data", use_chars=False)
    if config.task.type != "tagging":
        raise ValueError(f"{config_path}: the training benchmark compares taggers; this config is a "
                         f"{config.task.type} task")
    examples = read_split(config, "train")
    preprocessor = Preprocessor.build(config, examples)
    vocab_size, num_labels = len(preprocessor.vocab), len(preprocessor.labels)
    if case in SYNTHETIC:
        rows, length = SYNTHETIC[case]
        config = config.replace("training", batch_size=rows)
        return config, synthetic_data(vocab_size, num_labels, 4 * rows, length, seed), vocab_size, num_labels
    if case not in ("real", "real_long"):
        raise ValueError(f"unknown benchmark case {case!r}; choose real, real_long, {', '.join(SYNTHETIC)}")
    data = preprocessor.encode(examples, targets=True)
    if case == "real_long":
        rows, joined = REAL_LONG
        config = config.replace("training", batch_size=rows)
        data = joined_rows(data, joined)
    return config, data, vocab_size, num_labels


def joined_rows(data, k: int):
    """Each run of `k` consecutive rows of `data` (ids and targets) as one row."""
    from kerasrnn.data.pipeline import EncodedData

    groups = [range(i, min(i + k, len(data))) for i in range(0, len(data), k)]
    return EncodedData([np.concatenate([data.token_ids[j] for j in g]) for g in groups], None,
                       [np.concatenate([data.targets[j] for j in g]) for g in groups])


def save_batches(config, data, batches, vocab_size: int, num_labels: int, path: Path) -> Path:
    """The batches as right-padded arrays plus the model sizes, for both workers."""
    from kerasrnn.data.pipeline import batch_features, batch_targets
    from kerasrnn.trainers.build import trained_rows

    m, t = config.model, config.training
    # the rows the training rows read (as training.train builds the model; synthetic rows read them all)
    meta = {"vocab_size": vocab_size, "trainable_rows": trained_rows(data),
            "num_labels": num_labels, "embedding_dim": m.embedding_dim, "units": m.units,
            "num_layers": m.num_layers, "output_dim": m.output_dim, "dropout": m.dropout, "seed": t.seed,
            "learning_rate": t.learning_rate, "warmup_fraction": t.warmup_fraction, "clipnorm": t.clipnorm,
            "min_learning_rate_ratio": t.min_learning_rate_ratio, "num_batches": len(batches),
            "config": config.to_toml()}
    arrays = {"meta": np.array(json.dumps(meta))}
    for i, index in enumerate(batches):
        width = int(data.lengths[index].max())
        arrays[f"tok_{i}"] = batch_features(data, index, width)["token_ids"]
        arrays[f"tgt_{i}"] = batch_targets(data, index, width)
    np.savez(path, **arrays)
    return path


def _worker_start(path: str, threads: int):
    """What every worker of ours does first: the trainer's thread pools for `threads` cores (before any TensorFlow
    work), the calibration workload, the saved batches with their meta and config. Returns (saved, meta, config,
    calibration ms before)."""
    from kerasrnn.trainers.threads import configure_threads

    configure_threads(threads)
    from benchmarks.calibration import calibration_ms
    from kerasrnn.config import Config

    calibration_before = calibration_ms()
    saved = np.load(path)
    meta = json.loads(str(saved["meta"]))
    return saved, meta, Config.from_dict(tomllib.loads(meta["config"])), calibration_before


def _worker_result(ends, waits, tokens, losses, calibration_before) -> dict:
    """A worker's raw figures (what `summarise` reads), with its peak memory and the calibration after."""
    from benchmarks.calibration import calibration_ms

    return {"ends": ends, "waits": waits, "tokens": tokens, "losses": losses,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            "calibration_ms": [calibration_before, calibration_ms()]}


def run_ours(path: str, threads: int, cell: str | None = None) -> dict:
    """Our side: `model.fit` on a tf.data pipeline over the saved batches; same result keys as the reference.
    `cell` ("lstm", "gru", "sru") replaces the config's recurrent cell, every size kept."""
    saved, meta, config, calibration_before = _worker_start(path, threads)
    import keras
    import tensorflow as tf

    from kerasrnn.trainers.build import build_model, make_optimizer

    if cell:
        config = config.replace("model", cell=cell)
    keras.utils.set_random_seed(config.training.seed)
    model = build_model(config, meta["vocab_size"], meta["num_labels"], 0, trainable_rows=meta["trainable_rows"])
    model.compile(optimizer=make_optimizer(config.training, meta["num_batches"]),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    n = meta["num_batches"]

    def generate():
        for i in range(n):
            yield {"token_ids": saved[f"tok_{i}"]}, saved[f"tgt_{i}"]

    signature = ({"token_ids": tf.TensorSpec([None, None], tf.int32)}, tf.TensorSpec([None, None], tf.int32))
    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature).prefetch(4)
    begins, ends, losses = [], [], []

    class Timer(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            begins.append(time.perf_counter())

        def on_train_batch_end(self, batch, logs=None):
            ends.append(time.perf_counter())
            losses.append(float(logs["loss"]))

    model.fit(dataset, epochs=1, steps_per_epoch=n, callbacks=[Timer()], verbose=0)
    # Keras' callback sees the batch only once its data is in hand: the gap between one batch's end and the
    # next one's begin is the wait for data (plus callback overhead).
    waits = [0.0] + [b - e for b, e in zip(begins[1:], ends[:-1], strict=True)]
    tokens = [int((saved[f"tok_{i}"] != 0).sum()) for i in range(n)]
    return _worker_result(ends, waits, tokens, losses, calibration_before)


def layer_inputs(saved, meta, seed: int):
    """Per saved batch: random inputs of the recurrent layer's width ([rows, length, embedding_dim], the
    benchmark's models have no character features) and the batch's mask."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(meta["num_batches"]):
        tok = saved[f"tok_{i}"]
        out.append((rng.standard_normal((*tok.shape, meta["embedding_dim"])).astype(np.float32), tok != 0))
    return out


def run_layer(path: str, threads: int, cell: str) -> dict:
    """The recurrent layer alone: the encoder's first layer (Bidirectional, `cell`, the config's units) trained on
    the saved batches' shapes and masks with random inputs; each step its forward pass, the gradients of its weights
    and of its inputs (which the embedding needs), and the trainer's optimizer update. What the rest of the model
    costs (embedding, dropout, projection, head, loss) is the same for every cell and is left out here."""
    saved, meta, config, calibration_before = _worker_start(path, threads)
    import keras
    import tensorflow as tf

    from kerasrnn.models.contextual_encoder import CELLS
    from kerasrnn.trainers.build import make_optimizer

    keras.utils.set_random_seed(config.training.seed)
    batches = layer_inputs(saved, meta, config.training.seed)
    features = meta["embedding_dim"]
    layer = keras.layers.Bidirectional(CELLS[cell](meta["units"], return_sequences=True))
    layer.build((None, None, features))
    optimizer = make_optimizer(config.training, meta["num_batches"])
    optimizer.build(layer.trainable_variables)

    @tf.function(input_signature=[tf.TensorSpec([None, None, features], tf.float32),
                                  tf.TensorSpec([None, None], tf.bool)])
    def step(x, mask):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, mask=mask, training=True)
            valid = tf.cast(mask, y.dtype)[..., None]
            loss = tf.reduce_sum(tf.square(y) * valid) / tf.reduce_sum(valid)
        grads = tape.gradient(loss, [x, *layer.trainable_variables])
        optimizer.apply_gradients(zip(grads[1:], layer.trainable_variables, strict=True))
        return loss, tf.reduce_sum(grads[0])

    ends, losses = [], []
    for x, mask in batches:
        loss, _ = (v.numpy() for v in step(x, mask))
        ends.append(time.perf_counter())
        losses.append(float(loss))
    return _worker_result(ends, [0.0] * len(ends), [int(m.sum()) for _, m in batches], losses, calibration_before)


def summarise(raw: dict) -> dict:
    """Figures over the steps after warm-up: step time is end to end (compute plus any wait for data)."""
    ends = np.array(raw["ends"])
    step_times = np.diff(ends)[WARMUP_STEPS - 1 :]
    tokens = int(np.sum(raw["tokens"][WARMUP_STEPS:]))
    total = float(step_times.sum())
    return {
        "nonpad_tokens_per_second": round(tokens / total, 1),
        "ms_per_step": round(1000 * float(np.median(step_times)), 2),
        "ms_per_step_mean": round(1000 * total / len(step_times), 2),
        "peak_rss_mb": round(raw["peak_rss_mb"], 1),
        "steps_timed": int(len(step_times)),
        "data_wait_fraction": round(float(np.sum(raw["waits"][WARMUP_STEPS:])) / total, 4),
        "first_loss": round(raw["losses"][0], 4),
        "last_loss": round(float(np.mean(raw["losses"][-10:])), 4),
        # the fixed workload (benchmarks.calibration) before and after the worker's steps
        "calibration_ms": raw.get("calibration_ms"),
    }


def combine(runs: list[dict]) -> dict:
    """One side's figures over repeated runs: medians (peak memory: the largest), each run's throughput kept."""
    def median(key, digits):
        return round(float(np.median([r[key] for r in runs])), digits)

    return {**runs[0], "nonpad_tokens_per_second": median("nonpad_tokens_per_second", 1),
            "ms_per_step": median("ms_per_step", 2), "ms_per_step_mean": median("ms_per_step_mean", 2),
            "data_wait_fraction": median("data_wait_fraction", 4),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
            "calibration_ms": round(float(np.median([x for r in runs for x in r["calibration_ms"] or []] or [0])), 3),
            "runs_tokens_per_second": [r["nonpad_tokens_per_second"] for r in runs]}


def throughput_ratio(row: dict, runs: dict, side: str, base: str) -> tuple[float, list[float]]:
    """`side`'s tokens per second over `base`'s: the ratio of their medians (in `row`), and run by run (`runs`)."""
    def tps(x):
        return x["nonpad_tokens_per_second"]

    return (round(tps(row[side]) / tps(row[base]), 3),
            [round(tps(s) / tps(b), 3) for s, b in zip(runs[side], runs[base], strict=True)])


def run_side(side: str, batches_path: Path, threads: int) -> dict:
    """One side in a fresh worker process ("ours", "ours_CELL": ours with that cell, "layer_CELL": that cell's
    recurrent layer alone, "pytorch"); returns its summary."""
    if side == "pytorch":
        module, extra = ["benchmarks.torch_reference"], []
    elif side.startswith("layer_"):
        module, extra = ["benchmarks.train_throughput", "--layer-worker"], [side.removeprefix("layer_")]
    else:
        module, extra = ["benchmarks.train_throughput", "--worker"], [side.removeprefix("ours").lstrip("_")]
    cmd = [sys.executable, "-m", *module, str(Path(batches_path).resolve()), str(threads), *extra]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "OMP_NUM_THREADS": str(threads),
           "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", "")}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return summarise(json.loads(line[len("RESULT "):]))
    raise RuntimeError(f"{side} worker failed with exit code {proc.returncode}:\n{proc.stderr[-3000:]}")


def padding_report(config, data, seed: int) -> dict:
    """Padded share of positions in one epoch of `data` (the real case's) with length bucketing (ours) and with
    plain shuffled batches."""
    from kerasrnn.data.pipeline import bucket_batches, padding_fraction

    bucketed = bucket_batches(data, config.training.batch_size, seed=seed, epoch=0)
    order = np.random.default_rng(seed).permutation(len(data))
    plain = [order[i : i + config.training.batch_size] for i in range(0, len(order), config.training.batch_size)]
    return {"bucketed": round(padding_fraction(data, bucketed), 4), "unbucketed": round(padding_fraction(data, plain), 4)}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = list(result["cases"])
    sides = ["ours", "pytorch", *(f"ours_{cell}" for cell in result.get("cells", []))]
    fig, ax = plt.subplots(figsize=(6 + len(sides) - 2, 4))
    x = np.arange(len(cases))
    width = 0.76 / len(sides)
    labels = {"ours": f"kerasrnn (Keras 3 fit, {result.get('cell', 'lstm')})", "pytorch": "PyTorch reference"}
    for k, side in enumerate(sides):
        values = [result["cases"][c][side]["nonpad_tokens_per_second"] for c in cases]
        ax.bar(x + (k - (len(sides) - 1) / 2) * width, values, width,
               label=labels.get(side, f"kerasrnn, {side.removeprefix('ours_')}"))
    for i, c in enumerate(cases):
        ax.annotate(f"{result['cases'][c]['ratio']:.2f}x", (x[i], 0), xytext=(0, 4), textcoords="offset points",
                    ha="center")
    ax.set_xticks(x, cases)
    ax.set_ylabel("non-pad tokens / second (training)")
    loads = [row["load_average"]["before"][0] for row in result["cases"].values()]
    ax.set_title(f"{result['config']}: {result['threads']} threads, {result['steps']} steps, "
                 f"median of {result['repeats']} runs\ncalibration {result['calibration_ms']:.1f} ms "
                 f"(1024x1024 matmul), 1-min load {min(loads):.2f}-{max(loads):.2f}", fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def benchmark(config_path: str, output_dir, threads: int = 2, steps: int = 100, seed: int = 0,
              cases=("real", "synthetic_64x64", "synthetic_long"), repeats: int = 3, cells=()) -> dict:
    """Each case runs `repeats` times per side, the sides taking turns to go first (a machine that slows down
    or speeds up during the run then biases neither); figures are medians, the ratio that of the medians.
    `cells` adds sides: our model with another recurrent cell, every size kept (`cell_ratio`: its throughput over
    the config's cell's), and the recurrent layer alone of each cell, the config's too (`layer_ratio`: the
    other cell's layer throughput over the config's cell's; `run_layer`)."""
    from kerasrnn.config import Config

    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    own_cell = Config.load(config_path).model.cell
    for cell in cells:
        if cell not in ("lstm", "gru", "sru") or cell == own_cell:
            raise ValueError(f"--cells takes cells other than the config's {own_cell!r} among lstm, gru, sru; "
                             f"got {cell!r}")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    from kerasrnn.trainers.threads import training_threads

    intra, inter = training_threads(threads)
    result = {"config": Path(config_path).stem, "threads": threads, "tf_threads": {"intra_op": intra, "inter_op": inter},
              "steps": steps, "repeats": repeats, "cell": own_cell, "cells": list(cells), "cases": {}}
    layers = [f"layer_{cell}" for cell in (own_cell, *cells)] if cells else []
    order = ["ours", "pytorch", *(f"ours_{cell}" for cell in cells), *layers]
    real = None  # (config, data) of the real case, for the padding report
    for case in cases:
        config, data, vocab_size, num_labels = load_case(config_path, case, seed)
        if case == "real":
            real = config, data
        case_steps = steps if case == "real" else max(steps // 4, 10)
        load_before = [round(x, 2) for x in os.getloadavg()]
        batches = batches_for(config, data, case_steps, seed)
        path = save_batches(config, data, batches, vocab_size, num_labels, output_dir / f"batches_{case}.npz")
        row = {"batch_size": config.training.batch_size,
               "mean_length": round(float(np.mean([data.lengths[b].mean() for b in batches])), 2)}
        runs = {side: [] for side in order}
        try:
            for r in range(repeats):
                for side in order if r % 2 == 0 else order[::-1]:
                    print(f"[train-bench] {case}: {side}, run {r + 1}/{repeats}, {case_steps} timed steps, "
                          f"{threads} threads", flush=True)
                    runs[side].append(run_side(side, path, threads))
        finally:
            path.unlink(missing_ok=True)
        row.update({side: combine(side_runs) for side, side_runs in runs.items()})
        # 1, 5 and 15-minute load averages of the machine before and after the case (other work shows here)
        row["load_average"] = {"before": load_before, "after": [round(x, 2) for x in os.getloadavg()]}
        row["ratio"], row["ratio_per_run"] = throughput_ratio(row, runs, "ours", "pytorch")
        for key, side, base in (("cell_ratio", "ours_{}", "ours"), ("layer_ratio", "layer_{}", f"layer_{own_cell}")):
            pairs = {cell: throughput_ratio(row, runs, side.format(cell), base) for cell in cells}
            row[key] = {cell: median for cell, (median, _) in pairs.items()}
            row[f"{key}_per_run"] = {cell: per_run for cell, (_, per_run) in pairs.items()}
        result["cases"][case] = row
    main = result["cases"][cases[0]]
    result.update(ours=main["ours"], pytorch=main["pytorch"], ratio=main["ratio"])
    result["calibration_ms"] = round(float(np.median([row[side]["calibration_ms"] for row in result["cases"].values()
                                                      for side in order])), 3)
    pads = padding_report(*(real or load_case(config_path, "real", seed)[:2]), seed)
    result["padding_fraction"] = pads["bucketed"]
    result["padding_fraction_unbucketed"] = pads["unbucketed"]
    atomic_write_json(result, output_dir / "train_bench.json")
    plot(result, output_dir / "train_bench.png")
    return result


if __name__ == "__main__" and sys.argv[1:2] == ["--worker"]:  # one side's worker process (see run_side)
    print("RESULT " + json.dumps(run_ours(sys.argv[2], int(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else None)),
          flush=True)
elif __name__ == "__main__" and sys.argv[1:2] == ["--layer-worker"]:
    print("RESULT " + json.dumps(run_layer(sys.argv[2], int(sys.argv[3]), sys.argv[4])), flush=True)
