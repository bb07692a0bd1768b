"""Dropout (R1-R5), input shifts (R6) and max-norm (U8): the counter-based
draws, the reference's gradients against finite differences, and the
compiled epochs against the reference (float64 within 1e-10, float32 within
1e-4 relative) for every activation, optimiser and loop shape.
Thread-count determinism with them is in ``test_determinism.py``."""

import numpy as np
import numpy.testing as npt
import pytest

from fastmlp import noise
from fastmlp.backends import numba as kernels
from fastmlp.backends import reference
from fastmlp.functions import default_init
from fastmlp.network import SGD, Adam, Net, init_params, unpack
from helpers import assert_close


def test_the_hash_is_splitmix64():
    # SplitMix64 from state 0 outputs mix(0 + PHI) first: 0xE220A8397B1DCDAF
    # (Vigna's reference implementation, splitmix64.c)
    assert noise.mix(noise.PHI) == 0xE220A8397B1DCDAF
    z = np.array([noise.PHI, 2 * noise.PHI % 2**64, 12345], dtype=np.uint64)
    assert [int(v) for v in noise.mix_array(z)] == [noise.mix(int(v)) for v in z]


def test_units_are_dropped_at_the_rate():
    kept = noise.keep(noise.epoch_key(0, 1), np.arange(2000), 1, 500, 0.3)
    # 10^6 draws: the kept fraction is within 5 standard deviations of 0.7
    assert abs(kept.mean() - 0.7) < 5 * np.sqrt(0.21 / kept.size)
    assert noise.keep(1, np.arange(10), 0, 7, 0.0).all()


def test_masks_depend_on_the_sample_not_on_its_place_in_the_batch():
    key = noise.epoch_key(3, 2)
    samples = np.array([5, 17, 2, 40_000, 9])
    together = noise.keep(key, samples, 2, 64, 0.5)
    for i, s in enumerate(samples):
        npt.assert_array_equal(noise.keep(key, [s], 2, 64, 0.5)[0], together[i])
    # and on the epoch, the layer and the seed
    assert not np.array_equal(together, noise.keep(noise.epoch_key(3, 3), samples, 2, 64, 0.5))
    assert not np.array_equal(together, noise.keep(key, samples, 1, 64, 0.5))
    assert not np.array_equal(together, noise.keep(noise.epoch_key(4, 2), samples, 2, 64, 0.5))


@pytest.mark.parametrize("rates, n_layers, expected", [
    (0.5, 3, (0.0, 0.5, 0.5)),
    ((0.2, 0.5), 3, (0.2, 0.5, 0.5)),
    ((0.2, 0.5), 2, (0.2, 0.5)),
    ((0.1, 0.2, 0.3), 3, (0.1, 0.2, 0.3)),
    ((0.2, 0.0), 1, (0.2,)),
])
def test_rates_per_layer_input(rates, n_layers, expected):
    assert noise.check_rates(rates, n_layers) == expected


@pytest.mark.parametrize("rates, n_layers, match", [
    ((0.2, 0.5, 0.5, 0.5), 3, "one rate for the inputs and one per hidden layer"),
    ((0.2, 1.0), 2, r"in \[0, 1\)"),
    (-0.1, 2, r"in \[0, 1\)"),
    ("0.5", 2, "a rate or one rate per layer input"),
])
def test_bad_rates_are_refused(rates, n_layers, match):
    with pytest.raises((ValueError, TypeError), match=match):
        noise.check_rates(rates, n_layers)


def _net(sizes, hidden, output="softmax", cost="nll"):
    return Net(tuple(sizes), (hidden,) * (len(sizes) - 2) + (output,), cost)


def _params(net, dtype, seed=0):
    return init_params(net.sizes, [default_init(a) for a in net.activations], np.random.default_rng(seed),
                       np.dtype(dtype))


@pytest.mark.parametrize("hidden", ["sigmoid", "tanh", "relu", "leaky_relu"])
def test_reference_gradients_with_dropout_match_finite_differences(hidden):
    net = _net((7, 6, 5, 3), hidden)
    rng = np.random.default_rng(2)
    # biases away from 0: with zero biases, a unit whose inputs are all dropped
    # sits exactly on ReLU's kink, where no derivative exists to compare
    params = _params(net, "float64", seed=1) + rng.normal(0, 0.1, size=sum(
        (a + 1) * b for a, b in zip(net.sizes[:-1], net.sizes[1:])))
    A0 = rng.random((4, 7))
    Y = reference.one_hot(rng.integers(0, 3, 4), 3, np.float64)
    factors = reference.dropout_factors(noise.Noise(noise.epoch_key(0, 1), (0.3, 0.5, 0.4)), net.sizes,
                                        np.arange(4), np.dtype(np.float64))
    assert any((f == 0).any() for f in factors)  # some units are dropped

    def loss(p):
        return reference.backprop(*unpack(p, net.sizes), net, A0, Y, factors)[0]

    _, dWs, dbs, _ = reference.backprop(*unpack(params, net.sizes), net, A0, Y, factors)
    analytic = np.concatenate([np.concatenate([dW.ravel(), db]) for dW, db in zip(dWs, dbs)])
    numeric = np.empty_like(params)
    for i in range(len(params)):
        step = np.zeros_like(params)
        step[i] = 1e-6
        numeric[i] = (loss(params + step) - loss(params - step)) / 2e-6
    npt.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)


def test_max_norm_holds_every_hidden_unit_and_spares_the_output():
    net = _net((20, 16, 8, 3), "relu")
    params = _params(net, "float64") * 5
    before_out = unpack(params, net.sizes)[0][-1].copy()
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (40, 20)).astype(np.uint8)
    y = rng.integers(0, 3, 40).astype(np.uint8)
    reference.train_batches(params, np.zeros_like(params), net, SGD(1e-9, max_norm=0.75), X, y, np.arange(40), 40)
    weights = unpack(params, net.sizes)[0]
    for W in weights[:-1]:
        norms = np.linalg.norm(W, axis=1)
        assert norms.max() <= 0.75 * (1 + 1e-12) and norms.max() > 0.74
    npt.assert_allclose(weights[-1], before_out, rtol=1e-6)  # the output layer's units are not hidden


#: (sizes, hidden activation, batch): serial layers, the fused first layer,
#: parallel layers, and a layer wide enough for panels; inputs of square
#: images (25, 49, 64 and 36 pixels) so that shifts apply.
SHAPES = [((25, 13, 9, 7), "sigmoid", 10), ((49, 13, 7), "tanh", 10), ((64, 64, 32, 10), "relu", 32),
          ((49, 300, 10), "leaky_relu", 64), ((36, 520, 10), "relu", 64)]
OPTIMISERS = {"sgd": SGD(0.3), "nesterov, l2": SGD(0.2, 0.9, True, 1e-3), "adam": Adam(0.01)}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", OPTIMISERS)
@pytest.mark.parametrize("sizes, hidden, batch", SHAPES)
@pytest.mark.parametrize("max_norm, shift", [(0.0, 0), (1.0, 2)])
def test_compiled_epochs_with_dropout_equal_the_reference(sizes, hidden, batch, name, dtype, max_norm, shift):
    net = _net(sizes, hidden)
    n_inputs = len(sizes) - 1
    rates = (0.2,) + (0.5,) * (n_inputs - 1)
    opt = OPTIMISERS[name]._replace(max_norm=max_norm)
    rng = np.random.default_rng(3)
    n = 150
    X = rng.integers(0, 256, (n, sizes[0])).astype(np.uint8)
    y = rng.integers(0, sizes[-1], n).astype(np.uint8)
    start = _params(net, dtype)
    size = 2 * len(start) if isinstance(opt, Adam) else len(start)
    p_ref, p_num = start.copy(), start.copy()
    v_ref, v_num = np.zeros(size, start.dtype), np.zeros(size, start.dtype)
    for epoch in (1, 2):
        order = np.random.default_rng(epoch).permutation(n).astype(np.int64)
        drop = noise.Noise(noise.epoch_key(7, epoch), rates, shift)
        ref = reference.train_batches(p_ref, v_ref, net, opt, X, y, order, batch, noise=drop)
        num = kernels.train_batches(p_num, v_num, net, opt, X, y, order, batch, noise=drop)
        assert_close(p_num, p_ref, dtype)
        assert_close(v_num, v_ref, dtype)
        assert num[0] == pytest.approx(ref[0], rel=1e-12 if dtype == "float64" else 1e-4)
        assert num[1] == ref[1]
    if max_norm:
        for W in unpack(p_num, net.sizes)[0][:-1]:
            assert np.linalg.norm(W.astype(np.float64), axis=1).max() <= max_norm * (1 + 1e-5)
    # and dropout changed the training: without it the weights differ
    plain = start.copy()
    kernels.train_batches(plain, np.zeros(size, start.dtype), net, opt, X, y,
                          np.random.default_rng(1).permutation(n).astype(np.int64), batch)
    assert not np.allclose(plain, start)


def test_the_shapes_cover_serial_parallel_and_panel_layers():
    from fastmlp.backends.numba.plan import needed_variants
    from fastmlp.backends.numba.shapes import panel_tile_rows

    variants = {v for sizes, _, batch in SHAPES for dtype in ("float64", "float32")
                for v in needed_variants(sizes, dtype, batch_size=batch)}
    assert {v.parallel for v in variants if v.stage == "update"} == {False, True}
    assert "first" in {v.stage for v in variants}  # the fused first-layer update
    if panel_tile_rows():
        assert True in {v.panels for v in variants if v.stage in ("hidden", "update")}


def test_shifts_are_uniform_and_move_whole_images():
    dy, dx = noise.shifts(noise.epoch_key(1, 1), np.arange(20000), 2)
    for d in (dy, dx):
        counts = np.bincount(d + 2, minlength=5)
        assert set(np.unique(d)) == {-2, -1, 0, 1, 2}
        assert np.abs(counts / len(d) - 0.2).max() < 0.02
    image = np.arange(1, 26, dtype=np.float64).reshape(1, 25)
    moved = noise.shift_images(image, 5, [1], [-2]).reshape(5, 5)
    expected = np.zeros((5, 5))
    expected[1:, :3] = image.reshape(5, 5)[:4, 2:]
    npt.assert_array_equal(moved, expected)


def test_compiled_shifts_equal_the_reference_on_mnist_sized_images():
    """784 = 28 x 28 inputs with the fused first layer (batch 10) and with
    panels (batch 64, float32), shifts of up to 3 pixels and input dropout."""
    rng = np.random.default_rng(5)
    X = rng.integers(0, 256, (130, 784)).astype(np.uint8)
    y = rng.integers(0, 10, 130).astype(np.uint8)
    for sizes, batch, dtype in (((784, 30, 10), 10, "float64"), ((784, 200, 10), 64, "float32")):
        net = _net(sizes, "relu")
        start = _params(net, dtype)
        p_ref, p_num = start.copy(), start.copy()
        v_ref, v_num = np.zeros_like(start), np.zeros_like(start)
        drop = noise.Noise(noise.epoch_key(2, 1), (0.2, 0.5), 3)
        order = rng.permutation(130).astype(np.int64)
        ref = reference.train_batches(p_ref, v_ref, net, SGD(0.1, 0.9), X, y, order, batch, noise=drop)
        num = kernels.train_batches(p_num, v_num, net, SGD(0.1, 0.9), X, y, order, batch, noise=drop)
        assert_close(p_num, p_ref, dtype)
        assert num[1] == ref[1]
        unshifted = start.copy()
        kernels.train_batches(unshifted, np.zeros_like(start), net, SGD(0.1, 0.9), X, y, order, batch,
                              noise=drop._replace(shift=0))
        assert not np.allclose(unshifted, p_num)
