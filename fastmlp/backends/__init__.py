"""Backend registry.

A backend is a module offering the same functions with the same arguments:
``train_batches`` and ``predict_proba`` (what training and inference call),
the per-layer namesakes the equivalence tests compare (``dense_forward``,
``output_delta``, ``hidden_delta``, ``gradients``, ``sgd_update``), and the
hooks the model calls around them (``check_network``, ``prepare``,
``before_run``, ``threads``, ``call_guard``), so the model has no code path of its own per
backend.

Imported lazily, so ``import fastmlp`` does not pay for importing Numba until
the Numba backend is used.
"""

import importlib

#: backend name -> module implementing it
BACKENDS = {"numpy": "fastmlp.backends.reference", "numba": "fastmlp.backends.numba"}
DEFAULT_BACKEND = "numba"


def get_backend(name):
    """The module implementing backend ``name`` (``"numpy"`` or ``"numba"``)."""
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))}, got {name!r}")
    return importlib.import_module(BACKENDS[name])
