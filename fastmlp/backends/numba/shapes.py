"""Which kernel shape each layer takes, decided in Python from the layer
sizes, the mini-batch size and the dtype before the compiled epoch starts
(so a decision never depends on the thread count), and the conversions of the
inputs the kernels take.
"""

import numba
import numpy as np

from fastmlp.backends.numba import isa
from fastmlp.backends.numba.tile import MAX_TILE_ROWS, PANEL
from fastmlp.functions import ACTIVATION_CODES

#: A layer product with at least this many multiply-adds (m * n_in * n_out) runs
#: its loop over output rows in parallel; smaller ones run serially on the calling
#: thread, because a parallel region costs about 2 us to launch (measured; see
#: docs/performance.md).  Depends only on the shape, so determinism is kept.
PARALLEL_MIN_MACS = 120_000
#: A layer uses the outer-product panel kernels (``_hid_panel``,
#: ``_grad_update_panel``) for its first ``PANEL * (n_in // PANEL)`` input
#: columns when the mini-batch has at least this many samples (float32,
#: float64); smaller batches and the leftover columns use the row-block kernels.
#: From measurements (docs/performance.md: float64 tiles have half the rows and
#: lose to the row blocks at batch 64, win from 128); depends only on the shapes.
PANEL_MIN_BATCH = {"float32": 16, "float64": 128}


#: Layers with more output neurons than this sum their panel tiles over
#: ``MAX_TILE_ROWS`` rows (float32; half in float64) whatever the register file;
#: narrower ones use the rows that fit half the registers (``panel_tile_rows``).
#: Measured 2026-12-02 on an Intel Xeon (AVX-512, LLVM tuned to 256-bit
#: vectors, 32 registers) with its own code and with AVX2 code (16 registers),
#: seconds per epoch, medians of 2-3 interleaved runs (docs/benchmarks.md):
#: 784-1024-1024-10 float32 batch 256 took 6.4 s with 4 rows against 7.1 s with
#: 2 (AVX2 code: 8.0 against 12.1 with 1), while 784-128-64-10 float32 batch 64
#: took 0.30 s with 2 rows against 0.35 with 4 (AVX2: 0.34 with 1 against 0.45)
#: and 784-512-512-10 batch 128 1.53 s against 1.94 (AVX2: 2.0 against 2.45).
#: Widths between 512 and 1024 were not measured.
WIDE_LAYER = 512


def panel_tile_rows(n_out, dtype, host=None):
    """Rows of the panel tile for a layer of ``n_out`` neurons: as many as keep
    the ``rows x PANEL`` sums in half the vector registers of ``host`` (default
    ``isa.HOST``), at least 1, at most ``MAX_TILE_ROWS`` (half in float64), or
    the most for layers wider than ``WIDE_LAYER``.  zmm: 4 rows float32, 2
    float64; Intel AVX-512 code (ymm, 32 registers): 2 and 1; AVX2 (16 ymm): 1
    and 1."""
    host = isa.HOST if host is None else host
    itemsize = np.dtype(dtype).itemsize
    most = MAX_TILE_ROWS if itemsize == 4 else MAX_TILE_ROWS // 2
    if n_out > WIDE_LAYER:
        return most
    vectors_per_row = max(1, PANEL // host.lanes(itemsize))
    return max(1, min(most, (host.registers // 2) // vectors_per_row))


def _thread_buffers(n, dtype):
    """One ``(4, n)`` work buffer per thread (see ``_grad_update_block``)."""
    return np.zeros((numba.config.NUMBA_NUM_THREADS, 4, max(n, 1)), dtype)


def _codes(net):
    return np.array([ACTIVATION_CODES[a] for a in net.activations], dtype=np.int64)


def _parallel_flags(sizes, batch_size):
    """Per layer: run its loops in parallel?  From the multiply-adds per batch."""
    return np.array([batch_size * n_in * n_out >= PARALLEL_MIN_MACS
                     for n_in, n_out in zip(sizes[:-1], sizes[1:])], dtype=np.bool_)


def _panels(n_in, batch_size, dtype):
    """How many whole ``PANEL``-column panels of a layer's ``n_in`` inputs go to
    the panel kernels (none for small mini-batches, see ``PANEL_MIN_BATCH``)."""
    return n_in // PANEL if batch_size >= PANEL_MIN_BATCH[np.dtype(dtype).name] else 0


def _panel_counts(sizes, batch_size, dtype):
    """``_panels`` for every layer."""
    return np.array([_panels(n_in, batch_size, dtype) for n_in in sizes[:-1]], dtype=np.int64)


def _panel_tiles(sizes, batch_size, dtype):
    """Per layer, the rows of its panel tiles (``panel_tile_rows``), or 0 for a
    layer without panels: the compile-time constant ``PANELS`` of its kernels."""
    return tuple(panel_tile_rows(n_out, dtype) if _panels(n_in, batch_size, dtype) else 0
                 for n_in, n_out in zip(sizes[:-1], sizes[1:]))


def _check_input(X, dtype):
    X = np.ascontiguousarray(X)
    if X.dtype != np.uint8 and X.dtype != dtype:
        X = X.astype(dtype)
    return X, (1.0 / 255.0 if X.dtype == np.uint8 else 1.0)
