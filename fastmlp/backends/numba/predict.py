"""(F) through every layer for a whole data set, in parallel chunks of rows,
and its public wrapper ``predict_proba``.

Mirror: ``fastmlp.backends.reference.predict_proba``.
"""

import numpy as np
from numba import prange

from fastmlp.backends.numba.elementwise import _softmax_rows
from fastmlp.backends.numba.epoch import _layer_views
from fastmlp.backends.numba.forward import _fwd_block, _gather_input
from fastmlp.backends.numba.jit import parallel
from fastmlp.backends.numba.shapes import _check_input, _codes
from fastmlp.network import weight_offsets

#: Rows per chunk (each chunk is one parallel iteration with its own buffers).
PREDICT_CHUNK = 256


@parallel
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


def predict_proba(params, net, X):
    """Output activations ``A_L`` for every row of ``X``, ``(n, n_L)``.
    Implements (X), (F).  Mirror: ``fastmlp.backends.reference.predict_proba``."""
    X, scale = _check_input(X, params.dtype)
    out = np.empty((len(X), net.sizes[-1]), dtype=params.dtype)
    if len(X):
        _predict(params, weight_offsets(net.sizes), np.asarray(net.sizes, dtype=np.int64),
                 _codes(net), X, scale, out)
    return out
