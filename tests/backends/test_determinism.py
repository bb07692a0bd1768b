"""The Numba backend gives bitwise identical parameters for any number of
threads, and the first run (which compiles) gives the same as later runs.

The thread test trains every case in two fresh processes, one with
``NUMBA_NUM_THREADS=1`` and one with 2 (Numba reads it at start-up); the
second trains each case with ``numba.set_num_threads(1)`` and then with 2,
and checks that its parallel loops really ran on two threads.  The flat
parameter buffers, velocities, losses and predictions are compared byte for
byte.  Both processes use the test run's cache (shared with the rest of the
suite, so each variant compiles once per run), which the first fills in its
compiling children, so every compared run executes the same cached machine
code.
(Code compiled in-process and code loaded from Numba's cache round
differently, ``fastmlp.backends.numba.precompile``; the backend compiles in a
child process, which ``test_first_run_equals_later_runs`` checks.)
"""

import json
import subprocess
import sys

import numpy as np
import pytest
from helpers import subprocess_env

#: (sizes, batch, dtype, regularised): serial and parallel layers, with and
#: without panels; regularised: with shifts of the input images, dropout on
#: the inputs and hidden layers and max-norm (their passes run in parallel
#: from large enough batches).
CASES = [(sizes, batch, dtype, False) for sizes, batch in (("784-30-10", 10), ("784-64-32-10", 32),
                                                           ("784-520-10", 64), ("784-100-70-10", 128))
         for dtype in ("float32", "float64")]
CASES += [("784-64-32-10", 32, "float64", True), ("784-520-10", 64, "float32", True),
          ("784-100-70-10", 128, "float64", True)]

SCRIPT = r"""
import json, sys
import numba
import numpy as np
from fastmlp import noise
from fastmlp.backends import numba as kernels
from fastmlp.network import Net, SGD, init_params


@numba.njit(parallel=True)
def threads_seen(n):
    seen = np.zeros(n, np.int64)
    for i in numba.prange(n):
        seen[i] = numba.get_thread_id()
    return np.unique(seen).size


def train(sizes, dtype, batch, regularised):
    sizes = tuple(int(s) for s in sizes.split("-"))
    net = Net(sizes, ("sigmoid",) * (len(sizes) - 2) + ("softmax",), "nll")
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(300, sizes[0]), dtype=np.uint8)
    y = rng.integers(0, sizes[-1], size=300).astype(np.uint8)
    params = init_params(sizes, ["normal"] * (len(sizes) - 1), np.random.default_rng(1), np.dtype(dtype))
    velocity = np.zeros_like(params)
    results = []
    sgd = SGD(0.1, 0.9, True, 1e-4, 1.5 if regularised else 0.0)
    for epoch in range(2):
        order = np.random.default_rng(2 + epoch).permutation(300)
        drop = noise.Noise(noise.epoch_key(0, epoch + 1), (0.2,) + (0.5,) * (len(sizes) - 2), 2) if regularised else None
        results.extend(kernels.train_batches(params, velocity, net, sgd, X, y, order, batch, noise=drop))
        results.append(kernels.predict_proba(params, net, X).sum())
    return np.concatenate([params, velocity, np.array(results, dtype=np.float64).astype(params.dtype)])


out, cases = sys.argv[1], json.loads(sys.argv[2])
runs = {}
for count in ([1, 2] if numba.config.NUMBA_NUM_THREADS > 1 else [1]):
    numba.set_num_threads(count)
    for sizes, batch, dtype, regularised in cases:
        runs[f"{sizes} {batch} {dtype} {regularised} {count}"] = train(sizes, dtype, batch, regularised)
    runs[f"threads seen with {count}"] = np.array([threads_seen(10_000)])
np.savez(out, **runs)
"""


@pytest.fixture(scope="module")
def thread_runs(tmp_path_factory):
    """Every case trained in a process with ``NUMBA_NUM_THREADS=1`` and in one
    with 2 (``SCRIPT``)."""
    folder = tmp_path_factory.mktemp("threads")
    runs = {}
    for threads in (1, 2):
        out = folder / f"threads-{threads}.npz"
        env = subprocess_env(NUMBA_NUM_THREADS=str(threads))
        subprocess.run([sys.executable, "-c", SCRIPT, str(out), json.dumps(CASES)], env=env, check=True,
                       timeout=900)
        runs[threads] = dict(np.load(out))
    return runs


def test_two_threads_really_ran(thread_runs):
    assert thread_runs[1]["threads seen with 1"][0] == 1
    assert thread_runs[2]["threads seen with 1"][0] == 1 and thread_runs[2]["threads seen with 2"][0] == 2


@pytest.mark.parametrize("sizes,batch,dtype,regularised", CASES)
def test_params_bitwise_equal_for_1_and_2_threads(thread_runs, sizes, batch, dtype, regularised):
    key = f"{sizes} {batch} {dtype} {regularised}"
    one_thread = thread_runs[1][f"{key} 1"]
    for got in (thread_runs[2][f"{key} 1"], thread_runs[2][f"{key} 2"]):
        assert got.dtype == one_thread.dtype and got.shape == one_thread.shape
        assert got.tobytes() == one_thread.tobytes(), f"max difference {np.abs(got - one_thread).max()}"


def test_the_cases_take_serial_parallel_and_panel_kernels():
    """The cases cover what they are meant to: both loop shapes, and panels
    on a CPU that has them."""
    from fastmlp.backends.numba.plan import needed_variants
    from fastmlp.backends.numba.shapes import panel_tile_rows

    variants = {v for sizes, batch, dtype, _ in CASES
                for v in needed_variants(tuple(map(int, sizes.split("-"))), dtype, batch_size=batch)}
    assert {v.parallel for v in variants if v.stage == "update"} == {False, True}
    assert {v.panels for v in variants if v.stage in ("forward", "hidden", "update")} == \
        ({False, True} if panel_tile_rows() else {False})


FIT_SCRIPT = r"""
import sys
import numpy as np
from fastmlp import MLP
from fastmlp.backends.numba import plan

rng = np.random.default_rng(0)
X = rng.integers(0, 256, size=(600, 784), dtype=np.uint8)
y = rng.integers(0, 10, size=600).astype(np.uint8)
model = MLP([784, 30, 10], dtype="float32", seed=0)
model.fit(X, y, epochs=1, batch_size=10, learning_rate=3.0, val_split=0.2, progress=False)
proba = model.predict_proba(X)
misses = plan.compiled_in_process()
np.save(sys.argv[1], np.concatenate([model.params_, proba.ravel(), np.array([misses], np.float32)]))
"""


def test_first_run_equals_later_runs(tmp_path):
    """With an empty cache, MLP.fit has the kernels compiled in child
    processes (fastmlp.backends.numba.precompile) and loads them from the
    cache, so the very first run gives the same bits as the next one;
    neither compiles in-process."""
    from fastmlp.backends.numba.plan import needed_variants

    cache = tmp_path / "empty-cache"
    env = subprocess_env(NUMBA_CACHE_DIR=str(cache))
    runs = []
    for name in ("first.npy", "second.npy"):
        subprocess.run([sys.executable, "-c", FIT_SCRIPT, str(tmp_path / name)], env=env, check=True, timeout=900)
        runs.append(np.load(tmp_path / name))
    assert runs[0][-1] == 0 and runs[1][-1] == 0, "a kernel was compiled in-process"
    assert runs[0].tobytes() == runs[1].tobytes(), f"max difference {np.abs(runs[0] - runs[1]).max()}"
    records = list(cache.rglob("*.compiled"))
    assert len(records) == len(needed_variants((784, 30, 10), "float32", batch_size=10))
