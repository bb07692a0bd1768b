"""Measuring code shared by ``benchmarks/bench_epoch.py`` and ``fastmlp bench``.

Every row trains one epoch of 60,000 MNIST-shaped uint8 images (random pixels:
the arithmetic is the same as on the real data) with sigmoid layers, the
quadratic cost and plain SGD, and reports seconds per epoch, GFLOP/s, the
speed-up over the NumPy reference measured in the same run, and the compile
time.  JAX and PyTorch rows are added when those libraries import
(``fastmlp.cli.peers``; fastmlp never depends on them).

Numba rows run for the vector ISA of this process (``isa.HOST``) and, on
request, for AVX2 in a child process (``isa.avx2_environment``), so an AVX-512
host can measure the AVX2 code path too.

Note: NumPy's OpenBLAS is slowed down on some machines by ``OPENBLAS_CORETYPE``
or ``OPENBLAS_L2_SIZE``; ``blas_info()`` reports which kernel it uses so a table
can say what the reference ran on.
"""

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fastmlp.cli import peers
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
#: The folder fastmlp is imported from (a child must import the same copy).
_IMPORT_ROOT = str(Path(__file__).resolve().parents[2])


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
    """``(median seconds per 60,000-image epoch, compile seconds or None)``,
    timed after one warm-up epoch, so JIT compile time stays out."""
    epoch = make_epoch(backend, sizes, batch_size, dtype, X, y)
    epoch()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        epoch()
        times.append(time.perf_counter() - t)
    return statistics.median(times), epoch.compile_seconds


# --- numba compile time: fresh processes, one cache that starts empty ------------------

_COMPILE_SNIPPET = """
import sys, time, numpy as np
sys.path.insert(0, {root!r})
t = time.perf_counter()
from fastmlp.backends import numba as kernels
from fastmlp.network import Net, SGD, init_params
t_import = time.perf_counter() - t
sizes = {sizes!r}
net = Net(sizes, ("sigmoid",) * (len(sizes) - 1), "quadratic")
X = np.zeros((2 * {batch}, sizes[0]), np.uint8); y = np.zeros(2 * {batch}, np.uint8)
p = init_params(net.sizes, ["normal"] * (len(sizes) - 1), np.random.default_rng(0), np.dtype("{dtype}"))
new = len(kernels.missing(kernels.variants_for(net, np.dtype("{dtype}"), batch_size={batch})))
t = time.perf_counter()
kernels.prepare(net, np.dtype("{dtype}"), batch_size={batch}, optimizer=SGD(0.1))  # as a run: side by side
kernels.train_batches(p, np.zeros_like(p), net, SGD(0.1), X, y, np.arange(len(X)), {batch})
kernels.predict_proba(p, net, X)
print(t_import, time.perf_counter() - t, new)
"""


def _first_call(cache, dtype, sizes, batch):
    """``(import s, first-call s of prepare + train_batches + predict_proba,
    variants it compiled)`` in a fresh process with ``NUMBA_CACHE_DIR=cache``.
    The child inherits this process's environment, so its ``NUMBA_CPU_*``
    settings."""
    code = _COMPILE_SNIPPET.format(root=_IMPORT_ROOT, sizes=tuple(sizes), batch=int(batch), dtype=dtype)
    res = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, NUMBA_CACHE_DIR=cache),
                         capture_output=True, text=True)
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or [f"exit status {res.returncode}"])[-1]
        raise RuntimeError(f"the compile-time child for {'-'.join(map(str, sizes))} failed: {last}")
    t_import, t_call, new = res.stdout.split()
    return float(t_import), float(t_call), int(new)


def compile_times(rows):
    """For each row, in order, in a fresh process each and one cache that
    starts empty: how long the row's first call took and how many kernel
    variants it compiled (the first row compiles its variants; a later row
    only the loop shapes no earlier row took, often none), then the same call
    once more from the filled cache.  ``{row: {"first_run": s, "variants": n,
    "cached": s, "import": s}}``."""
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        for sizes, batch, dtype in rows:
            t_import, first, new = _first_call(cache, dtype, sizes, batch)
            out[(sizes, batch, dtype)] = {"first_run": first, "variants": new, "import": t_import}
        for sizes, batch, dtype in rows:
            out[(sizes, batch, dtype)]["cached"] = _first_call(cache, dtype, sizes, batch)[1]
    return out


# --- the machine -----------------------------------------------------------------------

def cpu_model():
    """The CPU's model name (``/proc/cpuinfo`` on Linux, with family and model
    numbers when the name alone is as vague as "AMD EPYC"), and the core count."""
    name, family, model = "", "", ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key, value = key.strip(), value.strip()
            if key == "model name" and not name:
                name = value
            elif key == "cpu family" and not family:
                family = value
            elif key == "model" and not model:
                model = value
    except OSError:
        pass
    name = name or platform.processor() or platform.machine() or "unknown CPU"
    if family and model:
        name += f" (family {family} model {model})"
    return f"{name}, {os.cpu_count()} cores"


def blas_info():
    """Which BLAS NumPy uses and its kernel (via threadpoolctl, when installed)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    return "; ".join(f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')} "
                     f"threads={i.get('num_threads')}"
                     for i in threadpool_info() if i.get("user_api") == "blas")


def _version(dist):
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine():
    """What a table of timings must name: date (UTC), CPU, the ISA of the code
    Numba runs in this process, the BLAS behind NumPy and the library versions."""
    from fastmlp.backends.numba import isa

    return {"date": time.strftime("%Y-%m-%d", time.gmtime()), "cpu": cpu_model(),
            "isa": isa.HOST.describe(), "numpy": np.__version__, "blas": blas_info(),
            "numba": _version("numba"), "llvmlite": _version("llvmlite"),
            "jax": _version("jax"), "torch": _version("torch"), "python": platform.python_version()}


def caption(info):
    """The one line naming the machine and the date that heads a table."""
    def v(name):
        return info[name] or "not installed"
    return (f"{info['date']}, {info['cpu']}; Numba code: {info['isa']}; NumPy {info['numpy']} "
            f"({info['blas']}); Numba {v('numba')}, JAX {v('jax')}, PyTorch {v('torch')}; "
            f"seconds per {N_IMAGES:,}-image epoch, sigmoid + quadratic cost, plain SGD")


# --- running the rows --------------------------------------------------------------------

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
    compiled = compile_times(rows) if compile else {}
    return [(row, times[row + ("numba",)][0], compiled.get(row)) for row in rows]


def _child_main(spec):
    """Entry of the ``--isa`` child: numba rows as JSON on stdout."""
    spec = json.loads(spec)
    rows = [(tuple(s), b, d) for s, b, d in spec["rows"]]
    global N_IMAGES
    N_IMAGES = spec["n_images"]
    print(json.dumps([[list(row[0]), row[1], row[2], t, c]
                      for row, t, c in _numba_rows(rows, spec["repeats"], spec["compile"])]))


def _numba_rows_in_child(rows, repeats, compile, env):
    """``_numba_rows`` in a child Python with ``env`` (its own Numba target)."""
    spec = json.dumps({"rows": [[list(s), b, d] for s, b, d in rows], "repeats": repeats, "compile": compile,
                       "n_images": N_IMAGES})
    code = f"import sys; sys.path.insert(0, {_IMPORT_ROOT!r}); from fastmlp.cli import bench; bench._child_main(sys.argv[1])"
    res = subprocess.run([sys.executable, "-c", code, spec], env=env, stdout=subprocess.PIPE, text=True,
                         check=True)
    return [((tuple(s), b, d), t, c) for s, b, d, t, c in json.loads(res.stdout)]


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
    process, ``"avx2"`` in a child with ``isa.avx2_environment`` (which the
    caller has checked makes sense here).

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
    others = _time_rows(rows, [b for b in backends if b != "numba"], repeats)
    numba = {}
    if "numba" in backends:
        for which in isas:
            if which == "host":
                numba[isa.HOST.label] = _numba_rows(rows, repeats, compile)
            else:
                env, reason = isa.avx2_environment()
                if env is None:
                    raise RuntimeError(f"--isa avx2: {reason}")
                label = isa.detect(env).label
                numba[label if label not in numba else f"{label} ({env['NUMBA_CPU_NAME']})"] = \
                    _numba_rows_in_child(rows, repeats, compile, env)
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


# --- tables ---------------------------------------------------------------------------------

COLUMNS = ("network", "batch", "dtype", "backend", "ISA", "s/epoch", "GFLOP/s", "speed-up vs numpy",
           "compile s")


def _cells(r):
    def num(value, fmt):
        return "-" if value is None else format(value, fmt)
    return [r["sizes"], str(r["batch"]), r["dtype"], r["backend"], r.get("isa") or "-",
            f"{r['seconds']:.3f}", f"{r['gflops']:.1f}",
            "-" if r["speedup"] is None else f"{r['speedup']:.2f}x", _compile_cell(r)]


def _compile_cell(r):
    """``compile s``: seconds, and for numba the kernel variants compiled in brackets."""
    if r.get("compile_s") is None:
        return "-"
    if r.get("compile_variants") is None:
        return f"{r['compile_s']:.1f}"
    return f"{r['compile_s']:.1f} ({r['compile_variants']})"


def format_table(rows):
    """The rows of ``run_bench`` as a Markdown table."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in rows]
    return "\n".join(lines)


def format_markdown(rows, info):
    """A README's form: the caption line in italics, a blank line, the table."""
    return f"*{caption(info)}.*\n\n{format_table(rows)}"


def format_text(rows, info):
    """For a terminal: the caption and an aligned plain-text table."""
    body = [list(COLUMNS)] + [_cells(r) for r in rows]
    widths = [max(len(line[i]) for line in body) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(w) if i < 5 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths)))
             for line in body]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = ["compile s: numba, the row's first run (prepare + train_batches + predict_proba) in a fresh "
             "process, the rows in order sharing one cache that starts empty, with the kernel variants it "
             "compiled in brackets (0: every variant came from the cache); jax, the jit of the whole epoch"]
    return "\n".join([caption(info), ""] + [line.rstrip() for line in lines] + [""] + notes)


if __name__ == "__main__":
    print(format_markdown(run_bench(), machine()))
