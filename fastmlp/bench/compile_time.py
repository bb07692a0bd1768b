"""Numba compile time of the bench rows: each row's first call in a fresh
process, the rows in order sharing one cache that starts empty, then the same
call once more from the filled cache."""

import os
import tempfile

from fastmlp.bench.children import IMPORT_ROOT, run_python
from fastmlp.errors import BenchError
from fastmlp.errors import shown

#: The child's program: it prints "import seconds, first-call seconds, variants compiled".
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
    settings.  ``BenchError`` when the child fails or prints something else."""
    what = f"the compile-time child for {'-'.join(map(str, sizes))} batch {batch} {dtype}"
    code = _COMPILE_SNIPPET.format(root=IMPORT_ROOT, sizes=tuple(sizes), batch=int(batch), dtype=dtype)
    out = run_python(code, env=dict(os.environ, NUMBA_CACHE_DIR=cache), what=what)
    last = (out.strip().splitlines() or [""])[-1]
    try:
        t_import, t_call, new = last.split()
        return float(t_import), float(t_call), int(new)
    except ValueError:
        found = shown(last) if last else "nothing on stdout"
        raise BenchError(f"{what} printed {found}: expected its import seconds, "
                         "first-call seconds and the number of variants it compiled") from None


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
