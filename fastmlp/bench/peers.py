"""The benchmark's epoch in the two peer libraries, PyTorch and JAX, for
``fastmlp bench`` and ``benchmarks/bench_epoch.py`` (fastmlp depends on
neither; each row appears when its library is installed, and one that is
installed but does not import is a one-line
:class:`~fastmlp.errors.BenchError`).

Both compute the reference's maths (``fastmlp.backends.reference``): sigmoid
layers, the quadratic cost averaged over the mini-batch, plain SGD, the same
mini-batch order, uint8 pixels scaled by 1/255 as each batch is read.
"""

import importlib
import importlib.util
import time

import numpy as np

from fastmlp.errors import BenchError
from fastmlp.errors import shown
from fastmlp.network import unpack

#: The libraries' names as messages give them.
NAMES = {"torch": "PyTorch", "jax": "JAX"}


def available(library):
    """Whether ``library`` ("torch" or "jax") is installed (found without importing it)."""
    return importlib.util.find_spec(library) is not None


def load(library):
    """``library`` imported; ``BenchError`` naming it and the error's first
    line when it is installed but fails to import."""
    try:
        return importlib.import_module(library)
    except Exception as error:  # noqa: BLE001 - a broken install raises ImportError, OSError (a shared
        # library that does not load), AttributeError or RuntimeError (built for another NumPy), ...
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        reason = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
        raise BenchError(f"{NAMES.get(library, library)} is installed but does not import "
                         f"({shown(reason)}): expected 'import {library}' to work, or uninstall it") from None


def torch_epoch(params, net, X, y, order, batch_size, dtype, lr):
    """A callable training one epoch in PyTorch (eager, autograd, ``optim.SGD``)."""
    torch = load("torch")

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

    epoch.compile_seconds = None  # eager: nothing is compiled ahead
    return epoch


class JaxEpoch:
    """One epoch as a single ``jax.jit`` of a ``lax.scan`` over the full
    mini-batches (forward, ``jax.grad`` of the batch-mean quadratic cost, the
    SGD step), followed in the same compiled function by the shorter last
    batch when ``batch_size`` does not divide the data.

    Compiled ahead in the constructor (``compile_seconds``), so a call is only
    the epoch.  Each call continues from the parameters the last one left, as
    the fastmlp backends' epochs do.  float64 runs under
    ``jax.enable_x64(True)``, set around tracing and every call, so the
    process's other JAX rows keep JAX's float32 default.
    """

    def __init__(self, params, net, X, y, order, batch_size, dtype, lr):
        jax = load("jax")

        self._x64 = np.dtype(dtype) == np.float64
        self._jax = jax
        with jax.enable_x64(self._x64):
            self._build(params, net, X, y, order, batch_size, np.dtype(dtype), lr)

    def _build(self, params, net, X, y, order, batch_size, dtype, lr):
        import jax
        import jax.numpy as jnp

        self.sizes = net.sizes
        batch_size = int(min(batch_size, len(order)))
        n_full = len(order) // batch_size
        full = np.asarray(order[:n_full * batch_size]).reshape(n_full, batch_size)
        rest = np.asarray(order[n_full * batch_size:])
        scale = dtype.type(1.0 / 255.0)
        eye = np.eye(net.sizes[-1], dtype=dtype)
        step_lr = dtype.type(lr)

        def cost(layers, rows, Xd, yd):
            A = Xd[rows].astype(dtype) * scale  # (X)
            for W, b in layers:
                A = jax.nn.sigmoid(A @ W.T + b)  # (F)
            Y = jnp.asarray(eye)[yd[rows]]
            return 0.5 * jnp.sum((A - Y) ** 2) / rows.shape[0]  # (C) quadratic, batch mean

        def step(layers, rows, Xd, yd):
            grads = jax.grad(cost)(layers, rows, Xd, yd)
            return [(W - step_lr * dW, b - step_lr * db) for (W, b), (dW, db) in zip(layers, grads)]  # (U1)

        def epoch(layers, Xd, yd, full_rows, rest_rows):
            layers, _ = jax.lax.scan(lambda ls, rows: (step(ls, rows, Xd, yd), None), layers, full_rows)
            if rest_rows.shape[0]:
                layers = step(layers, rest_rows, Xd, yd)
            return layers

        weights, biases = unpack(params, net.sizes)
        self._layers = [(jnp.asarray(W, dtype), jnp.asarray(b, dtype)) for W, b in zip(weights, biases)]
        self._args = (jnp.asarray(X), jnp.asarray(y), jnp.asarray(full), jnp.asarray(rest))
        t = time.perf_counter()
        self._compiled = jax.jit(epoch, donate_argnums=0).lower(self._layers, *self._args).compile()
        self.compile_seconds = time.perf_counter() - t

    def __call__(self):
        with self._jax.enable_x64(self._x64):
            self._layers = self._jax.block_until_ready(self._compiled(self._layers, *self._args))

    def params(self):
        """The current parameters as fastmlp's flat buffer (``network.unpack`` layout)."""
        parts = []
        for W, b in self._layers:
            parts += [np.asarray(W).ravel(), np.asarray(b).ravel()]
        return np.concatenate(parts)
