"""Classification figures computed from predictions: the confusion matrix,
per-class precision and recall, and class probabilities for display."""

import numpy as np


def confusion_matrix(y_true, y_pred, n_classes):
    """Counts ``cm[i, j]`` of samples of true class ``i`` predicted as class ``j``.

    Rows are true classes, columns predicted ones (scikit-learn's convention), so
    ``cm.sum(axis=1)`` counts each class and ``np.trace(cm)`` the correct answers.

    Parameters
    ----------
    y_true, y_pred : array of int, (n,)
        Labels in ``0..n_classes-1``.
    n_classes : int

    Returns
    -------
    cm : ndarray of int64, (n_classes, n_classes)
    """
    y_true = np.asarray(y_true).astype(np.int64, copy=False)
    y_pred = np.asarray(y_pred).astype(np.int64, copy=False)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-D of the same length, got {y_true.shape} and {y_pred.shape}")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.size and (y.min() < 0 or y.max() >= n_classes):
            raise ValueError(f"{name} holds labels from {y.min()} to {y.max()}, expected 0..{n_classes - 1}")
    # Each (true, predicted) pair maps to one cell of the flattened matrix.
    return np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def precision_recall(cm):
    """Per-class precision and recall from a confusion matrix (rows: true class).

    .. math::

        \\text{precision}_k = cm_{kk} / \\sum_i cm_{ik}, \\qquad
        \\text{recall}_k = cm_{kk} / \\sum_j cm_{kj}

    A class never predicted has no precision and a class absent from the data no
    recall: those entries are NaN (scikit-learn reports 0 with a warning; NaN
    keeps "undefined" apart from "always wrong").

    Returns
    -------
    precision, recall : ndarray of float64, (n_classes,)
    """
    cm = np.asarray(cm, dtype=np.float64)
    correct = np.diag(cm)
    predicted, actual = cm.sum(axis=0), cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, correct / predicted, np.nan)
        recall = np.where(actual > 0, correct / actual, np.nan)
    return precision, recall


def accuracy(cm):
    """Fraction of correct answers: the trace over the total."""
    cm = np.asarray(cm)
    return float(np.trace(cm) / cm.sum()) if cm.sum() else float("nan")


def class_probabilities(model, X):
    """``(n, n_classes)`` rows summing to 1 for display.

    A softmax output layer gives probabilities already.  Other outputs (the
    original's sigmoid) give one independent score per class; they are divided
    by their row sum, which keeps the ranking and makes them comparable.
    """
    A = model.predict_proba(X).astype(np.float64)
    if model.activations_[-1] == "softmax":
        return A
    A = np.clip(A, 0.0, None)  # tanh/leaky outputs can dip below 0
    total = A.sum(axis=1, keepdims=True)
    uniform = np.full_like(A, 1.0 / A.shape[1])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, A / np.where(total > 0, total, 1.0), uniform)
