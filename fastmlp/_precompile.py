"""Compile the training kernels in a child process, so that every run executes
the same cached machine code.

Why: with fast-math on, a process that compiles the kernels itself and a
process that loads the very same kernels from Numba's on-disk cache were
measured to round differently in the last bits (docs/performance.md,
"Determinism").  Without this module the first run after an install or an
upgrade would end with slightly different weights from every later run with
the same seed.  So when ``MLP.fit`` (numba backend) finds no record that its
kernels are in the cache, it runs ``python -m fastmlp._precompile`` once: the
child compiles ``train_batches`` and ``predict_proba`` for the run's array
types and writes the cache, the parent then loads them like every later run.

The record is a small marker file next to Numba's cache, named after what
invalidates Numba's own entries (the Numba version and the kernel sources'
modification time and size) and the array types.  If the child fails, or no
cache location is writable, the parent simply compiles in-process, as before.
"""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from fastmlp import _numba_cache

_PACKAGE_DIR = Path(__file__).resolve().parent
#: Sources whose kernels are compiled here (their stamps key the marker).
_SOURCES = ("kernels.py", "_tile.py")


def _types_key(dtype, X):
    """What selects a specialisation of the kernels for input ``X``: the
    parameters' dtype and the dtype and writability (Numba types read-only arrays
    apart) of ``X`` as ``kernels._check_input`` will pass it on."""
    dtype = np.dtype(dtype)
    if X.dtype != np.uint8 and X.dtype != dtype or not X.flags.c_contiguous:
        x_dtype, writeable = (X.dtype if X.dtype in (np.uint8, dtype) else dtype), True  # a copy
    else:
        x_dtype, writeable = X.dtype, X.flags.writeable
    return f"{dtype.name}-{np.dtype(x_dtype).name}-{'rw' if writeable else 'ro'}"


def _marker(types_key):
    import numba

    stamps = [numba.__version__, os.environ.get("FASTMLP_FASTMATH", "1")]
    for name in _SOURCES:
        st = (_PACKAGE_DIR / name).stat()
        stamps.append(f"{name}:{st.st_mtime_ns}:{st.st_size}")
    digest = hashlib.sha256("|".join(stamps).encode()).hexdigest()[:16]
    return _numba_cache.cache_root() / f"fastmlp-compiled-{types_key}-{digest}"


def ensure_compiled(dtype, *inputs):
    """Make sure the kernels for parameters of ``dtype`` and each input array in
    ``inputs`` come from Numba's cache.

    Returns True if they do (already, or after a child process compiled them),
    False if this process will compile them itself (no writable cache, or the
    child failed)."""
    if not _numba_cache.CACHE_OK:
        return False
    keys = sorted({_types_key(dtype, X) for X in inputs if X is not None})
    missing = [key for key in keys if not _marker(key).exists()]
    if not missing:
        return True
    env = dict(os.environ)
    # the child must import this very package, wherever it was imported from
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_PACKAGE_DIR.parent), env.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-m", "fastmlp._precompile", *missing], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        print(f"fastmlp: compiling the kernels in a child process failed ({last}); "
              "compiling in this process instead.", file=sys.stderr)
        return False
    for key in missing:
        marker = _marker(key)
        tmp = marker.with_name(marker.name + f".{os.getpid()}.tmp")
        try:
            tmp.write_text("kernels compiled by python -m fastmlp._precompile\n")
            os.replace(tmp, marker)
        except OSError:
            pass  # no marker: the next run checks again, which costs a cache load only
    return True


def _compile(types_key):
    """Call the training and prediction kernels once on tiny arrays of the given
    types, which compiles them and writes them to the cache."""
    from fastmlp import kernels
    from fastmlp.network import SGD, Net, n_params

    dtype, x_dtype, access = types_key.split("-")
    net = Net((3, 2, 2), ("sigmoid", "sigmoid"), "quadratic")
    params = np.zeros(n_params(net.sizes), dtype=dtype)
    X = np.zeros((2, 3), dtype=x_dtype)
    X.flags.writeable = access == "rw"
    y = np.zeros(2, dtype=np.uint8)
    kernels.train_batches(params, np.zeros_like(params), net, SGD(0.1), X, y, np.arange(2), 2)
    kernels.predict_proba(params, net, X)


if __name__ == "__main__":
    for _key in sys.argv[1:]:
        _compile(_key)
