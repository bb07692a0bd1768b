"""What the Numba backend needs around its kernel calls: the thread count,
thread safety, the first-run compile and the limits of its types.

The model calls these hooks on every backend (``fastmlp.backends``); the NumPy
reference's versions do nothing.
"""

import contextlib
import threading
import warnings

import numba

from fastmlp.backends.numba import precompile

#: The kernels take labels as uint8, so this backend has at most 256 classes.
MAX_CLASSES = 256
#: Serialises calls into the kernels when Numba runs on its ``workqueue``
#: threading layer, which is not thread-safe: two Python threads launching
#: parallel kernels at once abort the whole process ("Concurrent access has been
#: detected").  The tbb and omp layers are thread-safe and are not locked.
_WORKQUEUE_LOCK = threading.Lock()


def check_network(sizes):
    """Refuse, with a ValueError, a network this backend cannot train."""
    if sizes[-1] > MAX_CLASSES:
        raise ValueError(f"the numba backend supports at most {MAX_CLASSES} output classes "
                         f"(labels are uint8), got {sizes[-1]}; use backend='numpy'")


@contextlib.contextmanager
def call_guard():
    """Around every kernel call: see ``_WORKQUEUE_LOCK``."""
    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet: the layer is not chosen
        layer = None
    if layer in ("tbb", "omp"):
        yield
        return
    with _WORKQUEUE_LOCK:
        yield


_warned_threads = set()


@contextlib.contextmanager
def threads(n_threads, owner=None):
    """Run the kernels on ``n_threads`` threads for the duration (``None``: Numba's
    default, ``NUMBA_NUM_THREADS``).

    ``numba.set_num_threads`` is per calling thread, so models used from several
    Python threads at once do not disturb each other.  Above
    ``NUMBA_NUM_THREADS`` (fixed when Numba starts) the count is clipped with a
    ``UserWarning``, once per ``owner`` and count, rather than refused, so a
    model saved on a bigger machine still runs here.  Results do not depend on
    the thread count.
    """
    if n_threads is None:
        yield
        return
    limit = numba.config.NUMBA_NUM_THREADS
    key = (id(owner), n_threads)
    if n_threads > limit and key not in _warned_threads:
        _warned_threads.add(key)
        warnings.warn(f"n_threads={n_threads} is more than NUMBA_NUM_THREADS={limit}; "
                      f"using {limit} (set NUMBA_NUM_THREADS before starting Python to allow more)",
                      stacklevel=4)
    previous = numba.get_num_threads()
    numba.set_num_threads(min(n_threads, limit))
    try:
        yield
    finally:
        numba.set_num_threads(previous)


def prepare(dtype, *inputs):
    """Before the first kernel call of a run: compile what the cache lacks in a
    child process, so this run executes the same cached code as every later one
    (``precompile``)."""
    precompile.ensure_compiled(dtype, *inputs)


def after_first_call(dtype, X):
    """After the first kernel call of a run (see ``precompile.forget_if_compiled_here``)."""
    precompile.forget_if_compiled_here(dtype, X)
