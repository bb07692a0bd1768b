"""Threads: one model used from several Python threads at once, ``n_threads=``
and ``--threads``.

* Predictions from 8 Python threads at once equal those from one thread (both
  backends).  Numba's ``workqueue`` threading layer is not thread-safe (two
  threads launching parallel kernels abort the process), so ``fastmlp.model``
  serialises Numba calls on that layer; a subprocess forces it to check.
* ``n_threads=1`` and ``n_threads=2`` train bitwise-identical weights (in-process;
  the subprocess test across ``NUMBA_NUM_THREADS`` is tests/test_determinism.py).
* ``n_threads`` above ``NUMBA_NUM_THREADS`` is clipped with one warning;
  ``--threads 0`` is a usage error.
"""

import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy.testing as npt
import pytest
from helpers import subprocess_env, synthetic_digits

from fastmlp import MLP
from fastmlp.cli import main

BACKENDS = ["numpy", "numba"]


@pytest.fixture(scope="module")
def digits():
    return synthetic_digits(600, seed=5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_predictions_from_many_threads_equal_one_thread(digits, backend):
    X, y = digits
    model = MLP([784, 32, 10], backend=backend, seed=0).fit(X[:300], y[:300], epochs=1, learning_rate=3.0)
    # different slices per call, so a mix-up between threads would show; the
    # reference is the same slice from one thread (BLAS may round a 100-row
    # product differently from a 600-row one, which is not what is tested here)
    slices = [slice(i * 37 % 500, i * 37 % 500 + 100) for i in range(64)]
    expected = [model.predict_proba(X[s]) for s in slices]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda s: (model.predict_proba(X[s]), model.predict(X[s])), slices))
    for (proba, labels), want in zip(results, expected):
        npt.assert_array_equal(proba, want)
        npt.assert_array_equal(labels, want.argmax(axis=1))


def test_many_threads_with_their_own_n_threads(digits):
    """Models with different ``n_threads`` used at once: set_num_threads is per thread."""
    X, y = digits
    models = [MLP([784, 16, 10], backend="numba", seed=0, n_threads=n).fit(X[:200], y[:200], epochs=1)
              for n in (1, 2)]
    npt.assert_array_equal(models[0].params_, models[1].params_)
    expected = models[0].predict_proba(X)
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda i: models[i % 2].predict_proba(X), range(24)))
    for proba in results:
        npt.assert_array_equal(proba, expected)


WORKQUEUE_SCRIPT = r"""
import sys
from concurrent.futures import ThreadPoolExecutor
import numpy as np
sys.path.insert(0, sys.argv[1])
from helpers import synthetic_digits
from fastmlp import MLP
X, y = synthetic_digits(1200, seed=6)
model = MLP([784, 64, 10], backend="numba", seed=0)
with ThreadPoolExecutor(8) as pool:  # even the first calls (layer not yet chosen) may race
    list(pool.map(lambda i: model.predict_proba(X) if model.params_ is not None else None, range(8)))
model.fit(X[:300], y[:300], epochs=1)
expected = model.predict_proba(X)
with ThreadPoolExecutor(8) as pool:
    results = list(pool.map(lambda i: model.predict_proba(X), range(48)))
import numba
assert numba.threading_layer() == "workqueue", numba.threading_layer()
assert all(np.array_equal(r, expected) for r in results)
print("OK")
"""


def test_concurrent_predictions_on_the_workqueue_layer_do_not_abort(tmp_path):
    import os

    env = subprocess_env(NUMBA_THREADING_LAYER="workqueue")
    result = subprocess.run([sys.executable, "-c", WORKQUEUE_SCRIPT, os.path.dirname(__file__)],
                            capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "OK"


def test_n_threads_1_and_2_train_bitwise_identical_weights(digits):
    X, y = digits
    runs = [MLP([784, 48, 10], backend="numba", seed=3, n_threads=n, activation="relu", cost="nll")
            .fit(X, y, epochs=2, batch_size=32, learning_rate=0.1, momentum=0.9) for n in (1, 2)]
    npt.assert_array_equal(runs[0].params_, runs[1].params_)
    assert [r["loss"] for r in runs[0].history_] == [r["loss"] for r in runs[1].history_]


def test_n_threads_is_set_for_the_call_and_restored(digits, monkeypatch):
    import numba

    X, y = digits
    model = MLP([784, 8, 10], backend="numba", seed=0, n_threads=1).fit(X[:50], y[:50], epochs=1)
    before = numba.get_num_threads()
    seen = []
    from fastmlp.backends import numba as kernels

    original = kernels.predict_proba
    monkeypatch.setattr(kernels, "predict_proba", lambda *a: (seen.append(numba.get_num_threads()), original(*a))[1])
    model.predict(X[:5])
    assert seen == [1] and numba.get_num_threads() == before


def test_n_threads_above_numba_num_threads_is_clipped_with_one_warning(digits):
    import numba

    X, y = digits
    limit = numba.config.NUMBA_NUM_THREADS
    model = MLP([784, 8, 10], backend="numba", seed=0, n_threads=limit + 5)
    with pytest.warns(UserWarning, match=f"n_threads={limit + 5} is more than NUMBA_NUM_THREADS={limit}"):
        model.fit(X[:50], y[:50], epochs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per model, not on every call
        clipped = model.predict_proba(X)
    reference = MLP([784, 8, 10], backend="numba", seed=0, n_threads=limit).fit(X[:50], y[:50], epochs=1)
    npt.assert_array_equal(clipped, reference.predict_proba(X))


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "2"])
def test_bad_n_threads_is_refused(value):
    with pytest.raises((TypeError, ValueError), match="n_threads"):
        MLP([784, 8, 10], backend="numpy", n_threads=value).build()


@pytest.mark.parametrize("value", ["0", "-2", "two", ""])
def test_cli_threads_must_be_a_positive_integer(value, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        main(["train", "--threads", value, "--no-download", "--data-dir", str(tmp_path)])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--threads" in err and "positive integer" in err


def test_cli_threads_above_the_limit_warns_in_one_line(synthetic_mnist_dir, capsys):
    import numba

    limit = numba.config.NUMBA_NUM_THREADS
    assert main(["train", "--data-dir", str(synthetic_mnist_dir), "--no-download", "--quiet", "--backend",
                 "numba", "--epochs", "1", "--limit", "50", "--threads", str(limit + 1)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err == [f"fastmlp: warning: n_threads={limit + 1} is more than NUMBA_NUM_THREADS={limit}; "
                   f"using {limit} (set NUMBA_NUM_THREADS before starting Python to allow more)"]
