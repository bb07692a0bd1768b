"""The NumPy reference: the readable specification of fastmlp's mathematics.

Every other backend must compute what this module computes (the equivalence
tests check it).  It is vectorised over the mini-batch and loops in Python only
over layers and mini-batches.  Equation labels refer to ``docs/math.md``.

Shapes, used everywhere (one row per sample, as in scikit-learn):
    A_prev, A   (m, n_in), (m, n_out)   activations of a mini-batch of m samples
    W           (n_out, n_in)           row j holds the weights into neuron j
    b           (n_out,)
    Z           (m, n_out)              weighted inputs
    Y           (m, n_L)                one-hot targets
    delta       (m, n_out)              dC/dZ for each sample (not yet averaged)

The equations, for layers l = 1..L (l = 0 is the input):
    (F)   Z_l = A_{l-1} W_l^T + b_l,   A_l = f_l(Z_l)
    (D_L) delta_L = (A_L - Y) * f_L'(Z_L)              quadratic cost (BP1)
          delta_L = A_L - Y                            sigmoid + cross-entropy,
                                                       softmax + log-likelihood
    (D_l) delta_l = (delta_{l+1} W_{l+1}) * f_l'(Z_l)  (BP2)
    (G)   dW_l = delta_l^T A_{l-1} / m,  db_l = mean of delta_l over the batch (BP3, BP4)
    (U)   W_l <- W_l - lr (dW_l + l2 W_l),  b_l <- b_l - lr db_l   (momentum: U3, U4;
          Adam: U6)

Mirror: the per-layer functions (``dense_forward``, ``output_delta``,
``hidden_delta``, ``gradients``, ``sgd_update``) have namesakes with the same
arguments in ``fastmlp.backends.numba.mirrors`` (exported as
``fastmlp.backends.numba.<name>``), each a thin call into the kernel the
compiled epoch runs; ``train_batches`` and ``predict_proba`` have theirs in
``fastmlp.backends.numba.plan``, and the hooks at the end of this module in
``fastmlp.backends.numba.runtime``.
"""

import contextlib
import math

import numpy as np

from fastmlp import noise as noise_draws
from fastmlp.functions import ACTIVATIONS, COSTS, DERIVATIVES, correct_rows
from fastmlp.network import Adam, single_logistic, unpack
from fastmlp.validation import is_sparse

#: What this backend implements (``MLP`` refuses what a backend lacks): the
#: optimisers, the activations, and the single logistic output of (Y').
SUPPORTS = ("sgd", "adam", "identity", "sigmoid", "tanh", "relu", "leaky_relu", "softmax", "exp",
            "single_logistic_output", "target_matrix", "sample_weight")

#: Rows per chunk when predicting, so activations of a large set stay small.
PREDICT_CHUNK = 4096
#: At most this many input values per chunk (4096 MNIST rows): wide inputs,
#: such as sparse text features made dense chunk by chunk, take fewer rows.
PREDICT_CHUNK_VALUES = 4096 * 784


def input_scale(X):
    """uint8 pixels are scaled to [0, 1] as they enter the first layer; float
    inputs are used as they are."""
    return 1.0 / 255.0 if X.dtype == np.uint8 else 1.0


def as_input(X_rows, dtype):
    """(X) The first layer's activations ``A_0``: the rows in the model's dtype,
    uint8 pixels divided by 255, sparse rows (CSR) made dense.  Only a
    mini-batch is converted at a time, so the training set stays uint8, or
    sparse, in memory."""
    if is_sparse(X_rows):
        X_rows = X_rows.toarray()
    return X_rows.astype(dtype) * dtype.type(input_scale(X_rows))


def targets(y, net, dtype):
    """The training targets of labels ``y``: (Y) one-hot rows, or (Y') for a
    network with a single sigmoid output unit (a two-class, logistic network)
    the label itself, 0 or 1, as one column ``(m, 1)``; (Y'') a target matrix
    ``y`` (2-D: regression values, multilabel indicators) as it is."""
    if y.ndim == 2:
        return y.astype(dtype, copy=False)
    if single_logistic(net):
        return np.asarray(y, dtype=dtype).reshape(-1, 1)
    return one_hot(y, net.sizes[-1], dtype)


def one_hot(y, n_classes, dtype):
    """(Y) Targets as rows of zeros with a one at the label: ``(m, n_classes)``."""
    Y = np.zeros((len(y), n_classes), dtype=dtype)
    Y[np.arange(len(y)), y] = 1
    return Y


def dense_forward(A_prev, W, b, activation):
    """(F) One layer's forward pass: ``Z = A_prev W^T + b``, ``A = f(Z)``.

    Returns ``(Z, A)``, both ``(m, n_out)``.
    Mirror: ``fastmlp.backends.numba.mirrors.dense_forward`` (kernel ``forward._forward_layer``).
    """
    Z = A_prev @ W.T + b
    return Z, ACTIVATIONS[activation](Z)


def output_delta(A_L, Y, activation, cost):
    """(D_L) ``delta_L = dC_x / dZ_L`` for each sample of the batch.

    For the quadratic cost it is ``(A_L - Y) * f'(Z_L)`` (BP1).  For sigmoid with
    cross-entropy and for softmax with the log-likelihood the derivative of the
    activation cancels and it is just ``A_L - Y`` (derived in docs/math.md, as
    scikit-learn's ``_backprop`` also notes).
    Mirror: ``fastmlp.backends.numba.mirrors.output_delta`` (kernel ``deltas._output_rows``).
    """
    if cost == "quadratic":
        return (A_L - Y) * DERIVATIVES[activation](A_L)
    return A_L - Y  # also exp + Poisson (D_L4)


def hidden_delta(delta_next, W_next, A, activation):
    """(D_l) ``delta_l = (delta_{l+1} W_{l+1}) * f_l'(Z_l)`` (BP2), with ``f'``
    computed from ``A_l = f_l(Z_l)``.
    Mirror: ``fastmlp.backends.numba.mirrors.hidden_delta`` (kernel ``deltas._hidden_layer``).
    """
    return (delta_next @ W_next) * DERIVATIVES[activation](A)


def gradients(delta, A_prev):
    """(G) Gradients of the batch-averaged cost: ``dW = delta^T A_prev / m``
    (BP4) and ``db = mean(delta)`` (BP3).  Mirror: ``fastmlp.backends.numba.mirrors.gradients``
    (through the fused gradient + update kernel ``update._update_layer``).
    """
    m = len(delta)
    return delta.T @ A_prev / m, delta.sum(axis=0) / m


def sgd_update(W, b, dW, db, vW, vb, sgd):
    """(U) Update one layer in place.

    (U1) plain SGD:  ``W -= lr (dW + l2 W)``, ``b -= lr db``  (L2 decays weights, not biases)
    (U3) momentum:   ``v = mu v - lr g``, ``W += v``
    (U4) Nesterov:   ``v = mu v - lr g``, ``W += mu v - lr g``
    with ``g`` the gradient including the L2 term (U2).  ``vW``/``vb`` hold the
    velocities and are only touched when ``momentum > 0``.
    Mirror: ``fastmlp.backends.numba.mirrors.sgd_update`` (kernel ``update._update_row``).
    """
    if sgd.momentum == 0:  # (U1), the original's rule
        W -= sgd.lr * (dW + sgd.l2 * W) if sgd.l2 else sgd.lr * dW
        b -= sgd.lr * db
        return
    for P, dP, V, decay in ((W, dW, vW, sgd.l2), (b, db, vb, 0.0)):
        g = dP + decay * P if decay else dP  # (U2)
        V *= sgd.momentum  # (U3) v = mu v - lr g
        V -= sgd.lr * g
        if sgd.nesterov:  # (U4)
            P += sgd.momentum * V - sgd.lr * g
        else:
            P += V


def adam_update(W, b, dW, db, mW, mb, vW, vb, adam, t):
    """(U6) Adam step ``t`` (1-based) for one layer, in place, with scikit-learn's
    bias correction folded into the rate:

        g = dW + l2 W (weights; biases get no L2),  m = b1 m + (1 - b1) g,
        v = b2 v + (1 - b2) g^2,  lr_t = lr sqrt(1 - b2^t) / (1 - b1^t),
        P -= lr_t m / (sqrt(v) + eps)

    ``mW, mb`` / ``vW, vb`` are the first / second moments (``fastmlp.network.Adam``).
    Mirror: ``fastmlp.backends.numba.adam._adam_apply`` (every layer in one
    call, inside the Adam driver ``adam._train_epoch_adam``).
    """
    lr_t = adam.lr * math.sqrt(1.0 - adam.beta_2 ** t) / (1.0 - adam.beta_1 ** t)  # a Python float: keeps float32 float32
    for P, dP, M, V, decay in ((W, dW, mW, vW, adam.l2), (b, db, mb, vb, 0.0)):
        g = dP + decay * P if decay else dP  # (U2)
        M *= adam.beta_1
        M += (1.0 - adam.beta_1) * g
        V *= adam.beta_2
        V += (1.0 - adam.beta_2) * (g * g)
        P -= lr_t * M / (np.sqrt(V) + adam.epsilon)


def forward(weights, biases, activations, A0, factors=None, raw=None):
    """(F) for every layer.  Returns the lists ``Zs = [Z_1..Z_L]`` and
    ``As = [A_0..A_L]`` that backpropagation needs.  With dropout,
    ``factors[k]`` (``dropout_factors``) multiplies layer input ``k`` before
    the next layer reads it (R4): ``As`` holds the inputs as the next layer
    read them, and the list ``raw``, when given, receives every layer's
    activations before that (``f(Z)``, from which ``f'`` is computed)."""
    factors = factors or [None] * len(weights)
    A = A0 if factors[0] is None else A0 * factors[0]
    Zs, As = [], [A]
    if raw is not None:
        raw.append(A0)
    for l, (W, b, activation) in enumerate(zip(weights, biases, activations)):
        Z, A = dense_forward(As[-1], W, b, activation)
        if raw is not None:
            raw.append(A)
        if l + 1 < len(weights) and factors[l + 1] is not None:
            A = A * factors[l + 1]  # (R4) inverted dropout of hidden layer l + 1
        Zs.append(Z)
        As.append(A)
    return Zs, As


def backprop(weights, biases, net, A0, Y, factors=None, r=None):
    """Cost and gradients of one mini-batch: ``(loss, dW_list, db_list, A_L)``.

    ``loss`` is the batch-averaged cost (C1-C4) before any update; the gradients
    are averaged over the batch (G).  ``weights``/``biases`` are the per-layer
    views given by ``fastmlp.network.unpack``.  ``factors``: the dropout
    factors of the batch (``dropout_factors``), or None: the gradients flow
    through the kept units only, scaled as the forward pass scaled them (R5).
    ``r``: the batch's sample-weight factors (``weight_factors``, W1), which
    scale each sample's cost and output delta, or None.
    """
    raw = []
    Zs, As = forward(weights, biases, net.activations, A0, factors, raw)
    loss = COSTS[net.cost](Zs[-1], As[-1], Y, r)
    delta = output_delta(As[-1], Y, net.activations[-1], net.cost)
    if r is not None:
        delta = delta * r[:, None].astype(delta.dtype)  # (W1)
    dWs, dbs = [None] * len(weights), [None] * len(weights)
    for l in range(len(weights) - 1, -1, -1):  # from the output layer back
        dWs[l], dbs[l] = gradients(delta, As[l])
        if l > 0:
            delta = hidden_delta(delta, weights[l], raw[l], net.activations[l - 1])
            if factors and factors[l] is not None:
                delta = delta * factors[l]  # (R5)
    return loss, dWs, dbs, As[-1]


def weight_factors(sample_weight, rows):
    """(W1) The factors of the batch ``rows``: ``r_i = m w_i / sum(w)``, which
    sum to the batch size ``m``, so that averaging over ``m`` averages by
    weight; and ``c = m / sum(w)``, which scales the batch's L2 term with
    them.  ``(None, 1.0)`` without weights; ``c = 0`` for a batch whose
    weights are all 0 (it changes nothing)."""
    if sample_weight is None:
        return None, 1.0
    w = sample_weight[rows]
    total = float(np.sum(w))
    c = len(rows) / total if total > 0 else 0.0
    return w * c, c


def dropout_factors(epoch_noise, sizes, rows, dtype):
    """(R4) For each layer input ``k`` with a dropout rate, the factors of the
    batch ``rows`` (sample indices): ``1 / (1 - p)`` where the unit is kept
    (``fastmlp.noise.keep``), 0 where it is dropped; None without dropout
    (``epoch_noise``: a ``fastmlp.noise.Noise`` or None)."""
    if epoch_noise is None or not any(epoch_noise.rates):
        return None
    factors = []
    for k, rate in enumerate(epoch_noise.rates):
        if rate == 0:
            factors.append(None)
        else:
            kept = noise_draws.keep(epoch_noise.key, rows, k, sizes[k], rate)
            factors.append(kept.astype(dtype) * dtype.type(noise_draws.scale(rate)))
    return factors


def shifted_inputs(A0, epoch_noise, rows):
    """(R6) The batch's input images, each shifted by its draw of the epoch."""
    dy, dx = noise_draws.shifts(epoch_noise.key, rows, epoch_noise.shift)
    return noise_draws.shift_images(A0, noise_draws.image_side(A0.shape[1]), dy, dx)


def max_norm(W, limit):
    """(U8) Scale every row of ``W`` (the weights into one unit) whose
    Euclidean norm exceeds ``limit`` down to norm ``limit``, in place."""
    norms = np.sqrt(np.einsum("ij,ij->i", W, W, dtype=np.float64))
    over = norms > limit
    W[over] *= (limit / norms[over])[:, None].astype(W.dtype)


def train_batches(params, velocity, net, sgd, X, y, order, batch_size, plan=None, noise=None,
                  sample_weight=None):
    """Train on the samples ``X[order]`` in consecutive mini-batches of
    ``batch_size`` (the last one may be shorter and is averaged over its own
    size), updating ``params`` (and ``velocity``, for momentum) in place.

    ``y``: class labels (1-D), or a target matrix ``(n, n_L)`` (2-D, Y'').
    ``sample_weight``: float64 weights per sample of ``X``, or None (W1):
    each batch's cost is their weighted mean, and its L2 term is scaled by
    ``m / sum(w)`` with it.

    ``sgd`` is a ``fastmlp.network.SGD`` (U1-U4) or ``Adam`` (U6); for Adam
    ``velocity`` holds both moments (``network.optimizer_state_size``).

    Returns ``(loss_sum, n_correct)``: the cost summed over the samples (each
    batch's mean times its size) and the number predicted right
    (``functions.correct_rows``), both measured on each batch before its
    update.
    ``plan`` is ignored (the Numba backend's compile plan, ``prepare``).
    ``noise``: a ``fastmlp.noise.Noise`` (dropout, R1-R5; input shifts, R6),
    or None.  With
    ``sgd.max_norm`` > 0 every hidden unit's incoming weights are held to that
    norm after each update (U8).
    Mirror: ``fastmlp.backends.numba.plan.train_batches``, which runs all of it in
    one compiled call.
    """
    weights, biases = unpack(params, net.sizes)  # views: updating them updates params
    adam = isinstance(sgd, Adam)
    n = len(params)
    v_weights, v_biases = unpack(velocity[n:] if adam else velocity, net.sizes)
    m_weights, m_biases = unpack(velocity[:n], net.sizes)  # Adam's first moments
    loss_sum, n_correct = 0.0, 0
    for k, start in enumerate(range(0, len(order), batch_size)):
        rows = order[start:start + batch_size]
        A0 = as_input(X[rows], params.dtype)
        if noise is not None and noise.shift:
            A0 = shifted_inputs(A0, noise, rows)
        Y = targets(y[rows], net, params.dtype)
        factors = dropout_factors(noise, net.sizes, rows, params.dtype)
        r, c = weight_factors(sample_weight, rows)
        batch_sgd = sgd._replace(l2=sgd.l2 * c) if r is not None else sgd
        loss, dWs, dbs, A_L = backprop(weights, biases, net, A0, Y, factors, r)
        loss_sum += loss * len(rows)
        n_correct += int(np.count_nonzero(correct_rows(A_L, y[rows], single_logistic(net))))
        for l, (W, b, dW, db) in enumerate(zip(weights, biases, dWs, dbs)):
            if adam:
                adam_update(W, b, dW, db, m_weights[l], m_biases[l], v_weights[l], v_biases[l],
                            batch_sgd, sgd.t + k + 1)
            else:
                sgd_update(W, b, dW, db, v_weights[l], v_biases[l], batch_sgd)
            if sgd.max_norm and l < len(weights) - 1:
                max_norm(W, sgd.max_norm)
    return loss_sum, n_correct


def loss_gradient(params, net, X, y, sample_weight=None, plan=None):
    """The cost averaged over all of ``X`` (weighted by ``sample_weight``,
    W1) and its gradient with respect to ``params`` (G), flat in their
    layout, without L2: ``(loss, gradient)``, what a full-batch optimiser
    (L-BFGS) asks for.  ``plan`` is ignored.
    Mirror: ``fastmlp.backends.numba.plan.loss_gradient``."""
    weights, biases = unpack(params, net.sizes)
    r, _ = weight_factors(sample_weight, np.arange(X.shape[0]))
    loss, dWs, dbs, _ = backprop(weights, biases, net, as_input(X, params.dtype), targets(y, net, params.dtype),
                                 None, r)
    gradient = np.empty_like(params)
    G_weights, G_biases = unpack(gradient, net.sizes)
    for G, g in zip([*G_weights, *G_biases], [*dWs, *dbs]):
        G[...] = g
    return loss, gradient


def predict_proba(params, net, X, plan=None):
    """Output activations ``A_L`` for every row of ``X``, ``(n, n_L)``, in chunks
    (``plan`` is ignored, as in ``train_batches``).
    Mirror: ``fastmlp.backends.numba.plan.predict_proba``."""
    weights, biases = unpack(params, net.sizes)
    out = np.empty((X.shape[0], net.sizes[-1]), dtype=params.dtype)
    rows = max(1, min(PREDICT_CHUNK, PREDICT_CHUNK_VALUES // X.shape[1]))
    for start in range(0, X.shape[0], rows):
        _, As = forward(weights, biases, net.activations, as_input(X[start:start + rows], params.dtype))
        out[start:start + rows] = As[-1]
    return out


# --- hooks the model calls on every backend (fastmlp.backends); nothing to do here ---

def check_network(sizes):
    """Every network the model accepts can be trained here."""


def call_guard():
    """Around every call: nothing to guard (NumPy releases no parallel regions of ours)."""
    return contextlib.nullcontext()


def threads(n_threads, owner=None):
    """NumPy's thread count is BLAS's (threadpoolctl sets it); ``n_threads`` is
    the Numba backend's setting."""
    return contextlib.nullcontext()


def before_run():
    """Before a run of epochs: nothing (the Numba backend quiets NumPy's idle
    BLAS threads here)."""


def prepare(net, dtype, *, batch_size=None, optimizer=None):
    """Nothing to plan or compile: None (the Numba backend returns its compile
    plan here)."""
    return None
