"""Images to classify with ``fastmlp predict``, read from the formats users have.

``read_images(path)`` returns ``Images(X, names, labels)``: ``X`` is
``(n, 784)``, uint8 pixels 0..255 or floats 0..1 (the two input conventions
of ``MLP.predict``); ``names`` label each image in the output, one line each
(the path quoted with :func:`~fastmlp.errors.shown`, so a name holding a newline
or a tab is escaped); ``labels`` are the true classes when the file carries
them (CSV), else ``None``.  Error messages quote paths the same way.

Accepted, by suffix:
  ``.png .jpg .jpeg .bmp .gif .tif .tiff .webp``  one image each, via Pillow (``fastmlp[png]``),
      converted to greyscale; it must be 28x28 unless ``resize`` is set.
  ``.npy``   ``(n, 784)``, ``(n, 28, 28)``, ``(784,)`` or ``(28, 28)``; uint8 or
      integers 0..255, or floats 0..1.
  ``.csv``   the original project's layout: header, then label + 784 pixels per row.
  anything else (``*-ubyte``, ``.idx``, ``.gz``): an IDX file of uint8 images ``(n, 28, 28)``.

MNIST digits are white on black; ``invert`` turns dark-on-light scans into that.
"""

from pathlib import Path
from typing import NamedTuple

import numpy as np

from fastmlp.errors import DataError, shown

SIDE = 28
N_PIXELS = SIDE * SIDE
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


class Images(NamedTuple):
    X: np.ndarray  # (n, 784), uint8 0..255 or float 0..1
    names: list  # one display name per row, escaped (``shown``)
    labels: object  # (n,) true classes, or None


def read_images(path, *, resize=False, invert=False):
    """Read ``path`` as described in the module docstring; ``DataError`` on bad input."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{shown(path)}: no such file" if not path.exists() else f"{shown(path)}: not a file")
    suffix = path.suffix.lower()
    labels = None
    if suffix in IMAGE_SUFFIXES:
        X = read_picture(path, resize=resize)
    elif suffix == ".npy":
        X = _read_npy(path)
    elif suffix == ".csv":
        from fastmlp.datasets.formats import read_csv

        X, labels = read_csv(path)
    else:
        X = _read_idx_images(path)
    if invert:
        X = 255 - X if X.dtype == np.uint8 else 1.0 - X
    if len(X) == 1 and labels is None:
        names = [shown(path)]
    else:
        names = [f"{shown(path)}[{i}]" for i in range(len(X))]
    return Images(np.ascontiguousarray(X), names, labels)


def read_picture(path, *, resize=False):
    """One picture file as a uint8 ``(1, 784)`` greyscale row."""
    from fastmlp.plot import require

    require("PIL", "reading image files", "png", "Pillow")
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            grey = image.convert("L")
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise DataError(f"{shown(path)}: cannot read the image ({shown(error)})") from None
    if grey.size != (SIDE, SIDE):
        if not resize:
            raise DataError(f"{shown(path)}: expected a {SIDE}x{SIDE} image, found {grey.size[0]}x{grey.size[1]} "
                            f"(add --resize to scale it)")
        grey = grey.resize((SIDE, SIDE), Image.Resampling.LANCZOS)
    return np.asarray(grey, dtype=np.uint8).reshape(1, N_PIXELS)


def _read_npy(path):
    try:
        X = np.load(path, allow_pickle=False)
    except ValueError as error:
        reason = "it holds pickled objects" if "pickle" in str(error).lower() else str(error)
        raise DataError(f"{shown(path)}: expected a .npy array of images, cannot load it ({shown(reason)})") from None
    except (OSError, EOFError) as error:
        raise DataError(f"{shown(path)}: cannot read ({shown(error)})") from None
    if not isinstance(X, np.ndarray):
        raise DataError(f"{shown(path)}: expected a single .npy array, found an archive")
    return as_images(X, str(path))


def _read_idx_images(path):
    from fastmlp.datasets.formats import read_idx

    X = read_idx(path)
    if X.dtype != np.uint8:
        raise DataError(f"{shown(path)}: expected uint8 images (IDX type 0x08), found {X.dtype}")
    return as_images(X, str(path))


def as_images(X, name):
    """Check an array of images and return it as ``(n, 784)``.

    Shapes ``(n, 784)``, ``(n, 28, 28)``, ``(784,)``, ``(28, 28)``; uint8, other
    integers within 0..255 (made uint8), or finite floats within 0..1.
    ``name`` (a path or a display name) is quoted with ``shown`` in errors.
    """
    name = shown(name)
    if X.dtype == bool or not (np.issubdtype(X.dtype, np.integer) or np.issubdtype(X.dtype, np.floating)):
        raise DataError(f"{name}: expected uint8 pixels 0..255 or floats 0..1, found dtype {shown(X.dtype)}")
    if X.shape in ((N_PIXELS,), (SIDE, SIDE)):
        X = X.reshape(1, N_PIXELS)
    elif X.ndim == 3 and X.shape[1:] == (SIDE, SIDE):
        X = X.reshape(len(X), N_PIXELS)
    elif not (X.ndim == 2 and X.shape[1] == N_PIXELS):
        raise DataError(f"{name}: expected images of shape (n, 784) or (n, 28, 28), found shape {X.shape}")
    if len(X) == 0:
        raise DataError(f"{name}: expected at least one image, found none")
    if np.issubdtype(X.dtype, np.integer):
        lo, hi = int(X.min()), int(X.max())
        if lo < 0 or hi > 255:
            raise DataError(f"{name}: expected integer pixels 0..255, found values from {lo} to {hi}")
        return X.astype(np.uint8, copy=False)
    if not np.isfinite(X).all():
        raise DataError(f"{name}: expected finite pixel values, found NaN or infinity")
    lo, hi = float(X.min()), float(X.max())
    if lo < 0 or hi > 1:
        hint = " (divide 0..255 pixels by 255, or store them as uint8)" if hi <= 255 and lo >= 0 else ""
        raise DataError(f"{name}: expected float pixels 0..1, found values from {lo:g} to {hi:g}{hint}")
    return X.astype(np.float64, copy=False)
