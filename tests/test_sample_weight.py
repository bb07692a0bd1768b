"""``sample_weight`` and ``class_weight`` in ``fastmlp.MLPClassifier`` and
``fastmlp.MLPRegressor``: the same numbers as scikit-learn's estimators from
the same start (its 1.7 convention, eq. W1 of docs/math.md: each mini-batch's
loss and L2 term divided by the batch's sum of weights), whole-number weights
equal to repeated rows, both backends, and the errors."""

import warnings

import numpy as np
import numpy.testing as npt
import pytest

# scikit-learn is a test dependency (the test extra): missing, it must fail, not skip.
import sklearn  # noqa: E402,F401

from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris, make_classification  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.neural_network import MLPClassifier as SkClassifier, MLPRegressor as SkRegressor  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.class_weight import compute_class_weight  # noqa: E402

from fastmlp import MLPClassifier, MLPRegressor  # noqa: E402
from helpers import start_sklearn_from  # noqa: E402

CASES = [dict(solver="adam"), dict(solver="sgd", learning_rate_init=0.01),
         dict(solver="adam", early_stopping=True, validation_fraction=0.2), dict(solver="lbfgs")]


def weights(n, seed=0):
    """Weights of 0 to 3 (zeros included: such rows count for nothing)."""
    return np.random.default_rng(seed).integers(0, 4, n).astype(np.float64)


def classification(loader):
    X, y = loader(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def regression():
    X, y = load_diabetes(return_X_y=True)
    return StandardScaler().fit_transform(X), (y - y.mean()) / y.std()


def fitted(estimator, X, y, **fit_params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(X, y, **fit_params)


def assert_same_fit(ours, sk, atol):
    assert ours.n_iter_ == sk.n_iter_
    for mine, theirs in zip(ours.coefs_ + ours.intercepts_, sk.coefs_ + sk.intercepts_):
        npt.assert_allclose(mine, theirs, rtol=0, atol=atol)


@pytest.mark.parametrize("loader", [load_iris, load_breast_cancer], ids=["3 classes", "2 classes"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_classifier_weights_give_sklearn_numbers_from_the_same_start(loader, case):
    X, y = classification(loader)
    w = weights(len(X))
    settings = dict(hidden_layer_sizes=(12,), activation="tanh", random_state=0, max_iter=15, shuffle=False,
                    batch_size=32, alpha=1e-2, **case)
    ours = fitted(MLPClassifier(backend="numpy", **settings), X, y, sample_weight=w)
    start = MLPClassifier(backend="numpy", **settings)
    start._random_state = np.random.RandomState(0)
    start.classes_ = np.unique(y)
    start._initialize(X, None)
    sk = fitted(start_sklearn_from(SkClassifier(**settings), start), X, y, sample_weight=w)
    lbfgs = case["solver"] == "lbfgs"
    assert_same_fit(ours, sk, 1e-5 if lbfgs else 1e-10)
    if lbfgs:
        assert ours.loss_ == pytest.approx(sk.loss_, rel=1e-6)
    else:  # the penalty is taken at the end-of-epoch weights, not each batch's (docs/sklearn.md)
        npt.assert_allclose(ours.loss_curve_, sk.loss_curve_, rtol=1e-3)
    if case.get("early_stopping"):  # a weighted split and a weighted accuracy, as there
        npt.assert_allclose(ours.validation_scores_, sk.validation_scores_, rtol=0, atol=1e-12)


@pytest.mark.parametrize("loss", ["squared_error", "poisson"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_regressor_weights_give_sklearn_numbers_from_the_same_start(loss, case):
    X, y = regression()
    if loss == "poisson":
        y = np.exp(0.3 * y)
    w = weights(len(X), seed=1)
    settings = dict(loss=loss, hidden_layer_sizes=(12,), activation="tanh", random_state=0, max_iter=12,
                    shuffle=False, batch_size=64, alpha=1e-2, **case)
    ours = fitted(MLPRegressor(backend="numpy", **settings), X, y, sample_weight=w)
    start = MLPRegressor(backend="numpy", **settings)
    start._random_state = np.random.RandomState(0)
    start._initialize(X, y.reshape(-1, 1))
    sk = fitted(start_sklearn_from(SkRegressor(**settings), start), X, y, sample_weight=w)
    lbfgs = case["solver"] == "lbfgs"
    assert_same_fit(ours, sk, 1e-5 if lbfgs else 1e-10)
    if lbfgs:
        assert ours.loss_ == pytest.approx(sk.loss_, rel=1e-6)
    else:
        npt.assert_allclose(ours.loss_curve_, sk.loss_curve_, rtol=1e-3)
    if case.get("early_stopping"):  # weighted R^2
        npt.assert_allclose(ours.validation_scores_, sk.validation_scores_, rtol=0, atol=1e-9)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_whole_number_weights_equal_repeated_rows(backend, solver):
    """With one mini-batch per epoch (batch_size='auto' and n <= 200, as in
    scikit-learn's own check), a weight of k is the row k times; 0 drops it."""
    X, y = classification(load_iris)
    X, y = X[::2], y[::2]
    w = weights(len(X), seed=2)
    assert w.sum() <= 200
    settings = dict(hidden_layer_sizes=(8,), solver=solver, max_iter=20, random_state=0, backend=backend,
                    shuffle=False)
    weighted = fitted(MLPClassifier(**settings), X, y, sample_weight=w)
    rows = np.repeat(np.arange(len(X)), w.astype(int))
    repeated = fitted(MLPClassifier(**settings), X[rows], y[rows])
    assert_same_fit(weighted, repeated, 1e-7 if solver == "lbfgs" else 1e-10)


@pytest.mark.parametrize("estimator", [MLPClassifier, MLPRegressor])
@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_backends_agree_with_weights(estimator, solver, dtype):
    X, y = classification(load_iris) if estimator is MLPClassifier else regression()
    X = X.astype(dtype)
    w = weights(len(X), seed=3)
    fits = [fitted(estimator(hidden_layer_sizes=(9,), solver=solver, max_iter=8, random_state=2, batch_size=50,
                             backend=backend), X, y, sample_weight=w) for backend in ("numpy", "numba")]
    outputs = [fit.predict_proba(X) if estimator is MLPClassifier else fit.predict(X) for fit in fits]
    if dtype == np.float64:
        npt.assert_allclose(outputs[1], outputs[0], rtol=0, atol=1e-8 if solver == "lbfgs" else 1e-10)
    else:
        npt.assert_allclose(outputs[1], outputs[0], rtol=1e-3 if solver == "lbfgs" else 1e-4, atol=1e-4)


@pytest.mark.parametrize("class_weight", [{0: 1.0, 1: 3.0, 2: 0.5}, "balanced"], ids=["dict", "balanced"])
def test_class_weight_is_a_weight_per_class(class_weight):
    """``class_weight`` multiplies ``sample_weight`` by the class's weight
    (``compute_class_weight``'s, scikit-learn's definition)."""
    X, y = classification(load_iris)
    keep = np.r_[0:50, 50:80, 100:110]  # 50, 30 and 10 samples per class
    X, y = X[keep], y[keep]
    w = weights(len(X), seed=4) + 1
    settings = dict(hidden_layer_sizes=(8,), max_iter=10, random_state=0, backend="numpy")
    with_classes = fitted(MLPClassifier(class_weight=class_weight, **settings), X, y, sample_weight=w)
    per_class = compute_class_weight(class_weight, classes=np.unique(y), y=y, sample_weight=w)
    by_hand = fitted(MLPClassifier(**settings), X, y, sample_weight=w * per_class[y])
    assert_same_fit(with_classes, by_hand, 0.0)


def test_balanced_class_weight_raises_the_minority_recall():
    X, y = make_classification(600, 10, weights=[0.9, 0.1], class_sep=0.5, random_state=0)
    recall = {}
    for class_weight in (None, "balanced"):
        model = fitted(MLPClassifier(hidden_layer_sizes=(8,), max_iter=50, random_state=0, backend="numpy",
                                     class_weight=class_weight), X, y)
        recall[class_weight] = np.mean(model.predict(X[y == 1]) == 1)
    assert recall["balanced"] > recall[None] + 0.1


def test_weight_errors():
    X, y = classification(load_iris)
    with pytest.raises(ValueError, match="Negative values"):
        MLPClassifier(backend="numpy").fit(X, y, sample_weight=-np.ones(len(X)))
    with pytest.raises(ValueError, match=r"sample_weight.shape == \(3,\), expected \(150,\)"):
        MLPClassifier(backend="numpy").fit(X, y, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="at least one non-zero"):
        MLPRegressor(backend="numpy").fit(X, y, sample_weight=np.zeros(len(X)))
    with pytest.raises(ValueError, match="sample_weight \\(with class_weight\\) is 0 for every sample"):
        MLPClassifier(backend="numpy", class_weight={0: 0, 1: 0, 2: 0}).fit(X, y)
    with pytest.raises(TypeError, match="MLPClassifier parameter 'class_weight' must be None, 'balanced' or a dict"):
        MLPClassifier(class_weight="weighted").fit(X, y)
    with pytest.raises(ValueError, match="finite weights >= 0"):
        MLPClassifier(class_weight={0: -1.0}).fit(X, y)
    with pytest.raises(ValueError, match="not supported by partial_fit"):
        MLPClassifier(class_weight="balanced").partial_fit(X, y, classes=np.unique(y))
