"""Settings shared by the backends, in one place so no kernel hard-codes them.

The fast-math flags are read once at import time: changing them afterwards has no
effect on kernels that are already compiled.  ``FASTMLP_FASTMATH=0`` turns the
fast-math flags off (useful when hunting a numerical difference).
"""

import os

#: Fast-math flags for the Numba kernels.  ``reassoc`` and ``contract`` let LLVM
#: vectorise the dot-product reductions and fuse multiply-adds; ``nnan``/``ninf``
#: are deliberately left out so NaN and inf checks stay meaningful (umap PR #1255
#: shows what a blanket ``fastmath=True`` can do).
FASTMATH = (
    {"reassoc", "contract", "nsz", "arcp"}
    if os.environ.get("FASTMLP_FASTMATH", "1") != "0"
    else False
)

#: Tolerances of the equivalence tests (numba versus the NumPy reference).
TEST_ATOL_FLOAT64 = 1e-10
TEST_RTOL_FLOAT32 = 1e-4
