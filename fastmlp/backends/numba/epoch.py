"""A whole epoch in one compiled call: every mini-batch's forward pass, output
delta, hidden deltas and fused gradient + update (``_train_epoch``), and its
public wrapper ``train_batches``.

Mirror: ``fastmlp.backends.reference.train_batches``.
"""

import numpy as np

from fastmlp.backends.numba.deltas import _hidden_layer, _output_rows
from fastmlp.backends.numba.forward import _forward_layer, _gather_input
from fastmlp.backends.numba.jit import parallel, serial
from fastmlp.backends.numba.shapes import _check_input, _codes, _panel_counts, _parallel_flags
from fastmlp.backends.numba.update import _update_forward_first, _update_layer
from fastmlp.functions import COST_CODES
from fastmlp.network import weight_offsets

import numba


@serial
def _layer_views(params, velocity, offsets, sizes, l):
    n_in, n_out = sizes[l], sizes[l + 1]
    o = offsets[l]
    W = params[o:o + n_out * n_in].reshape((n_out, n_in))
    b = params[o + n_out * n_in:o + (n_in + 1) * n_out]
    vW = velocity[o:o + n_out * n_in].reshape((n_out, n_in))
    vb = velocity[o + n_out * n_in:o + (n_in + 1) * n_out]
    return W, b, vW, vb


@serial
def _act_view(buf, a_off, sizes, l, m):
    return buf[a_off[l]:a_off[l] + m * sizes[l]].reshape((m, sizes[l]))


@parallel
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


def train_batches(params, velocity, net, sgd, X, y, order, batch_size):
    """Train on ``X[order]`` in consecutive mini-batches, updating ``params`` and
    ``velocity`` in place; returns ``(loss_sum, n_correct)`` measured on each batch
    before its update.  All batches run inside one compiled call.

    Implements (X), (F), (C), (D_L), (D_l), (G), (U1)-(U4) of docs/math.md.
    Mirror: ``fastmlp.backends.reference.train_batches``.
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
