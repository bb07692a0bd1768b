"""The panel kernels must compile to vector code, not to gathers.

Whether LLVM vectorises the column loop of ``_grad_update_panel`` and
``_hid_panel`` depends on the tile shape (see fastmlp/_tile.py): with the wrong
shape, or a future Numba/LLVM, it can silently pick another loop and emit
``vgather`` instructions that run 20-50x slower.  This test compiles the two
kernels afresh (inspection is not possible for cached code) and reads their
assembly.  It needs an x86-64 CPU with AVX-512, like the machines the
performance figures come from; elsewhere it is skipped.
"""

import numpy as np
import pytest
from llvmlite import binding as llvm
from numba import njit

from fastmlp import config
from fastmlp.backends.numba import deltas, update
from fastmlp.backends.numba.tile import PANEL, tile_rows

HAS_AVX512 = "+avx512f" in llvm.get_host_cpu_features().flatten()


def _fresh_asm(kernel, *args):
    """Compile ``kernel``'s Python source again, without the cache, and return
    the assembly of the specialisation for ``args``."""
    fresh = njit(fastmath=config.FASTMATH, error_model="numpy", boundscheck=False)(kernel.py_func)
    fresh(*args)
    return next(iter(fresh.inspect_asm().values()))


def _fma_lines(asm, dtype):
    op = "vfmadd231ps" if dtype == np.float32 else "vfmadd231pd"
    return [line for line in asm.splitlines() if op in line and "zmm" in line]


@pytest.mark.skipif(not HAS_AVX512, reason="needs an x86-64 CPU with AVX-512")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_panel_kernels_use_vector_fmas_and_no_gathers(dtype):
    rng = np.random.default_rng(0)
    m, n_in, n_out = 16, PANEL, 4
    A_prev = rng.random((m, n_in)).astype(dtype)
    delta = rng.standard_normal((m, n_out)).astype(dtype)
    W = rng.standard_normal((n_out, n_in)).astype(dtype)
    one, zero = dtype(1.0), dtype(0.0)
    grad_asm = _fresh_asm(update._grad_update_panel, delta, A_prev, m, W, np.zeros_like(W), 0,
                          tile_rows(W), 0,
                          one / m, dtype(0.1), zero, zero, one, zero)
    hid_asm = _fresh_asm(deltas._hid_panel, delta, W, A_prev, 0, m, 0, np.zeros_like(A_prev), 0)
    # a tile is 16 vector registers (4 x 64 float32, 2 x 64 float64): 16 FMAs a step
    per_tile = tile_rows(A_prev) * PANEL * np.dtype(dtype).itemsize // 64
    for asm in (grad_asm, hid_asm):
        assert "vgather" not in asm
        assert len(_fma_lines(asm, dtype)) >= per_tile
