"""fastmlp: a from-scratch multi-layer perceptron for MNIST, with a readable
NumPy reference and a Numba backend proven equal to it."""

__version__ = "0.1.0"

from fastmlp.data import load_mnist  # noqa: E402
from fastmlp.errors import (DataError, DataUnavailableError, DivergenceError, FastMLPError,  # noqa: E402
                            ModelFileError)
from fastmlp.io import load  # noqa: E402
from fastmlp.model import MLP  # noqa: E402

__all__ = ["MLP", "load", "load_mnist", "DataError", "DataUnavailableError", "DivergenceError",
           "FastMLPError", "ModelFileError", "__version__"]
