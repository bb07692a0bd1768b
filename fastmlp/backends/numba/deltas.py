"""(D_L) the output delta with the cost and the accuracy of a mini-batch, and
(D_l) the hidden deltas: tiles of 4 samples x a block of columns, or
outer-product panels for wide layers.

Mirror: ``fastmlp.backends.reference.output_delta`` and ``hidden_delta``.
"""

import math

import numba
import numpy as np
from numba import carray, prange

from fastmlp.backends.numba.elementwise import _derivative
from fastmlp.backends.numba.jit import CROSS_ENTROPY, NLL, PANELS, POISSON, QUADRATIC, SIGMOID, kernel
from fastmlp.backends.numba.tile import (NARROW_ROWS, NONNEG, PACK_ROWS, PACK_STRIDE, PANEL, full_width_vectors,
                                        narrow_tile, strided_pack_buffer)
from fastmlp.functions import LEAKY_SLOPE


@kernel(args="A A u A h f n i i i i A", returns="fi")
def _output_rows(Z, A, y, T, w, c, order, start, m, code, cost, delta):
    """(D_L) the output delta of ``m`` samples, and (C1-C4) the summed cost and
    the number of rows predicted right (measured before the update).
    The targets are the labels ``y`` (one-hot, Y), or the rows of the target
    matrix ``T`` when it has any (Y'', ``functions.correct_rows``).
    (Y') a single sigmoid output unit is a two-class network: its target is the
    label itself and its prediction ``a > 0.5``.  (W1) with sample weights
    ``w`` (empty for none), sample ``i``'s cost and delta are scaled by
    ``c w_i`` (``c``: the batch size over the batch's sum of weights)."""
    slope = A.dtype.type(LEAKY_SLOPE)
    one = A.dtype.type(1.0)
    zero = A.dtype.type(0.0)
    n = A.shape[1]
    loss = 0.0
    correct = 0
    logistic = n == 1 and code == SIGMOID
    matrix = T.shape[0] > 0
    weighted = w.shape[0] > 0
    for i in range(m):
        row = order[start + i]
        label = 0 if matrix else y[row]
        sample_loss = 0.0
        if matrix:
            right = True
            for j in range(n):
                if (A[i, j] > 0.5) != (T[row, j] > 0.5):
                    right = False
            if right:
                correct += 1
        else:
            best = 0
            for j in range(1, n):
                if A[i, j] > A[i, best]:
                    best = j
            if logistic:
                best = 1 if A[i, 0] > 0.5 else 0
            if best == label:
                correct += 1
        if cost == NLL:  # logsumexp(z) - sum_j t_j z_j, maximum subtracted (C3)
            top = Z[i, 0]
            for j in range(1, n):
                if Z[i, j] > top:
                    top = Z[i, j]
            total = 0.0
            for j in range(n):
                total += math.exp(Z[i, j] - top)
            sample_loss += top + math.log(total)
            if matrix:
                for j in range(n):
                    sample_loss -= T[row, j] * Z[i, j]
            else:
                sample_loss -= Z[i, label]
        r = one
        if weighted:
            r = A.dtype.type(c * w[row])
        for j in range(n):
            a = A[i, j]
            if matrix:
                t = T[row, j]
            else:
                t = one if j == label else zero
                if logistic:
                    t = one if label == 1 else zero
            if cost == QUADRATIC:  # (C1) and (D_L) BP1
                sample_loss += 0.5 * (a - t) * (a - t)
                delta[i, j] = (a - t) * _derivative(a, code, slope, one)
            else:
                if cost == CROSS_ENTROPY:  # (C2) softplus(z) - y z
                    z = Z[i, j]
                    sample_loss += (z if z > 0 else zero) + math.log1p(math.exp(-abs(z))) - t * z
                elif cost == POISSON:  # (C4) y ln y - y z + a - y
                    sample_loss += (t * math.log(t) if t > 0 else zero) - t * Z[i, j] + a - t
                delta[i, j] = a - t
            if weighted:
                delta[i, j] *= r  # (W1)
        loss += sample_loss * c * w[row] if weighted else sample_loss
    return loss, correct


@kernel
def _weight_scale(w, order, start, m):
    """(W1) ``c = m / sum(w)`` over the samples ``order[start:start + m]``; 1
    without weights (``w`` empty); 0 for a batch whose weights are all 0
    (it changes nothing)."""
    if w.shape[0] == 0 or m == 0:
        return 1.0
    total = 0.0
    for i in range(m):
        total += w[order[start + i]]
    return m / total if total > 0 else 0.0


# --- (D_l) hidden delta: tiles of 4 samples x a block of columns ------------------

@kernel
def _hid_tile(delta_next, W_next, A, m, code, delta, i, k0, k1, scratch):
    """Columns ``k0:k1`` of rows ``i..i+3`` of ``(delta_next W_next) * f'(A)``.

    Rows of ``W_next`` are combined 4 at a time ("axpy" over contiguous rows, no
    transposed copy of W): 16 FMAs per 4 loads of W and 4 load/stores of the
    outputs, which stay in L1 (k1 - k0 <= HID_COLS).  Rows of W past the end
    get a zero coefficient; samples past ``m`` write into ``scratch``.
    """
    dt = W_next.dtype.type
    slope = dt(LEAKY_SLOPE)
    one = dt(1.0)
    zero = dt(0.0)
    n_next = W_next.shape[0]
    i1, i2, i3 = min(i + 1, m - 1), min(i + 2, m - 1), min(i + 3, m - 1)
    o0 = delta[i, k0:k1]
    o1 = delta[i1, k0:k1] if i + 1 < m else scratch[0, :k1 - k0]
    o2 = delta[i2, k0:k1] if i + 2 < m else scratch[1, :k1 - k0]
    o3 = delta[i3, k0:k1] if i + 3 < m else scratch[2, :k1 - k0]
    nk = k1 - k0
    for k in range(nk):
        o0[k] = zero
        o1[k] = zero
        o2[k] = zero
        o3[k] = zero
    d0 = delta_next[i]
    d1 = delta_next[i1]
    d2 = delta_next[i2]
    d3 = delta_next[i3]
    for j in range(0, n_next, 4):
        nj = min(4, n_next - j)
        ja, jb, jc = j + min(1, nj - 1), j + min(2, nj - 1), j + min(3, nj - 1)
        w0 = W_next[j, k0:k1]
        w1 = W_next[ja, k0:k1]
        w2 = W_next[jb, k0:k1]
        w3 = W_next[jc, k0:k1]
        e00, e01 = d0[j], (d0[ja] if nj > 1 else zero)
        e02, e03 = (d0[jb] if nj > 2 else zero), (d0[jc] if nj > 3 else zero)
        e10, e11 = d1[j], (d1[ja] if nj > 1 else zero)
        e12, e13 = (d1[jb] if nj > 2 else zero), (d1[jc] if nj > 3 else zero)
        e20, e21 = d2[j], (d2[ja] if nj > 1 else zero)
        e22, e23 = (d2[jb] if nj > 2 else zero), (d2[jc] if nj > 3 else zero)
        e30, e31 = d3[j], (d3[ja] if nj > 1 else zero)
        e32, e33 = (d3[jb] if nj > 2 else zero), (d3[jc] if nj > 3 else zero)
        for k in range(nk):
            u0 = w0[k]
            u1 = w1[k]
            u2 = w2[k]
            u3 = w3[k]
            o0[k] += e00 * u0 + e01 * u1 + e02 * u2 + e03 * u3
            o1[k] += e10 * u0 + e11 * u1 + e12 * u2 + e13 * u3
            o2[k] += e20 * u0 + e21 * u1 + e22 * u2 + e23 * u3
            o3[k] += e30 * u0 + e31 * u1 + e32 * u2 + e33 * u3
    a0 = A[i, k0:k1]
    a1 = A[i1, k0:k1]
    a2 = A[i2, k0:k1]
    a3 = A[i3, k0:k1]
    for k in range(nk):
        o0[k] *= _derivative(a0[k], code, slope, one)
        o1[k] *= _derivative(a1[k], code, slope, one)
        o2[k] *= _derivative(a2[k], code, slope, one)
        o3[k] *= _derivative(a3[k], code, slope, one)


@kernel
def _hid_panel(delta_next, W_next, A, i_lo, i_hi, code, delta, k0):
    """Columns ``k0:k0+PANEL`` of ``(delta_next W_next) * f'(A)`` for rows
    ``i_lo:i_hi``.

    Outer-product form, in narrow tiles (``tile.narrow_tile``): for each tile
    of ``NARROW_ROWS`` samples, the sums over the rows j of ``W_next`` of
    ``delta_next[i, j] W_next[j, k0:k0+PANEL]``, two or four vectors of
    columns at a time in registers, each loaded vector of ``W_next`` feeding
    one FMA per sample; no horizontal sums.  The rows j come in blocks of
    ``PACK_ROWS``, each first copied into a contiguous stack buffer, rows
    ``PACK_STRIDE`` apart, that stays in L1 while all tiles pass over it
    (``tile``); the tiles sum straight into ``delta``, where the partial sums
    wait between blocks, and ``f'`` is applied to each tile's rows after the
    last block.  Samples past ``i_hi`` are neither read nor written.
    Measured on an AMD EPYC Zen 4, 256 x 1024 x 1024, two threads, both in
    one process: with AVX2 code 1.50x the speed of a 1 x 64 register tile in
    float32 and 1.41x the row blocks in float64; with AVX-512 code float64
    1.13x a 2 x 64 register tile and float32 1.10x a 4 x 64 one (two vectors
    a row; four are within 2 % of two; docs/performance.md).
    """
    full_width_vectors()
    dt = W_next.dtype.type
    slope = dt(LEAKY_SLOPE)
    one = dt(1.0)
    n_next = W_next.shape[0]
    k0 = k0 & NONNEG
    n_d, n_cols = delta_next.shape[1], delta.shape[1]
    d_flat = delta_next.reshape(delta_next.size)
    out_flat = delta.reshape(delta.size)
    w_pack = carray(strided_pack_buffer(W_next.dtype), (PACK_ROWS * PACK_STRIDE,))
    for j0 in range(0, n_next, PACK_ROWS):
        kc = min(PACK_ROWS, n_next - j0)
        last = j0 + kc == n_next
        for j in range(kc):
            w = W_next[j0 + j]
            p = w_pack[j * PACK_STRIDE:]
            for c in range(PANEL):
                p[c] = w[k0 + c]
        for i in range(i_lo, i_hi, NARROW_ROWS):
            ni = min(NARROW_ROWS, i_hi - i)
            narrow_tile(out_flat, i * n_cols + k0, n_cols, j0 == 0, d_flat, i * n_d + j0, 1, n_d, ni,
                        w_pack, 0, PACK_STRIDE, kc)
            if last:
                for r in range(ni):
                    out = delta[i + r]
                    a = A[i + r]
                    for c in range(PANEL):
                        out[k0 + c] *= _derivative(a[k0 + c], code, slope, one)


#: Columns per hidden-delta block: a block of W_next (n_next x HID_COLS) should
#: stay in L2 while all sample tiles pass over it.
HID_COLS = 256
#: Samples per hidden-delta panel work item, so that layers with one or two
#: panels still split over the threads (the narrow tiles' 6 rows leave a last
#: tile of 4).
HID_PANEL_ROWS = 64


@kernel
def _hid_item(delta_next, W_next, A, m, code, delta, panels, q, scratch):
    """Work item ``q`` of (D_l): (column panel, chunk of HID_PANEL_ROWS samples)
    for the ``panels`` panels, then (column block, tile of 4 samples) over the
    columns left.  The panel code is compiled only for layers with panels
    (the compile-time constant ``PANELS``)."""
    n = W_next.shape[1]
    n_chunks = (m + HID_PANEL_ROWS - 1) // HID_PANEL_ROWS
    n_panel_items = panels * n_chunks
    if PANELS:
        full_width_vectors()
        if q < n_panel_items:
            p, ch = q // n_chunks, q % n_chunks
            i_lo = ch * HID_PANEL_ROWS
            _hid_panel(delta_next, W_next, A, i_lo, min(m, i_lo + HID_PANEL_ROWS), code, delta, p * PANEL)
    if q >= n_panel_items:
        n_it = (m + 3) // 4
        kb, t = (q - n_panel_items) // n_it, (q - n_panel_items) % n_it
        k0 = panels * PANEL + kb * HID_COLS
        _hid_tile(delta_next, W_next, A, m, code, delta, 4 * t, k0, min(n, k0 + HID_COLS), scratch)


@kernel
def _thread_rows(G):
    """This thread's rows of the per-thread work buffer ``G``.  Any row is right
    in a serial loop (one iteration at a time), so the index is clipped rather
    than trusted."""
    return G[min(numba.get_thread_id(), G.shape[0] - 1)]


@kernel(args="A A A i i A G i")
def _hidden_layer(delta_next, W_next, A, m, code, delta, G, panels):
    """(D_l) ``delta = (delta_next W_next) * f'(A)`` for the first ``m`` rows.

    equivalent reference: ``delta = (delta_next @ W_next) * f'(A)``.
    The work items (``_hid_item``) cover the ``panels`` column panels of
    ``PANEL`` columns (``_hid_panel``), then the columns left in tiles of 4
    samples (``_hid_tile``); each item owns its part of ``delta``, and they run
    in parallel when specialised so.  ``G`` gives each thread its own scratch
    rows (for samples past ``m``; which one is used changes no number).
    """
    n = W_next.shape[1]
    n_kb = (n - panels * PANEL + HID_COLS - 1) // HID_COLS
    n_items = panels * ((m + HID_PANEL_ROWS - 1) // HID_PANEL_ROWS) + n_kb * ((m + 3) // 4)
    for q in prange(n_items):
        if PANELS:  # the outlined loop body, into which LLVM may inline the panels
            full_width_vectors()
        # np.int64: see _update_layer (one compile of _hid_item instead of two)
        _hid_item(delta_next, W_next, A, m, code, delta, panels, np.int64(q), _thread_rows(G))
