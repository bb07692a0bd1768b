"""What one compiled configuration of this backend is: everything that is
fixed at compile time, nothing that is not.

Fixed at compile time (``EpochSpec``): the layer count (the epoch is unrolled
layer by layer), the update rule (``OPT``), per layer whether its loops run in
parallel and the rows of its outer-product panel tiles, 0 for none (both from
the shapes and the ISA, ``shapes``), and the array types (parameter dtype,
input dtype, read-only or not).  Left as arguments: the layer sizes, activations, cost and every
hyperparameter.  They select branches of a few instructions in loops whose cost
is the multiply-adds, and as arguments they let one compiled epoch serve every
network with the same layer count and loop shapes (784-30-10 sigmoid and
784-100-10 ReLU share one), so a new network rarely means a new compile.

``PredictSpec`` is the same for ``predict_proba``: the layer count and the
array types.
"""

import json
from dataclasses import asdict, dataclass

import numpy as np

from fastmlp.backends.numba.jit import MOMENTUM, NESTEROV, SGD_PLAIN
from fastmlp.backends.numba.shapes import _panel_tiles, _parallel_flags
from fastmlp.network import Adam

#: ``OPT`` codes by name, for the descriptions and the generated files.
OPTIMISERS = {"sgd": SGD_PLAIN, "momentum": MOMENTUM, "nesterov": NESTEROV}


def optimiser_name(optimizer):
    """The update rule of an ``SGD`` (a compile-time choice): plain SGD when
    there is no momentum (Nesterov with zero momentum is plain SGD too), or
    Adam (``network.Adam``, its own epoch: ``adam``)."""
    if isinstance(optimizer, Adam):
        return "adam"
    if not optimizer.momentum:
        return "sgd"
    return "nesterov" if optimizer.nesterov else "momentum"


def input_types(X, dtype):
    """``(x_dtype, read_only)`` of ``X`` as ``shapes._check_input`` passes it to
    the kernels: uint8 stays uint8, other dtypes become the parameters' dtype (a
    copy, so writable), non-contiguous arrays are copied."""
    dtype = np.dtype(dtype)
    if X.dtype != np.uint8 and X.dtype != dtype or not X.flags.c_contiguous:
        return (X.dtype.name if X.dtype in (np.uint8, dtype) else dtype.name), False
    return X.dtype.name, not X.flags.writeable


@dataclass(frozen=True)
class PredictSpec:
    n_layers: int
    dtype: str
    x_dtype: str
    x_read_only: bool

    kind = "predict"

    def to_json(self):
        return json.dumps(asdict(self), sort_keys=True)

    def describe(self):
        return (f"{self.n_layers}-layer networks, {self.dtype} parameters, "
                f"{self.x_dtype}{' read-only' if self.x_read_only else ''} input")


@dataclass(frozen=True)
class EpochSpec:
    n_layers: int
    optimiser: str
    parallel: tuple
    panels: tuple
    dtype: str
    x_dtype: str
    x_read_only: bool

    kind = "epoch"

    def to_json(self):
        return json.dumps(asdict(self), sort_keys=True)

    def describe(self):
        loops = "".join("P" if p else "s" for p in self.parallel)
        panels = "".join(str(p) if p else "-" for p in self.panels)
        return (f"{self.n_layers}-layer networks, {self.optimiser}, loops {loops}, panels {panels}, "
                f"{self.dtype} parameters, {self.x_dtype}{' read-only' if self.x_read_only else ''} input")


def spec_from_json(text):
    """The spec that ``to_json`` wrote."""
    fields = json.loads(text)
    if "optimiser" in fields:
        fields["parallel"], fields["panels"] = tuple(fields["parallel"]), tuple(fields["panels"])
        return EpochSpec(**fields)
    return PredictSpec(**fields)


def epoch_spec(sizes, optimizer, batch_size, dtype, X):
    """The ``EpochSpec`` training ``sizes`` with ``optimizer`` in mini-batches of
    ``batch_size`` on input ``X`` (or on ``(x_dtype, read_only)``) needs."""
    x_dtype, read_only = X if isinstance(X, tuple) else input_types(X, dtype)
    return EpochSpec(len(sizes) - 1, optimiser_name(optimizer),
                     tuple(bool(p) for p in _parallel_flags(sizes, batch_size)),
                     _panel_tiles(sizes, batch_size, dtype),
                     np.dtype(dtype).name, x_dtype, read_only)


def predict_spec(sizes, dtype, X):
    """The ``PredictSpec`` of ``predict_proba`` for ``sizes`` on input ``X`` (or
    on ``(x_dtype, read_only)``)."""
    x_dtype, read_only = X if isinstance(X, tuple) else input_types(X, dtype)
    return PredictSpec(len(sizes) - 1, np.dtype(dtype).name, x_dtype, read_only)
