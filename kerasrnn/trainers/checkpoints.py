"""Resumable training: per-epoch checkpoints with optimizer state, a state file, divergence and fault handling.

After each finished epoch the chief writes `checkpoints/epoch_NNN.keras` (model, optimizer state, and so the
schedule's step) atomically, then `checkpoints/state.json` (atomically) naming it, then deletes older epoch
files. A process killed at any moment leaves `state.json` naming a complete checkpoint; `--resume` continues
from it at the next epoch, with the data order of an uninterrupted run (batches and word dropout are
deterministic per epoch) and its dropout masks (the state also holds the counters of the model's random seed
generators, which a `.keras` file does not keep). A killed process loses at most the interrupted epoch; one stopped
by SIGTERM or Ctrl-C (`kerasrnn.trainers.interrupt`) writes `epoch_NNN_step_SSSSS.keras` where it stopped, and the
state file then also holds `steps_into_epoch` and the epoch's running metric means: nothing is lost.

A non-finite loss stops training at once: no checkpoint is written after it, and `TrainingDiverged` names the
last good one. `KERASRNN_FAULT` injects faults for tests: `nan_at_step=N` (weights turn NaN at global step N),
`kill_in_checkpoint=N` (SIGKILL while epoch N's checkpoint is half written), `kill_at_step=N` (SIGKILL at step N),
`term_at_step=N` (SIGTERM at step N).
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import keras
import numpy as np

from kerasrnn.files import atomic_save_model, atomic_write_json

STATE_FILE = "state.json"


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the step and the last good checkpoint."""


def fault(name: str) -> int | None:
    spec = os.environ.get("KERASRNN_FAULT", "")
    key, _, value = spec.partition("=")
    return int(value) if key == name and value.isdigit() else None


def save_checkpoint(model, path: Path) -> None:
    """`atomic_save_model`, with the `kill_in_checkpoint` test fault between writing and renaming."""
    def kill_if_asked(_tmp):
        kill_epoch = fault("kill_in_checkpoint")
        if kill_epoch is not None and Path(path).name == epoch_file(kill_epoch):
            os.kill(os.getpid(), signal.SIGKILL)

    atomic_save_model(model, path, before_rename=kill_if_asked)


def seed_states(model) -> list:
    """The state variables of the model's random seed generators (dropout), in the model's layer order."""
    return [v for v in model.variables if v.name == "seed_generator_state"]


def restore_seed_states(model, values: list) -> None:
    states = seed_states(model)
    if len(states) != len(values):
        raise ValueError(f"the checkpoint holds {len(values)} random seed states, the model has {len(states)}")
    for variable, value in zip(states, values, strict=True):
        variable.assign(np.asarray(value, dtype=variable.dtype))


def epoch_ended(logs, interrupt) -> bool:
    """Whether an epoch end is a real one, to score and checkpoint: its mean loss is finite (a non-finite step makes
    it non-finite, and StopOnNaN has stopped training) and no signal stopped it inside the epoch (`interrupt`: a
    `StopOnSignal` or None)."""
    return bool(np.isfinite((logs or {}).get("loss", 0.0))) and not (interrupt is not None and interrupt.mid_epoch)


def epoch_file(epoch: int) -> str:
    return f"epoch_{epoch:03d}.keras"


def read_state(checkpoint_dir: Path) -> dict | None:
    path = Path(checkpoint_dir) / STATE_FILE
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e}); delete the checkpoints folder to start over") from None
    if not (Path(checkpoint_dir) / state["checkpoint"]).is_file():
        raise ValueError(f"{path} names {state['checkpoint']}, which is missing")
    return state


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves the model with its optimizer after every epoch, then the state file (see the module docstring)."""

    def __init__(self, checkpoint_dir: Path, monitor, history: dict | None = None, seconds: float = 0.0,
                 clock=None):
        super().__init__()
        self.dir = Path(checkpoint_dir)
        self.monitor = monitor
        self.history = {k: list(v) for k, v in (history or {}).items()}
        self.seconds, self.clock = seconds, clock
        self.interrupt = None  # a `StopOnSignal`, when training stops on signals

    def on_epoch_end(self, epoch, logs=None):
        if not epoch_ended(logs, self.interrupt):
            return  # never checkpoint a diverged model; a signal's stop writes its own (`write(..., steps)`)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(float(v))
        self.write(epoch + 1)

    def write(self, completed_epochs: int, steps: int = 0) -> Path:
        """The checkpoint after `completed_epochs` epochs, or of a run stopped after `steps` steps of the next one
        (then with the running means of the epoch's metrics, so the resumed epoch logs the loss the whole epoch
        would have)."""
        name = epoch_file(completed_epochs) if not steps else f"epoch_{completed_epochs + 1:03d}_step_{steps:05d}.keras"
        save_checkpoint(self.model, self.dir / name)
        state = {
            "completed_epochs": completed_epochs,
            "checkpoint": name,
            "best": float(self.monitor.best),
            "best_epoch": int(self.monitor.best_epoch),
            "history": self.history,
            "train_seconds": self.seconds + (self.clock() if self.clock else 0.0),
            "seed_states": [np.asarray(v).tolist() for v in seed_states(self.model)],
        }
        if steps:
            state.update(steps_into_epoch=steps,
                         metrics_state=[np.asarray(v).tolist() for v in self.model.metrics_variables])
        atomic_write_json(state, self.dir / STATE_FILE)
        for old in self.dir.glob("epoch_*.keras"):
            if old.name != name:
                old.unlink(missing_ok=True)
        return self.dir / name


class RestoreMetrics(keras.callbacks.Callback):
    """Sets the model's metric variables (the running loss mean) to `values` when the first epoch begins: a run
    resumed mid-epoch logs the mean over the whole epoch, as the uninterrupted run would."""

    def __init__(self, values: list):
        super().__init__()
        self.values = values

    def on_epoch_begin(self, epoch, logs=None):
        if self.values is not None:
            for variable, value in zip(self.model.metrics_variables, self.values, strict=True):
                variable.assign(np.asarray(value, dtype=variable.dtype))
            self.values = None
