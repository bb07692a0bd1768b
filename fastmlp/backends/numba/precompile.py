"""Compile a configuration's functions in a child process, so that every run
executes the same cached machine code.

Why: with fast-math on, a process that compiles the kernels itself and a
process that loads the very same kernels from Numba's on-disk cache were
measured to round differently in the last bits (docs/performance.md,
"Determinism").  Without this module the first run of a configuration would
end with slightly different weights from every later run with the same seed.
So when ``train_batches`` or ``predict_proba`` meets a configuration
(``specs``) with no record that it is in the cache, a child Python compiles it
and writes the cache; the parent then loads it like every later run.  If the
parent still had to compile (the cache missed anyway, e.g. a cache folder
shared with another kind of CPU), the record is dropped so the next run tries
again.

The record is a marker file in the configuration's folder (``cache.folder``),
whose name already stands for everything that invalidates the compiled code.
If the child cannot start, fails or takes longer than ``CHILD_TIMEOUT``, or the
cache folder lasts only for this process, the parent compiles in-process,
after a one-line note in the first case.
"""

import subprocess
import sys
import time
from pathlib import Path

from fastmlp.backends.numba import cache

#: The folder fastmlp is imported from (the child must import the same copy).
_IMPORT_ROOT = Path(__file__).resolve().parents[3]
#: Longest wait for the child (a configuration compiles in seconds to tens of
#: seconds; a loaded machine may be much slower).
CHILD_TIMEOUT = 1800
#: The child: import fastmlp from this package's folder even if the current
#: folder holds another copy (``python -c`` puts the current folder first).
_CHILD = ("import sys; sys.path.insert(0, sys.argv[1]); import fastmlp.backends.numba.precompile as p; "
          "p._child(sys.argv[1:])")


def _marker(spec):
    return cache.folder(spec) / cache.MARKER


def _source_of(spec):
    if spec.kind == "epoch":
        from fastmlp.backends.numba.epoch import source
    else:
        from fastmlp.backends.numba.predict import source
    return source


def _function_of(module):
    return module.train_epoch if hasattr(module, "train_epoch") else module.predict


def is_compiled(spec):
    """Is ``spec``'s code in this process, or recorded as in the cache?"""
    return cache.is_loaded(spec) or (cache.persistent() and _marker(spec).exists())


def ensure_compiled(*specs):
    """Make sure each of ``specs`` is loaded in this process from Numba's cache,
    compiling what the cache lacks in one child process first.

    Returns the seconds the compile took (0.0 if nothing was missing).  If there
    is no lasting cache, or the child failed (with a note), this process
    compiles them itself."""
    missing = [spec for spec in dict.fromkeys(specs) if not is_compiled(spec)]
    if not missing:
        return 0.0
    start = time.perf_counter()
    if cache.persistent():
        try:
            done = subprocess.run([sys.executable, "-c", _CHILD, str(_IMPORT_ROOT), *(s.to_json() for s in missing)],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True, timeout=CHILD_TIMEOUT)
            failure = None if done.returncode == 0 else ((done.stderr.strip().splitlines() or ["no message"])[-1])
        except (OSError, subprocess.SubprocessError) as exc:  # cannot start, or timed out
            failure = f"{type(exc).__name__}: {exc}"
        if failure is not None:
            print(f"fastmlp: compiling the kernels in a child process failed ({failure}); "
                  "compiling in this process instead.", file=sys.stderr)
        else:
            for spec in missing:
                try:
                    _marker(spec).parent.mkdir(parents=True, exist_ok=True)
                    _marker(spec).write_text("compiled by a child process (fastmlp.backends.numba.precompile)\n")
                except OSError:
                    pass  # no marker: the next run checks again, which costs a cache load only
    for spec in missing:
        function = _function_of(cache.load(spec, _source_of(spec)))
        if cache.compiled_here(function):  # the cache missed after all
            try:
                _marker(spec).unlink()
            except OSError:
                pass
    return time.perf_counter() - start


def _child(argv):
    """``argv``: the folder fastmlp must come from, then the specs (JSON)."""
    from fastmlp.backends.numba.specs import spec_from_json

    folder, specs = Path(argv[0]).resolve(), [spec_from_json(text) for text in argv[1:]]
    if _IMPORT_ROOT != folder:
        sys.exit(f"imported fastmlp from {_IMPORT_ROOT}, expected it under {folder}")
    for spec in specs:
        cache.load(spec, _source_of(spec))
