"""The Numba backend's ``before_run`` ends NumPy's idle OpenBLAS threads
(``fastmlp/backends/numba/neighbours.py``): BLAS gives the same numbers afterwards,
and nothing is done while another Python thread could be inside BLAS.  The
speed it buys is a benchmark (``benchmarks/neighbours.py``), not a test."""

import threading

import numpy as np
import numpy.testing as npt

# threadpoolctl comes with scikit-learn, a test dependency: missing, it must fail, not skip.
from threadpoolctl import ThreadpoolController

from fastmlp.backends.numba import neighbours


def openblas_on_pthreads():
    return [lib for lib in ThreadpoolController().info()
            if lib.get("internal_api") == "openblas" and lib.get("threading_layer") == "pthreads"]


def test_blas_gives_the_same_numbers_after_its_threads_are_ended():
    A = np.random.default_rng(0).standard_normal((600, 600))
    before = A @ A
    quieted = neighbours.quiet_blas_threads()
    assert quieted == sum(neighbours._shutdown(lib["filepath"]) is not None for lib in openblas_on_pthreads())
    npt.assert_array_equal(A @ A, before)  # its threads start again
    neighbours.quiet_blas_threads()
    npt.assert_array_equal((A @ A)[::7], before[::7])


def test_nothing_is_done_while_another_python_thread_runs():
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        assert neighbours.quiet_blas_threads() == 0
    finally:
        release.set()
        other.join()


def test_without_threadpoolctl_nothing_is_done(monkeypatch):
    monkeypatch.setattr(neighbours, "ThreadpoolController", None)
    assert neighbours.quiet_blas_threads() == 0
