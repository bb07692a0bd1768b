"""One training epoch per backend, side by side (pytest-benchmark).

Run with ``python -m pytest benchmarks/ --benchmark-only`` (the normal test run
collects only tests/; ``python_files`` in pyproject.toml lets pytest collect
``bench_*.py`` when benchmarks/ is named).  Each standard row of
``fastmlp.cli.bench.BENCH_ROWS`` is one benchmark group, so numpy, numba and (when importable) torch print together.
``warmup_rounds=1`` keeps Numba's compile time out of the numbers.  For a fair
NumPy baseline unset ``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` for the
command (see fastmlp/bench.py).
"""

import pytest

from fastmlp.cli import bench

ROWS = [pytest.param(sizes, batch, dtype, id=f"{'-'.join(map(str, sizes))}-b{batch}-{dtype}",
                     marks=pytest.mark.benchmark(group=f"{'-'.join(map(str, sizes))} batch {batch} {dtype}"))
        for sizes, batch, dtype in bench.BENCH_ROWS]


@pytest.fixture(scope="module")
def data():
    return bench.make_data()


@pytest.mark.parametrize("backend", bench.BACKENDS)
@pytest.mark.parametrize("sizes,batch,dtype", ROWS)
def test_epoch(benchmark, data, sizes, batch, dtype, backend):
    if backend == "torch" and not bench.torch_available():
        pytest.skip("torch is not installed")
    benchmark.extra_info["gflop"] = bench.flops_per_epoch(sizes) / 1e9
    epoch = bench.make_epoch(backend, sizes, batch, dtype, *data)
    benchmark.pedantic(epoch, warmup_rounds=1, rounds=3, iterations=1)
