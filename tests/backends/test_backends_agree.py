"""End to end through ``MLP``: the numba backend trains exactly what the NumPy
reference trains, for combinations of every option (hypothesis picks them).

Per-kernel equivalence lives in test_kernels.py; this file checks the options
that the model layers on top (initialisations, schedules, validation split,
early stopping, momentum, L2) reach both backends the same way.
"""

import numpy as np
import numpy.testing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastmlp import MLP
from fastmlp.config import TEST_ATOL_FLOAT64, TEST_RTOL_FLOAT32

HIDDEN = ["sigmoid", "tanh", "relu", "leaky_relu"]
OUTPUT_COST = [("sigmoid", "quadratic"), ("tanh", "quadratic"), ("relu", "quadratic"),
               ("leaky_relu", "quadratic"), ("sigmoid", "cross_entropy"), ("softmax", "nll")]


def data(n, n_in, n_classes, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, n_in)).astype(np.uint8), rng.integers(0, n_classes, n).astype(np.uint8)


@st.composite
def configurations(draw):
    n_hidden = draw(st.integers(0, 3))
    sizes = [draw(st.integers(2, 24))] + [draw(st.integers(1, 17)) for _ in range(n_hidden)] + [draw(st.integers(2, 7))]
    output, cost = draw(st.sampled_from(OUTPUT_COST))
    activations = [draw(st.sampled_from(HIDDEN)) for _ in range(n_hidden)] + [output]
    init = [draw(st.sampled_from(["normal", "xavier", "he"])) for _ in activations]
    momentum = draw(st.sampled_from([0.0, 0.5, 0.9]))
    fit = dict(
        epochs=draw(st.integers(1, 2)),
        # Batches of several samples: with batch 1 and ReLU, hundreds of updates make
        # a weighted input cross the kink at 0 on one side in one backend and on
        # the other side in the other (a rounding-level difference becomes a jump);
        # batch size 1 is covered step by step in test_kernels.py.
        batch_size=draw(st.sampled_from([5, 10, 32])),
        # Moderate rates: with batch 1, momentum 0.9 and lr 0.5, a few hundred updates
        # amplify last-bit rounding differences past 1e-10 (chaos, not a bug).
        learning_rate=draw(st.sampled_from([0.01, 0.05, 0.1])),
        momentum=momentum,
        nesterov=momentum > 0 and draw(st.booleans()),
        l2=draw(st.sampled_from([0.0, 1e-4, 1e-2])),
        schedule=draw(st.sampled_from(["constant", "step", "cosine"])),
    )
    if draw(st.booleans()):
        fit.update(val_split=50, patience=draw(st.integers(1, 2)))
    dtype = draw(st.sampled_from(["float64", "float32"]))
    return dict(sizes=sizes, activation=activations, cost=cost, init=init, dtype=dtype), fit


def rounding_sensitivity(model_args, fit_args, seed, X, y):
    """How far the reference moves from itself when every initial parameter is
    nudged by one unit in the last place: the amplification of rounding noise by
    the training dynamics.  In some trajectories (large N(0, 1) weights, many
    small batches) that noise grows by orders of magnitude within one epoch, and
    no implementation with a different summation order can stay closer than it.

    Three nudges (all up, all down, random signs), the largest move counts: with
    ReLU a weighted input within rounding of 0 takes the derivative's jump on
    one side or the other, and which nudge finds such an input is luck (found by
    hypothesis in CI: 14-9-6-11-3 tanh/relu float32, seed 11783; numba moved
    0.14 from the reference, the reference itself 0.00075 nudged up, 0.17
    nudged down; with tanh instead of ReLU both stay below 6e-5).

    Returns ``(move, epochs)``: the largest move among the nudged runs that
    trained as many epochs as the un-nudged one (``inf`` if none did), and the
    set of epoch counts the four runs reached (early stopping may stop a nudged
    run at another epoch)."""
    b = MLP(backend="numpy", seed=seed, **model_args).fit(X, y, **fit_args)
    signs = np.random.default_rng(seed).random(b.params_.shape) < 0.5
    moves, epochs = [], {len(b.history_)}
    for nudge in (lambda p: np.nextafter(p, np.inf), lambda p: np.nextafter(p, -np.inf),
                  lambda p: np.where(signs, np.nextafter(p, np.inf), np.nextafter(p, -np.inf))):
        a = MLP(backend="numpy", seed=seed, **model_args).initialize()
        a.params_[...] = nudge(a.params_)
        a.warm_start = True
        a.fit(X, y, **fit_args)
        epochs.add(len(a.history_))
        if len(a.history_) == len(b.history_):
            moves.append(float(np.abs(a.params_ - b.params_).max()))
    return (max(moves) if moves else np.inf), epochs


# derandomize: the same 40 combinations in every run, so CI does not pass or fail
# by the luck of the draw on chaotic trajectories; change the examples on purpose
# (e.g. max_examples) to explore further.
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(configurations(), st.integers(0, 2**16))
def test_numba_model_equals_reference_model(configuration, seed):
    model_args, fit_args = configuration
    X, y = data(200, model_args["sizes"][0], model_args["sizes"][-1], seed)
    ref = MLP(backend="numpy", seed=seed, **model_args).fit(X, y, **fit_args)
    fast = MLP(backend="numba", seed=seed, **model_args).fit(X, y, **fit_args)
    difference = float(np.abs(fast.params_ - ref.params_).max())
    if model_args["dtype"] == "float64":
        tolerance = TEST_ATOL_FLOAT64
    else:
        tolerance = TEST_RTOL_FLOAT32 * max(1.0, float(np.abs(ref.params_).max()))
    if difference > tolerance or len(ref.history_) != len(fast.history_):
        # Allowed only where the reference itself is that sensitive to rounding
        # (on an AMD EPYC Zen 4, 2026-12-01: 2 of the 40 examples with AVX-512
        # code, 1 with AVX2 code, all with a finite sensitivity).
        sensitivity, epochs = rounding_sensitivity(model_args, fit_args, seed, X, y)
        assert len(fast.history_) in epochs, (
            f"numba stopped after {len(fast.history_)} epochs; the reference, nudged by 1 ulp or not, "
            f"after {sorted(epochs)}")
        if len(fast.history_) == len(ref.history_):
            assert difference <= max(tolerance, 100 * sensitivity), (
                f"numba differs from the reference by {difference:.3g}; tolerance {tolerance:.3g}, "
                f"the reference's own sensitivity to 1-ulp changes {sensitivity:.3g}")
        return
    for r, f in zip(ref.history_, fast.history_):
        assert abs(f["loss"] - r["loss"]) <= 1e-4 * max(1, abs(r["loss"]))


def test_one_update_agrees_to_rounding_in_a_sensitive_trajectory():
    # The trajectory that motivated rounding_sensitivity: 2-3-9-2-5 tanh with
    # N(0, 1) weights.  Started from the same state, every single mini-batch
    # update of numba equals the reference's to within 4 ulp of the largest weight.
    from fastmlp.backends import numba as kernels
    from fastmlp.backends import reference
    from fastmlp.network import SGD, Net, init_params

    X, y = data(200, 2, 5, 0)
    net = Net((2, 3, 9, 2, 5), ("sigmoid", "tanh", "tanh", "tanh"), "quadratic")
    params = init_params(net.sizes, ["normal"] * 4, np.random.default_rng(0), np.dtype("float64"))
    order = np.random.default_rng(1).permutation(200)
    for start in range(0, 200, 5):
        rows = order[start:start + 5]
        other = params.copy()
        reference.train_batches(params, np.zeros_like(params), net, SGD(0.05), X, y, rows, 5)
        kernels.train_batches(other, np.zeros_like(other), net, SGD(0.05), X, y, rows, 5)
        npt.assert_allclose(other, params, rtol=0, atol=4 * np.spacing(np.abs(params).max()))
