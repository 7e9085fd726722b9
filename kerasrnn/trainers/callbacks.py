"""Keras callbacks of training runs: the dev metric and dev perplexity with best-weight keeping, the NaN stop,
and test fault injection."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import keras
import numpy as np

from kerasrnn.files import atomic_save_model
from kerasrnn.metrics import score
from kerasrnn.models.sequence_tagger import crf_decoding
from kerasrnn.trainers.checkpoints import epoch_ended, fault
from kerasrnn.trainers.evaluation import log_prob_function, perplexity, predict


class BestWeights(keras.callbacks.Callback):
    """After each epoch: `value()` on the dev set (logged as `val_<name>`); the best weights kept in memory and
    saved atomically to `checkpoint_path`. `higher_is_better` says which way is best."""

    name = "metric"
    higher_is_better = True

    def __init__(self, checkpoint_path, patience: int | None = None):
        super().__init__()
        self.checkpoint_path = Path(checkpoint_path)
        self.best = -np.inf if self.higher_is_better else np.inf
        self.best_epoch, self.best_weights = -1, None
        self.patience, self.epoch = patience, 0
        self.interrupt = None  # a `StopOnSignal`, when training stops on signals

    def value(self) -> float:
        raise NotImplementedError

    def on_epoch_end(self, epoch, logs=None):
        if not epoch_ended(logs, self.interrupt):
            return  # diverged (keep the last good checkpoint) or stopped inside the epoch: nothing to score
        self.epoch = epoch
        value = self.value()
        logs[f"val_{self.name}"] = value
        if (value > self.best) if self.higher_is_better else (value < self.best):
            self.best, self.best_epoch = value, epoch
            self.best_weights = self.model.get_weights()
            atomic_save_model(self.model, self.checkpoint_path)
        if self.patience is not None and epoch - self.best_epoch >= self.patience:
            self.model.stop_training = True  # early stopping on the dev metric


class DevMetric(BestWeights):
    """The task metric on the dev set after each epoch (see `BestWeights`)."""

    def __init__(self, config, examples, data, labels, checkpoint_path, patience: int | None = None):
        super().__init__(checkpoint_path, patience)
        self.config, self.examples, self.data, self.labels = config, examples, data, labels
        self.name = config.task.metric
        self.runner = None

    def value(self) -> float:
        from kerasrnn.runtime.runners import KerasRunner

        self.runner = self.runner or KerasRunner(model=self.model)
        probs = predict(self.model, self.data, runner=self.runner)
        return score(self.config, self.examples, self.labels, probs, crf_decoding(self.model))[self.name]


class DevPerplexity(BestWeights):
    """Dev perplexity of a language model after each epoch (see `BestWeights`)."""

    name = "perplexity"
    higher_is_better = False

    def __init__(self, data, checkpoint_path, patience: int | None = None):
        super().__init__(checkpoint_path, patience)
        self.data, self.fn = data, None

    def value(self) -> float:
        self.fn = self.fn or log_prob_function(self.model)
        value = perplexity(self.model, self.data, fn=self.fn)["perplexity"]
        print(f"epoch {self.epoch + 1}: dev perplexity {value:.2f}", flush=True)
        return value


class StopOnNaN(keras.callbacks.Callback):
    """Stops at the first non-finite loss and remembers where (the epoch is not checkpointed)."""

    def __init__(self):
        super().__init__()
        self.where = None
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.all(np.isfinite(loss)):
            self.where = (self.epoch + 1, batch + 1)
            self.model.stop_training = True


class FaultInjection(keras.callbacks.Callback):
    """Test faults from `KERASRNN_FAULT` (`nan_at_step=N`, `kill_at_step=N`, `term_at_step=N`) at global step N of
    the run (counted from its first epoch, also after --resume); does nothing without it."""

    def __init__(self, steps_done: int = 0):
        super().__init__()
        self.step = steps_done
        self.nan_at, self.kill_at, self.term_at = fault("nan_at_step"), fault("kill_at_step"), fault("term_at_step")

    def on_train_batch_begin(self, batch, logs=None):
        self.step += 1
        if self.kill_at is not None and self.step == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        if self.term_at is not None and self.step == self.term_at:
            os.kill(os.getpid(), signal.SIGTERM)
        if self.nan_at is not None and self.step == self.nan_at:
            for w in self.model.trainable_weights:
                w.assign(np.full(w.shape, np.nan, dtype=w.dtype))
