"""The per-layer namesakes of the reference's functions (``dense_forward``,
``output_delta``, ``hidden_delta``, ``gradients``, ``sgd_update``), for the
equivalence tests and for users who want one step at a time.

Mirror: the functions of the same names in ``fastmlp.backends.reference``.
"""

import numba
import numpy as np
from numba import prange

from fastmlp.backends.numba.deltas import _hidden_layer
from fastmlp.backends.numba.elementwise import _derivative
from fastmlp.backends.numba.forward import _forward_layer
from fastmlp.backends.numba.jit import QUADRATIC, parallel, serial
from fastmlp.backends.numba.shapes import PARALLEL_MIN_MACS, _panels, _thread_buffers
from fastmlp.backends.numba.update import _update_row
from fastmlp.functions import ACTIVATION_CODES, COST_CODES, LEAKY_SLOPE


def dense_forward(A_prev, W, b, activation):
    """(F) One layer's forward pass: ``Z = A_prev W^T + b``, ``A = f(Z)``; returns
    ``(Z, A)``, both ``(m, n_out)``.  Mirror: ``fastmlp.backends.reference.dense_forward``."""
    A_prev = np.ascontiguousarray(A_prev, dtype=W.dtype)
    W, b = np.ascontiguousarray(W), np.ascontiguousarray(b)
    m, n_out = A_prev.shape[0], W.shape[0]
    Z = np.empty((m, n_out), W.dtype)
    A = np.empty((m, n_out), W.dtype)
    _forward_layer(A_prev, m, W, b, ACTIVATION_CODES[activation], Z, A, True,
                   bool(m * W.shape[1] * n_out >= PARALLEL_MIN_MACS))
    return Z, A


@serial
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
    Mirror: ``fastmlp.backends.reference.output_delta``."""
    A_L = np.ascontiguousarray(A_L)
    Y = np.ascontiguousarray(Y, dtype=A_L.dtype)
    delta = np.empty_like(A_L)
    _output_delta(A_L, Y, ACTIVATION_CODES[activation], COST_CODES[cost], delta)
    return delta


def hidden_delta(delta_next, W_next, A, activation):
    """(D_l) ``(delta_next W_next) * f'(A)``.  Mirror: ``fastmlp.backends.reference.hidden_delta``."""
    delta_next = np.ascontiguousarray(delta_next)
    W_next, A = np.ascontiguousarray(W_next), np.ascontiguousarray(A)
    m = A.shape[0]
    delta = np.empty_like(A)
    panels = _panels(A.shape[1], m, A.dtype)
    _hidden_layer(delta_next, W_next, A, m, ACTIVATION_CODES[activation], delta,
                  bool(m * W_next.size >= PARALLEL_MIN_MACS), _thread_buffers(A.shape[1], A.dtype),
                  panels)
    return delta


@serial
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


@parallel
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
    Mirror: ``fastmlp.backends.reference.gradients``."""
    delta, A_prev = np.ascontiguousarray(delta), np.ascontiguousarray(A_prev)
    dW = np.empty((delta.shape[1], A_prev.shape[1]), delta.dtype)
    db = np.empty(delta.shape[1], delta.dtype)
    _gradients(delta, A_prev, dW, db, _thread_buffers(A_prev.shape[1], delta.dtype))
    return dW, db


@serial
def _sgd_update(W, b, dW, db, vW, vb, lr, mu, nesterov, l2):
    dt = W.dtype.type
    lr_, mu_, l2_ = dt(lr), dt(mu), dt(l2)
    one = dt(1.0)
    for j in range(W.shape[0]):
        _update_row(W[j], vW[j], dW[j], one, lr_, mu_, nesterov, l2_)
    _update_row(b, vb, db, one, lr_, mu_, nesterov, dt(0.0))


def sgd_update(W, b, dW, db, vW, vb, sgd):
    """(U1)-(U4) update one layer in place (L2 on the weights only).
    Mirror: ``fastmlp.backends.reference.sgd_update``."""
    _sgd_update(W, b, dW, db, vW, vb, sgd.lr, sgd.momentum, bool(sgd.nesterov), sgd.l2)
