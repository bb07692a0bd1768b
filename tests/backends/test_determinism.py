"""The Numba backend gives bitwise identical parameters for any number of threads.

Each run happens in a fresh subprocess with ``NUMBA_NUM_THREADS`` set (Numba
reads it at start-up), trains a short while from the same seed and saves the
flat parameter buffer with ``np.save``; the files are compared byte for byte.

All runs share one fresh ``NUMBA_CACHE_DIR`` (fastmlp keeps its compiled
configurations under it then) and a warm-up run fills it first, so every
compared run executes the same cached machine code.  (With fast-math on, code
compiled in-process and code loaded from Numba's cache round differently;
the backend avoids that by compiling in a child process, see
``test_first_run_equals_later_runs``.)
"""

import os
import subprocess
import sys

import numpy as np
import pytest

# Every case compiles from an empty cache in child processes (tens of seconds each).
pytestmark = pytest.mark.slow

SCRIPT = r"""
import sys
import numpy as np
from fastmlp.backends import numba as kernels
from fastmlp.network import Net, SGD, init_params

sizes = tuple(int(s) for s in sys.argv[1].split("-"))
dtype, batch, out = sys.argv[2], int(sys.argv[3]), sys.argv[4]
net = Net(sizes, ("sigmoid",) * (len(sizes) - 2) + ("softmax",), "nll")
rng = np.random.default_rng(0)
X = rng.integers(0, 256, size=(300, sizes[0]), dtype=np.uint8)
y = rng.integers(0, sizes[-1], size=300).astype(np.uint8)
params = init_params(sizes, ["normal"] * (len(sizes) - 1), np.random.default_rng(1), np.dtype(dtype))
velocity = np.zeros_like(params)
results = []
for epoch in range(2):
    order = np.random.default_rng(2 + epoch).permutation(300)
    results.extend(kernels.train_batches(params, velocity, net, SGD(0.1, 0.9, True, 1e-4), X, y, order, batch))
    results.append(kernels.predict_proba(params, net, X).sum())
np.save(out, np.concatenate([params, velocity, np.array(results, dtype=np.float64).astype(params.dtype)]))
"""


def _run(args, threads, cache_dir):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads), NUMBA_CACHE_DIR=str(cache_dir),
               PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    subprocess.run([sys.executable, "-c", SCRIPT, *args], env=env, check=True, timeout=600)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """One Numba cache for this module's subprocesses (compiled once per dtype)."""
    return tmp_path_factory.mktemp("numba-cache")


@pytest.mark.parametrize("sizes,batch", [("784-30-10", 10), ("784-64-32-10", 32), ("784-520-10", 64),
                                         ("784-100-70-10", 128)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_params_bitwise_equal_for_1_and_2_threads(sizes, batch, dtype, tmp_path, cache_dir):
    cache = cache_dir
    _run([sizes, dtype, str(batch), str(tmp_path / "warm.npy")], 2, cache)  # fills the cache
    one, two = tmp_path / "t1.npy", tmp_path / "t2.npy"
    _run([sizes, dtype, str(batch), str(one)], 1, cache)
    _run([sizes, dtype, str(batch), str(two)], 2, cache)
    a, b = np.load(one), np.load(two)
    assert a.dtype == b.dtype and a.shape == b.shape
    assert a.tobytes() == b.tobytes(), f"max difference {np.abs(a - b).max()}"


FIT_SCRIPT = r"""
import sys
import numpy as np
from fastmlp import MLP
from fastmlp.backends.numba import cache

rng = np.random.default_rng(0)
X = rng.integers(0, 256, size=(600, 784), dtype=np.uint8)
y = rng.integers(0, 10, size=600).astype(np.uint8)
model = MLP([784, 30, 10], dtype="float32", seed=0)
model.fit(X, y, epochs=1, batch_size=10, learning_rate=3.0, val_split=0.2, progress=False)
proba = model.predict_proba(X)
misses = cache.compiled_in_process()
np.save(sys.argv[1], np.concatenate([model.params_, proba.ravel(), np.array([misses], np.float32)]))
"""


def test_first_run_equals_later_runs(tmp_path):
    """With an empty cache, MLP.fit has the kernels compiled in a child process
    (fastmlp.backends.numba.precompile) and loads them from the cache, so the very first run
    gives the same bits as the next one; neither compiles in-process."""
    cache = tmp_path / "empty-cache"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache),
               PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    runs = []
    for name in ("first.npy", "second.npy"):
        subprocess.run([sys.executable, "-c", FIT_SCRIPT, str(tmp_path / name)], env=env, check=True, timeout=900)
        runs.append(np.load(tmp_path / name))
    assert runs[0][-1] == 0 and runs[1][-1] == 0, "a kernel was compiled in-process"
    assert runs[0].tobytes() == runs[1].tobytes(), f"max difference {np.abs(runs[0] - runs[1]).max()}"
    assert len(list(cache.rglob("compiled-by-child"))) == 2  # the epoch and the prediction
