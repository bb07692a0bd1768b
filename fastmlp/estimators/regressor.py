"""``fastmlp.MLPRegressor``: a drop-in for ``sklearn.neural_network.MLPRegressor``
(same parameters, defaults, fitted attributes and stopping rules) that trains
on fastmlp's backends.

The fitting it shares with ``MLPClassifier`` is in ``base.py``; this module
adds the regression targets: one or several real outputs, identity outputs
with half the squared error or exp outputs with half the Poisson deviance
(eqs. A6/C1 and A7/C4 of docs/math.md), R^2 as the validation score.
``docs/sklearn.md`` lists where the semantics differ from scikit-learn's and
why.
"""

import inspect

import numpy as np
from scipy.special import xlogy
from sklearn.base import RegressorMixin
from sklearn.metrics import r2_score
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import column_or_1d

from fastmlp.estimators.base import BaseMLP
from fastmlp.estimators.params import DEFAULTS, REGRESSOR_DEFAULTS

#: ``loss`` -> (``out_activation_``, fastmlp's output activation, cost).
OUTPUT_LAYERS = {"squared_error": ("identity", "identity", "quadratic"), "poisson": ("exp", "exp", "poisson")}


def _squared_loss(A, Y, sample_weight=None):
    """scikit-learn's ``squared_loss``: half the squared error, averaged over
    samples (weighted by ``sample_weight``) and outputs."""
    return float(0.5 * np.average((A - Y) ** 2, weights=sample_weight, axis=0).mean())


def _poisson_loss(A, Y, sample_weight=None):
    """scikit-learn's ``poisson_loss``: half the Poisson deviance, averaged
    over samples (weighted by ``sample_weight``) and summed over outputs."""
    return float(np.sum(np.average(xlogy(Y, Y) - xlogy(Y, A) - Y + A, weights=sample_weight, axis=0)))


class MLPRegressor(RegressorMixin, BaseMLP):
    """Multi-layer perceptron regressor trained by fastmlp (half the squared
    error or half the Poisson deviance; lbfgs, SGD or Adam).

    The parameters up to ``max_fun`` are scikit-learn's ``MLPRegressor``'s,
    with the same names, defaults and meanings: ``loss='squared_error'``
    trains identity outputs, ``loss='poisson'`` exp outputs (targets >= 0).
    ``y`` may have one column per output.  fastmlp's own parameters (from
    ``backend`` on) and ``validation_loss_curve_`` are ``MLPClassifier``'s;
    the validation score of ``early_stopping`` is R^2, as scikit-learn's.
    """

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant", learning_rate_init=0.001,
                 power_t=0.5, max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False,
                 warm_start=False, momentum=0.9, nesterovs_momentum=True, early_stopping=False,
                 validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 n_iter_no_change=10, max_fun=15000, backend="numba", dtype=None, n_threads=None,
                 init=None, input_scale=None, lr_step_size=None, lr_gamma=0.1, dropout=None, max_norm=0.0,
                 shift=0):
        self.loss = loss
        shared = {name: value for name, value in locals().items() if name in DEFAULTS}
        super().__init__(**shared)

    def fit(self, X, y, sample_weight=None):
        """Train on ``X`` (n_samples, n_features) and targets ``y``
        (n_samples,) or (n_samples, n_outputs) for up to ``max_iter`` epochs
        (or L-BFGS iterations); returns ``self``.  ``sample_weight``: a weight
        >= 0 per sample, as scikit-learn's (each mini-batch's loss and L2 term
        divided by the batch's sum of weights, eq. W1 of docs/math.md)."""
        return self._fit(X, y, incremental=False, sample_weight=sample_weight)

    @available_if(lambda self: self._check_solver())
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over ``X``, ``y`` (weighted by ``sample_weight`` as in ``fit``)."""
        return self._fit(X, y, incremental=True, sample_weight=sample_weight)

    def _validate_train(self, X, y, reset):
        X, y = self._validated_X(X, y, reset=reset, multi_output=True, y_numeric=True)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if self.loss == "poisson" and np.any(y < 0):
            raise ValueError(f"MLPRegressor with loss='poisson' needs targets y >= 0, got a minimum of {y.min()!r}")
        return X, y

    def _targets(self, y, incremental, first_pass):
        """``y`` as a target matrix with one column per output (eq. Y'')."""
        return y.reshape(-1, 1) if y.ndim == 1 else y

    def _output_layer(self, targets):
        return (targets.shape[1], *OUTPUT_LAYERS[self.loss])

    def _data_loss(self, cost):
        """scikit-learn's squared loss averages over the outputs as well; the
        cost (C1) sums them, and so do both gradients (scikit-learn's too)."""
        return cost / self.n_outputs_ if self.loss == "squared_error" else cost

    def _validation(self, outputs, y_val, sample_weight):
        """R^2 (scikit-learn's validation score; NaN for non-finite
        predictions, as there) and scikit-learn's loss without the penalty."""
        loss = (_squared_loss if self.loss == "squared_error" else _poisson_loss)(outputs, y_val, sample_weight)
        if not np.isfinite(outputs).all():
            return np.nan, loss
        return float(r2_score(y_val, outputs, sample_weight=sample_weight)), loss

    def predict(self, X):
        """The predicted targets: ``(n_samples,)`` for one output, else
        ``(n_samples, n_outputs)``."""
        A = self._outputs(X)
        return A.ravel() if self.n_outputs_ == 1 else A

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.positive_only = self.loss == "poisson"
        return tags


assert {name: p.default for name, p in inspect.signature(MLPRegressor).parameters.items()} == REGRESSOR_DEFAULTS
