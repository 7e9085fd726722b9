"""Faults of a user's machine: two runs on one output directory, a full or unwritable disk, a run directory whose
files do not belong together, signals (the handler's rules; the end-to-end SIGTERM run is in test_resume.py), bad
multi-worker settings."""

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import types

import pytest

from kerasrnn.files import WriteError, atomic_save_model, atomic_write_text, make_dir
from kerasrnn.run import load_run
from kerasrnn.trainers.interrupt import EXIT_STATUS, StopOnSignal, TrainingInterrupted
from kerasrnn.trainers.lock import LOCK_FILE, RunDirectoryLocked, run_lock
from tests.test_training import tiny_run  # noqa: F401  (fixture)
from training import train as train_cli


def _write_lock(folder, pid):
    (folder / LOCK_FILE).write_text(json.dumps({"pid": pid, "host": socket.gethostname()}))


def test_a_second_run_on_a_locked_directory_is_refused_naming_the_holder(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _write_lock(tmp_path, holder.pid)
        with pytest.raises(RunDirectoryLocked, match=f"in use by process {holder.pid}"), run_lock(tmp_path):
            pass
    finally:
        holder.kill()
        holder.wait()
    assert (tmp_path / LOCK_FILE).exists()  # never removed by the refused runs


def test_a_stale_lock_of_a_dead_process_is_taken_over_and_released(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _write_lock(tmp_path, dead.pid)
    with run_lock(tmp_path) as path:
        assert f'"pid": {os.getpid()}' in path.read_text()
        with pytest.raises(RunDirectoryLocked, match=f"in use by process {os.getpid()}"), run_lock(tmp_path):
            pass
    assert not (tmp_path / LOCK_FILE).exists()


def test_training_into_a_directory_another_live_run_holds_exits_2(tmp_path, tiny_run, capsys):  # noqa: F811
    out, _ = tiny_run
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        target = tmp_path / "run"
        target.mkdir()
        _write_lock(target, holder.pid)
        assert train_cli.main(["--config", str(out / "config.toml"), "--output-dir", str(target)]) == 2
        assert f"in use by process {holder.pid}" in capsys.readouterr().err
        assert not (target / "model.keras").exists()
    finally:
        holder.kill()
        holder.wait()


def test_a_full_disk_names_the_path_and_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "vocab.txt"
    path.write_text("old\n")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(WriteError, match=r"vocab.txt: could not write it: no space left on the device; the previous"):
        atomic_write_text("new\n", path)
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vocab.txt"]  # no temporary file left behind


def test_a_checkpoint_that_cannot_be_written_leaves_the_previous_one(tmp_path):
    path = tmp_path / "epoch_001.keras"
    path.write_bytes(b"previous checkpoint")

    def save(target):
        open(target, "wb").write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(WriteError, match="epoch_001.keras: could not write it: no space left"):
        atomic_save_model(types.SimpleNamespace(save=save), path)
    assert path.read_bytes() == b"previous checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == ["epoch_001.keras"]


def test_an_unwritable_folder_is_named(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    with pytest.raises(WriteError, match="exists and is not a folder"):
        make_dir(tmp_path / "file")

    def denied(self, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(type(tmp_path), "mkdir", denied)
    with pytest.raises(WriteError, match=r"export: could not write it: not writable \(Permission denied\)"):
        make_dir(tmp_path / "export")


@pytest.mark.parametrize(("file", "edit", "message"), [
    ("vocab.txt", lambda t: t + "extra\n", r"vocab.txt: \d+ entries, but .*model.keras has \d+ token ids"),
    ("labels.txt", lambda t: "\n".join(t.splitlines()[:-1]) + "\n", r"labels.txt: \d+ entries, but .* outputs"),
    ("config.toml", lambda t: t.replace("units = 16", "units = 32"), r"config.toml: model.units = 32, but"),
    ("config.toml", lambda t: t.replace('type = "tagging"', 'type = "classification"'), "needs a TextClassifier"),
])
def test_a_run_directory_whose_files_do_not_belong_together_is_refused(tmp_path, tiny_run, file, edit,  # noqa: F811
                                                                        message):
    out, _ = tiny_run
    copy = tmp_path / "run"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("logs", "checkpoints", "export"))
    (copy / file).write_text(edit((copy / file).read_text()))
    with pytest.raises(ValueError, match=message):
        load_run(copy)


def _stopper(steps_per_epoch, steps_done=0):
    stopper = StopOnSignal(steps_per_epoch, steps_done)
    model = types.SimpleNamespace(stop_training=False)
    stopper.set_model(model)
    return stopper, model


def test_a_signal_stops_training_after_the_step_in_flight_and_the_handlers_are_restored():
    before = signal.getsignal(signal.SIGTERM)
    stopper, model = _stopper(steps_per_epoch=10, steps_done=3)  # a run resumed after 3 steps of epoch 5
    stopper.on_train_begin()
    try:
        stopper.on_epoch_begin(4)
        stopper.on_train_batch_end(0)
        assert stopper.stopped_at is None and not model.stop_training
        os.kill(os.getpid(), signal.SIGTERM)  # handled: the test process lives on
        assert stopper.signum == signal.SIGTERM and stopper.stopped_at is None  # the step in flight finishes
        stopper.on_train_batch_end(1)
        assert stopper.stopped_at == (4, 5) and stopper.mid_epoch and model.stop_training  # 3 + 2 steps
        stopper.on_train_batch_end(2)
        assert stopper.stopped_at == (4, 5)  # the first stop point is kept
    finally:
        stopper.on_train_end()
    assert signal.getsignal(signal.SIGTERM) is before
    assert EXIT_STATUS == {signal.SIGTERM: 143, signal.SIGINT: 130}
    assert TrainingInterrupted("stopped", signal.SIGTERM).exit_status == 143


def test_a_signal_on_the_last_step_of_an_epoch_lets_that_epoch_end_and_checkpoint_normally():
    stopper, model = _stopper(steps_per_epoch=4)
    stopper.on_train_begin()
    try:
        stopper.on_epoch_begin(1)
        os.kill(os.getpid(), signal.SIGTERM)
        stopper.on_train_batch_end(3)  # step 4 of 4
    finally:
        stopper.on_train_end()
    assert stopper.stopped_at == (2, 0) and not stopper.mid_epoch and model.stop_training


def test_ctrl_c_stops_like_sigterm_and_a_second_ctrl_c_stops_at_once():
    stopper, model = _stopper(steps_per_epoch=4)
    stopper.on_train_begin()
    try:
        os.kill(os.getpid(), signal.SIGINT)  # no KeyboardInterrupt: the step in flight finishes
        assert stopper.signum == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        stopper.on_train_end()
    assert TrainingInterrupted("stopped", signal.SIGINT).exit_status == 130


def test_a_training_interrupted_at_once_exits_130_and_points_at_the_checkpoint(tmp_path, monkeypatch, capsys):
    import kerasrnn.trainers

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(kerasrnn.trainers, "train", interrupted)
    config = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "training", "configs",
                          "pos_ewt.toml")
    code = train_cli.main(["--config", config, "--output-dir", str(tmp_path / "run")])
    assert code == 130
    assert f"the last epoch checkpoint in {tmp_path / 'run'}/checkpoints is intact: add --resume" in \
        capsys.readouterr().err


@pytest.mark.parametrize("timeout", [0, -5])
def test_a_worker_timeout_that_is_not_positive_is_refused(monkeypatch, timeout):
    from kerasrnn.trainers.distribute import cluster_config, make_strategy

    monkeypatch.setenv("TF_CONFIG", json.dumps(cluster_config(["127.0.0.1:1", "127.0.0.1:2"], 0)))
    with pytest.raises(ValueError, match=f"--worker-timeout must be > 0 seconds, got {timeout}"):
        make_strategy(timeout)
