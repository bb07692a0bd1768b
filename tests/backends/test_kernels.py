"""Equivalence of the Numba backend (fastmlp.backends.numba) with the NumPy reference.

Each kernel is compared with its namesake in ``fastmlp.backends.reference`` (stumpy's
``naive.stump`` against ``stump``): ``ref_*`` is the reference result, ``comp_*``
the compiled one.  float64 must agree to ``TEST_ATOL_FLOAT64`` absolute, float32
to ``TEST_RTOL_FLOAT32`` relative.  Inputs are seeded.  The per-layer functions
(``dense_forward`` ...) are thin calls into the kernels the compiled epoch runs
(``mirrors``), so these tests exercise the epoch's own code; every compiled
configuration costs seconds, so the whole-epoch tests reuse few of them.
"""

import warnings

import numpy as np
import numpy.testing as npt
import pytest
from helpers import assert_close, ties_within
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from fastmlp import config
from fastmlp.backends import numba as kernels
from fastmlp.backends.numba.mirrors import update_layer
from fastmlp.backends.numba.shapes import _forward_panels, _panels
from fastmlp.backends.numba.tile import NARROW_ROWS, PANEL
from fastmlp.backends import reference
from fastmlp.functions import COST_OUTPUTS, HIDDEN_ACTIVATIONS, default_init
from fastmlp.network import SGD, Net, init_params, single_logistic, unpack

DTYPES = ("float64", "float32")
ALL_ACTIVATIONS = HIDDEN_ACTIVATIONS + ("softmax",)


def make_net(sizes, hidden, output, cost):
    return Net(tuple(sizes), (hidden,) * (len(sizes) - 2) + (output,), cost)


def make_params(net, dtype, seed=0):
    inits = [default_init(a) for a in net.activations]
    return init_params(net.sizes, inits, np.random.default_rng(seed), np.dtype(dtype))


def make_data(n, n_in, n_classes, dtype, uint8, seed=1):
    rng = np.random.default_rng(seed)
    if uint8:
        X = rng.integers(0, 256, size=(n, n_in), dtype=np.uint8)
    else:
        X = rng.random((n, n_in)).astype(dtype)
    y = rng.integers(0, n_classes, size=n).astype(np.uint8)
    return X, y, rng.permutation(n).astype(np.int64)


def check_epoch(net, sgd, dtype, n, batch_size, uint8, epochs=1, seed=0):
    """Train ``epochs`` epochs with both backends from the same start and, after
    every epoch, compare the parameters and velocities (``assert_close``), the
    loss sum (1e-12 relative in float64, ``TEST_RTOL_FLOAT32`` in float32) and
    the number classified correctly (equal but for the samples ``near_ties``
    counts); then ``predict_proba`` on the compiled run's own parameters.

    Why these tolerances hold on every epoch of every case, on any CPU: two
    orders of a sum of k terms differ by at most about 2 k u sum|terms| (u the
    unit roundoff), so each step's gradients differ between the backends by a
    few units in the last place of their terms.  A step passes that on to the
    parameters times the rate, and momentum's velocity, a geometric sum of past
    steps, adds at most 1/(1 - mu) times one step's (10 at mu = 0.9).  Later
    steps can amplify it further, exponentially once the effective rate
    lr/(1 - mu) summed over the steps is large: at 1.0 for 105 steps of batch
    1 (tanh, quadratic cost) the difference grows from 1e-16 to 1e-10, with
    the reference's own sums reordered as much as with the compiled run.  The
    cases here keep that sum at most 20 (the random examples 12), and on every
    epoch the compiled run, with AVX-512 and with AVX2 code, and the reference
    with its sums taken in other orders stay within 0.4 % of the float32
    tolerance and 0.01 % of the float64 one.  A case outside that regime
    tests the rounding, not the kernels; so does a run that diverges, whose
    parameters end with last bits beyond any fixed tolerance
    (``test_train_batches_random`` leaves such examples out)."""
    X, y, order = make_data(n, net.sizes[0], net.sizes[-1], dtype, uint8, seed + 1)
    start = make_params(net, dtype, seed)
    ref_p, comp_p = start.copy(), start.copy()
    ref_v, comp_v = np.zeros_like(ref_p), np.zeros_like(ref_p)
    loss_rtol = 1e-12 if dtype == "float64" else config.TEST_RTOL_FLOAT32
    for epoch in range(1, epochs + 1):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            ties = near_ties(net, sgd, ref_p, ref_v, X, y, order, batch_size)
            ref_loss, ref_correct = reference.train_batches(ref_p, ref_v, net, sgd, X, y, order, batch_size)
            comp_loss, comp_correct = kernels.train_batches(comp_p, comp_v, net, sgd, X, y, order, batch_size)
        assert isinstance(comp_loss, float) and isinstance(comp_correct, int)
        assert_close(comp_p, ref_p, dtype)
        assert_close(comp_v, ref_v, dtype)
        assert comp_loss == pytest.approx(ref_loss, rel=loss_rtol, abs=1e-10), epoch
        assert abs(comp_correct - ref_correct) <= ties, (epoch, comp_correct, ref_correct, ties)
    assert_close(kernels.predict_proba(comp_p, net, X), reference.predict_proba(comp_p, net, X), dtype)


def output_tolerance(A, dtype):
    """How far, element by element, outputs ``A`` of one backend may be from
    another's: the tolerances of ``assert_close``, which ``predict_proba`` meets."""
    if np.dtype(dtype) == np.float64:
        return np.full(A.shape, config.TEST_ATOL_FLOAT64)
    return config.TEST_RTOL_FLOAT32 * (np.abs(A) + max(1.0, float(np.abs(A).max(initial=0))))


def near_ties(net, sgd, params, velocity, X, y, order, batch_size):
    """The samples of one epoch from ``params``/``velocity`` (left unchanged)
    that the reference classifies by a margin within ``output_tolerance``: its
    two largest outputs (a single logistic unit: its output and 0.5) are closer
    than their two tolerances, on the parameters before the sample's batch.  A
    backend whose outputs agree with the reference's to those tolerances can
    predict another class only there, so its number correct differs by at most
    this count (0 in most epochs).  Exact ties are not counted: they come from
    outputs clamped to one value (relu's 0, a float32 sigmoid's 1), which the
    compiled run clamps alike, and both backends then take the first class."""
    p, v = params.copy(), velocity.copy()
    count = 0
    for first in range(0, len(order), batch_size):
        rows = order[first:first + batch_size]
        A = reference.predict_proba(p, net, X[rows])
        tol = output_tolerance(A, p.dtype)
        count += ties_within(A, tol, single_logistic(net))
        reference.train_batches(p, v, net, sgd, X, y, rows, batch_size)
    return count


# --- whole epochs ----------------------------------------------------------------

#: The costs of class labels; the Poisson cost (C4) takes counts, and its
#: exp outputs overflow on the extreme weights below: test_targets_weights.py.
COST_CASES = [(cost, out) for cost, outs in COST_OUTPUTS.items() for out in outs if cost != "poisson"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cost,output", COST_CASES)
def test_train_batches_costs(cost, output, dtype):
    net = make_net((23, 13, 7), "sigmoid", output, cost)
    check_epoch(net, SGD(0.3), dtype, n=97, batch_size=10, uint8=True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sizes,batch_size,n", [((60, 520, 130, 65, 3), 20, 97),
                                                 ((40, 30, 64, 70, 3), 16, 97),
                                                 ((100, 520, 130, 3), 128, 300)],
                         ids=["panels_everywhere", "first_layer_fused", "float64_panels"])
def test_train_batches_panel_paths(sizes, batch_size, n, dtype):
    """Shapes that send layers through the outer-product panels (float32 from
    batch 16, float64 from batch 128), over a layer's inputs (hidden delta,
    update) and over its outputs (forward): whole panels with leftover columns
    or outputs; a first layer with panels only in its forward (60 inputs, 520
    outputs: ``FWD_PANEL_MIN_OUTPUTS``), one with none (its update stays fused
    with its forward) before wider layers, and one with both (100 -> 520);
    short last batches, two epochs."""
    net = make_net(sizes, "relu", "softmax", "nll")
    check_epoch(net, SGD(0.05, 0.9, True, 1e-4), dtype, n=n, batch_size=batch_size, uint8=False, epochs=2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hidden", HIDDEN_ACTIVATIONS)
@pytest.mark.parametrize("sgd", [SGD(0.2), SGD(0.05, 0.9), SGD(0.05, 0.9, True, 1e-3), SGD(0.1, 0.0, False, 1e-2)],
                         ids=["plain", "momentum", "nesterov_l2", "l2"])
def test_train_batches_hidden_and_sgd(hidden, sgd, dtype):
    net = make_net((31, 17, 9, 4), hidden, "softmax", "nll")
    check_epoch(net, sgd, dtype, n=150, batch_size=16, uint8=False)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("uint8", [True, False], ids=["uint8", "float"])
@pytest.mark.parametrize("batch_size", [1, 7, 50, 64, 1000])
def test_train_batches_batch_sizes(batch_size, uint8, dtype):
    """Sizes that divide 200 and that do not (short last batch), one whole batch."""
    net = make_net((784, 30, 10), "sigmoid", "sigmoid", "quadratic")
    check_epoch(net, SGD(0.1), dtype, n=200, batch_size=batch_size, uint8=uint8)


@pytest.mark.parametrize("dtype", DTYPES)
def test_train_batches_wide_parallel_layers(dtype):
    """Layers big enough to take the parallel paths, several epochs."""
    net = make_net((784, 96, 64, 10), "tanh", "softmax", "nll")
    check_epoch(net, SGD(0.05, 0.9, True, 1e-4), dtype, n=300, batch_size=64, uint8=True, epochs=2)


@pytest.mark.parametrize("dtype", DTYPES)
def test_train_batches_one_wide_softmax(dtype):
    """A 1-wide softmax output is degenerate (always 1) but must still match."""
    net = make_net((9, 5, 1), "relu", "softmax", "nll")
    check_epoch(net, SGD(0.1, 0.5), dtype, n=40, batch_size=6, uint8=False)


# derandomize: the same examples in every run and on every machine; change
# max_examples on purpose to explore further.  Explored to a few thousand
# examples, about one in 5000 (a long run of batch 1 through relu units, whose
# kinks turn a rounding difference into a jump) ends beyond the tolerances with
# the reference's own sums reordered as well as with the compiled run: such an
# example is ill-conditioned (``check_epoch``), not a kernel fault.
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(
    data=st.data(),
    n_layers=st.integers(2, 5),
    dtype=st.sampled_from(DTYPES),
    uint8=st.booleans(),
)
def test_train_batches_random(data, n_layers, dtype, uint8):
    sizes = [data.draw(st.integers(1, 40), label=f"n{l}") for l in range(n_layers)]
    cost, output = data.draw(st.sampled_from(COST_CASES), label="cost")
    hidden = tuple(data.draw(st.sampled_from(HIDDEN_ACTIVATIONS), label=f"f{l}") for l in range(n_layers - 2))
    net = Net(tuple(sizes), hidden + (output,), cost)
    momentum = data.draw(st.sampled_from([0.0, 0.9]), label="momentum")
    # the effective rate lr/(1 - mu) is 0.01 or 0.1 either way (``check_epoch``)
    rates = [0.01, 0.1] if momentum == 0 else [0.001, 0.01]
    sgd = SGD(data.draw(st.sampled_from(rates), label="lr"), momentum,
              data.draw(st.booleans(), label="nesterov") and momentum > 0,
              data.draw(st.sampled_from([0.0, 1e-3]), label="l2"))
    n = data.draw(st.integers(1, 120), label="n")
    batch_size = data.draw(st.integers(1, 40), label="batch")
    seed = data.draw(st.integers(0, 1000))
    assume(trains_without_diverging(net, sgd, dtype, n, batch_size, uint8, seed))
    check_epoch(net, sgd, dtype, n, batch_size, uint8, seed=seed)


def trains_without_diverging(net, sgd, dtype, n, batch_size, uint8, seed):
    """Does the reference train ``check_epoch``'s epoch without a floating-point
    warning, ending with every parameter, and every output on the training
    set, below 100 in magnitude (they start of order 1)?  An effective rate of
    0.1 through identity layers can make training diverge: the numbers
    overflow, or grow past 1e5, where a few units in their last place exceed
    ``TEST_ATOL_FLOAT64``.  Such an example (about one in a hundred) tests the
    rounding, not the kernels."""
    X, y, order = make_data(n, net.sizes[0], net.sizes[-1], dtype, uint8, seed + 1)
    params = make_params(net, dtype, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            reference.train_batches(params, np.zeros_like(params), net, sgd, X, y, order, batch_size)
            outputs = reference.predict_proba(params, net, X)
        except (RuntimeWarning, FloatingPointError):
            return False
    return bool(max(np.abs(params).max(initial=0), np.abs(outputs).max(initial=0)) < 100)


def test_predict_proba_large_chunks():
    """More rows than one predict chunk, a row count that is not a multiple."""
    net = make_net((20, 11, 3), "sigmoid", "softmax", "nll")
    params = make_params(net, "float64")
    X, _, _ = make_data(kernels.PREDICT_CHUNK * 3 + 5, 20, 3, "float64", True)
    assert_close(kernels.predict_proba(params, net, X), reference.predict_proba(params, net, X), "float64")


def test_train_batches_threads_do_not_matter_in_process():
    """One thread and every thread, in one process, give bitwise identical
    params on layers big enough to run in parallel (fresh processes with other
    thread counts: tests/backends/test_determinism.py, slow)."""
    import numba

    net = make_net((784, 64, 10), "sigmoid", "sigmoid", "quadratic")
    X, y, order = make_data(128, 784, 10, "float32", True)
    out = []
    previous = numba.get_num_threads()
    try:
        for n_threads in (1, numba.config.NUMBA_NUM_THREADS, 1):
            numba.set_num_threads(n_threads)
            p = make_params(net, "float32")
            kernels.train_batches(p, np.zeros_like(p), net, SGD(0.5), X, y, order, 32)
            out.append(p)
    finally:
        numba.set_num_threads(previous)
    assert out[0].tobytes() == out[1].tobytes() == out[2].tobytes()


# --- per-layer kernels against their namesakes ----------------------------------------

# The last four have batches of at least PANEL_MIN_BATCH and >= 64 inputs, so
# hidden_delta runs its outer-product panels and the leftover columns (float32
# from batch 16, float64 from batch 128); the last one also has more rows in
# W_next than a work item has samples.
LAYER_SHAPES = [(1, 1, 1), (1, 7, 13), (5, 13, 7), (10, 784, 30), (33, 17, 1), (64, 65, 67), (37, 200, 13),
                (129, 70, 9), (130, 70, 200)]


def layer_inputs(m, n_in, n_out, dtype, seed=0):
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    return (rng.standard_normal((m, n_in)).astype(dt), (rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)).astype(dt),
            rng.standard_normal(n_out).astype(dt))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ALL_ACTIVATIONS)
@pytest.mark.parametrize("shape", LAYER_SHAPES)
def test_dense_forward(shape, activation, dtype):
    A_prev, W, b = layer_inputs(*shape, dtype)
    ref_Z, ref_A = reference.dense_forward(A_prev, W, b, activation)
    comp_Z, comp_A = kernels.dense_forward(A_prev, W, b, activation)
    assert_close(comp_Z, ref_Z, dtype)
    assert_close(comp_A, ref_A, dtype)


@pytest.mark.parametrize("activation", ["sigmoid", "softmax"])
@pytest.mark.parametrize("shape,dtype", [(s, d) for d in DTYPES for s in [(64, 70, 520), (300, 130, 576)]
                                         if _forward_panels(s[2], s[0], d, NARROW_ROWS)])
def test_dense_forward_panels(shape, dtype, activation):
    """The panel path of (F), whatever this CPU's epochs choose
    (``shapes.panel_tile_rows``), on layers wide enough for it
    (``FWD_PANEL_MIN_OUTPUTS``): whole panels and leftover outputs; the second
    has more samples than a work item (``FWD_PANEL_ROWS``) and a last block of
    inputs that is not a multiple of 8 (``tile.transpose_block``); softmax
    normalises the rows afterwards."""
    A_prev, W, b = layer_inputs(*shape, dtype)
    ref_Z, ref_A = reference.dense_forward(A_prev, W, b, activation)
    comp_Z, comp_A = kernels.dense_forward(A_prev, W, b, activation, tile_rows=NARROW_ROWS)
    assert_close(comp_Z, ref_Z, dtype)
    assert_close(comp_A, ref_A, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ALL_ACTIVATIONS)
def test_dense_forward_extreme_inputs(activation, dtype):
    """z = +-1000 (and 0): no overflow, no NaN, no warning, equal to the reference."""
    A_prev = np.array([[1.0], [-1.0], [0.0], [0.5]], dtype=dtype)
    W = np.array([[1000.0], [-1000.0], [1.0]], dtype=dtype)
    b = np.zeros(3, dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ref_Z, ref_A = reference.dense_forward(A_prev, W, b, activation)
        comp_Z, comp_A = kernels.dense_forward(A_prev, W, b, activation)
    assert np.all(np.isfinite(comp_A))
    assert_close(comp_Z, ref_Z, dtype)
    assert_close(comp_A, ref_A, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cost,output", COST_CASES)
def test_train_batches_extreme_weights(cost, output, dtype):
    """Weights that push every z to about +-1000: the costs (softplus,
    logsumexp) and deltas stay finite, with no warnings, and equal the reference."""
    net = make_net((4, 3, 2), "tanh", output, cost)
    params = make_params(net, dtype)
    for W, b in zip(*unpack(params, net.sizes)):
        W[...] = np.where(np.arange(W.size).reshape(W.shape) % 2, 1000.0, -1000.0)
        b[...] = 0
    X = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [1, 1, 1, 1]], dtype=dtype)
    y = np.array([0, 1, 1], dtype=np.uint8)
    order = np.arange(3, dtype=np.int64)
    ref_p, comp_p = params.copy(), params.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ref = reference.train_batches(ref_p, np.zeros_like(params), net, SGD(1e-3), X, y, order, 2)
        comp = kernels.train_batches(comp_p, np.zeros_like(params), net, SGD(1e-3), X, y, order, 2)
    assert np.isfinite(comp[0]) and np.all(np.isfinite(comp_p))
    assert comp[0] == pytest.approx(ref[0], rel=1e-6)
    assert comp[1] == ref[1]
    assert_close(comp_p, ref_p, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cost,output", COST_CASES)
def test_output_delta(cost, output, dtype):
    rng = np.random.default_rng(3)
    Z = rng.standard_normal((9, 5)).astype(dtype) * 3
    _, A_L = reference.dense_forward(Z, np.eye(5, dtype=dtype), np.zeros(5, dtype), output)
    Y = reference.one_hot(rng.integers(0, 5, 9), 5, np.dtype(dtype))
    assert_close(kernels.output_delta(A_L, Y, output, cost), reference.output_delta(A_L, Y, output, cost), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", HIDDEN_ACTIVATIONS)
@pytest.mark.parametrize("shape", LAYER_SHAPES)
def test_hidden_delta(shape, activation, dtype):
    m, n, n_next = shape
    rng = np.random.default_rng(4)
    delta_next = rng.standard_normal((m, n_next)).astype(dtype)
    W_next = rng.standard_normal((n_next, n)).astype(dtype)
    _, A = reference.dense_forward(rng.standard_normal((m, n)).astype(dtype), np.eye(n, dtype=dtype),
                                   np.zeros(n, dtype), activation)
    assert_close(kernels.hidden_delta(delta_next, W_next, A, activation),
                 reference.hidden_delta(delta_next, W_next, A, activation), dtype)


@pytest.mark.parametrize("shape,dtype", [(s, d) for d in DTYPES for s in LAYER_SHAPES
                                         if _panels(s[1], s[0], d, NARROW_ROWS)])
def test_hidden_delta_panels(shape, dtype):
    """The panel path of (D_l), whatever this CPU's epochs choose
    (``shapes.panel_tile_rows``), on the shapes that have panels."""
    m, n, n_next = shape
    rng = np.random.default_rng(4)
    delta_next = rng.standard_normal((m, n_next)).astype(dtype)
    W_next = rng.standard_normal((n_next, n)).astype(dtype)
    _, A = reference.dense_forward(rng.standard_normal((m, n)).astype(dtype), np.eye(n, dtype=dtype),
                                   np.zeros(n, dtype), "relu")
    assert_close(kernels.hidden_delta(delta_next, W_next, A, "relu", tile_rows=NARROW_ROWS),
                 reference.hidden_delta(delta_next, W_next, A, "relu"), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", LAYER_SHAPES)
def test_gradients(shape, dtype):
    m, n_in, n_out = shape
    rng = np.random.default_rng(5)
    delta = rng.standard_normal((m, n_out)).astype(dtype)
    A_prev = rng.random((m, n_in)).astype(dtype)
    ref_dW, ref_db = reference.gradients(delta, A_prev)
    comp_dW, comp_db = kernels.gradients(delta, A_prev)
    assert_close(comp_dW, ref_dW, dtype)
    assert_close(comp_db, ref_db, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sgd", [SGD(0.1), SGD(0.1, 0.9), SGD(0.1, 0.9, True), SGD(0.1, 0.9, True, 1e-2),
                                 SGD(0.1, 0.0, False, 1e-2)])
def test_sgd_update(sgd, dtype):
    rng = np.random.default_rng(6)
    arrays = [rng.standard_normal(s).astype(dtype) for s in ((7, 5), (7,), (7, 5), (7,), (7, 5), (7,))]
    ref = [a.copy() for a in arrays]
    comp = [a.copy() for a in arrays]
    for _ in range(3):  # several steps so the velocity matters
        reference.sgd_update(*ref, sgd)
        kernels.sgd_update(*comp, sgd)
    for c, r in zip(comp, ref):
        assert_close(c, r, dtype)


# --- the fused (G)+(U) of a training step, panel and row-block paths ---------------

UPDATE_SGDS = [SGD(0.1), SGD(0.1, 0.0, False, 1e-2), SGD(0.1, 0.9), SGD(0.1, 0.9, True, 1e-2)]


@pytest.mark.parametrize("sgd", UPDATE_SGDS, ids=["plain", "l2", "momentum", "nesterov_l2"])
@pytest.mark.parametrize("shape", [(16, 64, 4), (33, 130, 7), (64, 784, 30), (17, 200, 1), (5, 70, 9),
                                   (300, 130, 70)])
@pytest.mark.parametrize("dtype,tile_rows",
                         [pytest.param(d, r, id=f"{d}-panels" if r else f"{d}-row_blocks")
                          for d in DTYPES for r in (NARROW_ROWS, 0)])
def test_update_layer(shape, sgd, tile_rows, dtype):
    """``_update_layer`` (gradient fused with the update, used inside the compiled
    epoch) against reference ``gradients`` followed by ``sgd_update``, through
    the outer-product panels (whole panels plus leftover columns), whatever this
    CPU's epochs choose (``shapes.panel_tile_rows``), and through the row blocks
    alone.  Row counts that are not multiples of 4 exercise the
    clamped tile rows; 300 samples and 70 rows give several work items per
    panel; two steps so the velocity matters."""
    m, n_in, n_out = shape
    A_prev, W, b = layer_inputs(m, n_in, n_out, dtype, seed=7)
    delta = np.random.default_rng(8).standard_normal((m, n_out)).astype(dtype)
    ref = [W.copy(), b.copy(), np.zeros_like(W), np.zeros_like(b)]
    comp = [W.copy(), b.copy(), np.zeros_like(W), np.zeros_like(b)]
    panels = n_in // PANEL if tile_rows else 0
    for _ in range(2):
        dW, db = reference.gradients(delta, A_prev)
        reference.sgd_update(ref[0], ref[1], dW, db, ref[2], ref[3], sgd)
        update_layer(delta, A_prev, *comp, sgd, panels, tile_rows)
    for c, r in zip(comp, ref):
        assert_close(c, r, dtype)


MIRROR_SCRIPT = r"""
import numpy as np
from fastmlp.backends.numba.mirrors import update_layer
from fastmlp.network import SGD
rng = np.random.default_rng(0)
A, delta = rng.random((16, 64)).astype(np.float32), rng.random((16, 4)).astype(np.float32)
W, b = rng.random((4, 64)).astype(np.float32), np.zeros(4, np.float32)
update_layer(delta, A, W, b, np.zeros_like(W), np.zeros_like(b), SGD(0.1), 0)
print(W.tobytes().hex())
"""


def test_a_per_layer_function_runs_from_the_cache_in_a_fresh_process(tmp_path):
    """The per-layer functions call entry kernels that are cached on disk: a
    fresh process that loads one from the cache, before anything started
    Numba's thread pool, must run it (it crashed with a segmentation fault:
    the kernels ask the pool for the thread id).  Its result may differ from
    the compiling process's in the last bits (docs/performance.md,
    "Determinism"), so the two are compared to the tolerances of
    ``assert_close``."""
    import subprocess
    import sys

    from helpers import subprocess_env

    env = subprocess_env(NUMBA_CACHE_DIR=str(tmp_path))
    runs = [subprocess.run([sys.executable, "-c", MIRROR_SCRIPT], env=env, capture_output=True, text=True,
                           timeout=600) for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, (run.returncode, run.stderr[-2000:])
    compiled, loaded = (np.frombuffer(bytes.fromhex(run.stdout.strip()), np.float32) for run in runs)
    assert_close(loaded, compiled, "float32")


ORDER_SCRIPT = r"""
import sys
import numpy as np
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/backends"]
from test_kernels import check_epoch, make_net
from fastmlp.backends import numba as kernels
from fastmlp.network import SGD, Net

first = Net((9, 7, 3), ("identity", "softmax"), "nll")
rng = np.random.default_rng(0)
X = rng.random((40, 9)).astype(np.float32)
y = rng.integers(0, 3, 40).astype(np.uint8)
p = rng.standard_normal(7 * 10 + 3 * 8).astype(np.float32)
kernels.train_batches(p, np.zeros_like(p), first, SGD(0.05, 0.9, True, 1e-3), X, y, np.arange(40), 6)
check_epoch(make_net((40, 30, 64, 70, 3), "relu", "softmax", "nll"), SGD(0.05, 0.9, True, 1e-4), "float32",
            n=97, batch_size=16, uint8=False, epochs=2)
"""


def test_an_earlier_network_does_not_change_the_next_one():
    """Training one network must not change what the next one computes in the
    same process (in a child, so the order of this file does not matter).  It
    did when two specialisations of a kernel shared a name: cached code loaded
    from another process linked against the other one (0.098 from the
    reference; 2026-12-01, AMD EPYC Zen 4, AVX-512)."""
    import subprocess
    import sys
    from pathlib import Path

    from helpers import subprocess_env

    tests = str(Path(__file__).resolve().parents[1])
    done = subprocess.run([sys.executable, "-c", ORDER_SCRIPT, tests], env=subprocess_env(),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
