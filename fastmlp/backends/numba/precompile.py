"""Compile a configuration's functions in a child process, so that every run
executes the same cached machine code.

Why: with fast-math on, a process that compiles the kernels itself and a
process that loads the very same kernels from Numba's on-disk cache were
measured to round differently in the last bits (docs/performance.md,
"Determinism").  Without this module the first run of a configuration would
end with slightly different weights from every later run with the same seed.
So when ``train_batches`` or ``predict_proba`` meets a configuration
(``specs``) with no record that it is in the cache, a child Python compiles it
and writes the cache; the parent then loads it like every later run.  Several
configurations (a run's epoch and prediction) compile side by side, one child
each, as many at a time as there are cores.  If the parent still had to
compile (the cache missed anyway, e.g. a cache folder shared with another kind
of CPU), the record is dropped so the next run tries again.

The record is a marker file in the configuration's folder (``cache.folder``),
whose name already stands for everything that invalidates the compiled code.
If the child cannot start, fails or takes longer than ``CHILD_TIMEOUT``, or the
cache folder lasts only for this process, the parent compiles in-process,
after a one-line note in the first case.
"""

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fastmlp._machine import available_cores
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


def _compile_in_child(spec):
    """Compile ``spec`` into the cache in a child process: ``(seconds, None)``
    when that worked, else ``(seconds, one line saying why not)``."""
    start = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-c", _CHILD, str(_IMPORT_ROOT), spec.to_json()],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True, timeout=CHILD_TIMEOUT)
    except (OSError, subprocess.SubprocessError) as exc:  # cannot start, or timed out
        return time.perf_counter() - start, f"{type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        return seconds, (done.stderr.strip().splitlines() or ["no message"])[-1]
    try:
        _marker(spec).parent.mkdir(parents=True, exist_ok=True)
        _marker(spec).write_text("compiled by a child process (fastmlp.backends.numba.precompile)\n")
    except OSError:
        pass  # no marker: the next run checks again, which costs a cache load only
    return seconds, None


def ensure_compiled(*specs):
    """Make sure each of ``specs`` is loaded in this process from Numba's cache,
    compiling what the cache lacks first, one child process per configuration,
    as many at a time as there are cores: a compile is single-threaded, so a
    run's epoch and prediction compile side by side.

    Returns ``{spec: seconds}`` for the configurations it compiled (each
    child's time; empty if nothing was missing).  If there is no lasting cache,
    or a child failed (with a note), this process compiles what is still
    missing itself."""
    missing = [spec for spec in dict.fromkeys(specs) if not is_compiled(spec)]
    if not missing:
        return {}
    seconds = dict.fromkeys(missing, 0.0)
    if cache.persistent():
        with ThreadPoolExecutor(max_workers=min(len(missing), available_cores())) as pool:
            done = list(pool.map(_compile_in_child, missing))
        failures = [failure for _, failure in done if failure is not None]
        if failures:
            print(f"fastmlp: compiling the kernels in a child process failed ({failures[0]}); "
                  "compiling in this process instead.", file=sys.stderr)
        seconds.update((spec, s) for spec, (s, _) in zip(missing, done))
    for spec in missing:
        start = time.perf_counter()
        function = _function_of(cache.load(spec, _source_of(spec)))
        seconds[spec] += time.perf_counter() - start
        if cache.compiled_here(function):  # the cache missed after all
            try:
                _marker(spec).unlink()
            except OSError:
                pass
    return seconds


def _child(argv):
    """``argv``: the folder fastmlp must come from, then the specs (JSON)."""
    from fastmlp.backends.numba.specs import spec_from_json

    folder, specs = Path(argv[0]).resolve(), [spec_from_json(text) for text in argv[1:]]
    if _IMPORT_ROOT != folder:
        sys.exit(f"imported fastmlp from {_IMPORT_ROOT}, expected it under {folder}")
    for spec in specs:
        cache.load(spec, _source_of(spec))
