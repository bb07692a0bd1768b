"""Compile variants (``plan.Variant``) in child processes, so that every run
executes machine code loaded from the cache, and the cores compile side by
side.

Why a child: a kernel compiled in this process and the same kernel loaded
from the cache round differently in the last bits (on an AMD EPYC Zen 4, one
epoch gives other weights when the update kernels ``update._update_layer``
or ``_update_forward_first`` were compiled in the process, and the same
weights when only the forward kernels were).  The cause is in how Numba links compiled code: a
kernel's callees (the templates below an entry kernel, ``jit``) are compiled
as functions of their own and then linked into the kernel's module as
``linkonce_odr`` copies, which the module optimises once more
(``numba.core.codegen``, ``_get_module_for_linking`` and ``finalize``).  The
cache stores the kernel's module with those copies, and a process that loads
it runs them; but in the process that compiled it the JIT resolves the weak
symbols to the callees' own definitions, loaded earlier and optimised
once.  With fast-math the two copies vectorise differently.  Without a child
the first run of a variant would end with other weights than every later run
with the same seed.  A child compiles what the cache lacks and exits; this
process then loads it like every later run.

The variants are shared out over up to ``available_cores()`` children by
their estimated compile time, those that share templates together
(``share_out``).  The drivers need no compiled kernel (their signatures hold
the kernels' declared function types), so every child has one list and no
child waits for another.  If a child cannot start or fails, or the cache
lasts only for this process, the caller compiles in-process, after a
one-line note in the first case.
"""

import json
import subprocess
import sys
import tempfile
import threading
from dataclasses import asdict
from pathlib import Path

from fastmlp._machine import available_cores

__all__ = ["available_cores", "compile_in_children", "serve", "share_out"]

#: The folder fastmlp is imported from (the child must import the same copy).
_IMPORT_ROOT = Path(__file__).resolve().parents[3]
#: Longest wait for a child (a variant compiles in seconds; a loaded machine
#: may be much slower).
CHILD_TIMEOUT = 1800
#: The child: import fastmlp from this package's folder even if the current
#: folder holds another copy (``python -c`` puts the current folder first).
_CHILD = ("import sys; sys.path.insert(0, sys.argv[1]); import fastmlp.backends.numba.plan as p; "
          "p.serve_child(sys.argv[1:])")
#: The share of a variant's compile time that templates compiled before in
#: the same process do not save: each variant still optimises its linked
#: callees again.  On an AMD EPYC Zen 4, with 0.7 the estimates of the
#: original run, the fast preset and all 42 variants are 12.0, 13.8 and 49.2 s
#: against 12.7, 17.1 and 57.5 s compiled (0 gives 10.4, 11.1 and 17.3).
SHARED_COST = 0.7
#: What a child prints before the seconds it spent per variant (JSON).
_SECONDS = "fastmlp-child: seconds "


def share_out(variants, n, seconds_of, parts_of):
    """``variants`` in at most ``n`` groups of about equal compile time, and
    the longest group's estimated seconds.  Biggest first, each goes to the
    group that ends least loaded with it.  A variant costs ``seconds_of(v)``,
    less for the share of its parts (``parts_of(v)``: ``{part: size}``, what
    compiling it compiles) that its group compiles already (``SHARED_COST``):
    variants that share code compile it once together."""
    groups = [[] for _ in range(max(1, min(n, len(variants))))]
    loads = [0.0] * len(groups)
    parts = [set() for _ in groups]

    def cost(v, g):
        mine = parts_of(v)
        new = sum(size for part, size in mine.items() if part not in parts[g])
        return seconds_of(v) * (SHARED_COST + (1 - SHARED_COST) * new / max(1, sum(mine.values())))

    for v in sorted(variants, key=lambda v: -seconds_of(v)):
        g = min(range(len(groups)), key=lambda g: (loads[g] + cost(v, g), g))
        loads[g] += cost(v, g)
        groups[g].append(v)
        parts[g] |= parts_of(v).keys()
    return groups, max(loads)


def compile_in_children(variants, seconds_of, parts_of):
    """Compile ``variants`` into the cache in child processes, one group each
    (``share_out``).  Returns ``({variant: seconds}, failure)``: the compile
    time of each variant the children measured (by ``Variant.describe``),
    and None or one line saying why a child failed."""
    groups, _ = share_out(variants, available_cores(), seconds_of, parts_of)
    results = [None] * len(groups)

    def run(i):
        results[i] = _run_child(groups[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(groups))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds, failures = {}, []
    for child_seconds, failure in results:
        seconds.update(child_seconds)
        if failure:
            failures.append(failure)
    return seconds, (failures[0] if failures else None)


def _run_child(variants):
    """One child compiling ``variants``; returns ``({variant: seconds}, failure)``."""
    seconds, failure = {}, None
    try:
        with tempfile.TemporaryFile("w+") as err:
            child = subprocess.run([sys.executable, "-c", _CHILD, str(_IMPORT_ROOT),
                                    json.dumps([asdict(v) for v in variants])],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, text=True,
                                   timeout=CHILD_TIMEOUT)
            for line in child.stdout.splitlines():
                if line.startswith(_SECONDS):
                    seconds = json.loads(line[len(_SECONDS):])
            if child.returncode != 0:
                err.seek(0)
                failure = (err.read().strip().splitlines() or [f"exit status {child.returncode}"])[-1]
    except subprocess.TimeoutExpired:
        failure = f"no result after {CHILD_TIMEOUT} s"
    except (OSError, ValueError) as exc:  # cannot start, or the pipe broke
        failure = f"{type(exc).__name__}: {exc}"
    return seconds, failure


def serve(argv, compile_variants, variant):
    """The child's side (``_CHILD`` calls it through ``plan.serve_child``).
    ``argv``: the folder fastmlp must come from, then a JSON list of the
    variants' fields.  ``compile_variants`` compiles a list of variants and
    returns ``{variant name: seconds}``; ``variant`` makes one of its fields."""
    import numba

    folder = Path(argv[0]).resolve()
    if _IMPORT_ROOT != folder:
        sys.exit(f"imported fastmlp from {_IMPORT_ROOT}, expected it under {folder}")
    # loading parallel code before Numba's thread pool has started aborts the process
    numba.get_num_threads()
    seconds = compile_variants([variant(**fields) for fields in json.loads(argv[1])])
    print(_SECONDS + json.dumps(seconds), flush=True)
