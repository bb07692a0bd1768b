"""Multilabel ``y`` (a 0/1 indicator matrix) in ``fastmlp.MLPClassifier``:
one logistic output per label and the summed binary log-loss (eqs. Y'', C2
of docs/math.md), the same numbers as scikit-learn's from the same start,
both backends, and the errors for targets of the wrong kind."""

import warnings

import numpy as np
import numpy.testing as npt
import pytest

# scikit-learn is a test dependency (the test extra): missing, it must fail, not skip.
import sklearn  # noqa: E402,F401

from sklearn.datasets import make_multilabel_classification  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.neural_network import MLPClassifier as SkClassifier  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from fastmlp import MLPClassifier  # noqa: E402
from helpers import start_sklearn_from  # noqa: E402

CASES = [dict(solver="adam"), dict(solver="sgd", learning_rate_init=0.05),
         dict(solver="adam", early_stopping=True, validation_fraction=0.2), dict(solver="lbfgs")]


def multilabel(n=240, n_labels=4):
    X, Y = make_multilabel_classification(n, 12, n_classes=n_labels, random_state=0)
    return StandardScaler().fit_transform(X), Y


def fitted(estimator, X, y, **fit_params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(X, y, **fit_params)


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_same_numbers_as_sklearn_from_the_same_start(case):
    X, Y = multilabel()
    settings = dict(hidden_layer_sizes=(10,), activation="tanh", random_state=0, max_iter=15, shuffle=False,
                    batch_size=40, alpha=1e-2, **case)
    ours = fitted(MLPClassifier(backend="numpy", **settings), X, Y)
    start = MLPClassifier(backend="numpy", **settings)
    start._random_state = np.random.RandomState(0)
    start._targets(Y, incremental=False, first_pass=True)
    start._initialize(X, None)
    sk = fitted(start_sklearn_from(SkClassifier(**settings), start), X, Y)
    lbfgs = case["solver"] == "lbfgs"
    assert ours.n_iter_ == sk.n_iter_
    for mine, theirs in zip(ours.coefs_ + ours.intercepts_, sk.coefs_ + sk.intercepts_):
        npt.assert_allclose(mine, theirs, rtol=0, atol=1e-5 if lbfgs else 1e-10)
    npt.assert_allclose(ours.predict_proba(X), sk.predict_proba(X), rtol=0, atol=1e-5 if lbfgs else 1e-10)
    npt.assert_array_equal(ours.predict(X), sk.predict(X))
    assert ours.predict(X).dtype.kind == sk.predict(X).dtype.kind == "i"
    npt.assert_array_equal(ours.classes_, sk.classes_)
    assert (ours.n_outputs_, ours.out_activation_) == (sk.n_outputs_, sk.out_activation_) == (4, "logistic")
    if lbfgs:
        assert ours.loss_ == pytest.approx(sk.loss_, rel=1e-6)
    else:  # the penalty is taken at the end-of-epoch weights, not each batch's (docs/sklearn.md)
        npt.assert_allclose(ours.loss_curve_, sk.loss_curve_, rtol=1e-3)
    if case.get("early_stopping"):  # unstratified split, subset accuracy, as there
        npt.assert_allclose(ours.validation_scores_, sk.validation_scores_, rtol=0, atol=1e-12)
    assert ours.score(X, Y) == sk.score(X, Y)


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_backends_agree(solver, dtype):
    X, Y = multilabel()
    X = X.astype(dtype)
    fits = [fitted(MLPClassifier(hidden_layer_sizes=(9,), solver=solver, max_iter=8, random_state=2,
                                 backend=backend), X, Y) for backend in ("numpy", "numba")]
    P = [fit.predict_proba(X) for fit in fits]
    assert P[0].dtype == P[1].dtype == dtype
    if dtype == np.float64:
        npt.assert_allclose(P[1], P[0], rtol=0, atol=1e-8 if solver == "lbfgs" else 1e-10)
    else:
        npt.assert_allclose(P[1], P[0], rtol=1e-3 if solver == "lbfgs" else 1e-4, atol=1e-4)


def test_partial_fit_weights_and_warm_start():
    X, Y = multilabel()
    clf = MLPClassifier(hidden_layer_sizes=(6,), backend="numpy", random_state=0)
    clf.partial_fit(X, Y, classes=np.arange(4))
    clf.partial_fit(X, Y, sample_weight=np.arange(len(X)) % 3)
    assert clf.n_iter_ == 1 and clf.t_ == 2 * len(X)
    npt.assert_array_equal(clf.classes_, np.arange(4))
    warm = fitted(MLPClassifier(hidden_layer_sizes=(6,), max_iter=3, backend="numpy", random_state=0,
                                warm_start=True), X, Y)
    fitted(warm, X, Y)
    assert len(warm.loss_curve_) == 6


def test_targets_of_the_wrong_kind():
    X, Y = multilabel()
    clf = fitted(MLPClassifier(hidden_layer_sizes=(6,), max_iter=2, backend="numpy", random_state=0), X, Y)
    with pytest.raises(ValueError, match="fitted on a multilabel indicator matrix of 4 labels; y must be of the same "
                                         "kind, got a 1-D y"):
        clf.partial_fit(X, Y[:, 0])
    with pytest.raises(ValueError, match="y has 3 labels, but this MLPClassifier has classes"):
        clf.partial_fit(X, Y[:, :3])
    with pytest.raises(ValueError, match="Multioutput target data is not supported with label binarization"):
        MLPClassifier().fit(X, np.c_[Y[:, 0] * 3, Y[:, 1]])
    with pytest.raises(ValueError, match="class_weight is defined for one label per sample"):
        MLPClassifier(class_weight={0: 2.0}).fit(X, Y)
    one_label = fitted(MLPClassifier(hidden_layer_sizes=(6,), max_iter=2, backend="numpy"), X, Y[:, 0])
    with pytest.raises(ValueError, match="fitted on the classes \\[0 1\\]; y must be of the same kind, got a 2-D y"):
        one_label.partial_fit(X, Y)
