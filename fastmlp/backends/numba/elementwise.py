"""Elementwise maths of the kernels: activations, their derivatives from the
activation, softmax rows (eq. A1-A5, A1'-A4' of docs/math.md).

Mirror: ``fastmlp.functions`` (the NumPy versions the reference uses).
"""

import math

from fastmlp.backends.numba.jit import EXP, GIVEN, IDENTITY, LEAKY_RELU, RELU, SIGMOID, SOFTMAX, TANH, kernel


@kernel
def _activate(z, code, slope, one):
    """(A1-A4, A6, A7) ``f(z)`` for one element; softmax is applied per row elsewhere.
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
    if code == EXP:
        return math.exp(z)
    return z  # identity (A6); softmax: the caller normalises the row


@kernel
def _derivative(a, code, slope, one):
    """(A1'-A4', A6', A7') ``f'(z)`` from ``a = f(z)``; under the code
    ``GIVEN``, ``a`` itself (a factor computed beforehand: dropout's (R5)),
    as for ``exp``."""
    if code == IDENTITY:
        return one
    if code == GIVEN or code == EXP:
        return a
    if code == SIGMOID:
        return a * (one - a)
    if code == TANH:
        return one - a * a
    if code == RELU:
        return one if a > 0 else one - one
    return one if a > 0 else slope  # leaky ReLU


@kernel
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


@kernel
def _softmax_rows(A, m, code):
    if code == SOFTMAX:
        for i in range(m):
            _softmax_row(A[i])
