"""What the Numba backend needs around its kernel calls: the thread count,
thread safety, the limits of its types, and compiling ahead of a run
(``compile_ahead``, for a container image or right after install).

The model calls these hooks on every backend (``fastmlp.backends``); the NumPy
reference's versions do nothing.
"""

import contextlib
import json
import threading
import time
import warnings

import numba

from fastmlp._files import atomic_write
from fastmlp.backends.numba import cache, precompile
from fastmlp.backends.numba.specs import epoch_spec, predict_spec
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


def prepare(net, dtype, *, batch_size=None, optimizer=None):
    """Before the first kernel call of a run: compile what it needs (side by
    side, in child processes: ``precompile``), or load it from the cache;
    training ``net`` in mini-batches of ``batch_size`` with ``optimizer`` (when
    a batch size is given) and predicting.  ``train_batches`` and
    ``predict_proba`` would compile their own configuration on first use too,
    but one after the other.  Returns the seconds spent compiling."""
    return compile_specs(specs_for(net, dtype, batch_size=batch_size or 1, optimizer=optimizer,
                                   train=batch_size is not None))


def specs_for(net, dtype="float64", *, batch_size=10, optimizer=None, train=True):
    """The configurations (``specs``) a run needs: training ``net`` (if
    ``train``) in mini-batches of ``batch_size`` with ``optimizer`` (default
    plain SGD), and predicting.  Inputs of every dtype share them."""
    optimizer = SGD(0.1) if optimizer is None else optimizer
    found = [predict_spec(net.sizes, dtype)]
    if train:
        found.insert(0, epoch_spec(net.sizes, optimizer, int(batch_size), dtype))
    return found


def missing(specs):
    """The configurations of ``specs`` that are neither loaded in this process nor
    recorded as in the cache (a run would compile them first)."""
    return [spec for spec in specs if not precompile.is_compiled(spec)]


def compile_specs(specs):
    """Compile what ``specs`` lacks (in child processes, side by side) and load
    it; returns the seconds that took (0.0 if nothing had to be compiled)."""
    start = time.perf_counter()
    compiled = precompile.ensure_compiled(*specs)
    if not compiled:
        return 0.0
    _record_seconds(compiled)
    return time.perf_counter() - start


def compile_ahead(net, dtype="float64", *, batch_size=10, optimizer=None, train=True):
    """Compile what training ``net`` (a ``network.Net``) with parameters of
    ``dtype`` needs (``specs_for``), or load it from the cache, so that a later
    run starts at once; returns the seconds it took to compile (0.0 if
    everything was cached).  As in a run, the compile happens in a child
    process and this process then loads the cached code."""
    return compile_specs(specs_for(net, dtype, batch_size=batch_size, optimizer=optimizer, train=train))


#: Seconds per kind of compile before any was measured on this machine: the
#: first ``fastmlp train`` (784-30-10 float64) on a 2-core Intel Xeon (AVX-512)
#: compiled its entry kernels in 9.7-19.2 s, then its epoch in 7.0-7.8 s beside
#: its prediction in 6.7-7.7 s (2026-12-02 evening and 2026-12-03 morning: the
#: same VM compiled 1.3-1.7 times more slowly on the second).
DEFAULT_SECONDS = {precompile.KERNELS: 15.0, "epoch": 7.5, "predict": 7.5}
_TIMES_FILE = "compile-seconds.json"


def _record_seconds(compiled):
    """Keep the last measured compile time per kind (``compiled``: what
    ``precompile.ensure_compiled`` returned), for ``estimate_seconds``."""
    times = _read_times()
    times.update((getattr(key, "kind", key), seconds) for key, seconds in compiled.items())
    try:
        with atomic_write(cache.root() / _TIMES_FILE, "w") as f:
            json.dump(times, f)
    except OSError:
        pass


def _read_times():
    try:
        times = json.loads((cache.root() / _TIMES_FILE).read_text())
        return {k: float(v) for k, v in times.items() if k in DEFAULT_SECONDS}
    except (OSError, ValueError, AttributeError, TypeError):
        return {}


def estimate_seconds(specs):
    """About how long compiling what ``specs`` lacks will take: the last compile
    measured on this machine per kind, else ``DEFAULT_SECONDS``.  The entry
    kernels no child has compiled yet come first; then the configurations
    compile side by side, one per core (``precompile.ensure_compiled``)."""
    times = {**DEFAULT_SECONDS, **_read_times()}
    todo = missing(specs)
    if not todo:
        return 0.0
    functions = [times[spec.kind] for spec in todo]
    kernels = times[precompile.KERNELS] if precompile.missing_kernels(todo) else 0.0
    return kernels + max(max(functions), sum(functions) / precompile.available_cores())
