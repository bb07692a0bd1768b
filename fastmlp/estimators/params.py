"""The parameters of ``fastmlp.MLPClassifier`` and ``fastmlp.MLPRegressor``,
declared once: scikit-learn's names, defaults and meanings, then fastmlp's
own, each with the check ``fit`` runs on it (``__init__`` only stores them, scikit-learn's rule, so ``clone``,
``set_params`` and searches see exactly what was passed).

Every check raises ``ValueError`` or ``TypeError`` with one line naming the
estimator and the parameter, what it got and what it accepts.
"""

import numbers

import numpy as np

from fastmlp.backends import BACKENDS
from fastmlp.functions import INITS

#: scikit-learn's hidden activation names -> fastmlp's (the same functions).
ACTIVATION_NAMES = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu",
                    "leaky_relu": "leaky_relu"}
SOLVERS = ("lbfgs", "sgd", "adam")
#: ``MLPRegressor``'s losses: half the squared error (identity outputs) and
#: half the Poisson deviance (exp outputs), as scikit-learn's.
REGRESSION_LOSSES = ("squared_error", "poisson")
#: scikit-learn's schedules, then fastmlp's per-epoch ones (fastmlp.schedules).
LEARNING_RATES = ("constant", "invscaling", "adaptive", "cosine", "step")

#: name -> default, in scikit-learn's order, then fastmlp's additions: the
#: parameters both estimators share (``MLPRegressor`` has ``loss`` first).
DEFAULTS = {
    "hidden_layer_sizes": (100,),
    "activation": "relu",
    "solver": "adam",
    "alpha": 0.0001,
    "batch_size": "auto",
    "learning_rate": "constant",
    "learning_rate_init": 0.001,
    "power_t": 0.5,
    "max_iter": 200,
    "shuffle": True,
    "random_state": None,
    "tol": 1e-4,
    "verbose": False,
    "warm_start": False,
    "momentum": 0.9,
    "nesterovs_momentum": True,
    "early_stopping": False,
    "validation_fraction": 0.1,
    "beta_1": 0.9,
    "beta_2": 0.999,
    "epsilon": 1e-8,
    "n_iter_no_change": 10,
    "max_fun": 15000,
    # fastmlp's own
    "backend": "numba",
    "dtype": None,
    "n_threads": None,
    "init": None,
    "input_scale": None,
    "lr_step_size": None,
    "lr_gamma": 0.1,
    "dropout": None,
    "max_norm": 0.0,
    "shift": 0,
}
REGRESSOR_DEFAULTS = {"loss": "squared_error", **DEFAULTS}
#: ``class_weight`` is fastmlp's: scikit-learn's MLPClassifier has none, and
#: its other classifiers define it (None, 'balanced' or {label: weight}).
CLASSIFIER_DEFAULTS = {**DEFAULTS, "class_weight": None}


def _fail(name, value, expected, error=ValueError):
    raise error(f"parameter {name!r} must be {expected}, got {value!r}")


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _real(lo=None, hi=None, lo_open=False, hi_open=False):
    """A check for a finite real number in an interval."""
    left = "" if lo is None else f"{'>' if lo_open else '>='} {lo}"
    right = "" if hi is None else f"{'<' if hi_open else '<='} {hi}"
    expected = "a real number" + (f" {left}" if left else "") + (" and" if left and right else "") + (
        f" {right}" if right else "")

    def check(name, value):
        if not _is_real(value):
            _fail(name, value, expected, TypeError if not isinstance(value, numbers.Number) else ValueError)
        if lo is not None and (value < lo or (lo_open and value == lo)):
            _fail(name, value, expected)
        if hi is not None and (value > hi or (hi_open and value == hi)):
            _fail(name, value, expected)
    return check


def _int(lo=1, none_ok=False):
    def check(name, value):
        if value is None and none_ok:
            return
        if not _is_int(value):
            _fail(name, value, f"an integer >= {lo}" + (" or None" if none_ok else ""), TypeError)
        if value < lo:
            _fail(name, value, f"an integer >= {lo}")
    return check


def _choice(options):
    def check(name, value):
        if not isinstance(value, str) or value not in options:
            _fail(name, value, "one of " + ", ".join(map(repr, options)))
    return check


def _bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        _fail(name, value, "True or False", TypeError)


def _verbose(name, value):
    if not (isinstance(value, (bool, np.bool_)) or _is_int(value)):
        _fail(name, value, "a bool or an integer", TypeError)


def _hidden(name, value):
    sizes = [value] if _is_int(value) else value
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__iter__"):
        _fail(name, value, "a tuple of positive layer widths such as (100,)", TypeError)
    sizes = list(sizes)
    if not all(_is_int(n) for n in sizes):
        _fail(name, value, "a tuple of positive integer layer widths", TypeError)
    if any(n <= 0 for n in sizes):
        _fail(name, value, "a tuple of layer widths > 0")


def _activation(name, value):
    expected = f"one of {', '.join(map(repr, ACTIVATION_NAMES))}, or a list of them with one per hidden layer"
    names = [value] if isinstance(value, str) else value
    if not hasattr(names, "__iter__") or not all(isinstance(n, str) and n in ACTIVATION_NAMES for n in names):
        _fail(name, value, expected)


def _batch_size(name, value):
    if value == "auto":
        return
    if not _is_int(value):
        _fail(name, value, "'auto' or an integer >= 1", TypeError)
    if value < 1:
        _fail(name, value, "'auto' or an integer >= 1")


def _n_iter_no_change(name, value):
    """An integer >= 1, or ``numpy.inf``: never stop on ``tol`` (scikit-learn's
    ``Options(Real, {np.inf})``)."""
    real = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if real and value == np.inf:
        return
    if not _is_int(value) or value < 1:
        _fail(name, value, "an integer >= 1 or numpy.inf", ValueError if real else TypeError)


def _random_state(name, value):
    if not (value is None or _is_int(value) or isinstance(value, np.random.RandomState)):
        _fail(name, value, "None, an integer or a numpy.random.RandomState", TypeError)


def _dtype(name, value):
    if value is not None and str(value) not in ("float32", "float64"):
        _fail(name, value, "None (the input's float type, as scikit-learn), 'float32' or 'float64'")


def _n_threads(name, value):
    _int(1, none_ok=True)(name, value)


def _init(name, value):
    if value is None:
        return
    names = [value] if isinstance(value, str) else value
    if not hasattr(names, "__iter__") or not all(isinstance(n, str) and n in INITS for n in names):
        _fail(name, value, f"None (scikit-learn's Glorot uniform), one of {', '.join(map(repr, INITS))}, "
                           "or a list with one per layer")


def _dropout(name, value):
    """None, a rate in [0, 1) for every hidden layer, or a sequence of rates
    (``fastmlp.noise.check_rates`` checks their count against the layers
    at fit)."""
    if value is None:
        return
    rates = [value] if _is_real(value) else value
    if not hasattr(rates, "__iter__") or isinstance(rates, str) or not all(
            _is_real(r) and 0.0 <= r < 1.0 for r in rates):
        _fail(name, value, "None, a rate in [0, 1) for the hidden layers, or a list of rates in [0, 1) "
                           "(inputs, then each hidden layer)")


def _class_weight(name, value):
    """None, 'balanced', or a dict of finite weights >= 0 per class label
    (the labels are checked against ``y``'s at fit)."""
    if value is None or (isinstance(value, str) and value == "balanced"):
        return
    if not isinstance(value, dict):
        _fail(name, value, "None, 'balanced' or a dict {class label: weight}", TypeError)
    if not all(_is_real(w) and w >= 0 for w in value.values()):
        _fail(name, value, "a dict {class label: weight} with finite weights >= 0")


def _input_scale(name, value):
    if value is not None:
        _real(0.0, lo_open=True)(name, value)


CHECKS = {
    "loss": _choice(REGRESSION_LOSSES),
    "hidden_layer_sizes": _hidden,
    "activation": _activation,
    "solver": _choice(SOLVERS),
    "alpha": _real(0.0),
    "batch_size": _batch_size,
    "learning_rate": _choice(LEARNING_RATES),
    "learning_rate_init": _real(0.0, lo_open=True),
    "power_t": _real(0.0),
    "max_iter": _int(1),
    "shuffle": _bool,
    "random_state": _random_state,
    "tol": _real(0.0),
    "verbose": _verbose,
    "warm_start": _bool,
    "momentum": _real(0.0, 1.0),
    "nesterovs_momentum": _bool,
    "early_stopping": _bool,
    "validation_fraction": _real(0.0, 1.0, hi_open=True),
    "beta_1": _real(0.0, 1.0, hi_open=True),
    "beta_2": _real(0.0, 1.0, hi_open=True),
    "epsilon": _real(0.0, lo_open=True),
    "n_iter_no_change": _n_iter_no_change,
    "max_fun": _int(1),
    "backend": _choice(tuple(BACKENDS)),
    "dtype": _dtype,
    "n_threads": _n_threads,
    "init": _init,
    "input_scale": _input_scale,
    "lr_step_size": _int(1, none_ok=True),
    "lr_gamma": _real(0.0, 1.0, lo_open=True),
    "dropout": _dropout,
    "max_norm": _real(0.0),
    "shift": _int(0),
    "class_weight": _class_weight,
}
assert CHECKS.keys() == REGRESSOR_DEFAULTS.keys() | CLASSIFIER_DEFAULTS.keys()


def check_params(params, estimator):
    """Run every parameter's check on ``params`` (the ``get_params()`` of the
    estimator named ``estimator``); the error names the estimator first."""
    for name, value in params.items():
        try:
            CHECKS[name](name, value)
        except (TypeError, ValueError) as error:
            raise type(error)(f"{estimator} {error}") from None


def hidden_sizes(value):
    """``hidden_layer_sizes`` as a list (an int means one hidden layer)."""
    return [int(value)] if _is_int(value) else [int(n) for n in value]
