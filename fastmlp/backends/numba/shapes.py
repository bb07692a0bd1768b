"""Which kernel shape each layer takes, decided in Python from the layer
sizes, the mini-batch size and the dtype before the compiled epoch starts
(so a decision never depends on the thread count), and the conversions of the
inputs the kernels take.
"""

import numba
import numpy as np

from fastmlp.backends.numba import isa
from fastmlp.backends.numba.tile import NARROW_ROWS, PANEL
from fastmlp.functions import ACTIVATION_CODES
from fastmlp.validation import is_sparse

#: A layer product with at least this many multiply-adds (m * n_in * n_out) runs
#: its loop over output rows in parallel; smaller ones run serially on the calling
#: thread, because a parallel region costs about 2 us to launch (measured; see
#: docs/performance.md).  Depends only on the shape, so determinism is kept.
PARALLEL_MIN_MACS = 120_000
#: A layer uses the outer-product panel kernels (``_hid_panel``,
#: ``_grad_update_columns``) for its first ``PANEL * (n_in // PANEL)`` input
#: columns when the mini-batch has at least this many samples (float32,
#: float64); smaller batches and the leftover columns use the row-block kernels.
#: float64 starts at 128 because at batch 64 the panels lose on small layers:
#: on an AMD EPYC Zen 3 (AVX2), whole epochs alternating in one process,
#: panels against row blocks at batch 64, 784-128-64-10 float64 takes 1.16x
#: the time (7 rounds), 784-1024-1024-10 float64 0.96x (3 rounds),
#: 784-128-64-10 float32 0.97x (9 rounds).  In float32 panels beat the row
#: blocks from 16 samples (3 % at 16, 4 % at 32, measured with register
#: tiles); docs/performance.md.  Depends only on the shapes.
PANEL_MIN_BATCH = {"float32": 16, "float64": 128}
#: A layer's forward pass uses its output panels (``forward._fwd_panel``) from
#: this many outputs (and ``PANEL_MIN_BATCH`` samples).  Measured on an AMD
#: EPYC Zen 3 (AVX2), whole epochs float32 in one process, alternating,
#: against a threshold of 512 outputs: 784-128-64-10 batch 64 0.78x the time (14 rounds; 0.74x
#: from 64 outputs), batch 16 0.95x, float64 batch 128 0.90x (from 64);
#: 784-256-10 batch 64 0.82-0.90x; but 784-100-10 batch 32, one panel and 36
#: outputs left to the row blocks, 1.02x from 64 outputs.  docs/performance.md.
FWD_PANEL_MIN_OUTPUTS = 128

#: The panel kernels run from this vector width on (AVX2 and AVX-512); with
#: narrower vectors (SSE, NEON) every layer uses the row blocks alone: there a
#: 64-wide register tile row takes all 16 registers and loses to them (SSE2
#: code, float32 1 x 64 xmm, Intel Xeon: 0.84x the speed), and the narrow
#: tiles are unmeasured.
PANEL_MIN_BITS = 256


def panel_tile_rows(host=None):
    """Rows of the panel tiles on ``host`` (default ``isa.HOST``), both dtypes:
    ``NARROW_ROWS`` (``tile.narrow_tile``) from ``PANEL_MIN_BITS`` vector bits
    of the panel kernels (``tile.full_width_vectors``: AVX-512's zmm, Intel's
    parts too, and AVX2's ymm), or 0: the layers use the row blocks alone
    (``_panels``).

    The narrow tiles beat register tiles of ``rows x PANEL`` sums in half the
    registers.  Measured on an AMD EPYC Zen 4, whole epochs, both in one
    process, epochs interleaved, medians (docs/performance.md): with AVX2
    code, 784-1024-1024-10 batch 256 takes 0.85x the epoch time in float32
    (against 1 x 64 ymm tiles) and 0.86x in float64 (against the row blocks),
    784-512-512-10 batch 128 0.88x and 0.72x; with AVX-512 code float64 0.90x
    (against 2 x 64 zmm) and float32 0.93x (against 4 x 64 zmm in all three
    kernels, with four vectors a row: ``tile.narrow_vectors``)."""
    host = isa.HOST if host is None else host
    return NARROW_ROWS if host.panel_bits >= PANEL_MIN_BITS else 0


def _thread_buffers(n, dtype):
    """One ``(4, n)`` work buffer per thread (see ``_grad_update_block``)."""
    return np.zeros((numba.config.NUMBA_NUM_THREADS, 4, max(n, 1)), dtype)


def _codes(net):
    return np.array([ACTIVATION_CODES[a] for a in net.activations], dtype=np.int64)


def _parallel_flags(sizes, batch_size):
    """Per layer: run its loops in parallel?  From the multiply-adds per batch."""
    return np.array([batch_size * n_in * n_out >= PARALLEL_MIN_MACS
                     for n_in, n_out in zip(sizes[:-1], sizes[1:])], dtype=np.bool_)


def _panels(n_in, batch_size, dtype, tile_rows=None):
    """How many whole ``PANEL``-column panels of a layer's ``n_in`` inputs go to
    the panel kernels: none for small mini-batches (``PANEL_MIN_BATCH``) or
    when the tile has no rows (``tile_rows``, default ``panel_tile_rows``)."""
    rows = panel_tile_rows() if tile_rows is None else tile_rows
    return n_in // PANEL if rows and batch_size >= PANEL_MIN_BATCH[np.dtype(dtype).name] else 0


def _forward_panels(n_out, batch_size, dtype, tile_rows=None):
    """How many whole ``PANEL``-output panels of a layer's ``n_out`` outputs its
    forward pass computes with ``forward._fwd_panel``: as ``_panels``, and only
    from ``FWD_PANEL_MIN_OUTPUTS`` outputs."""
    return _panels(n_out, batch_size, dtype, tile_rows) if n_out >= FWD_PANEL_MIN_OUTPUTS else 0


def _panel_counts(sizes, batch_size, dtype):
    """``_panels`` for every layer."""
    return np.array([_panels(n_in, batch_size, dtype) for n_in in sizes[:-1]], dtype=np.int64)


#: Columns of the per-layer table ``layer_kinds``: run the layer's loops in
#: parallel, use panels in its hidden delta and update (over its inputs), use
#: panels in its forward pass (over its outputs); each 0 or 1.
PAR, PNL, FWD = 0, 1, 2


def layer_kinds(sizes, batch_size, dtype):
    """The loop shape of every layer, ``(n_layers, 3)`` int64 (``PAR``, ``PNL``,
    ``FWD``): the one place these decisions are made.  They depend only on the
    shapes, the dtype and the ISA, never on the thread count, so the numbers
    do not either.  The drivers pick each layer's kernel variant from it
    (``plan.slot``)."""
    kinds = np.zeros((len(sizes) - 1, 3), dtype=np.int64)
    kinds[:, PAR] = _parallel_flags(sizes, batch_size)
    kinds[:, PNL] = _panel_counts(sizes, batch_size, dtype) > 0
    kinds[:, FWD] = [_forward_panels(n_out, batch_size, dtype) > 0 for n_out in sizes[1:]]
    return kinds


def _check_input(X, dtype):
    """The input rows ``X`` as every compiled kernel takes them, and the scale
    of (X): the tuple ``(pixels, values, data, indices, indptr)``, of which one
    form holds the rows and the others are empty.  uint8 pixels stay uint8
    (they are divided by 255 as each mini-batch is gathered, so the training
    set is not copied); other dense inputs become values of the parameters'
    ``dtype``; a CSR matrix (``validation.check_features`` makes sparse
    inputs CSR) gives its stored values, column indices and row pointers,
    and its rows are made dense one mini-batch at a time.  As one tuple type
    (``input_type``), every input, dense or sparse, writable or read-only,
    runs the same compiled code, so the input's type adds no compiled
    variants."""
    n_features = X.shape[1]
    no_pixels, no_values = np.empty((0, n_features), np.uint8), np.empty((0, n_features), dtype)
    if is_sparse(X):
        scale = 1.0 / 255.0 if X.dtype == np.uint8 else 1.0
        return (no_pixels, no_values, X.data.astype(dtype, copy=False), X.indices.astype(np.int64, copy=False),
                X.indptr.astype(np.int64, copy=False)), scale
    X = np.ascontiguousarray(X)
    no_entries = np.empty(0, np.int64)
    no_csr = (np.empty(0, dtype), no_entries, no_entries)
    if X.dtype == np.uint8:
        return (X, no_values, *no_csr), 1.0 / 255.0
    return (no_pixels, X.astype(dtype, copy=False), *no_csr), 1.0


def n_rows(X):
    """The number of rows of the tuple ``_check_input`` returns."""
    return len(X[0]) + len(X[1]) + max(len(X[4]) - 1, 0)


def input_type(dtype):
    """The Numba type of the tuple ``_check_input`` returns: read-only arrays,
    which writable arrays convert to when they are passed."""
    t = numba.types
    dt = getattr(t, np.dtype(dtype).name)
    return t.Tuple((t.Array(t.uint8, 2, "C", readonly=True), t.Array(dt, 2, "C", readonly=True),
                    t.Array(dt, 1, "C", readonly=True), t.Array(t.int64, 1, "C", readonly=True),
                    t.Array(t.int64, 1, "C", readonly=True)))
