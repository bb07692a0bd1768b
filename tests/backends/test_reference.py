"""The NumPy reference against independent formulations of the same maths."""

import numpy as np
import numpy.testing as npt
import pytest

from fastmlp.backends import reference
from fastmlp.functions import ACTIVATIONS, COSTS, sigmoid, softmax
from fastmlp.network import SGD, Net, init_params, n_params, unpack


def make_params(sizes, seed=0, init="normal", dtype=np.float64):
    return init_params(sizes, [init] * (len(sizes) - 1), np.random.default_rng(seed), np.dtype(dtype))


def test_sgd_step_by_hand():
    # One layer, 2 inputs -> 1 sigmoid output (two classes, target = label), quadratic cost,
    # lr 1, label 1 (y = [1]).
    #   z = 0.5*1 - 0.25*2 + 0.1 = 0.1
    #   a = sigmoid(0.1) = 0.52497918747894
    #   delta = (a - 1) * a * (1 - a) = -0.11845880923571206
    #   W <- W - lr * delta * x = [0.5 + 0.118458..., -0.25 + 2 * 0.118458...]
    #   b <- b - lr * delta = 0.1 + 0.118458...
    net = Net((2, 1), ("sigmoid",), "quadratic")
    params = np.array([0.5, -0.25, 0.1])
    X = np.array([[1.0, 2.0]])
    loss_sum, n_correct = reference.train_batches(params, np.zeros(3), net, SGD(lr=1.0), X,
                                                  np.array([1], np.uint8), np.array([0]), 1)
    npt.assert_allclose(params, [0.6184588092357121, -0.013082381528575882, 0.21845880923571206], rtol=1e-14)
    npt.assert_allclose(loss_sum, 0.5 * (1 - 0.52497918747894) ** 2, rtol=1e-12)
    assert n_correct == 1


def per_sample_gradient(params, net, x, y_onehot):
    """Backpropagation for ONE sample with column vectors, written independently
    of the reference (quadratic cost, any diagonal activation)."""
    weights, biases = unpack(params, net.sizes)
    a = x.reshape(-1, 1)
    zs, activations = [], [a]
    for W, b, name in zip(weights, biases, net.activations):
        z = W @ a + b.reshape(-1, 1)
        a = ACTIVATIONS[name](z.T).T
        zs.append(z)
        activations.append(a)
    h = 1e-7  # derivative of each activation by its definition on z, not on a

    def fprime(name, z):
        return (ACTIVATIONS[name]((z + h).T).T - ACTIVATIONS[name]((z - h).T).T) / (2 * h)

    delta = (activations[-1] - y_onehot.reshape(-1, 1)) * fprime(net.activations[-1], zs[-1])
    grads = [None] * len(weights)
    for l in range(len(weights) - 1, -1, -1):
        grads[l] = (delta @ activations[l].T, delta[:, 0])
        if l:
            delta = (weights[l].T @ delta) * fprime(net.activations[l - 1], zs[l - 1])
    return np.concatenate([np.concatenate([dW.ravel(), db]) for dW, db in grads])


@pytest.mark.parametrize("sizes", [(6, 5, 3), (7, 4, 5, 2), (5, 3, 4, 3, 2)])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_minibatch_update_equals_mean_of_per_sample_gradients(sizes, activation):
    rng = np.random.default_rng(1)
    net = Net(sizes, (activation,) * (len(sizes) - 1), "quadratic")
    params = make_params(sizes, seed=2) * 0.5
    X = rng.random((8, sizes[0]))
    y = rng.integers(0, sizes[-1], 8).astype(np.uint8)
    Y = reference.one_hot(y, sizes[-1], params.dtype)
    expected = params - 0.3 * np.mean([per_sample_gradient(params, net, X[i], Y[i]) for i in range(8)], axis=0)
    reference.train_batches(params, np.zeros_like(params), net, SGD(lr=0.3), X, y, np.arange(8), 8)
    npt.assert_allclose(params, expected, atol=1e-8)  # finite-difference f' limits this to ~1e-8


def test_short_final_batch_is_averaged_over_its_own_size():
    # 7 samples in batches of 5: the second batch has 2 samples, so its update
    # must equal a separate train_batches call on those 2 with batch size 2.
    sizes = (4, 3, 2)
    net = Net(sizes, ("sigmoid", "sigmoid"), "quadratic")
    rng = np.random.default_rng(3)
    X, y = rng.random((7, 4)), rng.integers(0, 2, 7).astype(np.uint8)
    a, b = make_params(sizes), make_params(sizes)
    reference.train_batches(a, np.zeros_like(a), net, SGD(1.0), X, y, np.arange(7), 5)
    reference.train_batches(b, np.zeros_like(b), net, SGD(1.0), X, y, np.arange(5), 5)
    reference.train_batches(b, np.zeros_like(b), net, SGD(1.0), X, y, np.arange(5, 7), 2)
    npt.assert_array_equal(a, b)


def test_same_seed_same_weights():
    a, b = make_params((784, 30, 10), seed=42), make_params((784, 30, 10), seed=42)
    npt.assert_array_equal(a, b)
    assert not np.array_equal(a, make_params((784, 30, 10), seed=43))
    assert len(a) == n_params((784, 30, 10)) == 784 * 30 + 30 + 30 * 10 + 10


def test_uint8_pixels_are_scaled_by_1_over_255():
    net = Net((3, 2), ("sigmoid",), "quadratic")
    params = make_params((3, 2))
    pixels = np.array([[0, 128, 255]], dtype=np.uint8)
    npt.assert_allclose(reference.predict_proba(params, net, pixels),
                        reference.predict_proba(params, net, pixels / 255.0), rtol=1e-15)


# exp (A7), the Poisson output, overflows like the counts it models would
@pytest.mark.parametrize("name", [name for name in ACTIVATIONS if name != "exp"])
def test_activations_are_stable_at_extremes(name):
    Z = np.array([[-1000.0, -30.0, 0.0, 30.0, 1000.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        A = ACTIVATIONS[name](Z)
    assert np.isfinite(A).all()


def test_sigmoid_and_softmax_values():
    npt.assert_allclose(sigmoid(np.array([[-1000.0, 0.0, 1000.0]])), [[0.0, 0.5, 1.0]])
    npt.assert_allclose(softmax(np.array([[1000.0, 1000.0, -1000.0]])), [[0.5, 0.5, 0.0]])


@pytest.mark.parametrize("cost, activation", [("quadratic", "sigmoid"), ("cross_entropy", "sigmoid"), ("nll", "softmax")])
def test_costs_are_finite_at_extremes(cost, activation):
    Z = np.array([[-1000.0, 1000.0, 0.0], [1000.0, -1000.0, 5.0]])
    A = ACTIVATIONS[activation](Z)
    Y = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # the worst possible predictions
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        value = COSTS[cost](Z, A, Y)
    assert np.isfinite(value) and value > 0
