"""Helpers shared by the test files (import them with ``from helpers import ...``).

``write_synthetic_mnist`` writes four IDX files of learnable fake digits, so
CLI tests need no download and no real MNIST; ``subprocess_env`` is the
environment for running this checkout in a child process, and
``ctrl_c_as_at_a_terminal`` lets such a child take SIGINT.  The same helpers are
offered as fixtures in ``conftest.py`` (``synthetic_mnist_dir``).
"""

import os
import struct
from pathlib import Path

import numpy as np
import numpy.testing as npt

from fastmlp import config

REPO = Path(__file__).resolve().parents[1]


def subprocess_env(**overrides):
    """The environment for ``python -m fastmlp`` in a child: this checkout first
    on the path (works whether or not fastmlp is installed); ``overrides`` are
    set on top (a value of ``None`` removes the variable)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "tests"), *filter(None, [env.get("PYTHONPATH")])])
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def ctrl_c_as_at_a_terminal():
    """``preexec_fn`` for a child the test will send SIGINT: its Ctrl-C as a
    user's at a terminal.  A test run started in the background of a script
    ignores SIGINT, its children inherit that, and Python then never raises
    KeyboardInterrupt in them."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def write_idx(path, array):
    """An IDX file (uint8) with ``array``'s shape, as the MNIST files are."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    Path(path).write_bytes(header + array.tobytes())


def synthetic_digits(n, seed=0):
    """``n`` fake 28x28 digits: one random blob template per class plus noise."""
    rng = np.random.default_rng(12345)  # the templates are the same for every call
    templates = (rng.random((10, 784)) < 0.2) * 200.0
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n).astype(np.uint8)
    X = np.clip(templates[y] + rng.normal(0, 60, (n, 784)), 0, 255).astype(np.uint8)
    return X, y


def write_synthetic_mnist(folder, n_train=1000, n_test=300):
    """Four IDX files of synthetic digits in ``folder``; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    X, y = synthetic_digits(n_train, seed=1)
    X_test, y_test = synthetic_digits(n_test, seed=2)
    write_idx(folder / "train-images-idx3-ubyte", X.reshape(-1, 28, 28))
    write_idx(folder / "train-labels-idx1-ubyte", y)
    write_idx(folder / "t10k-images-idx3-ubyte", X_test.reshape(-1, 28, 28))
    write_idx(folder / "t10k-labels-idx1-ubyte", y_test)
    return folder



class InProcessRunner:
    """Stands in for the sweep's runners (``fastmlp.sweep.local``,
    ``fastmlp.sweep.cluster``): every trial in this process, in turn, so a
    test can patch what a trial runs."""

    where = "in the test process"

    def call(self, function, *args):
        return function(*args)

    def run_trials(self, settings, with_model):
        from fastmlp.sweep.trial import run_trial

        for i, trial in enumerate(settings):
            yield i, run_trial(trial, None, with_model)

    def close(self, cancel=False):
        pass


def ties_within(A, tol, logistic):
    """How many rows of outputs ``A`` could change their predicted class
    within the element-wise tolerances ``tol``: for a single logistic output,
    those within ``tol`` of 0.5 (not exactly on it); otherwise those whose top
    two outputs are apart by more than 0 and at most the sum of their
    tolerances (an exact tie is broken the same way by both backends)."""
    if logistic:
        return int(np.count_nonzero((A[:, 0] != 0.5) & (np.abs(A[:, 0] - 0.5) <= tol[:, 0])))
    if A.shape[1] < 2:  # one output of another kind: its argmax is always 0
        return 0
    second, top = np.argsort(A, axis=1, kind="stable")[:, -2:].T
    i = np.arange(len(A))
    gap = A[i, top] - A[i, second]
    return int(np.count_nonzero((gap > 0) & (gap <= tol[i, top] + tol[i, second])))


def assert_close(comp, ref, dtype):
    """The project's tolerances between a compiled result and the
    reference's: float64 within ``TEST_ATOL_FLOAT64``, float32 within
    ``TEST_RTOL_FLOAT32`` relative to the larger of 1 and the largest value;
    the same shape, dtype and finiteness."""
    comp, ref = np.asarray(comp), np.asarray(ref)
    assert comp.shape == ref.shape and comp.dtype == ref.dtype
    assert np.all(np.isfinite(comp)) == np.all(np.isfinite(ref))
    if np.dtype(dtype) == np.float64:
        npt.assert_allclose(comp, ref, rtol=0, atol=config.TEST_ATOL_FLOAT64)
    else:
        npt.assert_allclose(comp, ref, rtol=config.TEST_RTOL_FLOAT32,
                            atol=config.TEST_RTOL_FLOAT32 * max(1.0, float(np.abs(ref).max(initial=0))))


def start_sklearn_from(sk, start):
    """Make scikit-learn's MLP estimator ``sk`` begin its next fit from the
    initial weights of the fastmlp estimator ``start`` (its ``_init_coef``
    replaced).  It still draws one number from its ``random_state`` where
    fastmlp draws its seed, so the early-stopping split that follows is the
    same on both sides.  Returns ``sk``."""
    layers = iter([(W.copy(), b.copy()) for W, b in zip(start.coefs_, start.intercepts_)])
    drawn = []

    def init_coef(fan_in, fan_out, dtype):
        if not drawn:
            drawn.append(sk._random_state.randint(0, 2**31 - 1))
        return next(layers)

    sk._init_coef = init_coef
    return sk
