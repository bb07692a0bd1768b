"""Read and validate the data file formats: IDX (raw or gzip), CSV and Keras npz.

Every reader keeps one promise: a malformed file is a one-line
:class:`~fastmlp.errors.DataError` naming the file and what was expected
versus found, never a traceback and never a huge allocation.  Names and
values read from the user's files (paths, npz member names, dtypes) are
quoted with :func:`~fastmlp.errors.shown`, escaped when they would not print
on one line. Declared sizes
(IDX headers, gzip streams, npz members) are compared with what the file can
hold before anything is allocated.

Result
    Images ``uint8 (n, 784)`` C-contiguous, labels ``uint8 (n,)`` in 0-9,
    gathered in a :class:`Dataset` of four arrays. Pixels stay ``uint8``;
    scaling to floats is the model's job, so no float copy lives here.

Formats
    1. IDX (LeCun's format): ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
       ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each raw or gzip
       (with or without ``.gz``; gzip is recognised by its magic bytes 1f 8b).
    2. CSV as in the original project (Kaggle "mnist-in-csv"): one header row,
       the label in the first column and 784 pixel columns 0-255.
    3. Keras ``mnist.npz`` with ``x_train, y_train, x_test, y_test``.

Which files of which data set are looked for where is :mod:`fastmlp.datasets.mnist`'s
job; fetching them is :mod:`fastmlp.datasets.download`'s.

References: Y. LeCun, C. Cortes, C. J. C. Burges, "The MNIST database"
(IDX format description).
"""

import gzip
import os
import struct
import zipfile
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from fastmlp.errors import DataError, shown

# --------------------------------------------------------------------------- #
# Constants
# --------------------------------------------------------------------------- #

#: The four IDX files, in Dataset order (both data sets use the same names).
IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")

IMAGE_SHAPE = (28, 28)
N_PIXELS = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]
N_CLASSES = 10

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
    """The one-line error every reader raises: file (quoted with ``shown``),
    expected, found."""
    return DataError(f"{shown(path)}: expected {expected}, found {found}")


def _plural(n, word):
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


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
        raise DataError(f"{shown(path)}: cannot open ({shown(exc.strerror or exc)})") from None
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
            raise _fail(path, "a valid gzip stream", f"a corrupt one ({shown(exc or type(exc).__name__)})") from None
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
        raise DataError(f"{shown(x_name)} has {_plural(len(X), 'image')} but {shown(y_name)} has "
                        f"{_plural(len(y), 'label')}: expected the same count")
    if len(X) == 0:
        raise DataError(f"{shown(x_name)}: expected at least one example, found none")


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
            return (f"{shown(path)}: line {number}: expected {width} comma-separated values "
                    f"(label + {N_PIXELS} pixels), found {len(cells)}")
        for column, cell in enumerate(cells, start=1):
            if not _is_int(cell):
                return (f"{shown(path)}: line {number}, column {column}: expected an integer, "
                        f"found {cell.strip()[:20]!r}")
            value = int(cell)
            limit = N_CLASSES - 1 if column == 1 else 255
            if not 0 <= value <= limit:
                what = "label" if column == 1 else "pixel"
                return f"{shown(path)}: line {number}, column {column}: expected a {what} 0-{limit}, found {value}"
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
        raise DataError(f"{shown(path)}: cannot read ({shown(exc.strerror or exc)})") from None
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
            problem = f"{shown(path)}: expected rows of label + {N_PIXELS} pixels after the header, found none"
        raise DataError(problem or f"{shown(path)}: expected rows of integers, found a file numpy cannot parse")
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
            raise _fail(path, f"{key} as an integer array", f"dtype {shown(dtype)}")
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
                found = ", ".join(map(shown, sorted(n.removesuffix(".npy") for n in names))) or "no arrays"
                raise _fail(path, f"arrays {', '.join(NPZ_KEYS)}", f"{found} (missing {', '.join(missing)})")
            arrays = {k: _npz_member(zf, k, path) for k in NPZ_KEYS}
    except DataError:
        raise
    except FileNotFoundError as exc:
        raise DataError(f"{shown(path)}: cannot read ({shown(exc.strerror)})") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, zlib.error, ValueError, KeyError,
            struct.error, NotImplementedError, RuntimeError, SyntaxError, TypeError, OverflowError,
            UnicodeDecodeError) as exc:
        # zipfile and np.lib.format report damage with a zoo of exception
        # types (bad CRC, unsupported compression, encrypted entry, broken
        # header literal...); all mean "this is not a usable npz".
        reason = shown(f"{type(exc).__name__}: {exc}")
        raise _fail(path, "a valid .npz (zip) archive", f"a corrupt one ({reason})") from None
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
# IDX file sets
# --------------------------------------------------------------------------- #


def _idx_path(folder, name):
    """The existing file for IDX ``name`` in ``folder`` (raw preferred: no inflating), or None."""
    for candidate in (folder / name, folder / (name + ".gz")):
        if candidate.is_file():
            return candidate
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
