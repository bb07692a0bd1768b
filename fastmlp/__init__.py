"""fastmlp: a from-scratch multi-layer perceptron for MNIST, with a readable
NumPy reference and a Numba backend proven equal to it."""

from fastmlp._version import __version__
from fastmlp.datasets.mnist import load_mnist
from fastmlp.errors import (DataError, DataUnavailableError, DivergenceError, FastMLPError,
                            ModelFileError)
from fastmlp.model import MLP, load

__all__ = ["MLP", "MLPClassifier", "MLPRegressor", "compile_ahead", "load", "load_mnist", "DataError", "DataUnavailableError", "DivergenceError",
           "FastMLPError", "ModelFileError", "__version__"]


def compile_ahead(model, *, batch_size=10, momentum=0.0, nesterov=False):
    """Compile the numba kernels ``model.fit(X, y, batch_size=..., momentum=...,
    nesterov=...)`` and ``model.predict_proba`` will run, so that the first fit
    starts at once (e.g. while building a container image, or right after
    install).  The kernels serve inputs of every dtype (uint8 pixels, floats)
    and every network whose layers take the same loop shapes; compiled code
    is cached on disk per kernel variant, so each is compiled once per
    machine.  Returns the seconds spent compiling (0.0 if everything is cached, or
    for the numpy backend).  The CLI equivalent is ``fastmlp compile [train
    options]``."""
    if model.backend != "numba":
        return 0.0
    import copy

    from fastmlp.backends import numba as numba_backend
    from fastmlp.network import SGD

    # MLP.__init__ only stores its arguments: resolve them on a copy, so the
    # model itself is left as the caller made it.
    built = model if getattr(model, "net_", None) is not None else copy.copy(model).build()
    variants = numba_backend.variants_for(built.net_, built.dtype_, batch_size=batch_size,
                                          optimizer=SGD(0.1, momentum, bool(nesterov)))
    return numba_backend.compile_variants(variants)


def __getattr__(name):
    """``fastmlp.MLPClassifier`` and ``fastmlp.MLPRegressor`` are imported on
    first use: they need scikit-learn (the ``sklearn`` extra), which
    ``import fastmlp`` must not require."""
    if name in ("MLPClassifier", "MLPRegressor"):
        from fastmlp import estimators

        return getattr(estimators, name)
    raise AttributeError(f"module 'fastmlp' has no attribute {name!r}")
