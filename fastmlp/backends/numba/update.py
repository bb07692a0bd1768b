"""(G) + (U): the weight gradient of a layer fused with its SGD update, so a
gradient is never stored whole; and the first layer's update fused with its
forward pass for the next mini-batch.

Mirror: ``fastmlp.backends.reference.gradients`` and ``sgd_update``.
"""

import numpy as np
from numba import carray, prange

from fastmlp.backends.numba.forward import _fwd_block, _gather_row
from fastmlp.backends.numba.elementwise import _softmax_rows
from fastmlp.backends.numba.deltas import _thread_rows
from fastmlp.backends.numba.jit import PANELS, kernel
from fastmlp.backends.numba.tile import (NARROW_ROWS, NONNEG, PACK_ROWS, PACK_SIZE, PACK_STRIDE, PANEL,
                                        full_width_vectors, narrow_tile, pack_buffer, strided_pack_buffer)


@kernel
def _update_row(w, v, g, inv, lr, mu, l2, c1, c2):
    """(U1-U4) for one row: ``g`` holds the *summed* gradient, ``inv`` = 1/m is
    applied here (so ``g`` need not be scaled in a separate pass).  The rule is
    plain SGD when ``mu`` is 0, else with a velocity (the same numbers for
    ``mu`` 0, without reading or writing it); ``c1``, ``c2`` as in
    ``_grad_update_block``."""
    n = w.shape[0]
    if mu == 0:
        if l2 == 0:
            for k in range(n):
                w[k] -= lr * (g[k] * inv)
        else:
            for k in range(n):
                w[k] -= lr * (g[k] * inv + l2 * w[k])
    else:
        for k in range(n):
            gk = g[k] * inv + l2 * w[k]
            vk = v[k] * mu - lr * gk
            v[k] = vk
            w[k] += c1 * vk + c2 * gk


@kernel
def _bias_update(delta, m, b, vb, lr, mu, j, c1, c2):
    """(G) ``db_j = mean_i delta[i, j]`` and (U) for bias j (no L2 on biases)."""
    s = delta.dtype.type(0)
    for i in range(m):
        s += delta[i, j]
    gb = s / delta.dtype.type(m)
    if mu == 0:
        b[j] -= lr * gb
    else:
        vk = vb[j] * mu - lr * gb
        vb[j] = vk
        b[j] += c1 * vk + c2 * gb


@kernel
def _coefs5(delta, i, m, j, zero):
    """``delta[i + s, j]`` for s = 0..4, zero for samples past ``m`` (padding)."""
    return (delta[i, j], delta[i + 1, j] if i + 1 < m else zero,
            delta[i + 2, j] if i + 2 < m else zero, delta[i + 3, j] if i + 3 < m else zero,
            delta[i + 4, j] if i + 4 < m else zero)


@kernel
def _rows5(A, i, m, klo):
    """Rows ``i..i+4`` of ``A`` from column ``klo``; past ``m`` the last row again
    (its coefficient is 0)."""
    return (A[i, klo:], A[min(i + 1, m - 1), klo:], A[min(i + 2, m - 1), klo:],
            A[min(i + 3, m - 1), klo:], A[min(i + 4, m - 1), klo:])


@kernel
def _grad_update_block(delta, A_prev, m, W, b, vW, vb, hyper, j0, G, panels):
    """(G)+(U) for the row block ``j0..j0+3``.

    The gradient rows ``g_r = sum_i delta[i, j0 + r] A_prev[i]`` are summed 5
    samples x 4 rows per pass (20 FMAs per 5 loads of ``A_prev`` and 4
    load/stores of ``G``, which stays in L1; 20 coefficients + 5 inputs + 4 sums
    fit the 32 vector registers); the last group of samples is padded with zero
    coefficients.  For a full block the last pass also applies (U) to the 4 rows
    of W directly, so the finished gradient is never stored.  A partial block
    (the end of a layer) keeps its gradient in ``G`` and updates its valid rows
    from there.  Only columns from ``panels * PANEL`` on are done here (the
    panels before them belong to ``_grad_update_columns``); the bias always.
    equivalent reference: ``gradients`` then ``sgd_update``.
    """
    dt = W.dtype.type
    zero = dt(0.0)
    lr, mu, l2 = dt(hyper[0]), dt(hyper[1]), dt(hyper[2])
    inv = dt(1.0) / dt(m)
    # after the velocity update w += c1 v + c2 g: (U3) momentum (1, 0), exactly
    # w += v; (U4) Nesterov (mu, -lr) when hyper[3] is set.  A run-time choice:
    # as a compile-time one it cost a compile of its own for two coefficients
    nesterov = hyper[3] != 0.0
    c1 = mu if nesterov else dt(1.0)
    c2 = -lr if nesterov else zero
    nj = min(4, W.shape[0] - j0)
    j1, j2, j3 = j0 + min(1, nj - 1), j0 + min(2, nj - 1), j0 + min(3, nj - 1)
    n = A_prev.shape[1]
    # the columns left, as views starting at column klo (loops from 0, as the
    # vectoriser likes them: counting from klo made this path 4x slower)
    klo = panels * PANEL
    nk = n - klo
    g0, g1, g2, g3 = G[0, klo:n], G[1, klo:n], G[2, klo:n], G[3, klo:n]
    for k in range(nk):
        g0[k] = zero
        g1[k] = zero
        g2[k] = zero
        g3[k] = zero
    fuse = nj == 4
    w0, w1, w2, w3 = W[j0, klo:], W[j1, klo:], W[j2, klo:], W[j3, klo:]
    v0, v1, v2, v3 = vW[j0, klo:], vW[j1, klo:], vW[j2, klo:], vW[j3, klo:]
    for i in range(0, m if nk > 0 else 0, 5):
        a0, a1, a2, a3, a4 = _rows5(A_prev, i, m, klo)
        e00, e01, e02, e03, e04 = _coefs5(delta, i, m, j0, zero)
        e10, e11, e12, e13, e14 = _coefs5(delta, i, m, j1, zero)
        e20, e21, e22, e23, e24 = _coefs5(delta, i, m, j2, zero)
        e30, e31, e32, e33, e34 = _coefs5(delta, i, m, j3, zero)
        if i + 5 < m or not fuse:
            for k in range(nk):
                x0 = a0[k]
                x1 = a1[k]
                x2 = a2[k]
                x3 = a3[k]
                x4 = a4[k]
                g0[k] += e00 * x0 + e01 * x1 + e02 * x2 + e03 * x3 + e04 * x4
                g1[k] += e10 * x0 + e11 * x1 + e12 * x2 + e13 * x3 + e14 * x4
                g2[k] += e20 * x0 + e21 * x1 + e22 * x2 + e23 * x3 + e24 * x4
                g3[k] += e30 * x0 + e31 * x1 + e32 * x2 + e33 * x3 + e34 * x4
        elif mu == 0:  # last pass fused with (U1)-(U2): w -= lr (g / m + l2 w)
            for k in range(nk):
                x0 = a0[k]
                x1 = a1[k]
                x2 = a2[k]
                x3 = a3[k]
                x4 = a4[k]
                w0[k] -= lr * ((g0[k] + (e00 * x0 + e01 * x1 + e02 * x2 + e03 * x3 + e04 * x4)) * inv
                               + l2 * w0[k])
                w1[k] -= lr * ((g1[k] + (e10 * x0 + e11 * x1 + e12 * x2 + e13 * x3 + e14 * x4)) * inv
                               + l2 * w1[k])
                w2[k] -= lr * ((g2[k] + (e20 * x0 + e21 * x1 + e22 * x2 + e23 * x3 + e24 * x4)) * inv
                               + l2 * w2[k])
                w3[k] -= lr * ((g3[k] + (e30 * x0 + e31 * x1 + e32 * x2 + e33 * x3 + e34 * x4)) * inv
                               + l2 * w3[k])
        else:  # last pass fused with (U2)-(U4)
            for k in range(nk):
                x0 = a0[k]
                x1 = a1[k]
                x2 = a2[k]
                x3 = a3[k]
                x4 = a4[k]
                q0 = (g0[k] + (e00 * x0 + e01 * x1 + e02 * x2 + e03 * x3 + e04 * x4)) * inv + l2 * w0[k]
                q1 = (g1[k] + (e10 * x0 + e11 * x1 + e12 * x2 + e13 * x3 + e14 * x4)) * inv + l2 * w1[k]
                q2 = (g2[k] + (e20 * x0 + e21 * x1 + e22 * x2 + e23 * x3 + e24 * x4)) * inv + l2 * w2[k]
                q3 = (g3[k] + (e30 * x0 + e31 * x1 + e32 * x2 + e33 * x3 + e34 * x4)) * inv + l2 * w3[k]
                u0 = v0[k] * mu - lr * q0
                u1 = v1[k] * mu - lr * q1
                u2 = v2[k] * mu - lr * q2
                u3 = v3[k] * mu - lr * q3
                v0[k] = u0
                v1[k] = u1
                v2[k] = u2
                v3[k] = u3
                w0[k] += c1 * u0 + c2 * q0
                w1[k] += c1 * u1 + c2 * q1
                w2[k] += c1 * u2 + c2 * q2
                w3[k] += c1 * u3 + c2 * q3
    if not fuse:
        for r in range(nj):
            _update_row(W[j0 + r, klo:], vW[j0 + r, klo:], G[r, klo:n], inv, lr, mu, l2, c1, c2)
    for r in range(nj):
        _bias_update(delta, m, b, vb, lr, mu, j0 + r, c1, c2)


@kernel
def _grad_update_columns(delta, A_prev, m, W, vW, hyper, k0, j_lo, j_hi):
    """(G)+(U) of columns ``k0:k0+PANEL`` for rows ``j_lo:j_hi`` of W (at most
    ``PANEL_ITEM_ROWS``), in narrow tiles of ``NARROW_ROWS`` rows
    (``tile.narrow_tile``).

    Outer-product form: for each tile of rows j, the sums over the samples i
    of ``delta[i, j] A_prev[i, k0:k0+PANEL]``, two or four vectors of columns
    at a time in registers, each loaded vector of inputs feeding six FMAs.
    The samples come in blocks of ``PACK_ROWS``: a block's inputs
    ``A_prev[i0:i0+PACK_ROWS, k0:k0+PANEL]`` are packed once into a contiguous
    stack buffer, rows ``PACK_STRIDE`` apart, that stays in L1 while the tiles
    of all the rows pass over it (``tile``); in float64 the block's
    coefficients ``delta[i0:i0+kc, j_lo:j_hi]`` too: the tiles read the same
    few rows once per column tile, and unpacked they are ``n_out`` elements
    apart, one L1 set for all of them at 1024 float64 outputs.  The tiles sum
    into ``sums`` (a per-call stack buffer of the item's gradient), where the
    partial sums wait between blocks; after the last block (U) is applied
    from there, so no gradient array is ever allocated.  ``c1``/``c2``
    select momentum or Nesterov as in ``_grad_update_block``.

    Measured on an AMD EPYC Zen 4, 256 x 1024 x 1024, two threads, both in
    one process (docs/performance.md): with AVX2 code float32 1.47-1.50x the
    speed of a 1 x 64 register tile, float64 1.79x the row blocks; with
    AVX-512 code float64 1.15x a 2 x 64 register tile and float32 1.09x and
    1.12x a 4 x 64 zmm register tile; packing the coefficients gains 1.09x in
    float64 and loses (0.93-0.96x) in float32.
    """
    full_width_vectors()
    dt = W.dtype.type
    lr, mu, l2 = dt(hyper[0]), dt(hyper[1]), dt(hyper[2])
    inv = dt(1.0) / dt(m)
    nesterov = hyper[3] != 0.0
    c1 = mu if nesterov else dt(1.0)
    c2 = -lr if nesterov else dt(0.0)
    k0 = k0 & NONNEG
    sums = carray(pack_buffer(W.dtype), (PACK_SIZE,))
    a_pack = carray(strided_pack_buffer(W.dtype), (PACK_ROWS * PACK_STRIDE,))
    d_pack = carray(strided_pack_buffer(W.dtype), (PACK_ROWS * PACK_STRIDE,))
    pack_delta = W.itemsize == 8  # the coefficients (see above)
    n_out = delta.shape[1]
    d_flat = delta.reshape(delta.size)
    for i0 in range(0, m, PACK_ROWS):
        kc = min(PACK_ROWS, m - i0)
        first, last = i0 == 0, i0 + kc == m
        for i in range(kc):
            a = A_prev[i0 + i]
            p = a_pack[i * PACK_STRIDE:]
            for c in range(PANEL):
                p[c] = a[k0 + c]
            if pack_delta:
                d = delta[i0 + i, j_lo & NONNEG:j_hi]
                q = d_pack[i * PACK_STRIDE:]
                for r in range(j_hi - j_lo):
                    q[r] = d[r]
        for j0 in range(j_lo, j_hi, NARROW_ROWS):
            nj = min(NARROW_ROWS, j_hi - j0)
            tile = sums[((j0 - j_lo) * PANEL) & NONNEG:]
            if pack_delta:
                coefs, c_at, c_step = d_pack, j0 - j_lo, PACK_STRIDE
            else:
                coefs, c_at, c_step = d_flat, i0 * n_out + j0, n_out
            narrow_tile(tile, 0, PANEL, first, coefs, c_at, c_step, 1, nj, a_pack, 0, PACK_STRIDE, kc)
            if not last:
                continue
            for r in range(nj):
                w = W[j0 + r]
                v = vW[j0 + r]
                if mu == 0:  # (U1)-(U2)
                    for c in range(PANEL):
                        w[k0 + c] -= lr * (tile[r * PANEL + c] * inv + l2 * w[k0 + c])
                else:  # (U2)-(U4)
                    for c in range(PANEL):
                        g = tile[r * PANEL + c] * inv + l2 * w[k0 + c]
                        u = v[k0 + c] * mu - lr * g
                        v[k0 + c] = u
                        w[k0 + c] += c1 * u + c2 * g


#: Rows of W per panel work item (a multiple of 4): with few panels (64 <= n_in
#: < 128 gives one) the items still split over the threads.  Their partial
#: gradients fill one ``pack_buffer`` (``_grad_update_columns``).
PANEL_ITEM_ROWS = 64
assert PANEL_ITEM_ROWS * PANEL <= PACK_SIZE


@kernel
def _update_item(delta, A_prev, m, W, b, vW, vb, hyper, G, panels, q):
    """Work item ``q`` of a layer's (G)+(U).  Without panels: row block ``q``.
    With panels: column panel ``p`` of the rows of group ``g`` (PANEL_ITEM_ROWS
    rows), plus the leftover columns and the biases of the row blocks of that
    group whose index is ``p`` modulo ``panels`` (so the small work is spread too
    and every element has exactly one owner).  The panel code is compiled only
    for layers with panels (the compile-time constant ``PANELS``)."""
    if PANELS:
        full_width_vectors()
        n_out = W.shape[0]
        n_groups = (n_out + PANEL_ITEM_ROWS - 1) // PANEL_ITEM_ROWS
        p, g = q // n_groups, q % n_groups
        j_lo = g * PANEL_ITEM_ROWS
        j_hi = min(n_out, j_lo + PANEL_ITEM_ROWS)
        _grad_update_columns(delta, A_prev, m, W, vW, hyper, p * PANEL, j_lo, j_hi)
        for jb in range(j_lo // 4, (j_hi + 3) // 4):
            if jb % panels == p:
                _grad_update_block(delta, A_prev, m, W, b, vW, vb, hyper, 4 * jb, G, panels)
    else:
        _grad_update_block(delta, A_prev, m, W, b, vW, vb, hyper, 4 * q, G, panels)


@kernel(args="A A i A v A v h G i")
def _update_layer(delta, A_prev, m, W, b, vW, vb, hyper, G, panels):
    """(G) ``dW = delta^T A_prev / m``, ``db = mean(delta)`` and (U) applied tile
    by tile, so no ``dW`` is ever stored (a tile's gradient lives in registers or
    in a small per-thread buffer in L1).

    equivalent reference: ``gradients(delta, A_prev)`` then ``sgd_update(...)``.
    The work items (``_update_item``) are row blocks, or (column panel, group of
    rows) with panels; they run in parallel when specialised so (each element of
    W belongs to one item; the buffer is picked by thread id, which does not
    change the numbers).
    """
    n_items = (W.shape[0] + 3) // 4
    if PANELS:
        n_items = panels * ((W.shape[0] + PANEL_ITEM_ROWS - 1) // PANEL_ITEM_ROWS)
    for q in prange(n_items):
        if PANELS:  # the outlined loop body, into which LLVM may inline the panels
            full_width_vectors()
        # np.int64: a parallel compile types the loop index as int64 first and
        # as uint64 in the outlined loop, which compiled _update_item twice
        _update_item(delta, A_prev, m, W, b, vW, vb, hyper, _thread_rows(G), panels, np.int64(q))


@kernel(args="A A i A v A v h G i  A i i A A b X n i f A")
def _update_forward_first(delta, A_prev, m, W, b, vW, vb, hyper, G, panels,
                          A_next, m_next, code, Z, A, keep_z, X, order, start2, scale, A_gather):
    """The first layer's (G)+(U) for this batch fused with its (F) for the next
    batch, in one parallel region: a block of 4 rows of W is updated and then,
    while it is still in L1, multiplied with the next batch's inputs ``A_next``
    (``m_next`` rows; 0 at the end of the epoch).  One pass over W instead of
    two and one parallel region per batch instead of two.  The same region also
    gathers the inputs of the batch after next (X) into ``A_gather``: iteration
    ``q`` copies rows ``q, q + n_blocks, ...`` (nothing in this region reads them).
    For a first layer without panels; with panels (in its update or its
    forward) they run down all rows of W, so the epoch calls ``_update_layer``,
    ``forward._forward_layer`` and ``forward._gather_input`` instead.

    equivalent reference: ``sgd_update(W, ...)`` then ``dense_forward(A_next, W, b)``.
    """
    n_blocks = (W.shape[0] + 3) // 4
    m2 = A_gather.shape[0]
    for q in prange(n_blocks):
        _grad_update_block(delta, A_prev, m, W, b, vW, vb, hyper, 4 * q, _thread_rows(G), panels)
        if m_next > 0:
            _fwd_block(A_next, m_next, W, b, code, Z, A, 4 * q, keep_z)
        for i in range(q, m2, n_blocks):
            _gather_row(X, order[start2 + i], scale, A_gather[i])
    if m_next > 0:
        _softmax_rows(A, m_next, code)
