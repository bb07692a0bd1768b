"""A register tile for the outer-product ("panel") kernels in ``fastmlp.backends.numba.kernels``.

The panel kernels keep a tile of ``TILE_ROWS x PANEL`` running sums while they
stream over the summed index.  Numba allocates every ``np.empty`` on the heap,
and LLVM cannot keep heap memory in registers; a fixed-size stack buffer
(``alloca``) that never escapes the function can be.  After LLVM's scalar
replacement the 4 x 64 sums become 16 AVX-512 registers (float32) that live for
the whole loop: checked with ``inspect_asm`` (no loads or stores of the tile in
the inner loop, no ``vgather``), see docs/performance.md.

Numba has no stack arrays, so ``tile_buffer`` is a small ``@intrinsic`` that
emits the ``alloca`` in the function's entry block.  The buffer is
uninitialised and must not outlive the function that made it.
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

#: Columns of a panel: 4 AVX-512 vectors of float32 (8 of float64).  Measured
#: (docs/performance.md): 32 columns or fewer let LLVM unroll the column loop
#: completely and then vectorise the wrong loop (gathers, 2-8 GFLOP/s); 64 keeps
#: the column loop as the vectorised one for both dtypes.
PANEL = 64
#: Rows of a tile (samples for the hidden delta, output neurons for the
#: gradient): 4 x 64 float32 sums = 16 vector registers.  In float64 the same
#: 16 registers hold 2 x 64 (``tile_rows``).
TILE_ROWS = 4
TILE_SIZE = TILE_ROWS * PANEL

#: ``index & NONNEG`` tells LLVM that an index is not negative, so Numba's
#: wrap-around for negative indices folds away and ``row[k0 + c]`` becomes a
#: contiguous vector load instead of a gather.
NONNEG = 0x3FFF_FFFF_FFFF_FFFF


@intrinsic
def tile_buffer(typingctx, dtype):
    """A pointer to ``TILE_SIZE`` uninitialised elements of ``dtype`` on the stack
    (wrap it with ``numba.carray``)."""
    def codegen(context, builder, signature, args):
        elem = context.get_value_type(dtype.dtype)
        return cgutils.alloca_once(builder, elem, size=ir.Constant(ir.IntType(64), TILE_SIZE))
    return types.CPointer(dtype.dtype)(dtype), codegen


def tile_rows(arr):
    """Rows of a tile for ``arr``'s dtype: 4 for float32, 2 for float64 (so the
    tile is always 16 AVX-512 registers).  A compile-time constant in Numba."""
    return TILE_ROWS if arr.dtype.itemsize == 4 else TILE_ROWS // 2


@overload(tile_rows)
def _tile_rows_constant(arr):
    rows = TILE_ROWS if arr.dtype.bitwidth == 32 else TILE_ROWS // 2
    return lambda arr: rows
