"""fastmlp's scikit-learn estimators, ``MLPClassifier`` and ``MLPRegressor``:
drop-ins for ``sklearn.neural_network``'s (the same parameters, defaults,
fitted attributes and stopping rules) that train on fastmlp's backends.

They are scikit-learn estimators (``clone``, pipelines, ``GridSearchCV``,
``cross_val_score``), so they need scikit-learn, an optional extra
(``pip install fastmlp[sklearn]``): fastmlp's core needs only NumPy and
Numba, and ``fastmlp.MLP`` users should not have to install scikit-learn.

``params.py`` declares and checks the parameters, ``base.py`` holds the
fitting both share (a ``fastmlp.MLP`` trained epoch by epoch, or by L-BFGS),
``classifier.py`` and ``regressor.py`` what their targets need.
"""

from fastmlp.errors import MissingDependencyError

try:
    import scipy.optimize  # noqa: F401
    import sklearn  # noqa: F401
except ImportError as error:  # the optional extra is missing
    raise MissingDependencyError(
        f"fastmlp's scikit-learn estimators need scikit-learn ({error}): pip install fastmlp[sklearn]") from None

from fastmlp.estimators.classifier import MLPClassifier  # noqa: E402
from fastmlp.estimators.regressor import MLPRegressor  # noqa: E402

__all__ = ["MLPClassifier", "MLPRegressor"]
