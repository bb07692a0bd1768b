"""What one compiled configuration of this backend is: everything that is
fixed at compile time, nothing that is not.

Fixed at compile time (``EpochSpec``): the layer count (the epoch is unrolled
layer by layer), the update rule (``OPT``), per layer whether its loops run in
parallel and the rows of its outer-product panel tiles, 0 for none, over its
inputs (hidden delta, update) and over its outputs (forward) (all from the
shapes and the ISA, ``shapes``), and the parameters' dtype.  Left as
arguments: the layer sizes, activations, cost and every hyperparameter.  They
select branches of a few instructions in loops whose cost is the multiply-adds,
and as arguments they let one compiled epoch serve every network with the same
layer count and loop shapes (784-30-10 sigmoid and 784-100-10 ReLU share one),
so a new network rarely means a new compile.  The input's type is not part of
it either: the kernels take the input as a pair of read-only arrays, uint8
pixels or values of the parameters' dtype (``shapes._check_input``), so uint8,
float, writable and read-only inputs all run one compiled epoch.

``PredictSpec`` is the same for ``predict_proba``: the layer count and the
parameters' dtype.
"""

import json
from dataclasses import asdict, dataclass

import numpy as np

from fastmlp.backends.numba.jit import MOMENTUM, SGD_PLAIN
from fastmlp.backends.numba.shapes import _forward_panel_tiles, _panel_tiles, _parallel_flags
from fastmlp.network import Adam

#: ``OPT`` codes by name, for the descriptions and the generated files.
OPTIMISERS = {"sgd": SGD_PLAIN, "momentum": MOMENTUM}


def optimiser_name(optimizer):
    """The update rule of an ``SGD`` as far as it is a compile-time choice:
    plain SGD when there is no momentum (Nesterov with zero momentum is plain
    SGD too), else "momentum", which covers Nesterov's (an argument of the
    compiled code); or Adam (``network.Adam``, its own epoch: ``adam``)."""
    if isinstance(optimizer, Adam):
        return "adam"
    return "momentum" if optimizer.momentum else "sgd"


@dataclass(frozen=True)
class PredictSpec:
    n_layers: int
    dtype: str

    kind = "predict"

    def to_json(self):
        return json.dumps(asdict(self), sort_keys=True)

    def describe(self):
        return f"{self.n_layers}-layer networks, {self.dtype} parameters"


@dataclass(frozen=True)
class EpochSpec:
    n_layers: int
    optimiser: str
    parallel: tuple
    panels: tuple
    forward_panels: tuple
    dtype: str

    kind = "epoch"

    def to_json(self):
        return json.dumps(asdict(self), sort_keys=True)

    def describe(self):
        loops = "".join("P" if p else "s" for p in self.parallel)
        panels = "".join(str(p) if p else "-" for p in self.panels)
        forward = "".join(str(p) if p else "-" for p in self.forward_panels)
        return (f"{self.n_layers}-layer networks, {self.optimiser}, loops {loops}, panels {panels}, "
                f"forward panels {forward}, {self.dtype} parameters")


def spec_from_json(text):
    """The spec that ``to_json`` wrote."""
    fields = json.loads(text)
    if "optimiser" in fields:
        for name in ("parallel", "panels", "forward_panels"):
            fields[name] = tuple(fields[name])
        return EpochSpec(**fields)
    return PredictSpec(**fields)


def epoch_spec(sizes, optimizer, batch_size, dtype):
    """The ``EpochSpec`` training ``sizes`` with ``optimizer`` in mini-batches of
    ``batch_size`` with parameters of ``dtype`` needs."""
    return EpochSpec(len(sizes) - 1, optimiser_name(optimizer),
                     tuple(bool(p) for p in _parallel_flags(sizes, batch_size)),
                     _panel_tiles(sizes, batch_size, dtype),
                     _forward_panel_tiles(sizes, batch_size, dtype),
                     np.dtype(dtype).name)


def predict_spec(sizes, dtype):
    """The ``PredictSpec`` of ``predict_proba`` for ``sizes`` with parameters of ``dtype``."""
    return PredictSpec(len(sizes) - 1, np.dtype(dtype).name)
