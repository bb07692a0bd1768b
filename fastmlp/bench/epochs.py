"""The bench's rows and their timing, shared by ``benchmarks/bench_epoch.py``
and ``fastmlp bench``.

Every row trains one epoch of ``N_IMAGES`` (60,000) MNIST-shaped uint8 images
(random pixels: the arithmetic is the same as on the real data) with sigmoid
layers, the quadratic cost and plain SGD, and reports seconds per epoch,
GFLOP/s, the speed-up over the NumPy reference measured in the same run, and
the compile time (:mod:`fastmlp.bench.compile_time`).  JAX and PyTorch rows
are added when those libraries import (:mod:`fastmlp.bench.peers`; fastmlp
never depends on them).

Numba rows run for the vector ISA of this process (``isa.HOST``) and, on
request, for AVX2 in a child process (``isa.avx2_environment``), so an AVX-512
host can measure the AVX2 code path too.
"""

import json
import statistics
import sys
import time

import numpy as np

from fastmlp.bench import compile_time, peers
from fastmlp.bench.children import IMPORT_ROOT, run_python
from fastmlp.errors import BenchError
from fastmlp.errors import FastMLPError, UsageError, shown
from fastmlp.network import SGD, Net, init_params

#: (sizes, batch size, dtype): the standard rows.
BENCH_ROWS = [
    ((784, 30, 10), 10, "float64"),
    ((784, 30, 10), 10, "float32"),
    ((784, 128, 64, 10), 64, "float32"),
    ((784, 128, 64, 10), 64, "float64"),
    ((784, 1024, 1024, 10), 256, "float32"),
    ((784, 1024, 1024, 10), 256, "float64"),
]
N_IMAGES = 60_000
#: In the order they are timed: the peers last (see ``run_bench``).
BACKENDS = ("numpy", "numba", "jax", "torch")
PEERS = ("jax", "torch")
#: The vector ISAs ``--isa`` can ask the numba rows to be measured for.
ISAS = ("host", "avx2")


def flops_per_epoch(sizes, n=None):
    """Floating-point operations of one epoch of ``n`` images (default
    ``N_IMAGES``): forward (2 m n_in n_out per layer), weight gradients (the
    same) and hidden deltas (the same, for every layer but the first, whose
    delta is never propagated)."""
    n = N_IMAGES if n is None else n
    total = 0
    for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        per = 2 * n * n_in * n_out
        total += 2 * per + (per if l > 0 else 0)
    return total


def make_data(n=None, n_in=784, n_classes=10, seed=0):
    """Random MNIST-shaped data: ``(X uint8 (n, n_in), y uint8 (n,))``, ``n``
    default ``N_IMAGES``."""
    n = N_IMAGES if n is None else n
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 256, size=(n, n_in), dtype=np.uint8)
    y = rng.integers(0, n_classes, size=n).astype(np.uint8)
    return X, y


def torch_available():
    return peers.available("torch")


def jax_available():
    return peers.available("jax")


def backend_available(backend):
    return backend not in PEERS or peers.available(backend)


def _net(sizes):
    return Net(tuple(sizes), ("sigmoid",) * (len(sizes) - 1), "quadratic")


def make_epoch(backend, sizes, batch_size, dtype, X=None, y=None, lr=0.1, seed=0):
    """A zero-argument callable that trains one epoch with ``backend``
    (``"numpy"``, ``"numba"``, ``"jax"`` or ``"torch"``) on the same data and
    start each time it is made.  Its ``compile_seconds`` is the JAX compile
    time (compiled ahead), else None."""
    if X is None:
        X, y = make_data(n_in=sizes[0], n_classes=sizes[-1])
    net, sgd = _net(sizes), SGD(lr)
    params = init_params(net.sizes, ["normal"] * (len(sizes) - 1), np.random.default_rng(seed),
                         np.dtype(dtype))
    velocity = np.zeros_like(params)
    order = np.random.default_rng(seed + 1).permutation(len(X)).astype(np.int64)
    if backend == "torch":
        return peers.torch_epoch(params, net, X, y, order, batch_size, dtype, lr)
    if backend == "jax":
        return peers.JaxEpoch(params, net, X, y, order, batch_size, dtype, lr)
    from fastmlp.backends import get_backend

    module = get_backend(backend)

    def epoch():
        return module.train_batches(params, velocity, net, sgd, X, y, order, batch_size)

    epoch.compile_seconds = None
    return epoch


def epoch_time(backend, sizes, batch_size, dtype, repeats=3, X=None, y=None):
    """``(median seconds per epoch, compile seconds or None)``, timed after
    one warm-up epoch, so JIT compile time stays out."""
    epoch = make_epoch(backend, sizes, batch_size, dtype, X, y)
    epoch()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        epoch()
        times.append(time.perf_counter() - t)
    return statistics.median(times), epoch.compile_seconds


def _time_rows(rows, backends, repeats):
    """``{(sizes, batch, dtype, backend): (seconds, compile seconds)}``, every row of
    one backend after the other, in ``BACKENDS`` order."""
    data, out = {}, {}
    for backend in [b for b in BACKENDS if b in backends]:
        for sizes, batch, dtype in rows:
            if (sizes[0], sizes[-1]) not in data:
                data[(sizes[0], sizes[-1])] = make_data(n_in=sizes[0], n_classes=sizes[-1])
            out[(sizes, batch, dtype, backend)] = epoch_time(backend, sizes, batch, dtype, repeats,
                                                             *data[(sizes[0], sizes[-1])])
    return out


def _numba_rows(rows, repeats, compile):
    """The numba rows of this process: ``[(row, seconds, compile_time dict or None)]``."""
    times = _time_rows(rows, ("numba",), repeats)
    compiled = compile_time.compile_times(rows) if compile else {}
    return [(row, times[row + ("numba",)][0], compiled.get(row)) for row in rows]


# --- the numba rows for another ISA, in a child process -------------------------------

#: The ``--isa`` child's program; ``sys.argv[1]`` is the JSON spec of ``_numba_rows_in_child``.
_ISA_CHILD = ("import sys; sys.path.insert(0, {root!r}); from fastmlp.bench import epochs; "
              "epochs._child_main(sys.argv[1])")


def _child_main(spec):
    """Entry of the ``--isa`` child: numba rows as JSON on stdout; a failing
    part (a compile-time grandchild) as its one-line message on stderr, exit 1."""
    global N_IMAGES
    spec = json.loads(spec)
    rows = [(tuple(s), b, d) for s, b, d in spec["rows"]]
    N_IMAGES = spec["n_images"]
    try:
        measured = _numba_rows(rows, spec["repeats"], spec["compile"])
    except FastMLPError as error:
        print(error, file=sys.stderr)
        sys.exit(1)
    print(json.dumps([[list(row[0]), row[1], row[2], t, c] for row, t, c in measured]))


def _numba_rows_in_child(rows, repeats, compile, env, label):
    """``_numba_rows`` in a child Python with ``env`` (its own Numba target,
    named ``label`` in a failure's message)."""
    what = f"the child timing the numba rows for {label} (NUMBA_CPU_NAME={shown(env.get('NUMBA_CPU_NAME', ''))})"
    spec = json.dumps({"rows": [[list(s), b, d] for s, b, d in rows], "repeats": repeats, "compile": compile,
                       "n_images": N_IMAGES})
    out = run_python(_ISA_CHILD.format(root=IMPORT_ROOT), [spec], env=env, what=what, echo_stderr=True)
    last = (out.strip().splitlines() or [""])[-1]
    try:
        return [((tuple(s), b, d), t, c) for s, b, d, t, c in json.loads(last)]
    except (ValueError, TypeError):
        found = shown(last[:80]) if last else "nothing on stdout"
        raise BenchError(f"{what} printed {found}: expected the JSON list of its rows") from None


def run_bench(rows=None, backends=None, repeats=3, isas=("host",), compile=True):
    """Time every row with every backend; returns a list of dicts with keys
    ``sizes, batch, dtype, backend, isa, seconds, gflops, speedup`` (over numpy
    in this run; None when numpy was not measured) and ``compile_s`` (numba:
    the row's first run in a fresh process, None with ``compile=False``;
    jax: its epoch's compile; else None), numba rows also ``compile_variants``
    and ``compile_cached_s`` (``compile_times``: the rows in order share one
    cache that starts empty, so a row compiles only the kernel variants no
    earlier row compiled).

    ``isas`` lists the vector ISAs the numba rows run for: ``"host"`` in this
    process, ``"avx2"`` in a child with ``isa.avx2_environment``; a
    ``UsageError`` before anything is timed when that makes no sense here.
    A child or peer that fails raises ``BenchError``.

    JAX's and PyTorch's rows are timed last, after every fastmlp row: once
    PyTorch's OpenMP threads exist they keep spinning for a while after each
    call, which slowed the next row's NumPy and Numba epochs by up to 1.8x when
    the rows were interleaved (measured).
    """
    from fastmlp.backends.numba import isa

    rows = BENCH_ROWS if rows is None else rows
    if backends is None:
        backends = tuple(b for b in BACKENDS if backend_available(b))
    backends = [b for b in BACKENDS if b in backends and backend_available(b)]
    child_envs = {}
    if "numba" in backends:
        for which in isas:
            if which != "host":
                env, reason = isa.avx2_environment()
                if env is None:
                    raise UsageError(f"--isa avx2: {reason}")
                child_envs[which] = env
    others = _time_rows(rows, [b for b in backends if b != "numba"], repeats)
    numba = {}
    if "numba" in backends:
        for which in isas:
            if which == "host":
                numba[isa.HOST.label] = _numba_rows(rows, repeats, compile)
            else:
                env = child_envs[which]
                label = isa.detect(env).label
                label = label if label not in numba else f"{label} ({env['NUMBA_CPU_NAME']})"
                numba[label] = _numba_rows_in_child(rows, repeats, compile, env, label)
    results = []
    for row in rows:
        sizes, batch, dtype = row
        base = others.get(row + ("numpy",), (None,))[0]
        entries = []
        for backend in backends:
            if backend == "numba":
                for label, measured in numba.items():
                    t, c = next((t, c) for r, t, c in measured if r == row)
                    entries.append(("numba", label, t, c))
            else:
                t, c = others[row + (backend,)]
                entries.append((backend, None, t, c))
        for backend, label, t, c in entries:
            entry = {"sizes": "-".join(map(str, sizes)), "batch": batch, "dtype": dtype, "backend": backend,
                     "isa": label, "seconds": t, "gflops": flops_per_epoch(sizes) / t / 1e9,
                     "speedup": base / t if base else None}
            if backend == "numba":
                entry.update(compile_s=c and c["first_run"], compile_variants=c and c["variants"],
                             compile_cached_s=c and c["cached"])
            else:
                entry["compile_s"] = c
            results.append(entry)
    return results
