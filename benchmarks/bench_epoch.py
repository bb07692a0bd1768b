"""One training epoch per backend, side by side (pytest-benchmark).

Run with ``python -m pytest benchmarks/ --benchmark-only`` (the normal test run
collects only tests/; ``python_files`` in pyproject.toml lets pytest collect
``bench_*.py`` when benchmarks/ is named).  Each standard row of
``fastmlp.bench.BENCH_ROWS`` is one benchmark group, so numpy, numba and
(when importable) jax and torch print together.  ``warmup_rounds=1`` keeps
Numba's compile time out of the numbers; JAX compiles its epoch when it is
made, before the rounds.  The numba rows run for the ISA of this process
(``NUMBA_CPU_NAME=haswell NUMBA_CPU_FEATURES=`` for the AVX2 path on an
AVX-512 host); ``extra_info`` names it.  For a fair NumPy baseline unset
``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` for the command (see
fastmlp/bench/machine_info.py).
"""

import pytest

from fastmlp import bench
from fastmlp.backends.numba import isa

ROWS = [pytest.param(sizes, batch, dtype, id=f"{'-'.join(map(str, sizes))}-b{batch}-{dtype}",
                     marks=pytest.mark.benchmark(group=f"{'-'.join(map(str, sizes))} batch {batch} {dtype}"))
        for sizes, batch, dtype in bench.BENCH_ROWS]


@pytest.fixture(scope="module")
def data():
    return bench.make_data()


@pytest.mark.parametrize("backend", bench.BACKENDS)
@pytest.mark.parametrize("sizes,batch,dtype", ROWS)
def test_epoch(benchmark, data, sizes, batch, dtype, backend):
    if not bench.backend_available(backend):
        pytest.skip(f"{backend} is not installed")
    benchmark.extra_info["gflop"] = bench.flops_per_epoch(sizes) / 1e9
    if backend == "numba":
        benchmark.extra_info["isa"] = isa.HOST.describe()
    epoch = bench.make_epoch(backend, sizes, batch, dtype, *data)
    if epoch.compile_seconds is not None:
        benchmark.extra_info["compile_s"] = epoch.compile_seconds
    benchmark.pedantic(epoch, warmup_rounds=1, rounds=3, iterations=1)
