"""The Numba backend: the mathematics of ``fastmlp.reference`` as compiled loops.

Every public function here has a namesake with the same arguments in
``fastmlp.reference`` and computes the same numbers (up to rounding; the
equivalence tests in ``tests/test_kernels.py`` check it).  Each public function is
a thin wrapper that converts names to integer codes, checks shapes and allocates
outputs, then calls one private ``@njit`` loop.  Equation labels refer to
``docs/math.md``; ``docs/performance.md`` explains, with measurements, why each
kernel has the shape it has.

Layout (as in the reference): activations and deltas are ``(m, n)`` row-major,
one row per sample; ``W`` is ``(n_out, n_in)`` so row ``j`` (the weights into
neuron ``j``) is contiguous.  All parameters live in one flat buffer, layer after
layer (``fastmlp.network``).

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
from fastmlp.functions import ACTIVATION_CODES, COST_CODES, LEAKY_SLOPE
from fastmlp.network import weight_offsets

import numba  # noqa: E402  (after _numba_cache on purpose)
from numba import njit, prange  # noqa: E402

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


# --- (F) forward: register-tiled dot products, bias and activation fused -------

@_serial
def _dot_4x2(a0, a1, a2, a3, w0, w1):
    """Eight dot products of 4 input rows with 2 weight rows: each weight element
    is loaded once and used 4 times, each input element used twice.  With
    fast-math reassociation LLVM turns the 8 sums into vector accumulators."""
    s00 = s10 = s20 = s30 = s01 = s11 = s21 = s31 = w0.dtype.type(0)
    for k in range(w0.shape[0]):
        u = w0[k]
        v = w1[k]
        x0 = a0[k]
        x1 = a1[k]
        x2 = a2[k]
        x3 = a3[k]
        s00 += x0 * u
        s10 += x1 * u
        s20 += x2 * u
        s30 += x3 * u
        s01 += x0 * v
        s11 += x1 * v
        s21 += x2 * v
        s31 += x3 * v
    return s00, s10, s20, s30, s01, s11, s21, s31


@_serial
def _dot_4x1(a0, a1, a2, a3, w0):
    s0 = s1 = s2 = s3 = w0.dtype.type(0)
    for k in range(w0.shape[0]):
        u = w0[k]
        s0 += a0[k] * u
        s1 += a1[k] * u
        s2 += a2[k] * u
        s3 += a3[k] * u
    return s0, s1, s2, s3


@_serial
def _dot_1x2(a0, w0, w1):
    s0 = s1 = w0.dtype.type(0)
    for k in range(w0.shape[0]):
        x = a0[k]
        s0 += x * w0[k]
        s1 += x * w1[k]
    return s0, s1


@_serial
def _dot_1x1(a0, w0):
    s = w0.dtype.type(0)
    for k in range(w0.shape[0]):
        s += a0[k] * w0[k]
    return s


@_serial
def _store(Z, A, i, j, s, code, slope, one, keep_z):
    if keep_z:
        Z[i, j] = s
    A[i, j] = _activate(s, code, slope, one)


@_serial
def _forward_pair(A_prev, m, W, b, code, slope, one, Z, A, j, two, keep_z):
    """Rows ``j`` (and ``j + 1`` if ``two``) of (F) for the ``m`` samples."""
    i = 0
    if two:
        w0, w1 = W[j], W[j + 1]
        b0, b1 = b[j], b[j + 1]
        while i + 4 <= m:
            s00, s10, s20, s30, s01, s11, s21, s31 = _dot_4x2(
                A_prev[i], A_prev[i + 1], A_prev[i + 2], A_prev[i + 3], w0, w1)
            _store(Z, A, i, j, s00 + b0, code, slope, one, keep_z)
            _store(Z, A, i + 1, j, s10 + b0, code, slope, one, keep_z)
            _store(Z, A, i + 2, j, s20 + b0, code, slope, one, keep_z)
            _store(Z, A, i + 3, j, s30 + b0, code, slope, one, keep_z)
            _store(Z, A, i, j + 1, s01 + b1, code, slope, one, keep_z)
            _store(Z, A, i + 1, j + 1, s11 + b1, code, slope, one, keep_z)
            _store(Z, A, i + 2, j + 1, s21 + b1, code, slope, one, keep_z)
            _store(Z, A, i + 3, j + 1, s31 + b1, code, slope, one, keep_z)
            i += 4
        while i < m:
            s0, s1 = _dot_1x2(A_prev[i], w0, w1)
            _store(Z, A, i, j, s0 + b0, code, slope, one, keep_z)
            _store(Z, A, i, j + 1, s1 + b1, code, slope, one, keep_z)
            i += 1
    else:
        w0 = W[j]
        b0 = b[j]
        while i + 4 <= m:
            s0, s1, s2, s3 = _dot_4x1(A_prev[i], A_prev[i + 1], A_prev[i + 2], A_prev[i + 3], w0)
            _store(Z, A, i, j, s0 + b0, code, slope, one, keep_z)
            _store(Z, A, i + 1, j, s1 + b0, code, slope, one, keep_z)
            _store(Z, A, i + 2, j, s2 + b0, code, slope, one, keep_z)
            _store(Z, A, i + 3, j, s3 + b0, code, slope, one, keep_z)
            i += 4
        while i < m:
            _store(Z, A, i, j, _dot_1x1(A_prev[i], w0) + b0, code, slope, one, keep_z)
            i += 1


@_parallel
def _forward_layer(A_prev, m, W, b, code, Z, A, keep_z, par):
    """(F) ``Z = A_prev W^T + b``, ``A = f(Z)`` for the first ``m`` rows.

    equivalent reference: ``Z = A_prev @ W.T + b; A = f(Z)``.
    Output rows are taken in fixed pairs ``(2p, 2p + 1)``; ``par`` runs the pairs
    in parallel (each pair owns its columns of Z and A).  Softmax rows are
    normalised afterwards (they need the whole row).
    """
    slope = W.dtype.type(LEAKY_SLOPE)
    one = W.dtype.type(1.0)
    n_out = W.shape[0]
    n_pairs = (n_out + 1) // 2
    if par:
        for p in prange(n_pairs):
            _forward_pair(A_prev, m, W, b, code, slope, one, Z, A, 2 * p, 2 * p + 1 < n_out, keep_z)
    else:
        for p in range(n_pairs):
            _forward_pair(A_prev, m, W, b, code, slope, one, Z, A, 2 * p, 2 * p + 1 < n_out, keep_z)
    _softmax_rows(A, m, code)


@_serial
def _forward_serial(A_prev, m, W, b, code, Z, A, keep_z):
    """(F) as ``_forward_layer`` on the calling thread (for use inside prange)."""
    slope = W.dtype.type(LEAKY_SLOPE)
    one = W.dtype.type(1.0)
    n_out = W.shape[0]
    for p in range((n_out + 1) // 2):
        _forward_pair(A_prev, m, W, b, code, slope, one, Z, A, 2 * p, 2 * p + 1 < n_out, keep_z)
    _softmax_rows(A, m, code)


@_serial
def _softmax_rows(A, m, code):
    if code == SOFTMAX:
        for i in range(m):
            _softmax_row(A[i])


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


# --- (D_l) hidden delta: rows of W combined, two samples at a time -------------

@_serial
def _hidden_pair(delta_next, W_next, A, code, slope, one, delta, i, two):
    """Rows ``i`` (and ``i + 1``) of ``(delta_next W_next) * f'(A)``."""
    n_next, n = W_next.shape
    out0 = delta[i]
    out1 = delta[i + 1] if two else delta[i]
    out0[:] = 0
    if two:
        out1[:] = 0
    j = 0
    while j + 2 <= n_next:
        w0, w1 = W_next[j], W_next[j + 1]
        d00, d01 = delta_next[i, j], delta_next[i, j + 1]
        if two:
            d10, d11 = delta_next[i + 1, j], delta_next[i + 1, j + 1]
            for k in range(n):
                u = w0[k]
                v = w1[k]
                out0[k] += d00 * u + d01 * v
                out1[k] += d10 * u + d11 * v
        else:
            for k in range(n):
                out0[k] += d00 * w0[k] + d01 * w1[k]
        j += 2
    if j < n_next:
        w0 = W_next[j]
        d00 = delta_next[i, j]
        d10 = delta_next[i + 1, j] if two else d00
        for k in range(n):
            out0[k] += d00 * w0[k]
        if two:
            for k in range(n):
                out1[k] += d10 * w0[k]
    a0 = A[i]
    for k in range(n):
        out0[k] *= _derivative(a0[k], code, slope, one)
    if two:
        a1 = A[i + 1]
        for k in range(n):
            out1[k] *= _derivative(a1[k], code, slope, one)


@_parallel
def _hidden_layer(delta_next, W_next, A, m, code, delta, par):
    """(D_l) ``delta = (delta_next W_next) * f'(A)`` for the first ``m`` rows.

    equivalent reference: ``delta = (delta_next @ W_next) * f'(A)``.
    Samples are taken in fixed pairs; ``par`` runs the pairs in parallel (each
    pair owns its rows of ``delta``).
    """
    slope = W_next.dtype.type(LEAKY_SLOPE)
    one = W_next.dtype.type(1.0)
    n_pairs = (m + 1) // 2
    if par:
        for p in prange(n_pairs):
            _hidden_pair(delta_next, W_next, A, code, slope, one, delta, 2 * p, 2 * p + 1 < m)
    else:
        for p in range(n_pairs):
            _hidden_pair(delta_next, W_next, A, code, slope, one, delta, 2 * p, 2 * p + 1 < m)


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
def _grad_row_axpy(delta, A_prev, m, j, g):
    """``g = sum_i delta[i, j] A_prev[i]`` (row j of ``delta^T A_prev``), four
    samples at a time so each element of ``g`` is loaded and stored m/4 times."""
    n = g.shape[0]
    g[:] = 0
    i = 0
    while i + 4 <= m:
        d0, d1, d2, d3 = delta[i, j], delta[i + 1, j], delta[i + 2, j], delta[i + 3, j]
        a0, a1, a2, a3 = A_prev[i], A_prev[i + 1], A_prev[i + 2], A_prev[i + 3]
        for k in range(n):
            g[k] += d0 * a0[k] + d1 * a1[k] + d2 * a2[k] + d3 * a3[k]
        i += 4
    while i < m:
        d0 = delta[i, j]
        a0 = A_prev[i]
        for k in range(n):
            g[k] += d0 * a0[k]
        i += 1


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


@_parallel
def _update_layer(delta, A_prev, m, W, b, vW, vb, lr, mu, nesterov, l2, G, par):
    """(G) ``dW = delta^T A_prev / m``, ``db = mean(delta)`` and (U) applied row by
    row, so no ``dW`` is ever stored: each row's gradient is built in a small
    row buffer (in L1), then that row of W is updated in the same pass.

    equivalent reference: ``gradients(delta, A_prev)`` then ``sgd_update(...)``.
    ``par`` runs the rows in parallel (each row belongs to one iteration; the
    buffer row is picked by thread id, which does not change the numbers).
    """
    n_out = W.shape[0]
    dt = W.dtype.type
    lr_, mu_, l2_ = dt(lr), dt(mu), dt(l2)
    inv = dt(1.0) / dt(m)
    if par:
        for j in prange(n_out):
            g = G[numba.get_thread_id()]
            _grad_row_axpy(delta, A_prev, m, j, g)
            _update_row(W[j], vW[j], g, inv, lr_, mu_, nesterov, l2_)
            _bias_update(delta, m, b, vb, lr_, mu_, nesterov, j)
    else:
        g = G[0]
        for j in range(n_out):
            _grad_row_axpy(delta, A_prev, m, j, g)
            _update_row(W[j], vW[j], g, inv, lr_, mu_, nesterov, l2_)
            _bias_update(delta, m, b, vb, lr_, mu_, nesterov, j)


# --- (X) input rows: gathered, converted and scaled once per mini-batch ----------

@_serial
def _gather_input(X, order, start, m, scale, A0):
    """(X) ``A0 = X[order[start:start+m]] * scale`` in the parameters' dtype (uint8
    pixels are divided by 255 here, so the training set stays uint8)."""
    dt = A0.dtype.type
    s = dt(scale)
    for i in range(m):
        src = X[order[start + i]]
        dst = A0[i]
        for k in range(dst.shape[0]):
            dst[k] = dt(src[k]) * s


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


@_parallel
def _train_epoch(params, velocity, offsets, sizes, acts, cost, hyper, nesterov, X, y, order,
                 batch_size, scale, par, n_threads):
    """All mini-batches of one epoch: for each batch (F) forward through every
    layer, (C)/(D_L) at the output, then from the last layer back (D_l) with the
    old weights followed by the fused (G)+(U) update of that layer.

    ``hyper = (lr, momentum, l2)``; ``par[l]`` says whether layer l's loops run in
    parallel (decided from the shapes by the wrapper).  Work buffers are
    allocated once here, outside the batch loop.
    """
    L = sizes.shape[0] - 1
    dt = params.dtype
    lr, mu, l2 = hyper[0], hyper[1], hyper[2]
    # activations A_0..A_L and deltas delta_1..delta_L, one flat buffer each
    a_off = np.zeros(L + 2, np.int64)
    for l in range(L + 1):
        a_off[l + 1] = a_off[l] + batch_size * sizes[l]
    A_buf = np.zeros(a_off[L + 1], dt)
    D_buf = np.zeros(a_off[L + 1], dt)
    Z_L = np.zeros((batch_size, sizes[L]), dt)
    G = np.zeros((n_threads, sizes[:L].max()), dt)
    n = order.shape[0]
    loss_sum = 0.0
    n_correct = 0
    for start in range(0, n, batch_size):
        m = min(batch_size, n - start)
        A0 = A_buf[0:m * sizes[0]].reshape((m, sizes[0]))
        _gather_input(X, order, start, m, scale, A0)
        for l in range(L):
            W, b, vW, vb = _layer_views(params, velocity, offsets, sizes, l)
            A_prev = A_buf[a_off[l]:a_off[l] + m * sizes[l]].reshape((m, sizes[l]))
            A_out = A_buf[a_off[l + 1]:a_off[l + 1] + m * sizes[l + 1]].reshape((m, sizes[l + 1]))
            _forward_layer(A_prev, m, W, b, acts[l], Z_L, A_out, l == L - 1, par[l])
        A_L = A_buf[a_off[L]:a_off[L] + m * sizes[L]].reshape((m, sizes[L]))
        delta = D_buf[a_off[L]:a_off[L] + m * sizes[L]].reshape((m, sizes[L]))
        loss, correct = _output_rows(Z_L, A_L, y, order, start, m, acts[L - 1], cost, delta)
        loss_sum += loss
        n_correct += correct
        for l in range(L - 1, -1, -1):  # from the output layer back
            W, b, vW, vb = _layer_views(params, velocity, offsets, sizes, l)
            A_prev = A_buf[a_off[l]:a_off[l] + m * sizes[l]].reshape((m, sizes[l]))
            if l > 0:  # (D_l) with the weights before this batch's update
                delta_prev = D_buf[a_off[l]:a_off[l] + m * sizes[l]].reshape((m, sizes[l]))
                _hidden_layer(delta, W, A_prev, m, acts[l - 1], delta_prev, par[l])
            _update_layer(delta, A_prev, m, W, b, vW, vb, lr, mu, nesterov, l2, G, par[l])
            if l > 0:
                delta = delta_prev
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
    for c in prange(n_chunks):
        start = c * PREDICT_CHUNK
        m = min(PREDICT_CHUNK, n - start)
        cur = np.empty((m, width), params.dtype)
        nxt = np.empty((m, width), params.dtype)
        rows = np.arange(start, start + m)
        A0 = cur[:, :sizes[0]]
        dt = params.dtype.type
        s = dt(scale)
        for i in range(m):
            for k in range(sizes[0]):
                A0[i, k] = dt(X[rows[i], k]) * s
        for l in range(L):
            o = offsets[l]
            n_in, n_out = sizes[l], sizes[l + 1]
            W = params[o:o + n_out * n_in].reshape((n_out, n_in))
            b = params[o + n_out * n_in:o + (n_in + 1) * n_out]
            A_prev = np.ascontiguousarray(cur[:, :n_in])
            A_new = np.empty((m, n_out), params.dtype)
            _forward_serial(A_prev, m, W, b, acts[l], A_new, A_new, False)
            if l == L - 1:
                out[start:start + m] = A_new
            else:
                nxt[:, :n_out] = A_new
                cur, nxt = nxt, cur
    return out


# --- public wrappers (mirrors of fastmlp.reference) ----------------------------------

def _codes(net):
    return np.array([ACTIVATION_CODES[a] for a in net.activations], dtype=np.int64)


def _parallel_flags(sizes, batch_size):
    """Per layer: run its loops in parallel?  From the multiply-adds per batch."""
    return np.array([batch_size * n_in * n_out >= PARALLEL_MIN_MACS
                     for n_in, n_out in zip(sizes[:-1], sizes[1:])], dtype=np.bool_)


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
    order = np.ascontiguousarray(order, dtype=np.int64)
    hyper = np.array([sgd.lr, sgd.momentum, sgd.l2], dtype=np.float64)
    batch_size = int(min(batch_size, max(len(order), 1)))
    if len(order) == 0:
        return 0.0, 0
    loss_sum, n_correct = _train_epoch(
        params, velocity, weight_offsets(net.sizes), sizes, _codes(net), COST_CODES[net.cost],
        hyper, bool(sgd.nesterov), X, y, order, batch_size, scale,
        _parallel_flags(net.sizes, batch_size), numba.config.NUMBA_NUM_THREADS)
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
    _hidden_layer(delta_next, W_next, A, m, ACTIVATION_CODES[activation], delta,
                  bool(m * W_next.size >= PARALLEL_MIN_MACS))
    return delta


@_parallel
def _gradients(delta, A_prev, dW, db):
    m = delta.shape[0]
    n_out = dW.shape[0]
    for j in prange(n_out):
        _grad_row_axpy(delta, A_prev, m, j, dW[j])
        for k in range(dW.shape[1]):
            dW[j, k] = dW[j, k] / delta.dtype.type(m)
        s = delta.dtype.type(0)
        for i in range(m):
            s += delta[i, j]
        db[j] = s / delta.dtype.type(m)


def gradients(delta, A_prev):
    """(G) ``dW = delta^T A_prev / m``, ``db = mean(delta)``.
    Mirror: ``fastmlp.reference.gradients``."""
    delta, A_prev = np.ascontiguousarray(delta), np.ascontiguousarray(A_prev)
    dW = np.empty((delta.shape[1], A_prev.shape[1]), delta.dtype)
    db = np.empty(delta.shape[1], delta.dtype)
    _gradients(delta, A_prev, dW, db)
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
