"""Interrupted and diverging training: SIGKILL mid-epoch and mid-checkpoint, SIGTERM mid-epoch, --resume, NaN
loss."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import kerasrnn  # noqa: F401
from tests.test_training import tagging_file, write_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_train(config, out, *extra, fault=None):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("KERASRNN_FAULT", None)
    if fault:
        env["KERASRNN_FAULT"] = fault
    return subprocess.run([sys.executable, "-m", "training.train", "--config", str(config), "--output-dir", str(out),
                           *extra], cwd=ROOT, capture_output=True, text=True, env=env, timeout=400)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resume")
    files = [tagging_file(tmp / f"{s}.conllu", n, i) for i, (s, n) in enumerate([("train", 80), ("dev", 20),
                                                                                   ("test", 20)])]
    # 10 steps per epoch (80 rows, batch 8), 4 epochs, no early stop
    config = write_config(tmp, *files, epochs=4, patience=9)
    uninterrupted = tmp / "full"
    assert run_train(config, uninterrupted).returncode == 0
    return tmp, config, json.loads((uninterrupted / "metrics.json").read_text())


def assert_loadable(run_dir):
    """Every checkpoint is complete; a temporary file a kill left behind is never read (resume deletes it)."""
    for path in (run_dir / "checkpoints").glob("*.keras"):
        if ".tmp" not in path.name:
            keras.saving.load_model(path, safe_mode=True)


def test_sigkill_mid_epoch_then_resume_loses_at_most_that_epoch(setup):
    tmp, config, full = setup
    out = tmp / "killed_mid_epoch"
    killed = run_train(config, out, fault="kill_at_step=25")  # epoch 3, step 5
    assert killed.returncode == -9
    state = json.loads((out / "checkpoints" / "state.json").read_text())
    assert state["completed_epochs"] == 2 and state["checkpoint"] == "epoch_002.keras"
    assert_loadable(out)
    resumed = run_train(config, out, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming after epoch 2" in resumed.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == 4
    # epochs 1-2 come from the checkpointed state; epochs 3-4 rerun with the same batches, word dropout, weights,
    # optimizer state and dropout masks (the seed-generator counters are in state.json): the uninterrupted run's
    # curve and test score.
    loss, reference = metrics["history"]["loss"], full["history"]["loss"]
    np.testing.assert_allclose(loss, reference, rtol=1e-5)
    assert metrics["test"]["accuracy"] == pytest.approx(full["test"]["accuracy"], abs=1e-6)


def test_sigterm_mid_epoch_checkpoints_that_step_and_resume_gives_the_uninterrupted_losses(setup):
    tmp, config, full = setup
    out = tmp / "terminated"
    stopped = run_train(config, out, fault="term_at_step=25")  # epoch 3, step 5
    assert stopped.returncode == 143, stopped.stderr[-2000:]  # 128 + SIGTERM, as documented
    assert "SIGTERM received: stopping after this step" in stopped.stderr
    assert "stopped by SIGTERM after step 5 of 10 of epoch 3" in stopped.stderr
    state = json.loads((out / "checkpoints" / "state.json").read_text())
    assert state["completed_epochs"] == 2 and state["steps_into_epoch"] == 5
    assert state["checkpoint"] == "epoch_003_step_00005.keras"
    assert [p.name for p in (out / "checkpoints").glob("epoch_*")] == ["epoch_003_step_00005.keras"]
    assert_loadable(out)
    assert not (out / "metrics.json").exists()
    # the printed command continues the run (it reads the run's own config.toml)
    command = stopped.stderr.split("Continue with: ")[1].split()
    assert command[:3] == ["python", "-m", "training.train"] and command[-1] == "--resume"
    resumed = run_train(command[command.index("--config") + 1], command[command.index("--output-dir") + 1],
                        "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming after step 5 of epoch 3" in resumed.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == 4
    # epoch 3 = its 5 steps before the signal (their running loss mean is in state.json) + the 5 after: the
    # uninterrupted run's loss for every epoch, and its test score
    np.testing.assert_allclose(metrics["history"]["loss"], full["history"]["loss"], rtol=1e-5)
    assert metrics["test"]["accuracy"] == pytest.approx(full["test"]["accuracy"], abs=1e-6)


def test_sigkill_while_writing_a_checkpoint_keeps_the_previous_one(setup):
    tmp, config, _ = setup
    out = tmp / "killed_in_checkpoint"
    killed = run_train(config, out, fault="kill_in_checkpoint=3")
    assert killed.returncode == -9
    state = json.loads((out / "checkpoints" / "state.json").read_text())
    assert state["completed_epochs"] == 2  # epoch 3's file never replaced anything
    assert not (out / "checkpoints" / "epoch_003.keras").exists()
    assert_loadable(out)
    resumed = run_train(config, out, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 4
    assert not list((out / "checkpoints").glob("*.tmp*"))


def test_nan_loss_stops_with_a_clear_message_and_the_last_good_checkpoint(setup):
    tmp, config, _ = setup
    out = tmp / "nan"
    result = run_train(config, out, fault="nan_at_step=23")
    assert result.returncode == 3
    assert "loss became NaN or infinite at epoch 3, step 3" in result.stderr
    assert "epoch_002.keras (after epoch 2); --resume continues from it" in result.stderr
    assert_loadable(out)
    weights = keras.saving.load_model(out / "checkpoints" / "epoch_002.keras", safe_mode=True).get_weights()
    assert all(np.isfinite(w).all() for w in weights)
    assert not (out / "metrics.json").exists()


def test_resume_refuses_a_changed_config_or_nothing_to_resume(setup, tmp_path):
    tmp, config, _ = setup
    other = write_config(tmp_path, *[tmp / f"{s}.conllu" for s in ("train", "dev", "test")], epochs=5, patience=9)
    result = run_train(other, tmp / "full", "--resume")
    assert result.returncode == 2 and "the config differs from" in result.stderr
    result = run_train(config, tmp_path / "empty", "--resume")
    assert result.returncode == 2 and "nothing to resume" in result.stderr
