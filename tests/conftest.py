"""Shared fixtures and the rule for tests that need the real MNIST files.

Tests marked ``@pytest.mark.mnist`` read the data set from ``FASTMLP_DATA``.
Where it is absent they skip with the reason, unless ``FASTMLP_REQUIRE_DATA=1``
(set by ``.ci/run``), under which a missing data set is a failure.

Helper functions shared by several test files (synthetic IDX data, the
environment for child processes) live in ``tests/helpers.py``; the fixtures
below wrap them.
"""

import os
from pathlib import Path

import pytest

MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def _mnist_dir():
    root = os.environ.get("FASTMLP_DATA")
    if not root:
        return None
    root = Path(root)
    for name in MNIST_FILES:
        if not ((root / name).exists() or (root / (name + ".gz")).exists()):
            return None
    return root


@pytest.fixture(scope="session")
def mnist_dir():
    """The folder holding the four MNIST IDX files, or skip/fail as the rule says."""
    root = _mnist_dir()
    if root is None:
        reason = "real MNIST not found: set FASTMLP_DATA to a folder with the four IDX files"
        if os.environ.get("FASTMLP_REQUIRE_DATA") == "1":
            pytest.fail(reason + " (FASTMLP_REQUIRE_DATA=1 forbids skipping)")
        pytest.skip(reason)
    return root


@pytest.fixture(scope="session")
def mnist(mnist_dir):
    """The full MNIST as uint8 arrays: (X_train, y_train, X_test, y_test)."""
    from fastmlp.datasets.mnist import load_mnist

    return load_mnist(data_dir=mnist_dir, download=False)


@pytest.fixture(scope="session")
def synthetic_mnist_dir(tmp_path_factory):
    """A folder with four small IDX files of learnable fake digits (1000 train, 300 test)."""
    from helpers import write_synthetic_mnist

    return write_synthetic_mnist(tmp_path_factory.mktemp("synthetic-mnist"))


@pytest.fixture(scope="session")
def tiny_mnist_dir(tmp_path_factory):
    """Like ``synthetic_mnist_dir`` but tiny (60 train, 20 test): for fuzzing and smoke runs."""
    from helpers import write_synthetic_mnist

    return write_synthetic_mnist(tmp_path_factory.mktemp("tiny-mnist"), n_train=60, n_test=20)


def pytest_collection_modifyitems(config, items):
    # A test marked "mnist" always goes through the mnist_dir fixture, so the
    # skip/fail rule above applies to it even when it does not use the arrays.
    for item in items:
        if item.get_closest_marker("mnist") and "mnist_dir" not in getattr(item, "fixturenames", ()):
            item.fixturenames.append("mnist_dir")
