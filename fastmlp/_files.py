"""Files fastmlp writes: one way to replace a file atomically, one per-user
cache folder.

Every file fastmlp writes (model files, plots, history logs) goes through
:func:`atomic_write`, so an interrupted write leaves the previous file intact,
never half of a new one.  Downloaded data sets and compiled kernels live under
:func:`user_cache_root`.
"""

import contextlib
import os
import tempfile
from pathlib import Path


def user_cache_root():
    """``$XDG_CACHE_HOME/fastmlp``, or ``~/.cache/fastmlp``.

    A relative ``XDG_CACHE_HOME`` is ignored, as the XDG specification says.
    """
    base = os.environ.get("XDG_CACHE_HOME")
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".cache"
    return root / "fastmlp"


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Open a temporary file beside ``path``; on success it replaces ``path``.

    On any exception (including KeyboardInterrupt) the temporary file is removed
    and ``path`` is left as it was.  The file gets the permissions a plain
    ``open`` would give it (``mkstemp`` alone would make it private).
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
