"""Measuring code shared by ``benchmarks/bench_epoch.py`` and ``fastmlp bench``.

Every row trains one epoch of 60,000 MNIST-shaped uint8 images (random pixels:
the arithmetic is the same as on the real data) with sigmoid layers, the
quadratic cost and plain SGD, and reports seconds per epoch, GFLOP/s and the
speed-up over the NumPy reference measured in the same run.  A PyTorch row is
added when ``import torch`` works (fastmlp never depends on it).

Note: NumPy's OpenBLAS is slowed down on some machines by ``OPENBLAS_CORETYPE``
or ``OPENBLAS_L2_SIZE``; ``blas_info()`` reports which kernel it uses so a table
can say what the reference ran on.
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

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
BACKENDS = ("numpy", "numba", "torch")


def flops_per_epoch(sizes, n=N_IMAGES):
    """Floating-point operations of one epoch: forward (2 m n_in n_out per layer),
    weight gradients (the same) and hidden deltas (the same, for every layer but
    the first, whose delta is never propagated)."""
    total = 0
    for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        per = 2 * n * n_in * n_out
        total += 2 * per + (per if l > 0 else 0)
    return total


def make_data(n=N_IMAGES, n_in=784, n_classes=10, seed=0):
    """Random MNIST-shaped data: ``(X uint8 (n, n_in), y uint8 (n,))``."""
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 256, size=(n, n_in), dtype=np.uint8)
    y = rng.integers(0, n_classes, size=n).astype(np.uint8)
    return X, y


def torch_available():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _net(sizes):
    return Net(tuple(sizes), ("sigmoid",) * (len(sizes) - 1), "quadratic")


def make_epoch(backend, sizes, batch_size, dtype, X=None, y=None, lr=0.1, seed=0):
    """A zero-argument callable that trains one epoch with ``backend``
    (``"numpy"``, ``"numba"`` or ``"torch"``) on the same data and net each call."""
    if X is None:
        X, y = make_data(n_in=sizes[0], n_classes=sizes[-1])
    net, sgd = _net(sizes), SGD(lr)
    params = init_params(net.sizes, ["normal"] * (len(sizes) - 1), np.random.default_rng(seed),
                         np.dtype(dtype))
    velocity = np.zeros_like(params)
    order = np.random.default_rng(seed + 1).permutation(len(X)).astype(np.int64)
    if backend == "torch":
        return _torch_epoch(params, net, X, y, order, batch_size, dtype, lr)
    from fastmlp.backends import get_backend

    module = get_backend(backend)

    def epoch():
        return module.train_batches(params, velocity, net, sgd, X, y, order, batch_size)

    return epoch


def _torch_epoch(params, net, X, y, order, batch_size, dtype, lr):
    """The same network in PyTorch (eager, autograd, plain SGD), as a peer."""
    import torch

    from fastmlp.network import unpack

    tdt = getattr(torch, dtype)
    weights, biases = unpack(params, net.sizes)
    layers = []
    for W, b in zip(weights, biases):
        lin = torch.nn.Linear(W.shape[1], W.shape[0], dtype=tdt)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(W.copy()))
            lin.bias.copy_(torch.from_numpy(b.copy()))
        layers += [lin, torch.nn.Sigmoid()]
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    Xt = torch.from_numpy(X)
    Yt = torch.nn.functional.one_hot(torch.from_numpy(y.astype(np.int64)), net.sizes[-1]).to(tdt)
    idx = torch.from_numpy(order)

    def epoch():
        for start in range(0, len(idx), batch_size):
            rows = idx[start:start + batch_size]
            A0 = Xt[rows].to(tdt) / 255.0
            out = model(A0)
            loss = 0.5 * ((out - Yt[rows]) ** 2).sum() / len(rows)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    return epoch


def epoch_time(backend, sizes, batch_size, dtype, repeats=3, X=None, y=None):
    """Median seconds per 60,000-image epoch (after one warm-up epoch, so JIT
    compile time stays out)."""
    epoch = make_epoch(backend, sizes, batch_size, dtype, X, y)
    epoch()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        epoch()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


_COMPILE_SNIPPET = """
import time, numpy as np
t = time.perf_counter()
from fastmlp.backends import numba as kernels
from fastmlp.network import Net, SGD, init_params
t_import = time.perf_counter() - t
net = Net((784, 30, 10), ("sigmoid", "sigmoid"), "quadratic")
X = np.zeros((20, 784), np.uint8); y = np.zeros(20, np.uint8)
p = init_params(net.sizes, ["normal"] * 2, np.random.default_rng(0), np.dtype("{dtype}"))
t = time.perf_counter()
kernels.train_batches(p, np.zeros_like(p), net, SGD(0.1), X, y, np.arange(20), 10)
kernels.predict_proba(p, net, X)
print(t_import, time.perf_counter() - t)
"""


def compile_time(dtype="float64"):
    """First-call time of ``train_batches`` + ``predict_proba`` in a fresh process
    with an empty ``NUMBA_CACHE_DIR`` (compiling), then again with that cache
    filled.  Returns ``{"first_run": s, "cached": s, "import": s}``."""
    code = _COMPILE_SNIPPET.format(dtype=dtype)
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for key in ("first_run", "cached"):
            res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                 text=True, check=True)
            t_import, t_call = map(float, res.stdout.split())
            out[key] = t_call
            out["import"] = t_import
    return out


def blas_info():
    """Which OpenBLAS kernel NumPy uses (via threadpoolctl, when installed)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    return "; ".join(f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')} "
                     f"threads={i.get('num_threads')}"
                     for i in threadpool_info() if i.get("user_api") == "blas")


def run_bench(rows=None, backends=None, repeats=3):
    """Time every row with every backend; returns a list of dicts with keys
    ``sizes, batch, dtype, backend, seconds, gflops, speedup`` (over numpy).

    PyTorch's rows are timed last, after every fastmlp row: once its OpenMP
    threads exist they keep spinning for a while after each call, which slowed
    the next row's NumPy and Numba epochs by up to 1.8x when the rows were
    interleaved (measured).
    """
    rows = BENCH_ROWS if rows is None else rows
    if backends is None:
        backends = tuple(b for b in BACKENDS if b != "torch" or torch_available())
    ordered = [b for b in backends if b != "torch"] + [b for b in backends if b == "torch" and torch_available()]
    data = {}
    seconds = {}
    for backend in ordered:
        for sizes, batch, dtype in rows:
            if (sizes[0], sizes[-1]) not in data:
                data[(sizes[0], sizes[-1])] = make_data(n_in=sizes[0], n_classes=sizes[-1])
            X, y = data[(sizes[0], sizes[-1])]
            seconds[(sizes, batch, dtype, backend)] = epoch_time(backend, sizes, batch, dtype, repeats, X, y)
    results = []
    for sizes, batch, dtype in rows:
        base = seconds.get((sizes, batch, dtype, "numpy"))
        for backend in ordered:
            t = seconds[(sizes, batch, dtype, backend)]
            results.append({
                "sizes": "-".join(map(str, sizes)), "batch": batch, "dtype": dtype,
                "backend": backend, "seconds": t, "gflops": flops_per_epoch(sizes) / t / 1e9,
                "speedup": (base / t) if base else float("nan"),
            })
    return results


def format_table(rows):
    """The rows of ``run_bench`` as a markdown table."""
    lines = ["| network | batch | dtype | backend | s/epoch | GFLOP/s | speed-up vs numpy |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['sizes']} | {r['batch']} | {r['dtype']} | {r['backend']} | "
                     f"{r['seconds']:.3f} | {r['gflops']:.1f} | {r['speedup']:.2f}x |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(blas_info())
    print(format_table(run_bench()))
