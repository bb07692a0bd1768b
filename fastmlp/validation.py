"""Checks on what users pass to the model, done once, before any work.

Each check raises ``ValueError`` or ``TypeError`` naming the argument and what
was expected, and returns the array in the one layout the backends take
(C-contiguous, native byte order), so hot loops never see surprises.
"""

import numbers
import sys

import numpy as np


def is_sparse(X):
    """True for a SciPy sparse matrix or array (SciPy is looked up, not
    imported: a sparse input means it is loaded already)."""
    sparse = sys.modules.get("scipy.sparse")
    return sparse is not None and sparse.issparse(X)


def _as_array(value, name, expected):
    """``np.asarray(value)``, with NumPy's errors for ragged lists and the like
    turned into one that names the argument."""
    if isinstance(value, (str, bytes)) or value is None or (
            not hasattr(value, "__len__") and not hasattr(value, "__array__")):
        raise TypeError(f"{name} must be {expected}, got {type(value).__name__}")
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as error:  # ragged nested lists, odd __array__
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"{name} must be {expected}; it cannot be read as one ({first})") from None


def check_features(X, n_features, dtype, name="X"):
    """Validate inputs ``X`` of shape ``(n_samples, n_features)``.

    uint8 arrays are pixels (scaled by 1/255 inside the first layer) and are kept
    as they are; other integer arrays must hold values 0..255 and become uint8;
    float arrays must be finite and are converted to the model's ``dtype``.
    Lists and any object with ``__array__`` are accepted.  The result is
    C-contiguous in native byte order, uint8 or ``dtype``: the only layouts the
    backends (and the Numba kernels) are given.  An array already in that form
    is returned as it is, without a copy.  A SciPy sparse matrix (CSR, CSC, or
    any other format) becomes CSR under the same rules for its stored values
    (``_check_sparse_features``) and is never made dense.
    """
    if is_sparse(X):
        return _check_sparse_features(X, n_features, dtype, name)
    X = _as_array(X, name, f"a 2-D array of shape (n_samples, {n_features})")
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
        # min/max in the array's own type cannot overflow; the range check comes
        # before the cast, so no value wraps around (int8 -1 is not pixel 255).
        lo, hi = X.min(), X.max()
        if lo < 0 or hi > 255:
            raise ValueError(f"{name} holds integers from {lo} to {hi}; integer inputs must be pixels "
                             f"in 0..255 (or pass floats)")
        return np.ascontiguousarray(X, dtype=np.uint8)
    with np.errstate(over="ignore", invalid="ignore"):  # reported below as non-finite
        X = np.ascontiguousarray(X, dtype=dtype)
    if not np.isfinite(X).all():
        raise ValueError(f"{name} contains NaN or infinite values (or values too large for {np.dtype(dtype)})")
    return X


def _check_sparse_features(X, n_features, dtype, name):
    """A sparse ``X`` as CSR with sorted, summed entries: its stored values
    follow the dense rules (uint8 or integers 0..255 are pixels, kept uint8;
    floats finite, in ``dtype``); the matrix given is not modified."""
    if X.dtype == bool or np.issubdtype(X.dtype, np.complexfloating) or not np.issubdtype(X.dtype, np.number):
        raise TypeError(f"{name} must hold uint8 pixels or real numbers, got a sparse matrix of dtype {X.dtype}")
    if X.shape[0] == 0:
        raise ValueError(f"{name} is empty: it has 0 samples")
    if X.shape[1] != n_features:
        raise ValueError(f"{name} has {X.shape[1]} features per sample, but the network's input layer "
                         f"expects {n_features}")
    X = X.tocsr()
    if np.issubdtype(X.dtype, np.integer):
        if X.nnz and (X.data.min() < 0 or X.data.max() > 255):
            raise ValueError(f"{name} holds integers from {X.data.min()} to {X.data.max()}; integer inputs must be "
                             f"pixels in 0..255 (or pass floats)")
        target = np.uint8
    else:
        target = np.dtype(dtype)
    if X.dtype != target:
        X = X.astype(target)
    if not X.has_canonical_format:  # duplicates summed, as a dense copy would hold them
        X = X.copy()
        X.sum_duplicates()
    if target != np.uint8 and not np.isfinite(X.data).all():
        raise ValueError(f"{name} contains NaN or infinite values (or values too large for {np.dtype(dtype)})")
    return X


def check_labels(y, n_samples, n_classes, name="y", samples_name="X"):
    """Validate integer class labels ``y`` of shape ``(n_samples,)`` in ``0..n_classes-1``.

    Returns uint8 labels (int64 above 256 classes), C-contiguous, native order.
    Floats (even 3.0) and booleans are refused rather than guessed at.
    """
    y = _as_array(y, name, "a 1-D array of integer class labels")
    if y.dtype == bool:
        raise TypeError(f"{name} must hold integer class labels, got booleans (use y.astype(int) for classes 0/1)")
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"{name} must hold integer class labels, got dtype {y.dtype}")
    if y.ndim != 1:
        hint = " (class indices, not one-hot rows)" if y.ndim == 2 else ""
        raise ValueError(f"{name} must be 1-D (n_samples,), got shape {y.shape}{hint}")
    if len(y) != n_samples:
        raise ValueError(f"{samples_name} has {n_samples} samples but {name} has {len(y)} labels")
    if len(y):
        lo, hi = y.min(), y.max()
        if lo < 0 or hi >= n_classes:
            raise ValueError(f"{name} holds labels from {lo} to {hi}, but the output layer has "
                             f"{n_classes} classes (0..{n_classes - 1})")
    return np.ascontiguousarray(y, dtype=np.uint8 if n_classes <= 256 else np.int64)


def check_targets(y, n_samples, n_outputs, dtype, name="y", samples_name="X"):
    """Validate a target matrix ``y`` (eq. Y'': regression values or
    multilabel indicators) of shape ``(n_samples, n_outputs)``, finite;
    returns it C-contiguous in ``dtype``."""
    y = _as_array(y, name, "a 2-D array of targets")
    if y.dtype == object or not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
        raise TypeError(f"{name} must hold numbers, got dtype {y.dtype}")
    if y.ndim != 2 or y.shape[1] != n_outputs:
        raise ValueError(f"{name} must have shape (n_samples, {n_outputs}), got {y.shape}")
    if len(y) != n_samples:
        raise ValueError(f"{samples_name} has {n_samples} samples but {name} has {len(y)} rows")
    y = np.ascontiguousarray(y, dtype=dtype)
    if not np.isfinite(y).all():
        raise ValueError(f"{name} holds NaN or infinite targets")
    return y


def check_sample_weight(sample_weight, n_samples, name="sample_weight", samples_name="X"):
    """Validate per-sample weights (eq. W1): ``None``, a number (the same for
    every sample), or ``(n_samples,)`` finite numbers >= 0 that are not all
    0; returns None or float64 weights."""
    if sample_weight is None:
        return None
    if isinstance(sample_weight, numbers.Real) and not isinstance(sample_weight, bool):
        sample_weight = np.full(n_samples, float(sample_weight))
    w = _as_array(sample_weight, name, "a 1-D array of weights")
    if w.dtype == object or not np.issubdtype(w.dtype, np.number) or np.issubdtype(w.dtype, np.complexfloating):
        raise TypeError(f"{name} must hold real numbers, got dtype {w.dtype}")
    if w.ndim != 1:
        raise ValueError(f"{name} must be 1-D (n_samples,), got shape {w.shape}")
    if len(w) != n_samples:
        raise ValueError(f"{samples_name} has {n_samples} samples but {name} has {len(w)} weights")
    w = np.ascontiguousarray(w, dtype=np.float64)
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"{name} must be finite and >= 0")
    if len(w) and not w.any():
        raise ValueError(f"{name} is 0 for every sample")
    return w


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


def validation_rows(n, val_split):
    """How many of ``n`` samples ``val_split`` holds out for validation: a
    fraction in (0, 1) of them (rounded) or a count; it must leave samples for
    both training and validation."""
    if isinstance(val_split, float) and 0 < val_split < 1:
        n_val = int(round(val_split * n))
    else:
        n_val = check_positive_int(val_split, "val_split")
    if not 0 < n_val < n:
        raise ValueError(f"val_split {val_split} must leave samples for both training and "
                         f"validation ({n} samples given)")
    return n_val
