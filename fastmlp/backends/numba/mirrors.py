"""The per-layer namesakes of the reference's functions (``dense_forward``,
``output_delta``, ``hidden_delta``, ``gradients``, ``sgd_update``), for the
equivalence tests and for users who want one step at a time.

Each is a thin call into the kernel the compiled epoch runs for that stage,
specialised the way the epoch specialises it (``jit.specialise``), so the
tests of these functions test the epoch's own code.  The kernels the epoch
calls directly (``_forward_layer``, ``_output_rows``, ``_hidden_layer``,
``_update_layer``) are the very dispatchers whose addresses the drivers call
(``plan``), compiled by the first process that needs them and loaded from the
disk cache after that, so a first call in the compiling process may differ
from later processes' in the last bits (``precompile`` says why; training
compiles in a child process to avoid exactly that); ``_update_row`` is
compiled on first use in each process.

Mirror: the functions of the same names in ``fastmlp.backends.reference``.
"""

import numpy as np

from fastmlp.backends.numba.deltas import _hidden_layer, _output_rows
from fastmlp.backends.numba.forward import _forward_layer
from fastmlp.backends.numba.jit import specialise
from fastmlp.backends.numba.shapes import (PARALLEL_MIN_MACS, _forward_panels, _panels, _thread_buffers,
                                           panel_tile_rows)
from fastmlp.backends.numba.update import _update_layer, _update_row
from fastmlp.functions import ACTIVATION_CODES, COST_CODES
from fastmlp.network import SGD


def _parallel(macs):
    """The epoch's rule for running a layer's loops in parallel (``shapes``)."""
    return bool(macs >= PARALLEL_MIN_MACS)



def dense_forward(A_prev, W, b, activation, tile_rows=None):
    """(F) One layer's forward pass: ``Z = A_prev W^T + b``, ``A = f(Z)``; returns
    ``(Z, A)``, both ``(m, n_out)``.  ``tile_rows``: ``tile.NARROW_ROWS`` for the
    panel kernels, 0 for the row blocks alone (default: the epoch's choice,
    ``shapes.panel_tile_rows``).
    Mirror: ``fastmlp.backends.reference.dense_forward``."""
    A_prev = np.ascontiguousarray(A_prev, dtype=W.dtype)
    W, b = np.ascontiguousarray(W), np.ascontiguousarray(b)
    m, n_out = A_prev.shape[0], W.shape[0]
    Z = np.empty((m, n_out), W.dtype)
    A = np.empty((m, n_out), W.dtype)
    rows = panel_tile_rows() if tile_rows is None else tile_rows
    panels = _forward_panels(n_out, m, W.dtype, rows)
    forward = specialise(_forward_layer, _parallel(m * W.shape[1] * n_out), FWD_PANELS=rows if panels else 0)
    forward(A_prev, m, W, b, ACTIVATION_CODES[activation], Z, A, True)
    return Z, A


def output_delta(A_L, Y, activation, cost):
    """(D_L) ``(A_L - Y) * f'(Z_L)`` for the quadratic cost, ``A_L - Y`` for
    sigmoid + cross-entropy and softmax + log-likelihood, for one-hot targets
    ``Y`` (the epoch takes labels).  Mirror: ``fastmlp.backends.reference.output_delta``."""
    A_L = np.ascontiguousarray(A_L)
    Y = np.asarray(Y)
    labels = Y.argmax(axis=1)
    if not np.array_equal(Y, np.eye(A_L.shape[1], dtype=Y.dtype)[labels]):
        raise ValueError("the numba backend's output_delta takes one-hot targets Y")
    m = A_L.shape[0]
    delta = np.empty_like(A_L)
    # Z is read only for the cost's value, which this function does not return
    specialise(_output_rows)(A_L, A_L, labels.astype(np.uint8), np.zeros((0, 1), A_L.dtype), np.zeros(0), 1.0,
                             np.arange(m, dtype=np.int64), 0, m, ACTIVATION_CODES[activation], COST_CODES[cost],
                             delta)
    return delta


def hidden_delta(delta_next, W_next, A, activation, tile_rows=None):
    """(D_l) ``(delta_next W_next) * f'(A)``.  ``tile_rows``: ``tile.NARROW_ROWS``
    for the panel kernels, 0 for the row blocks alone (default: the epoch's
    choice, ``shapes.panel_tile_rows``).
    Mirror: ``fastmlp.backends.reference.hidden_delta``."""
    delta_next = np.ascontiguousarray(delta_next)
    W_next, A = np.ascontiguousarray(W_next), np.ascontiguousarray(A)
    m = A.shape[0]
    delta = np.empty_like(A)
    rows = panel_tile_rows() if tile_rows is None else tile_rows
    panels = _panels(A.shape[1], m, A.dtype, rows)
    hidden = specialise(_hidden_layer, _parallel(m * W_next.size), PANELS=rows if panels else 0)
    hidden(delta_next, W_next, A, m, ACTIVATION_CODES[activation], delta,
           _thread_buffers(A.shape[1], A.dtype), panels)
    return delta


def update_layer(delta, A_prev, W, b, vW, vb, sgd, panels=None, tile_rows=None):
    """(G) + (U) fused, as the epoch runs it for every layer but the first: the
    gradient of ``delta`` and ``A_prev`` applied to ``W``, ``b`` (and the
    velocities) in place.  ``panels``: how many input-column panels use the
    panel kernels, ``tile_rows`` the rows of their tiles, ``tile.NARROW_ROWS``
    or 0 (defaults: the epoch's choices, ``shapes._panels`` and
    ``shapes.panel_tile_rows``).
    Equivalent reference: ``gradients`` then ``sgd_update``."""
    m, n_in = A_prev.shape
    rows = panel_tile_rows() if tile_rows is None else tile_rows
    if panels is None:
        panels = _panels(n_in, m, W.dtype, rows)
    update = specialise(_update_layer, _parallel(m * n_in * W.shape[0]), PANELS=rows if panels else 0)
    update(np.ascontiguousarray(delta), np.ascontiguousarray(A_prev), m, W, b, vW, vb,
           np.array([sgd.lr, sgd.momentum, sgd.l2, float(bool(sgd.nesterov))], dtype=np.float64),
           _thread_buffers(n_in, W.dtype), panels)


def gradients(delta, A_prev):
    """(G) ``dW = delta^T A_prev / m``, ``db = mean(delta)``, computed by the
    epoch's fused update (``update_layer``): plain SGD with rate 1 applied to
    zero weights leaves exactly ``-dW`` and ``-db`` in them.
    Mirror: ``fastmlp.backends.reference.gradients``."""
    delta, A_prev = np.ascontiguousarray(delta), np.ascontiguousarray(A_prev)
    W = np.zeros((delta.shape[1], A_prev.shape[1]), delta.dtype)
    b = np.zeros(delta.shape[1], delta.dtype)
    update_layer(delta, A_prev, W, b, np.zeros_like(W), np.zeros_like(b), SGD(1.0))
    return -W, -b


def sgd_update(W, b, dW, db, vW, vb, sgd):
    """(U1)-(U4) update one layer in place with a given gradient (L2 on the
    weights only), through the epoch's row update ``_update_row``.
    Mirror: ``fastmlp.backends.reference.sgd_update``."""
    row = specialise(_update_row)
    dt = W.dtype.type
    lr, mu, l2, one = dt(sgd.lr), dt(sgd.momentum), dt(sgd.l2), dt(1.0)
    c1, c2 = (mu, -lr) if sgd.nesterov else (one, dt(0.0))
    for j in range(W.shape[0]):
        row(W[j], vW[j], np.ascontiguousarray(dW[j]), one, lr, mu, l2, c1, c2)
    row(b, vb, np.ascontiguousarray(db), one, lr, mu, dt(0.0), c1, c2)
