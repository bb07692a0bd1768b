"""scikit-learn's own estimator checks on ``fastmlp.MLPClassifier``, with no
expected failures: with its default settings (the default backend) and on the
NumPy reference.  The checks skipped are those scikit-learn skips for lack of
pandas or of SCIPY_ARRAY_API in the environment, not for this estimator."""

import pytest

pytest.importorskip("sklearn")

from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from fastmlp import MLPClassifier  # noqa: E402


@parametrize_with_checks([MLPClassifier(), MLPClassifier(backend="numpy")])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
