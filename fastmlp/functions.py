"""Activations, their derivatives, costs and initialisations, by name.

These are the NumPy building blocks of the reference (``fastmlp.backends.reference``);
the Numba backend re-implements each one inside its loops and refers to the
integer codes defined here so both sides agree on what a name means.

Derivatives are written in terms of the layer's *output* ``A`` rather than its
input ``Z`` (as scikit-learn's ``inplace_*_derivative`` do): every activation
offered here allows it, and it means the fast backend needs to keep only ``A``.
Equation numbers refer to ``docs/math.md``.
"""

import numpy as np

#: Slope of leaky ReLU for negative inputs.
LEAKY_SLOPE = 0.01

#: Integer codes shared with the Numba kernels (which cannot take strings cheaply).
ACTIVATION_CODES = {"sigmoid": 0, "tanh": 1, "relu": 2, "leaky_relu": 3, "softmax": 4, "identity": 5, "exp": 6}
COST_CODES = {"quadratic": 0, "cross_entropy": 1, "nll": 2, "poisson": 3}
HIDDEN_ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "identity")
INITS = ("normal", "xavier", "he", "glorot_uniform", "glorot_uniform_logistic")


# --- activations (eq. A1-A5) -------------------------------------------------

def sigmoid(Z):
    """(A1) ``1 / (1 + exp(-z))``, evaluated without overflow for any ``z``.

    With ``E = exp(-|z|)`` (never more than 1): ``1 / (1 + E)`` for ``z >= 0`` and
    the algebraically equal ``E / (1 + E)`` for ``z < 0``, which keeps full
    relative precision for large negative ``z`` as well.
    """
    E = np.exp(-np.abs(Z))
    A = 1.0 / (1.0 + E)
    return np.where(Z >= 0, A, E * A)


def tanh(Z):
    """(A2) hyperbolic tangent."""
    return np.tanh(Z)


def relu(Z):
    """(A3) ``max(z, 0)``."""
    return np.maximum(Z, 0)


def leaky_relu(Z):
    """(A4) ``z`` for ``z > 0``, ``LEAKY_SLOPE * z`` otherwise."""
    return np.where(Z > 0, Z, Z * Z.dtype.type(LEAKY_SLOPE))


def identity(Z):
    """(A6) ``z`` unchanged (scikit-learn's 'identity', a linear layer)."""
    return Z


def exp(Z):
    """(A7) ``exp(z)``: the output of a Poisson regression (the inverse of its
    log link), offered with the Poisson cost only."""
    return np.exp(Z)


def softmax(Z):
    """(A5) ``exp(z_j) / sum_k exp(z_k)`` per row, with the row maximum subtracted
    first so ``exp`` never overflows."""
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


# --- derivatives f'(z), expressed through A = f(z) (eq. A1'-A4') --------------

def sigmoid_derivative(A):
    """(A1') ``sigma'(z) = sigma(z) (1 - sigma(z)) = A (1 - A)``."""
    return A * (1 - A)


def tanh_derivative(A):
    """(A2') ``tanh'(z) = 1 - tanh(z)^2 = 1 - A^2``."""
    return 1 - A * A


def relu_derivative(A):
    """(A3') 1 where ``z > 0`` (equivalently ``A > 0``), else 0."""
    return (A > 0).astype(A.dtype)


def leaky_relu_derivative(A):
    """(A4') 1 where ``z > 0`` (equivalently ``A > 0``), else ``LEAKY_SLOPE``."""
    return np.where(A > 0, 1, LEAKY_SLOPE).astype(A.dtype)


def identity_derivative(A):
    """(A6') 1 everywhere."""
    return np.ones_like(A)


def exp_derivative(A):
    """(A7') ``exp'(z) = exp(z) = A``."""
    return A


ACTIVATIONS = {
    "identity": identity,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "relu": relu,
    "leaky_relu": leaky_relu,
    "softmax": softmax,
    "exp": exp,
}
# softmax has no entry: its Jacobian is not diagonal, and it is only offered
# with the log-likelihood cost, whose output delta does not need it (eq. D_L3).
DERIVATIVES = {
    "identity": identity_derivative,
    "sigmoid": sigmoid_derivative,
    "tanh": tanh_derivative,
    "relu": relu_derivative,
    "leaky_relu": leaky_relu_derivative,
    "exp": exp_derivative,
}


# --- costs, per sample summed, averaged over the mini-batch (eq. C1-C4) -------
# ``r``: per-sample factors that sum to the batch size (the sample weights of
# eq. W1, scaled), or None for 1 each; the cost is ``1/m sum_i r_i C_i``.

def softplus(Z):
    """``log(1 + exp(z))`` without overflow: ``max(z, 0) + log1p(exp(-|z|))``."""
    return np.maximum(Z, 0) + np.log1p(np.exp(-np.abs(Z)))


def _mean(per_sample, r):
    return float(np.sum(per_sample if r is None else per_sample * r)) / len(per_sample)


def quadratic_cost(Z_L, A_L, Y, r=None):
    """(C1) ``C = 1/(2m) sum_i ||a_i - y_i||^2``."""
    return _mean(0.5 * np.sum((A_L - Y) ** 2, axis=1), r)


def cross_entropy_cost(Z_L, A_L, Y, r=None):
    """(C2) ``C = -1/m sum_i sum_j [y ln a + (1 - y) ln(1 - a)]`` for sigmoid outputs.

    Written through ``z`` as ``softplus(z) - y z``, which is the same number but
    stays finite when ``a`` rounds to exactly 0 or 1.
    """
    return _mean(np.sum(softplus(Z_L) - Y * Z_L, axis=1), r)


def nll_cost(Z_L, A_L, Y, r=None):
    """(C3) ``C = -1/m sum_i ln a_{i, y_i}`` for softmax outputs, computed as
    ``logsumexp(z_i) - z_{i, y_i}`` (maximum subtracted) so it never takes ``ln 0``."""
    M = Z_L.max(axis=1, keepdims=True)
    logsumexp = M[:, 0] + np.log(np.exp(Z_L - M).sum(axis=1))
    return _mean(logsumexp - np.sum(Y * Z_L, axis=1), r)


def poisson_cost(Z_L, A_L, Y, r=None):
    """(C4) half the Poisson deviance for ``exp`` outputs (``a = e^z``):
    ``C = 1/m sum_i sum_j [y ln y - y z + a - y]`` (``y ln y = 0`` at 0),
    scikit-learn's ``poisson_loss``."""
    ylogy = np.where(Y > 0, Y * np.log(np.where(Y > 0, Y, 1)), 0)
    return _mean(np.sum(ylogy - Y * Z_L + A_L - Y, axis=1), r)


COSTS = {"quadratic": quadratic_cost, "cross_entropy": cross_entropy_cost, "nll": nll_cost,
         "poisson": poisson_cost}


def predicted_classes(A_L, logistic=None):
    """Class indices from output activations: the argmax of each row, or for a
    single sigmoid output unit (two classes, (Y'); ``logistic`` defaults to "one
    column") class 1 where ``a > 0.5`` (scikit-learn's threshold for a logistic
    output)."""
    if A_L.shape[1] == 1 if logistic is None else logistic:
        return (A_L[:, 0] > 0.5).astype(np.int64)
    return A_L.argmax(axis=1)


def correct_rows(A_L, y, logistic=None):
    """Which rows of a batch are predicted right: for labels ``y`` (1-D) the
    predicted class equals the label; for a target matrix ``y`` (2-D, eq. Y'')
    every output is on the target's side of 0.5 (a multilabel row predicted
    exactly, scikit-learn's subset accuracy; for regression targets a count
    without meaning, which the regressor ignores)."""
    if y.ndim == 2:
        return np.all((A_L > 0.5) == (y > 0.5), axis=1)
    return predicted_classes(A_L, logistic) == y


#: The output activations each cost is defined for (checked by the model).
COST_OUTPUTS = {
    "quadratic": HIDDEN_ACTIVATIONS,
    "cross_entropy": ("sigmoid",),
    "nll": ("softmax",),
    "poisson": ("exp",),
}


# --- initialisation (eq. I1-I3) -----------------------------------------------

def default_init(activation):
    """The initialisation used when the user names none, chosen from the activation.

    Sigmoid keeps the original project's standard normal, so the original run is
    reproduced; tanh and softmax get Xavier/Glorot, the ReLU family He.
    """
    return {"sigmoid": "normal", "tanh": "xavier", "softmax": "xavier"}.get(activation, "he")


def init_layer(rng, n_in, n_out, init):
    """Draw one layer's ``W (n_out, n_in)`` and ``b (n_out,)`` in float64.

    (I1) ``normal``: W and b from N(0, 1), as the original.
    (I2) ``xavier``: W from N(0, 2 / (n_in + n_out)), b = 0 (Glorot & Bengio 2010).
    (I3) ``he``: W from N(0, 2 / n_in), b = 0 (He et al. 2015).
    (I4) ``glorot_uniform``: W and b from U(-r, r), r = sqrt(6 / (n_in + n_out)),
         scikit-learn's MLP initialisation; ``glorot_uniform_logistic`` uses
         r = sqrt(2 / (n_in + n_out)), scikit-learn's choice for logistic hidden layers.
    Weights are always drawn before biases, layer by layer, so a seed fixes them.
    """
    if init in ("glorot_uniform", "glorot_uniform_logistic"):
        bound = np.sqrt((6.0 if init == "glorot_uniform" else 2.0) / (n_in + n_out))
        return rng.uniform(-bound, bound, (n_out, n_in)), rng.uniform(-bound, bound, n_out)
    W = rng.standard_normal((n_out, n_in))
    if init == "normal":
        return W, rng.standard_normal(n_out)
    scale = np.sqrt(2.0 / (n_in + n_out)) if init == "xavier" else np.sqrt(2.0 / n_in)
    return W * scale, np.zeros(n_out)
