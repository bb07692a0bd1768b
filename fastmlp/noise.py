"""The randomness of training beyond the shuffle: dropout masks and input
shifts (augmentation), from a counter-based generator (eq. R1-R3, R6 of
docs/math.md).

Whether unit ``j`` of layer input ``k`` is kept for sample ``i`` in epoch
``e``, and how far image ``i`` is shifted in epoch ``e``, are pure functions
of ``(seed, e, i, k, j)``: 64-bit hashes of those numbers.  No generator
state is carried from one draw to the next, so the draws do not depend on
the order of the samples within an epoch, the batch size, how a batch is
split over threads, or the backend: the NumPy reference (here) and the
Numba kernels (``fastmlp.backends.numba.dropout``) compute the same
integers.

The hash is SplitMix64's output function (Steele, Lea and Flood, "Fast
splittable pseudorandom number generators", OOPSLA 2014), a bijection on
64-bit integers whose output passes BigCrush; it is applied twice, once to
fold the sample and the layer into the epoch's key and once per unit:

    (R1)  key   = mix(seed * PHI + epoch)                      once per epoch
    (R2)  row   = mix(key ^ (sample * ROW + layer))            once per sample and layer
    (R3)  keep  = mix(row + unit * PHI) >= threshold(p)         one per unit

with all arithmetic modulo 2**64 and ``threshold(p) = floor(p 2**64)``, so a
unit is dropped with probability ``p`` (to within 2**-64).
"""

import numbers
from typing import NamedTuple

import numpy as np

#: 2**64 / golden ratio, odd: SplitMix64's increment.
PHI = 0x9E3779B97F4A7C15
#: An odd multiplier that spreads sample indices over the 64 bits before the
#: layer is added: 2**64 divided by the real root of x**4 = x + 1 (1.2207...,
#: a generalised golden ratio), so its bits are as irregular as PHI's.
ROW = 0xD1B54A32D192ED03
MASK64 = (1 << 64) - 1
_M1, _M2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


#: The "layer" under which an image's shift is hashed (R6): no layer input
#: has this index, so shifts and dropout masks are independent draws.
SHIFT_LAYER = 1 << 32


class Noise(NamedTuple):
    """The random changes of one epoch of training.  ``key``: the epoch's key
    (R1, ``epoch_key``); ``rates[k]``: the probability of dropping each unit
    of layer input ``k`` (0: the network's inputs, 1..L-1: the hidden
    layers' activations; the output layer is never dropped), ``()`` for no
    dropout; ``shift``: the largest shift of an input image in pixels, along
    each axis (R6), 0 for none."""

    key: int
    rates: tuple = ()
    shift: int = 0


def mix(z):
    """SplitMix64's output function on a Python int (modulo 2**64)."""
    z &= MASK64
    z = ((z ^ (z >> 30)) * _M1) & MASK64
    z = ((z ^ (z >> 27)) * _M2) & MASK64
    return z ^ (z >> 31)


def mix_array(z):
    """``mix`` on a uint64 array (NumPy's uint64 arithmetic wraps modulo 2**64)."""
    z = z ^ (z >> np.uint64(30))
    z = z * np.uint64(_M1)
    z = z ^ (z >> np.uint64(27))
    z = z * np.uint64(_M2)
    return z ^ (z >> np.uint64(31))


def epoch_key(seed, epoch):
    """(R1) The key of ``epoch`` (1-based) of a model with ``seed``."""
    return mix((int(seed) * PHI + int(epoch)) & MASK64)


def threshold(rate):
    """(R3) The integer a unit's hash must reach to be kept: ``floor(rate 2**64)``
    (0 for rate 0: every unit is kept)."""
    return min(int(rate * 2.0**64), MASK64)


def scale(rate):
    """Inverted dropout: kept units are multiplied by ``1 / (1 - rate)`` during
    training, so no scaling is needed at prediction."""
    return 1.0 / (1.0 - rate)


def keep(key, samples, layer, n_units, rate):
    """(R2, R3) Which units of layer input ``layer`` are kept for each of the
    ``samples`` (indices into the training set): a bool array
    ``(len(samples), n_units)``."""
    with np.errstate(over="ignore"):
        rows = np.asarray(samples, dtype=np.uint64) * np.uint64(ROW) + np.uint64(layer)
        rows = mix_array(np.uint64(key) ^ rows)
        hashes = mix_array(rows[:, None] + np.arange(n_units, dtype=np.uint64) * np.uint64(PHI))
    return hashes >= np.uint64(threshold(rate))


def check_rates(rates, n_layers):
    """``rates`` as a tuple of one float in [0, 1) per layer input: the
    network's inputs and each hidden layer, ``n_layers`` (the weight layers)
    in all.  Also accepted: one number (for every hidden layer, none on the
    inputs) and two (the inputs, then every hidden layer).  Raises
    ValueError/TypeError naming what was wrong."""
    if isinstance(rates, numbers.Real) and not isinstance(rates, bool):
        rates = (0.0, float(rates))
    try:
        rates = tuple(float(r) for r in rates)
    except (TypeError, ValueError):
        raise TypeError(f"dropout must be a rate or one rate per layer input, got {rates!r}") from None
    if len(rates) == 2 and n_layers > 2:
        rates = (rates[0],) + (rates[1],) * (n_layers - 1)
    if n_layers == 1 and len(rates) == 2 and rates[1] == 0.0:  # no hidden layer: the inputs only
        rates = rates[:1]
    if len(rates) != n_layers:
        raise ValueError(f"dropout needs one rate for the inputs and one per hidden layer ({n_layers} in all), "
                         f"or two (inputs, hidden), got {len(rates)}")
    for r in rates:
        if not 0.0 <= r < 1.0:
            raise ValueError(f"every dropout rate must be in [0, 1), got {r!r}")
    return rates


def shifts(key, samples, radius):
    """(R6) The shift ``(dy, dx)`` of each image of ``samples`` in the epoch
    of ``key``: each uniform in ``-radius..radius``, from one hash per image
    (its low and high 32 bits).  Two int64 arrays."""
    with np.errstate(over="ignore"):
        rows = np.asarray(samples, dtype=np.uint64) * np.uint64(ROW) + np.uint64(SHIFT_LAYER)
        h = mix_array(np.uint64(key) ^ rows)
    span = np.uint64(2 * radius + 1)
    dy = (h >> np.uint64(32)) % span
    dx = (h & np.uint64(0xFFFFFFFF)) % span
    return dy.astype(np.int64) - radius, dx.astype(np.int64) - radius


def shift_images(A, side, dy, dx):
    """(R6) Each row of ``A`` (an image of ``side x side`` pixels, row-major)
    moved ``dy[i]`` rows down and ``dx[i]`` columns right; pixels moved in
    from outside are 0.  Returns a new array."""
    images = A.reshape(len(A), side, side)
    out = np.zeros_like(images)
    for i, (y, x) in enumerate(zip(dy, dx)):
        src = images[i, max(0, -y):side - max(0, y), max(0, -x):side - max(0, x)]
        out[i, max(0, y):max(0, y) + src.shape[0], max(0, x):max(0, x) + src.shape[1]] = src
    return out.reshape(A.shape)


def image_side(n_inputs):
    """The side of the square images of ``n_inputs`` pixels (28 for 784), or
    None when ``n_inputs`` is not a square."""
    side = int(round(n_inputs ** 0.5))
    return side if side * side == n_inputs else None
