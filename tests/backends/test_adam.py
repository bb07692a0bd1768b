"""Adam (U6), the identity activation (A6) and the single logistic output (Y'):
the reference against independent formulations (scikit-learn's own optimiser,
an element-by-element loop, central differences)."""

import math

import numpy as np
import numpy.testing as npt
import pytest

from fastmlp.backends import reference
from fastmlp.functions import COSTS
from fastmlp.network import Adam, Net, init_params, unpack


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


def check_adam_epochs(net, dtype, n, batch_size, uint8=False, epochs=2, l2=1e-3):
    """Both backends train ``epochs`` epochs with Adam from the same start (the
    second call continues the step count, as MLP.train_epoch does); parameters,
    both moments, loss and accuracy must agree; the predictions are checked on
    the compiled run's own parameters."""
    from fastmlp.backends import numba as kernels

    X, y, order = _data(net.sizes, n, dtype, uint8, 1)
    start = make_params(net.sizes, seed=2, dtype=dtype)
    ref_p, comp_p = start.copy(), start.copy()
    ref_s, comp_s = np.zeros(2 * len(start), dtype), np.zeros(2 * len(start), dtype)
    steps = 0
    for _ in range(epochs):
        adam = Adam(0.01, 0.9, 0.999, 1e-8, l2, steps)
        ref_loss, ref_correct = reference.train_batches(ref_p, ref_s, net, adam, X, y, order, batch_size)
        comp_loss, comp_correct = kernels.train_batches(comp_p, comp_s, net, adam, X, y, order, batch_size)
        steps += -(-n // batch_size)
        try:
            _assert_close(comp_p, ref_p, dtype)
            _assert_close(comp_s, ref_s, dtype)
        except AssertionError:
            # Adam divides by sqrt(v): where a gradient is near zero, the last
            # bits of a sum (another summation order) move the step a lot.  The
            # bound is then the reference's own spread when its start moves by
            # one ulp (as tests/backends/test_kernels.py does for momentum), so
            # it does not depend on one CPU's rounding.
            spread = _reference_spread(net, start, X, y, order, batch_size, steps, l2)
            moved = np.abs(comp_p - ref_p).max()
            assert moved <= 4 * spread, (moved, spread)
            break  # past here both follow the noise
        rtol = 1e-12 if np.dtype(dtype) == np.float64 else 1e-4
        assert comp_loss == pytest.approx(ref_loss, rel=rtol, abs=1e-10)
        assert comp_correct == ref_correct
    _assert_close(kernels.predict_proba(comp_p, net, X), reference.predict_proba(comp_p, net, X), dtype)


def _reference_spread(net, start, X, y, order, batch_size, total_steps, l2):
    """How far the reference's parameters move after the same epochs when
    ``start`` is nudged by one ulp (up, then down; the larger move)."""
    n = len(order)
    runs = []
    for direction in (np.inf, -np.inf, None):
        p = start.copy() if direction is None else np.nextafter(start, direction)
        state = np.zeros(2 * len(p), p.dtype)
        steps = 0
        while steps < total_steps:
            reference.train_batches(p, state, net, Adam(0.01, 0.9, 0.999, 1e-8, l2, steps), X, y, order, batch_size)
            steps += -(-n // batch_size)
        runs.append(p)
    return max(np.abs(runs[0] - runs[2]).max(), np.abs(runs[1] - runs[2]).max())


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


@pytest.mark.parametrize("dtype, batch_size", [("float32", 64), ("float64", 128)])
def test_numba_adam_epoch_wide(dtype, batch_size):
    """Layers wide enough for the parallel loops and the outer-product panels
    (float32 from batch 16, float64 from 128), uint8 pixels as MNIST's."""
    check_adam_epochs(Net((784, 96, 10), ("relu", "softmax"), "nll"), dtype, 300, batch_size, uint8=True)
