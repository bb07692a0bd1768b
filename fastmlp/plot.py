"""Figures: learning curves, the confusion matrix and first-layer weights.

matplotlib is an optional extra (``pip install 'fastmlp[plot]'``), imported only
when a figure is drawn.  Figures are drawn on matplotlib's Agg canvas directly
(``Figure`` + ``FigureCanvasAgg``), never through ``pyplot``: no window, no
display needed, and no global figure state shared with the caller.  Every file
is written through a temporary file and renamed (``fastmlp._files.atomic_write``).
"""

import importlib
from pathlib import Path

import numpy as np

# MissingDependencyError lives in fastmlp.errors with the other exceptions; it is
# imported here too so ``from fastmlp.plot import MissingDependencyError`` keeps working.
from fastmlp.errors import MissingDependencyError  # noqa: F401

#: Image formats ``savefig`` is asked for, by file suffix.
FORMATS = ("png", "pdf", "svg")


def require(module, purpose, extra, package):
    """Import ``module`` or raise a one-line ``MissingDependencyError`` saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(
            f"{purpose} needs {package}, which is not installed: pip install {package.lower()} "
            f"(or pip install 'fastmlp[{extra}]')") from None


def image_format(path):
    """The format to write from ``path``'s suffix; ``ValueError`` for others."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise ValueError(f"an image file must end in {', '.join('.' + f for f in FORMATS)}, got {str(path)!r}")
    return suffix


def _new_figure(size):
    require("matplotlib", "plotting", "plot", "matplotlib")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path):
    from fastmlp._files import atomic_write

    fmt = image_format(path)
    with atomic_write(path) as f:
        figure.savefig(f, format=fmt)
    return Path(path)


def plot_history(history, path, title=None):
    """Loss (left) and accuracies in % (right) per epoch from ``MLP.history_`` records."""
    if not history:
        raise ValueError("no epochs to plot: the history is empty")
    figure = _new_figure((9, 3.6))
    ax_loss, ax_acc = figure.subplots(1, 2)
    epochs = [r["epoch"] for r in history]
    ax_loss.plot(epochs, [r["loss"] for r in history], marker="o", ms=3, color="tab:red")
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="loss")
    for key, label in (("train_accuracy", "train"), ("val_accuracy", "validation"), ("test_accuracy", "test")):
        points = [(r["epoch"], 100 * r[key]) for r in history if r.get(key) is not None]
        if points:
            ax_acc.plot(*zip(*points), marker="o", ms=3, label=label)
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    ax_acc.legend(loc="lower right")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    if title:
        figure.suptitle(title)
    return _save(figure, path)


def plot_confusion(cm, path, title=None):
    """The confusion matrix as a heat map with counts; rows true, columns predicted."""
    cm = np.asarray(cm)
    n = len(cm)
    figure = _new_figure((6.4, 5.6))
    ax = figure.subplots()
    # Log-like colour scale so the off-diagonal mistakes are visible next to
    # the large diagonal.
    image = ax.imshow(np.log1p(cm), cmap="Blues")
    threshold = np.log1p(cm).max() / 2
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=7,
                    color="white" if np.log1p(cm[i, j]) > threshold else "black")
    ax.set(xticks=range(n), yticks=range(n), xlabel="predicted class", ylabel="true class",
           title=title or "confusion matrix")
    figure.colorbar(image, ax=ax, label="log(1 + count)")
    return _save(figure, path)


def plot_weights(model, path, max_neurons=100, title=None):
    """First-layer weights as 28x28 images in a grid, one per hidden neuron.

    Each neuron's image is scaled symmetrically around 0 (red positive, blue
    negative), so what it responds to and what suppresses it are visible.
    """
    W = np.asarray(model.weights_[0], dtype=np.float64)  # (n_hidden, 784)
    side = int(round(np.sqrt(W.shape[1])))
    if side * side != W.shape[1]:
        raise ValueError(f"the first layer has {W.shape[1]} inputs, not a square image")
    W = W[:max_neurons]
    n = len(W)
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    figure = _new_figure((1.1 * cols + 0.4, 1.1 * rows + 0.6))
    axes = np.atleast_1d(figure.subplots(rows, cols, squeeze=False)).ravel()
    for ax in axes:
        ax.set_axis_off()
    for k, (ax, w) in enumerate(zip(axes, W)):
        limit = np.abs(w).max() or 1.0
        ax.imshow(w.reshape(side, side), cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(str(k), fontsize=6, pad=1)
    figure.suptitle(title or f"first-layer weights ({n} of {model.sizes[1]} neurons)")
    return _save(figure, path)
