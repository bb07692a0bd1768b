"""Backpropagation against central finite differences of the cost (float64)."""

import numpy as np
import pytest

from fastmlp.backends import reference
from fastmlp.functions import COSTS
from fastmlp.network import Net, init_params, unpack

PAIRS = [(hidden, output, cost)
         for hidden in ("sigmoid", "tanh", "relu", "leaky_relu")
         for output, cost in (("sigmoid", "quadratic"), ("tanh", "quadratic"), ("relu", "quadratic"),
                              ("leaky_relu", "quadratic"), ("sigmoid", "cross_entropy"), ("softmax", "nll"))]


def batch_cost(params, net, A0, Y):
    Zs, As = reference.forward(*unpack(params, net.sizes), net.activations, A0)
    return COSTS[net.cost](Zs[-1], As[-1], Y)


def flat_gradient(params, net, A0, Y):
    _, dWs, dbs, _ = reference.backprop(*unpack(params, net.sizes), net, A0, Y)
    return np.concatenate([np.concatenate([dW.ravel(), db]) for dW, db in zip(dWs, dbs)])


@pytest.mark.parametrize("sizes", [(5, 4, 3), (6, 5, 4, 3), (4, 6, 5, 4, 3)])
@pytest.mark.parametrize("hidden, output, cost", PAIRS)
def test_backprop_matches_central_differences(sizes, hidden, output, cost):
    net = Net(sizes, (hidden,) * (len(sizes) - 2) + (output,), cost)
    # Draw until every weighted input is at least 1e-3 from the kink of ReLU,
    # where the derivative is undefined (harmless for smooth activations).
    for seed in range(100):
        rng = np.random.default_rng(seed)
        params = init_params(sizes, ["xavier"] * (len(sizes) - 1), rng, np.dtype("float64"))
        params += 0.1 * rng.standard_normal(len(params))  # non-zero biases
        A0 = rng.random((7, sizes[0]))
        Y = reference.one_hot(rng.integers(0, sizes[-1], 7), sizes[-1], params.dtype)
        Zs, _ = reference.forward(*unpack(params, net.sizes), net.activations, A0)
        if min(np.abs(Z).min() for Z in Zs) >= 1e-3:
            break
    else:
        pytest.fail("no draw kept every weighted input away from the ReLU kink")

    analytic = flat_gradient(params, net, A0, Y)
    numeric = np.empty_like(params)
    h = 1e-6
    for i in range(len(params)):
        saved = params[i]
        params[i] = saved + h
        up = batch_cost(params, net, A0, Y)
        params[i] = saved - h
        down = batch_cost(params, net, A0, Y)
        params[i] = saved
        numeric[i] = (up - down) / (2 * h)

    relative = np.linalg.norm(analytic - numeric) / max(np.linalg.norm(analytic) + np.linalg.norm(numeric), 1e-12)
    assert relative <= 1e-6, f"relative error {relative:.2e}"
    # Element-wise too, so one wrong entry cannot hide in a large norm.
    np.testing.assert_allclose(analytic, numeric, rtol=1e-4, atol=1e-8)


def test_gradients_layout_matches_unpack():
    sizes = (3, 2, 2)
    net = Net(sizes, ("sigmoid", "sigmoid"), "quadratic")
    params = init_params(sizes, ["normal", "normal"], np.random.default_rng(0), np.dtype("float64"))
    _, dWs, _, _ = reference.backprop(*unpack(params, sizes), net, np.ones((1, 3)), np.array([[1.0, 0.0]]))
    weights, _ = unpack(params, sizes)
    assert [dW.shape for dW in dWs] == [W.shape for W in weights]
