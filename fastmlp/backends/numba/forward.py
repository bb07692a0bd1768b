"""(F) the forward pass of one layer as register tiles, and (X) the input
rows gathered and scaled once per mini-batch.

A "row block" is 4 consecutive output neurons j0..j0+3 (rows of W), computed
for tiles of 5 samples (x 4 rows, or x 2 rows twice where the ISA has 16
vector registers, ``FWD_TILE_ROWS``); bias and activation are fused into the
store.  Wide layers compute their first ``PANEL * (n_out // PANEL)`` outputs
as outer-product panels instead (``_fwd_panel``, with ``FWD_PANELS``).
Mirror: ``fastmlp.backends.reference.dense_forward`` and ``as_input``.
"""

import numpy as np
from numba import carray, prange

from fastmlp.backends.numba import isa
from fastmlp.backends.numba.elementwise import _activate, _softmax_rows
from fastmlp.backends.numba.jit import FWD_PANELS, kernel
from fastmlp.backends.numba.tile import (NARROW_ROWS, NONNEG, PACK_ROWS, PACK_STRIDE, PANEL, TRANSPOSE, block_buffer,
                                        full_width_vectors, narrow_tile, strided_pack_buffer, transpose_block)
from fastmlp.functions import LEAKY_SLOPE


#
# A "row block" is 4 consecutive output neurons j0..j0+3 (rows of W).  Blocks at
# the end of a layer have fewer valid rows; their missing rows are replaced by
# copies of the last valid row (clamped index), computed and thrown away, so
# one tile shape serves every layer (one compiled loop, fewer specialisations).

@kernel
def _put(Z, A, i, j0, nj, s0, s1, s2, s3, code, slope, one, keep_z):
    """Store the pre-activations ``s_r`` (bias included) of rows ``j0 + r < j0 + nj``
    for sample ``i``; ``Z`` only when ``keep_z``."""
    if keep_z:
        Z[i, j0] = s0
        if nj > 1:
            Z[i, j0 + 1] = s1
        if nj > 2:
            Z[i, j0 + 2] = s2
        if nj > 3:
            Z[i, j0 + 3] = s3
    A[i, j0] = _activate(s0, code, slope, one)
    if nj > 1:
        A[i, j0 + 1] = _activate(s1, code, slope, one)
    if nj > 2:
        A[i, j0 + 2] = _activate(s2, code, slope, one)
    if nj > 3:
        A[i, j0 + 3] = _activate(s3, code, slope, one)


@kernel
def _fwd_block_5x4(A_prev, m, W, b, code, Z, A, j0, keep_z):
    """(F) for the row block ``j0..j0+3`` and the ``m`` samples of ``A_prev``:
    tiles of 5 samples x 4 rows, 20 sums that fast-math ``reassoc`` turns into
    20 vector accumulators (9 loads per 20 FMAs; 5 divides the batch sizes 10,
    and wastes little on others).  For 32 vector registers (``FWD_TILE_ROWS``).  Samples past ``m`` in the last
    tile are clamped copies of sample ``m - 1`` and not stored.

    equivalent reference: ``A[:, j0:j0+4] = f(A_prev @ W[j0:j0+4].T + b[j0:j0+4])``.
    """
    dt = W.dtype.type
    slope = dt(LEAKY_SLOPE)
    one = dt(1.0)
    nj = min(4, W.shape[0] - j0)
    j1, j2, j3 = j0 + min(1, nj - 1), j0 + min(2, nj - 1), j0 + min(3, nj - 1)
    w0, w1, w2, w3 = W[j0], W[j1], W[j2], W[j3]
    b0, b1, b2, b3 = b[j0], b[j1], b[j2], b[j3]
    n = w0.shape[0]
    for i in range(0, m, 5):
        a0 = A_prev[i]
        a1 = A_prev[min(i + 1, m - 1)]
        a2 = A_prev[min(i + 2, m - 1)]
        a3 = A_prev[min(i + 3, m - 1)]
        a4 = A_prev[min(i + 4, m - 1)]
        s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = dt(0)
        s20 = s21 = s22 = s23 = s30 = s31 = s32 = s33 = dt(0)
        s40 = s41 = s42 = s43 = dt(0)
        for k in range(n):
            u0 = w0[k]
            u1 = w1[k]
            u2 = w2[k]
            u3 = w3[k]
            x = a0[k]
            s00 += x * u0
            s01 += x * u1
            s02 += x * u2
            s03 += x * u3
            x = a1[k]
            s10 += x * u0
            s11 += x * u1
            s12 += x * u2
            s13 += x * u3
            x = a2[k]
            s20 += x * u0
            s21 += x * u1
            s22 += x * u2
            s23 += x * u3
            x = a3[k]
            s30 += x * u0
            s31 += x * u1
            s32 += x * u2
            s33 += x * u3
            x = a4[k]
            s40 += x * u0
            s41 += x * u1
            s42 += x * u2
            s43 += x * u3
        _put(Z, A, i, j0, nj, s00 + b0, s01 + b1, s02 + b2, s03 + b3, code, slope, one, keep_z)
        if i + 1 < m:
            _put(Z, A, i + 1, j0, nj, s10 + b0, s11 + b1, s12 + b2, s13 + b3, code, slope, one, keep_z)
        if i + 2 < m:
            _put(Z, A, i + 2, j0, nj, s20 + b0, s21 + b1, s22 + b2, s23 + b3, code, slope, one, keep_z)
        if i + 3 < m:
            _put(Z, A, i + 3, j0, nj, s30 + b0, s31 + b1, s32 + b2, s33 + b3, code, slope, one, keep_z)
        if i + 4 < m:
            _put(Z, A, i + 4, j0, nj, s40 + b0, s41 + b1, s42 + b2, s43 + b3, code, slope, one, keep_z)


# --- the tile for 16 vector registers: 5 samples x 2 rows, twice per row block -----

@kernel
def _put_pair(Z, A, i, j0, nj, s0, s1, code, slope, one, keep_z):
    """Store the pre-activations of rows ``j0`` and (when ``nj > 1``) ``j0 + 1``
    for sample ``i``; ``Z`` only when ``keep_z``."""
    if keep_z:
        Z[i, j0] = s0
        if nj > 1:
            Z[i, j0 + 1] = s1
    A[i, j0] = _activate(s0, code, slope, one)
    if nj > 1:
        A[i, j0 + 1] = _activate(s1, code, slope, one)


@kernel
def _fwd_pair(A_prev, m, W, b, code, Z, A, j0, nj, keep_z):
    """(F) for rows ``j0, j0+1`` (``nj`` of them valid, a missing second row is
    a clamped copy of the first) and the ``m`` samples of ``A_prev``: tiles of
    5 samples x 2 rows, 10 accumulators."""
    dt = W.dtype.type
    slope = dt(LEAKY_SLOPE)
    one = dt(1.0)
    j1 = j0 + min(1, nj - 1)
    w0, w1 = W[j0], W[j1]
    b0, b1 = b[j0], b[j1]
    n = w0.shape[0]
    for i in range(0, m, 5):
        a0 = A_prev[i]
        a1 = A_prev[min(i + 1, m - 1)]
        a2 = A_prev[min(i + 2, m - 1)]
        a3 = A_prev[min(i + 3, m - 1)]
        a4 = A_prev[min(i + 4, m - 1)]
        s00 = s01 = s10 = s11 = s20 = s21 = s30 = s31 = s40 = s41 = dt(0)
        for k in range(n):
            u0 = w0[k]
            u1 = w1[k]
            x = a0[k]
            s00 += x * u0
            s01 += x * u1
            x = a1[k]
            s10 += x * u0
            s11 += x * u1
            x = a2[k]
            s20 += x * u0
            s21 += x * u1
            x = a3[k]
            s30 += x * u0
            s31 += x * u1
            x = a4[k]
            s40 += x * u0
            s41 += x * u1
        _put_pair(Z, A, i, j0, nj, s00 + b0, s01 + b1, code, slope, one, keep_z)
        if i + 1 < m:
            _put_pair(Z, A, i + 1, j0, nj, s10 + b0, s11 + b1, code, slope, one, keep_z)
        if i + 2 < m:
            _put_pair(Z, A, i + 2, j0, nj, s20 + b0, s21 + b1, code, slope, one, keep_z)
        if i + 3 < m:
            _put_pair(Z, A, i + 3, j0, nj, s30 + b0, s31 + b1, code, slope, one, keep_z)
        if i + 4 < m:
            _put_pair(Z, A, i + 4, j0, nj, s40 + b0, s41 + b1, code, slope, one, keep_z)


@kernel
def _fwd_block_pairs(A_prev, m, W, b, code, Z, A, j0, keep_z):
    """(F) for the row block ``j0..j0+3`` as two 5 x 2 tiles (``_fwd_pair``).
    For 16 vector registers (``FWD_TILE_ROWS``).

    equivalent reference: ``A[:, j0:j0+4] = f(A_prev @ W[j0:j0+4].T + b[j0:j0+4])``.
    """
    nj = min(4, W.shape[0] - j0)
    _fwd_pair(A_prev, m, W, b, code, Z, A, j0, min(2, nj), keep_z)
    if nj > 2:
        _fwd_pair(A_prev, m, W, b, code, Z, A, j0 + 2, nj - 2, keep_z)


#: Rows of W per forward tile, from the vector registers of the ISA Numba compiles
#: for (``isa.HOST``; one specialisation per host).  The 5 x 4 tile's 20
#: accumulators fit AVX-512's 32 registers but spill on 16 (AVX2, SSE, NEON):
#: on a 2-core Zen 3 (AVX2), one thread, the float32 forward runs at 34
#: GFLOP/s with 5 x 4 and 43-51 with 5 x 2 (float64: 22 and 25).
FWD_TILE_ROWS = 4 if isa.HOST.registers >= 32 else 2
#: The row-block kernel every caller uses (blocks of 4 rows of W either way).
_fwd_block = _fwd_block_5x4 if FWD_TILE_ROWS == 4 else _fwd_block_pairs


@kernel
def _fwd_panel(A_prev, i_lo, i_hi, W, b, code, Z, A, j0, keep_z):
    """(F) for the outputs ``j0:j0+PANEL`` and the samples ``i_lo:i_hi``.

    Outer-product form, as ``deltas._hid_panel``, in narrow tiles
    (``tile.narrow_tile``): for each tile of ``NARROW_ROWS`` samples, the sums
    over the inputs k of ``A_prev[i, k] W[j0:j0+PANEL, k]``, two or four
    vectors of outputs at a time in registers, with no horizontal sums (a row
    block needs one per output).  ``W^T`` is not stored, so the inputs come in
    blocks of ``PACK_ROWS``, each block's ``W[j0:j0+PANEL, k0:k0+PACK_ROWS]``
    first copied transposed into a contiguous stack buffer, rows
    ``PACK_STRIDE`` apart, that stays in L1 while all tiles pass over it.  The
    tiles sum straight into ``A``, where the partial sums wait between blocks;
    the last block then adds the bias, keeps ``Z`` when ``keep_z`` and stores
    ``f(z)`` row by row.  Samples past ``i_hi`` are neither read nor written.
    Measured on an AMD EPYC Zen 4, 256 x 1024 x 1024, two threads, both in one
    process (docs/performance.md): with AVX2 code 1.44x the speed of a 1 x 64
    register tile in float32 and 1.49x the row blocks in float64; with
    AVX-512 code float64 1.24x the row blocks and float32 1.07x a 4 x 64 zmm
    register tile (two vectors a row; four are within 2 % of two).

    equivalent reference: ``A[i_lo:i_hi, j0:j0+PANEL] = f(A_prev[i_lo:i_hi] @ W[j0:j0+PANEL].T + b[j0:j0+PANEL])``.
    """
    full_width_vectors()
    dt = W.dtype.type
    slope = dt(LEAKY_SLOPE)
    one = dt(1.0)
    n_in = W.shape[1]
    j0 = j0 & NONNEG
    p_flat = carray(strided_pack_buffer(W.dtype), (PACK_ROWS * PACK_STRIDE,))
    tail = carray(block_buffer(W.dtype), (TRANSPOSE, TRANSPOSE))
    for r in range(TRANSPOSE):
        for k in range(TRANSPOSE):
            tail[r, k] = dt(0.0)
    b_panel = b[j0:j0 + PANEL]
    n_a, n_out = A_prev.shape[1], A.shape[1]
    a_flat = A_prev.reshape(A_prev.size)
    out_flat = A.reshape(A.size)
    for k0 in range(0, n_in, PACK_ROWS):
        kc = min(PACK_ROWS, n_in - k0)
        last = k0 + kc == n_in
        # W[j0:j0+PANEL, k0:k0+kc] transposed into the pack, in 8 x 8 blocks
        # (``transpose_block``); the last kc % 8 inputs (only in the last block)
        # through the zero-padded ``tail``, whose rows past kc are never read
        kc8 = kc - kc % TRANSPOSE
        for cb in range(0, PANEL, TRANSPOSE):
            for kb in range(0, kc8, TRANSPOSE):
                transpose_block(W, (j0 + cb) * n_in + k0 + kb, n_in, p_flat, kb * PACK_STRIDE + cb, PACK_STRIDE)
            if kc8 < kc:
                k8 = (k0 + kc8) & NONNEG
                for r in range(TRANSPOSE):
                    for k in range(kc - kc8):
                        tail[r, k] = W[j0 + cb + r, k8 + k]
                transpose_block(tail, 0, TRANSPOSE, p_flat, kc8 * PACK_STRIDE + cb, PACK_STRIDE)
        for i in range(i_lo, i_hi, NARROW_ROWS):
            ni = min(NARROW_ROWS, i_hi - i)
            narrow_tile(out_flat, i * n_out + j0, n_out, k0 == 0, a_flat, i * n_a + k0, 1, n_a, ni,
                        p_flat, 0, PACK_STRIDE, kc)
            if last:
                for r in range(ni):
                    out = A[i + r]
                    for c in range(PANEL):
                        out[j0 + c] += b_panel[c]
                    if keep_z:
                        z = Z[i + r]
                        for c in range(PANEL):
                            z[j0 + c] = out[j0 + c]
                    for c in range(PANEL):
                        out[j0 + c] = _activate(out[j0 + c], code, slope, one)


#: Samples per forward panel work item, so that layers with few panels still
#: split over the threads (the narrow tiles' 6 rows leave a last tile of 4).
FWD_PANEL_ROWS = 256


@kernel
def _fwd_items(W, m):
    """How many work items ``_fwd_item`` has for ``m`` samples."""
    n_blocks = (W.shape[0] + 3) // 4
    if FWD_PANELS:
        panels = W.shape[0] // PANEL
        n_blocks = panels * ((m + FWD_PANEL_ROWS - 1) // FWD_PANEL_ROWS) + (W.shape[0] - panels * PANEL + 3) // 4
    return n_blocks


@kernel
def _fwd_item(A_prev, m, W, b, code, Z, A, keep_z, q):
    """Work item ``q`` of (F): row block ``q``; or, for a layer with panels
    (the compile-time ``FWD_PANELS``), (output panel, chunk of
    FWD_PANEL_ROWS samples), then the row blocks of the outputs left."""
    if FWD_PANELS:
        full_width_vectors()
        panels = W.shape[0] // PANEL
        n_chunks = (m + FWD_PANEL_ROWS - 1) // FWD_PANEL_ROWS
        if q < panels * n_chunks:
            p, ch = q // n_chunks, q % n_chunks
            i_lo = ch * FWD_PANEL_ROWS
            _fwd_panel(A_prev, i_lo, min(m, i_lo + FWD_PANEL_ROWS), W, b, code, Z, A, p * PANEL, keep_z)
        else:
            _fwd_block(A_prev, m, W, b, code, Z, A, panels * PANEL + 4 * (q - panels * n_chunks), keep_z)
    else:
        _fwd_block(A_prev, m, W, b, code, Z, A, 4 * q, keep_z)


@kernel(args="A i A v i A A b")
def _forward_layer(A_prev, m, W, b, code, Z, A, keep_z):
    """(F) ``Z = A_prev W^T + b``, ``A = f(Z)`` for the first ``m`` rows.

    equivalent reference: ``Z = A_prev @ W.T + b; A = f(Z)``.
    Row blocks of 4 output neurons, or output panels (``_fwd_item``), in
    parallel when specialised so (each item owns its part of Z and A).
    Softmax rows are normalised afterwards (they need the whole row).
    """
    for q in prange(_fwd_items(W, m)):
        if FWD_PANELS:  # the outlined loop body, into which LLVM may inline the panels
            full_width_vectors()
        # np.int64: see update._update_layer (one compile of _fwd_item, not two)
        _fwd_item(A_prev, m, W, b, code, Z, A, keep_z, np.int64(q))
    _softmax_rows(A, m, code)


# --- (X) input rows: gathered, converted and scaled once per mini-batch ----------

@kernel
def _gather_row(X, r, scale, dst):
    """(X) ``dst = X[r] * scale`` in the parameters' dtype.  ``X`` is the tuple
    ``(pixels, values, data, indices, indptr)`` of ``shapes._check_input``,
    one form holding the rows: uint8 pixels are converted and divided by 255
    here (so the training set stays uint8), values of the dtype are only
    scaled (by 1), and a CSR row is written into a zeroed ``dst`` (so a
    sparse training set is never made dense, only its mini-batches)."""
    pixels, values, data, indices, indptr = X
    dt = dst.dtype.type
    s = dt(scale)
    if pixels.shape[0]:
        src = pixels[r]
        for k in range(dst.shape[0]):
            dst[k] = dt(src[k]) * s
    elif values.shape[0]:
        vals = values[r]
        for k in range(dst.shape[0]):
            dst[k] = vals[k] * s
    else:
        for k in range(dst.shape[0]):
            dst[k] = 0
        for p in range(indptr[r], indptr[r + 1]):
            dst[indices[p]] = data[p] * s


@kernel(args="X n i i f A")
def _gather_input(X, order, start, m, scale, A0):
    """(X) ``A0 = X[order[start:start+m]] * scale``, one row per iteration, in
    parallel when specialised so."""
    for i in prange(m):
        _gather_row(X, order[start + i], scale, A0[i])
