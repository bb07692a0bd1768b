"""(F) through every layer for a whole data set, in parallel chunks of rows:
the driver ``_predict``.  Like the epoch's drivers it takes the layer count,
the widths and the kernels as run-time data (``plan``), so it compiles once
per parameter dtype and serves every network.  ``plan.predict_proba`` is its
public wrapper.

Mirror: ``fastmlp.backends.reference.predict_proba``.
"""

import numba
from numba import prange

from fastmlp.backends.numba.calls import FORWARD, GATHER
from fastmlp.backends.numba.epoch import _bias, _rows, call_forward, call_gather
from fastmlp.backends.numba.jit import DRIVER, kernel

#: Rows per chunk (each chunk is one parallel iteration with its own buffers).
PREDICT_CHUNK = 256


@kernel(args=DRIVER)
def _predict(params, offsets, sizes, acts, X, rows, scale, out, work, fns):
    """(F) through every layer for all rows of X, in chunks of PREDICT_CHUNK
    rows; the chunks run in parallel, each on its own rows of ``out`` (the
    last layer writes there directly) and on the two buffers of the thread
    that runs it (``work[thread]``, layers alternate between them), so the
    numbers do not depend on the thread count.  The buffers come from the
    caller: allocated in the parallel loop they would more than double its
    compile time (3.6 s against 1.5, AMD EPYC Zen 4).
    It calls, from ``fns`` (as in ``epoch._train_epoch``), the epoch's serial
    forward with row blocks only (the chunks are the parallel loop here) and
    the serial (X)."""
    n = rows.shape[0]
    L = sizes.shape[0] - 1
    no = n < 0  # False as a value, as the kernels' signature has it
    for c in prange((n + PREDICT_CHUNK - 1) // PREDICT_CHUNK):
        start = c * PREDICT_CHUNK
        m = min(PREDICT_CHUNK, n - start)
        mine = work[numba.get_thread_id()]
        cur = mine[0]
        nxt = mine[1]
        zero = m - m
        call_gather(fns[GATHER, 0], X, rows, start, m, scale, _rows(cur, zero, sizes[0], m))
        for l in range(L):
            n_in, n_out = sizes[l], sizes[l + 1]
            A = out[start:start + m] if l == L - 1 else _rows(nxt, zero, n_out, m)
            call_forward(fns[FORWARD, 0], _rows(cur, zero, n_in, m), m, _rows(params, offsets[l], n_in, n_out),
                         _bias(params, offsets[l], n_in, n_out), acts[l], A, A, no)
            cur, nxt = nxt, cur
