"""Backend registry: a backend is a module with ``train_batches`` and
``predict_proba`` (and the per-layer namesakes) taking the same arguments.

Imported lazily, so ``import fastmlp`` does not pay for importing Numba until
the Numba backend is used.
"""

import importlib

#: backend name -> module implementing it
BACKENDS = {"numpy": "fastmlp.reference", "numba": "fastmlp.kernels"}
DEFAULT_BACKEND = "numba"


def get_backend(name):
    """The module implementing backend ``name`` (``"numpy"`` or ``"numba"``)."""
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))}, got {name!r}")
    return importlib.import_module(BACKENDS[name])
