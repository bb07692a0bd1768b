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
each, as many at a time as there are cores.  Before them, the entry kernels
they call (``jit``) that are not in the cache yet compile the same way, split
over as many children as there are cores, so that each configuration's child
links them from the cache: a configuration's compile is then mostly its
kernels, side by side, and kernels shared by several configurations compile
once.  If the parent still had to
compile (the cache missed anyway, e.g. a cache folder shared with another kind
of CPU), the record is dropped so the next run tries again.

The record is a marker file in the configuration's folder (``cache.folder``),
whose name already stands for everything that invalidates the compiled code.
If the child cannot start, fails or takes longer than ``CHILD_TIMEOUT``, or the
cache folder lasts only for this process, the parent compiles in-process,
after a one-line note in the first case.
"""

import json
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


def _kernels_of(spec):
    """The entry kernels the generated function of ``spec`` calls, by name."""
    from fastmlp.backends.numba import jit

    if spec.kind == "predict":
        from fastmlp.backends.numba.predict import layer_kernels
    elif spec.optimiser == "adam":
        from fastmlp.backends.numba.adam import layer_kernels
    else:
        from fastmlp.backends.numba.epoch import layer_kernels
    return {name: d for name, d in layer_kernels(spec).items() if jit.is_entry(d)}


def _kernel_marker(dispatcher, dtype):
    return cache.kernel_folder() / f"{dispatcher.py_func.__qualname__}-{dtype}.compiled"


def missing_kernels(specs):
    """The entry kernels that ``specs`` call and no child has compiled into the
    cache yet, each once: ``[(spec, name)]``, a spec that calls it and its name there."""
    if not cache.persistent():
        return []
    found = {}
    for spec in specs:
        for name, dispatcher in _kernels_of(spec).items():
            key = (dispatcher, spec.dtype)
            if key not in found and not _kernel_marker(*key).exists():
                found[key] = (spec, name)
    return list(found.values())


def _share_out(kernels, n):
    """``kernels`` in at most ``n`` groups of about equal compile time
    (``jit.code_size``), biggest first, each to the least loaded group."""
    from fastmlp.backends.numba import jit

    size = {job: jit.code_size(_kernels_of(job[0])[job[1]]) for job in kernels}
    groups = [[] for _ in range(min(n, len(kernels)))]
    loads = [0] * len(groups)
    for job in sorted(kernels, key=lambda job: -size[job]):
        g = loads.index(min(loads))
        groups[g].append(job)
        loads[g] += size[job]
    return groups


def _function_of(module):
    return module.train_epoch if hasattr(module, "train_epoch") else module.predict


def is_compiled(spec):
    """Is ``spec``'s code in this process, or recorded as in the cache?"""
    return cache.is_loaded(spec) or (cache.persistent() and _marker(spec).exists())


def _compile_in_child(spec):
    """Compile ``spec`` into the cache in a child process: ``(seconds, None)``
    when that worked, else ``(seconds, one line saying why not)``."""
    seconds, failure = _run_child([spec.to_json()])
    if failure is None:
        _write_marker(_marker(spec), "compiled by a child process (fastmlp.backends.numba.precompile)\n")
    return seconds, failure


def _compile_kernels_in_child(kernels):
    """Compile the entry kernels ``[(spec, name)]`` into the cache in a child
    process, one after the other: ``(seconds, None or why not)``."""
    seconds, failure = _run_child([json.dumps({"spec": spec.to_json(), "kernel": name}) for spec, name in kernels])
    if failure is None:
        for spec, name in kernels:
            _write_marker(_kernel_marker(_kernels_of(spec)[name], spec.dtype), "compiled by a child process\n")
    return seconds, failure


def _write_marker(path, text):
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError:
        pass  # no marker: the next run checks again, which costs a cache load only


def _run_child(jobs):
    """Run the child on ``jobs`` (JSON texts): ``(seconds, None)`` when it
    succeeded, else ``(seconds, one line saying why not)``."""
    start = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-c", _CHILD, str(_IMPORT_ROOT), *jobs],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True, timeout=CHILD_TIMEOUT)
    except (OSError, subprocess.SubprocessError) as exc:  # cannot start, or timed out
        return time.perf_counter() - start, f"{type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        return seconds, (done.stderr.strip().splitlines() or ["no message"])[-1]
    return seconds, None


#: The key of ``ensure_compiled``'s result for the entry kernels' compile.
KERNELS = "kernels"


def _side_by_side(function, jobs):
    """``function`` on each of ``jobs`` in threads, as many at a time as there
    are cores (each waits for its child process)."""
    with ThreadPoolExecutor(max_workers=min(len(jobs), available_cores())) as pool:
        return list(pool.map(function, jobs))


def ensure_compiled(*specs):
    """Make sure each of ``specs`` is loaded in this process from Numba's cache,
    compiling what the cache lacks first, one child process per configuration,
    as many at a time as there are cores: a compile is single-threaded, so a
    run's epoch and prediction compile side by side.

    Returns ``{spec: seconds}`` for the configurations it compiled (each
    child's time), and under ``KERNELS`` the time of compiling their entry
    kernels first, if any were missing; empty if nothing was missing.  If there
    is no lasting cache, or a child failed (with a note), this process compiles
    what is still missing itself."""
    missing = [spec for spec in dict.fromkeys(specs) if not is_compiled(spec)]
    if not missing:
        return {}
    seconds = dict.fromkeys(missing, 0.0)
    if cache.persistent():
        done = []
        kernels = missing_kernels(missing)
        if kernels:
            start = time.perf_counter()
            done = _side_by_side(_compile_kernels_in_child, _share_out(kernels, available_cores()))
            seconds[KERNELS] = time.perf_counter() - start
        done += _side_by_side(_compile_in_child, missing)
        failures = [failure for _, failure in done if failure is not None]
        if failures:
            print(f"fastmlp: compiling the kernels in a child process failed ({failures[0]}); "
                  "compiling in this process instead.", file=sys.stderr)
        seconds.update((spec, s) for spec, (s, _) in zip(missing, done[-len(missing):]))
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
    """``argv``: the folder fastmlp must come from, then the jobs (JSON): a spec
    (compile its function), or ``{"spec": ..., "kernel": name}`` (compile that
    spec's entry kernel ``name`` for the types its function calls it with)."""
    from fastmlp.backends.numba import jit
    from fastmlp.backends.numba.specs import spec_from_json

    folder = Path(argv[0]).resolve()
    if _IMPORT_ROOT != folder:
        sys.exit(f"imported fastmlp from {_IMPORT_ROOT}, expected it under {folder}")
    for text in argv[1:]:
        job = json.loads(text)
        if "kernel" in job:
            spec = spec_from_json(job["spec"])
            dispatcher = _kernels_of(spec)[job["kernel"]]
            dispatcher.compile(jit.entry_signature(dispatcher, spec.dtype))
        else:
            spec = spec_from_json(text)
            cache.load(spec, _source_of(spec))
