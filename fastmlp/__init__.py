"""fastmlp: a from-scratch multi-layer perceptron for MNIST, with a readable
NumPy reference and a Numba backend proven equal to it."""

__version__ = "0.1.0"

from fastmlp.errors import DataError, DivergenceError, FastMLPError, ModelFileError  # noqa: E402
from fastmlp.model import MLP  # noqa: E402


def load_mnist(*args, **kwargs):
    """Load MNIST (or Fashion-MNIST) as uint8 arrays; see ``fastmlp.data.load_mnist``."""
    from fastmlp.data import load_mnist as _load

    return _load(*args, **kwargs)


__all__ = ["MLP", "load_mnist", "DataError", "DivergenceError", "FastMLPError", "ModelFileError", "__version__"]
