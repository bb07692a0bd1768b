"""``fastmlp.MLPClassifier``: a drop-in for ``sklearn.neural_network.MLPClassifier``
(same parameters, defaults, fitted attributes and stopping rules) that trains
on fastmlp's backends.

It is a scikit-learn estimator (``clone``, pipelines, ``GridSearchCV``,
``cross_val_score``), so it needs scikit-learn, an optional extra
(``pip install fastmlp[sklearn]``): fastmlp's core needs only NumPy and Numba,
and ``fastmlp.MLP`` users should not have to install scikit-learn.

The network underneath is a ``fastmlp.MLP``, trained epoch by epoch with its
``train_epoch`` (the trainer ``MLP.fit`` and the CLI use); this module adds
scikit-learn's label handling, early stopping, tolerance-based stopping and
learning-rate schedules around it.  ``docs/sklearn.md`` lists where the
semantics differ from scikit-learn's and why.
"""

import inspect
import numbers
import warnings

import numpy as np

from fastmlp.errors import MissingDependencyError

try:
    import scipy.optimize
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.exceptions import ConvergenceWarning, NotFittedError
    from sklearn.model_selection import train_test_split
    from sklearn.utils import check_random_state
    from sklearn.utils.optimize import _check_optimize_result
    from sklearn.utils.multiclass import _check_partial_fit_first_call, check_classification_targets
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as error:  # the optional extra is missing
    raise MissingDependencyError(
        f"fastmlp.MLPClassifier needs scikit-learn ({error}): pip install fastmlp[sklearn]") from None

from fastmlp import schedules
from fastmlp.backends import get_backend
from fastmlp.functions import predicted_classes
from fastmlp.model import MLP
from fastmlp.network import SGD, Adam, weight_offsets
from fastmlp.sklearn_params import ACTIVATION_NAMES, DEFAULTS, check_params, hidden_sizes

#: uint8 input with this ``input_scale`` stays uint8: the backends scale pixels
#: by 1/255 inside the first layer (eq. X of docs/math.md).
FUSED_SCALE = 1.0 / 255.0


def _log_loss(P, y):
    """The mean log-loss of outputs ``P`` (one logistic column, or softmax)
    for class indices ``y``, in scikit-learn's convention (its
    ``neural_network._base.log_loss``): probabilities clipped to
    ``[eps, 1 - eps]`` of their dtype, no penalty."""
    eps = np.finfo(P.dtype).eps
    P = np.clip(P, eps, 1 - eps)
    p = np.where(y == 1, P[:, 0], 1 - P[:, 0]) if P.shape[1] == 1 else P[np.arange(len(y)), y]
    return float(-np.mean(np.log(p)))


class _Layers(list):
    """``coefs_`` or ``intercepts_``: a list of views of the network's flat
    parameter buffer, in which assigning an item copies into that layer."""

    def __init__(self, name, views):
        super().__init__(views)
        self.name = name

    def __setitem__(self, i, value):
        view, value = self.checked(i, value)
        view[...] = value

    def checked(self, i, value):
        """Layer ``i``'s view and ``value`` as an array of its shape."""
        if not isinstance(i, numbers.Integral):
            raise TypeError(f"{self.name} is assigned one layer at a time ({self.name}[i] = array), got {i!r}")
        view, value = super().__getitem__(i), np.asarray(value)
        if value.shape != view.shape:
            raise ValueError(f"{self.name}[{i}] must have shape {view.shape}, got {value.shape}")
        return view, value


class MLPClassifier(ClassifierMixin, BaseEstimator):
    """Multi-layer perceptron classifier trained by fastmlp (log-loss, SGD or Adam).

    The parameters up to ``max_fun`` are scikit-learn's ``MLPClassifier``'s, with
    the same names, defaults and meanings (``solver='lbfgs'``: SciPy's
    L-BFGS-B on the full-batch loss and gradient of the backend,
    ``loss_gradient``, with ``max_iter``, ``max_fun`` and ``tol``).
    ``activation`` may also be ``'leaky_relu'`` or a list
    with one name per hidden layer; ``learning_rate`` may also be ``'cosine'`` or
    ``'step'`` (fastmlp's per-epoch schedules over ``max_iter`` epochs, for both
    solvers; scikit-learn's three apply to ``sgd`` only, as there).

    fastmlp's own parameters
    ------------------------
    backend : {"numba", "numpy"}
        The compiled kernels or the NumPy reference.
    dtype : {None, "float32", "float64"}
        None follows the input as scikit-learn does (float32 stays float32,
        anything else becomes float64).
    n_threads : int, optional
        Threads for the Numba backend.
    init : str or list of str, optional
        None: scikit-learn's Glorot uniform (``glorot_uniform``, or
        ``glorot_uniform_logistic`` when ``activation='logistic'``); or any of
        ``fastmlp.functions.INITS``, one for all layers or one per layer.
    input_scale : float, optional
        Multiplies every input.  With uint8 ``X`` and ``input_scale=1/255`` the
        data stays uint8 in memory and the scaling happens inside the first
        layer; other combinations scale a float copy.  None: ``X`` is used as
        given, as scikit-learn does.
    lr_step_size, lr_gamma
        The ``'step'`` schedule: the rate is multiplied by ``lr_gamma`` every
        ``lr_step_size`` epochs (default: a third of ``max_iter``).
    dropout : float or list of float, optional
        Dropout rates while training (``fastmlp.MLP``'s ``dropout``: one for
        every hidden layer, or the inputs' then each hidden layer's); the
        masks do not depend on the thread count or the backend.
    max_norm : float
        > 0: after each update, every hidden unit's incoming weights are held
        to at most this Euclidean norm (0: no limit).
    shift : int
        > 0 (square images as features, e.g. 784 = 28 x 28): each training
        image is moved by up to this many pixels along each axis as its batch
        is read, a new draw per epoch (augmentation; 0: none).

    fastmlp's own attribute
    -----------------------
    validation_loss_curve_ : list of float or None
        With ``early_stopping=True``, the validation set's log-loss after each
        epoch (scikit-learn's clipped ``log_loss``, without ``alpha``'s
        penalty), beside ``validation_scores_``; None otherwise.
    """

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False,
                 warm_start=False, momentum=0.9, nesterovs_momentum=True, early_stopping=False,
                 validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 n_iter_no_change=10, max_fun=15000, backend="numba", dtype=None, n_threads=None,
                 init=None, input_scale=None, lr_step_size=None, lr_gamma=0.1, dropout=None, max_norm=0.0,
                 shift=0):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.backend = backend
        self.dtype = dtype
        self.n_threads = n_threads
        self.init = init
        self.input_scale = input_scale
        self.lr_step_size = lr_step_size
        self.lr_gamma = lr_gamma
        self.dropout = dropout
        self.max_norm = max_norm
        self.shift = shift

    # --- fitting -------------------------------------------------------------------

    def fit(self, X, y):
        """Train on ``X`` (n_samples, n_features) and labels ``y`` of any type
        (strings, integers, ...) for up to ``max_iter`` epochs; returns ``self``."""
        return self._fit(X, y, incremental=False)

    def partial_fit(self, X, y, classes=None):
        """One epoch over ``X``, ``y``.  ``classes`` (every label that will ever
        be seen) is required on the first call, as in scikit-learn."""
        if self.solver == "lbfgs":
            raise AttributeError("partial_fit is only available for stochastic optimizers. lbfgs is not "
                                 "stochastic.")
        if self.solver not in ("sgd", "adam"):
            check_params(self.get_params())
        if _check_partial_fit_first_call(self, classes):
            self._classes_from_partial_fit = True
        return self._fit(X, y, incremental=True)

    def _fit(self, X, y, incremental):
        check_params(self.get_params())
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        first_pass = not hasattr(self, "_mlp") or (not self.warm_start and not incremental)
        X, y = self._validate_train(X, y, reset=first_pass)
        y_idx = self._class_indices(y, incremental, first_pass)
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(X)
        elif X.shape[1] != self._mlp.sizes[0]:  # validate_data has checked; kept for clarity
            raise ValueError(f"X has {X.shape[1]} features, but MLPClassifier expects {self._mlp.sizes[0]}")
        if self.solver == "lbfgs":
            self._fit_lbfgs(X, y_idx)
            return self
        if not incremental or not hasattr(self, "_lr"):  # scikit-learn's new optimiser per fit
            self._lr = float(self.learning_rate_init)
            self._mlp.velocity_[...] = 0
            self._mlp.adam_steps_ = 0
        self._fit_epochs(X, y_idx, incremental)
        return self

    def _fit_lbfgs(self, X, y):
        """scikit-learn's ``_fit_lbfgs``: L-BFGS-B over the flat parameters on
        the whole training set, minimising the mean log-loss plus
        ``alpha / (2 n) ||W||^2`` (biases not penalised) with its gradient
        (eq. G_full of docs/math.md); ``gtol`` is ``tol``."""
        mlp = self._mlp
        X, y = mlp._checked(X, y)
        backend = get_backend(mlp.backend)
        penalised = np.zeros(len(mlp.params_), dtype=bool)
        for start, n_in, n_out in zip(weight_offsets(mlp.sizes), mlp.sizes[:-1], mlp.sizes[1:]):
            penalised[start:start + n_in * n_out] = True
        decay = float(self.alpha) / len(X)

        def loss_and_gradient(x):
            params = x.astype(mlp.dtype_)
            with mlp._threads(), mlp._guard(), np.errstate(over="ignore", invalid="ignore"):
                loss, grad = backend.loss_gradient(params, mlp.net_, X, y)
            x_w = np.where(penalised, x, 0.0)
            return loss + 0.5 * decay * float(x_w @ x_w), grad.astype(np.float64) + decay * x_w

        result = scipy.optimize.minimize(
            loss_and_gradient, mlp.params_.astype(np.float64), method="L-BFGS-B", jac=True,
            options={"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol})
        self.n_iter_ = _check_optimize_result("lbfgs", result, self.max_iter)
        self.loss_ = float(result.fun)
        mlp.params_[...] = result.x

    def _validate_train(self, X, y, reset):
        keep_uint8 = self._keeps_uint8(X)
        X, y = validate_data(self, X, y, reset=reset, dtype=None if keep_uint8 else (np.float64, np.float32))
        check_classification_targets(y)
        return self._scaled(X, keep_uint8), y

    def _keeps_uint8(self, X):
        return (self.input_scale is not None and getattr(X, "dtype", None) == np.uint8
                and float(self.input_scale) == FUSED_SCALE)

    def _scaled(self, X, keep_uint8):
        """``X`` times ``input_scale`` (uint8 at 1/255: left to the first layer)."""
        if self.input_scale is None or keep_uint8:
            return X
        if not np.issubdtype(X.dtype, np.floating):
            X = X.astype(np.float64)
        return X * X.dtype.type(self.input_scale)

    def _class_indices(self, y, incremental, first_pass):
        """``y`` as indices into ``classes_`` (0..K-1), which the kernels take."""
        if first_pass and not (incremental and getattr(self, "_classes_from_partial_fit", False)):
            self.classes_, y_idx = np.unique(y, return_inverse=True)
            return y_idx
        self._classes_from_partial_fit = False
        seen = np.unique(y)
        # scikit-learn's rule: with warm_start every fit and partial_fit needs all of classes_
        if self.warm_start and set(seen.tolist()) != set(self.classes_.tolist()):
            raise ValueError("warm_start can only be used where `y` has the same classes as in the previous "
                             f"call to fit. Previously got {self.classes_}, `y` has {seen}")
        missing = np.setdiff1d(seen, self.classes_)
        if len(missing):
            raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has {self.classes_}. "
                             f"'y' has {seen}.")
        return np.searchsorted(self.classes_, y)

    def _initialize(self, X):
        """A new network for ``X``'s features and ``classes_`` (scikit-learn's
        ``_initialize``): one logistic output for two classes, softmax for more."""
        n_classes = len(self.classes_)
        hidden = hidden_sizes(self.hidden_layer_sizes)
        names = [self.activation] * len(hidden) if isinstance(self.activation, str) else list(self.activation)
        if len(names) != len(hidden):
            raise ValueError(f"MLPClassifier parameter 'activation' has {len(names)} entries but "
                             f"hidden_layer_sizes has {len(hidden)} hidden layers")
        binary = n_classes <= 2
        activations = [ACTIVATION_NAMES[a] for a in names] + ["sigmoid" if binary else "softmax"]
        if self.init is None:
            init = "glorot_uniform_logistic" if self.activation == "logistic" else "glorot_uniform"
        else:
            init = self.init
        float_dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
        self._mlp = MLP(sizes=[X.shape[1], *hidden, 1 if binary else n_classes], activation=activations,
                        cost="cross_entropy" if binary else "nll", init=init, backend=self.backend,
                        dtype=str(np.dtype(self.dtype or float_dtype)),
                        seed=int(self._random_state.randint(0, 2**31 - 1)), n_threads=self.n_threads,
                        warm_start=True, dropout=self.dropout)
        self._mlp.initialize()
        self.n_layers_ = len(self._mlp.sizes)
        self.n_outputs_ = self._mlp.sizes[-1]
        self.out_activation_ = "logistic" if binary else "softmax"
        self.n_iter_ = 0
        self.t_ = 0
        self.loss_curve_ = []
        self._no_improvement_count = 0
        self._best_params = self._mlp.params_.copy()
        if self.early_stopping:
            self.validation_scores_ = []
            self.validation_loss_curve_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.best_loss_ = np.inf
            self.validation_scores_ = None
            self.validation_loss_curve_ = None
            self.best_validation_score_ = None

    def _optimizer(self, epoch):
        """The optimiser settings of epoch ``epoch`` of this ``fit``; ``alpha``
        is scaled per mini-batch by ``MLP.train_epoch(l2_per_sample=True)``."""
        lr = self._lr
        if self.learning_rate in ("cosine", "step"):
            lr = schedules.learning_rate_at(self.learning_rate, self.learning_rate_init, epoch, self.max_iter,
                                            self.lr_step_size, self.lr_gamma)
        if self.solver == "adam":
            return Adam(lr, self.beta_1, self.beta_2, self.epsilon, self.alpha, max_norm=self.max_norm)
        return SGD(lr, self.momentum, bool(self.nesterovs_momentum) and self.momentum > 0, self.alpha,
                   self.max_norm)

    def _fit_epochs(self, X, y, incremental):
        """scikit-learn's ``_fit_stochastic``: epochs, the loss curve, stopping
        on tolerance or early stopping, the ConvergenceWarning."""
        mlp = self._mlp
        X, y = mlp._checked(X, y)
        X_val = y_val = None
        if self.early_stopping:
            # stratified for two classes only, on scikit-learn's one-column boolean
            # targets, so the same random_state gives the same split and the same
            # messages (a class of one member is named 'True' or 'False', as there)
            X, X_val, y, y_val = train_test_split(X, y, random_state=self._random_state,
                                                  test_size=self.validation_fraction,
                                                  stratify=(y == 1)[:, None] if self.n_outputs_ == 1 else None)
            if X_val.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase 'validation_fraction' "
                                 "or the size of your dataset.")
        n = X.shape[0]
        batch_size = min(200, n) if self.batch_size == "auto" else int(np.clip(self.batch_size, 1, n))
        if self.batch_size != "auto" and self.batch_size > n:
            warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped")
        mlp._check_shift(self.shift)
        mlp.begin_training(X, y, batch_size, self._optimizer(0))
        self.n_iter_ = 0
        try:
            for epoch in range(self.max_iter):
                record = mlp.train_epoch(X, y, batch_size, self._optimizer(epoch), shuffle=self.shuffle,
                                         l2_per_sample=True, shift=self.shift)
                self.n_iter_ += 1
                self.loss_ = record["loss"] + self._penalty(n, batch_size)
                self.t_ += n
                self.loss_curve_.append(self.loss_)
                if self.verbose:
                    print(f"Iteration {self.n_iter_}, loss = {self.loss_:.8f}")
                self._update_no_improvement_count(X_val, y_val)
                if self.solver == "sgd" and self.learning_rate == "invscaling":
                    self._lr = schedules.invscaling_rate(self.learning_rate_init, self.t_, self.power_t)
                if self._no_improvement_count > self.n_iter_no_change:
                    what = "Validation score" if self.early_stopping else "Training loss"
                    msg = (f"{what} did not improve more than tol={self.tol:f} for "
                           f"{self.n_iter_no_change} consecutive epochs.")
                    if self._stop(msg):
                        break
                    self._no_improvement_count = 0
                if incremental:
                    break
                if self.n_iter_ == self.max_iter:
                    warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and "
                                  "the optimization hasn't converged yet.", ConvergenceWarning)
        except KeyboardInterrupt:  # the weights of the last finished epoch are kept (MLP.train_epoch)
            warnings.warn("Training interrupted by user.")
        if self.early_stopping:
            mlp.params_[...] = self._best_params

    def _penalty(self, n, batch_size):
        """scikit-learn's loss adds ``alpha / 2 ||W||^2 / m`` per mini-batch of m,
        weighted by m over the epoch: ``n_batches alpha / 2 ||W||^2 / n``, here
        with the weights at the end of the epoch."""
        if not self.alpha:
            return 0.0
        squares = sum(float(np.dot(W.ravel(), W.ravel())) for W in self._mlp.weights_)
        return -(-n // batch_size) * 0.5 * self.alpha * squares / n

    def _stop(self, msg):
        """scikit-learn's ``trigger_stopping``: 'adaptive' SGD divides the rate
        by 5 and goes on until it falls below 1e-6; everything else stops."""
        if self.solver == "sgd" and self.learning_rate == "adaptive":
            if self._lr > schedules.ADAPTIVE_MIN_RATE:
                self._lr /= schedules.ADAPTIVE_DIVISOR
                if self.verbose:
                    print(msg + f" Setting learning rate to {self._lr:f}")
                return False
            if self.verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        if self.verbose:
            print(msg + " Stopping.")
        return True

    def _update_no_improvement_count(self, X_val, y_val):
        if self.early_stopping:
            P = self._mlp._predict_proba(self._mlp.params_, X_val)  # one pass for the score and the loss
            score = float(np.mean(predicted_classes(P, self.n_outputs_ == 1) == y_val))
            self.validation_scores_.append(score)
            self.validation_loss_curve_.append(_log_loss(P, y_val))
            if self.verbose:
                print(f"Validation score: {score:f}")
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best_params = self._mlp.params_.copy()
        else:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]

    # --- inference -------------------------------------------------------------------

    def _outputs(self, X):
        check_is_fitted(self)
        keep_uint8 = self._keeps_uint8(X)
        X = validate_data(self, X, reset=False, dtype=None if keep_uint8 else (np.float64, np.float32))
        return self._mlp.predict_proba(self._scaled(X, keep_uint8))

    def predict_proba(self, X):
        """Class probabilities ``(n_samples, n_classes)`` in the order of ``classes_``
        (two columns ``[1 - p, p]`` for a logistic output, as scikit-learn)."""
        A = self._outputs(X)
        if self.n_outputs_ == 1:
            return np.hstack([1 - A, A])
        return A

    def predict_log_proba(self, X):
        """``log(predict_proba(X))``."""
        P = self.predict_proba(X)
        return np.log(P, out=P)

    def predict(self, X):
        """The most probable class of each row of ``X``, as a label of ``classes_``."""
        A = self._outputs(X)
        if self.n_outputs_ == 1:
            if len(self.classes_) == 1:
                return np.repeat(self.classes_[0], len(A))
            return self.classes_[(A[:, 0] > 0.5).astype(np.intp)]
        return self.classes_[A.argmax(axis=1)]

    # --- scikit-learn's fitted attributes that are views of the network ---------------

    @property
    def coefs_(self):
        """Weight matrices ``(n_in, n_out)`` per layer, as scikit-learn's: views
        of the network's weights, so in-place edits change the network.
        Assigning a list (or an item) copies into the weights; the shapes are
        the network's."""
        return self._layers("coefs_")

    @coefs_.setter
    def coefs_(self, arrays):
        self._set_layers("coefs_", arrays)

    @property
    def intercepts_(self):
        """Bias vectors ``(n_out,)`` per layer: views, assignable as ``coefs_``."""
        return self._layers("intercepts_")

    @intercepts_.setter
    def intercepts_(self, arrays):
        self._set_layers("intercepts_", arrays)

    def _layers(self, name):
        if not hasattr(self, "_mlp"):  # NotFittedError is an AttributeError: hasattr(clf, "coefs_") is False
            raise NotFittedError(f"{name}: this MLPClassifier is not fitted yet (fit or partial_fit it first)")
        return _Layers(name, [W.T for W in self._mlp.weights_] if name == "coefs_" else self._mlp.biases_)

    def _set_layers(self, name, arrays):
        layers, arrays = self._layers(name), list(arrays)
        if len(arrays) != len(layers):
            raise ValueError(f"{name} must be a list of {len(layers)} arrays (one per layer), got {len(arrays)}")
        for view, array in [layers.checked(i, array) for i, array in enumerate(arrays)]:  # all shapes first
            view[...] = array

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        return tags



assert {name: p.default for name, p in inspect.signature(MLPClassifier).parameters.items()} == DEFAULTS
