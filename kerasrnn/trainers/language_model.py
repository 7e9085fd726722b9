"""Pre-training of a `BiLanguageModel` on raw text.

A language-model run directory holds what a task run holds (`model.keras`, `vocab.txt`, `chars.txt`,
`config.toml`, `metrics.json` with `{"test": {"perplexity": x}}`, `history.png`, `logs/`, `checkpoints/`).
"""

from __future__ import annotations

import time
from pathlib import Path

import keras
import numpy as np

from kerasrnn.config import Config
from kerasrnn.data.pipeline import steps_per_epoch, training_dataset
from kerasrnn.files import atomic_save_model, atomic_write_json, make_dir
from kerasrnn.preprocessor import Preprocessor
from kerasrnn.run import read_splits
from kerasrnn.trainers.build import build_language_model, make_optimizer, plot_history, start_static_vectors
from kerasrnn.trainers.callbacks import DevPerplexity
from kerasrnn.trainers.evaluation import perplexity
from kerasrnn.trainers.lock import run_lock


def train_language_model(config: Config, output_dir, *, verbose: int = 2) -> dict:
    """Pre-trains a BiLanguageModel on the config's raw text; returns the metrics written to `metrics.json`."""
    output_dir = Path(output_dir)
    make_dir(output_dir / "checkpoints")
    with run_lock(output_dir):
        return _train_language_model(config, output_dir, verbose)


def _train_language_model(config: Config, output_dir: Path, verbose: int) -> dict:
    t = config.training
    keras.utils.set_random_seed(t.seed)

    splits = dict(zip(("train", "dev", "test"), read_splits(config), strict=True))
    preprocessor = Preprocessor.build(config, splits["train"])
    data = {k: preprocessor.encode(v, targets=True) for k, v in splits.items()}
    preprocessor.save(output_dir)
    config.save(output_dir / "config.toml")
    vocab, char_vocab = preprocessor.vocab, preprocessor.char_vocab

    model = build_language_model(config, len(vocab), len(char_vocab) if char_vocab else 0)
    model.build()
    if config.model.static_vectors:
        print(f"{config.task.name}: " + start_static_vectors(config, model.token_embedding, vocab), flush=True)
    steps = steps_per_epoch(data["train"], t.batch_size)
    model.compile(optimizer=make_optimizer(t, steps * t.epochs))
    monitor = DevPerplexity(data["dev"], output_dir / "checkpoints" / "best.keras")
    callbacks = [
        monitor,
        keras.callbacks.EarlyStopping(monitor="val_perplexity", mode="min", patience=t.patience),
        keras.callbacks.TensorBoard(log_dir=str(output_dir / "logs"), write_graph=False),
    ]
    n_tokens = int(data["train"].lengths.sum())
    print(f"{config.task.name}: {len(splits['train'])} train / {len(splits['dev'])} dev / {len(splits['test'])} "
          f"test sentences, {n_tokens:,} training tokens, vocabulary {len(vocab)}, {model.count_params():,} "
          f"parameters, {steps} steps per epoch", flush=True)
    dataset = training_dataset(data["train"], t.batch_size, seed=t.seed, word_dropout=t.word_dropout)
    start = time.perf_counter()
    history = model.fit(dataset, epochs=t.epochs, steps_per_epoch=steps, callbacks=callbacks, verbose=verbose,
                        shuffle=False)
    train_seconds = time.perf_counter() - start
    epochs_run = len(history.history["loss"])
    model.set_weights(monitor.best_weights)
    atomic_save_model(model, output_dir / "model.keras")
    result = {
        "task": config.task.name,
        "metric": "perplexity",
        "dev": perplexity(model, data["dev"]),
        "test": perplexity(model, data["test"]),
        "train_seconds": round(train_seconds, 1),
        "train_tokens_per_second": round(n_tokens * epochs_run / train_seconds, 1),
        "epochs": epochs_run,
        "best_epoch": monitor.best_epoch + 1,
        "parameters": model.count_params(),
        "vocabulary_size": len(vocab),
        "test_unknown_rate": round(float(np.mean(np.concatenate(data["test"].token_ids) == 1)), 4),
    }
    atomic_write_json(result, output_dir / "metrics.json")
    plot_history(history.history, "perplexity", output_dir / "history.png")
    print(f"{config.task.name}: best epoch {result['best_epoch']}, dev perplexity {result['dev']['perplexity']:.2f}, "
          f"test perplexity {result['test']['perplexity']:.2f}", flush=True)
    return result
