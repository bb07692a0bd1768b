"""Download the IDX files of MNIST and Fashion-MNIST and verify them.

From :data:`MIRRORS` (or ``mirrors=`` / ``$FASTMLP_MIRRORS``, comma separated),
each file into a temporary file in the target folder that is verified against
:data:`SHA256` and then renamed into place, so a reader never sees a partial
file. A lock file in the folder makes concurrent processes download each file
once. Progress goes to stderr. When no mirror gives a verified file, the
:class:`~fastmlp.errors.DataUnavailableError` lists each URL with the reason
and says where to put the files by hand.

The checksums are of the decompressed content (:func:`_content_sha256`), so a
copy gzipped at another level, or not gzipped at all, still verifies.

References: Y. LeCun, C. Cortes, C. J. C. Burges, "The MNIST database";
H. Xiao, K. Rasul, R. Vollgraf, "Fashion-MNIST" (arXiv:1708.07747).
"""

import contextlib
import hashlib
import http.client
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path

from fastmlp.errors import DataError, DataUnavailableError, shown

from .registry import MIRRORS, SHA256, cache_dir, check_dataset
from .formats import _CHUNK, IDX_FILES, _idx_path, _open_maybe_gzip

try:  # POSIX advisory locks; Windows has no fcntl, see _exclusive_lock
    import fcntl as _fcntl
except ImportError:  # pragma: no cover - exercised by monkeypatching in tests
    _fcntl = None

# --------------------------------------------------------------------------- #
# Constants
# --------------------------------------------------------------------------- #

DEFAULT_TIMEOUT = 30.0  # seconds per connection attempt / socket read

# Refuse to download or inflate more than this (the largest real file, train
# images, is 9.9 MB compressed and 47 MB raw).
_MAX_DOWNLOAD_BYTES = 256 << 20
_LOCK_STALE_SECONDS = 600.0  # fallback lock only: older lock files are abandoned


# --------------------------------------------------------------------------- #
# Checksums
# --------------------------------------------------------------------------- #


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
                    raise DataError(f"{shown(path)}: expected at most {limit} bytes of content, found more")
                hasher.update(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{shown(path)}: expected a readable gzip or raw file, "
                        f"found {shown(exc or type(exc).__name__)}") from None
    return hasher.hexdigest()


def _file_is_valid(path, expected_sha256):
    try:
        return _content_sha256(path) == expected_sha256
    except DataError:
        return False


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


def _where_to_put(dataset, folder):
    names = ", ".join(n + ".gz" for n in IDX_FILES)
    return (f"To use {dataset} offline, put the four files {names} (gzip or uncompressed) in {shown(folder)}, "
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
            tried.append(f"{shown(url)} ({shown(exc)})")
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
        Target folder (created if needed); default :func:`fastmlp.datasets.mnist.cache_dir`.
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
    check_dataset(dataset)
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
        raise DataUnavailableError(f"cannot write the {dataset} files to {shown(dest)} ({shown(exc.strerror or exc)}). "
                                   f"{_where_to_put(dataset, dest)}") from None
    return dest
