"""Pre-training of a `BiLanguageModel` on raw text, and its perplexity.

A language-model run directory holds what a task run holds (`model.keras`, `vocab.txt`, `chars.txt`,
`config.toml`, `metrics.json` with `{"test": {"perplexity": x}}`, `history.png`, `logs/`, `checkpoints/`).
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import keras
import numpy as np

from kerasrnn.checkpointing import atomic_save_model, atomic_write_json
from kerasrnn.config import Config
from kerasrnn.data.pipeline import EncodedData, encode, ordered_batches, steps_per_epoch, training_dataset


def build_language_model(config: Config, vocab_size: int, char_vocab_size: int):
    from kerasrnn.models import BiLanguageModel

    m = config.model
    return BiLanguageModel(
        vocabulary_size=vocab_size, embedding_dim=m.embedding_dim, cell=m.cell, num_layers=m.num_layers,
        units=m.units, dropout=m.dropout, char_vocabulary_size=char_vocab_size,
        char_embedding_dim=m.char_embedding_dim, char_filters=m.char_filters, char_kernel_size=m.char_kernel_size,
        max_word_chars=config.data.max_word_chars, num_sampled=min(m.num_sampled, vocab_size), name="bilm",
    )


def encode_text(examples, vocab, char_vocab, config: Config) -> EncodedData:
    """Id arrays whose targets are the token ids themselves (the clean targets when inputs get word dropout)."""
    data = encode(examples, vocab, None, char_vocab=char_vocab, max_word_chars=config.data.max_word_chars,
                  max_length=config.data.max_length)
    data.targets = [ids.copy() for ids in data.token_ids]
    return data


def perplexity(model, data: EncodedData, batch_size: int = 32, fn=None) -> dict[str, float]:
    """Full-softmax perplexity of the forward LM, the backward LM, and of both (exp of the mean negative
    log-likelihood over all predicted tokens of both directions, as ELMo reports it). Tokens outside the
    vocabulary are predicted as the unknown word. `fn` (from `log_prob_function`) reuses a traced function."""
    fn = fn or log_prob_function(model)
    totals, counts = np.zeros(2), np.zeros(2)
    for _, features in ordered_batches(data, batch_size):
        lengths = (features["token_ids"] != 0).sum(1)
        predicted = int(np.maximum(lengths - 1, 0).sum())  # every token but the first (forward) or last (backward)
        for d, logp in enumerate(fn(features)):
            totals[d] -= float(np.sum(logp))
            counts[d] += predicted
    fw, bw = totals / np.maximum(counts, 1)
    return {
        "perplexity": round(math.exp((totals.sum()) / max(counts.sum(), 1)), 3),
        "forward_perplexity": round(math.exp(fw), 3),
        "backward_perplexity": round(math.exp(bw), 3),
        "tokens": int(counts[0]),
    }


def log_prob_function(model):
    import tensorflow as tf

    return tf.function(lambda inputs: model.token_log_probs(inputs, numpy=False), reduce_retracing=True)


class DevPerplexity(keras.callbacks.Callback):
    """Dev perplexity after each epoch (logged as `val_perplexity`); the best weights kept and saved atomically."""

    def __init__(self, data, checkpoint_path):
        super().__init__()
        self.data, self.checkpoint_path = data, Path(checkpoint_path)
        self.best, self.best_epoch, self.best_weights = np.inf, -1, None

    def on_epoch_end(self, epoch, logs=None):
        self.fn = getattr(self, "fn", None) or log_prob_function(self.model)
        value = perplexity(self.model, self.data, fn=self.fn)["perplexity"]
        logs["val_perplexity"] = value
        print(f"epoch {epoch + 1}: dev perplexity {value:.2f}", flush=True)
        if value < self.best:
            self.best, self.best_epoch = value, epoch
            self.best_weights = self.model.get_weights()
            atomic_save_model(self.model, self.checkpoint_path)


def train_language_model(config: Config, output_dir, *, verbose: int | None = None) -> dict:
    """Pre-trains a BiLanguageModel on the config's raw text; returns the metrics written to `metrics.json`."""
    from kerasrnn.trainer import _plot_history, build_vocabularies, make_optimizer, read_split, split_off_dev

    output_dir = Path(output_dir)
    (output_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    t = config.training
    keras.utils.set_random_seed(t.seed)
    verbose = verbose if verbose is not None else (1 if sys.stdout.isatty() else 2)

    train_examples = read_split(config, "train")
    if config.data.dev_file:
        dev_examples = read_split(config, "dev")
    else:
        train_examples, dev_examples = split_off_dev(train_examples, config.data.dev_fraction, t.seed)
    test_examples = read_split(config, "test")
    vocab, char_vocab = build_vocabularies(config, train_examples)
    train_data, dev_data, test_data = (encode_text(e, vocab, char_vocab, config)
                                       for e in (train_examples, dev_examples, test_examples))
    vocab.save(output_dir / "vocab.txt")
    if char_vocab is not None:
        char_vocab.save(output_dir / "chars.txt")
    config.save(output_dir / "config.toml")

    model = build_language_model(config, len(vocab), len(char_vocab) if char_vocab else 0)
    model.build()
    steps = steps_per_epoch(train_data, t.batch_size)
    model.compile(optimizer=make_optimizer(t, steps * t.epochs))
    monitor = DevPerplexity(dev_data, output_dir / "checkpoints" / "best.keras")
    callbacks = [
        monitor,
        keras.callbacks.EarlyStopping(monitor="val_perplexity", mode="min", patience=t.patience),
        keras.callbacks.TensorBoard(log_dir=str(output_dir / "logs"), write_graph=False),
    ]
    n_tokens = int(train_data.lengths.sum())
    print(f"{config.task.name}: {len(train_examples)} train / {len(dev_examples)} dev / {len(test_examples)} test "
          f"sentences, {n_tokens:,} training tokens, vocabulary {len(vocab)}, {model.count_params():,} parameters, "
          f"{steps} steps per epoch", flush=True)
    dataset = training_dataset(train_data, t.batch_size, seed=t.seed, word_dropout=t.word_dropout)
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
        "dev": perplexity(model, dev_data),
        "test": perplexity(model, test_data),
        "train_seconds": round(train_seconds, 1),
        "train_tokens_per_second": round(n_tokens * epochs_run / train_seconds, 1),
        "epochs": epochs_run,
        "best_epoch": monitor.best_epoch + 1,
        "parameters": model.count_params(),
        "vocabulary_size": len(vocab),
        "test_unknown_rate": round(float(np.mean(np.concatenate(test_data.token_ids) == 1)), 4),
    }
    atomic_write_json(result, output_dir / "metrics.json")
    _plot_history(history.history, "perplexity", output_dir / "history.png")
    print(f"{config.task.name}: best epoch {result['best_epoch']}, dev perplexity {result['dev']['perplexity']:.2f}, "
          f"test perplexity {result['test']['perplexity']:.2f}", flush=True)
    return result
