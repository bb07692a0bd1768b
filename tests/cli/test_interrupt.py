"""Ctrl-C during ``fastmlp train``: a real child process gets SIGINT after its
first epoch line, exits 130, says where it saved, and the file it saved loads
with the history of the completed epochs."""

import re
import signal
import subprocess
import sys
import time

import pytest
from helpers import ctrl_c_as_at_a_terminal, subprocess_env, write_synthetic_mnist

from fastmlp.model import load

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def start_training(tmp_path, *options):
    data = write_synthetic_mnist(tmp_path / "data", n_train=2000, n_test=200)
    command = [sys.executable, "-m", "fastmlp", "train", "--data-dir", str(data), "--no-download",
               "--backend", "numpy", "--layers", "784,30,10", "--lr", "3",
               "--epochs", "100000", *options]  # far more than it can finish: it is still running when signalled
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path, env=subprocess_env(), preexec_fn=ctrl_c_as_at_a_terminal)


def interrupt_after_first_epoch(proc, epochs=1):
    """Read stdout until the ``epochs``-th epoch line, then send SIGINT; return (status, out, err)."""
    lines = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith(f"Epoch {epochs}:"):
            proc.send_signal(signal.SIGINT)
            break
    else:
        proc.kill()
        pytest.fail("no epoch line within 60 s")
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return proc.returncode, "".join(lines) + out, err


def test_sigint_saves_the_last_completed_epoch_and_exits_130(tmp_path):
    path = tmp_path / "model.npz"
    proc = start_training(tmp_path, "--save", str(path))
    status, out, err = interrupt_after_first_epoch(proc)
    assert status == 130, err
    match = re.search(r"interrupted after epoch (\d+); saved the state of epoch (\d+) to (\S+)", err)
    assert match, err
    done = int(match.group(1))
    assert done >= 1 and int(match.group(2)) == done and match.group(3) == str(path)
    assert "Traceback" not in err and err.count("\n") == 1
    model = load(path)
    assert model.epochs_trained_ == done
    assert [r["epoch"] for r in model.history_] == list(range(1, done + 1))
    # Every completed epoch printed its line; no epoch after `done` did.
    assert f"Epoch {done}: loss" in out and f"Epoch {done + 1}: loss" not in out
    assert not list(tmp_path.glob(".*.tmp"))


def test_sigint_without_save_says_nothing_was_saved(tmp_path):
    proc = start_training(tmp_path)
    status, _, err = interrupt_after_first_epoch(proc)
    assert status == 130
    assert re.search(r"interrupted after epoch \d+; nothing saved \(add --save PATH", err), err


def test_sigint_keeps_the_log_of_completed_epochs_and_resume_continues(tmp_path):
    from fastmlp.cli.report import read_history

    path, log = tmp_path / "model.npz", tmp_path / "log.csv"
    proc = start_training(tmp_path, "--save", str(path), "--log", str(log), "--checkpoint-every", "1")
    status, _, err = interrupt_after_first_epoch(proc, epochs=2)
    assert status == 130, err
    done = load(path).epochs_trained_
    assert done >= 2
    assert [r["epoch"] for r in read_history(log)] == list(range(1, done + 1))
    # Resume for one more epoch: numbering continues.
    data = tmp_path / "data"
    result = subprocess.run([sys.executable, "-m", "fastmlp", "train", "--resume", str(path), "--epochs", "1",
                             "--data-dir", str(data), "--no-download", "--quiet"],
                            capture_output=True, text=True, cwd=tmp_path, env=subprocess_env(), timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"Epoch {done + 1}: loss" in result.stdout
    assert load(path).epochs_trained_ == done + 1
