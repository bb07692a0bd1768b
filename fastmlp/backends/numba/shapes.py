"""Which kernel shape each layer takes, decided in Python from the layer
sizes, the mini-batch size and the dtype before the compiled epoch starts
(so a decision never depends on the thread count), and the conversions of the
inputs the kernels take.
"""

import numba
import numpy as np

from fastmlp.backends.numba import isa
from fastmlp.backends.numba.tile import MAX_TILE_ROWS, NARROW_ROWS, PANEL
from fastmlp.functions import ACTIVATION_CODES

#: A layer product with at least this many multiply-adds (m * n_in * n_out) runs
#: its loop over output rows in parallel; smaller ones run serially on the calling
#: thread, because a parallel region costs about 2 us to launch (measured; see
#: docs/performance.md).  Depends only on the shape, so determinism is kept.
PARALLEL_MIN_MACS = 120_000
#: A layer uses the outer-product panel kernels (``_hid_panel``,
#: ``_grad_update_columns``) for its first ``PANEL * (n_in // PANEL)`` input
#: columns when the mini-batch has at least this many samples (float32,
#: float64); smaller batches and the leftover columns use the row-block kernels.
#: From measurements (docs/performance.md: float64 tiles have half the rows and
#: lose to the row blocks at batch 64, win from 128); depends only on the shapes.
PANEL_MIN_BATCH = {"float32": 16, "float64": 128}
#: A layer's forward pass uses its output panels (``forward._fwd_panel``) from
#: this many outputs (and ``PANEL_MIN_BATCH`` samples), per dtype; None: never.
#: Measured on the Intel Xeon (AVX-512), 2026-12-03, whole epochs, interleaved
#: A/B against the row blocks alone, float32, median ratios: 784-1024-1024-10
#: batch 256 0.79 (AVX2 code 0.93), 784-512-512-10 batch 128 0.91 (AVX2 0.96),
#: 784-256-10 batch 64 0.99 (AVX2 0.87, pairs 0.81-1.43), 784-128-64-10 batch
#: 64 1.0 (AVX2 1.17: one or two work items per layer leave a core idle).
#: float64 784-1024-1024-10: 1.0 (six pairs, 0.80-1.11), a tie that cost about
#: 10 s more compiling, so float64 keeps the row blocks.  Depends only on the
#: shapes.
FWD_PANEL_MIN_OUTPUTS = {"float32": 512, "float64": None}
#: ``FWD_PANEL_MIN_OUTPUTS`` for a layer whose tiles are the narrow ones
#: (``tile.narrow_tile``), both dtypes.  Measured on an AMD EPYC Zen 4,
#: 2026-12-04, float64 256 x 1024 x 1024, the kernel alone, old and new code in
#: one process, calls interleaved: 1.23x the row blocks' speed with one thread
#: and 1.27x with two in AVX2 code, 1.23x with two in AVX-512 code;
#: docs/performance.md.
NARROW_FWD_PANEL_MIN_OUTPUTS = 512

#: The narrow tiles (``tile.narrow_tile``: 6 rows of 2 vectors, 4 on 32
#: registers) replace a register tile of at most ``NARROW_MAX_ROWS`` rows, from
#: ``NARROW_MIN_BITS`` vector bits on.  Narrower vectors (SSE, NEON) keep their
#: register tiles or the row blocks: unmeasured with narrow tiles.  Four rows
#: is the 4 x 64 zmm float32 tile of AVX-512: against it the 6 x 4 zmm narrow
#: tile ran the gradient + update at 1.09x and 1.12x the speed, the hidden
#: delta and the forward within 2 %, 784-1024-1024-10 float32 batch 256 at
#: 0.93x and 0.95x the epoch time (AMD EPYC Zen 4, 2026-12-05,
#: docs/performance.md "Narrow tiles").
NARROW_MAX_ROWS = 4
NARROW_MIN_BITS = 256


def panel_tile_rows(dtype, host=None):
    """Rows of a layer's panel tiles: as many as keep the ``rows x PANEL`` sums
    in half the vector registers of ``host`` (default ``isa.HOST``), at most
    ``MAX_TILE_ROWS`` (half in float64), or 0 when one row does not fit: then
    the layers use the row blocks alone (``_panels``).  Where that leaves at
    most ``NARROW_MAX_ROWS`` rows on 256-bit vectors or wider, the narrow
    tiles instead (``NARROW_ROWS``, ``tile.narrow_tile``).  The panel kernels
    use the registers' full width (``tile.full_width_vectors``), so AVX-512
    (zmm, 32 registers, Intel's parts too) and AVX2 (16 ymm): narrow for both
    dtypes; 128-bit vectors, 16 registers: none (a row that takes every
    register lost to the row blocks, SSE2 code float32 1 x 64 xmm, Intel Xeon,
    2026-12-03: 0.84x the speed).

    Measured on an AMD EPYC Zen 4, 2026-12-04, whole epochs, old and new code
    in one process, epochs interleaved, medians (docs/performance.md): with
    AVX2 code the narrow tiles took 784-1024-1024-10 batch 256 to 0.85x the
    epoch time in float32 (against 1 x 64 tiles) and 0.86x in float64
    (against the row blocks), 784-512-512-10 batch 128 to 0.88x and 0.72x;
    with AVX-512 code float64 0.90x (against 2 x 64 zmm), float32 0.93x and
    0.95x (2026-12-05, against 4 x 64 zmm, with four vectors a row:
    ``tile.narrow_vectors``; with two, the update ran at 0.85x the speed).

    Measured 2026-12-02 on an Intel Xeon (AVX-512) with 256-bit code and with
    AVX2 code, seconds per epoch, medians of interleaved runs
    (docs/benchmarks.md): with packed panels (``tile``) the fitting tile beat
    the tall one on every network, 784-1024-1024-10 batch 256 included
    (float32 4.7 s against 5.2 with 4 rows; AVX2 code 6.2 against 7.2; float64
    11.5 against 15.1 with 2 rows, AVX2 13.5 against 19.1)."""
    host = isa.HOST if host is None else host
    itemsize = np.dtype(dtype).itemsize
    most = MAX_TILE_ROWS if itemsize == 4 else MAX_TILE_ROWS // 2
    vectors_per_row = max(1, PANEL // host.panel_lanes(itemsize))
    rows = min(most, (host.registers // 2) // vectors_per_row)
    return NARROW_ROWS if rows <= NARROW_MAX_ROWS and host.panel_bits >= NARROW_MIN_BITS else rows


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
    rows = panel_tile_rows(dtype) if tile_rows is None else tile_rows
    return n_in // PANEL if rows and batch_size >= PANEL_MIN_BATCH[np.dtype(dtype).name] else 0


def _forward_panels(n_out, batch_size, dtype, tile_rows=None):
    """How many whole ``PANEL``-output panels of a layer's ``n_out`` outputs its
    forward pass computes with ``forward._fwd_panel``: as ``_panels``, and only
    from ``FWD_PANEL_MIN_OUTPUTS`` outputs (``NARROW_FWD_PANEL_MIN_OUTPUTS``
    with narrow tiles)."""
    rows = panel_tile_rows(dtype) if tile_rows is None else tile_rows
    least = NARROW_FWD_PANEL_MIN_OUTPUTS if rows == NARROW_ROWS else FWD_PANEL_MIN_OUTPUTS[np.dtype(dtype).name]
    return _panels(n_out, batch_size, dtype, rows) if least is not None and n_out >= least else 0


def _panel_counts(sizes, batch_size, dtype):
    """``_panels`` for every layer."""
    return np.array([_panels(n_in, batch_size, dtype) for n_in in sizes[:-1]], dtype=np.int64)


def _panel_tiles(sizes, batch_size, dtype):
    """Per layer, the rows of the panel tiles of its hidden delta and update,
    whose panels run over its inputs (``panel_tile_rows``), or 0 for a layer
    without them: the compile-time constant ``PANELS`` of its kernels."""
    return tuple(panel_tile_rows(dtype) if _panels(n_in, batch_size, dtype) else 0 for n_in in sizes[:-1])


def _forward_panel_tiles(sizes, batch_size, dtype):
    """Per layer, the rows of the panel tiles of its forward pass, whose panels
    run over its outputs (``forward._fwd_panel``), or 0: the compile-time
    constant ``FWD_PANELS`` of its forward kernels."""
    return tuple(panel_tile_rows(dtype) if _forward_panels(n_out, batch_size, dtype) else 0 for n_out in sizes[1:])


def _check_input(X, dtype):
    """The input rows ``X`` as every compiled kernel takes them: the pair
    ``(pixels, values)``, one of them empty, and the scale of (X).  uint8
    pixels stay uint8 (they are divided by 255 as each mini-batch is gathered,
    so the training set is not copied); anything else becomes values of the
    parameters' ``dtype``.  As one pair type (``input_pair_type``), every input
    dtype, writable or read-only, runs the same compiled code (the test suite
    compiles 37 configurations so; with the input's type in them it compiled
    62, docs/performance.md)."""
    X = np.ascontiguousarray(X)
    n_features = X.shape[1]
    if X.dtype == np.uint8:
        return (X, np.empty((0, n_features), dtype)), 1.0 / 255.0
    return (np.empty((0, n_features), np.uint8), X.astype(dtype, copy=False)), 1.0


def input_pair_type(dtype):
    """The Numba type of the pair ``_check_input`` returns: read-only arrays,
    which writable arrays convert to when they are passed."""
    t = numba.types
    return t.Tuple((t.Array(t.uint8, 2, "C", readonly=True),
                    t.Array(getattr(t, np.dtype(dtype).name), 2, "C", readonly=True)))
