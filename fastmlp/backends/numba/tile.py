"""The narrow tile of the outer-product ("panel") kernels
(``deltas._hid_panel``, ``update._grad_update_columns``, ``forward._fwd_panel``),
the packed panels it streams over, a block transpose and the vector width.

A panel kernel sums ``PANEL`` columns at a time in narrow tiles
(``narrow_tile``): ``NARROW_ROWS`` rows of two vectors, or four where the ISA
has 32 registers (``narrow_vectors``), written out as LLVM vector
instructions so every accumulator is a register for the whole loop (the
vectoriser makes gathers of a tile this narrow; docs/performance.md, "Narrow
tiles").

The operand a tile streams over (rows of ``W_next`` for the hidden delta, rows
of ``A_prev`` for the gradient, the transposed ``W`` for the forward) is first
copied, ``PACK_ROWS`` rows of ``PANEL`` columns at a time, into a contiguous
stack buffer that stays in L1 while every tile of the work item passes over it
(the BLIS scheme of packed panels).  Unpacked, a tile read rows ``n_in``
elements apart: with ``n_in = 1024`` float32 that is a 4 KiB stride, so the
rows compete for the same few L1 sets.  Measured on an Intel Xeon (AVX-512,
256-bit code), one thread, 240 x 1024 x 1024 float32, with a 2 x 64 register
tile: 36 GFLOP/s unpacked against 92 packed; docs/performance.md.

Numba has no stack arrays, so ``pack_buffer`` and the other buffers are small
``@intrinsic`` functions that emit an ``alloca`` in the function's entry
block.  The buffers are uninitialised and must not outlive the function that
made them.
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from fastmlp.backends.numba import isa

#: Columns of a panel: a whole number of narrow column tiles on every ISA (one
#: of 4 zmm float32, two of 4 zmm float64, four of 2 ymm float32), and a
#: multiple of ``TRANSPOSE`` for the forward's transposed packs.
PANEL = 64
#: Rows of a packed panel: 64 x PANEL is 16 KiB of float32 and 32 KiB of
#: float64, within the smallest L1 data cache of current x86 and ARM cores
#: (32 KiB).  Measured as above: float64 runs at 29 GFLOP/s with 64 rows, 20
#: with 128; float32 at 89 and 92.
PACK_ROWS = 64
PACK_SIZE = PACK_ROWS * PANEL

#: ``index & NONNEG`` tells LLVM that an index is not negative, so Numba's
#: wrap-around for negative indices folds away and ``row[k0 + c]`` becomes a
#: contiguous vector load instead of a gather.
NONNEG = 0x3FFF_FFFF_FFFF_FFFF


#: Alignment of the stack buffers, in bytes: a cache line, so no vector load of
#: a packed row splits across two lines (LLVM gives an element array the
#: element's alignment, 4 bytes for float32).
STACK_ALIGN = 64


def _stack_buffer(name, size):
    """An intrinsic ``name(dtype)`` returning a pointer to ``size``
    uninitialised elements of ``dtype`` on the stack (wrap it with
    ``numba.carray``)."""
    def buffer(typingctx, dtype):
        def codegen(context, builder, signature, args):
            elem = context.get_value_type(dtype.dtype)
            buf = cgutils.alloca_once(builder, elem, size=ir.Constant(ir.IntType(64), size))
            buf.align = STACK_ALIGN
            return buf
        return types.CPointer(dtype.dtype)(dtype), codegen
    buffer.__name__ = buffer.__qualname__ = name
    return intrinsic(buffer)


#: ``PACK_SIZE`` elements of ``dtype`` on the stack: the partial sums of a
#: gradient work item (``update._grad_update_columns``).
pack_buffer = _stack_buffer("pack_buffer", PACK_SIZE)
#: Row stride of a packed panel for the narrow tiles: ``PANEL`` and 8 more,
#: so that the rows a column tile reads fall into different L1 sets (at
#: ``PANEL`` float64 they are 512 bytes apart, and 64 of them share 8 of the
#: 64 sets of a 32 KiB 8-way L1).  Measured on an AMD EPYC Zen 4, AVX2 code,
#: two threads, 256 x 1024 x 1024 float64, against ``PANEL``: hidden delta
#: 1.08x the speed, gradient 1.08x (docs/performance.md).
PACK_STRIDE = PANEL + 8
#: ``PACK_ROWS x PACK_STRIDE`` elements of ``dtype`` on the stack.
strided_pack_buffer = _stack_buffer("strided_pack_buffer", PACK_ROWS * PACK_STRIDE)


@intrinsic
def full_width_vectors(typingctx):
    """Called first in a function: let LLVM vectorise that function with the
    registers' full width (``isa.Isa.panel_bits``) where the CPU's tuning
    prefers narrower vectors, as on Intel's AVX-512 parts (LLVM tunes them to
    256-bit ymm).

    Numba compiles every function of a process for one target, so this sets
    the function's own LLVM attributes (``prefer-vector-width`` and
    ``min-legal-vector-width``, as clang's ``-mprefer-vector-width`` does), and
    other Numba code in the user's process keeps its target.  The panel kernels
    call it, and so do the work items and ``prange`` bodies that run them,
    because LLVM may inline a kernel into those.

    Measured on an Intel Xeon (family 6 model 167), 2 threads, four
    interleaved pairs, medians, with register tiles: 784-1024-1024-10 batch
    256 takes 0.80x the epoch time in float32 (4 x 64 zmm tiles against 2 x 64
    ymm) and 0.85x in float64 (2 x 64 against 1 x 64); 784-128-64-10 float32
    batch 64 0.96x.  The row-block kernels keep the tuned width: with zmm
    everywhere (``-prefer-256-bit`` for the whole process) 784-30-10 at batch
    10 is 1.03-1.10x slower.  ``tests/backends/test_vectorised.py`` checks the
    width in the assembly.
    """
    def codegen(context, builder, signature, args):
        bits = isa.HOST.panel_bits
        if bits > isa.HOST.vector_bits:
            # llvmlite's ``attributes.add`` accepts only keyword attributes; a
            # string attribute is written into the IR as given
            attrs = builder.function.attributes
            set.add(attrs, f'"prefer-vector-width"="{bits}"')
            set.add(attrs, f'"min-legal-vector-width"="{bits}"')
        return context.get_dummy_value()
    return types.none(), codegen


#: Side of the square blocks ``transpose_block`` moves: 8 rows of 8 elements,
#: a ymm register of float32 (two of float64) per row.
TRANSPOSE = 8
#: ``TRANSPOSE x TRANSPOSE`` elements of ``dtype`` on the stack, for a block
#: that is transposed after it is filled.
block_buffer = _stack_buffer("block_buffer", TRANSPOSE * TRANSPOSE)


def _shuffle_masks(b):
    """The ``shufflevector`` masks of one stage of an 8 x 8 transpose: rows i
    and i + b (bit b of i clear) swap the off-diagonal b x b blocks of each
    2b x 2b block (bit b of the row index trades places with bit b of the
    column index); indices 8.. pick from the second row."""
    low, high = [], []
    for k in range(TRANSPOSE):
        g, w = divmod(k, 2 * b)
        low.append(g * 2 * b + w if w < b else TRANSPOSE + g * 2 * b + w - b)
        high.append(g * 2 * b + b + w if w < b else TRANSPOSE + g * 2 * b + w)
    return low, high


@intrinsic
def transpose_block(typingctx, src, src_at, src_stride, dst, dst_at, dst_stride):
    """Copy the ``TRANSPOSE x TRANSPOSE`` block of ``src`` whose first element
    is at flat index ``src_at`` (rows ``src_stride`` elements apart) into
    ``dst`` at ``dst_at`` (rows ``dst_stride`` apart), transposed.

    Written out as vector loads, the three shuffle stages of a transpose and
    vector stores, because LLVM vectorises a transposing copy loop with
    gathers or scatters (``vgatherqps``/``vscatterdps`` on AVX-512), which made
    the forward panels' pack cost as much as their multiply-adds.  Nothing is
    checked: the caller keeps the block inside both arrays."""
    if not (isinstance(src, types.Array) and isinstance(dst, types.Array) and src.dtype == dst.dtype):
        return None

    def codegen(context, builder, signature, args):
        src_ty, at_ty, stride_ty, dst_ty, dat_ty, dstride_ty = signature.args
        i64, i32 = ir.IntType(64), ir.IntType(32)
        elem = context.get_value_type(src_ty.dtype)
        vec = ir.VectorType(elem, TRANSPOSE)
        align = context.get_abi_sizeof(elem)

        def pointers(arg, ty, at, at_ty, stride, stride_ty):
            data = context.make_array(ty)(context, builder, arg).data
            at = context.cast(builder, at, at_ty, types.int64)
            stride = context.cast(builder, stride, stride_ty, types.int64)
            return [builder.bitcast(builder.gep(data, [builder.add(at, builder.mul(stride, ir.Constant(i64, i)))]),
                                    vec.as_pointer()) for i in range(TRANSPOSE)]

        rows = [builder.load(p, align=align) for p in pointers(args[0], src_ty, args[1], at_ty, args[2], stride_ty)]
        b = TRANSPOSE // 2
        while b:
            low, high = (ir.Constant(ir.VectorType(i32, TRANSPOSE), m) for m in _shuffle_masks(b))
            for i in range(TRANSPOSE):
                if not i & b:
                    x, y = rows[i], rows[i + b]
                    rows[i], rows[i + b] = builder.shuffle_vector(x, y, low), builder.shuffle_vector(x, y, high)
            b //= 2
        for row, p in zip(rows, pointers(args[3], dst_ty, args[4], dat_ty, args[5], dstride_ty)):
            builder.store(row, p, align=align)
        return context.get_dummy_value()

    return types.none(src, src_at, src_stride, dst, dst_at, dst_stride), codegen


#: Rows of the panel kernels' tile (``narrow_tile``): ``NARROW_ROWS`` rows of
#: ``narrow_vectors`` vectors, so each loaded vector feeds six FMAs.  It is
#: also the value of the compile-time ``PANELS``/``FWD_PANELS`` of a layer
#: with panels (``shapes.panel_tile_rows``).
NARROW_ROWS = 6


def narrow_vectors(host):
    """Vectors per row of a narrow tile on ``host``: 2 (12 accumulators, within
    16 registers: the shape of BLIS's AVX2 micro-kernel, 6 x 16 float32), 4
    where there are 32 registers (24 accumulators, each broadcast feeding four
    FMAs: 6 x 64 zmm float32).  On an AMD EPYC Zen 4, AVX-512 code, 256 x
    1024 x 1024, two threads, four vectors against two: float32 hidden delta
    and forward within 2 %, float64 forward 1.05x the speed, hidden delta
    1.07x, gradient 1.00x; the float32 gradient + update with four vectors
    runs at 1.09x and 1.12x the speed of a 4 x 64 zmm register tile
    (docs/performance.md)."""
    return 4 if host.registers >= 32 else 2


NARROW_VECTORS = narrow_vectors(isa.HOST)


@intrinsic
def narrow_tile(typingctx, acc, acc_at, acc_stride, first, a, a_at, a_step, a_row, nj, b, b_at, b_stride, kc):
    """For ``r < min(nj, NARROW_ROWS)`` and ``c < PANEL``, add
    ``sum_i a[a_at + i a_step + min(r, nj - 1) a_row] * b[b_at + i b_stride + c]``
    over ``i < kc`` to ``acc[acc_at + r acc_stride + c]`` (flat arrays of one
    dtype; with ``first`` the sums start from zero instead of ``acc``).

    The panel is done in column tiles of ``NARROW_VECTORS`` vectors of the
    panel kernels' width (``isa.Isa.panel_bits``), one after the other: per
    column tile, one vector accumulator per row and vector, a loop over ``i``
    with ``llvm.fma`` and a broadcast of each ``a``.  Each sum adds its terms in
    the order of ``i``.  Rows from ``nj`` on are computed from row ``nj - 1``
    and neither read nor written.  Nothing is checked: the caller keeps every
    index inside its array."""
    if not (isinstance(acc, types.Array) and isinstance(a, types.Array) and isinstance(b, types.Array)
            and acc.dtype == a.dtype == b.dtype):
        return None

    def codegen(context, builder, signature, args):
        sig = signature.args
        elem = context.get_value_type(sig[0].dtype)
        size = context.get_abi_sizeof(elem)
        lanes = isa.HOST.panel_lanes(size)
        width = NARROW_VECTORS * lanes
        assert PANEL % width == 0, "a panel is a whole number of column tiles"
        vec = ir.VectorType(elem, lanes)
        i64, i32 = ir.IntType(64), ir.IntType(32)

        def const(n):
            return ir.Constant(i64, n)

        acc_p, a_p, b_p = (context.make_array(sig[k])(context, builder, args[k]).data for k in (0, 4, 9))
        acc_at, acc_stride, a_at, a_step, a_row, nj, b_at, b_stride, kc = (
            context.cast(builder, args[k], sig[k], types.int64) for k in (1, 2, 5, 6, 7, 8, 10, 11, 12))
        first = context.cast(builder, args[3], sig[3], types.boolean)

        def vector_at(base, index):
            return builder.bitcast(builder.gep(base, [index]), vec.as_pointer())

        zero = ir.Constant(vec, [ir.Constant(elem, 0.0)] * lanes)
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec] * 3),
                                             f"llvm.fma.v{lanes}{'f32' if size == 4 else 'f64'}")
        undef = ir.Constant(vec, ir.Undefined)
        splat = ir.Constant(ir.VectorType(i32, lanes), [0] * lanes)
        live = [builder.icmp_signed("<", const(r), nj) for r in range(NARROW_ROWS)]
        a_rows = [builder.mul(builder.select(live[r], const(r), builder.sub(nj, const(1))), a_row)
                  for r in range(NARROW_ROWS)]
        acc_rows = [builder.mul(const(r), acc_stride) for r in range(NARROW_ROWS)]
        sums = [[cgutils.alloca_once(builder, vec) for _ in range(NARROW_VECTORS)] for _ in range(NARROW_ROWS)]
        with cgutils.for_range(builder, const(PANEL // width)) as tile:
            col = builder.mul(tile.index, const(width))
            acc_col = builder.add(acc_at, col)
            for r, row in enumerate(sums):
                for v, slot in enumerate(row):
                    builder.store(zero, slot)
                    with builder.if_then(builder.and_(builder.not_(first), live[r])):
                        ptr = vector_at(acc_p, builder.add(acc_col, builder.add(acc_rows[r], const(v * lanes))))
                        builder.store(builder.load(ptr, align=size), slot)
            b_col = builder.add(b_at, col)
            with cgutils.for_range(builder, kc) as loop:
                b_i = builder.add(b_col, builder.mul(loop.index, b_stride))
                b_vecs = [builder.load(vector_at(b_p, builder.add(b_i, const(v * lanes))), align=size)
                          for v in range(NARROW_VECTORS)]
                a_i = builder.add(a_at, builder.mul(loop.index, a_step))
                for a_r, row in zip(a_rows, sums):
                    e = builder.load(builder.gep(a_p, [builder.add(a_i, a_r)]))
                    e = builder.shuffle_vector(builder.insert_element(undef, e, ir.Constant(i32, 0)), undef, splat)
                    for b_vec, slot in zip(b_vecs, row):
                        builder.store(builder.call(fma, [e, b_vec, builder.load(slot)]), slot)
            for r, row in enumerate(sums):
                with builder.if_then(live[r]):
                    for v, slot in enumerate(row):
                        ptr = vector_at(acc_p, builder.add(acc_col, builder.add(acc_rows[r], const(v * lanes))))
                        builder.store(builder.load(slot), ptr, align=size)
        return context.get_dummy_value()

    return types.none(acc, acc_at, acc_stride, first, a, a_at, a_step, a_row, nj, b, b_at, b_stride, kc), codegen
