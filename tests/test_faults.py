"""Faults of a user's machine: two runs on one output directory, a full or unwritable disk, a run directory whose
files do not belong together."""

import errno
import json
import os
import shutil
import socket
import subprocess
import sys
import types

import pytest

from kerasrnn.files import WriteError, atomic_save_model, atomic_write_text, make_dir
from kerasrnn.run import load_run
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
