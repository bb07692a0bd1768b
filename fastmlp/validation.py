"""Checks on what users pass to the model, done once, before any work.

Each check raises ``ValueError`` or ``TypeError`` naming the argument and what
was expected, and returns the array in the one layout the backends take
(C-contiguous, native byte order), so hot loops never see surprises.
"""

import numbers

import numpy as np


def check_features(X, n_features, dtype, name="X"):
    """Validate inputs ``X`` of shape ``(n_samples, n_features)``.

    uint8 arrays are pixels (scaled by 1/255 inside the first layer) and are kept
    as they are; other integer arrays must hold values 0..255 and become uint8;
    float arrays must be finite and are converted to the model's ``dtype``.
    """
    if isinstance(X, (str, bytes)) or not hasattr(X, "__len__") and not hasattr(X, "__array__"):
        raise TypeError(f"{name} must be a 2-D array of shape (n_samples, {n_features}), got {type(X).__name__}")
    X = np.asarray(X)
    if X.dtype == object or not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
        raise TypeError(f"{name} must be a numeric array, got dtype {X.dtype}")
    if X.dtype == bool or np.issubdtype(X.dtype, np.complexfloating):
        raise TypeError(f"{name} must hold uint8 pixels or real numbers, got dtype {X.dtype}")
    if X.ndim != 2:
        hint = " (reshape images to (n, 784) first)" if X.ndim == 3 else ""
        raise ValueError(f"{name} must be 2-D (n_samples, {n_features}), got shape {X.shape}{hint}")
    if X.shape[0] == 0:
        raise ValueError(f"{name} is empty: it has 0 samples")
    if X.shape[1] != n_features:
        raise ValueError(f"{name} has {X.shape[1]} features per sample, but the network's input layer expects {n_features}")
    if X.dtype == np.uint8:
        return np.ascontiguousarray(X)
    if np.issubdtype(X.dtype, np.integer):
        lo, hi = X.min(), X.max()
        if lo < 0 or hi > 255:
            raise ValueError(f"{name} holds integers from {lo} to {hi}; integer inputs must be pixels in 0..255 (or pass floats)")
        return np.ascontiguousarray(X, dtype=np.uint8)
    X = np.ascontiguousarray(X, dtype=dtype)
    if not np.isfinite(X).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return X


def check_labels(y, n_samples, n_classes, name="y"):
    """Validate integer class labels ``y`` of shape ``(n_samples,)`` in ``0..n_classes-1``."""
    y = np.asarray(y)
    if y.dtype == bool or not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"{name} must hold integer class labels, got dtype {y.dtype}")
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D (n_samples,), got shape {y.shape}")
    if len(y) != n_samples:
        raise ValueError(f"X has {n_samples} samples but {name} has {len(y)} labels")
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"{name} holds labels from {y.min()} to {y.max()}, but the output layer has {n_classes} classes (0..{n_classes - 1})")
    return np.ascontiguousarray(y, dtype=np.uint8 if n_classes <= 256 else np.int64)


def check_positive_int(value, name, minimum=1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_number(value, name, minimum=0.0, inclusive=True, maximum=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if value < minimum or (not inclusive and value == minimum):
        raise ValueError(f"{name} must be {'>=' if inclusive else '>'} {minimum}, got {value}")
    if maximum is not None and value >= maximum:
        raise ValueError(f"{name} must be < {maximum}, got {value}")
    return value
