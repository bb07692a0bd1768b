"""``MLP``: the estimator users train, in the style of scikit-learn, and
``load``, which reads one back from a model file.

The model owns the parameters (one flat buffer, see ``fastmlp.network``), the
random generator and the training history; the arithmetic, and whatever a
backend needs around it (threads, compiling), is delegated to a backend module
(``"numpy"``: the reference, ``"numba"``: the compiled kernels) through the
same functions (``fastmlp.backends``), so the backend is a setting, not a code path.
"""

import math
import os
import time
from pathlib import Path
import warnings

import numpy as np

from fastmlp import noise
from fastmlp import modelfile, validation
from fastmlp.backends import BACKENDS, DEFAULT_BACKEND, get_backend
from fastmlp.errors import DivergenceError, OutOfMemoryError
from fastmlp.functions import (ACTIVATIONS, COST_OUTPUTS, COSTS, DERIVATIVES, INITS,
                               default_init, predicted_classes)
from fastmlp.network import SGD, Adam, Net, init_params, n_params, optimizer_state_size, single_logistic, unpack
from fastmlp.schedules import SCHEDULES, learning_rate_at


def memory_limit():
    """Physical memory of this machine in bytes (the bound for up-front size checks)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not POSIX: assume 16 GiB
        return 16 * 2**30


def training_bytes(sizes, itemsize, batch_size=None, optimizer=None, predict_chunk=4096):
    """An upper bound of the memory a ``fit`` of a network with layer widths
    ``sizes`` allocates, in bytes, besides the data: the parameters; the
    optimiser state ``s`` (1 buffer of their size for SGD, 2 for Adam); one
    gradient buffer; the copies an epoch keeps to undo itself (parameters
    and state) and the best epoch's for early stopping (the same again); the
    activations, pre-activations and deltas of one mini-batch of
    ``batch_size`` in every layer plus three gathered input batches (the
    largest per-batch working set of either backend); and the activations of
    one prediction chunk.  Without ``batch_size`` only what the weights
    alone need (the check ``build`` can make)."""
    state = 2 if isinstance(optimizer, Adam) else 1
    n = n_params(sizes)
    need = (1 + state) * n
    if batch_size is not None:
        need += n + 2 * (1 + state) * n
        need += batch_size * (3 * sum(sizes) + 3 * sizes[0])
        need += 2 * predict_chunk * sum(sizes)
    return need * itemsize


def _check_memory(sizes, itemsize, batch_size=None, optimizer=None, predict_chunk=4096):
    need = training_bytes(sizes, itemsize, batch_size, optimizer, predict_chunk)
    if need > memory_limit():
        at = f" at batch size {batch_size}" if batch_size is not None else ""
        raise ValueError(f"layer sizes {list(sizes)} would need {need / 2**30:.1f} GiB for weights, "
                         f"optimiser state and activations{at}; this machine has "
                         f"{memory_limit() / 2**30:.1f} GiB")


class MLP:
    """A multi-layer perceptron trained by mini-batch stochastic gradient descent
    (plain, momentum, Nesterov) or Adam.

    A network with a single sigmoid output unit trained on class labels is a
    two-class network: its labels are 0 and 1 and it predicts 1 where the
    output exceeds 0.5.  Trained on a target matrix (eq. Y''), one output unit
    may have any output activation its cost allows (regression).

    Parameters
    ----------
    sizes : sequence of int
        Layer widths from input to output, e.g. ``[784, 30, 10]``.
    activation : str or sequence of str
        One name for every layer (the original: ``"sigmoid"``), or one per
        non-input layer.  Names: sigmoid, tanh, relu, leaky_relu, softmax
        (output layer only).
    output_activation : str, optional
        Overrides the activation of the output layer.  Defaults to ``softmax``
        for ``cost="nll"`` and to ``activation`` otherwise.
    cost : {"quadratic", "cross_entropy", "nll"}
        quadratic (the original), cross-entropy for sigmoid outputs, negative
        log-likelihood for softmax outputs.
    init : str or sequence of str, optional
        normal (the original's N(0, 1)), xavier or he; by default chosen per layer
        from its activation (``functions.default_init``).
    backend : {"numba", "numpy"}
        ``"numpy"`` is the reference, ``"numba"`` the compiled kernels.
    dtype : {"float64", "float32"}
    seed : int, optional
        Fixes the initial weights and every epoch's shuffle, dropout masks
        and input shifts.  Drawn at random (and kept in ``seed_``) when not
        given.
    n_threads : int, optional
        Threads for the Numba backend (default: Numba's, i.e. ``NUMBA_NUM_THREADS``).
        Numba cannot use more threads than ``NUMBA_NUM_THREADS`` (fixed when Numba
        starts; default: the number of CPUs): a larger value is clipped to it with
        a ``UserWarning``, once per model, rather than refused, so a model saved
        on a bigger machine still runs here.  Results do not depend on it.
    warm_start : bool
        When true, ``fit`` continues from the current weights instead of
        drawing new ones (scikit-learn's meaning).  A run setting: model
        files do not keep it.
    dropout : float or sequence of float, optional
        Dropout rates during training (inverted dropout: kept units are scaled
        by ``1 / (1 - p)``, so prediction uses every unit unscaled): one per
        layer input (the network's inputs, then each hidden layer), or two
        (inputs, every hidden layer), or one number for every hidden layer.
        The masks come from a counter-based hash of (seed, epoch, sample,
        layer, unit) (eq. R1-R5 of docs/math.md), so they are the same for
        any thread count, batch split and backend.

    The constructor only stores its arguments (scikit-learn's rule); they are
    checked and resolved by ``build``, which ``fit``, ``initialize`` and
    ``load`` call first.

    Attributes
    ----------
    params_ : ndarray
        All weights and biases, flat (``weights_``/``biases_`` are views into it).
    velocity_ : ndarray
        The optimiser state: momentum velocities for SGD (one per parameter),
        first then second moments for Adam (two per parameter).
    adam_steps_ : int
        Adam steps taken so far (they set Adam's bias correction).
    history_ : list of dict
        One record per epoch: epoch, loss, train_accuracy, val_accuracy,
        test_accuracy, learning_rate, seconds.
    best_epoch_ : int
        After a ``fit`` with ``patience``: the epoch whose state was kept.
    discarded_history_ : list of dict
        After a ``fit`` with ``patience``: the records of the epochs run after
        the best one and undone (empty when the best was the last).
    """

    params_ = None
    history_ = ()

    def __init__(self, sizes=(784, 30, 10), activation="sigmoid", output_activation=None,
                 cost="quadratic", init=None, backend=DEFAULT_BACKEND, dtype="float64",
                 seed=None, n_threads=None, warm_start=False, dropout=None):
        self.sizes = sizes
        self.activation = activation
        self.output_activation = output_activation
        self.cost = cost
        self.init = init
        self.backend = backend
        self.dtype = dtype
        self.seed = seed
        self.n_threads = n_threads
        self.warm_start = warm_start
        self.dropout = dropout

    # --- configuration ---------------------------------------------------------

    def build(self):
        """Check the constructor's arguments together and resolve them: the
        per-layer ``activations_`` and ``inits_``, ``dtype_``, ``seed_``
        (drawn once when ``seed`` is None) and the network description
        ``net_``; no weights are drawn.  Raises ``ValueError``/``TypeError``
        naming the argument.  Returns ``self``."""
        sizes = self.sizes
        if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__"):
            raise TypeError(f"sizes must be a list of layer widths such as [784, 30, 10], got {sizes!r}")
        if len(sizes) < 2:
            raise ValueError(f"sizes needs at least an input and an output layer, got {list(sizes)}")
        for n in sizes:
            validation.check_positive_int(n, "every layer size")
        sizes = tuple(int(n) for n in sizes)
        n_layers = len(sizes) - 1

        if self.cost not in COSTS:
            raise ValueError(f"cost must be one of {', '.join(COSTS)}, got {self.cost!r}")
        self.activations_ = self._per_layer(self.activation, "activation", n_layers)
        output = self.output_activation or ("softmax" if self.cost == "nll" and isinstance(self.activation, str) else None)
        if output is not None:
            self.activations_[-1] = output
        for i, name in enumerate(self.activations_):
            allowed = ACTIVATIONS if i == n_layers - 1 else DERIVATIVES  # hidden: a diagonal f' (A1'-A6')
            if name not in allowed:
                where = "the output layer" if i == n_layers - 1 else f"hidden layer {i + 1} (softmax is for the output layer only)"
                raise ValueError(f"activation of {where} must be one of {', '.join(allowed)}, got {name!r}")
        if sizes[-1] == 1 and self.activations_[-1] == "softmax":
            raise ValueError("a softmax over a single output unit is always 1: use a sigmoid output "
                             "(two classes, eq. Y') or an identity output (regression)")
        if self.activations_[-1] not in COST_OUTPUTS[self.cost]:
            raise ValueError(f"cost {self.cost!r} needs an output activation among "
                             f"{', '.join(COST_OUTPUTS[self.cost])}, got {self.activations_[-1]!r}")

        inits = self.init if self.init is not None else [default_init(a) for a in self.activations_]
        self.inits_ = self._per_layer(inits, "init", n_layers)
        for name in self.inits_:
            if name not in INITS:
                raise ValueError(f"init must be one of {', '.join(INITS)}, got {name!r}")

        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if str(self.dtype) not in ("float64", "float32"):
            raise ValueError(f"dtype must be float64 or float32, got {self.dtype!r}")
        self.dtype_ = np.dtype(str(self.dtype))
        if self.seed is not None:
            validation.check_positive_int(self.seed, "seed", minimum=0)
            self.seed_ = int(self.seed)
        elif getattr(self, "seed_", None) is None:
            self.seed_ = int(np.random.SeedSequence().entropy % 2**63)
        if self.n_threads is not None:
            validation.check_positive_int(self.n_threads, "n_threads")
        self.dropout_ = (noise.check_rates(self.dropout, n_layers) if self.dropout is not None
                         else (0.0,) * n_layers)

        # Refuse up front what the weights alone would not fit in; fit checks
        # again with the batch size (training_bytes).
        _check_memory(sizes, self.dtype_.itemsize)
        get_backend(self.backend).check_network(sizes)
        self.net_ = Net(sizes, tuple(self.activations_), self.cost)
        return self

    @staticmethod
    def _per_layer(value, name, n_layers):
        if isinstance(value, str):
            return [value] * n_layers
        value = list(value)
        if len(value) != n_layers:
            raise ValueError(f"{name} needs one entry per non-input layer ({n_layers}), got {len(value)}")
        return value

    def get_params(self):
        """The constructor's arguments (scikit-learn convention)."""
        keys = ("sizes", "activation", "output_activation", "cost", "init", "backend", "dtype",
                "seed", "n_threads", "warm_start", "dropout")
        return {k: getattr(self, k) for k in keys}

    # --- parameters --------------------------------------------------------------

    def initialize(self):
        """Draw new weights and biases from ``seed_`` (eq. I1-I4) and forget the
        history and the optimiser state (``build`` first)."""
        self.build()
        rng = np.random.default_rng(self.seed_)
        self.params_ = init_params(self.net_.sizes, self.inits_, rng, self.dtype_)
        self.velocity_ = np.zeros_like(self.params_)
        self.adam_steps_ = 0
        self.history_ = []
        self.best_epoch_ = None
        self.discarded_history_ = []
        return self

    @property
    def n_classes_(self):
        """Classes the network tells apart: its output units, or 2 for a single one."""
        return 2 if self.sizes[-1] == 1 else self.sizes[-1]

    def _optimizer_state(self, optimizer):
        """Size the optimiser state for ``optimizer`` (momentum velocities for SGD,
        both moments for Adam); a change of optimiser starts from zero state."""
        size = optimizer_state_size(optimizer, len(self.params_))
        if self.velocity_.shape != (size,):
            self.velocity_ = np.zeros(size, dtype=self.dtype_)
            self.adam_steps_ = 0

    @property
    def weights_(self):
        """Per-layer weight matrices ``(n_out, n_in)``, views into ``params_``."""
        return unpack(self._fitted_params(), self.net_.sizes)[0]

    @property
    def biases_(self):
        """Per-layer bias vectors ``(n_out,)``, views into ``params_``."""
        return unpack(self._fitted_params(), self.net_.sizes)[1]

    @property
    def epochs_trained_(self):
        return len(self.history_)

    def _fitted_params(self):
        if self.params_ is None:
            raise RuntimeError("this MLP has no weights yet: call fit() (or initialize()) first")
        return self.params_

    def _threads(self):
        """The backend's thread count for the duration of a call (see ``n_threads``)."""
        return get_backend(self.backend).threads(self.n_threads, owner=self)

    def _guard(self):
        """Around every call into the backend (the Numba backend serialises calls
        on a threading layer that is not thread-safe)."""
        return get_backend(self.backend).call_guard()

    # --- training ----------------------------------------------------------------

    def fit(self, X, y, *, epochs=10, batch_size=10, learning_rate=10.0, momentum=0.0,
            nesterov=False, l2=0.0, schedule="constant", step_size=None, gamma=0.1,
            schedule_start=0, schedule_length=None,
            val_split=0, validation_data=None, patience=None, test_data=None,
            progress=False, callback=None, solver="sgd", beta_1=0.9, beta_2=0.999, epsilon=1e-8,
            max_norm=0.0, shift=0, sample_weight=None):
        """Train for ``epochs`` epochs of mini-batch SGD (``solver="sgd"``, with
        ``momentum``/``nesterov``) or Adam (``solver="adam"``, with ``beta_1``,
        ``beta_2``, ``epsilon``; eq. U6) and return ``self``.

        ``X`` is ``(n, n_in)``: uint8 pixels (scaled by 1/255 on the fly) or
        floats, dense or a SciPy sparse matrix (never made dense as a whole:
        eq. X); ``y`` holds integer labels.  ``val_split`` keeps the last rows of
        ``X`` out of training for validation (an int count or a fraction);
        ``validation_data``/``test_data`` are ``(X, y)`` pairs evaluated after
        every epoch.  ``callback(record)`` is called after every epoch with its
        history record.  ``max_norm`` > 0 holds the incoming weights of every
        hidden unit to at most that Euclidean norm after each update (eq. U8).
        ``shift`` > 0 (augmentation) moves every training image, as its batch
        is read, by up to that many pixels along each axis, a new draw per
        epoch from the counter-based generator of the dropout masks (eq. R6);
        the inputs must be square images (784 = 28 x 28).
        ``sample_weight``: a weight >= 0 per row of ``X`` (eq. W1): each
        mini-batch's cost is the weighted mean of its samples' costs, and its
        L2 decay is scaled by the batch size over the batch's sum of weights
        (so whole-number weights act as repeated samples).

        The schedule runs over ``schedule_length`` epochs (default: ``epochs``)
        and this fit's first epoch is its epoch ``schedule_start`` (default 0),
        so a run split over several fits (a resumed one) gets the rates of one
        uninterrupted run.

        Early stopping: ``patience`` stops when validation accuracy has not
        improved for that many epochs, and the model goes back to the state
        after its best epoch as a whole: weights, optimiser state (velocities
        or Adam's moments and step count), ``history_`` and so the epoch
        count; ``best_epoch_`` names it and ``discarded_history_`` holds the
        records of the epochs undone.  A warm start's starting state competes
        too: when no epoch of this fit beats it, it is kept.  Continuing such a
        model (``warm_start``) recomputes exactly the epochs undone, since each
        epoch's shuffle depends on the seed and the epoch number only.

        Ctrl-C (KeyboardInterrupt) during an epoch restores the state of the
        last completed epoch before it propagates, so nothing is left half-way.
        A loss or weight that turns non-finite raises ``DivergenceError`` after
        restoring the last finite state; running out of memory in an epoch
        raises ``OutOfMemoryError`` the same way.
        """
        epochs = validation.check_positive_int(epochs, "epochs")
        batch_size = validation.check_positive_int(batch_size, "batch_size")
        learning_rate = validation.check_number(learning_rate, "learning_rate", 0.0, inclusive=False)
        momentum = validation.check_number(momentum, "momentum", 0.0, maximum=1.0)
        l2 = validation.check_number(l2, "l2")
        max_norm = validation.check_number(max_norm, "max_norm")
        shift = validation.check_positive_int(shift, "shift", minimum=0)
        if nesterov and momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0")
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
        schedule_start = validation.check_positive_int(schedule_start, "schedule_start", minimum=0)
        schedule_length = (schedule_start + epochs if schedule_length is None
                           else validation.check_positive_int(schedule_length, "schedule_length"))
        if schedule_start + epochs > schedule_length:
            raise ValueError(f"schedule_start {schedule_start} + epochs {epochs} runs past the "
                             f"schedule_length {schedule_length}")
        if solver not in ("sgd", "adam"):
            raise ValueError(f"solver must be 'sgd' or 'adam', got {solver!r}")
        if solver == "adam":
            if momentum or nesterov:
                raise ValueError("momentum and nesterov are SGD settings; Adam has beta_1 and beta_2")
            beta_1 = validation.check_number(beta_1, "beta_1", 0.0, maximum=1.0)
            beta_2 = validation.check_number(beta_2, "beta_2", 0.0, maximum=1.0)
            epsilon = validation.check_number(epsilon, "epsilon", 0.0, inclusive=False)
        self.build()
        self._check_shift(shift)
        X = validation.check_features(X, self.sizes[0], self.dtype_)
        y = validation.check_labels(y, X.shape[0], self.n_classes_)
        sample_weight = validation.check_sample_weight(sample_weight, X.shape[0])
        X, y, validation_data = self._split_validation(X, y, val_split, validation_data)
        if sample_weight is not None:
            sample_weight = sample_weight[:X.shape[0]]  # the validation rows are the last ones
        validation_data = self._check_eval_set(validation_data, "validation_data")
        test_data = self._check_eval_set(test_data, "test_data")
        if patience is not None:
            patience = validation.check_positive_int(patience, "patience")
            if validation_data is None:
                raise ValueError("patience (early stopping) needs validation data: give val_split or validation_data")
        if batch_size > X.shape[0]:
            warnings.warn(f"batch_size {batch_size} is larger than the {X.shape[0]} training samples; "
                          f"using {X.shape[0]}",
                          stacklevel=2)
            batch_size = X.shape[0]

        def optimizer(lr):
            if solver == "adam":
                return Adam(lr, beta_1, beta_2, epsilon, l2, max_norm=max_norm)
            return SGD(lr, momentum, bool(nesterov), l2, max_norm)

        _check_memory(self.net_.sizes, self.dtype_.itemsize, batch_size, optimizer(learning_rate),
                      get_backend(self.backend).PREDICT_CHUNK)
        if progress is True:  # the API's simple switch: a bar of our own
            from tqdm import tqdm

            progress = tqdm(total=X.shape[0], unit="img", unit_scale=True, leave=False)
        if self.params_ is None or not self.warm_start:
            self.initialize()
        self.discarded_history_ = []

        best = None  # (val_accuracy, the state after that epoch) for early stopping
        with self._threads():
            self.begin_training(X, y, batch_size, optimizer(learning_rate))
            if patience is not None and self.history_:  # a warm start's state competes
                best = (self._accuracy(*validation_data), self._state())
            for i in range(epochs):
                rate = learning_rate_at(schedule, learning_rate, schedule_start + i, schedule_length,
                                        step_size, gamma)
                record = self.train_epoch(X, y, batch_size, optimizer(rate), progress=progress, shift=shift,
                                          sample_weight=sample_weight)
                if validation_data is not None:  # already checked: no second conversion
                    record["val_accuracy"] = self._accuracy(*validation_data)
                if test_data is not None:
                    record["test_accuracy"] = self._accuracy(*test_data)
                if callback is not None:
                    callback(record)
                if patience is not None:
                    if best is None or record["val_accuracy"] > best[0]:
                        best = (record["val_accuracy"], self._state())
                    elif record["epoch"] - best[1]["epochs"] >= patience:
                        break
        if best is not None:
            self.discarded_history_ = self.history_[best[1]["epochs"]:]
            self._restore(best[1])
            self.best_epoch_ = self.epochs_trained_
        return self

    def _state(self):
        """A copy of everything an epoch changes: weights, optimiser state,
        Adam's step count and the epoch count (``_restore`` puts it back)."""
        return {"params": self.params_.copy(), "velocity": self.velocity_.copy(),
                "adam_steps": self.adam_steps_, "epochs": len(self.history_)}

    def _restore(self, state):
        self.params_[...] = state["params"]
        self.velocity_ = state["velocity"].copy()
        self.adam_steps_ = state["adam_steps"]
        del self.history_[state["epochs"]:]

    def begin_training(self, X, y, batch_size, optimizer):
        """Before the first ``train_epoch`` of a run: weights drawn if there are
        none, the optimiser state sized, and the backend warmed up (``_warm_up``).
        ``X`` and ``y`` have passed the checks."""
        if self.params_ is None:
            self.initialize()
        self._check_backend_supports(optimizer)
        self._optimizer_state(optimizer)
        self._warm_up(get_backend(self.backend), X, y, batch_size, optimizer)

    def _check_backend_supports(self, optimizer):
        """The backend must implement the optimiser and activations asked for
        (``SUPPORTS`` of the backend module, when it declares one); one that
        cannot is refused with their names, never replaced by another."""
        supports = get_backend(self.backend).SUPPORTS
        needs = {"adam" if isinstance(optimizer, Adam) else "sgd", *self.activations_}
        if single_logistic(self.net_):
            needs.add("single_logistic_output")
        if not needs <= set(supports):
            raise ValueError(f"backend {self.backend!r} does not implement "
                             f"{', '.join(sorted(needs - set(supports)))}; use backend='numpy'")

    def _checked(self, X, y):
        """``X``, ``y`` through the checks ``fit`` runs (features; integer
        labels, or for a 2-D ``y`` a target matrix with a column per output,
        eq. Y'')."""
        X = validation.check_features(X, self.sizes[0], self.dtype_)
        if np.ndim(y) == 2:
            return X, validation.check_targets(y, X.shape[0], self.sizes[-1], self.dtype_)
        if self.sizes[-1] == 1 and self.activations_[-1] != "sigmoid":
            raise ValueError(f"class labels y need a sigmoid output for a single output unit (eq. Y'), got "
                             f"{self.activations_[-1]!r}: give y as a target matrix of shape (n_samples, 1)")
        return X, validation.check_labels(y, X.shape[0], self.n_classes_)

    def train_epoch(self, X, y, batch_size, optimizer, *, shuffle=True, l2_per_sample=False, progress=False,
                    shift=0, sample_weight=None):
        """One epoch over checked ``X``, ``y`` with ``optimizer`` (a ``network.SGD``
        or ``network.Adam`` with the epoch's rate; Adam's step count is kept here),
        appended to ``history_`` and returned as its record.  The trainer ``fit``
        and ``fastmlp.MLPClassifier`` share.

        ``shuffle=False`` takes the samples in order.  ``l2_per_sample=True``
        reads ``optimizer.l2`` as scikit-learn's ``alpha``: each mini-batch of m
        samples decays the weights by ``alpha / m`` (the penalty
        ``alpha / 2 ||W||^2`` is divided by the batch size with the cost).
        ``shift``: the input shifts of ``fit`` (R6), 0 for none; the model's
        ``dropout`` applies in every epoch.  ``y``: labels, or a target matrix
        (2-D, Y'': regression, multilabel); ``sample_weight``: checked float64
        weights per sample (``validation.check_sample_weight``, W1), or None.
        """
        self._check_shift(shift)
        self._optimizer_state(optimizer)
        if isinstance(optimizer, Adam):
            optimizer = optimizer._replace(t=self.adam_steps_)
        with self._threads():
            record = self._train_one_epoch(get_backend(self.backend), X, y, batch_size, optimizer,
                                           progress, shuffle, l2_per_sample, shift, sample_weight)
        if isinstance(optimizer, Adam):
            self.adam_steps_ += -(-X.shape[0] // batch_size)
        self.history_.append(record)
        return record

    def _check_shift(self, shift):
        """Shifts (R6) need square images as inputs, and less than their side."""
        if not shift:
            return
        side = noise.image_side(self.net_.sizes[0])
        if side is None:
            raise ValueError(f"shift needs square images as inputs; {self.net_.sizes[0]} inputs are not "
                             f"n x n pixels")
        if shift >= side:
            raise ValueError(f"shift {shift} must be smaller than the images' side ({side} pixels)")

    def _warm_up(self, backend, X, y, batch_size, optimizer):
        """Run one mini-batch on copies of the parameters, so that compiling the
        Numba kernels (or loading them from the cache) happens before the clock
        of the first epoch starts; its time is kept in ``warm_up_seconds_``.
        ``backend.prepare`` makes the run's compile plan: the Numba backend
        compiles the kernel variants the cache lacks side by side in child
        processes, so this run executes the same cached code as every later
        one, and ``train_batches`` and ``predict_proba`` find the plan.  Then
        ``backend.before_run`` (the Numba backend ends NumPy's idle BLAS threads)."""
        start = time.perf_counter()
        backend.prepare(self.net_, self.dtype_, batch_size=batch_size, optimizer=optimizer)
        m = min(batch_size, X.shape[0])
        with self._guard():  # one (short) batch of the run's own configuration: same batch_size
            backend.train_batches(self.params_.copy(), self.velocity_.copy(), self.net_,
                                  optimizer._replace(lr=1e-3, l2=0.0), X, y, np.arange(m, dtype=np.int64),
                                  batch_size)
        self.warm_up_seconds_ = time.perf_counter() - start
        backend.before_run()

    def epoch_order(self, epoch, n_samples, shuffle=True):
        """The order in which epoch ``epoch`` (1, 2, ...) takes ``n_samples``
        training samples.  It comes from (seed, epoch), so a resumed run
        shuffles exactly as an uninterrupted one would."""
        if not shuffle:
            return np.arange(n_samples, dtype=np.int64)
        return np.random.default_rng([self.seed_, epoch]).permutation(n_samples).astype(np.int64)

    def _train_one_epoch(self, backend, X, y, batch_size, sgd, progress, shuffle=True, l2_per_sample=False, shift=0,
                         sample_weight=None):
        """One pass over the (shuffled) training set; returns the history record."""
        epoch = self.epochs_trained_ + 1
        order = self.epoch_order(epoch, X.shape[0], shuffle)
        saved = self.params_.copy(), self.velocity_.copy()
        epoch_noise = (noise.Noise(noise.epoch_key(self.seed_, epoch), self.dropout_, shift)
                       if any(self.dropout_) or shift else None)
        if progress:
            progress.reset(total=X.shape[0])
            progress.set_description(f"epoch {epoch}")
        loss_sum, n_correct = 0.0, 0
        start = time.perf_counter()
        try:
            # Overflow on the way to divergence is reported below, once, as a
            # DivergenceError rather than as a stream of NumPy warnings.
            with np.errstate(over="ignore", invalid="ignore"):
                for chunk, chunk_sgd in _chunks(order, batch_size, progress, sgd, l2_per_sample):
                    with self._guard():
                        chunk_loss, chunk_correct = backend.train_batches(
                            self.params_, self.velocity_, self.net_, chunk_sgd, X, y, chunk, batch_size,
                            noise=epoch_noise, sample_weight=sample_weight)
                    loss_sum += chunk_loss
                    n_correct += chunk_correct
                    if progress:
                        progress.update(len(chunk))
        except MemoryError:
            self.params_[...], self.velocity_[...] = saved
            kept = f"the weights of epoch {epoch - 1}" if epoch > 1 else "the initial weights"
            raise OutOfMemoryError(
                f"out of memory in epoch {epoch} of a {'-'.join(map(str, self.net_.sizes))} {self.dtype_} "
                f"network at batch size {batch_size}; {kept} were kept. Try a smaller batch size or "
                f"network") from None
        except BaseException:
            self.params_[...], self.velocity_[...] = saved
            raise
        seconds = time.perf_counter() - start
        loss = loss_sum / X.shape[0]
        if not (math.isfinite(loss) and np.isfinite(self.params_).all()):
            self.params_[...], self.velocity_[...] = saved
            kept = f"the weights of epoch {epoch - 1}" if epoch > 1 else "the initial weights"
            raise DivergenceError(
                f"training diverged in epoch {epoch}: the loss or the weights became non-finite "
                f"(loss {loss}); {kept} were kept. Try a smaller learning rate (this epoch used {sgd.lr:g})")
        return {"epoch": epoch, "loss": loss, "train_accuracy": n_correct / X.shape[0],
                "learning_rate": sgd.lr, "seconds": seconds}

    @staticmethod
    def _split_validation(X, y, val_split, validation_data):
        if not val_split:
            return X, y, validation_data
        if validation_data is not None:
            raise ValueError("give either val_split or validation_data, not both")
        n_val = validation.validation_rows(X.shape[0], val_split)
        return X[:-n_val], y[:-n_val], (X[-n_val:], y[-n_val:])

    def _check_eval_set(self, data, name):
        if data is None:
            return None
        if not isinstance(data, (tuple, list)) or len(data) != 2:
            raise TypeError(f"{name} must be a pair (X, y)")
        X = validation.check_features(data[0], self.sizes[0], self.dtype_, name=f"{name}[0]")
        return X, validation.check_labels(data[1], X.shape[0], self.n_classes_, name=f"{name}[1]",
                                          samples_name=f"{name}[0]")

    # --- inference -------------------------------------------------------------------

    def predict_proba(self, X):
        """Output activations ``A_L`` for each row of ``X``, ``(n, n_classes)``.

        For a softmax output they are class probabilities; for the original's
        sigmoid outputs they are per-class scores in (0, 1).
        """
        params = self._fitted_params()
        X = validation.check_features(X, self.sizes[0], self.dtype_)
        return self._predict_proba(params, X)

    def _predict_proba(self, params, X):
        """``predict_proba`` for an ``X`` that has passed ``check_features``."""
        backend = get_backend(self.backend)
        with self._threads(), self._guard():
            return backend.predict_proba(params, self.net_, X)

    def predict(self, X):
        """The class with the largest output activation, for each row of ``X``
        (for a single output unit: 1 where it exceeds 0.5)."""
        return predicted_classes(self.predict_proba(X), single_logistic(self.net_))

    def score(self, X, y):
        """Accuracy: the fraction of rows of ``X`` whose predicted class is ``y``."""
        params = self._fitted_params()
        X = validation.check_features(X, self.sizes[0], self.dtype_)
        y = validation.check_labels(y, X.shape[0], self.n_classes_)
        return self._accuracy(X, y, params)

    def _accuracy(self, X, y, params=None):
        """``score`` for an ``(X, y)`` pair that has passed the checks."""
        params = self._fitted_params() if params is None else params
        return float(np.mean(predicted_classes(self._predict_proba(params, X), single_logistic(self.net_)) == y))

    def save(self, path):
        """Write the model to ``path`` (an ``.npz``); ``fastmlp.load`` reads it back."""
        return modelfile.save(self, path)

    def __setstate__(self, state):
        """Unpickled weights may be read-only (joblib memory-maps arrays); training
        updates them in place and the compiled kernels take writable buffers."""
        for key in ("params_", "velocity_"):
            value = state.get(key)
            if isinstance(value, np.ndarray) and not value.flags.writeable:
                state[key] = np.array(value)
        self.__dict__.update(state)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items() if v is not None)
        return f"MLP({args})"


def load(path, *, backend=None):
    """Read a model written by ``MLP.save`` (``fastmlp.modelfile.save``) and return an ``MLP``.

    Parameters
    ----------
    path : str or Path
    backend : {"numpy", "numba"}, optional
        Overrides the backend recorded in the file.

    Raises
    ------
    ModelFileError
        With one line naming the file when it is missing, not a fastmlp model,
        written by a newer format version, truncated or corrupt, or when any
        array disagrees with the metadata.
    """
    path = Path(path)
    fail = modelfile.failer(path)
    meta, arrays = modelfile.read_model_file(path)
    try:
        args = {key: meta.get(key) for key in modelfile.INIT_ARGS if key in meta}
        args["sizes"] = tuple(meta["sizes"])
        args.setdefault("activation", meta["activations"])
        args.setdefault("init", meta["inits"])
        if backend is not None:
            args["backend"] = backend
        model = MLP(**args, seed=meta["seed"]).build()
    except (TypeError, ValueError) as error:
        raise fail(f"describes a network fastmlp cannot build ({error})") from None
    if model.activations_ != list(meta["activations"]) or model.inits_ != list(meta["inits"]):
        raise fail(f"its activations/inits {meta['activations']}/{meta['inits']} disagree with its "
                   f"constructor arguments (resolved to {model.activations_}/{model.inits_})")
    if str(model.dtype_) != meta["dtype"]:
        raise fail(f"metadata dtype {meta['dtype']} disagrees with its constructor dtype {model.dtype}")
    n = n_params(model.net_.sizes)
    for name, array in arrays.items():
        length = 2 * n if name == "adam_moments" else n
        if array.shape != (length,) or array.dtype != model.dtype_:
            raise fail(f"array {name!r} has shape {array.shape} and dtype {array.dtype}, but a "
                       f"{'-'.join(map(str, model.net_.sizes))} {model.dtype_} network needs "
                       f"shape ({length},) and dtype {model.dtype_}")
    if "params" not in arrays:
        raise fail("has no 'params' array")
    if "velocity" in arrays and "adam_moments" in arrays:
        raise fail("holds both a momentum buffer and Adam's moments; a model has one optimiser state")
    params = arrays["params"]
    if not np.isfinite(params).all():
        raise fail("holds non-finite weights")
    model.params_ = np.ascontiguousarray(params, dtype=model.dtype_)
    model.adam_steps_ = 0
    if "adam_moments" in arrays:
        steps = meta.get("adam_steps")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise fail(f"holds Adam's moments but no valid step count (adam_steps {steps!r})")
        model.velocity_ = np.ascontiguousarray(arrays["adam_moments"], dtype=model.dtype_)
        model.adam_steps_ = steps
    elif "velocity" in arrays:
        model.velocity_ = np.ascontiguousarray(arrays["velocity"], dtype=model.dtype_)
    else:
        model.velocity_ = np.zeros_like(model.params_)
    model.history_ = modelfile.check_history(meta["history"], fail)
    model.best_epoch_ = meta.get("best_epoch")
    model.discarded_history_ = []
    model.metadata_ = meta
    return model


def _chunks(order, batch_size, progress, optimizer, l2_per_sample=False):
    """Split an epoch's order into pieces of whole mini-batches, each with the
    optimiser settings it runs with: ``(piece, optimizer)`` pairs.

    Without a progress bar the epoch is one piece (one compiled call in the
    Numba backend); with one, about 50 pieces so the bar moves.  Adam's step
    count advances by the batches of the pieces before.  With ``l2_per_sample``
    the full batches get ``l2 / batch_size`` and a shorter last batch runs as a
    piece of its own with ``l2 / its size`` (see ``MLP.train_epoch``).
    """
    n_full = len(order) // batch_size * batch_size
    if l2_per_sample and optimizer.l2 and n_full < len(order):
        pieces = [(order[:n_full], batch_size), (order[n_full:], len(order) - n_full)]
    else:
        pieces = [(order, batch_size)]
    step = max(1, -(-len(order) // batch_size) // 50) * batch_size if progress else len(order)
    out, batches = [], 0
    for piece, m in pieces:
        for i in range(0, len(piece), step):
            part = piece[i:i + step]
            chunk_opt = optimizer._replace(l2=optimizer.l2 / m) if l2_per_sample else optimizer
            if isinstance(optimizer, Adam):
                chunk_opt = chunk_opt._replace(t=optimizer.t + batches)
            out.append((part, chunk_opt))
            batches += -(-len(part) // batch_size)
    return [piece for piece in out if len(piece[0])]
