"""``fastmlp.MLPClassifier``: a drop-in for ``sklearn.neural_network.MLPClassifier``
(same parameters, defaults, fitted attributes and stopping rules) that trains
on fastmlp's backends.

The fitting it shares with ``MLPRegressor`` is in ``base.py``; this module
adds scikit-learn's label handling: classes of any type, one logistic output
for two classes or softmax for more, an indicator matrix ``y`` for multilabel
problems (one logistic output per label), accuracy as the validation score.
``docs/sklearn.md`` lists where the semantics differ from scikit-learn's and
why.
"""

import inspect

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import _check_partial_fit_first_call, check_classification_targets, type_of_target
from sklearn.utils.validation import column_or_1d

from fastmlp import validation
from fastmlp.estimators.base import BaseMLP
from fastmlp.estimators.params import CLASSIFIER_DEFAULTS, DEFAULTS
from fastmlp.functions import predicted_classes


def _log_loss(P, y, sample_weight=None):
    """The mean log-loss of outputs ``P`` (one logistic column, or softmax)
    for class indices ``y`` (weighted by ``sample_weight``), in
    scikit-learn's convention (its ``neural_network._base.log_loss``):
    probabilities clipped to ``[eps, 1 - eps]`` of their dtype, no penalty."""
    eps = np.finfo(P.dtype).eps
    P = np.clip(P, eps, 1 - eps)
    p = np.where(y == 1, P[:, 0], 1 - P[:, 0]) if P.shape[1] == 1 else P[np.arange(len(y)), y]
    return float(-np.average(np.log(p), weights=sample_weight))


def _multilabel_log_loss(P, Y, sample_weight=None):
    """scikit-learn's ``binary_log_loss`` for indicator targets ``Y``: summed
    over the labels, averaged over the samples, clipped as ``_log_loss``."""
    eps = np.finfo(P.dtype).eps
    P = np.clip(P, eps, 1 - eps)
    return float(-np.average(Y * np.log(P) + (1 - Y) * np.log(1 - P), weights=sample_weight, axis=0).sum())


class MLPClassifier(ClassifierMixin, BaseMLP):
    """Multi-layer perceptron classifier trained by fastmlp (log-loss; lbfgs, SGD or Adam).

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
    class_weight : None, "balanced" or dict {class label: weight}
        Multiplies each sample's weight by its class's, as scikit-learn's other
        classifiers define it (``'balanced'``: ``n_samples / (n_classes *
        count)``, from the ``y`` of each ``fit``; not for ``partial_fit``).
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

    #: Set by ``fit``: True when ``y`` is a multilabel indicator matrix.
    _multilabel = False

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False,
                 warm_start=False, momentum=0.9, nesterovs_momentum=True, early_stopping=False,
                 validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 n_iter_no_change=10, max_fun=15000, backend="numba", dtype=None, n_threads=None,
                 init=None, input_scale=None, lr_step_size=None, lr_gamma=0.1, dropout=None, max_norm=0.0,
                 shift=0, class_weight=None):
        self.class_weight = class_weight
        shared = {name: value for name, value in locals().items() if name in DEFAULTS}
        super().__init__(**shared)

    def fit(self, X, y, sample_weight=None):
        """Train on ``X`` (n_samples, n_features) and labels ``y`` of any type
        (strings, integers, ...) for up to ``max_iter`` epochs; returns ``self``.
        ``sample_weight``: a weight >= 0 per sample, as scikit-learn's (each
        mini-batch's loss and L2 term divided by the batch's sum of weights,
        eq. W1 of docs/math.md), times ``class_weight``'s."""
        return self._fit(X, y, incremental=False, sample_weight=sample_weight)

    @available_if(lambda self: self._check_solver())
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over ``X``, ``y`` (weighted as in ``fit``).  ``classes``
        (every label that will ever be seen) is required on the first call,
        as in scikit-learn."""
        if isinstance(self.class_weight, str) and self.class_weight == "balanced":
            raise ValueError("MLPClassifier: class_weight='balanced' is not supported by partial_fit (one "
                             "batch does not give the class frequencies); pass "
                             "compute_class_weight('balanced', classes=classes, y=y) of the whole training "
                             "set as class_weight instead")
        if _check_partial_fit_first_call(self, classes):
            self._classes_from_partial_fit = True
        return self._fit(X, y, incremental=True, sample_weight=sample_weight)

    def _validate_train(self, X, y, reset):
        X, y = self._validated_X(X, y, reset=reset, multi_output=True)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if y.ndim == 2 and type_of_target(y) != "multilabel-indicator":
            raise ValueError("Multioutput target data is not supported with label binarization")
        return X, y

    def _targets(self, y, incremental, first_pass):
        """``y`` as the kernels take it: indices into ``classes_`` (0..K-1),
        or for multilabel ``y`` a 0/1 indicator matrix (eq. Y'') whose
        ``classes_`` are ``0..n_labels-1``, as scikit-learn's ``LabelBinarizer``
        gives them."""
        new_classes = first_pass and not (incremental and getattr(self, "_classes_from_partial_fit", False))
        self._classes_from_partial_fit = False
        multilabel = y.ndim == 2
        if not first_pass and multilabel != self._multilabel:
            kind = f"a multilabel indicator matrix of {len(self.classes_)} labels" if self._multilabel else \
                f"the classes {self.classes_}"
            raise ValueError(f"this MLPClassifier was fitted on {kind}; y must be of the same kind, got "
                             f"{'a 2-D' if multilabel else 'a 1-D'} y")
        self._multilabel = multilabel
        if multilabel:
            if not new_classes and len(self.classes_) != y.shape[1]:
                raise ValueError(f"y has {y.shape[1]} labels, but this MLPClassifier has classes {self.classes_}")
            self.classes_ = np.arange(y.shape[1])
            return y.astype(np.float64)
        if new_classes:
            self.classes_, y_idx = np.unique(y, return_inverse=True)
            return y_idx
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

    def _sample_weight(self, targets, sample_weight):
        """``sample_weight`` times each sample's ``class_weight`` (None when
        both are None)."""
        if self.class_weight is None:
            return sample_weight
        if self._multilabel:
            raise ValueError("MLPClassifier: class_weight is defined for one label per sample; for multilabel y "
                             "pass sample_weight instead")
        per_class = compute_class_weight(self.class_weight, classes=self.classes_, y=self.classes_[targets],
                                         sample_weight=sample_weight)
        weights = per_class[targets] if sample_weight is None else per_class[targets] * sample_weight
        return validation.check_sample_weight(weights, len(targets), name="sample_weight (with class_weight)")

    def _output_layer(self, targets):
        """One logistic output with the cross-entropy for two classes, softmax
        with the log-likelihood for more, a logistic output per label for
        multilabel ``y`` (scikit-learn's choice)."""
        if self._multilabel:
            return len(self.classes_), "logistic", "sigmoid", "cross_entropy"
        if len(self.classes_) <= 2:
            return 1, "logistic", "sigmoid", "cross_entropy"
        return len(self.classes_), "softmax", "softmax", "nll"

    def _stratify(self, y):
        # stratified for two classes only, on scikit-learn's one-column boolean
        # targets, so the same random_state gives the same split and the same
        # messages (a class of one member is named 'True' or 'False', as there)
        return (y == 1)[:, None] if self.n_outputs_ == 1 and not self._multilabel else None

    def _validation(self, outputs, y_val, sample_weight):
        """Accuracy (scikit-learn's validation score; subset accuracy for
        multilabel rows) and the log-loss."""
        if self._multilabel:
            right = np.all((outputs > 0.5) == (y_val > 0.5), axis=1)
            return float(np.average(right, weights=sample_weight)), _multilabel_log_loss(outputs, y_val,
                                                                                          sample_weight)
        score = float(np.average(predicted_classes(outputs, self.n_outputs_ == 1) == y_val, weights=sample_weight))
        return score, _log_loss(outputs, y_val, sample_weight)

    # --- inference -------------------------------------------------------------------

    def predict_proba(self, X):
        """Class probabilities ``(n_samples, n_classes)`` in the order of ``classes_``
        (two columns ``[1 - p, p]`` for a logistic output, as scikit-learn;
        one probability per label for multilabel ``y``)."""
        A = self._outputs(X)
        if self.n_outputs_ == 1 and not self._multilabel:
            return np.hstack([1 - A, A])
        return A

    def predict_log_proba(self, X):
        """``log(predict_proba(X))``."""
        P = self.predict_proba(X)
        return np.log(P, out=P)

    def predict(self, X):
        """The most probable class of each row of ``X``, as a label of
        ``classes_``; for multilabel ``y`` a 0/1 indicator matrix (each label's
        probability > 0.5)."""
        A = self._outputs(X)
        if self._multilabel:
            return (A > 0.5).astype(int)
        if self.n_outputs_ == 1:
            if len(self.classes_) == 1:
                return np.repeat(self.classes_[0], len(A))
            return self.classes_[(A[:, 0] > 0.5).astype(np.intp)]
        return self.classes_[A.argmax(axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


assert {name: p.default for name, p in inspect.signature(MLPClassifier).parameters.items()} == CLASSIFIER_DEFAULTS
