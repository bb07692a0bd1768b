"""A register tile for the outer-product ("panel") kernels
(``deltas._hid_panel``, ``update._grad_update_panel``).

The panel kernels keep a tile of ``rows x PANEL`` running sums while they
stream over the summed index (``rows``, at most ``MAX_TILE_ROWS``, is chosen
per layer from the ISA and the layer's width: ``shapes.panel_tile_rows``).
Numba allocates every ``np.empty`` on the heap, and LLVM cannot keep heap
memory in registers; a fixed-size stack buffer
(``alloca``) that never escapes the function can be.  After LLVM's scalar
replacement 4 x 64 float32 sums become 16 zmm registers that live for the
whole loop: checked with ``inspect_asm`` (no loads or stores of the tile in
the inner loop, no ``vgather``), see docs/performance.md.

Numba has no stack arrays, so ``tile_buffer`` is a small ``@intrinsic`` that
emits the ``alloca`` in the function's entry block.  The buffer is
uninitialised and must not outlive the function that made it.
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

#: Columns of a panel: 4 AVX-512 vectors of float32 (8 of float64).  Measured
#: (docs/performance.md): 32 columns or fewer let LLVM unroll the column loop
#: completely and then vectorise the wrong loop (gathers, 2-8 GFLOP/s); 64 keeps
#: the column loop as the vectorised one for both dtypes.
PANEL = 64
#: Most rows of a tile (samples for the hidden delta, output neurons for the
#: gradient); the buffer is sized for them.
MAX_TILE_ROWS = 4
TILE_SIZE = MAX_TILE_ROWS * PANEL

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
