"""What a network is: its description (`Net`), its optimiser settings (`SGD`,
`Adam`) and the layout of its parameters in one flat buffer.

All weights and biases live in a single contiguous 1-D array, layer after layer
(``W_1, b_1, W_2, b_2, ...``), with ``W_l`` of shape ``(n_out, n_in)`` row-major,
so row ``j`` of ``W_l`` (the weights into neuron ``j``) is contiguous.  Both
backends, the model file and the optimiser state use this layout; ``unpack``
gives per-layer views that read and write the same memory.
"""

from typing import NamedTuple

import numpy as np

from fastmlp.functions import init_layer


class Net(NamedTuple):
    """The architecture: layer widths, one activation per non-input layer, the cost."""

    sizes: tuple  # (n_0, n_1, ..., n_L), n_0 = input features
    activations: tuple  # (f_1, ..., f_L) by name, see functions.ACTIVATIONS
    cost: str  # see functions.COSTS


class SGD(NamedTuple):
    """Mini-batch gradient descent settings for one epoch (eq. U1-U4 of docs/math.md)."""

    lr: float
    momentum: float = 0.0
    nesterov: bool = False
    l2: float = 0.0
    max_norm: float = 0.0  # (U8) > 0: the largest norm of a hidden unit's incoming weights


class Adam(NamedTuple):
    """Adam settings for one call of ``train_batches`` (eq. U6 of docs/math.md).

    ``t`` is the number of Adam steps taken before this call: batch ``k`` of the
    call (0-based) is step ``t + k + 1``, which sets the bias correction.  The
    optimiser state (first moments, then second moments) is a flat buffer twice
    the size of the parameters (``optimizer_state_size``).
    """

    lr: float
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-8
    l2: float = 0.0
    t: int = 0
    max_norm: float = 0.0  # (U8), as for SGD


def single_logistic(net):
    """Is ``net`` a two-class network with one sigmoid output unit?  Its target
    is the label itself (eq. Y' of docs/math.md), its prediction ``a > 0.5``."""
    return net.sizes[-1] == 1 and net.activations[-1] == "sigmoid"


def optimizer_state_size(optimizer, n):
    """Length of the flat optimiser state of a network with ``n`` parameters:
    one velocity per parameter for SGD, two moments for Adam."""
    return 2 * n if isinstance(optimizer, Adam) else n


def n_params(sizes):
    """Number of weights and biases of a network with these layer widths."""
    return sum((n_in + 1) * n_out for n_in, n_out in zip(sizes[:-1], sizes[1:]))


def weight_offsets(sizes):
    """Start of ``W_l`` in the flat buffer for each layer; ``b_l`` follows ``W_l``."""
    offsets, start = [], 0
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        offsets.append(start)
        start += (n_in + 1) * n_out
    return np.array(offsets, dtype=np.int64)


def unpack(params, sizes):
    """Per-layer views ``(weights, biases)`` into the flat buffer ``params``."""
    weights, biases = [], []
    for start, n_in, n_out in zip(weight_offsets(sizes), sizes[:-1], sizes[1:]):
        weights.append(params[start:start + n_out * n_in].reshape(n_out, n_in))
        biases.append(params[start + n_out * n_in:start + (n_in + 1) * n_out])
    return weights, biases


def init_params(sizes, inits, rng, dtype):
    """A new flat parameter buffer drawn from ``rng`` (eq. I1-I3).

    Drawn in float64 and then cast, so float32 and float64 networks with the same
    seed start from the same numbers (rounded).
    """
    params = np.empty(n_params(sizes), dtype=dtype)
    for W, b, n_in, n_out, init in zip(*unpack(params, sizes), sizes[:-1], sizes[1:], inits):
        W[...], b[...] = init_layer(rng, n_in, n_out, init)
    return params
