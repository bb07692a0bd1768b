"""(R1-R5) dropout and (U8) max-norm inside the compiled epochs: the kernels
the drivers (``epoch._train_epoch``, ``adam._train_epoch_adam``) call on a
batch's layer inputs after they are computed, and on a layer's weights after
its update.

The masks come from the counter-based hash of ``fastmlp.noise`` on the
same 64-bit integers, so both backends keep the same units.  Dropping a
hidden layer's units writes, next to the scaled activations, the factor its
delta needs (``f'(Z) / (1 - p)`` where kept, 0 where dropped) into the
buffer ``F``; the hidden-delta kernel then reads ``F`` in place of the
activations with the activation code ``GIVEN``, whose "derivative" is the
value itself (``elementwise._derivative``), so the delta kernels need no
variant of their own.  They are compiled into the drivers (no address table
of their own): each is a short loop over rows, parallel over the samples
when a batch's layer is large enough.

Mirror: ``fastmlp.backends.reference.dropout_factors``, ``forward``,
``backprop`` and ``max_norm``.
"""

import math

import numpy as np
from numba import prange

from fastmlp.backends.numba.elementwise import _derivative
from fastmlp.backends.numba.jit import kernel
from fastmlp.noise import PHI, ROW
from fastmlp.functions import LEAKY_SLOPE

# the constants as uint64, so Numba's arithmetic on them wraps modulo 2**64
_PHI = np.uint64(PHI)
_ROW = np.uint64(ROW)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)

#: Elements of a batch's layer input from which a dropout pass runs its
#: samples in parallel (below, a parallel region costs more than it saves).
PARALLEL_MIN_ELEMENTS = 16384


@kernel
def _mix(z):
    """SplitMix64's output function (``fastmlp.noise.mix``)."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@kernel
def _drop_row(a, f, sample, key, layer, threshold, scale, code, factors):
    """(R2-R4) One sample's layer input ``a``, in place: kept units times
    ``scale``, dropped ones 0; with ``factors``, ``f`` receives (R5)'s factor
    ``f'(a) scale`` where kept, 0 where dropped (``f'`` from the unscaled
    activation)."""
    dt = a.dtype.type
    one = dt(1.0)
    zero = dt(0.0)
    slope = dt(LEAKY_SLOPE)
    row = _mix(key ^ (np.uint64(sample) * _ROW + np.uint64(layer)))
    for j in range(a.shape[0]):
        kept = _mix(row + np.uint64(j) * _PHI) >= threshold
        if factors:
            f[j] = _derivative(a[j], code, slope, one) * scale if kept else zero
        a[j] = a[j] * scale if kept else zero


@kernel
def _drop_rows(A, F, m, order, start, key, layer, threshold, scale, code, factors):
    """(R4) dropout on the first ``m`` rows of ``A``, the layer input
    ``layer`` of the samples ``order[start:start + m]``; ``F`` (same shape)
    receives the factors of (R5) when ``factors`` (hidden layers)."""
    s = A.dtype.type(scale)
    if m * A.shape[1] >= PARALLEL_MIN_ELEMENTS:
        for i in prange(m):
            _drop_row(A[i], F[i], order[start + i], key, layer, threshold, s, code, factors)
    else:
        for i in range(m):
            _drop_row(A[i], F[i], order[start + i], key, layer, threshold, s, code, factors)


@kernel
def _max_norm_row(w, limit):
    total = 0.0
    for k in range(w.shape[0]):
        total += float(w[k]) * float(w[k])
    norm = math.sqrt(total)
    if norm > limit:
        c = w.dtype.type(limit / norm)
        for k in range(w.shape[0]):
            w[k] = w[k] * c


@kernel
def _max_norm(W, limit):
    """(U8) every row of ``W`` (a unit's incoming weights) whose norm exceeds
    ``limit`` scaled down to norm ``limit``, in place."""
    if W.shape[0] * W.shape[1] >= PARALLEL_MIN_ELEMENTS:
        for j in prange(W.shape[0]):
            _max_norm_row(W[j], limit)
    else:
        for j in range(W.shape[0]):
            _max_norm_row(W[j], limit)
