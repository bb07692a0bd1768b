"""Find, download, verify and parse MNIST (and Fashion-MNIST).

The role of Nielsen's ``mnist_loader.py``, rebuilt around two promises: a
malformed file is a one-line :class:`~fastmlp.errors.DataError` naming the file
and what was expected versus found (never a traceback, never a huge allocation),
and a missing data set is downloaded and verified, or explained in one
paragraph (:class:`~fastmlp.errors.DataUnavailableError`).

Result
    :func:`load_mnist` returns a :class:`Dataset` of four arrays: images
    ``uint8 (n, 784)`` C-contiguous, labels ``uint8 (n,)`` in 0-9. Pixels stay
    ``uint8``; scaling to floats is the model's job, so no float copy lives here.

Search order (the first place that has the files wins)
    1. ``data_dir`` when given: only that folder (and its ``<dataset>``
       subfolder). A missing folder is an error; an empty one is where the
       download goes.
    2. ``$FASTMLP_DATA``: the folder's ``<dataset>`` subfolder, then the folder
       itself (CI points it at the MNIST folder directly).
    3. The user cache ``$XDG_CACHE_HOME/fastmlp/<dataset>``, by default
       ``~/.cache/fastmlp/<dataset>``; downloads go here.
    MNIST and Fashion-MNIST share their IDX file names, so a folder whose files
    are recognisably the *other* data set (by checksum) is skipped.

Download
    From :data:`MIRRORS` (or ``mirrors=`` / ``$FASTMLP_MIRRORS``, comma
    separated), into a temporary file that is verified and then renamed, under
    a lock file so concurrent processes download each file once.

Formats tried in each folder, in this order
    1. IDX (LeCun's format): ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
       ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each raw or gzip
       (with or without ``.gz``; gzip is recognised by its magic bytes 1f 8b).
    2. CSV as in the original project (Kaggle "mnist-in-csv"):
       ``mnist_train.csv`` / ``mnist_test.csv``, one header row, the label in the
       first column and 784 pixel columns 0-255.
    3. Keras ``mnist.npz`` with ``x_train, y_train, x_test, y_test``.
    Fashion-MNIST uses the same IDX names, ``fashion-mnist_train.csv`` /
    ``fashion-mnist_test.csv`` and ``fashion-mnist.npz``.

Trust
    IDX files in the cache are checked against :data:`SHA256` (of the
    decompressed bytes) on every load: hashing 55 MB takes about 30 ms, far less
    than decompressing it, so no "verified" stamp is kept. Files in ``data_dir``
    or ``$FASTMLP_DATA`` only get the structural checks, so users can bring
    their own MNIST-format data.

References: Y. LeCun, C. Cortes, C. J. C. Burges, "The MNIST database"
(IDX format description); H. Xiao, K. Rasul, R. Vollgraf, "Fashion-MNIST"
(arXiv:1708.07747).
"""

import contextlib
import gzip
import hashlib
import http.client
import os
import struct
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .errors import DataError, DataUnavailableError

try:  # POSIX advisory locks; Windows has no fcntl, see _exclusive_lock
    import fcntl as _fcntl
except ImportError:  # pragma: no cover - exercised by monkeypatching in tests
    _fcntl = None

# --------------------------------------------------------------------------- #
# Constants
# --------------------------------------------------------------------------- #

DATASETS = ("mnist", "fashion-mnist")

#: The four IDX files, in Dataset order (both data sets use the same names).
IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

#: Base URLs tried in order; each file is fetched as ``<base><name>.gz``.
MIRRORS = {
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ],
    "fashion-mnist": [
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ],
}

#: SHA-256 of the DECOMPRESSED files, so a copy gzipped at another level (or
#: not gzipped at all) still verifies.
SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}

CSV_FILES = {
    "mnist": ("mnist_train.csv", "mnist_test.csv"),
    "fashion-mnist": ("fashion-mnist_train.csv", "fashion-mnist_test.csv"),
}
NPZ_FILES = {"mnist": "mnist.npz", "fashion-mnist": "fashion-mnist.npz"}
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")

IMAGE_SHAPE = (28, 28)
N_PIXELS = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]
N_CLASSES = 10

DEFAULT_TIMEOUT = 30.0  # seconds per connection attempt / socket read

#: IDX type codes (LeCun's page); multi-byte types are big-endian on disk.
IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_MAX_NDIM = 16  # the real files have 1 or 3; more is certainly garbage

_GZIP_MAGIC = b"\x1f\x8b"
# Deflate cannot expand data by more than ~1032:1, so a gzip file declaring more
# than this many bytes per compressed byte is lying; reject it before reading.
_GZIP_MAX_RATIO = 1100
_CHUNK = 1 << 20
# Refuse to download or inflate more than this (the largest real file, train
# images, is 9.9 MB compressed and 47 MB raw).
_MAX_DOWNLOAD_BYTES = 256 << 20
_LOCK_STALE_SECONDS = 600.0  # fallback lock only: older lock files are abandoned


class Dataset(NamedTuple):
    """Train and test split: images ``uint8 (n, 784)``, labels ``uint8 (n,)``."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray


# --------------------------------------------------------------------------- #
# Small helpers
# --------------------------------------------------------------------------- #


def _fail(path, expected, found):
    """The one-line error every reader raises: file, expected, found."""
    return DataError(f"{path}: expected {expected}, found {found}")


def _plural(n, word):
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _check_dataset(dataset):
    if dataset not in DATASETS:
        raise DataError(f"unknown dataset {dataset!r}: expected one of {', '.join(map(repr, DATASETS))}")


def _read_exactly(stream, nbytes, path, what, hasher=None):
    """Read exactly ``nbytes`` from ``stream`` in chunks into a bytearray.

    Reading in chunks (instead of ``stream.read(nbytes)``, which preallocates
    ``nbytes``) keeps memory proportional to the data that really exists, so a
    header that lies about its size cannot make us allocate the lie. One extra
    byte is requested at the end to detect trailing garbage.
    """
    buf = bytearray()
    while len(buf) < nbytes:
        chunk = stream.read(min(_CHUNK, nbytes - len(buf)))
        if not chunk:
            break
        buf += chunk
    if len(buf) < nbytes:
        raise _fail(path, f"{nbytes} bytes of {what} as the header declares", f"only {len(buf)} (truncated file)")
    if stream.read(1):
        raise _fail(path, f"{nbytes} bytes of {what} as the header declares", "more data after them (trailing garbage)")
    if hasher is not None:
        hasher.update(buf)
    return buf


# --------------------------------------------------------------------------- #
# IDX
# --------------------------------------------------------------------------- #


def _parse_idx_header(read, path):
    """Parse magic and dimensions using ``read(n)``; return (header bytes, dtype, dims)."""
    magic = read(4)
    if len(magic) < 4:
        raise _fail(path, "an IDX file (4-byte magic 00 00 <type> <ndim>)", f"only {len(magic)} bytes")
    if magic[0] != 0 or magic[1] != 0 or magic[2] not in IDX_DTYPES:
        codes = "/".join(f"{c:02x}" for c in IDX_DTYPES)
        raise _fail(path, f"IDX magic 00 00 <type {codes}> <ndim>", f"{magic.hex(' ')}")
    ndim = magic[3]
    if not 1 <= ndim <= _IDX_MAX_NDIM:
        raise _fail(path, f"1 to {_IDX_MAX_NDIM} dimensions in the IDX header", f"{ndim}")
    raw_dims = read(4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise _fail(path, f"{ndim} dimension sizes in the IDX header", "a truncated header")
    dims = struct.unpack(f">{ndim}I", raw_dims)  # unsigned: a "negative" size is just huge
    return magic + raw_dims, IDX_DTYPES[magic[2]], dims


def _open_maybe_gzip(path):
    """Open ``path`` for binary reading; return (stream, is_gzip, underlying raw file).

    The gzip magic decides, not the file name, so ``foo.gz`` holding raw bytes
    and a gzip file without the suffix both read correctly.
    """
    f = open(path, "rb")
    is_gzip = f.read(2) == _GZIP_MAGIC
    f.seek(0)
    if is_gzip:
        return gzip.GzipFile(fileobj=f, mode="rb"), True, f
    return f, False, f


def _read_idx(path, check=None, hasher=None):
    """Read an IDX file; ``check(dtype, dims)`` may reject the header before the body is read."""
    path = Path(path)
    try:
        stream, is_gzip, raw = _open_maybe_gzip(path)
    except OSError as exc:
        raise DataError(f"{path}: cannot open ({exc.strerror or exc})") from None
    file_size = os.fstat(raw.fileno()).st_size
    with raw, stream:
        try:
            header, dtype, dims = _parse_idx_header(stream.read, path)
            if check is not None:
                check(dtype, dims)
            count = 1
            for d in dims:
                count *= d  # Python ints: no overflow, whatever the header says
            nbytes = count * dtype.itemsize
            # Compare the declared size with what the file can hold BEFORE any
            # allocation; for gzip the bound is the maximal deflate ratio.
            if not is_gzip and len(header) + nbytes != file_size:
                what = "truncated file" if len(header) + nbytes > file_size else "trailing garbage"
                raise _fail(path, f"{len(header) + nbytes} bytes for shape {dims} as the header declares",
                            f"{file_size} bytes ({what})")
            if is_gzip and nbytes > _GZIP_MAX_RATIO * file_size + _CHUNK:
                raise _fail(path, f"at most ~{_GZIP_MAX_RATIO * file_size} bytes inside a {file_size}-byte gzip file",
                            f"a header declaring {nbytes} bytes for shape {dims} (truncated or corrupt header)")
            if hasher is not None:
                hasher.update(header)
            body = _read_exactly(stream, nbytes, path, f"{dtype.name} data", hasher)
        except (OSError, EOFError, zlib.error) as exc:
            # gzip.BadGzipFile is an OSError; a cut-off stream raises EOFError.
            raise _fail(path, "a valid gzip stream", f"a corrupt one ({exc or type(exc).__name__})") from None
    try:
        data = np.frombuffer(body, dtype=dtype).reshape(dims)  # bytearray-backed: writable, no copy
    except ValueError:  # e.g. (0, 2**32-1, 2**32-1): no bytes, but a shape numpy cannot represent
        raise _fail(path, "dimensions numpy can represent", f"shape {dims}") from None
    if dtype.byteorder == ">":
        data = data.astype(dtype.newbyteorder("="))  # native order for fast arithmetic
    return data


def read_idx(path) -> np.ndarray:
    """Read any IDX file (raw or gzip) and return its array in the declared shape.

    Parameters
    ----------
    path : str or Path
        The file. Type codes 0x08 (uint8), 0x09 (int8), 0x0B (int16),
        0x0C (int32), 0x0D (float32) and 0x0E (float64) are read; multi-byte
        types are converted from big-endian to native order.

    Returns
    -------
    numpy.ndarray
        Writable, C-contiguous, shape as declared by the header.

    Raises
    ------
    DataError
        Wrong magic, a size that disagrees with the file (truncated / trailing
        bytes / huge declared dimensions) or a corrupt gzip stream.
    """
    return _read_idx(path)


def _idx_images(path, hasher=None):
    def check(dtype, dims):
        if dtype != np.uint8:
            raise _fail(path, "uint8 pixels (IDX type 0x08)", f"{dtype.name}")
        if len(dims) != 3 or tuple(dims[1:]) != IMAGE_SHAPE:
            raise _fail(path, "images of shape (n, 28, 28)", f"shape {tuple(dims)}")

    images = _read_idx(path, check, hasher)
    return images.reshape(len(images), N_PIXELS)


def _idx_labels(path, hasher=None):
    def check(dtype, dims):
        if dtype != np.uint8:
            raise _fail(path, "uint8 labels (IDX type 0x08)", f"{dtype.name}")
        if len(dims) != 1:
            raise _fail(path, "labels of shape (n,)", f"shape {tuple(dims)}")

    labels = _read_idx(path, check, hasher)
    _check_labels(labels, path)
    return labels


def read_idx_images(path) -> np.ndarray:
    """Read an IDX image file that must hold uint8 ``(n, 28, 28)``; return ``(n, 784)``."""
    return _idx_images(path)


def read_idx_labels(path) -> np.ndarray:
    """Read an IDX label file that must hold uint8 ``(n,)`` with values 0-9."""
    return _idx_labels(path)


def _check_labels(labels, path):
    bad = np.flatnonzero(labels >= N_CLASSES) if labels.dtype.kind == "u" else \
        np.flatnonzero((labels < 0) | (labels >= N_CLASSES))
    if bad.size:
        i = int(bad[0])
        raise _fail(path, f"labels 0-{N_CLASSES - 1}", f"{labels[i]} at index {i} ({bad.size} out of range)")


def _check_pair(X, y, x_name, y_name):
    """Image and label counts must agree, and a split must not be empty."""
    if len(X) != len(y):
        raise DataError(f"{x_name} has {_plural(len(X), 'image')} but {y_name} has {_plural(len(y), 'label')}: "
                        "expected the same count")
    if len(X) == 0:
        raise DataError(f"{x_name}: expected at least one example, found none")


# --------------------------------------------------------------------------- #
# CSV
# --------------------------------------------------------------------------- #


def _is_int(cell):
    s = cell.strip()
    return s.isascii() and (s.isdigit() or (s[:1] in "+-" and s[1:].isdigit()))


def _csv_first_problem(lines, path):
    """Describe the first bad line of a CSV body (slow, only used after a failure).

    ``lines`` are the file's text lines; the returned message counts lines from
    1 like an editor does, header included.
    """
    width = 1 + N_PIXELS
    header = _csv_has_header(lines)
    for number, line in enumerate(lines, start=1):
        if (number == 1 and header) or not line:
            continue  # header, or an empty line (np.loadtxt skips those too)
        cells = line.split(",")
        if len(cells) != width:
            return (f"{path}: line {number}: expected {width} comma-separated values "
                    f"(label + {N_PIXELS} pixels), found {len(cells)}")
        for column, cell in enumerate(cells, start=1):
            if not _is_int(cell):
                return f"{path}: line {number}, column {column}: expected an integer, found {cell.strip()[:20]!r}"
            value = int(cell)
            limit = N_CLASSES - 1 if column == 1 else 255
            if not 0 <= value <= limit:
                what = "label" if column == 1 else "pixel"
                return f"{path}: line {number}, column {column}: expected a {what} 0-{limit}, found {value}"
    return None


def _csv_has_header(lines):
    """True when the first line is a header: its first cell is not a number (Kaggle's says "label").

    Judging by the first cell only means a data row with a typo further along
    is still reported as bad data instead of being dropped as a "header".
    """
    return bool(lines) and not _is_int(lines[0].split(",", 1)[0])


def read_csv(path):
    """Read the original project's CSV: header, then ``label,p1,...,p784`` rows.

    A first line that starts with a number is taken as data (a headerless
    file) rather than silently dropped.

    Returns
    -------
    X : numpy.ndarray, uint8 (n, 784)
    y : numpy.ndarray, uint8 (n,)
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise _fail(path, "an ASCII text file of comma-separated integers",
                    f"byte 0x{raw[exc.start]:02x} on line {line}") from None
    del raw
    lines = text.splitlines()
    del text
    body = lines[1:] if _csv_has_header(lines) else lines
    values = None
    if any(line.strip() for line in body):
        try:
            # Fast path: numpy's C parser. Its errors count rows differently
            # (no header, blank lines skipped), so on any problem we rescan in
            # Python to name the exact line.
            values = np.loadtxt(body, delimiter=",", dtype=np.int16, comments=None, ndmin=2)
        except (ValueError, OverflowError):
            values = None
    if values is None or values.shape[1] != 1 + N_PIXELS or values.size and (
            values.min() < 0 or values[:, 1:].max() > 255 or values[:, 0].max() >= N_CLASSES):
        problem = _csv_first_problem(lines, path)
        if problem is None and not any(line.strip() for line in body):
            problem = f"{path}: expected rows of label + {N_PIXELS} pixels after the header, found none"
        raise DataError(problem or f"{path}: expected rows of integers, found a file numpy cannot parse")
    X = np.ascontiguousarray(values[:, 1:], dtype=np.uint8)
    y = values[:, 0].astype(np.uint8)
    return X, y


# --------------------------------------------------------------------------- #
# NPZ
# --------------------------------------------------------------------------- #


def _npz_member(zf, key, path):
    """Read ``key.npy`` from an open zip, checking the header before allocating."""
    name = key + ".npy"
    info = zf.getinfo(name)
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise _fail(path, f"{name} in .npy format 1.0-3.0", f"version {version}")
        if dtype.hasobject:
            raise _fail(path, f"{key} as a plain numeric array", "a pickled/object array (refused: unsafe)")
        if dtype.kind not in "iu" or dtype.fields is not None:
            raise _fail(path, f"{key} as an integer array", f"dtype {dtype}")
        if any(d < 0 for d in shape):
            raise _fail(path, f"{key} with non-negative dimensions", f"shape {shape}")
        count = 1
        for d in shape:
            count *= d
        nbytes = count * dtype.itemsize
        # The zip directory states the member's size; trust it only as far as
        # the compressed size allows, then compare before allocating.
        limit = info.file_size if info.compress_type == zipfile.ZIP_STORED else \
            min(info.file_size, _GZIP_MAX_RATIO * info.compress_size + _CHUNK)
        if nbytes > limit:
            raise _fail(path, f"{key} of shape {shape} to fit in its {info.compress_size}-byte zip entry",
                        "a header declaring more data (truncated or corrupt)")
        body = _read_exactly(f, nbytes, f"{path}[{key}]", f"{dtype} data")
    order = "F" if fortran else "C"
    array = np.frombuffer(body, dtype=dtype).reshape(shape, order=order)
    return np.ascontiguousarray(array)


def read_npz(path) -> Dataset:
    """Read a Keras-style ``mnist.npz`` (``x_train, y_train, x_test, y_test``).

    Images may be ``(n, 28, 28)`` or ``(n, 784)`` uint8; labels any integer
    type with values 0-9. Nothing is unpickled: object arrays are refused.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            missing = [k for k in NPZ_KEYS if k + ".npy" not in names]
            if missing:
                found = ", ".join(sorted(n.removesuffix(".npy") for n in names)) or "no arrays"
                raise _fail(path, f"arrays {', '.join(NPZ_KEYS)}", f"{found} (missing {', '.join(missing)})")
            arrays = {k: _npz_member(zf, k, path) for k in NPZ_KEYS}
    except DataError:
        raise
    except FileNotFoundError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, zlib.error, ValueError, KeyError,
            struct.error, NotImplementedError, RuntimeError, SyntaxError, TypeError, OverflowError,
            UnicodeDecodeError) as exc:
        # zipfile and np.lib.format report damage with a zoo of exception
        # types (bad CRC, unsupported compression, encrypted entry, broken
        # header literal...); all mean "this is not a usable npz".
        raise _fail(path, "a valid .npz (zip) archive", f"a corrupt one ({type(exc).__name__}: {exc})") from None
    result = []
    for split in ("train", "test"):
        X, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if X.dtype != np.uint8 or not (X.ndim == 3 and X.shape[1:] == IMAGE_SHAPE or
                                       X.ndim == 2 and X.shape[1] == N_PIXELS):
            raise _fail(path, f"x_{split} uint8 of shape (n, 28, 28) or (n, 784)", f"{X.dtype} {X.shape}")
        if y.ndim != 1:
            raise _fail(path, f"y_{split} of shape (n,)", f"shape {y.shape}")
        _check_labels(y, f"{path}[y_{split}]")
        _check_pair(X, y, f"{path}[x_{split}]", f"{path}[y_{split}]")
        result += [np.ascontiguousarray(X.reshape(len(X), N_PIXELS)), y.astype(np.uint8)]
    return Dataset(*result)


# --------------------------------------------------------------------------- #
# Finding the files
# --------------------------------------------------------------------------- #


def cache_dir(dataset="mnist") -> Path:
    """The per-user cache folder: ``$XDG_CACHE_HOME/fastmlp/<dataset>`` or ``~/.cache/...``."""
    _check_dataset(dataset)
    base = os.environ.get("XDG_CACHE_HOME")
    # The XDG spec says relative values are invalid and must be ignored.
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".cache"
    return root / "fastmlp" / dataset


def _idx_path(folder, name):
    """The existing file for IDX ``name`` in ``folder`` (raw preferred: no inflating), or None."""
    for candidate in (folder / name, folder / (name + ".gz")):
        if candidate.is_file():
            return candidate
    return None


def _find_format(folder, dataset):
    """Which format ``folder`` holds for ``dataset``: ("idx", paths) / ("csv", paths) / ("npz", path) / None.

    A partial IDX set (some of the four files) is an error unless a complete
    CSV or npz set is also there, since it usually means an interrupted copy.
    """
    idx = [_idx_path(folder, name) for name in IDX_FILES]
    if all(idx):
        return "idx", idx
    csv = [folder / name for name in CSV_FILES[dataset]]
    if all(p.is_file() for p in csv):
        return "csv", csv
    npz = folder / NPZ_FILES[dataset]
    if npz.is_file():
        return "npz", npz
    if any(idx):
        missing = [name for name, p in zip(IDX_FILES, idx) if p is None]
        raise DataError(f"{folder}: expected all four IDX files, found {4 - len(missing)} "
                        f"(missing {', '.join(missing)}; add them or remove the others)")
    return None


def _load_idx_set(paths):
    """Load the four IDX files with the structural checks; return a Dataset."""
    arrays = [_read_idx_member(name, path) for name, path in zip(IDX_FILES, paths)]
    _check_pair(arrays[0], arrays[1], paths[0], paths[1])
    _check_pair(arrays[2], arrays[3], paths[2], paths[3])
    return Dataset(*arrays)


def _read_idx_member(name, path, hasher=None):
    """Read one of the four files with the image or label checks its name calls for."""
    reader = _idx_images if "images" in name else _idx_labels
    return reader(path, hasher)


def _load_folder(folder, dataset):
    """Load ``dataset`` from ``folder`` with structural checks only; None when no format is there."""
    found = _find_format(folder, dataset)
    if found is None:
        return None
    kind, paths = found
    if kind == "idx":
        return _load_idx_set(paths)
    if kind == "csv":
        X_train, y_train = read_csv(paths[0])
        X_test, y_test = read_csv(paths[1])
        return Dataset(X_train, y_train, X_test, y_test)
    return read_npz(paths)


def _holds_other_dataset(folder, dataset):
    """True when ``folder``'s IDX files are a known *different* data set.

    MNIST and Fashion-MNIST share file names, so ``FASTMLP_DATA`` pointing at an
    MNIST folder must not be served when Fashion-MNIST is asked for. The small
    label file identifies the set cheaply.
    """
    path = _idx_path(folder, "t10k-labels-idx1-ubyte")
    if path is None:
        return False
    try:
        digest = _content_sha256(path, limit=1 << 20)
    except DataError:
        return False
    return any(digest == SHA256[other]["t10k-labels-idx1-ubyte"] for other in DATASETS if other != dataset)


def _content_sha256(path, limit=_MAX_DOWNLOAD_BYTES):
    """SHA-256 of the file's content, inflated if gzip; DataError if corrupt or over ``limit`` bytes."""
    hasher = hashlib.sha256()
    total = 0
    try:
        stream, _, raw = _open_maybe_gzip(path)
        with raw, stream:
            while chunk := stream.read(_CHUNK):
                total += len(chunk)
                if total > limit:
                    raise DataError(f"{path}: expected at most {limit} bytes of content, found more")
                hasher.update(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: expected a readable gzip or raw file, found {exc or type(exc).__name__}") from None
    return hasher.hexdigest()


def _explicit_folders(root, dataset):
    """Folders to look in for a user-named root: its ``<dataset>`` subfolder first, then itself."""
    return [root / dataset, root]


def _search_root(root, dataset):
    """Load ``dataset`` from a user-named root (no checksums: users may bring their own data); None if absent."""
    for folder in _explicit_folders(root, dataset):
        if folder.is_dir() and not _holds_other_dataset(folder, dataset):
            data = _load_folder(folder, dataset)
            if data is not None:
                return data
    return None


# --------------------------------------------------------------------------- #
# Download
# --------------------------------------------------------------------------- #


def _mirrors_for(dataset, mirrors):
    """Mirror list: the argument, else ``$FASTMLP_MIRRORS`` (comma separated), else MIRRORS."""
    if mirrors is None:
        env = os.environ.get("FASTMLP_MIRRORS", "").strip()
        mirrors = [m.strip() for m in env.split(",") if m.strip()] if env else MIRRORS[dataset]
    return [m if m.endswith("/") else m + "/" for m in mirrors]


@contextlib.contextmanager
def _exclusive_lock(folder):
    """Hold ``<folder>/.lock`` so only one process downloads into ``folder`` at a time.

    ``fcntl.flock`` is released by the kernel if the holder dies, so nothing
    can go stale; the file itself is left in place (deleting a flock file
    while another process waits on it would let a third one lock a new file).
    Without fcntl (Windows) the lock is an exclusively created
    ``.lock.pid`` file, polled, and considered abandoned after
    ``_LOCK_STALE_SECONDS``.
    """
    if _fcntl is not None:
        with open(folder / ".lock", "a+b") as f:
            _fcntl.flock(f.fileno(), _fcntl.LOCK_EX)
            try:
                yield
            finally:
                _fcntl.flock(f.fileno(), _fcntl.LOCK_UN)
        return
    lock = folder / ".lock.pid"
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            try:
                if time.time() - lock.stat().st_mtime > _LOCK_STALE_SECONDS:
                    lock.unlink()
                    continue
            except FileNotFoundError:
                continue
            time.sleep(0.05)
    try:
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()


def _describe_failure(exc, timeout):
    """A few words on why a URL failed, for the DataUnavailableError paragraph."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        exc = exc.reason if isinstance(exc.reason, BaseException) else exc
        if isinstance(exc, str):
            return exc
    if isinstance(exc, TimeoutError):
        return f"timed out after {timeout:g} s"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


class _DownloadFailed(Exception):
    """One URL did not give a verified file; the message says why."""


def _fetch(url, dest, expected_sha256, timeout, progress):
    """Download ``url`` to ``dest`` atomically, verified by the decompressed SHA-256.

    The data go to a temporary file in the same folder and are renamed into
    place only after verification, so a reader never sees a partial file; the
    temporary file is removed on any failure, Ctrl-C included.
    """
    tmp = tempfile.NamedTemporaryFile(dir=dest.parent, prefix=".download-", suffix=".part", delete=False)
    try:
        with tmp:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    _copy_with_progress(response, tmp, dest.name, progress)
            except _DownloadFailed:
                raise
            except (OSError, http.client.HTTPException, ValueError) as exc:
                # urllib wraps most failures in URLError (an OSError); timeouts,
                # resets mid-body and bad URLs arrive as other types.
                if isinstance(exc, urllib.error.HTTPError):
                    exc.close()  # it holds the open error response
                raise _DownloadFailed(_describe_failure(exc, timeout)) from None
        try:
            digest = _content_sha256(tmp.name)
        except DataError:
            raise _DownloadFailed("not a valid gzip file, or too large") from None
        if digest != expected_sha256:
            raise _DownloadFailed(f"checksum mismatch (sha256 of content {digest[:12]}..., "
                                  f"expected {expected_sha256[:12]}...)")
        os.replace(tmp.name, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp.name)
        raise


def _copy_with_progress(response, out, label, progress):
    """Stream ``response`` into ``out``, printing bytes / percent to stderr."""
    length = response.headers.get("Content-Length")
    total = int(length) if length and length.isdigit() else None
    if total is not None and total > _MAX_DOWNLOAD_BYTES:
        raise _DownloadFailed(f"{total} bytes is more than the {_MAX_DOWNLOAD_BYTES}-byte limit")
    done, last_print = 0, 0.0
    while chunk := response.read(1 << 16):
        out.write(chunk)
        done += len(chunk)
        if done > _MAX_DOWNLOAD_BYTES:
            raise _DownloadFailed(f"more than the {_MAX_DOWNLOAD_BYTES}-byte limit")
        now = time.monotonic()
        if progress and now - last_print > 0.1:  # throttle: stderr writes are not free
            last_print = now
            _print_progress(label, done, total, end="")
    if total is not None and done != total:
        raise _DownloadFailed(f"connection closed after {done} of {total} bytes")
    if progress:
        _print_progress(label, done, total, end="\n")


def _print_progress(label, done, total, end):
    if total:
        text = f"\rdownloading {label}: {done / 1e6:.1f} / {total / 1e6:.1f} MB ({100 * done / total:3.0f}%)"
    else:
        text = f"\rdownloading {label}: {done / 1e6:.1f} MB"
    print(text, end=end, file=sys.stderr, flush=True)


def _file_is_valid(path, expected_sha256):
    try:
        return _content_sha256(path) == expected_sha256
    except DataError:
        return False


def _where_to_put(dataset, folder):
    names = ", ".join(n + ".gz" for n in IDX_FILES)
    return (f"To use {dataset} offline, put the four files {names} (gzip or uncompressed) in {folder}, "
            f"or set FASTMLP_DATA (or --data-dir) to a folder that holds them.")


def _download_file(dataset, name, dest, urls, timeout, progress):
    """Make ``dest/<name>.gz`` a verified copy, trying each mirror in turn."""
    expected = SHA256[dataset][name]
    # Checked again under the lock: another process may have finished this
    # file while we waited for it.
    existing = _idx_path(dest, name)
    if existing is not None and _file_is_valid(existing, expected):
        return
    target = dest / (name + ".gz")
    tried = []
    for base in urls:
        url = base + name + ".gz"
        try:
            _fetch(url, target, expected, timeout, progress)
            break
        except _DownloadFailed as exc:
            tried.append(f"{url} ({exc})")
    else:
        raise DataUnavailableError(f"Could not download {dataset}: tried {'; '.join(tried) or 'no mirrors'}. "
                                   f"{_where_to_put(dataset, dest)}")
    if existing is not None and existing != target:
        existing.unlink()  # a bad uncompressed copy would shadow the good .gz


def download(dataset="mnist", dest=None, *, mirrors=None, timeout=DEFAULT_TIMEOUT, progress=True) -> Path:
    """Download the four IDX ``.gz`` files of ``dataset`` into ``dest`` and verify them.

    Parameters
    ----------
    dataset : {"mnist", "fashion-mnist"}
    dest : path, optional
        Target folder (created if needed); default :func:`cache_dir`.
    mirrors : list of str, optional
        Base URLs tried in order; default ``$FASTMLP_MIRRORS`` (comma
        separated), else :data:`MIRRORS`.
    timeout : float
        Seconds allowed for connecting and for each read.
    progress : bool
        Print bytes / percent per file to stderr.

    Returns
    -------
    Path
        ``dest``. Files already there and matching :data:`SHA256` are kept.

    Raises
    ------
    DataUnavailableError
        When a file cannot be fetched and verified from any mirror; the message
        lists each URL with the reason and where to put the files by hand.
    """
    _check_dataset(dataset)
    dest = Path(dest) if dest is not None else cache_dir(dataset)
    urls = _mirrors_for(dataset, mirrors)
    try:
        dest.mkdir(parents=True, exist_ok=True)
        with _exclusive_lock(dest):
            for name in IDX_FILES:
                _download_file(dataset, name, dest, urls, timeout, progress)
    except OSError as exc:
        # Network errors were turned into reasons in _fetch; what is left is
        # the local folder (read-only, disk full while renaming, ...).
        raise DataUnavailableError(f"cannot write the {dataset} files to {dest} ({exc.strerror or exc}). "
                                   f"{_where_to_put(dataset, dest)}") from None
    return dest


# --------------------------------------------------------------------------- #
# The public loader
# --------------------------------------------------------------------------- #


def _read_verified(name, path, dataset):
    """Read a cached IDX file and check its SHA-256; None when it is corrupt in any way."""
    hasher = hashlib.sha256()
    try:
        array = _read_idx_member(name, path, hasher)
    except DataError:
        return None
    return array if hasher.hexdigest() == SHA256[dataset][name] else None


def _load_cache(folder, dataset, download_ok, mirrors, timeout, progress):
    """Load ``dataset`` from the cache folder, verifying each IDX file's SHA-256.

    Missing or corrupt files are (re-)downloaded when allowed. Returns None when
    the cache holds nothing usable and downloading is off, so the caller can
    explain where the files should go.
    """
    if not folder.is_dir():
        return None
    paths = [_idx_path(folder, name) for name in IDX_FILES]
    if not any(paths):
        return _load_folder(folder, dataset)  # a CSV or npz the user put there, or None
    arrays = [None if p is None else _read_verified(n, p, dataset) for n, p in zip(IDX_FILES, paths)]
    corrupt = [p for p, a in zip(paths, arrays) if p is not None and a is None]
    if corrupt and not download_ok:
        raise DataError(f"{', '.join(map(str, corrupt))}: expected the published {dataset} "
                        f"{'file' if len(corrupt) == 1 else 'files'} (SHA-256 of the content), found a corrupt copy; "
                        f"delete {'it' if len(corrupt) == 1 else 'them'} and load again with download enabled, "
                        "or replace with a good copy")
    if any(a is None for a in arrays):
        if not download_ok:
            return None  # partial cache: the caller reports what is missing and where
        for p in corrupt:
            print(f"note: {p} is corrupt (checksum mismatch); removing it and downloading it again", file=sys.stderr)
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        download(dataset, folder, mirrors=mirrors, timeout=timeout, progress=progress)
        # download() verified the new files; read them with the structural checks.
        arrays = [a if a is not None else _read_idx_member(n, _idx_path(folder, n))
                  for n, a in zip(IDX_FILES, arrays)]
    _check_pair(arrays[0], arrays[1], paths[0] or folder, paths[1] or folder)
    _check_pair(arrays[2], arrays[3], paths[2] or folder, paths[3] or folder)
    return Dataset(*arrays)


def load_mnist(data_dir=None, *, dataset="mnist", download=True, progress=True, mirrors=None,
               timeout=DEFAULT_TIMEOUT) -> Dataset:
    """Load MNIST or Fashion-MNIST, downloading it into the cache if needed.

    Parameters
    ----------
    data_dir : path, optional
        Folder holding the data (or a ``<dataset>`` subfolder); when given, no
        other place is searched and a download goes there.
    dataset : {"mnist", "fashion-mnist"}
    download : bool
        Allow downloading missing or corrupt cached files.
    progress : bool
        Print download progress to stderr.
    mirrors : list of str, optional
        Base URLs to download from (default ``$FASTMLP_MIRRORS``, else :data:`MIRRORS`).
    timeout : float
        Network timeout in seconds.

    Returns
    -------
    Dataset
        ``X_train (60000, 784)``, ``y_train (60000,)``, ``X_test (10000, 784)``,
        ``y_test (10000,)`` for the real data sets; all uint8.

    Raises
    ------
    DataError
        A file is malformed (message names it), or ``data_dir`` does not exist.
    DataUnavailableError
        Nothing found and downloading is disabled or failed.
    """
    # Note: the ``download`` flag shadows the function of that name in here;
    # the helpers below receive it as ``download_ok``.
    _check_dataset(dataset)
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        if not root.is_dir():
            raise DataError(f"data folder {root} does not exist: expected a folder holding the {dataset} files")
        data = _search_root(root, dataset)
        if data is not None:
            return data
        # Download next to the user's files, unless the folder holds the
        # other data set under the same IDX names: then into a subfolder.
        target = root / dataset if any(_idx_path(root, n) for n in IDX_FILES) else root
        searched = _explicit_folders(root, dataset)
        return _download_and_load(target, dataset, download, searched, mirrors, timeout, progress)

    searched = []
    env = os.environ.get("FASTMLP_DATA")
    if env:
        root = Path(env).expanduser()
        if not root.is_dir():
            raise DataError(f"FASTMLP_DATA={env}: expected a folder holding the {dataset} files, found no such folder")
        data = _search_root(root, dataset)
        if data is not None:
            return data
        searched += _explicit_folders(root, dataset)

    cache = cache_dir(dataset)
    data = _load_cache(cache, dataset, download, mirrors, timeout, progress)
    if data is not None:
        return data
    searched.append(cache)
    return _download_and_load(cache, dataset, download, searched, mirrors, timeout, progress)


def _download_and_load(folder, dataset, download_ok, searched, mirrors, timeout, progress):
    if not download_ok:
        raise DataUnavailableError(
            f"{dataset} not found (looked in {', '.join(map(str, searched))}) and download is disabled. "
            f"{_where_to_put(dataset, folder)}")
    download(dataset, folder, mirrors=mirrors, timeout=timeout, progress=progress)
    return _load_idx_set([_idx_path(folder, n) for n in IDX_FILES])
