"""``fastmlp sweep --scheduler`` on a real Dask cluster: a scheduler and two
single-threaded worker processes started here on 127.0.0.1 (random free
ports), a sweep on it equal to the same sweep run locally, and a worker killed
while it runs a trial without any trial being lost.

Skipped when Dask distributed is not installed (it is in the ``test`` extra,
so CI runs these).  Every wait is bounded and the processes are stopped in the
fixture's finalizer.
"""

import csv
import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import subprocess_env

from fastmlp.cli import main
from fastmlp.model import load

# A test dependency (the test extra): missing, it must fail, not skip.
import distributed  # noqa: E402

#: Longest wait for a process of the cluster to come up.
START_TIMEOUT = 90


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def figures(rows):
    """Every column but the timings and the thread count, which depend on the run."""
    return [{k: v for k, v in row.items() if k not in ("seconds", "threads")} for row in rows]


def wait_until(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Cluster:
    """A scheduler and named worker processes on 127.0.0.1, and a client to watch them."""

    def __init__(self, folder):
        self.folder = folder
        self.processes = []
        self.workers = {}
        self.client = None
        self.scheduler_file = folder / "scheduler.json"

    def start(self, name, *args):
        log = open(self.folder / f"{name}.log", "w")
        process = subprocess.Popen([sys.executable, "-m", "dask", *args], stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, cwd=self.folder, env=subprocess_env())
        log.close()
        self.processes.append(process)
        return process

    def start_scheduler(self):
        self.start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                   "--scheduler-file", str(self.scheduler_file))

        def address():
            if self.processes[0].poll() is not None:
                raise AssertionError(f"the scheduler exited: {(self.folder / 'scheduler.log').read_text()}")
            try:
                return json.loads(self.scheduler_file.read_text())["address"]
            except (OSError, ValueError, KeyError):
                return None

        self.address = wait_until(address, START_TIMEOUT, "the scheduler's address")
        self.client = distributed.Client(self.address, timeout=START_TIMEOUT, set_as_default=False)

    def start_workers(self, n):
        for i in range(n):
            name = f"worker{i}"
            self.workers[name] = self.start(name, "worker", "--scheduler-file", str(self.scheduler_file),
                                            "--nthreads", "1", "--no-nanny", "--host", "127.0.0.1",
                                            "--no-dashboard", "--name", name, "--death-timeout", "60")
        self.client.wait_for_workers(n, timeout=START_TIMEOUT)

    def stop(self):
        if self.client is not None:
            self.client.close()
        for process in reversed(self.processes):
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)


@pytest.fixture
def cluster(tmp_path):
    cluster = Cluster(tmp_path)
    try:
        cluster.start_scheduler()
        cluster.start_workers(2)
        yield cluster
    finally:
        cluster.stop()


def sweep_options(data_dir, backend):
    return ["sweep", "--data-dir", str(data_dir), "--no-download", "--backend", backend, "--quiet"]


def test_a_sweep_on_the_cluster_equals_the_same_sweep_run_locally(cluster, synthetic_mnist_dir, tmp_path, capsys):
    """numba backend: the workers load the same cached kernels as the local
    run's processes, so every figure and the best weights are bitwise equal."""
    grid = ["--layers", "784,12,10", "--activation", "relu", "--cost", "nll", "--epochs", "2", "--limit", "400",
            "--batch-size", "16", "--val-split", "100", "--param", "lr=0.05,0.2", "--param", "seed=0,1"]
    local_csv, local_best = tmp_path / "local.csv", tmp_path / "local.npz"
    dask_csv, dask_best = tmp_path / "dask.csv", tmp_path / "dask.npz"
    assert main([*sweep_options(synthetic_mnist_dir, "numba"), *grid, "--jobs", "2", "--out", str(local_csv),
                 "--save-best", str(local_best)]) == 0
    capsys.readouterr()
    assert main([*sweep_options(synthetic_mnist_dir, "numba"), *grid, "--scheduler", cluster.address,
                 "--out", str(dask_csv), "--save-best", str(dask_best)]) == 0
    out = capsys.readouterr().out
    assert f"on the Dask cluster at {cluster.address}: 2 workers, 2 trials at a time" in out
    assert len(read_rows(dask_csv)) == 4
    assert figures(read_rows(dask_csv)) == figures(read_rows(local_csv))
    # Two single-threaded workers on this machine: each trial gets half its cores.
    cores = len(os.sched_getaffinity(0))
    assert {r["threads"] for r in read_rows(dask_csv)} == {str(max(1, cores // 2))}
    assert np.array_equal(load(dask_best).params_, load(local_best).params_)


def test_a_worker_killed_mid_trial_costs_a_retry_and_no_trial_is_lost(cluster, synthetic_mnist_dir, tmp_path, capsys):
    # numpy backend, about a second per trial on the development machine, so
    # the kill lands inside a trial.
    grid = ["--layers", "784,64,10", "--epochs", "12", "--param", "lr=0.5,1,2", "--param", "seed=0,1"]
    local_csv, dask_csv = tmp_path / "local.csv", tmp_path / "dask.csv"
    assert main([*sweep_options(synthetic_mnist_dir, "numpy"), *grid, "--jobs", "2", "--out", str(local_csv)]) == 0
    capsys.readouterr()
    sweep = subprocess.Popen([sys.executable, "-m", "fastmlp", *sweep_options(synthetic_mnist_dir, "numpy"), *grid,
                              "--scheduler", cluster.address, "--out", str(dask_csv)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env(),
                             cwd=tmp_path)
    try:
        pids = cluster.client.run(os.getpid)  # worker address -> its process id

        def executing_trials(dask_worker):
            """On each worker (defined here, so it is sent by value): the trials it is running now."""
            return [str(ts.key) for ts in dask_worker.state.executing if "fastmlp-trial" in str(ts.key)]

        def running_a_trial():
            executing = cluster.client.run(executing_trials)
            return next(((address, keys) for address, keys in executing.items() if keys), None)

        address, keys = wait_until(running_a_trial, 120, "a worker to start a trial")
        victim = next(p for p in cluster.workers.values() if p.pid == pids[address])
        victim.kill()
        victim.wait(timeout=15)
        out, err = sweep.communicate(timeout=300)
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.wait(timeout=15)
    assert sweep.returncode == 0, err
    assert len(cluster.client.scheduler_info(n_workers=-1)["workers"]) == 1  # it stayed dead
    rows = read_rows(dask_csv)
    assert len(rows) == 6 and all(r["error"] == "" for r in rows)
    assert figures(rows) == figures(read_rows(local_csv))
    assert "6 trials in" in out


def test_a_scheduler_without_workers_is_one_line(tmp_path, synthetic_mnist_dir, capsys):
    cluster = Cluster(tmp_path)
    try:
        cluster.start_scheduler()
        start = time.monotonic()
        status = main([*sweep_options(synthetic_mnist_dir, "numpy"), "--param", "seed=0,1",
                       "--scheduler", cluster.address, "--connect-timeout", "2"])
        waited = time.monotonic() - start
    finally:
        cluster.stop()
    captured = capsys.readouterr()
    assert status == 2
    assert captured.err.startswith(f"fastmlp sweep: error: --scheduler {cluster.address}: the scheduler has "
                                   f"no workers after ")
    assert len(captured.err.strip().splitlines()) == 1 and captured.out == ""
    assert waited < 30


def test_an_unreachable_scheduler_is_one_line_with_the_address_and_the_wait(synthetic_mnist_dir, capsys):
    with socket.socket() as s:  # a free port, closed again: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    start = time.monotonic()
    status = main([*sweep_options(synthetic_mnist_dir, "numpy"), "--param", "seed=0,1", "--scheduler", address,
                   "--connect-timeout", "1"])
    waited = time.monotonic() - start
    captured = capsys.readouterr()
    assert status == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"fastmlp sweep: error: --scheduler {address}: no Dask scheduler answered after ")
    assert " s (" in lines[0] and captured.out == ""
    assert waited < 30  # the timeout bounds the wait


def test_a_malformed_scheduler_address_is_one_line(synthetic_mnist_dir, capsys):
    status = main([*sweep_options(synthetic_mnist_dir, "numpy"), "--param", "seed=0,1",
                   "--scheduler", "127.0.0.1"])
    captured = capsys.readouterr()
    assert status == 2
    assert captured.err.strip() == ("fastmlp sweep: error: --scheduler 127.0.0.1: missing port number in "
                                    "address '127.0.0.1'")
