"""Adam (U6), the identity activation (A6) and the single logistic output (Y'):
the reference against independent formulations (scikit-learn's own optimiser,
an element-by-element loop, central differences)."""

import math

import numpy as np
import numpy.testing as npt
import pytest
from helpers import ties_within

from fastmlp.backends import reference
from fastmlp.functions import COSTS
from fastmlp.network import Adam, Net, init_params, single_logistic, unpack


def make_params(sizes, seed=0, init="xavier", dtype=np.float64):
    rng = np.random.default_rng(seed)
    params = init_params(sizes, [init] * (len(sizes) - 1), rng, np.dtype(dtype))
    params += (0.1 * rng.standard_normal(len(params))).astype(dtype)  # non-zero biases
    return params


def test_adam_update_by_hand():
    """(U6) element by element, with the bias correction written out, for
    three steps (the correction differs at each)."""
    rng = np.random.default_rng(0)
    W, b = rng.standard_normal((3, 4)), rng.standard_normal(3)
    state = [np.zeros_like(W), np.zeros_like(b), np.zeros_like(W), np.zeros_like(b)]
    adam = Adam(lr=0.01, beta_1=0.8, beta_2=0.95, epsilon=1e-6, l2=0.3)
    expect_W, expect_b = W.copy(), b.copy()
    m = {"W": np.zeros_like(W), "b": np.zeros_like(b)}
    v = {"W": np.zeros_like(W), "b": np.zeros_like(b)}
    for t in (1, 2, 3):
        dW, db = rng.standard_normal((3, 4)), rng.standard_normal(3)
        reference.adam_update(W, b, dW, db, *state, adam, t)
        for name, P, dP, decay in (("W", expect_W, dW, 0.3), ("b", expect_b, db, 0.0)):
            for idx in np.ndindex(P.shape):
                g = dP[idx] + decay * P[idx]
                m[name][idx] = 0.8 * m[name][idx] + 0.2 * g
                v[name][idx] = 0.95 * v[name][idx] + 0.05 * g * g
                m_hat = m[name][idx] / (1 - 0.8 ** t)
                v_hat = v[name][idx] / (1 - 0.95 ** t)
                # Kingma & Ba's form with bias-corrected moments; scikit-learn folds the
                # corrections into the rate, which is the same step with their epsilon
                # divided by sqrt(1 - b2^t)
                eps_hat = 1e-6 / math.sqrt(1 - 0.95 ** t)
                P[idx] -= 0.01 * m_hat / (math.sqrt(v_hat) + eps_hat)
        npt.assert_allclose(W, expect_W, rtol=1e-13, atol=1e-15)
        npt.assert_allclose(b, expect_b, rtol=1e-13, atol=1e-15)
        npt.assert_allclose(state[0], m["W"], rtol=1e-13)
        npt.assert_allclose(state[2], v["W"], rtol=1e-13)


def test_adam_update_equals_sklearn_optimizer():
    """scikit-learn's AdamOptimizer, given the same gradients (with L2 added to
    the weights' as its MLP does), takes the same steps."""
    from_sklearn = pytest.importorskip("sklearn.neural_network._stochastic_optimizers")
    rng = np.random.default_rng(1)
    W, b = rng.standard_normal((5, 3)), rng.standard_normal(5)
    theirs = [W.T.copy(), b.copy()]
    optimizer = from_sklearn.AdamOptimizer(theirs, 0.003, 0.9, 0.999, 1e-8)
    state = [np.zeros_like(W), np.zeros_like(b), np.zeros_like(W), np.zeros_like(b)]
    adam = Adam(lr=0.003, l2=0.05)
    for t in range(1, 6):
        dW, db = rng.standard_normal((5, 3)), rng.standard_normal(5)
        optimizer.update_params(theirs, [dW.T + 0.05 * theirs[0], db])
        reference.adam_update(W, b, dW, db, *state, adam, t)
        npt.assert_allclose(W.T, theirs[0], rtol=0, atol=1e-14)
        npt.assert_allclose(b, theirs[1], rtol=0, atol=1e-14)


@pytest.mark.parametrize("batch_size", [1, 4, 7, 30])
def test_train_batches_adam_counts_steps_across_calls(batch_size):
    """Batch k of a call is step t + k + 1: two calls (the second with t
    advanced by the batches of the first) equal one call over both halves."""
    net = Net((6, 5, 3), ("tanh", "softmax"), "nll")
    rng = np.random.default_rng(2)
    X, y = rng.random((30, 6)), rng.integers(0, 3, 30).astype(np.uint8)
    order = np.arange(30, dtype=np.int64)
    whole, parts = make_params(net.sizes), make_params(net.sizes)
    s_whole, s_parts = np.zeros(2 * len(whole)), np.zeros(2 * len(whole))
    reference.train_batches(whole, s_whole, net, Adam(0.01), X, y, order, batch_size)
    n_first = (15 // batch_size) * batch_size or batch_size
    reference.train_batches(parts, s_parts, net, Adam(0.01), X, y, order[:n_first], batch_size)
    reference.train_batches(parts, s_parts, net, Adam(0.01, t=-(-n_first // batch_size)), X, y,
                            order[n_first:], batch_size)
    npt.assert_allclose(parts, whole, rtol=0, atol=1e-15)
    npt.assert_allclose(s_parts, s_whole, rtol=0, atol=1e-15)


def test_adam_float32_stays_float32():
    net = Net((4, 3, 2), ("relu", "softmax"), "nll")
    params = make_params(net.sizes, dtype=np.float32)
    state = np.zeros(2 * len(params), np.float32)
    X = np.random.default_rng(3).random((8, 4)).astype(np.float32)
    reference.train_batches(params, state, net, Adam(0.01), X, np.zeros(8, np.uint8), np.arange(8), 4)
    assert params.dtype == np.float32 and state.dtype == np.float32 and np.isfinite(params).all()


@pytest.mark.parametrize("hidden", ["identity", "tanh"])
@pytest.mark.parametrize("output, cost", [("sigmoid", "cross_entropy"), ("sigmoid", "quadratic")])
def test_single_logistic_output_and_identity_gradients(hidden, output, cost):
    """(Y') a one-unit sigmoid output trains towards the label itself, and (A6)
    identity layers backpropagate unchanged: backprop against central
    differences of the cost, as tests/backends/test_gradcheck.py does."""
    net = Net((5, 4, 3, 1), (hidden, "tanh", output), cost)
    params = make_params(net.sizes, seed=4)
    rng = np.random.default_rng(5)
    A0, y = rng.random((9, 5)), rng.integers(0, 2, 9)
    Y = reference.targets(y, net, params.dtype)
    npt.assert_array_equal(Y[:, 0], y)

    def cost_at(p):
        Zs, As = reference.forward(*unpack(p, net.sizes), net.activations, A0)
        return COSTS[net.cost](Zs[-1], As[-1], Y)

    _, dWs, dbs, _ = reference.backprop(*unpack(params, net.sizes), net, A0, Y)
    analytic = np.concatenate([np.concatenate([dW.ravel(), db]) for dW, db in zip(dWs, dbs)])
    numeric = np.empty_like(params)
    h = 1e-6
    for i in range(len(params)):
        up, down = params.copy(), params.copy()
        up[i] += h
        down[i] -= h
        numeric[i] = (cost_at(up) - cost_at(down)) / (2 * h)
    npt.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-9)


def test_single_logistic_accuracy_is_thresholded():
    net = Net((2, 1), ("sigmoid",), "cross_entropy")
    params = np.array([1.0, -1.0, 0.0])  # a = sigmoid(x0 - x1)
    X = np.array([[2.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
    y = np.array([1, 0, 0], np.uint8)  # the last is wrong
    _, n_correct = reference.train_batches(params, np.zeros(6), net, Adam(1e-9), X, y, np.arange(3), 3)
    assert n_correct == 2


# --- the Numba backend's compiled epoch against the reference ----------------------

def _data(sizes, n, dtype, uint8, seed):
    rng = np.random.default_rng(seed)
    if uint8:
        X = rng.integers(0, 256, (n, sizes[0])).astype(np.uint8)
    else:
        X = rng.random((n, sizes[0])).astype(dtype)
    y = rng.integers(0, max(sizes[-1], 2), n).astype(np.uint8)
    return X, y, rng.permutation(n).astype(np.int64)


def _assert_close(actual, expected, dtype):
    """The project's equivalence tolerances (fastmlp.config): float64 within
    1e-10 absolute, float32 within 1e-4 relative (and 1e-6 absolute near 0)."""
    from fastmlp import config

    if np.dtype(dtype) == np.float64:
        npt.assert_allclose(actual, expected, rtol=0, atol=config.TEST_ATOL_FLOAT64)
    else:
        npt.assert_allclose(actual, expected, rtol=config.TEST_RTOL_FLOAT32, atol=1e-6)


def check_adam_epochs(net, dtype, n, batch_size, uint8=False, epochs=2, l2=1e-3, lr=0.01, epsilon=1e-8):
    """Both backends train ``epochs`` epochs with Adam from the same start (each
    call continues the step count, as MLP.train_epoch does).  After every epoch
    the parameters and both moments must agree to ``_assert_close``, the loss
    sums to 1e-12 relative in float64 and 1e-4 in float32, and the numbers
    correct but for the samples ``_near_ties`` counts; the predictions are
    checked on the compiled run's own parameters.

    Why these tolerances hold on every epoch, on any CPU: Adam steps by
    lr_t m / (sqrt(v) + epsilon), and where sqrt(v) is small beside epsilon the
    step follows the gradient's rounding error d closely: at the first step it
    moves by up to lr sqrt(1 - beta_2) d / epsilon.  That factor is 3e4 for
    lr 0.01 and epsilon 1e-8 (``WIDE_ADAM`` gives the wide float32 case's
    settings and why).  It matters only where a gradient passes near zero
    while v is still small; the small networks' gradients do not, and float64
    rounds 5e8 times finer: with the defaults they stay within 3 % of the
    tolerances in float32 and 0.04 % in float64 on every epoch, the compiled
    run (AVX-512 and AVX2 code) and the reference with its sums taken in other
    orders alike."""
    from fastmlp.backends import numba as kernels

    X, y, order = _data(net.sizes, n, dtype, uint8, 1)
    start = make_params(net.sizes, seed=2, dtype=dtype)
    ref_p, comp_p = start.copy(), start.copy()
    ref_s, comp_s = np.zeros(2 * len(start), dtype), np.zeros(2 * len(start), dtype)
    loss_rtol = 1e-12 if np.dtype(dtype) == np.float64 else 1e-4
    steps = 0
    for epoch in range(1, epochs + 1):
        adam = Adam(lr, 0.9, 0.999, epsilon, l2, steps)
        ties = _near_ties(net, adam, ref_p, ref_s, X, y, order, batch_size)
        ref_loss, ref_correct = reference.train_batches(ref_p, ref_s, net, adam, X, y, order, batch_size)
        comp_loss, comp_correct = kernels.train_batches(comp_p, comp_s, net, adam, X, y, order, batch_size)
        steps += -(-n // batch_size)
        _assert_close(comp_p, ref_p, dtype)
        _assert_close(comp_s, ref_s, dtype)
        assert comp_loss == pytest.approx(ref_loss, rel=loss_rtol, abs=1e-10), epoch
        assert abs(comp_correct - ref_correct) <= ties, (epoch, comp_correct, ref_correct, ties)
    _assert_close(kernels.predict_proba(comp_p, net, X), reference.predict_proba(comp_p, net, X), dtype)


def _near_ties(net, adam, params, state, X, y, order, batch_size):
    """The samples of one epoch from ``params``/``state`` (left unchanged) that
    the reference classifies by a margin within the tolerances of
    ``_assert_close``: its two largest outputs (a single logistic unit: its
    output and 0.5) closer than their two tolerances, on the parameters before
    the sample's batch.  Outputs that agree to those tolerances (as
    ``predict_proba``'s must) can give another class only there, so the
    numbers correct differ by at most this count (0 in every epoch of the
    cases here).  Exact ties are not counted: they come from outputs clamped
    to one value, which the compiled run clamps alike, and both backends then
    take the first class."""
    from fastmlp import config

    p, s = params.copy(), state.copy()
    count = 0
    for k, first in enumerate(range(0, len(order), batch_size)):
        rows = order[first:first + batch_size]
        A = reference.predict_proba(p, net, X[rows])
        if np.dtype(p.dtype) == np.float64:
            tol = np.full(A.shape, config.TEST_ATOL_FLOAT64)
        else:
            tol = config.TEST_RTOL_FLOAT32 * np.abs(A) + 1e-6
        count += ties_within(A, tol, single_logistic(net))
        reference.train_batches(p, s, net, adam._replace(t=adam.t + k), X, y, rows, batch_size)
    return count


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("batch_size", [1, 5, 16, 40])
def test_numba_adam_epoch_small(dtype, batch_size):
    """Row-block kernels (no panels, serial loops): batch sizes that divide the
    40 samples and ones that leave a short last batch."""
    check_adam_epochs(Net((9, 7, 3), ("tanh", "softmax"), "nll"), dtype, 40, batch_size)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("net", [Net((9, 7, 1), ("relu", "sigmoid"), "cross_entropy"),
                                 Net((9, 7, 1), ("identity", "sigmoid"), "quadratic"),
                                 Net((9, 7, 3), ("identity", "softmax"), "nll")],
                         ids=["logistic output", "identity, quadratic", "identity, softmax"])
def test_numba_single_logistic_output_and_identity(dtype, net):
    check_adam_epochs(net, dtype, 40, 6)
    # and with SGD (momentum): the output delta and the identity derivative are
    # shared by both optimisers
    from fastmlp.backends import numba as kernels
    from fastmlp.network import SGD

    X, y, order = _data(net.sizes, 40, dtype, False, 3)
    ref_p = make_params(net.sizes, seed=4, dtype=dtype)
    comp_p = ref_p.copy()
    ref_v, comp_v = np.zeros_like(ref_p), np.zeros_like(ref_p)
    sgd = SGD(0.05, 0.9, True, 1e-3)
    ref = reference.train_batches(ref_p, ref_v, net, sgd, X, y, order, 6)
    comp = kernels.train_batches(comp_p, comp_v, net, sgd, X, y, order, 6)
    _assert_close(comp_p, ref_p, dtype)
    assert comp[1] == ref[1]


# The wide float32 case's Adam: lr 1e-3 and epsilon 1e-4.  Its gradients
# carry rounding errors d of 2e-9 (median) to 4e-7 (largest) against float64,
# and some of its 76,330 weights have a gradient near zero while v is still
# small.  With lr 0.01 and epsilon 1e-8 the first step turns d into up to
# 3e4 d: those weights end up to 1e-4 apart with any other summation order
# (75 times the tolerance for the compiled run, 8 times for the reference with
# its sums reordered).  Here lr sqrt(1 - beta_2) / epsilon = 0.3, so an
# error stays the size it is, and both stay within 4 % of the tolerances.
# Adam still divides by sqrt(v): it exceeds epsilon for 91 % of the parameters.
WIDE_ADAM = {"float32": {"lr": 1e-3, "epsilon": 1e-4}, "float64": {}}


@pytest.mark.parametrize("dtype, batch_size", [("float32", 64), ("float64", 128)])
def test_numba_adam_epoch_wide(dtype, batch_size):
    """Layers wide enough for the parallel loops and the outer-product panels
    (float32 from batch 16, float64 from 128), uint8 pixels as MNIST's; the
    float32 case with the settings of ``WIDE_ADAM``."""
    check_adam_epochs(Net((784, 96, 10), ("relu", "softmax"), "nll"), dtype, 300, batch_size, uint8=True,
                      **WIDE_ADAM[dtype])
