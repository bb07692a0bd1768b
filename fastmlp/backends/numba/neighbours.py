"""NumPy's idle BLAS threads out of the way of an epoch.

OpenBLAS, the BLAS of NumPy's and SciPy's wheels, keeps its worker threads
spinning after every call (about 2^28 cycles, some 0.1 s, unless
``OPENBLAS_THREAD_TIMEOUT`` is set before it loads).  On a 2-core machine
those threads take the cores from the epoch's own: one numba epoch right after
a 2048 x 2048 float32 product took 1.24x as long as alone (784-30-10 batch
10 float64; 1.13x for 784-128-64-10 batch 64 float32), the cost of one spin,
paid once at the start of a run (``benchmarks/neighbours.py``, Intel Xeon
AVX-512, 2 cores, 2026-12-08; the table in docs/performance.md).  The other
way round costs nothing: Numba's OpenMP threads sleep at once (the product
right after an epoch: 0.87-0.96x of its time alone).

Limiting BLAS's thread count (threadpoolctl's ``threadpool_limits``) does not
stop threads that already spin (measured: no change).  So before a run the
backend ends them with OpenBLAS's own ``blas_thread_shutdown_``, what OpenBLAS
runs before a ``fork``; its next call starts them again (0.6 ms measured,
and the product after it at its usual speed).  That is safe only when no other
thread can be inside a BLAS call, so it is done only in a process with a
single Python thread, and only for OpenBLAS on its pthreads server, the
libraries threadpoolctl finds (a dependency of scikit-learn); without
threadpoolctl nothing is done.
"""

import ctypes
import functools
import threading

try:
    from threadpoolctl import ThreadpoolController
except ImportError:  # optional: without it the idle threads are left alone
    ThreadpoolController = None


def quiet_blas_threads():
    """End the spinning worker threads of every loaded OpenBLAS (see the
    module's docstring); returns how many libraries were quieted."""
    if ThreadpoolController is None or threading.active_count() != 1:
        return 0
    quieted = 0
    for library in ThreadpoolController().info():
        if library.get("internal_api") != "openblas" or library.get("threading_layer") != "pthreads":
            continue
        shutdown = _shutdown(library["filepath"])
        if shutdown is not None:
            shutdown()
            quieted += 1
    return quieted


@functools.lru_cache(maxsize=None)
def _shutdown(path):
    """OpenBLAS's ``blas_thread_shutdown_`` in the library at ``path``, or
    None where that build does not export it."""
    try:
        function = ctypes.CDLL(path).blas_thread_shutdown_
    except (OSError, AttributeError):
        return None
    function.restype = ctypes.c_int
    function.argtypes = []
    return function
