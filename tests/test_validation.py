"""Input checks of ``fit``/``predict``/``score`` beyond tests/test_model.py, and
the resource and divergence guards, from the API and from the command line.

Every bad input is refused with a ValueError/TypeError naming the argument
before any work; odd but valid layouts (big-endian, non-contiguous, lists,
objects with ``__array__``) are converted once and give the same answers as the
plain array.  Run for both backends where a backend is involved.
"""

import re
import warnings

import numpy as np
import numpy.testing as npt
import pytest

from fastmlp import MLP
from fastmlp.cli import main
from fastmlp.backends import get_backend
from fastmlp.config import TEST_ATOL_FLOAT64
from fastmlp.model import load
from fastmlp.validation import check_features, check_labels

BACKENDS = ["numpy", "numba"]


@pytest.fixture(scope="module")
def blobs():
    """A small learnable 3-class problem with 12 uint8 features."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300).astype(np.uint8)
    centres = rng.integers(0, 256, (3, 12))
    X = np.clip(centres[y] + rng.normal(0, 25, (300, 12)), 0, 255).astype(np.uint8)
    return X, y


@pytest.fixture(scope="module", params=BACKENDS)
def fitted(request, blobs):
    X, y = blobs
    return MLP([12, 8, 3], backend=request.param, seed=0).fit(X, y, epochs=2, learning_rate=3.0)


class ArrayLike:
    """A pandas-free object that only offers ``__array__``."""

    def __init__(self, array):
        self.array = array

    def __array__(self, dtype=None, copy=None):
        return self.array if dtype is None else self.array.astype(dtype)


# --- fit: what test_model.py does not cover ------------------------------------------

@pytest.mark.parametrize("X, y, error, match", [
    (np.zeros((5, 12), np.int8) - 1, np.zeros(5, int), ValueError, "integers from -1 to -1"),
    (np.full((5, 12), 256, np.uint16), np.zeros(5, int), ValueError, "integers from 256 to 256"),
    (np.full((5, 12), 2**40, np.int64), np.zeros(5, int), ValueError, "0..255"),
    (np.zeros((5, 12), np.uint8), np.full(5, 2**63, np.uint64), ValueError, "output layer has 3 classes"),
    (np.zeros((5, 12), np.uint8), np.array([-1, 0, 1, 2, 0]), ValueError, "labels from -1 to 2"),
    (np.zeros((5, 12), np.uint8), np.ones(5, bool), TypeError, "got booleans"),
    (np.zeros((5, 12), np.uint8), np.ones((5, 3), int), ValueError, "not one-hot"),
    (np.zeros((5, 12), np.uint8), [0, 1, 2.5, 0, 1], TypeError, "integer class labels"),
    (np.zeros((5, 12), np.uint8), "01201", TypeError, "y must be"),
    (np.zeros((5, 12), np.uint8), None, TypeError, "y must be"),
    (np.full((5, 12), np.inf), np.zeros(5, int), ValueError, "NaN or infinite"),
    (np.full((5, 12), 1e300), np.zeros(5, int), None, None),  # fine for float64; see the float32 case
    (np.ones((5, 12), bool), np.zeros(5, int), TypeError, "uint8 pixels or real numbers"),
    (np.ones((5, 12), complex), np.zeros(5, int), TypeError, "uint8 pixels or real numbers"),
    ([[0] * 12, [0] * 11], [0, 0], ValueError, "X must be a 2-D array.*cannot be read"),
    ("pixels", [0], TypeError, "X must be a 2-D array"),
    (None, [0], TypeError, "X must be a 2-D array"),
    (np.zeros((5, 0), np.uint8), np.zeros(5, int), ValueError, "0 features per sample"),
    (np.zeros((0, 12)), np.zeros(0, int), ValueError, "empty"),
])
def test_bad_fit_inputs_name_the_argument(X, y, error, match):
    model = MLP([12, 8, 3], backend="numpy", seed=0)
    if error is None:
        model.fit(X, y, epochs=1, batch_size=5, learning_rate=1e-9)
        return
    with pytest.raises(error, match=match):
        model.fit(X, y, epochs=1)
    assert model.params_ is None  # refused before any work


def test_float_inputs_too_large_for_float32_are_refused():
    model = MLP([12, 8, 3], backend="numpy", seed=0, dtype="float32")
    with pytest.raises(ValueError, match="too large for float32"):
        model.fit(np.full((5, 12), 1e300), np.zeros(5, int), epochs=1)


def test_eval_sets_are_checked_and_named(blobs):
    X, y = blobs
    with pytest.raises(ValueError, match=r"validation_data\[0\] has 11 features"):
        MLP([12, 8, 3], backend="numpy", seed=0).fit(X, y, validation_data=(X[:, :11], y))
    with pytest.raises(ValueError, match=r"test_data\[0\] has 300 samples but test_data\[1\] has 299"):
        MLP([12, 8, 3], backend="numpy", seed=0).fit(X, y, test_data=(X, y[:-1]))
    with pytest.raises(TypeError, match="test_data must be a pair"):
        MLP([12, 8, 3], backend="numpy", seed=0).fit(X, y, test_data=X)


# --- predict and score: the same checks ---------------------------------------------------

@pytest.mark.parametrize("X, error, match", [
    (np.zeros((4, 13), np.uint8), ValueError, "13 features per sample"),
    (np.zeros(12, np.uint8), ValueError, "must be 2-D"),
    (np.zeros((4, 3, 4), np.uint8), ValueError, "must be 2-D"),
    (np.zeros((0, 12), np.uint8), ValueError, "empty"),
    (np.full((4, 12), np.nan), ValueError, "NaN or infinite"),
    (np.full((4, 12), -3, np.int16), ValueError, "integers from -3"),
    (np.zeros((4, 12), object), TypeError, "numeric array"),
    ([["a"] * 12], TypeError, "numeric array"),
])
def test_bad_predict_inputs(fitted, X, error, match):
    for method in (fitted.predict, fitted.predict_proba):
        with pytest.raises(error, match=match):
            method(X)


@pytest.mark.parametrize("y, error, match", [
    (np.full(300, 3), ValueError, "output layer has 3 classes"),
    (np.zeros(299, int), ValueError, "300 samples but y has 299"),
    (np.zeros(300, float), TypeError, "integer class labels"),
    (np.zeros(300, bool), TypeError, "booleans"),
])
def test_bad_score_labels(fitted, blobs, y, error, match):
    with pytest.raises(error, match=match):
        fitted.score(blobs[0], y)


def test_odd_layouts_give_the_same_answers(fitted, blobs):
    """Big-endian, non-contiguous, Fortran-ordered, lists, other integer types and
    ``__array__`` objects: all converted once to what the backends take."""
    X, y = blobs
    expected = fitted.predict_proba(X)
    variants = [
        X.astype(">u2"), X.astype(np.int64), X.astype(np.int8, casting="unsafe") & 0x7F,
        np.asfortranarray(X), np.repeat(X, 2, axis=1)[:, ::2], X.tolist(), ArrayLike(X),
        (X / 255.0).astype(">f8"), (X / 255.0).astype(np.float32), (X / 255.0).astype(np.float16),
    ]
    for variant in variants:
        ref = expected
        if isinstance(variant, np.ndarray) and variant.dtype == np.int8:
            ref = fitted.predict_proba(X & 0x7F)
        tolerance = 1e-3 if getattr(variant, "dtype", None) in (np.float32, np.float16) else 1e-12
        npt.assert_allclose(fitted.predict_proba(variant), ref, rtol=tolerance, atol=tolerance)
    for labels in (y.astype(">i4"), y.astype(np.uint64), y.tolist(), ArrayLike(y.astype(np.int16))):
        assert fitted.score(X, labels) == fitted.score(X, y)


def test_conversions_leave_what_reaches_the_backend_c_contiguous_and_native(fitted, blobs):
    X, y = blobs
    seen = []
    backend = get_backend(fitted.backend)
    original = backend.predict_proba

    def spy(params, net, X):
        seen.append(X)
        return original(params, net, X)

    backend.predict_proba = spy
    try:
        for variant in (X.astype(">u2"), np.asfortranarray(X), (X / 255.0).astype(">f4"), X[::2]):
            fitted.predict(variant)
    finally:
        backend.predict_proba = original
    assert len(seen) == 4  # every prediction went through the backend's predict_proba
    for array in seen:
        assert array.flags.c_contiguous and array.dtype.isnative
        assert array.dtype in (np.uint8, fitted.dtype_)


def test_uint8_input_is_not_copied():
    X = np.zeros((4, 12), np.uint8)
    assert check_features(X, 12, np.float64) is X
    y = np.zeros(4, np.uint8)
    assert check_labels(y, 4, 3) is y


def test_numba_backend_refuses_more_than_256_classes():
    with pytest.raises(ValueError, match="at most 256 output classes"):
        MLP([12, 300], backend="numba").build()
    MLP([12, 300], backend="numpy").build()  # the reference has no such limit


# --- resource limits ----------------------------------------------------------------------

def test_cli_refuses_layers_too_big_for_memory(tmp_path, capsys):
    status = main(["train", "--layers", "784,200000,10000,10", "--no-download", "--data-dir", str(tmp_path),
                   "--backend", "numpy"])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and "GiB" in err and err.startswith("fastmlp train: error: ")


@pytest.mark.parametrize("backend", BACKENDS)
def test_batch_larger_than_the_data_is_clipped_like_batch_len_x(blobs, backend):
    X, y = blobs[0][:40], blobs[1][:40]
    with pytest.warns(UserWarning, match="batch_size 1000 is larger than the 40 training samples; using 40"):
        big = MLP([12, 8, 3], backend=backend, seed=0).fit(X, y, epochs=3, batch_size=1000, learning_rate=2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning at exactly len(X)
        exact = MLP([12, 8, 3], backend=backend, seed=0).fit(X, y, epochs=3, batch_size=40, learning_rate=2.0)
    npt.assert_array_equal(big.params_, exact.params_)
    assert [r["loss"] for r in big.history_] == [r["loss"] for r in exact.history_]


def test_batch_clipping_is_the_same_in_both_backends(blobs):
    X, y = blobs[0][:40], blobs[1][:40]
    with pytest.warns(UserWarning):
        a = MLP([12, 8, 3], backend="numpy", seed=0).fit(X, y, epochs=3, batch_size=1000, learning_rate=2.0)
    with pytest.warns(UserWarning):
        b = MLP([12, 8, 3], backend="numba", seed=0).fit(X, y, epochs=3, batch_size=1000, learning_rate=2.0)
    npt.assert_allclose(a.params_, b.params_, rtol=0, atol=TEST_ATOL_FLOAT64)


def test_cli_batch_warning_is_one_line(synthetic_mnist_dir, capsys):
    assert main(["train", "--data-dir", str(synthetic_mnist_dir), "--no-download", "--backend", "numpy",
                 "--quiet", "--epochs", "1", "--limit", "30", "--batch-size", "100"]) == 0
    err = capsys.readouterr().err
    assert err == "fastmlp: warning: batch_size 100 is larger than the 30 training samples; using 30\n"


# --- divergence -----------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_api_divergence_keeps_finite_weights(blobs, backend):
    from fastmlp.errors import DivergenceError

    X, y = blobs
    model = MLP([12, 8, 3], activation="leaky_relu", cost="nll", backend=backend, seed=0)
    with pytest.raises(DivergenceError, match=r"epoch \d+.*smaller learning rate"):
        model.fit(X, y, epochs=5, learning_rate=1e6)
    assert np.isfinite(model.params_).all() and np.isfinite(model.velocity_).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_cli_divergence_is_one_clear_line_and_saves_nothing_non_finite(synthetic_mnist_dir, tmp_path, capsys,
                                                                     backend):
    path = tmp_path / "model.npz"
    status = main(["train", "--data-dir", str(synthetic_mnist_dir), "--no-download", "--backend", backend,
                   "--quiet", "--lr", "1e6", "--activation", "leaky_relu", "--cost", "nll", "--epochs", "3",
                   "--limit", "200", "--layers", "784,16,10", "--save", str(path)])
    err = capsys.readouterr().err
    assert status == 1
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 1, err
    match = re.search(r"diverged in epoch (\d+)", errors[0])
    assert match and "smaller learning rate" in errors[0]
    assert "Traceback" not in err
    epoch = int(match.group(1))
    if epoch > 1:  # the epochs before it were saved, and only they
        assert f"saved the state of epoch {epoch - 1} to {path}" in err
        model = load(path)
        assert model.epochs_trained_ == epoch - 1
        assert np.isfinite(model.params_).all() and np.isfinite(model.velocity_).all()
    else:
        assert not path.exists()
