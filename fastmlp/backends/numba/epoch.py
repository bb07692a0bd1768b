"""A whole SGD epoch in one compiled call: the driver ``_train_epoch``, which
loops over the mini-batches and, inside each, over the layers, calling for
every layer the kernel variant its loop shape takes (``plan``).

The layer count, the widths, the activations, the cost, every
hyperparameter, the batch size and the loop shapes are run-time data of the
driver: the kernels arrive as a table of the compiled variants' addresses,
a row per stage and a column per loop shape (``plan.slot``), called through
``calls.caller``, and the per-layer table ``kinds`` says which column each
layer calls.  Plain SGD, momentum and Nesterov are the hyperparameters'
business (``hyper``).  So the driver compiles once per parameter dtype and
serves every SGD run; a new network compiles nothing that is in the cache.
``plan.train_batches`` is its public wrapper.

Mirror: ``fastmlp.backends.reference.train_batches``.
"""

import numpy as np

from fastmlp.backends.numba.calls import FIRST, FORWARD, GATHER, HIDDEN, OUTPUT, UPDATE, caller
from fastmlp.backends.numba.deltas import _hidden_layer, _output_rows, _weight_scale
from fastmlp.backends.numba.dropout import _drop_rows, _max_norm
from fastmlp.backends.numba.forward import _forward_layer, _gather_input
from fastmlp.backends.numba.jit import DRIVER, GIVEN, kernel
from fastmlp.backends.numba.shift import _shift_rows
from fastmlp.backends.numba.shapes import FWD, PAR, PNL
from fastmlp.backends.numba.update import _update_forward_first, _update_layer

#: The kernels, called through their addresses in the table ``fns``.
call_forward = caller(_forward_layer)
call_hidden = caller(_hidden_layer)
call_update = caller(_update_layer)
call_first = caller(_update_forward_first)
call_gather = caller(_gather_input)
call_output = caller(_output_rows)


@kernel
def _rows(buf, o, n, m):
    """The ``(m, n)`` matrix at offset ``o`` of a flat buffer (an activation or
    delta of ``m`` samples, or a layer's ``W``)."""
    return buf[o:o + m * n].reshape((m, n))


@kernel
def _bias(params, o, n_in, n_out):
    """``b`` of the layer whose weights start at offset ``o``."""
    return params[o + n_out * n_in:o + (n_in + 1) * n_out]


@kernel
def _drop_input(x, m, order, start, drop, reg):
    """The gathered inputs ``x`` of the samples ``order[start:start + m]``:
    (R6) shifted when ``reg`` gives a radius (its last but one entry; the
    images' side is the last), then (R4) dropout when the inputs have a rate
    (``drop[1]``)."""
    radius = np.int64(reg[reg.shape[0] - 2])
    if radius > 0 and m > 0:
        _shift_rows(x, m, order, start, drop[0], radius, np.int64(reg[reg.shape[0] - 1]))
    if drop[1] != 0 and m > 0:
        _drop_rows(x, x, m, order, start, drop[0], 0, drop[1], reg[1], 0, False)


@kernel
def _drop_hidden(A_buf, F_buf, a_off, sizes, acts, l, m, order, start, drop, reg):
    """(R4, R5) dropout on hidden layer ``l``'s activations (``A_buf`` at
    ``a_off[l]``) of the samples ``order[start:start + m]``, their delta
    factors into ``F_buf``, when the layer has a rate (``drop[l + 1]``)."""
    if drop[l + 1] != 0 and m > 0:
        n = sizes[l]
        _drop_rows(_rows(A_buf, a_off[l], n, m), _rows(F_buf, a_off[l], n, m), m, order, start, drop[0], l,
                   drop[l + 1], reg[l + 1], acts[l - 1], True)


@kernel
def _delta_input(A_buf, F_buf, a_off, acts, l, n, m, drop):
    """What the hidden delta of layer ``l`` multiplies by: ``f'`` of its
    activations (their code), or with dropout the factors of (R5) (code
    ``GIVEN``): ``(buffer, code)``."""
    if drop[l + 1] != 0:
        return _rows(F_buf, a_off[l], n, m), GIVEN
    return _rows(A_buf, a_off[l], n, m), acts[l - 1]


@kernel
def _batch_hyper(hyper, hyper_b, l2_index, c):
    """(W1) the hyperparameters of one batch: ``hyper`` with its L2 decay
    (entry ``l2_index``) times the batch's weight scale ``c`` (1 without
    sample weights)."""
    for k in range(hyper.shape[0]):
        hyper_b[k] = hyper[k]
    hyper_b[l2_index] = hyper[l2_index] * c


@kernel(args=DRIVER)
def _train_epoch(params, velocity, offsets, a_off, sizes, acts, cost, hyper, X, y, order, batch_size, scale,
                 panels, kinds, G, A_buf, D_buf, XB, Z_L, F_buf, drop, reg, T, w, hyper_b, fns):
    """All mini-batches of one epoch.  For each batch (F) forward through every
    layer, (C)/(D_L) at the output, then from the last layer back (D_l) with
    the old weights followed by the fused (G)+(U) update of that layer.  The
    first layer's update is followed by its forward pass for the *next*
    batch, and then the inputs (X) of the batch after that are gathered: all
    three in one parallel region (``update._update_forward_first``)
    when that layer has no panels, else one call each (panels run down all
    rows of W).  ``XB`` holds three gathered batches in turn.  The work
    buffers come from the caller (``plan.Workspace``), so the driver has no
    array expression of its own.  Dropout (``drop``: the epoch's key, then a
    threshold per layer input, 0 for none; ``reg``: the max-norm limit, a
    scale per layer input, the shift radius and the images' side) runs on
    each batch's layer inputs right after they are computed, shifts (R6) on
    the gathered inputs before it, and max-norm on each hidden layer's
    weights right after their update (``dropout``, ``shift``; the first
    layer then takes the unfused path).  Returns ``(loss_sum, n_correct)``."""
    L = sizes.shape[0] - 1
    s0 = sizes[0]
    n = order.shape[0]
    zero = batch_size - batch_size
    loss_sum = 0.0
    n_correct = zero
    limit = reg[0]
    m = min(batch_size, n)
    call_gather(fns[GATHER, 0], X, order, zero, m, scale, _rows(XB[0], zero, s0, m))
    _drop_input(_rows(XB[0], zero, s0, m), m, order, zero, drop, reg)
    if n > batch_size:
        m1 = min(batch_size, n - batch_size)
        call_gather(fns[GATHER, 0], X, order, batch_size, m1, scale, _rows(XB[1], zero, s0, m1))
        _drop_input(_rows(XB[1], zero, s0, m1), m1, order, batch_size, drop, reg)
    n_in, n_out = sizes[0], sizes[1]
    call_forward(fns[FORWARD, 2 * kinds[0, PAR] + kinds[0, FWD]], _rows(XB[0], zero, s0, m), m,
                 _rows(params, offsets[0], n_in, n_out), _bias(params, offsets[0], n_in, n_out), acts[0], Z_L,
                 _rows(A_buf, a_off[1], n_out, m), L == 1)
    if L > 1:
        _drop_hidden(A_buf, F_buf, a_off, sizes, acts, 1, m, order, zero, drop, reg)
    t = zero
    for start in range(0, n, batch_size):
        m = min(batch_size, n - start)
        for l in range(1, L):
            n_in, n_out = sizes[l], sizes[l + 1]
            call_forward(
                fns[FORWARD, 2 * kinds[l, PAR] + kinds[l, FWD]],
                _rows(A_buf, a_off[l], n_in, m), m, _rows(params, offsets[l], n_in, n_out),
                _bias(params, offsets[l], n_in, n_out), acts[l], Z_L, _rows(A_buf, a_off[l + 1], n_out, m),
                l == L - 1)
            if l + 1 < L:
                _drop_hidden(A_buf, F_buf, a_off, sizes, acts, l + 1, m, order, start, drop, reg)
        c = _weight_scale(w, order, start, m)
        _batch_hyper(hyper, hyper_b, 2, c)
        loss, correct = call_output(fns[OUTPUT, 0], Z_L, _rows(A_buf, a_off[L], sizes[L], m), y, T, w, c, order,
                                    start, m, acts[L - 1], cost, _rows(D_buf, a_off[L], sizes[L], m))
        loss_sum += loss
        n_correct += correct
        for l in range(L - 1, 0, -1):
            n_in, n_out = sizes[l], sizes[l + 1]
            o = offsets[l]
            W = _rows(params, o, n_in, n_out)
            d_next = _rows(D_buf, a_off[l + 1], n_out, m)
            A = _rows(A_buf, a_off[l], n_in, m)
            k = 2 * kinds[l, PAR] + kinds[l, PNL]
            factors, code = _delta_input(A_buf, F_buf, a_off, acts, l, n_in, m, drop)
            call_hidden(fns[HIDDEN, k], d_next, W, factors, m, code, _rows(D_buf, a_off[l], n_in, m), G, panels[l])
            call_update(fns[UPDATE, k], d_next, A, m, W, _bias(params, o, n_in, n_out),
                        _rows(velocity, o, n_in, n_out), _bias(velocity, o, n_in, n_out), hyper_b, G, panels[l])
            if limit > 0 and l < L - 1:
                _max_norm(W, limit)
        # the first layer: its update for batch t, its forward for batch t + 1, the gather of batch t + 2
        n_in, n_out = sizes[0], sizes[1]
        s1, s2 = start + batch_size, start + 2 * batch_size
        m1 = min(batch_size, n - s1) if s1 < n else zero
        m2 = min(batch_size, n - s2) if s2 < n else zero
        W, b = _rows(params, offsets[0], n_in, n_out), _bias(params, offsets[0], n_in, n_out)
        vW, vb = _rows(velocity, offsets[0], n_in, n_out), _bias(velocity, offsets[0], n_in, n_out)
        d1 = _rows(D_buf, a_off[1], n_out, m)
        x_t = _rows(XB[t % 3], zero, s0, m)
        x_next = _rows(XB[(t + 1) % 3], zero, s0, m1)
        x_after = _rows(XB[(t + 2) % 3], zero, s0, m2)
        a1_next = _rows(A_buf, a_off[1], n_out, m1)
        par = kinds[0, PAR]
        if kinds[0, PNL] or kinds[0, FWD] or (limit > 0 and L > 1):
            call_update(fns[UPDATE, 2 * par + kinds[0, PNL]], d1, x_t, m, W, b, vW, vb, hyper_b, G, panels[0])
            if limit > 0 and L > 1:
                _max_norm(W, limit)
            if m1 > 0:
                call_forward(fns[FORWARD, 2 * par + kinds[0, FWD]], x_next, m1, W, b, acts[0], Z_L, a1_next, L == 1)
            call_gather(fns[GATHER, par], X, order, s2, m2, scale, x_after)
        else:
            call_first(fns[FIRST, par], d1, x_t, m, W, b, vW, vb, hyper_b, G, panels[0],
                       x_next, m1, acts[0], Z_L, a1_next, L == 1, X, order, s2, scale, x_after)
        if L > 1:
            _drop_hidden(A_buf, F_buf, a_off, sizes, acts, 1, m1, order, s1, drop, reg)
        _drop_input(x_after, m2, order, s2, drop, reg)
        t += 1
    return loss_sum, n_correct

