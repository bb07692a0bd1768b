"""What ``MLPClassifier`` and ``MLPRegressor`` share: scikit-learn's
``BaseMultilayerPerceptron`` on a ``fastmlp.MLP``.

The parameters and their checks, input validation and scaling, the network's
initialisation, the three solvers (``sgd`` and ``adam`` epoch by epoch through
``MLP.train_epoch``, ``lbfgs`` through SciPy on the backend's full-batch
``loss_gradient``), the stopping rules, the reported loss and the
``coefs_``/``intercepts_`` views.  A subclass says what its targets are
(``_validate_train``, ``_targets``), which output layer and cost fit them
(``_output_layer``), how scikit-learn reports its loss (``_data_loss``) and
how it scores a validation set (``_validation``).
"""

import numbers
import warnings

import numpy as np
import scipy.optimize
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.optimize import _check_optimize_result
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data
from threadpoolctl import threadpool_limits

from fastmlp import schedules
from fastmlp.backends import get_backend
from fastmlp.estimators.params import ACTIVATION_NAMES, check_params, hidden_sizes
from fastmlp.model import MLP
from fastmlp.network import SGD, Adam, weight_offsets

#: uint8 input with this ``input_scale`` stays uint8: the backends scale pixels
#: by 1/255 inside the first layer (eq. X of docs/math.md).
FUSED_SCALE = 1.0 / 255.0
STOCHASTIC_SOLVERS = ("sgd", "adam")


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


class BaseMLP(BaseEstimator):
    """The shared parameters (``fastmlp.estimators.params.DEFAULTS``) and
    fitting of fastmlp's scikit-learn estimators; not used on its own."""

    def __init__(self, **params):
        """Store the parameters as given (scikit-learn's rule: checks run at
        ``fit``).  Each estimator's own ``__init__`` lists them, in its order
        (scikit-learn reads the names from that signature)."""
        for name, value in params.items():
            setattr(self, name, value)

    # --- what a subclass defines -------------------------------------------------------

    def _validate_train(self, X, y, reset):
        """``X`` (validated and scaled) and ``y`` as scikit-learn checks them."""
        raise NotImplementedError

    def _targets(self, y, incremental, first_pass):
        """``y`` as the backends take it: class indices or a target matrix."""
        raise NotImplementedError

    def _output_layer(self, targets):
        """``(n_outputs, out_activation_, fastmlp's output activation, cost)``."""
        raise NotImplementedError

    def _sample_weight(self, targets, sample_weight):
        """The weight of each training sample: ``sample_weight`` (checked
        float64, or None); the classifier multiplies in ``class_weight``."""
        return sample_weight

    def _data_loss(self, cost):
        """scikit-learn's loss (without the penalty) from the backend's mean cost."""
        return cost

    def _stratify(self, y):
        """What the early-stopping split is stratified on (None: not stratified)."""
        return None

    def _validation(self, outputs, y_val, sample_weight):
        """``(score, loss)`` of the network's ``outputs`` on the validation
        set, both weighted by ``sample_weight`` (or None) as scikit-learn's."""
        raise NotImplementedError

    # --- fitting -------------------------------------------------------------------

    def _check_solver(self):
        """scikit-learn's rule: ``partial_fit`` exists for sgd and adam only."""
        if self.solver not in STOCHASTIC_SOLVERS:
            raise AttributeError(f"partial_fit is only available for stochastic optimizers. {self.solver} is not "
                                 "stochastic.")
        return True

    def _fit(self, X, y, incremental, sample_weight=None):
        check_params(self.get_params(), type(self).__name__)
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        first_pass = not hasattr(self, "_mlp") or (not self.warm_start and not incremental)
        X, y = self._validate_train(X, y, reset=first_pass)
        if sample_weight is not None:  # scikit-learn's checks and messages; weights must be >= 0 (eq. W1)
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        targets = self._targets(y, incremental, first_pass)
        sample_weight = self._sample_weight(targets, sample_weight)
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(X, targets)
        if self.solver == "lbfgs":
            self._fit_lbfgs(X, targets, sample_weight)
            return self
        if not incremental or not hasattr(self, "_lr"):  # scikit-learn's new optimiser per fit
            self._lr = float(self.learning_rate_init)
            self._mlp.velocity_[...] = 0
            self._mlp.adam_steps_ = 0
        self._fit_epochs(X, targets, incremental, sample_weight)
        return self

    def _keeps_uint8(self, X):
        return (self.input_scale is not None and getattr(X, "dtype", None) == np.uint8
                and float(self.input_scale) == FUSED_SCALE)

    def _validated_X(self, X, y="no_validation", reset=False, **checks):
        """``validate_data`` (float64 or float32, or uint8 left to the first
        layer's scaling; sparse ``X`` as CSR, never made dense) and
        ``input_scale``; given ``y`` (even None, which gets scikit-learn's
        "requires y" error), ``(X, y)``."""
        keep_uint8 = self._keeps_uint8(X)
        dtype = None if keep_uint8 else (np.float64, np.float32)
        if isinstance(y, str) and y == "no_validation":
            return self._scaled(validate_data(self, X, reset=reset, dtype=dtype, accept_sparse="csr"), keep_uint8)
        X, y = validate_data(self, X, y, reset=reset, dtype=dtype, accept_sparse="csr", **checks)
        return self._scaled(X, keep_uint8), y

    def _scaled(self, X, keep_uint8):
        """``X`` times ``input_scale`` (uint8 at 1/255: left to the first layer)."""
        if self.input_scale is None or keep_uint8:
            return X
        if not np.issubdtype(X.dtype, np.floating):
            X = X.astype(np.float64)
        return X * X.dtype.type(self.input_scale)

    def _initialize(self, X, targets):
        """A new network for ``X``'s features and the output layer of
        ``_output_layer`` (scikit-learn's ``_initialize``)."""
        n_outputs, out_activation, output, cost = self._output_layer(targets)
        hidden = hidden_sizes(self.hidden_layer_sizes)
        names = [self.activation] * len(hidden) if isinstance(self.activation, str) else list(self.activation)
        if len(names) != len(hidden):
            raise ValueError(f"{type(self).__name__} parameter 'activation' has {len(names)} entries but "
                             f"hidden_layer_sizes has {len(hidden)} hidden layers")
        if self.init is None:
            init = "glorot_uniform_logistic" if self.activation == "logistic" else "glorot_uniform"
        else:
            init = self.init
        float_dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
        self._mlp = MLP(sizes=[X.shape[1], *hidden, n_outputs],
                        activation=[ACTIVATION_NAMES[a] for a in names] + [output], cost=cost, init=init,
                        backend=self.backend, dtype=str(np.dtype(self.dtype or float_dtype)),
                        seed=int(self._random_state.randint(0, 2**31 - 1)), n_threads=self.n_threads,
                        warm_start=True, dropout=self.dropout)
        self._mlp.initialize()
        self.n_layers_ = len(self._mlp.sizes)
        self.n_outputs_ = n_outputs
        self.out_activation_ = out_activation
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

    def _penalised(self):
        """True for the entries of the flat parameters that are weights (the
        biases carry no L2 penalty)."""
        mlp = self._mlp
        penalised = np.zeros(len(mlp.params_), dtype=bool)
        for start, n_in, n_out in zip(weight_offsets(mlp.sizes), mlp.sizes[:-1], mlp.sizes[1:]):
            penalised[start:start + n_in * n_out] = True
        return penalised

    def _fit_lbfgs(self, X, y, sample_weight):
        """scikit-learn's ``_fit_lbfgs``: L-BFGS-B over the flat parameters on
        the whole training set, minimising the mean cost (weighted, W1) plus
        ``alpha / (2 n) ||W||^2`` (biases not penalised; n is the sum of the
        weights when there are weights) with its gradient (eq. G_full of
        docs/math.md); ``gtol`` is ``tol``.  ``loss_`` is scikit-learn's loss
        at the solution (``_data_loss`` of the cost)."""
        mlp = self._mlp
        X, y = mlp._checked(X, y)
        backend = get_backend(mlp.backend)
        penalised = self._penalised()
        decay = float(self.alpha) / (X.shape[0] if sample_weight is None else float(np.sum(sample_weight)))

        def cost_and_gradient(x):
            params = x.astype(mlp.dtype_)
            with mlp._threads(), mlp._guard(), np.errstate(over="ignore", invalid="ignore"):
                return backend.loss_gradient(params, mlp.net_, X, y, sample_weight=sample_weight)

        def loss_and_gradient(x):
            cost, grad = cost_and_gradient(x)
            x_w = np.where(penalised, x, 0.0)
            return cost + 0.5 * decay * float(np.einsum("i,i->", x_w, x_w)), grad.astype(np.float64) + decay * x_w

        backend.before_run()
        # L-BFGS-B's own BLAS calls would wake BLAS's threads between the
        # gradients, and on a 2-core machine they and Numba's threads then wait
        # on each other: a diabetes fit, (16,), takes 2.0 s with them and 0.17 s
        # with BLAS on one thread (Intel Xeon, 2 cores, 2026-12-08).  Its
        # vectors are the parameters: one thread is plenty.
        with threadpool_limits(1, user_api="blas"):
            result = scipy.optimize.minimize(
                loss_and_gradient, mlp.params_.astype(np.float64), method="L-BFGS-B", jac=True,
                options={"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol})
        self.n_iter_ = _check_optimize_result("lbfgs", result, self.max_iter)
        x_w = np.where(penalised, result.x, 0.0)
        penalty = 0.5 * decay * float(np.einsum("i,i->", x_w, x_w))
        self.loss_ = self._data_loss(float(result.fun) - penalty) + penalty
        mlp.params_[...] = result.x

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

    def _fit_epochs(self, X, y, incremental, sample_weight):
        """scikit-learn's ``_fit_stochastic``: epochs, the loss curve, stopping
        on tolerance or early stopping, the ConvergenceWarning."""
        mlp = self._mlp
        X, y = mlp._checked(X, y)
        X_val = y_val = w_val = None
        if self.early_stopping:
            split = [X, y] if sample_weight is None else [X, y, sample_weight]
            parts = train_test_split(*split, random_state=self._random_state,
                                     test_size=self.validation_fraction, stratify=self._stratify(y))
            X, X_val, y, y_val = parts[:4]
            if sample_weight is not None:
                sample_weight, w_val = parts[4:]
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
                                         l2_per_sample=True, shift=self.shift, sample_weight=sample_weight)
                self.n_iter_ += 1
                self.loss_ = self._data_loss(record["loss"]) + self._penalty(n, batch_size, sample_weight,
                                                                             record["epoch"])
                self.t_ += n
                self.loss_curve_.append(self.loss_)
                if self.verbose:
                    print(f"Iteration {self.n_iter_}, loss = {self.loss_:.8f}")
                self._update_no_improvement_count(X_val, y_val, w_val)
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

    def _penalty(self, n, batch_size, sample_weight, epoch):
        """scikit-learn's loss adds ``alpha / 2 ||W||^2 / S`` per mini-batch of
        m samples whose weights sum to S (S = m without weights), weighted by
        m over the epoch: ``sum(m / S) alpha / 2 ||W||^2 / n``, here with the
        weights at the end of the epoch (``epoch``'s batches: W1)."""
        if not self.alpha:
            return 0.0
        if sample_weight is None:
            factor = -(-n // batch_size)
        else:
            starts = np.arange(0, n, batch_size)
            sums = np.add.reduceat(sample_weight[self._mlp.epoch_order(epoch, n, self.shuffle)], starts)
            sizes = np.diff(np.append(starts, n)).astype(np.float64)
            factor = float(np.sum(np.divide(sizes, sums, out=np.zeros_like(sizes), where=sums > 0)))
        # einsum, not np.dot: BLAS's dot wakes its threads for long vectors, and they
        # would spin into the next epoch (fastmlp/backends/numba/neighbours.py)
        squares = sum(float(np.einsum("ij,ij->", W, W)) for W in self._mlp.weights_)
        return factor * 0.5 * self.alpha * squares / n

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

    def _update_no_improvement_count(self, X_val, y_val, w_val):
        if self.early_stopping:
            outputs = self._mlp._predict_proba(self._mlp.params_, X_val)  # one pass for the score and the loss
            score, loss = self._validation(outputs, y_val, w_val)
            self.validation_scores_.append(score)
            self.validation_loss_curve_.append(loss)
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
        """The network's output activations for ``X``, ``(n_samples, n_outputs_)``."""
        check_is_fitted(self)
        return self._mlp.predict_proba(self._validated_X(X))

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
        if not hasattr(self, "_mlp"):  # NotFittedError is an AttributeError: hasattr(est, "coefs_") is False
            raise NotFittedError(f"{name}: this {type(self).__name__} is not fitted yet (fit or partial_fit it "
                                 "first)")
        return _Layers(name, [W.T for W in self._mlp.weights_] if name == "coefs_" else self._mlp.biases_)

    def _set_layers(self, name, arrays):
        layers, arrays = self._layers(name), list(arrays)
        if len(arrays) != len(layers):
            raise ValueError(f"{name} must be a list of {len(layers)} arrays (one per layer), got {len(arrays)}")
        for view, array in [layers.checked(i, array) for i, array in enumerate(arrays)]:  # all shapes first
            view[...] = array

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags
