"""Stopping a training run on SIGTERM or Ctrl-C at the next step boundary, resumable where it stopped.

While `fit` runs, `StopOnSignal` takes SIGTERM (a scheduler's pre-emption, `kill`) and SIGINT (Ctrl-C): the step in
flight finishes, training stops, and the trainer writes a mid-epoch checkpoint atomically (weights, optimizer state,
dropout seed states, the epoch's running loss mean and the step: `kerasrnn.trainers.checkpoints`), then raises
`TrainingInterrupted`, whose message is the `--resume` command. The process exits with 128 + the signal number:
143 after SIGTERM, 130 after Ctrl-C (`EXIT_STATUS`). A second Ctrl-C while it stops raises KeyboardInterrupt at once
(the last epoch checkpoint stays). `--resume` runs the rest of that epoch on the batches it had left and then the
remaining epochs: the losses of an uninterrupted run.

Multi-worker runs keep the default signal handling (the workers would see a signal at different steps and stop
out of step): a signalled worker dies, the others stop within `--worker-timeout`, and `--resume` continues from the
last epoch checkpoint.
"""

from __future__ import annotations

import signal
import sys
import threading

import keras

SIGNALS = (signal.SIGTERM, signal.SIGINT)
EXIT_STATUS = {signal.SIGTERM: 128 + signal.SIGTERM, signal.SIGINT: 128 + signal.SIGINT}


class TrainingInterrupted(RuntimeError):
    """Training stopped on a signal after writing a resumable checkpoint; `exit_status` is 128 + the signal."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_status = 128 + int(signum)


class StopOnSignal(keras.callbacks.Callback):
    """Handles SIGTERM / SIGINT during `fit` (see the module docstring). `steps_per_epoch`: the epoch's steps;
    `steps_done`: the steps of the first epoch already run before this fit (a resumed mid-epoch run).

    After fit: `signum` is the signal received (or None) and `stopped_at` `(completed_epochs, steps)`: the epochs
    finished and the steps of the next one done when training stopped (`steps == 0` at an epoch boundary)."""

    def __init__(self, steps_per_epoch: int, steps_done: int = 0):
        super().__init__()
        self.steps_per_epoch, self.offset = steps_per_epoch, steps_done
        self.signum, self.stopped_at, self.epoch, self.previous = None, None, 0, {}

    @property
    def mid_epoch(self) -> bool:
        return self.stopped_at is not None and self.stopped_at[1] > 0

    def on_train_begin(self, logs=None):
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self._handle) for s in SIGNALS}

    def on_train_end(self, logs=None):
        for s, handler in self.previous.items():
            signal.signal(s, handler)
        self.previous = {}

    def _handle(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        self.signum = signum
        print(f"\n{signal.Signals(signum).name} received: stopping after this step and writing a checkpoint "
              "(Ctrl-C again stops at once)", file=sys.stderr, flush=True)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.signum is None or self.stopped_at is not None:
            return
        steps = self.offset + batch + 1
        # on the epoch's last step let the epoch end normally (its checkpoint is the resumable one)
        self.stopped_at = (self.epoch, steps) if steps < self.steps_per_epoch else (self.epoch + 1, 0)
        self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        self.offset = 0
