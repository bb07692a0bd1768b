"""Which data sets exist, where their files are looked for, and :func:`load_mnist`.

The role of Nielsen's ``mnist_loader.py``: a missing data set is downloaded
and verified, or explained in one paragraph
(:class:`~fastmlp.errors.DataUnavailableError`); a malformed file is a one-line
:class:`~fastmlp.errors.DataError` naming the file. Reading and validating the
file formats is :mod:`fastmlp.datasets.formats`'s job, fetching files
:mod:`fastmlp.datasets.download`'s; their public names are re-exported here, so
``from fastmlp.datasets.mnist import read_idx, download, SHA256, ...`` keeps working.

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

Formats tried in each folder, in this order
    1. IDX: the four files of :data:`IDX_FILES`, each raw or gzip.
    2. CSV as in the original project: ``mnist_train.csv`` / ``mnist_test.csv``.
    3. Keras ``mnist.npz``.
    Fashion-MNIST uses the same IDX names, ``fashion-mnist_train.csv`` /
    ``fashion-mnist_test.csv`` and ``fashion-mnist.npz``.

Trust
    IDX files in the cache are checked against :data:`SHA256` (of the
    decompressed bytes) on every load: hashing 55 MB takes about 30 ms, far less
    than decompressing it, so no "verified" stamp is kept. Files in ``data_dir``
    or ``$FASTMLP_DATA`` only get the structural checks, so users can bring
    their own MNIST-format data.

References: Y. LeCun, C. Cortes, C. J. C. Burges, "The MNIST database";
H. Xiao, K. Rasul, R. Vollgraf, "Fashion-MNIST" (arXiv:1708.07747).
"""

import contextlib
import hashlib
import os
import sys
from pathlib import Path

from .download import DEFAULT_TIMEOUT, _content_sha256, _where_to_put, download
from fastmlp.errors import DataError, DataUnavailableError, shown

from .formats import IDX_FILES, Dataset, _check_pair, _idx_path, _load_idx_set, _read_idx_member, read_csv, read_npz

# Re-exported: these public names lived here before the formats and the
# download had modules of their own; ``from fastmlp.datasets.mnist import X`` still works.
from .registry import CSV_FILES, DATASETS, MIRRORS, NPZ_FILES, SHA256, cache_dir, check_dataset  # noqa: E402,F401
from .formats import (IDX_DTYPES, IMAGE_SHAPE, N_CLASSES, N_PIXELS, NPZ_KEYS, read_idx,  # noqa: E402,F401
                      read_idx_images, read_idx_labels)

# --------------------------------------------------------------------------- #
# The data sets
# --------------------------------------------------------------------------- #

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
        raise DataError(f"{shown(folder)}: expected all four IDX files, found {4 - len(missing)} "
                        f"(missing {', '.join(missing)}; add them or remove the others)")
    return None


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
        raise DataError(f"{', '.join(map(shown, corrupt))}: expected the published {dataset} "
                        f"{'file' if len(corrupt) == 1 else 'files'} (SHA-256 of the content), found a corrupt copy; "
                        f"delete {'it' if len(corrupt) == 1 else 'them'} and load again with download enabled, "
                        "or replace with a good copy")
    if any(a is None for a in arrays):
        if not download_ok:
            return None  # partial cache: the caller reports what is missing and where
        for p in corrupt:
            print(f"note: {shown(p)} is corrupt (checksum mismatch); removing it and downloading it again",
                  file=sys.stderr)
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
    check_dataset(dataset)
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        if not root.is_dir():
            raise DataError(f"data folder {shown(root)} does not exist: expected a folder holding the {dataset} files")
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
            raise DataError(f"FASTMLP_DATA={shown(env)}: expected a folder holding the {dataset} files, "
                            "found no such folder")
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
            f"{dataset} not found (looked in {', '.join(map(shown, searched))}) and download is disabled. "
            f"{_where_to_put(dataset, folder)}")
    download(dataset, folder, mirrors=mirrors, timeout=timeout, progress=progress)
    return _load_idx_set([_idx_path(folder, n) for n in IDX_FILES])
