"""``fastmlp sweep`` on this machine: the grid, the table and CSV, --save-best,
bad grids refused before any trial runs, and trials equal to single
``fastmlp train`` runs (bitwise: the same code trains them).

The trials run in real worker processes (``--jobs``) on the synthetic MNIST
of ``tests/helpers.py``; most use the numpy backend (no compiling), one the
numba backend.  The Dask cluster tests are in ``test_sweep_dask.py``.
"""

import csv
import sys

import numpy as np
import pytest
from helpers import InProcessRunner

from fastmlp.cli import main
from fastmlp.model import load

#: Small and quick: a trial takes a few milliseconds with the numpy backend.
BASE = ["--epochs", "2", "--limit", "300"]
TINY = [*BASE, "--layers", "784,8,10", "--batch-size", "10"]


def common(data_dir, backend="numpy"):
    return ["--data-dir", str(data_dir), "--no-download", "--backend", backend, "--quiet"]


def sweep(data_dir, *options, backend="numpy"):
    return main(["sweep", *common(data_dir, backend), *options])


def train(data_dir, *options, backend="numpy"):
    return main(["train", *common(data_dir, backend), *options])


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def table_rows(out):
    """The rows of the results table in ``out``, split into cells."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("#"))
    end = lines.index("", start)
    return [line.split() for line in lines[start + 1:end]]


# --- the grid, the table, the CSV -------------------------------------------------------

def test_sweep_runs_every_combination_and_writes_one_row_per_trial(synthetic_mnist_dir, tmp_path, capsys):
    out = tmp_path / "results.csv"
    status = sweep(synthetic_mnist_dir, *TINY, "--param", "lr=1,3", "--param", "seed=0,1,2", "--jobs", "2",
                   "--out", str(out))
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "Sweep of 6 trials (2 lr x 3 seed), 2 at a time on this machine" in captured.out
    rows = read_rows(out)
    assert list(rows[0]) == ["trial", "lr", "seed", "val_accuracy", "test_accuracy", "loss", "epochs",
                             "seconds", "threads", "error"]
    # Every combination once, numbered in grid order (the last parameter fastest).
    assert sorted((r["lr"], r["seed"], r["trial"]) for r in rows) == [
        ("1.0", "0", "1"), ("1.0", "1", "2"), ("1.0", "2", "3"), ("3.0", "0", "4"), ("3.0", "1", "5"), ("3.0", "2", "6")]
    # No validation split: ranked by test accuracy, best first.
    accuracies = [float(r["test_accuracy"]) for r in rows]
    assert accuracies == sorted(accuracies, reverse=True)
    assert all(r["val_accuracy"] == "" and r["error"] == "" and r["epochs"] == "2" for r in rows)
    # The table on stdout, in the same order, and the best trial named.
    table = table_rows(captured.out)
    assert [(t[1], t[2]) for t in table] == [(r["lr"], r["seed"]) for r in rows]
    best = rows[0]
    assert f"best by test accuracy: lr={best['lr']} seed={best['seed']}" in captured.out


def test_sweep_ranks_by_validation_accuracy_when_there_is_a_validation_split(synthetic_mnist_dir, tmp_path, capsys):
    out = tmp_path / "results.csv"
    status = sweep(synthetic_mnist_dir, *BASE, "--val-split", "100", "--param", "lr=0.5,3",
                   "--param", "layers=784,8,10:784,16,10", "--out", str(out))
    captured = capsys.readouterr()
    assert status == 0, captured.err
    rows = read_rows(out)
    assert {r["layers"] for r in rows} == {"784,8,10", "784,16,10"}
    val = [float(r["val_accuracy"]) for r in rows]
    assert val == sorted(val, reverse=True)
    assert "best by validation accuracy" in captured.out


def test_each_trial_equals_a_single_train_run_and_save_best_is_its_model(synthetic_mnist_dir, tmp_path, capsys):
    """Bitwise: the figures of every trial and the weights of the best one are
    those of ``fastmlp train`` with the same options (numpy backend here; the
    numba backend in the next test)."""
    out, best = tmp_path / "results.csv", tmp_path / "best.npz"
    fixed = [*TINY, "--val-split", "50", "--momentum", "0.5"]
    assert sweep(synthetic_mnist_dir, *fixed, "--param", "lr=0.5,2", "--param", "seed=3,4", "--jobs", "2",
                 "--out", str(out), "--save-best", str(best)) == 0
    rows = read_rows(out)
    assert len(rows) == 4
    for row in rows:
        path = tmp_path / f"train-{row['trial']}.npz"
        assert train(synthetic_mnist_dir, *fixed, "--lr", row["lr"], "--seed", row["seed"], "--save", str(path)) == 0
        record = load(path).history_[-1]
        for key in ("val_accuracy", "test_accuracy", "loss"):
            assert float(row[key]) == record[key], (row, key)
    capsys.readouterr()
    best_row = rows[0]
    assert np.array_equal(load(best).params_, load(tmp_path / f"train-{best_row['trial']}.npz").params_)


def test_numba_trials_with_jobs_equal_single_train_runs(synthetic_mnist_dir, tmp_path, capsys):
    """The numba backend, two trials side by side on one thread each: every
    figure and the best weights bitwise those of ``fastmlp train`` in this
    process (on all threads)."""
    pytest.importorskip("numba")
    out, best = tmp_path / "results.csv", tmp_path / "best.npz"
    fixed = ["--layers", "784,12,10", "--epochs", "2", "--limit", "400", "--activation", "relu", "--cost", "nll",
             "--batch-size", "16", "--lr", "0.1", "--val-split", "100"]
    assert sweep(synthetic_mnist_dir, *fixed, "--param", "seed=0,1", "--jobs", "2", "--out", str(out),
                 "--save-best", str(best), backend="numba") == 0
    rows = read_rows(out)
    assert sorted(r["seed"] for r in rows) == ["0", "1"]
    assert all(r["threads"] == "1" for r in rows)  # 2 jobs on this test's share of cores
    for row in rows:
        path = tmp_path / f"train-{row['seed']}.npz"
        assert train(synthetic_mnist_dir, *fixed, "--seed", row["seed"], "--save", str(path), backend="numba") == 0
        record = load(path).history_[-1]
        for key in ("val_accuracy", "test_accuracy", "loss"):
            assert float(row[key]) == record[key], (row, key)
    capsys.readouterr()
    assert np.array_equal(load(best).params_, load(tmp_path / f"train-{rows[0]['seed']}.npz").params_)


def test_the_probe_compiles_what_the_numba_trials_run_each_once(synthetic_mnist_dir, monkeypatch):
    """Before trials start side by side, one worker compiles every kernel
    variant the numba trials will run (those ``fastmlp train`` would compile)
    in one call (so side by side, each once)."""
    from fastmlp.backends import numba as kernels
    from fastmlp.training import new_model, numba_variants
    from fastmlp.cli.options import ArgumentParser, add_train_options
    from fastmlp.sweep.grid import data_key
    from fastmlp.sweep.trial import probe

    parser = ArgumentParser()
    add_train_options(parser)
    trials = [vars(parser.parse_args([*common(synthetic_mnist_dir, "numba"), *options]))
              for options in (["--seed", "0"], ["--seed", "1"], ["--dtype", "float32", "--batch-size", "64"])]
    asked = []
    monkeypatch.setattr(kernels, "compile_variants", lambda variants: asked.append(variants) or 0.0)
    sizes = probe([data_key(trials[0])], trials)
    assert sizes == {data_key(trials[0]): 1000}
    f64, f32 = (numba_variants(new_model(parser.parse_args(a)), parser.parse_args(a))
                for a in ([], ["--dtype", "float32", "--batch-size", "64"]))
    assert asked == [[*f64, *f64, *f32]] and not set(f64) & set(f32)


def test_jobs_share_the_cores_and_never_exceed_the_trials(synthetic_mnist_dir, tmp_path, capsys, monkeypatch):
    from fastmlp import _machine

    monkeypatch.setattr(_machine, "available_cores", lambda: 4)
    out = tmp_path / "results.csv"
    assert sweep(synthetic_mnist_dir, *TINY, "--param", "seed=0,1", "--jobs", "2", "--out", str(out)) == 0
    assert "2 at a time on this machine, 2 threads each" in capsys.readouterr().out
    assert [r["threads"] for r in read_rows(out)] == ["2", "2"]  # each worker's NUMBA_NUM_THREADS
    # Default: one job per core, but no more jobs than trials.
    assert sweep(synthetic_mnist_dir, *TINY, "--param", "seed=0,1,2", "--out", str(out)) == 0
    assert "3 at a time on this machine, 1 thread each" in capsys.readouterr().out


def test_a_diverging_trial_is_a_result_not_the_end_of_the_sweep(synthetic_mnist_dir, tmp_path, capsys):
    out = tmp_path / "results.csv"
    # The settings of test_validation's divergence test: leaky ReLU at lr 1e6 overflows.
    status = sweep(synthetic_mnist_dir, "--epochs", "3", "--limit", "200", "--layers", "784,16,10",
                   "--activation", "leaky_relu", "--cost", "nll", "--param", "lr=0.1,1e6", "--out", str(out))
    captured = capsys.readouterr()
    assert status == 0, captured.err
    rows = read_rows(out)
    assert [r["lr"] for r in rows] == ["0.1", "1000000.0"]  # the diverged trial ranks last
    assert rows[0]["error"] == "" and float(rows[0]["test_accuracy"]) > 0
    assert rows[1]["error"].startswith("training diverged") and rows[1]["test_accuracy"] == ""
    assert "diverged in epoch" in captured.out


def test_trial_lines_go_to_stderr_without_quiet(synthetic_mnist_dir, capsys):
    options = [o for o in common(synthetic_mnist_dir) if o != "--quiet"]
    assert main(["sweep", *options, *TINY, "--param", "seed=0,1"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(line.startswith(("trial 1/2 seed=", "trial 2/2 seed=")) for line in err)


# --- bad grids: one line, exit status 2, before any trial ----------------------------------

BAD_GRIDS = [
    (["--param", "frobnicate=1,2"], "--param frobnicate: not a fastmlp train option"),
    (["--param", "lr"], "--param 'lr': expected NAME=V1,V2,..."),
    (["--param", "lr="], "--param lr: no values"),
    (["--param", "lr=0.1,,0.2"], "--param lr: empty value"),
    (["--param", "lr=0.1,0"], "--param lr: expected a number > 0, got 0"),
    (["--param", "batch-size=10,0"], "--param batch_size: expected a positive integer, got 0"),
    (["--param", "layers=784,30,10:784,0,10"], "--param layers: every layer width must be a positive integer"),
    (["--param", "activation=relu,swish"], "--param activation: expected one of"),
    (["--param", "cost=quadratic,hinge"], "--param cost: invalid choice: 'hinge'"),
    (["--param", "seed=0,x"], "--param seed: invalid int value: 'x'"),
    (["--param", "nesterov=maybe"], "--param nesterov: expected true or false"),
    (["--param", "lr=0.1,0.10"], "--param lr: the value 0.10 is listed twice"),
    (["--param", "lr=1", "--param", "lr=2"], "--param lr: given twice"),
    (["--lr", "1", "--param", "lr=1,2"], "--param lr: --lr is also given as a fixed option"),
    (["--param", "save=a.npz,b.npz"], "--param save: cannot be swept"),
    (["--param", "layers=784,30,9:784,30,10"], "trial layers=784,30,9: --layers must end with 10"),
    (["--param", "momentum=0.5,1.5"], "--param momentum: momentum must be < 1.0, got 1.5"),
    (["--nesterov", "--param", "momentum=0,0.9"], "trial momentum=0.0: --nesterov needs --momentum > 0"),
    (["--param", "patience=2,3"], "trial patience=2: --patience needs a validation set"),
    (["--param", "activation=softmax:sigmoid"], "trial activation=softmax: activation of hidden layer 1"),
    (["--param", "val_split=100,1000"], "trial val_split=1000: val_split 1000 must leave samples for both"),
    (["--save", "model.npz"], "--save: a sweep trains many models: --save-best PATH"),
    (["--log", "history.csv"], "--log: a sweep writes no per-trial logs"),
    (["--jobs", "2", "--scheduler", "tcp://127.0.0.1:1"], "--jobs is for trials on this machine"),
    (["--out", "results.txt"], "the results file must end in .csv"),
    (["--save-best", "/no/such/folder/best.npz"], "--save-best /no/such/folder/best.npz: folder"),
]


@pytest.mark.parametrize("options, message", BAD_GRIDS, ids=[" ".join(o) for o, _ in BAD_GRIDS])
def test_bad_grids_fail_before_any_trial_with_one_line(options, message, synthetic_mnist_dir, capsys):
    try:
        status = sweep(synthetic_mnist_dir, *BASE, *options)
    except SystemExit as exit:  # argparse's own errors
        status = exit.code
    captured = capsys.readouterr()
    assert status == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("fastmlp sweep: error: ")
    assert message in lines[0]
    assert captured.out == ""  # nothing ran: the sweep's first line comes after the checks


def test_scheduler_without_dask_installed_is_one_line(synthetic_mnist_dir, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    status = sweep(synthetic_mnist_dir, *TINY, "--param", "seed=0,1", "--scheduler", "tcp://127.0.0.1:8786")
    captured = capsys.readouterr()
    assert status == 1
    assert captured.err.strip() == ("fastmlp sweep: error: --scheduler needs Dask distributed, which is not "
                                    "installed: pip install 'fastmlp[dask]' (or pip install 'dask[distributed]')")
    assert captured.out == ""


def test_ctrl_c_stops_the_workers_and_keeps_the_finished_trials(synthetic_mnist_dir, tmp_path):
    import signal
    import subprocess

    from helpers import ctrl_c_as_at_a_terminal, subprocess_env

    psutil = pytest.importorskip("psutil")
    out = tmp_path / "results.csv"
    # About a second per trial (numpy backend), so Ctrl-C comes while the others run.
    sweep = subprocess.Popen([sys.executable, "-m", "fastmlp", "sweep", *common(synthetic_mnist_dir)[:-1],
                              "--layers", "784,64,10", "--epochs", "12", "--param", "lr=0.5,1,2",
                              "--param", "seed=0,1", "--jobs", "2", "--out", str(out)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env(),
                             cwd=tmp_path, preexec_fn=ctrl_c_as_at_a_terminal)
    try:
        first = sweep.stderr.readline()  # blocks until the first trial is done
        workers = psutil.Process(sweep.pid).children(recursive=True)
        sweep.send_signal(signal.SIGINT)
        stdout, stderr = sweep.communicate(timeout=60)
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.wait(timeout=15)
    assert first.startswith("trial 1/6 "), first + sweep.stderr.read()
    assert sweep.returncode == 130, stderr
    assert "fastmlp sweep: interrupted after " in stderr and f"of 6 trials; the finished ones are in {out}" in stderr
    assert "Traceback" not in stderr
    rows = read_rows(out)
    assert 1 <= len(rows) < 6 and all(r["test_accuracy"] for r in rows)
    # The pool's processes (and multiprocessing's resource tracker) end with the sweep.
    _, alive = psutil.wait_procs(workers, timeout=15)
    assert workers and not alive


def test_a_worker_process_that_dies_ends_the_sweep_with_one_line_and_keeps_the_finished_trials(
        synthetic_mnist_dir, tmp_path):
    """Locally a dead worker (killed here; out of memory in real life) breaks
    the process pool: the sweep stops with exit status 1 and the trials
    finished by then stay in --out.  (On a cluster Dask reruns the trial:
    test_sweep_dask.py.)"""
    import subprocess

    from helpers import subprocess_env

    psutil = pytest.importorskip("psutil")
    out = tmp_path / "results.csv"
    sweep = subprocess.Popen([sys.executable, "-m", "fastmlp", "sweep", *common(synthetic_mnist_dir)[:-1],
                              "--layers", "784,64,10", "--epochs", "12", "--param", "lr=0.5,1,2",
                              "--param", "seed=0,1", "--jobs", "2", "--out", str(out)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env(),
                             cwd=tmp_path)
    try:
        first = sweep.stderr.readline()
        workers = [p for p in psutil.Process(sweep.pid).children() if "resource_tracker" not in " ".join(p.cmdline())]
        workers[0].kill()
        stdout, stderr = sweep.communicate(timeout=60)
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.wait(timeout=15)
    assert first.startswith("trial 1/6 "), first
    assert sweep.returncode == 1, stderr
    errors = [line for line in stderr.splitlines() if "error" in line]
    assert errors == [f"fastmlp sweep: error: a worker process died while trials ran (out of memory? try fewer "
                      f"--jobs) ({len(read_rows(out))} of 6 trials finished; the finished ones are in {out})"]
    assert 1 <= len(read_rows(out)) < 6


def test_a_trial_that_fails_keeps_every_other_trial(synthetic_mnist_dir, tmp_path, capsys, monkeypatch):
    from fastmlp import training
    from fastmlp.cli import sweep_command

    real = training.fit_model

    def failing_for_seed_1(model, options, *args, **kwargs):
        if options.seed == 1:
            raise RuntimeError("a part broke\nwith a second line")
        return real(model, options, *args, **kwargs)

    monkeypatch.setattr(sweep_command, "_runner", lambda args, settings: InProcessRunner())
    monkeypatch.setattr(training, "fit_model", failing_for_seed_1)
    out, best = tmp_path / "trials.csv", tmp_path / "best.npz"
    status = sweep(synthetic_mnist_dir, *TINY, "--param", "seed=0,1,2", "--out", str(out),
                   "--save-best", str(best))
    captured = capsys.readouterr()
    assert status == 1
    errors = [line for line in captured.err.splitlines() if "error" in line]
    assert errors == ["fastmlp sweep: error: 1 of 3 trials failed (trial 2, seed=1: RuntimeError: a part broke)"]
    assert "failed: RuntimeError: a part broke" in captured.out
    rows = read_rows(out)
    assert sorted(row["seed"] for row in rows) == ["0", "1", "2"]
    assert [row["error"] for row in rows if row["seed"] == "1"] == ["RuntimeError: a part broke"]
    assert all(row["test_accuracy"] for row in rows if row["seed"] != "1")
    assert load(best).seed_ in (0, 2)  # the best finished trial is still saved
