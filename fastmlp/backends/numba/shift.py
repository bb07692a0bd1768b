"""(R6) input shifts inside the compiled epochs: each gathered image of a
batch moved by its draw of the epoch, in place, before anything reads it.

The draw is ``fastmlp.noise.shifts``'s hash on the same 64-bit integers, so
both backends move each image by the same pixels.  The kernel is compiled
into the drivers, like those of ``dropout``.

Mirror: ``fastmlp.backends.reference.shifted_inputs``.
"""

import numpy as np
from numba import prange

from fastmlp.backends.numba.dropout import PARALLEL_MIN_ELEMENTS, _ROW, _mix
from fastmlp.backends.numba.jit import kernel
from fastmlp.noise import SHIFT_LAYER

_SHIFT_LAYER = np.uint64(SHIFT_LAYER)
_LOW32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)


@kernel
def _shift_row(a, side, dy, dx):
    """One image (``side x side``, row-major) moved ``dy`` rows down and
    ``dx`` columns right, in place, zeros moving in.  Rows and columns are
    visited against the direction of the move, so every pixel is read
    before it is overwritten."""
    zero = a.dtype.type(0.0)
    for rr in range(side):
        r = side - 1 - rr if dy > 0 else rr
        sr = r - dy
        for cc in range(side):
            c = side - 1 - cc if dx > 0 else cc
            sc = c - dx
            if 0 <= sr < side and 0 <= sc < side:
                a[r * side + c] = a[sr * side + sc]
            else:
                a[r * side + c] = zero


@kernel
def _shift_sample(a, sample, key, radius, side):
    h = _mix(key ^ (np.uint64(sample) * _ROW + _SHIFT_LAYER))
    span = np.uint64(2 * radius + 1)
    dy = np.int64((h >> _S32) % span) - radius
    dx = np.int64((h & _LOW32) % span) - radius
    _shift_row(a, side, dy, dx)


@kernel
def _shift_rows(x, m, order, start, key, radius, side):
    """(R6) the first ``m`` gathered images of ``x``, those of the samples
    ``order[start:start + m]``, each shifted by its draw (``fastmlp.noise.shifts``)."""
    if m * x.shape[1] >= PARALLEL_MIN_ELEMENTS:
        for i in prange(m):
            _shift_sample(x[i], order[start + i], key, radius, side)
    else:
        for i in range(m):
            _shift_sample(x[i], order[start + i], key, radius, side)
