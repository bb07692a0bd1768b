"""The panel kernels must compile to vector code of the host's ISA, not to gathers.

The narrow tiles of ``_grad_update_columns``, ``_hid_panel`` and
``_fwd_panel`` are written out as vector instructions
(``fastmlp.backends.numba.tile``), but their packing copies and their
epilogues (the update, ``f'``, the bias and ``f``) are loops left to LLVM's
vectoriser, and with another loop shape or a future Numba/LLVM it can pick
the wrong loop and emit ``vgather`` instructions that run 20-50x slower (it
did for register tiles of 32 columns or fewer, docs/performance.md); the
tiles' own width follows ``isa.Isa.panel_bits``.  This test compiles
the three kernels afresh (cached code cannot be inspected) for the ISA Numba
targets in this process (``isa.HOST``) and reads their assembly: vector FMAs
of the registers' full width, which the panel kernels ask for (zmm on AVX-512,
also where LLVM's tuning prefers 256-bit vectors; ymm on AVX2), and no
gathers.  Other
targets (ARM, SSE-only x86) are skipped with the reason.

On an AVX-512 host the same checks also run in a child process that targets
haswell (``isa.avx2_environment``), so the AVX2 code path is checked there too.
"""

import contextlib
import os
import subprocess
import sys

import numpy as np
import pytest

from fastmlp import config
from fastmlp.backends.numba import deltas, forward, isa, jit, update
from fastmlp.backends.numba.tile import NARROW_ROWS, NARROW_VECTORS, PANEL

HOST = isa.HOST
#: the panel kernels' vectors (``isa.Isa.panel_bits``: the registers' full width)
REGISTER = {512: "zmm", 256: "ymm"}.get(HOST.panel_bits)
X86_VECTOR = HOST.label in (isa.AVX512, isa.AVX2) and REGISTER is not None
SKIP_REASON = f"no x86 vector FMA code to check for {HOST.describe()}"


@contextlib.contextmanager
def _own_specialisations():
    """``jit.specialise`` inside makes dispatchers of its own: the shared ones
    may already hold other signatures from earlier tests, and ``_asm`` reads
    the newest.  The shared ones are back afterwards."""
    saved = dict(jit._specialised)
    jit._specialised.clear()
    try:
        yield
    finally:
        jit._specialised.clear()
        jit._specialised.update(saved)


def _fresh(kernel):
    """A dispatcher of ``kernel`` compiled afresh, without the on-disk cache
    (only uncached code can be inspected): through ``jit.specialise`` for a
    kernel template, or Numba's own decorator for a cached dispatcher."""
    if hasattr(jit, "specialise") and not hasattr(kernel, "py_func"):
        with _own_specialisations():
            return jit.specialise(kernel, False, PANELS=NARROW_ROWS, FWD_PANELS=NARROW_ROWS)
    from numba import njit

    return njit(fastmath=config.FASTMATH, error_model="numpy", boundscheck=False)(kernel.py_func)


def _asm(dispatcher, *args):
    dispatcher(*args)
    signature = dispatcher.signatures[-1]
    return dispatcher.inspect_asm(signature)


def _fma_lines(asm, dtype):
    op = "vfmadd231ps" if dtype == np.float32 else "vfmadd231pd"
    return [line for line in asm.splitlines() if op in line and REGISTER in line]


@pytest.mark.skipif(not X86_VECTOR, reason=SKIP_REASON)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_panel_kernels_use_vector_fmas_and_no_gathers(dtype):
    rng = np.random.default_rng(0)
    m, n_in, n_out = 16, PANEL, 4
    A_prev = rng.random((m, n_in)).astype(dtype)
    delta = rng.standard_normal((m, n_out)).astype(dtype)
    W = rng.standard_normal((n_out, n_in)).astype(dtype)
    hyper = np.array([0.1, 0.0, 0.0, 0.0])  # lr, momentum, l2, nesterov
    grad_asm = _asm(_fresh(update._grad_update_columns), delta, A_prev, m, W, np.zeros_like(W), hyper,
                    0, 0, n_out)
    hid_asm = _asm(_fresh(deltas._hid_panel), delta, W, A_prev, 0, m, 0, np.zeros_like(A_prev), 0)
    W_out = rng.standard_normal((PANEL, n_in)).astype(dtype)
    Z = np.zeros((m, PANEL), dtype)
    fwd_asm = _asm(_fresh(forward._fwd_panel), A_prev, 0, m, W_out, np.zeros(PANEL, dtype), 0, Z,
                   np.zeros_like(Z), 0, True)
    # one step of a narrow tile: NARROW_ROWS rows of NARROW_VECTORS vector FMAs
    per_tile = NARROW_ROWS * NARROW_VECTORS
    for name, asm in (("_grad_update_columns", grad_asm), ("_hid_panel", hid_asm), ("_fwd_panel", fwd_asm)):
        assert "vgather" not in asm, f"{name} gathers ({HOST.describe()})"
        assert len(_fma_lines(asm, dtype)) >= per_tile, f"{name}: too few {REGISTER} FMAs ({HOST.describe()})"
        if REGISTER == "ymm":
            assert "zmm" not in asm, f"{name} uses zmm registers on a {HOST.panel_bits}-bit target"


@pytest.mark.skipif(HOST.label != isa.AVX512, reason=f"the host is not AVX-512 ({HOST.describe()}): "
                                                     "the host test above already checks its path")
def test_avx2_path_on_this_avx512_host():
    """The test above, in a child process whose Numba targets haswell (AVX2)."""
    env, reason = isa.avx2_environment()
    assert env is not None, reason
    env.pop("PYTEST_ADDOPTS", None)
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          f"{os.path.abspath(__file__)}::test_panel_kernels_use_vector_fmas_and_no_gathers"],
                         env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0 and "2 passed" in res.stdout, res.stdout[-3000:] + res.stderr[-2000:]


@pytest.mark.skipif(not X86_VECTOR, reason=SKIP_REASON)
def test_the_parallel_layer_update_keeps_the_panel_width_and_only_there():
    """What the epoch runs: the parallel ``_update_layer``, whose outlined loop
    body LLVM may inline the panel kernel into, still has FMAs of the panel
    width; without panels the row blocks keep the vectoriser's tuned width."""
    import numba

    numba.get_num_threads()  # the thread pool starts before parallel code is compiled
    dtype = np.float32
    rng = np.random.default_rng(0)
    m, n_in, n_out = 32, 2 * PANEL, 8
    delta = rng.standard_normal((m, n_out)).astype(dtype)
    A_prev = rng.random((m, n_in)).astype(dtype)
    hyper = np.array([0.1, 0.0, 0.0, 0.0])
    G = np.zeros((numba.config.NUMBA_NUM_THREADS, 4, n_in), dtype)
    tuned = {512: "zmm", 256: "ymm"}[HOST.vector_bits]
    for panels, register in ((n_in // PANEL, REGISTER), (0, tuned)):
        with _own_specialisations():
            layer = jit.specialise(update._update_layer, True, PANELS=NARROW_ROWS if panels else 0)
        fresh = numba.njit(parallel=True, **jit.OPTIONS)(layer.py_func)  # uncached, so it can be read
        W = rng.standard_normal((n_out, n_in)).astype(dtype)
        asm = _asm(fresh, delta, A_prev, m, W, np.zeros(n_out, dtype), np.zeros_like(W), np.zeros(n_out, dtype),
                   hyper, G, panels)
        fmas = [line for line in asm.splitlines() if "vfmadd231ps" in line]
        assert any(register in line for line in fmas), f"panels={panels}: no {register} FMAs ({HOST.describe()})"
        if register == "ymm":
            assert not any("zmm" in line for line in fmas), f"panels={panels}: zmm FMAs ({HOST.describe()})"
