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
each, as many at a time as there are cores.  Before them, the entry kernels they
call (``jit``) that are not in the cache yet compile in the same children,
shared out by size; each child then waits until all of them are in the cache
and goes on to its configuration, which links them from there.  So a
configuration's compile is mostly its kernels, side by side, kernels shared by
several configurations compile once, and each core starts Python and Numba's
compiler once.  If the parent still had to compile (the cache missed anyway,
e.g. a cache folder shared with another kind of CPU), the record is dropped so
the next run tries again.

The record is a marker file in the configuration's folder (``cache.folder``),
whose name already stands for everything that invalidates the compiled code.
If the child cannot start, fails or takes longer than ``CHILD_TIMEOUT``, or the
cache folder lasts only for this process, the parent compiles in-process,
after a one-line note in the first case.
"""

import json
import subprocess
import sys
import tempfile
import threading
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


#: What a child prints once its entry kernels are compiled, before it waits
#: for a line on its stdin to go on to its configurations; and after each
#: configuration.
_READY, _DONE = "fastmlp-child: kernels compiled", "fastmlp-child: configuration compiled"
#: The job that makes a child print ``_READY`` and wait.
_WAIT = json.dumps({"wait": True})


def _write_marker(path):
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("compiled by a child process (fastmlp.backends.numba.precompile)\n")
    except OSError:
        pass  # no marker: the next run checks again, which costs a cache load only


def _run_child(kernels, specs, kernels_done):
    """Compile the entry kernels ``[(spec, name)]`` and then the configurations
    ``specs`` into the cache in one child process.  Once its kernels are
    compiled the child waits until every child's are (``kernels_done``, a
    ``threading.Barrier`` of the children that have kernels), so that its
    configurations link them all from the cache; one process for both saves a
    second start of Python and of Numba's compiler per core.

    Returns ``(ready, seconds, failure)``: when its kernels were done (or
    None), ``{spec: seconds}`` for its configurations, and None or one line
    saying why the child failed.  Markers are written for what it compiled."""
    jobs = [json.dumps({"spec": spec.to_json(), "kernel": name}) for spec, name in kernels]
    if kernels and specs:
        jobs.append(_WAIT)
    jobs += [spec.to_json() for spec in specs]
    start = time.perf_counter()
    ready, seconds, failure, waited = None, {}, None, not kernels
    try:
        with tempfile.TemporaryFile("w+") as err, \
                subprocess.Popen([sys.executable, "-c", _CHILD, str(_IMPORT_ROOT), *jobs],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True) as child:
            timed_out = threading.Event()
            timer = threading.Timer(CHILD_TIMEOUT, lambda: (timed_out.set(), child.kill()))
            timer.start()
            try:
                last = start
                for line in child.stdout:
                    if line.strip() == _READY:
                        ready = time.perf_counter()
                        waited = _wait(kernels_done)
                        last = time.perf_counter()
                        child.stdin.write("go\n")
                        child.stdin.flush()
                    elif line.strip() == _DONE and len(seconds) < len(specs):
                        now = time.perf_counter()
                        seconds[specs[len(seconds)]], last = now - last, now
                child.wait()
            finally:
                timer.cancel()
            if timed_out.is_set():
                failure = f"no result after {CHILD_TIMEOUT} s"
            elif child.returncode != 0:
                err.seek(0)
                failure = (err.read().strip().splitlines() or [f"exit status {child.returncode}"])[-1]
    except (OSError, ValueError) as exc:  # cannot start, or the pipe broke
        failure = f"{type(exc).__name__}: {exc}"
    finally:
        if not waited:  # this child has no more kernels to give: let the others go on
            _wait(kernels_done)
    if failure is None and kernels and ready is None:
        ready = time.perf_counter()
    if ready is not None:
        for spec, name in kernels:
            _write_marker(_kernel_marker(_kernels_of(spec)[name], spec.dtype))
    for spec in seconds:
        _write_marker(_marker(spec))
    return ready, seconds, failure


def _wait(barrier):
    """Wait at ``barrier`` (if any) until every child's kernels are done;
    True once passed (or broken: the children then go on without it)."""
    if barrier is not None:
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass
    return True


#: The key of ``ensure_compiled``'s result for the entry kernels' compile.
KERNELS = "kernels"


def _plan(kernels, specs, cores):
    """Who compiles what: ``[(kernels, specs)]``, one item per child.  The entry
    kernels are shared out over up to ``cores`` children (``_share_out``);
    the configurations go round to the same children, or, when no kernel is
    missing, to children of their own."""
    groups = _share_out(kernels, cores) if kernels else []
    plan = [(group, []) for group in groups] or [([], []) for _ in range(min(len(specs), cores))]
    for i, spec in enumerate(specs):
        plan[i % len(plan)][1].append(spec)
    return plan


def ensure_compiled(*specs):
    """Make sure each of ``specs`` is loaded in this process from Numba's cache,
    compiling what the cache lacks first in child processes, one per core: a
    compile is single-threaded, so a run's kernels, and then its epoch and its
    prediction, compile side by side.

    Returns ``{spec: seconds}`` for the configurations it compiled (each one's
    own time in its child), and under ``KERNELS`` the time until their entry
    kernels were compiled, if any were missing; empty if nothing was missing.
    If there is no lasting cache, or a child failed (with a note), this process
    compiles what is still missing itself."""
    missing = [spec for spec in dict.fromkeys(specs) if not is_compiled(spec)]
    if not missing:
        return {}
    seconds = dict.fromkeys(missing, 0.0)
    if cache.persistent():
        start = time.perf_counter()
        plan = _plan(missing_kernels(missing), missing, available_cores())
        with_kernels = sum(1 for kernels, _ in plan if kernels)
        barrier = threading.Barrier(with_kernels) if with_kernels else None
        with ThreadPoolExecutor(max_workers=len(plan)) as pool:
            done = list(pool.map(lambda item: _run_child(*item, barrier), plan))
        readies = [ready for ready, _, _ in done if ready is not None]
        if with_kernels and readies:
            seconds[KERNELS] = max(readies) - start
        for _, child_seconds, _ in done:
            seconds.update(child_seconds)
        failures = [failure for _, _, failure in done if failure is not None]
        if failures:
            print(f"fastmlp: compiling the kernels in a child process failed ({failures[0]}); "
                  "compiling in this process instead.", file=sys.stderr)
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
    (compile its function, then print ``_DONE``), ``{"spec": ..., "kernel":
    name}`` (compile that spec's entry kernel ``name`` for the types its
    function calls it with), or ``_WAIT`` (print ``_READY``, then wait for a
    line on stdin: the parent sends it when every child's kernels are in the
    cache)."""
    import numba

    from fastmlp.backends.numba import jit
    from fastmlp.backends.numba.specs import spec_from_json

    folder = Path(argv[0]).resolve()
    if _IMPORT_ROOT != folder:
        sys.exit(f"imported fastmlp from {_IMPORT_ROOT}, expected it under {folder}")
    # A kernel already in the cache is loaded, not compiled, and loading
    # parallel code before Numba's thread pool has started aborts the process
    # (as in cache.load).
    numba.get_num_threads()
    for text in argv[1:]:
        job = json.loads(text)
        if "wait" in job:
            print(_READY, flush=True)
            sys.stdin.readline()
        elif "kernel" in job:
            spec = spec_from_json(job["spec"])
            dispatcher = _kernels_of(spec)[job["kernel"]]
            dispatcher.compile(jit.entry_signature(dispatcher, spec.dtype))
        else:
            spec = spec_from_json(text)
            cache.load(spec, _source_of(spec))
            print(_DONE, flush=True)
