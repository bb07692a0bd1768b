"""Target matrices (Y'': regression values, multilabel indicators, Poisson
counts), sample weights (W1) and the full-batch ``loss_gradient``: the
reference against finite differences and against repeated samples, and the
compiled epochs and gradients against the reference (float64 within 1e-10,
float32 within 1e-4 relative) for every loop shape."""

import numpy as np
import numpy.testing as npt
import pytest

from fastmlp import MLP, config, validation
from fastmlp.backends import numba as kernels
from fastmlp.backends import reference
from fastmlp.backends.numba.plan import GRADIENT_CHUNK
from fastmlp.network import SGD, Adam, Net, init_params
from helpers import assert_close

#: (output activation, cost, kind of target)
OUTPUTS = [("identity", "quadratic", "values"), ("sigmoid", "cross_entropy", "indicators"),
           ("exp", "poisson", "counts"), ("softmax", "nll", "labels")]
#: serial layers with the fused first layer, parallel layers, and wide layers
#: with panels (as in test_dropout.py)
SHAPES = [((25, 13, 9, 3), "tanh", 10), ((64, 64, 32, 4), "relu", 32), ((36, 520, 5), "relu", 64)]
OPTIMISERS = {"sgd": SGD(0.1), "nesterov, l2": SGD(0.05, 0.9, True, 1e-3), "adam, l2": Adam(0.01, l2=1e-3)}


def targets(kind, n, n_out, rng):
    if kind == "values":
        return rng.standard_normal((n, n_out))
    if kind == "indicators":
        return (rng.random((n, n_out)) < 0.4).astype(np.float64)
    if kind == "counts":
        return rng.poisson(1.5, (n, n_out)).astype(np.float64)
    return rng.integers(0, n_out, n).astype(np.uint8)


def network(sizes, hidden, output, cost, dtype, seed=0):
    net = Net(tuple(sizes), (hidden,) * (len(sizes) - 2) + (output,), cost)
    params = init_params(sizes, ["xavier"] * (len(sizes) - 1), np.random.default_rng(seed), np.dtype(dtype))
    if output == "exp":
        params *= params.dtype.type(0.3)  # moderate rates at the start
    return net, params


@pytest.mark.parametrize("output, cost, kind", OUTPUTS)
@pytest.mark.parametrize("weighted", [False, True])
def test_loss_gradient_matches_central_differences(output, cost, kind, weighted):
    rng = np.random.default_rng(1)
    net, params = network((5, 4, 3), "tanh", output, cost, "float64")
    params += 0.1 * rng.standard_normal(len(params))
    X = rng.random((9, 5))
    y = targets(kind, 9, 3, rng)
    w = rng.random(9) * 3 if weighted else None
    _, analytic = reference.loss_gradient(params, net, X, y, w)
    numeric = np.empty_like(params)
    h = 1e-6
    for i in range(len(params)):
        saved = params[i]
        params[i] = saved + h
        up = reference.loss_gradient(params, net, X, y, w)[0]
        params[i] = saved - h
        down = reference.loss_gradient(params, net, X, y, w)[0]
        params[i] = saved
        numeric[i] = (up - down) / (2 * h)
    npt.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("output, cost, kind", OUTPUTS)
def test_whole_number_weights_are_repeated_samples(output, cost, kind):
    rng = np.random.default_rng(2)
    net, params = network((6, 5, 3), "relu", output, cost, "float64")
    X = rng.random((11, 6))
    y = targets(kind, 11, 3, rng)
    counts = rng.integers(0, 4, 11)
    counts[0] = 1
    repeated = np.repeat(np.arange(11), counts)
    for backend in (reference, kernels):
        loss, grad = backend.loss_gradient(params, net, X, y, counts.astype(np.float64))
        loss_rep, grad_rep = backend.loss_gradient(params, net, X[repeated], y[repeated])
        assert loss == pytest.approx(loss_rep, rel=1e-12)
        npt.assert_allclose(grad, grad_rep, rtol=0, atol=1e-13)
    # in an epoch of one batch, with L2 (scaled by m / sum(w): the repeated batch's m)
    opt = SGD(0.1, l2=0.01)
    one, rep = params.copy(), params.copy()
    for backend in (reference, kernels):
        one[...], rep[...] = params, params
        backend.train_batches(one, np.zeros_like(one), net, opt, X, y, np.arange(11), 11,
                              sample_weight=counts.astype(np.float64))
        backend.train_batches(rep, np.zeros_like(rep), net, opt._replace(l2=0.01 * 11 / len(repeated)),
                              X[repeated], y[repeated], np.arange(len(repeated)), len(repeated))
        npt.assert_allclose(one, rep, rtol=0, atol=1e-13)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", OPTIMISERS)
@pytest.mark.parametrize("sizes, hidden, batch", SHAPES)
@pytest.mark.parametrize("output, cost, kind", OUTPUTS)
def test_compiled_epochs_with_targets_and_weights_equal_the_reference(output, cost, kind, sizes, hidden, batch,
                                                                      name, dtype):
    rng = np.random.default_rng(3)
    n = 150
    net, start = network(sizes, hidden, output, cost, dtype)
    X = rng.integers(0, 256, (n, sizes[0])).astype(np.uint8)
    y = targets(kind, n, sizes[-1], rng)
    if y.ndim == 2:
        y = y.astype(dtype)
    w = rng.random(n) * 2
    w[:batch] = 0  # a batch whose weights are all 0 changes nothing
    opt = OPTIMISERS[name]
    size = 2 * len(start) if isinstance(opt, Adam) else len(start)
    p_ref, p_num = start.copy(), start.copy()
    v_ref, v_num = np.zeros(size, start.dtype), np.zeros(size, start.dtype)
    for epoch in (1, 2):
        order = np.random.default_rng(epoch).permutation(n).astype(np.int64)
        ref = reference.train_batches(p_ref, v_ref, net, opt, X, y, order, batch, sample_weight=w)
        num = kernels.train_batches(p_num, v_num, net, opt, X, y, order, batch, sample_weight=w)
        assert_close(p_num, p_ref, dtype)
        assert_close(v_num, v_ref, dtype)
        assert num[0] == pytest.approx(ref[0], rel=1e-12 if dtype == "float64" else 1e-4)
        assert abs(num[1] - ref[1]) <= (0 if dtype == "float64" else 2)  # float32: a near tie may flip
    # the weights mattered
    plain = start.copy()
    kernels.train_batches(plain, np.zeros(size, start.dtype), net, opt, X, y,
                          np.random.default_rng(1).permutation(n).astype(np.int64), batch)
    assert not np.allclose(plain, p_num)


def test_a_batch_of_zero_weights_changes_nothing():
    rng = np.random.default_rng(4)
    net, start = network((8, 6, 3), "relu", "identity", "quadratic", "float64")
    X, y = rng.random((10, 8)), rng.standard_normal((10, 3))
    for backend in (reference, kernels):
        p = start.copy()
        for opt in (SGD(0.1, l2=0.1), SGD(0.1, 0.9, False, 0.1)):
            loss, _ = backend.train_batches(p, np.zeros_like(p), net, opt, X, y, np.arange(10), 5,
                                            sample_weight=np.r_[np.zeros(5), np.ones(5)])
            q = start.copy()
            backend.train_batches(q, np.zeros_like(q), net, opt, X, y, np.arange(5, 10), 5)
            npt.assert_allclose(p, q, rtol=0, atol=1e-15)
            p[...] = start


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("sizes, hidden, n", [((25, 13, 9, 3), "tanh", 300), ((36, 520, 5), "relu", 700),
                                              ((10, 7, 2), "sigmoid", GRADIENT_CHUNK + 321)])
@pytest.mark.parametrize("output, cost, kind", OUTPUTS)
def test_compiled_loss_gradient_equals_the_reference(output, cost, kind, sizes, hidden, n, dtype):
    """Also over more rows than one chunk of the compiled version."""
    rng = np.random.default_rng(5)
    net, params = network(sizes, hidden, output, cost, dtype)
    X = rng.random((n, sizes[0])).astype(dtype)
    y = targets(kind, n, sizes[-1], rng)
    if y.ndim == 2:
        y = y.astype(dtype)
    for w in (None, rng.random(n)):
        loss_ref, grad_ref = reference.loss_gradient(params, net, X, y, w)
        loss_num, grad_num = kernels.loss_gradient(params, net, X, y, w)
        assert loss_num == pytest.approx(loss_ref, rel=1e-12 if dtype == "float64" else 1e-5)
        assert_close(grad_num, grad_ref, dtype)
        assert grad_num.dtype == params.dtype


def test_mlp_fit_takes_sample_weights_on_both_backends():
    rng = np.random.default_rng(6)
    X, y = rng.random((120, 10)), rng.integers(0, 3, 120)
    w = rng.random(120)
    fitted = [MLP(sizes=[10, 8, 3], activation="relu", cost="nll", backend=backend, seed=1)
              .fit(X, y, epochs=2, batch_size=16, learning_rate=0.1, l2=0.01, sample_weight=w, val_split=20)
              for backend in ("numpy", "numba")]
    npt.assert_allclose(fitted[1].params_, fitted[0].params_, rtol=0, atol=config.TEST_ATOL_FLOAT64)
    unweighted = MLP(sizes=[10, 8, 3], activation="relu", cost="nll", backend="numpy", seed=1).fit(
        X, y, epochs=2, batch_size=16, learning_rate=0.1, l2=0.01, val_split=20)
    assert not np.allclose(unweighted.params_, fitted[0].params_)


@pytest.mark.parametrize("weights, message", [
    ("heavy", "sample_weight must be a 1-D array of weights, got str"),
    (np.ones((4, 2)), r"sample_weight must be 1-D \(n_samples,\), got shape \(4, 2\)"),
    (np.ones(3), "X has 4 samples but sample_weight has 3 weights"),
    (np.array([1.0, -1.0, 1.0, 1.0]), "sample_weight must be finite and >= 0"),
    (np.array([1.0, np.nan, 1.0, 1.0]), "sample_weight must be finite and >= 0"),
    (np.zeros(4), "sample_weight is 0 for every sample"),
    (np.array(["a", "b", "c", "d"]), "sample_weight must hold real numbers, got dtype <U1"),
])
def test_bad_sample_weights_are_one_clear_error(weights, message):
    with pytest.raises((TypeError, ValueError), match=message):
        validation.check_sample_weight(weights, 4)


def test_a_number_is_the_weight_of_every_sample():
    npt.assert_array_equal(validation.check_sample_weight(2, 3), [2.0, 2.0, 2.0])


@pytest.mark.parametrize("y, message", [
    (np.ones((4, 3)), r"y must have shape \(n_samples, 2\), got \(4, 3\)"),
    (np.ones((3, 2)), "X has 4 samples but y has 3 rows"),
    (np.full((4, 2), np.inf), "y holds NaN or infinite targets"),
    (np.array([["a", "b"]] * 4), "y must hold numbers, got dtype <U1"),
])
def test_bad_target_matrices_are_one_clear_error(y, message):
    with pytest.raises((TypeError, ValueError), match=message):
        validation.check_targets(y, 4, 2, np.float64)
