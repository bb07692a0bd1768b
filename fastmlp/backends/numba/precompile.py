"""Compile the training kernels in a child process, so that every run executes
the same cached machine code.

Why: with fast-math on, a process that compiles the kernels itself and a
process that loads the very same kernels from Numba's on-disk cache were
measured to round differently in the last bits (docs/performance.md,
"Determinism").  Without this module the first run after an install or an
upgrade would end with slightly different weights from every later run with
the same seed.  So when ``MLP.fit`` or ``MLP.predict_proba`` (numba backend)
finds no record that its kernels are in the cache, it starts a child Python
once: the child compiles ``train_batches`` and ``predict_proba`` for the run's
array types and writes the cache; the parent then loads them like every later
run.  If the parent still had to compile (the cache missed anyway), it drops
the record so the next run tries again (``forget_if_compiled_here``).

The record is a small marker file next to Numba's cache, named after what
invalidates the cache entries (the Numba version, the kernel source's
modification time and size, ``_numba_cache.DEPENDENCY_STAMP``) and the array
types.  If the child cannot start, fails or takes longer than
``CHILD_TIMEOUT``, or no cache location is writable, the parent compiles
in-process after a one-line note.
"""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from fastmlp.backends.numba import cache as _numba_cache

#: The folder fastmlp is imported from (the child must import the same copy).
_IMPORT_ROOT = Path(__file__).resolve().parents[3]
#: Longest wait for the child (a full compile took 33-60 s on the 2-core machines
#: measured, 2026-11/12; a loaded machine takes several times longer).
CHILD_TIMEOUT = 1800
#: The child: import fastmlp from this package's folder even if the current
#: folder holds another copy (``python -c`` puts the current folder first).
_CHILD = ("import sys; sys.path.insert(0, sys.argv[1]); import fastmlp.backends.numba.precompile as p; "
          "p._child(sys.argv[1:])")


def _types_key(dtype, X):
    """What selects a specialisation of the kernels for input ``X``: the
    parameters' dtype and the dtype and writability (Numba types read-only arrays
    apart) of ``X`` as ``shapes._check_input`` will pass it on."""
    dtype = np.dtype(dtype)
    if X.dtype != np.uint8 and X.dtype != dtype or not X.flags.c_contiguous:
        x_dtype, writeable = (X.dtype if X.dtype in (np.uint8, dtype) else dtype), True  # a copy
    else:
        x_dtype, writeable = X.dtype, X.flags.writeable
    return f"{dtype.name}-{np.dtype(x_dtype).name}-{'rw' if writeable else 'ro'}"


def _marker(types_key):
    import numba

    stamps = [numba.__version__, _numba_cache.DEPENDENCY_STAMP]
    digest = hashlib.sha256("|".join(stamps).encode()).hexdigest()[:16]
    return _numba_cache.cache_root() / f"fastmlp-compiled-{types_key}-{digest}"


#: Types keys already checked in this process (``predict_proba`` runs every
#: epoch; once a key's kernels are loaded there is nothing more to check).
_ensured = set()


def ensure_compiled(dtype, *inputs):
    """Make sure the kernels for parameters of ``dtype`` and each input array in
    ``inputs`` come from Numba's cache.

    Returns True if they do (already, or after a child process compiled them),
    False if this process will compile them itself (no writable cache, or the
    child failed)."""
    if not _numba_cache.CACHE_OK:
        return False
    keys = sorted({_types_key(dtype, X) for X in inputs if X is not None} - _ensured)
    missing = [key for key in keys if not _marker(key).exists()]
    if not missing:
        _ensured.update(keys)
        return True
    try:
        done = subprocess.run([sys.executable, "-c", _CHILD, str(_IMPORT_ROOT), *missing],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True, timeout=CHILD_TIMEOUT)
        failure = None if done.returncode == 0 else ((done.stderr.strip().splitlines() or ["no message"])[-1])
    except (OSError, subprocess.SubprocessError) as exc:  # cannot start, or timed out
        failure = f"{type(exc).__name__}: {exc}"
    if failure is not None:
        print(f"fastmlp: compiling the kernels in a child process failed ({failure}); "
              "compiling in this process instead.", file=sys.stderr)
        return False
    for key in missing:
        marker = _marker(key)
        tmp = marker.with_name(marker.name + f".{os.getpid()}.tmp")
        try:
            tmp.write_text("kernels compiled by a child process (fastmlp.backends.numba.precompile)\n")
            os.replace(tmp, marker)
        except OSError:
            pass  # no marker: the next run checks again, which costs a cache load only
    _ensured.update(keys)
    return True


def _compile(types_key):
    """Call the training and prediction kernels once on tiny arrays of the given
    types, which compiles them and writes them to the cache."""
    from fastmlp.backends import numba as kernels
    from fastmlp.network import SGD, Net, n_params

    dtype, x_dtype, access = types_key.split("-")
    net = Net((3, 2, 2), ("sigmoid", "sigmoid"), "quadratic")
    params = np.zeros(n_params(net.sizes), dtype=dtype)
    X = np.zeros((2, 3), dtype=x_dtype)
    X.flags.writeable = access == "rw"
    y = np.zeros(2, dtype=np.uint8)
    kernels.train_batches(params, np.zeros_like(params), net, SGD(0.1), X, y, np.arange(2), 2)
    kernels.predict_proba(params, net, X)


def forget_if_compiled_here(dtype, *inputs):
    """After a run's first kernel calls: if this process compiled the kernels
    after all (the marker was there but the cache missed, e.g. a cache folder
    shared with another kind of CPU), drop the markers so the next run compiles
    in a child again."""
    from fastmlp.backends.numba import epoch, predict

    if sum(epoch._train_epoch.stats.cache_misses.values()) + sum(predict._predict.stats.cache_misses.values()):
        for key in {_types_key(dtype, X) for X in inputs if X is not None}:
            _ensured.discard(key)
            try:
                _marker(key).unlink()
            except OSError:
                pass


def _child(argv):
    """``argv``: the folder fastmlp must come from, then the types keys."""
    folder, keys = Path(argv[0]).resolve(), argv[1:]
    if _IMPORT_ROOT != folder:
        sys.exit(f"imported fastmlp from {_IMPORT_ROOT}, expected it under {folder}")
    for key in keys:
        _compile(key)
