"""Sparse inputs (SciPy CSR, CSC, COO): ``fastmlp.MLP`` and the scikit-learn
estimators train on them without making the training set dense (each
mini-batch's rows are made dense as they are gathered, eq. X of
docs/math.md), with exactly the numbers of the same data given dense, on
both backends."""

import tracemalloc
import warnings

import numpy as np
import numpy.testing as npt
import pytest
import scipy.sparse as sp

# scikit-learn is a test dependency (the test extra): missing, it must fail, not skip.
import sklearn  # noqa: E402,F401

from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.neural_network import MLPClassifier as SkClassifier  # noqa: E402

from fastmlp import MLP, MLPClassifier, MLPRegressor  # noqa: E402
from helpers import start_sklearn_from  # noqa: E402

BACKENDS = ["numpy", "numba"]


def sparse_data(n=400, n_features=120, density=0.05, seed=0):
    X = sp.random(n, n_features, density=density, format="csr", random_state=seed, dtype=np.float64)
    y = np.random.default_rng(seed).integers(0, 3, n)
    return X, y


def trained(X, y, backend, dtype="float64", **fit):
    model = MLP(sizes=[X.shape[1], 16, 3], backend=backend, seed=0, dtype=dtype)
    model.fit(X, y, **{"epochs": 2, "batch_size": 16, "learning_rate": 0.5, **fit})
    return model


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("form", ["csr", "csc", "coo"])
def test_sparse_input_trains_exactly_as_dense(backend, dtype, form):
    X, y = sparse_data()
    dense = trained(X.toarray(), y, backend, dtype)
    sparse = trained(X.asformat(form), y, backend, dtype)
    npt.assert_array_equal(sparse.params_, dense.params_)
    npt.assert_array_equal(sparse.predict_proba(X.asformat(form)), dense.predict_proba(X.toarray()))
    assert sparse.score(X, y) == dense.score(X.toarray(), y)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sparse_pixels_are_scaled_like_dense_pixels(backend):
    """uint8 (or integer 0..255) sparse values are pixels, divided by 255 as
    each mini-batch is gathered, as dense uint8 inputs are."""
    X, y = sparse_data()
    pixels = X.copy()
    pixels.data = np.ceil(pixels.data * 255)
    for stored in (np.uint8, np.int64):
        model = trained(pixels.astype(stored), y, backend, solver="adam", learning_rate=0.01)
        dense = trained(pixels.toarray().astype(np.uint8), y, backend, solver="adam", learning_rate=0.01)
        npt.assert_array_equal(model.params_, dense.params_)


@pytest.mark.parametrize("backend", BACKENDS)
def test_duplicate_entries_are_summed_and_the_input_is_not_changed(backend):
    # rows 0 and 2 store a column twice (CSR allows it; a dense copy sums them)
    X = sp.csr_matrix((np.array([0.25, 0.5, 1.0, 0.125, 0.125]), np.array([3, 3, 1, 0, 0]),
                       np.array([0, 2, 3, 5])), shape=(3, 5))
    y = np.array([0, 1, 2])
    model = MLP(sizes=[5, 4, 3], backend=backend, seed=0)
    model.fit(X, y, epochs=1, batch_size=3)
    dense = MLP(sizes=[5, 4, 3], backend=backend, seed=0)
    dense.fit(X.toarray(), y, epochs=1, batch_size=3)
    npt.assert_array_equal(model.params_, dense.params_)
    assert X.nnz == 5  # still the user's five entries


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_training_set_is_never_made_dense(backend):
    """2000 x 50000 at density 5e-4: dense it would take 800 MB.  The traced
    peak (NumPy's allocations, the reference's and the buffers') of a fit
    stays at the mini-batch buffers, and of ``predict_proba`` at its chunks
    of rows (``PREDICT_CHUNK`` dense rows of 50000 inputs, some 400 MB)."""
    X = sp.random(2000, 50_000, density=5e-4, format="csr", random_state=1, dtype=np.float64)
    y = np.random.default_rng(1).integers(0, 2, 2000)
    model = MLP(sizes=[50_000, 8, 2], backend=backend, seed=0)
    model.fit(X[:64], y[:64], epochs=1, batch_size=32)  # compile or load outside the measurement
    peaks = []
    for step in (lambda: model.fit(X, y, epochs=1, batch_size=32), lambda: model.predict_proba(X)):
        tracemalloc.start()
        try:
            step()
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    dense_bytes = X.shape[0] * X.shape[1] * 8
    assert peaks[0] < dense_bytes / 8 and peaks[1] < dense_bytes * 0.6, f"peaks {peaks}"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_estimators_on_sparse_input_equal_dense(backend, solver):
    X, y = sparse_data()
    settings = dict(hidden_layer_sizes=(8,), solver=solver, max_iter=5, random_state=0, backend=backend)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for estimator, target in ((MLPClassifier, y), (MLPRegressor, y.astype(float))):
            sparse = estimator(**settings).fit(X, target)
            dense = estimator(**settings).fit(X.toarray(), target)
            for mine, theirs in zip(sparse.coefs_ + sparse.intercepts_, dense.coefs_ + dense.intercepts_):
                npt.assert_array_equal(mine, theirs)
            npt.assert_array_equal(sparse.predict(X.tocsc()), dense.predict(X.toarray()))


def test_classifier_on_sparse_input_gives_sklearn_numbers_from_the_same_start():
    X, y = sparse_data()
    settings = dict(hidden_layer_sizes=(10,), activation="tanh", random_state=0, max_iter=10, shuffle=False,
                    batch_size=32, alpha=1e-2, learning_rate_init=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = MLPClassifier(backend="numpy", **settings).fit(X, y)
        start = MLPClassifier(backend="numpy", **settings)
        start._random_state = np.random.RandomState(0)
        start.classes_ = np.unique(y)
        start._initialize(X, None)
        sk = start_sklearn_from(SkClassifier(**settings), start).fit(X, y)
    for mine, theirs in zip(ours.coefs_ + ours.intercepts_, sk.coefs_ + sk.intercepts_):
        npt.assert_allclose(mine, theirs, rtol=0, atol=1e-10)


def test_sparse_input_errors():
    X, y = sparse_data()
    model = MLP(sizes=[X.shape[1], 4, 3], backend="numpy")
    bad = X.copy()
    bad.data[0] = np.nan
    with pytest.raises(ValueError, match="X contains NaN or infinite values"):
        model.fit(bad, y, epochs=1)
    big = X.copy()
    big.data = np.full(big.nnz, 300, dtype=np.int64)
    with pytest.raises(ValueError, match="X holds integers from 300 to 300; integer inputs must be pixels"):
        model.fit(big, y, epochs=1)
    with pytest.raises(ValueError, match="X has 119 features per sample, but the network's input layer expects 120"):
        model.fit(X[:, :119], y, epochs=1)
    with pytest.raises(TypeError, match="must hold uint8 pixels or real numbers, got a sparse matrix of dtype bool"):
        model.fit(X.astype(bool), y, epochs=1)
