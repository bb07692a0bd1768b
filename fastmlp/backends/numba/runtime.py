"""What the Numba backend needs around its kernel calls: the thread count,
thread safety, the limits of its types, the run's compile plan (``prepare``,
from ``plan``) and compiling ahead of a run (``compile_ahead``, for a
container image or right after install; ``compile_variants`` with
``plan.all_variants()`` for everything this CPU can run).

The model calls these hooks on every backend (``fastmlp.backends``); the NumPy
reference's versions do nothing.
"""

import contextlib
import threading
import warnings

import numba

from fastmlp.backends.numba import plan
from fastmlp.backends.numba.neighbours import quiet_blas_threads
from fastmlp.backends.numba.plan import prepare
from fastmlp.network import SGD

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


def before_run():
    """Before a run of epochs or a full-batch optimisation: NumPy's idle BLAS
    threads are ended, so they do not spin on the cores the epoch needs
    (``neighbours``)."""
    quiet_blas_threads()


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


def variants_for(net, dtype="float64", *, batch_size=10, optimizer=None, train=True):
    """The compiled variants (``plan.Variant``) a run needs: training ``net``
    (if ``train``) in mini-batches of ``batch_size`` with ``optimizer``
    (default plain SGD), and predicting.  Inputs of every dtype share them."""
    rule = plan.update_rule(SGD(0.1) if optimizer is None else optimizer)
    return plan.needed_variants(net.sizes, dtype, batch_size=int(batch_size) if train else None, rule=rule)


def missing(variants):
    """The variants of ``variants`` that are neither loaded in this process nor
    recorded as in the cache (a run would compile them first)."""
    return [v for v in dict.fromkeys(variants) if not plan.is_compiled(v)]


def estimate_seconds(variants):
    """About how long compiling what ``variants`` lacks takes on this machine."""
    return plan.estimate_seconds(variants)


def compile_ahead(net, dtype="float64", *, batch_size=10, optimizer=None, train=True):
    """Compile what training ``net`` (a ``network.Net``) with parameters of
    ``dtype`` needs (``variants_for``), or load it from the cache, so that a
    later run starts at once; returns the seconds it took to compile (0.0 if
    everything was cached)."""
    return compile_variants(variants_for(net, dtype, batch_size=batch_size, optimizer=optimizer, train=train))


def compile_variants(variants):
    """Compile what ``variants`` lacks (in child processes, side by side) and
    load it; returns the wall seconds that took (0.0 if nothing was missing)."""
    return plan.compile_missing(variants)
