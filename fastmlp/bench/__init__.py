"""Timing one training epoch of every backend and of the peer libraries
(JAX, PyTorch), for ``fastmlp bench`` and ``benchmarks/bench_epoch.py``.

:mod:`~fastmlp.bench.epochs` holds the rows and times them (``run_bench``);
:mod:`~fastmlp.bench.peers` the JAX and PyTorch epochs;
:mod:`~fastmlp.bench.compile_time` Numba's compile time in fresh processes;
:mod:`~fastmlp.bench.children` runs those child processes;
:mod:`~fastmlp.bench.machine_info` names the machine;
:mod:`~fastmlp.bench.tables` formats the results.  A part that fails (a child
process, a peer that does not import) raises :class:`BenchError`, one line.
The number of images per epoch is ``fastmlp.bench.epochs.N_IMAGES``.
"""

from fastmlp.bench import peers
from fastmlp.bench.compile_time import compile_times
from fastmlp.bench.epochs import (BACKENDS, BENCH_ROWS, ISAS, PEERS, backend_available, epoch_time,
                                  flops_per_epoch, jax_available, make_data, make_epoch, run_bench,
                                  torch_available)
from fastmlp.errors import BenchError
from fastmlp.bench.machine_info import blas_info, cpu_model, machine
from fastmlp.bench.tables import COLUMNS, caption, format_markdown, format_table, format_text

__all__ = ["BACKENDS", "BENCH_ROWS", "COLUMNS", "ISAS", "PEERS", "BenchError", "backend_available", "blas_info",
           "caption", "compile_times", "cpu_model", "epoch_time", "flops_per_epoch", "format_markdown",
           "format_table", "format_text", "jax_available", "machine", "make_data", "make_epoch", "peers",
           "run_bench", "torch_available"]
