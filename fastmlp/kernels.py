"""The Numba backend: the mathematics of ``fastmlp.reference`` as compiled loops.

Every public function here has a namesake with the same arguments in
``fastmlp.reference`` and computes the same numbers (up to rounding; the
equivalence tests in ``tests/test_kernels.py`` check it).  Each public function is
a thin wrapper that converts names to integer codes, checks shapes and allocates
outputs, then calls one private ``@njit`` loop.  Equation labels refer to
``docs/math.md``; ``docs/performance.md`` explains, with measurements, why each
kernel has the shape it has.

Two kernel shapes: row blocks (4 rows of W, dot products vectorised along the
inputs) for every layer, and for wide layers with big enough mini-batches
outer-product panels (a 4 x 64 register tile, ``fastmlp/_tile.py``) for the
hidden delta and the fused gradient + update; docs/performance.md has the
measurements behind the choice (``_panels``).

Layout (as in the reference): activations and deltas are ``(m, n)`` row-major,
one row per sample; ``W`` is ``(n_out, n_in)`` so row ``j`` (the weights into
neuron ``j``) is contiguous.  All parameters live in one flat buffer, layer after
layer (``fastmlp.network``).

Compile time: a helper called with a literal (``0``, ``False``) in one place
and a variable in another is compiled twice, so calls pass variables.  (The
work-item helpers are still compiled twice, for a ``prange`` index, which is
``uint64``, and a ``range`` index: casting the index to int64 saved 1.5 s of
compiling but made 784-128-64-10 about 2 % slower, docs/performance.md.)

Determinism: every parallel loop (``prange``) gives each output element to
exactly one iteration, and the split into iterations and the summation order
inside an iteration depend only on the shapes, never on the number of threads.
So the results are bitwise identical for any ``NUMBA_NUM_THREADS``.  There are no
atomics and no shared accumulators.
"""

import math

import numpy as np

from fastmlp import _numba_cache  # noqa: F401  (sets NUMBA_CACHE_DIR before numba compiles)
from fastmlp import config
from fastmlp._tile import NONNEG, PANEL, TILE_SIZE, tile_buffer, tile_rows
from fastmlp.functions import ACTIVATION_CODES, COST_CODES, LEAKY_SLOPE
from fastmlp.network import weight_offsets

import numba  # noqa: E402  (after _numba_cache on purpose)
from numba import carray, njit, prange  # noqa: E402

_CACHE = bool(config.CACHE and _numba_cache.CACHE_OK)
#: Serial helpers (inlined into the kernels by LLVM).
_serial = njit(fastmath=config.FASTMATH, cache=_CACHE, error_model="numpy", nogil=True)
#: Kernels that contain ``prange`` loops.
_parallel = njit(
    parallel=config.PARALLEL, fastmath=config.FASTMATH, cache=_CACHE, error_model="numpy", nogil=True
)

SIGMOID = ACTIVATION_CODES["sigmoid"]
TANH = ACTIVATION_CODES["tanh"]
RELU = ACTIVATION_CODES["relu"]
LEAKY_RELU = ACTIVATION_CODES["leaky_relu"]
SOFTMAX = ACTIVATION_CODES["softmax"]
QUADRATIC = COST_CODES["quadratic"]
CROSS_ENTROPY = COST_CODES["cross_entropy"]
NLL = COST_CODES["nll"]

#: A layer product with at least this many multiply-adds (m * n_in * n_out) runs
#: its loop over output rows in parallel; smaller ones run serially on the calling
#: thread, because a parallel region costs about 2 us to launch (measured; see
#: docs/performance.md).  Depends only on the shape, so determinism is kept.
PARALLEL_MIN_MACS = 120_000
#: A layer uses the outer-product panel kernels (``_hid_panel``,
#: ``_grad_update_panel``) for its first ``PANEL * (n_in // PANEL)`` input
#: columns when the mini-batch has at least this many samples (float32,
#: float64); smaller batches and the leftover columns use the row-block kernels.
#: From measurements (docs/performance.md: float64 tiles have half the rows and
#: lose to the row blocks at batch 64, win from 128); depends only on the shapes.
PANEL_MIN_BATCH = {"float32": 16, "float64": 128}
#: Rows per chunk in predict_proba (each chunk is one parallel iteration).
PREDICT_CHUNK = 256


# --- elementwise maths (eq. A1-A5, A1'-A4') ----------------------------------

@_serial
def _activate(z, code, slope, one):
    """(A1-A4) ``f(z)`` for one element; softmax is applied per row elsewhere.
    ``slope`` and ``one`` carry the dtype (a bare ``1`` would promote float32 to
    float64 in Numba)."""
    if code == SIGMOID:
        if z >= 0:  # exp only sees non-positive arguments, as in functions.sigmoid
            return one / (one + math.exp(-z))
        e = math.exp(z)
        return e / (one + e)
    if code == TANH:
        return math.tanh(z)
    if code == RELU:
        return z if z > 0 else one - one
    if code == LEAKY_RELU:
        return z if z > 0 else z * slope
    return z  # softmax: the caller normalises the row


@_serial
def _derivative(a, code, slope, one):
    """(A1'-A4') ``f'(z)`` from ``a = f(z)``."""
    if code == SIGMOID:
        return a * (one - a)
    if code == TANH:
        return one - a * a
    if code == RELU:
        return one if a > 0 else one - one
    return one if a > 0 else slope  # leaky ReLU


@_serial
def _softmax_row(row):
    """(A5) Normalise one row in place: ``exp(z - max) / sum``."""
    top = row[0]
    for j in range(1, row.shape[0]):
        if row[j] > top:
            top = row[j]
    total = row.dtype.type(0)
    for j in range(row.shape[0]):
        row[j] = math.exp(row[j] - top)
        total += row[j]
    for j in range(row.shape[0]):
        row[j] = row[j] / total


# --- (F) forward: 5 x 4 register tiles, bias and activation fused ---------------
#
# A "row block" is 4 consecutive output neurons j0..j0+3 (rows of W).  Blocks at
# the end of a layer have fewer valid rows; their missing rows are replaced by
# copies of the last valid row (clamped index), computed and thrown away, so
# one tile shape serves every layer (one compiled loop, fewer specialisations).

@_serial
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


@_serial
def _fwd_block(A_prev, m, W, b, code, Z, A, j0, keep_z):
    """(F) for the row block ``j0..j0+3`` and the ``m`` samples of ``A_prev``:
    tiles of 5 samples x 4 rows, 20 sums that fast-math ``reassoc`` turns into
    20 vector accumulators (9 loads per 20 FMAs; 5 divides the batch sizes 10,
    and wastes little on others).  Samples past ``m`` in the last
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


@_serial
def _softmax_rows(A, m, code):
    if code == SOFTMAX:
        for i in range(m):
            _softmax_row(A[i])


@_parallel
def _forward_layer(A_prev, m, W, b, code, Z, A, keep_z, par):
    """(F) ``Z = A_prev W^T + b``, ``A = f(Z)`` for the first ``m`` rows.

    equivalent reference: ``Z = A_prev @ W.T + b; A = f(Z)``.
    Row blocks of 4 output neurons; ``par`` runs the blocks in parallel (each
    block owns its columns of Z and A).  Softmax rows are normalised afterwards
    (they need the whole row).
    """
    n_blocks = (W.shape[0] + 3) // 4
    if par:
        for q in prange(n_blocks):
            _fwd_block(A_prev, m, W, b, code, Z, A, 4 * q, keep_z)
    else:
        for q in range(n_blocks):
            _fwd_block(A_prev, m, W, b, code, Z, A, 4 * q, keep_z)
    _softmax_rows(A, m, code)


# --- (D_L) output delta, cost and accuracy -------------------------------------

@_serial
def _output_rows(Z, A, y, order, start, m, code, cost, delta):
    """(D_L) the output delta of ``m`` samples, and (C1-C3) the summed cost and
    the number of correct argmax predictions (measured before the update)."""
    slope = A.dtype.type(LEAKY_SLOPE)
    one = A.dtype.type(1.0)
    zero = A.dtype.type(0.0)
    n = A.shape[1]
    loss = 0.0
    correct = 0
    for i in range(m):
        label = y[order[start + i]]
        best = 0
        for j in range(1, n):
            if A[i, j] > A[i, best]:
                best = j
        if best == label:
            correct += 1
        if cost == NLL:  # logsumexp(z) - z_label, maximum subtracted (C3)
            top = Z[i, 0]
            for j in range(1, n):
                if Z[i, j] > top:
                    top = Z[i, j]
            total = 0.0
            for j in range(n):
                total += math.exp(Z[i, j] - top)
            loss += top + math.log(total) - Z[i, label]
        for j in range(n):
            a = A[i, j]
            t = one if j == label else zero
            if cost == QUADRATIC:  # (C1) and (D_L) BP1
                loss += 0.5 * (a - t) * (a - t)
                delta[i, j] = (a - t) * _derivative(a, code, slope, one)
            else:
                if cost == CROSS_ENTROPY:  # (C2) softplus(z) - y z
                    z = Z[i, j]
                    loss += (z if z > 0 else zero) + math.log1p(math.exp(-abs(z))) - t * z
                delta[i, j] = a - t
    return loss, correct


# --- (D_l) hidden delta: tiles of 4 samples x a block of columns ------------------

@_serial
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


@_serial
def _hid_panel(delta_next, W_next, A, i_lo, i_hi, code, delta, k0):
    """Columns ``k0:k0+PANEL`` of ``(delta_next W_next) * f'(A)`` for rows
    ``i_lo:i_hi``.

    Outer-product form: a tile of 4 samples x PANEL columns (2 in float64,
    ``tile_rows``) is summed in registers (``tile_buffer``) over the ``n_next``
    rows of ``W_next``; per row j (float32), 4 vector loads of
    ``W_next[j, k0:k0+PANEL]`` and 4 broadcasts of ``delta_next[i, j]`` feed 16
    vector FMAs.  No horizontal sums, W read in its
    natural layout.  Samples past ``i_hi`` are clamped copies, not stored.
    """
    dt = W_next.dtype.type
    slope = dt(LEAKY_SLOPE)
    one = dt(1.0)
    n_next = W_next.shape[0]
    k0 = k0 & NONNEG
    rows = tile_rows(W_next)
    acc = carray(tile_buffer(W_next.dtype), (TILE_SIZE,))
    for i in range(i_lo, i_hi, rows):
        for t in range(rows * PANEL):
            acc[t] = dt(0.0)
        for j in range(n_next):
            w = W_next[j]
            for r in range(rows):
                e = delta_next[min(i + r, i_hi - 1), j]
                for c in range(PANEL):
                    acc[r * PANEL + c] += e * w[k0 + c]
        for r in range(min(rows, i_hi - i)):
            out = delta[i + r]
            a = A[i + r]
            for c in range(PANEL):
                out[k0 + c] = acc[r * PANEL + c] * _derivative(a[k0 + c], code, slope, one)


#: Columns per hidden-delta block: a block of W_next (n_next x HID_COLS) should
#: stay in L2 while all sample tiles pass over it.
HID_COLS = 256
#: Samples per hidden-delta panel work item (a multiple of 4), so that layers
#: with one or two panels still split over the threads.
HID_PANEL_ROWS = 64


@_serial
def _hid_item(delta_next, W_next, A, m, code, delta, panels, q, scratch):
    """Work item ``q`` of (D_l): (column panel, chunk of HID_PANEL_ROWS samples)
    for the ``panels`` panels, then (column block, tile of 4 samples) over the
    columns left."""
    n = W_next.shape[1]
    n_chunks = (m + HID_PANEL_ROWS - 1) // HID_PANEL_ROWS
    if q < panels * n_chunks:
        p, ch = q // n_chunks, q % n_chunks
        i_lo = ch * HID_PANEL_ROWS
        _hid_panel(delta_next, W_next, A, i_lo, min(m, i_lo + HID_PANEL_ROWS), code, delta, p * PANEL)
    else:
        n_it = (m + 3) // 4
        kb, t = (q - panels * n_chunks) // n_it, (q - panels * n_chunks) % n_it
        k0 = panels * PANEL + kb * HID_COLS
        _hid_tile(delta_next, W_next, A, m, code, delta, 4 * t, k0, min(n, k0 + HID_COLS), scratch)


@_parallel
def _hidden_layer(delta_next, W_next, A, m, code, delta, par, G, panels):
    """(D_l) ``delta = (delta_next W_next) * f'(A)`` for the first ``m`` rows.

    equivalent reference: ``delta = (delta_next @ W_next) * f'(A)``.
    The work items (``_hid_item``) cover the ``panels`` column panels of
    ``PANEL`` columns (``_hid_panel``), then the columns left in tiles of 4
    samples (``_hid_tile``); each item owns its part of ``delta``.  ``par`` runs
    them in parallel.  ``G`` gives each thread its own scratch rows (for samples
    past ``m``; which one is used changes no number).
    """
    n = W_next.shape[1]
    n_kb = (n - panels * PANEL + HID_COLS - 1) // HID_COLS
    n_items = panels * ((m + HID_PANEL_ROWS - 1) // HID_PANEL_ROWS) + n_kb * ((m + 3) // 4)
    if par:
        for q in prange(n_items):
            _hid_item(delta_next, W_next, A, m, code, delta, panels, q, G[numba.get_thread_id()])
    else:
        for q in range(n_items):
            _hid_item(delta_next, W_next, A, m, code, delta, panels, q, G[0])


# --- (G) + (U) gradient fused with the SGD update --------------------------------

@_serial
def _update_row(w, v, g, inv, lr, mu, nesterov, l2):
    """(U1-U4) for one row: ``g`` holds the *summed* gradient, ``inv`` = 1/m is
    applied here (so ``g`` need not be scaled in a separate pass)."""
    n = w.shape[0]
    if mu == 0:
        if l2 == 0:
            for k in range(n):
                w[k] -= lr * (g[k] * inv)
        else:
            for k in range(n):
                w[k] -= lr * (g[k] * inv + l2 * w[k])
    elif nesterov:
        for k in range(n):
            gk = g[k] * inv + l2 * w[k]
            vk = v[k] * mu - lr * gk
            v[k] = vk
            w[k] += mu * vk - lr * gk
    else:
        for k in range(n):
            gk = g[k] * inv + l2 * w[k]
            vk = v[k] * mu - lr * gk
            v[k] = vk
            w[k] += vk


@_serial
def _bias_update(delta, m, b, vb, lr, mu, nesterov, j):
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
        if nesterov:
            b[j] += mu * vk - lr * gb
        else:
            b[j] += vk


@_serial
def _coefs5(delta, i, m, j, zero):
    """``delta[i + s, j]`` for s = 0..4, zero for samples past ``m`` (padding)."""
    return (delta[i, j], delta[i + 1, j] if i + 1 < m else zero,
            delta[i + 2, j] if i + 2 < m else zero, delta[i + 3, j] if i + 3 < m else zero,
            delta[i + 4, j] if i + 4 < m else zero)


@_serial
def _rows5(A, i, m, klo):
    """Rows ``i..i+4`` of ``A`` from column ``klo``; past ``m`` the last row again
    (its coefficient is 0)."""
    return (A[i, klo:], A[min(i + 1, m - 1), klo:], A[min(i + 2, m - 1), klo:],
            A[min(i + 3, m - 1), klo:], A[min(i + 4, m - 1), klo:])


@_serial
def _grad_update_panel(delta, A_prev, m, W, vW, j0, nj, k0, inv, lr, mu, l2, c1, c2):
    """(G)+(U) for rows ``j0..j0+nj-1`` (``nj <= tile_rows``: 4 in float32, 2 in
    float64) and columns ``k0:k0+PANEL``.

    Outer-product form: the 4 x PANEL gradient tile ``sum_i delta[i, j] A_prev[i, k]``
    stays in registers (``tile_buffer``) for the whole mini-batch (per sample, 4
    vector loads of ``A_prev[i, k0:k0+PANEL]`` and 4 broadcasts of ``delta[i, j]``
    feed 16 vector FMAs), then (U) is applied straight from the registers, so the
    gradient is never stored.  Rows past ``nj`` are clamped copies, not stored.
    ``c1``/``c2`` select momentum or Nesterov as in ``_grad_update_block``.
    """
    dt = W.dtype.type
    k0 = k0 & NONNEG
    acc = carray(tile_buffer(W.dtype), (TILE_SIZE,))
    for t in range(tile_rows(W) * PANEL):
        acc[t] = dt(0.0)
    for i in range(m):
        a = A_prev[i]
        d = delta[i]
        for r in range(tile_rows(W)):
            e = d[j0 + min(r, nj - 1)]
            for c in range(PANEL):
                acc[r * PANEL + c] += e * a[k0 + c]
    for r in range(nj):
        w = W[j0 + r]
        v = vW[j0 + r]
        if mu == 0:  # (U1)-(U2)
            for c in range(PANEL):
                w[k0 + c] -= lr * (acc[r * PANEL + c] * inv + l2 * w[k0 + c])
        else:  # (U2)-(U4)
            for c in range(PANEL):
                g = acc[r * PANEL + c] * inv + l2 * w[k0 + c]
                u = v[k0 + c] * mu - lr * g
                v[k0 + c] = u
                w[k0 + c] += c1 * u + c2 * g


@_serial
def _grad_update_block(delta, A_prev, m, W, b, vW, vb, hyper, nesterov, j0, G, panels):
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
    # (U3) momentum: w += v;  (U4) Nesterov: w += mu v - lr g
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
            _update_row(W[j0 + r, klo:], vW[j0 + r, klo:], G[r, klo:n], inv, lr, mu, nesterov, l2)
    for r in range(nj):
        _bias_update(delta, m, b, vb, lr, mu, nesterov, j0 + r)


@_serial
def _grad_update_columns(delta, A_prev, m, W, vW, hyper, nesterov, k0, j_lo, j_hi):
    """(G)+(U) of columns ``k0:k0+PANEL`` for rows ``j_lo:j_hi`` of W,
    ``tile_rows`` rows at a time (``_grad_update_panel``).  Running down the rows
    for one panel keeps that panel of ``A_prev`` (m x PANEL) in L1/L2 while
    ``delta`` streams past; the other order re-read all of ``A_prev`` for every 4
    rows."""
    dt = W.dtype.type
    lr, mu, l2 = dt(hyper[0]), dt(hyper[1]), dt(hyper[2])
    inv = dt(1.0) / dt(m)
    c1 = mu if nesterov else dt(1.0)
    c2 = -lr if nesterov else dt(0.0)
    rows = tile_rows(W)
    for j0 in range(j_lo, j_hi, rows):
        _grad_update_panel(delta, A_prev, m, W, vW, j0, min(rows, j_hi - j0), k0, inv, lr, mu, l2, c1, c2)


#: Rows of W per panel work item (a multiple of 4): with few panels (64 <= n_in
#: < 128 gives one) the items still split over the threads.
PANEL_ITEM_ROWS = 64


@_serial
def _update_item(delta, A_prev, m, W, b, vW, vb, hyper, nesterov, G, panels, q, n_blocks):
    """Work item ``q`` of a layer's (G)+(U).  Without panels: row block ``q``.
    With panels: column panel ``p`` of the rows of group ``g`` (PANEL_ITEM_ROWS
    rows), plus the leftover columns and the biases of the row blocks of that
    group whose index is ``p`` modulo ``panels`` (so the small work is spread too
    and every element has exactly one owner)."""
    if panels == 0:
        _grad_update_block(delta, A_prev, m, W, b, vW, vb, hyper, nesterov, 4 * q, G, panels)
    else:
        n_out = W.shape[0]
        n_groups = (n_out + PANEL_ITEM_ROWS - 1) // PANEL_ITEM_ROWS
        p, g = q // n_groups, q % n_groups
        j_lo = g * PANEL_ITEM_ROWS
        j_hi = min(n_out, j_lo + PANEL_ITEM_ROWS)
        _grad_update_columns(delta, A_prev, m, W, vW, hyper, nesterov, p * PANEL, j_lo, j_hi)
        for jb in range(j_lo // 4, (j_hi + 3) // 4):
            if jb % panels == p:
                _grad_update_block(delta, A_prev, m, W, b, vW, vb, hyper, nesterov, 4 * jb, G, panels)


@_parallel
def _update_layer(delta, A_prev, m, W, b, vW, vb, hyper, nesterov, G, par, panels):
    """(G) ``dW = delta^T A_prev / m``, ``db = mean(delta)`` and (U) applied tile
    by tile, so no ``dW`` is ever stored (a tile's gradient lives in registers or
    in a small per-thread buffer in L1).

    equivalent reference: ``gradients(delta, A_prev)`` then ``sgd_update(...)``.
    The work items (``_update_item``) are row blocks, or (column panel, group of
    rows) when ``panels > 0``; ``par`` runs them in parallel (each element of W belongs to
    one item; the buffer is picked by thread id, which does not change the
    numbers).
    """
    n_blocks = (W.shape[0] + 3) // 4
    n_groups = (W.shape[0] + PANEL_ITEM_ROWS - 1) // PANEL_ITEM_ROWS
    n_items = panels * n_groups if panels > 0 else n_blocks
    if par:
        for q in prange(n_items):
            _update_item(delta, A_prev, m, W, b, vW, vb, hyper, nesterov, G[numba.get_thread_id()],
                         panels, q, n_blocks)
    else:
        for q in range(n_items):
            _update_item(delta, A_prev, m, W, b, vW, vb, hyper, nesterov, G[0], panels, q, n_blocks)


@_parallel
def _update_forward_first(delta, A_prev, m, W, b, vW, vb, hyper, nesterov, G, par, panels,
                          A_next, m_next, code, Z, A, keep_z, X, order, start2, scale, A_gather):
    """The first layer's (G)+(U) for this batch fused with its (F) for the next
    batch, in one parallel region: a block of 4 rows of W is updated and then,
    while it is still in L1, multiplied with the next batch's inputs ``A_next``
    (``m_next`` rows; 0 at the end of the epoch).  One pass over W instead of
    two and one parallel region per batch instead of two.  The same region also
    gathers the inputs of the batch after next (X) into ``A_gather``: iteration
    ``q`` copies rows ``q, q + n_blocks, ...`` (nothing in this region reads them).
    With ``panels > 0`` the update runs first as its own region
    (``_update_layer``), then the forward and the gather.

    equivalent reference: ``sgd_update(W, ...)`` then ``dense_forward(A_next, W, b)``.
    """
    n_blocks = (W.shape[0] + 3) // 4
    m2 = A_gather.shape[0]
    fused = panels == 0
    if not fused:  # panels run down all rows, so the forward has to wait
        _update_layer(delta, A_prev, m, W, b, vW, vb, hyper, nesterov, G, par, panels)
    if par:
        for q in prange(n_blocks):
            if fused:
                _grad_update_block(delta, A_prev, m, W, b, vW, vb, hyper, nesterov, 4 * q,
                                   G[numba.get_thread_id()], panels)
            if m_next > 0:
                _fwd_block(A_next, m_next, W, b, code, Z, A, 4 * q, keep_z)
            for i in range(q, m2, n_blocks):
                _gather_row(X, order[start2 + i], scale, A_gather[i])
    else:
        for q in range(n_blocks):
            if fused:
                _grad_update_block(delta, A_prev, m, W, b, vW, vb, hyper, nesterov, 4 * q, G[0], panels)
            if m_next > 0:
                _fwd_block(A_next, m_next, W, b, code, Z, A, 4 * q, keep_z)
        for i in range(m2):
            _gather_row(X, order[start2 + i], scale, A_gather[i])
    if m_next > 0:
        _softmax_rows(A, m_next, code)


# --- (X) input rows: gathered, converted and scaled once per mini-batch ----------

@_serial
def _gather_row(X, r, scale, dst):
    """(X) ``dst = X[r] * scale`` in the parameters' dtype (uint8 pixels are
    divided by 255 here, so the training set stays uint8)."""
    dt = dst.dtype.type
    s = dt(scale)
    src = X[r]
    for k in range(dst.shape[0]):
        dst[k] = dt(src[k]) * s


@_serial
def _gather_input(X, order, start, m, scale, A0):
    """(X) ``A0 = X[order[start:start+m]] * scale``."""
    for i in range(m):
        _gather_row(X, order[start + i], scale, A0[i])


# --- a whole epoch in one compiled call --------------------------------------------

@_serial
def _layer_views(params, velocity, offsets, sizes, l):
    n_in, n_out = sizes[l], sizes[l + 1]
    o = offsets[l]
    W = params[o:o + n_out * n_in].reshape((n_out, n_in))
    b = params[o + n_out * n_in:o + (n_in + 1) * n_out]
    vW = velocity[o:o + n_out * n_in].reshape((n_out, n_in))
    vb = velocity[o + n_out * n_in:o + (n_in + 1) * n_out]
    return W, b, vW, vb


@_serial
def _act_view(buf, a_off, sizes, l, m):
    return buf[a_off[l]:a_off[l] + m * sizes[l]].reshape((m, sizes[l]))


@_parallel
def _train_epoch(params, velocity, offsets, sizes, acts, cost, hyper, nesterov, X, y, order,
                 batch_size, scale, par, panels, n_threads):
    """All mini-batches of one epoch: for each batch (F) forward through every
    layer, (C)/(D_L) at the output, then from the last layer back (D_l) with the
    old weights followed by the fused (G)+(U) update of that layer.  The first
    layer's update is fused with its forward pass for the *next* batch
    (``_update_forward_first``), so the first layer's forward for batch t+1
    happens at the end of batch t.

    ``hyper = (lr, momentum, l2)``; ``par[l]`` says whether layer l's loops run in
    parallel, ``panels[l]`` how many input-column panels use the panel kernels
    (both decided from the shapes by the wrapper).  Work buffers are
    allocated once here, outside the batch loop.
    """
    L = sizes.shape[0] - 1
    dt = params.dtype
    # activations A_0..A_L and deltas delta_1..delta_L, one flat buffer each;
    # A_0 twice (this batch and the next)
    a_off = np.zeros(L + 2, np.int64)
    for l in range(L + 1):
        a_off[l + 1] = a_off[l] + batch_size * sizes[l]
    A_buf = np.zeros(a_off[L + 1], dt)
    D_buf = np.zeros(a_off[L + 1], dt)
    # inputs (X) of batches t, t + 1 and t + 2 in rotation (t + 2 is gathered
    # inside batch t's last parallel region)
    XB = np.zeros((3, batch_size * sizes[0]), dt)
    Z_L = np.zeros((batch_size, sizes[L]), dt)
    G = np.zeros((n_threads, 4, sizes.max()), dt)
    n = order.shape[0]
    loss_sum = 0.0
    n_correct = 0
    # (X) for batches 0 and 1, (F) of the first layer for batch 0; later batches
    # get theirs at the end of the batch before
    m = min(batch_size, n)
    _gather_input(X, order, 0, m, scale, XB[0, :m * sizes[0]].reshape((m, sizes[0])))
    if n > batch_size:
        m1 = min(batch_size, n - batch_size)
        _gather_input(X, order, batch_size, m1, scale, XB[1, :m1 * sizes[0]].reshape((m1, sizes[0])))
    W, b, vW, vb = _layer_views(params, velocity, offsets, sizes, 0)
    _forward_layer(XB[0, :m * sizes[0]].reshape((m, sizes[0])), m, W, b, acts[0], Z_L,
                   _act_view(A_buf, a_off, sizes, 1, m), L == 1, par[0])
    t = 0
    for start in range(0, n, batch_size):
        m = min(batch_size, n - start)
        for l in range(1, L):
            W, b, vW, vb = _layer_views(params, velocity, offsets, sizes, l)
            _forward_layer(_act_view(A_buf, a_off, sizes, l, m), m, W, b, acts[l], Z_L,
                           _act_view(A_buf, a_off, sizes, l + 1, m), l == L - 1, par[l])
        delta = _act_view(D_buf, a_off, sizes, L, m)
        loss, correct = _output_rows(Z_L, _act_view(A_buf, a_off, sizes, L, m), y, order, start, m,
                                     acts[L - 1], cost, delta)
        loss_sum += loss
        n_correct += correct
        for l in range(L - 1, 0, -1):  # from the output layer back, all but the first
            W, b, vW, vb = _layer_views(params, velocity, offsets, sizes, l)
            A_prev = _act_view(A_buf, a_off, sizes, l, m)
            # (D_l) with the weights before this batch's update
            delta_prev = _act_view(D_buf, a_off, sizes, l, m)
            _hidden_layer(delta, W, A_prev, m, acts[l - 1], delta_prev, par[l], G, panels[l])
            _update_layer(delta, A_prev, m, W, b, vW, vb, hyper, nesterov, G, par[l], panels[l])
            delta = delta_prev
        # first layer: (G)+(U) for batch t, (F) for batch t + 1, (X) for batch t + 2
        s1, s2 = start + batch_size, start + 2 * batch_size
        m1 = min(batch_size, n - s1) if s1 < n else 0
        m2 = min(batch_size, n - s2) if s2 < n else 0
        W, b, vW, vb = _layer_views(params, velocity, offsets, sizes, 0)
        _update_forward_first(
            delta, XB[t % 3, :m * sizes[0]].reshape((m, sizes[0])), m, W, b, vW, vb, hyper,
            nesterov, G, par[0], panels[0], XB[(t + 1) % 3, :m1 * sizes[0]].reshape((m1, sizes[0])), m1,
            acts[0], Z_L, _act_view(A_buf, a_off, sizes, 1, m1), L == 1, X, order, s2, scale,
            XB[(t + 2) % 3, :m2 * sizes[0]].reshape((m2, sizes[0])))
        t += 1
    return loss_sum, n_correct


# --- predict ----------------------------------------------------------------------

@_parallel
def _predict(params, offsets, sizes, acts, X, scale, out):
    """(F) through every layer for all rows of X, in chunks of PREDICT_CHUNK rows;
    the chunks run in parallel, each with its own buffers and its own rows of
    ``out`` (so the numbers do not depend on the thread count)."""
    L = sizes.shape[0] - 1
    n = X.shape[0]
    n_chunks = (n + PREDICT_CHUNK - 1) // PREDICT_CHUNK
    width = sizes.max()
    # never keep Z; a runtime bool rather than the literal False, which would
    # compile a second copy of _fwd_block (see "Compile time" in the docs)
    no_z = L < 0
    for c in prange(n_chunks):
        start = c * PREDICT_CHUNK
        m = min(PREDICT_CHUNK, n - start)
        cur = np.empty(m * width, params.dtype)
        nxt = np.empty(m * width, params.dtype)
        A0 = cur[:m * sizes[0]].reshape((m, sizes[0]))
        _gather_input(X, np.arange(start, start + m), 0, m, scale, A0)
        for l in range(L):
            W, b, _, _ = _layer_views(params, params, offsets, sizes, l)
            A_prev = cur[:m * sizes[l]].reshape((m, sizes[l]))
            A_new = nxt[:m * sizes[l + 1]].reshape((m, sizes[l + 1]))
            for q in range((sizes[l + 1] + 3) // 4):
                _fwd_block(A_prev, m, W, b, acts[l], A_new, A_new, 4 * q, no_z)
            _softmax_rows(A_new, m, acts[l])
            cur, nxt = nxt, cur
        out[start:start + m] = cur[:m * sizes[L]].reshape((m, sizes[L]))
    return out


# --- public wrappers (mirrors of fastmlp.reference) ----------------------------------

def _thread_buffers(n, dtype):
    """One ``(4, n)`` work buffer per thread (see ``_grad_update_block``)."""
    return np.zeros((numba.config.NUMBA_NUM_THREADS, 4, max(n, 1)), dtype)


def _codes(net):
    return np.array([ACTIVATION_CODES[a] for a in net.activations], dtype=np.int64)


def _parallel_flags(sizes, batch_size):
    """Per layer: run its loops in parallel?  From the multiply-adds per batch."""
    return np.array([batch_size * n_in * n_out >= PARALLEL_MIN_MACS
                     for n_in, n_out in zip(sizes[:-1], sizes[1:])], dtype=np.bool_)


def _panels(n_in, batch_size, dtype):
    """How many whole ``PANEL``-column panels of a layer's ``n_in`` inputs go to
    the panel kernels (none for small mini-batches, see ``PANEL_MIN_BATCH``)."""
    return n_in // PANEL if batch_size >= PANEL_MIN_BATCH[np.dtype(dtype).name] else 0


def _panel_counts(sizes, batch_size, dtype):
    """``_panels`` for every layer."""
    return np.array([_panels(n_in, batch_size, dtype) for n_in in sizes[:-1]], dtype=np.int64)


def _check_input(X, dtype):
    X = np.ascontiguousarray(X)
    if X.dtype != np.uint8 and X.dtype != dtype:
        X = X.astype(dtype)
    return X, (1.0 / 255.0 if X.dtype == np.uint8 else 1.0)


def train_batches(params, velocity, net, sgd, X, y, order, batch_size):
    """Train on ``X[order]`` in consecutive mini-batches, updating ``params`` and
    ``velocity`` in place; returns ``(loss_sum, n_correct)`` measured on each batch
    before its update.  All batches run inside one compiled call.

    Implements (X), (F), (C), (D_L), (D_l), (G), (U1)-(U4) of docs/math.md.
    Mirror: ``fastmlp.reference.train_batches``.
    """
    sizes = np.asarray(net.sizes, dtype=np.int64)
    X, scale = _check_input(X, params.dtype)
    y = np.ascontiguousarray(y, dtype=np.uint8)
    if not y.flags.writeable:  # a read-only y would compile a second _train_epoch
        y = y.copy()
    order = np.ascontiguousarray(order, dtype=np.int64)
    hyper = np.array([sgd.lr, sgd.momentum, sgd.l2], dtype=np.float64)
    batch_size = int(min(batch_size, max(len(order), 1)))
    if len(order) == 0:
        return 0.0, 0
    loss_sum, n_correct = _train_epoch(
        params, velocity, weight_offsets(net.sizes), sizes, _codes(net), COST_CODES[net.cost],
        hyper, bool(sgd.nesterov), X, y, order, batch_size, scale,
        _parallel_flags(net.sizes, batch_size), _panel_counts(net.sizes, batch_size, params.dtype),
        numba.config.NUMBA_NUM_THREADS)
    return float(loss_sum), int(n_correct)


def predict_proba(params, net, X):
    """Output activations ``A_L`` for every row of ``X``, ``(n, n_L)``.
    Implements (X), (F).  Mirror: ``fastmlp.reference.predict_proba``."""
    X, scale = _check_input(X, params.dtype)
    out = np.empty((len(X), net.sizes[-1]), dtype=params.dtype)
    if len(X):
        _predict(params, weight_offsets(net.sizes), np.asarray(net.sizes, dtype=np.int64),
                 _codes(net), X, scale, out)
    return out


def dense_forward(A_prev, W, b, activation):
    """(F) One layer's forward pass: ``Z = A_prev W^T + b``, ``A = f(Z)``; returns
    ``(Z, A)``, both ``(m, n_out)``.  Mirror: ``fastmlp.reference.dense_forward``."""
    A_prev = np.ascontiguousarray(A_prev, dtype=W.dtype)
    W, b = np.ascontiguousarray(W), np.ascontiguousarray(b)
    m, n_out = A_prev.shape[0], W.shape[0]
    Z = np.empty((m, n_out), W.dtype)
    A = np.empty((m, n_out), W.dtype)
    _forward_layer(A_prev, m, W, b, ACTIVATION_CODES[activation], Z, A, True,
                   bool(m * W.shape[1] * n_out >= PARALLEL_MIN_MACS))
    return Z, A


@_serial
def _output_delta(A_L, Y, code, cost, delta):
    slope = A_L.dtype.type(LEAKY_SLOPE)
    one = A_L.dtype.type(1.0)
    for i in range(A_L.shape[0]):
        for j in range(A_L.shape[1]):
            diff = A_L[i, j] - Y[i, j]
            if cost == QUADRATIC:
                diff *= _derivative(A_L[i, j], code, slope, one)
            delta[i, j] = diff


def output_delta(A_L, Y, activation, cost):
    """(D_L) ``(A_L - Y) * f'(Z_L)`` for the quadratic cost, ``A_L - Y`` for
    sigmoid + cross-entropy and softmax + log-likelihood.
    Mirror: ``fastmlp.reference.output_delta``."""
    A_L = np.ascontiguousarray(A_L)
    Y = np.ascontiguousarray(Y, dtype=A_L.dtype)
    delta = np.empty_like(A_L)
    _output_delta(A_L, Y, ACTIVATION_CODES[activation], COST_CODES[cost], delta)
    return delta


def hidden_delta(delta_next, W_next, A, activation):
    """(D_l) ``(delta_next W_next) * f'(A)``.  Mirror: ``fastmlp.reference.hidden_delta``."""
    delta_next = np.ascontiguousarray(delta_next)
    W_next, A = np.ascontiguousarray(W_next), np.ascontiguousarray(A)
    m = A.shape[0]
    delta = np.empty_like(A)
    panels = _panels(A.shape[1], m, A.dtype)
    _hidden_layer(delta_next, W_next, A, m, ACTIVATION_CODES[activation], delta,
                  bool(m * W_next.size >= PARALLEL_MIN_MACS), _thread_buffers(A.shape[1], A.dtype),
                  panels)
    return delta


@_serial
def _grad_rows(delta, A_prev, m, j0, nj, G):
    """``G[r] = sum_i delta[i, j0 + r] A_prev[i]`` for the valid rows of a block
    (for ``gradients``; training uses the fused ``_grad_update_block``)."""
    n = A_prev.shape[1]
    for r in range(nj):
        g = G[r, :n]
        for k in range(n):
            g[k] = delta.dtype.type(0)
        for i in range(m):
            e = delta[i, j0 + r]
            a = A_prev[i]
            for k in range(n):
                g[k] += e * a[k]


@_parallel
def _gradients(delta, A_prev, dW, db, G):
    m = delta.shape[0]
    n_out = dW.shape[0]
    dt = delta.dtype.type
    for q in prange((n_out + 3) // 4):
        j0 = 4 * q
        nj = min(4, n_out - j0)
        g = G[numba.get_thread_id()]
        _grad_rows(delta, A_prev, m, j0, nj, g)
        for r in range(nj):
            for k in range(dW.shape[1]):
                dW[j0 + r, k] = g[r, k] / dt(m)
            s = dt(0)
            for i in range(m):
                s += delta[i, j0 + r]
            db[j0 + r] = s / dt(m)


def gradients(delta, A_prev):
    """(G) ``dW = delta^T A_prev / m``, ``db = mean(delta)``.
    Mirror: ``fastmlp.reference.gradients``."""
    delta, A_prev = np.ascontiguousarray(delta), np.ascontiguousarray(A_prev)
    dW = np.empty((delta.shape[1], A_prev.shape[1]), delta.dtype)
    db = np.empty(delta.shape[1], delta.dtype)
    _gradients(delta, A_prev, dW, db, _thread_buffers(A_prev.shape[1], delta.dtype))
    return dW, db


@_serial
def _sgd_update(W, b, dW, db, vW, vb, lr, mu, nesterov, l2):
    dt = W.dtype.type
    lr_, mu_, l2_ = dt(lr), dt(mu), dt(l2)
    one = dt(1.0)
    for j in range(W.shape[0]):
        _update_row(W[j], vW[j], dW[j], one, lr_, mu_, nesterov, l2_)
    _update_row(b, vb, db, one, lr_, mu_, nesterov, dt(0.0))


def sgd_update(W, b, dW, db, vW, vb, sgd):
    """(U1)-(U4) update one layer in place (L2 on the weights only).
    Mirror: ``fastmlp.reference.sgd_update``."""
    _sgd_update(W, b, dW, db, vW, vb, sgd.lr, sgd.momentum, bool(sgd.nesterov), sgd.l2)


# Damaged cache files must not crash a run (see fastmlp/_numba_cache.py).
for _kernel in list(globals().values()):
    if isinstance(_kernel, numba.core.dispatcher.Dispatcher):
        _numba_cache.protect(_kernel)
del _kernel
