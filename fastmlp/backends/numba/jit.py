"""The compile settings every kernel file shares, and the integer codes the
kernels use for names (Numba cannot take strings cheaply).

Settings come from ``fastmlp.config`` (no kernel hard-codes a flag).  ``cache``
is imported first: it chooses where compiled code is kept before Numba
compiles anything.
"""

from fastmlp.backends.numba import cache as _numba_cache
from fastmlp import config
from fastmlp.functions import ACTIVATION_CODES, COST_CODES

from numba import njit  # noqa: E402  (after cache on purpose)

CACHE = bool(config.CACHE and _numba_cache.CACHE_OK)
#: Serial helpers (inlined into the kernels by LLVM).
serial = njit(fastmath=config.FASTMATH, cache=CACHE, error_model="numpy", nogil=True)
#: Kernels that contain ``prange`` loops.
parallel = njit(parallel=config.PARALLEL, fastmath=config.FASTMATH, cache=CACHE, error_model="numpy", nogil=True)

SIGMOID = ACTIVATION_CODES["sigmoid"]
TANH = ACTIVATION_CODES["tanh"]
RELU = ACTIVATION_CODES["relu"]
LEAKY_RELU = ACTIVATION_CODES["leaky_relu"]
SOFTMAX = ACTIVATION_CODES["softmax"]
QUADRATIC = COST_CODES["quadratic"]
CROSS_ENTROPY = COST_CODES["cross_entropy"]
NLL = COST_CODES["nll"]
