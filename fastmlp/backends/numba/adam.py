"""(U6) Adam in the compiled epoch: its driver ``_train_epoch_adam`` and the
Adam step (``_adam_apply``).

Every mini-batch runs (X), (F), (C)/(D_L) and (D_l) with the same kernels as
the SGD epoch (``epoch._train_epoch``); the fused (G)+(U) kernel ``_update_layer``,
specialised for plain SGD with rate -1 and no decay, writes each layer's
gradient ``g / m`` into a buffer that starts at zero (``0 - (-1) * x`` is
``x`` exactly), and ``_adam_apply`` then takes the Adam step for every
parameter and zeroes the buffer again.  The first layer's forward pass cannot
be fused with its update here (the SGD epoch's ``_update_forward_first``):
Adam needs the whole gradient before any weight changes.

As the SGD driver, it takes the layers, the loop shapes and the kernels as
run-time data (``plan``), so it compiles once per parameter dtype.
``velocity`` holds the first moments, then the second moments
(``network.optimizer_state_size``), and ``hyper = (lr, beta_1, beta_2,
epsilon, l2, t)`` with ``t`` the Adam steps taken before this call.

Mirror: ``fastmlp.backends.reference.adam_update`` inside ``train_batches``.
"""

import math

import numpy as np
from numba import prange

from fastmlp.backends.numba.calls import ADAM_APPLY, FORWARD, GATHER, HIDDEN, OUTPUT, UPDATE, caller
from fastmlp.backends.numba.dropout import _max_norm
from fastmlp.backends.numba.deltas import _weight_scale
from fastmlp.backends.numba.epoch import (_batch_hyper, _bias, _delta_input, _drop_hidden, _drop_input, _rows,
                                          call_forward, call_gather, call_hidden, call_output, call_update)
from fastmlp.backends.numba.jit import DRIVER, kernel
from fastmlp.backends.numba.shapes import FWD, PAR, PNL


@kernel
def _adam_rows(P, M, V, G, o, n_rows, n_cols, decay, lr_t, b1, c1, b2, c2, eps):
    """(U6) for the ``n_rows x n_cols`` block of the flat buffers at ``o``:
    ``g = G + decay P``, the moments, ``P -= lr_t m / (sqrt(v) + eps)``, then
    ``G = 0`` for the next batch.  One row per iteration (each element has one
    owner, so the numbers do not depend on the thread count)."""
    for j in prange(n_rows):
        base = o + j * n_cols
        for k in range(n_cols):
            i = base + k
            g = G[i] + decay * P[i]
            mk = b1 * M[i] + c1 * g
            vk = b2 * V[i] + c2 * (g * g)
            M[i] = mk
            V[i] = vk
            P[i] -= lr_t * mk / (math.sqrt(vk) + eps)
            G[i] = 0


@kernel(args="v v v n n h i")
def _adam_apply(params, velocity, grads, offsets, sizes, hyper, step):
    """(U6) Adam step ``step`` (1-based) for every layer: weights with the L2
    decay ``hyper[4]``, biases without.  Constants are rounded to the
    parameters' dtype as the reference's NumPy scalars are."""
    dt = params.dtype.type
    n = params.shape[0]
    M = velocity[:n]
    V = velocity[n:]
    b1, b2 = hyper[1], hyper[2]
    lr_t = dt(hyper[0] * math.sqrt(1.0 - b2 ** step) / (1.0 - b1 ** step))
    zero = dt(0.0)
    for l in range(sizes.shape[0] - 1):
        n_in, n_out = sizes[l], sizes[l + 1]
        o = offsets[l]
        _adam_rows(params, M, V, grads, o, n_out, n_in, dt(hyper[4]), lr_t, dt(b1), dt(1.0 - b1), dt(b2),
                   dt(1.0 - b2), dt(hyper[3]))
        _adam_rows(params, M, V, grads, o + n_out * n_in, 1, n_out, zero, lr_t, dt(b1), dt(1.0 - b1), dt(b2),
                   dt(1.0 - b2), dt(hyper[3]))



call_adam_apply = caller(_adam_apply)


@kernel(args=DRIVER)
def _train_epoch_adam(params, velocity, offsets, a_off, sizes, acts, cost, hyper, X, y, order, batch_size, scale,
                      panels, kinds, G, A_buf, D_buf, XB, Z_L, F_buf, drop, reg, T, w, hyper_b, grads, ghyper, fns):
    """All mini-batches of one Adam epoch: per batch (X), (F) through every
    layer, (C)/(D_L), then from the last layer back (D_l) with the old
    weights and each layer's gradient into ``grads`` (the update kernels with
    ``ghyper`` = plain SGD at rate -1, no decay), then the Adam step for all
    parameters (``_adam_apply``).  ``fns``: the kernels' addresses, as in
    ``epoch._train_epoch``; dropout, max-norm, the targets and sample
    weights as there (``drop``, ``reg``, ``T``, ``w``, ``hyper_b``).
    Returns ``(loss_sum, n_correct)``."""
    L = sizes.shape[0] - 1
    s0 = sizes[0]
    n = order.shape[0]
    zero = batch_size - batch_size
    loss_sum = 0.0
    n_correct = zero
    t = np.int64(hyper[5])
    for start in range(0, n, batch_size):
        m = min(batch_size, n - start)
        x = _rows(XB[0], zero, s0, m)
        call_gather(fns[GATHER, 0], X, order, start, m, scale, x)
        _drop_input(x, m, order, start, drop, reg)
        for l in range(L):
            n_in, n_out = sizes[l], sizes[l + 1]
            a_in = x if l == 0 else _rows(A_buf, a_off[l], n_in, m)
            call_forward(fns[FORWARD, 2 * kinds[l, PAR] + kinds[l, FWD]], a_in, m,
                         _rows(params, offsets[l], n_in, n_out), _bias(params, offsets[l], n_in, n_out), acts[l],
                         Z_L, _rows(A_buf, a_off[l + 1], n_out, m), l == L - 1)
            if l + 1 < L:
                _drop_hidden(A_buf, F_buf, a_off, sizes, acts, l + 1, m, order, start, drop, reg)
        c = _weight_scale(w, order, start, m)
        _batch_hyper(hyper, hyper_b, 4, c)
        loss, correct = call_output(fns[OUTPUT, 0], Z_L, _rows(A_buf, a_off[L], sizes[L], m), y, T, w, c, order,
                                    start, m, acts[L - 1], cost, _rows(D_buf, a_off[L], sizes[L], m))
        loss_sum += loss
        n_correct += correct
        for l in range(L - 1, -1, -1):
            n_in, n_out = sizes[l], sizes[l + 1]
            o = offsets[l]
            d_next = _rows(D_buf, a_off[l + 1], n_out, m)
            a_in = x if l == 0 else _rows(A_buf, a_off[l], n_in, m)
            k = 2 * kinds[l, PAR] + kinds[l, PNL]
            if l > 0:  # delta_l with the old W_l, before any update
                factors, code = _delta_input(A_buf, F_buf, a_off, acts, l, n_in, m, drop)
                call_hidden(fns[HIDDEN, k], d_next, _rows(params, o, n_in, n_out), factors, m, code,
                            _rows(D_buf, a_off[l], n_in, m), G, panels[l])
            GW, Gb = _rows(grads, o, n_in, n_out), _bias(grads, o, n_in, n_out)
            call_update(fns[UPDATE, k], d_next, a_in, m, GW, Gb, GW, Gb, ghyper, G, panels[l])
        t += 1
        call_adam_apply(fns[ADAM_APPLY, 0], params, velocity, grads, offsets, sizes, hyper_b, t)
        if reg[0] > 0:
            for l in range(L - 1):
                _max_norm(_rows(params, offsets[l], sizes[l], sizes[l + 1]), reg[0])
    return loss_sum, n_correct
