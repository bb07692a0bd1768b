"""fastmlp: a from-scratch multi-layer perceptron for MNIST, with a readable
NumPy reference and a Numba backend proven equal to it."""

from fastmlp._version import __version__
from fastmlp.datasets.mnist import load_mnist
from fastmlp.errors import (DataError, DataUnavailableError, DivergenceError, FastMLPError,
                            ModelFileError)
from fastmlp.model import MLP, load

__all__ = ["MLP", "MLPClassifier", "load", "load_mnist", "DataError", "DataUnavailableError", "DivergenceError",
           "FastMLPError", "ModelFileError", "__version__"]


def __getattr__(name):
    """``fastmlp.MLPClassifier`` is imported on first use: it needs scikit-learn
    (the ``sklearn`` extra), which ``import fastmlp`` must not require."""
    if name == "MLPClassifier":
        from fastmlp.classifier import MLPClassifier

        return MLPClassifier
    raise AttributeError(f"module 'fastmlp' has no attribute {name!r}")
