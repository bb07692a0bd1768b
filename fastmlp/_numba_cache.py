"""Where Numba keeps its on-disk cache of compiled kernels.

Numba caches next to the source file (``fastmlp/__pycache__``) by default.  When
the package is installed somewhere read-only (a system site-packages, a
container image) that fails, so before any kernel is compiled we point
``NUMBA_CACHE_DIR`` at a per-user folder: ``$XDG_CACHE_HOME/fastmlp/numba`` or
``~/.cache/fastmlp/numba``.  A user's own ``NUMBA_CACHE_DIR`` always wins.  If no
location is writable the kernels are compiled without a cache (``CACHE_OK`` is
False), which costs compile time on every start but nothing else.

This module must be imported before ``numba`` compiles anything; ``kernels.py``
imports it first.
"""

import os
import tempfile
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def _writable(folder):
    """True if ``folder`` exists (or can be created) and a file can be written in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
        return True
    except OSError:
        return False


def user_cache_dir():
    """``$XDG_CACHE_HOME/fastmlp/numba``, or ``~/.cache/fastmlp/numba``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fastmlp" / "numba"


def configure():
    """Choose the cache location; return True if kernels may use ``cache=True``."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return True  # the user's choice; Numba reports it if it is unusable
    if _writable(_PACKAGE_DIR / "__pycache__"):
        return True  # Numba's default, next to the source
    folder = user_cache_dir()
    if not _writable(folder):
        return False
    os.environ["NUMBA_CACHE_DIR"] = str(folder)
    # Numba reads the variable when it is first imported; if it already was,
    # set its config too (the cache locator reads it at compile time).
    import numba.core.config

    numba.core.config.CACHE_DIR = str(folder)
    return True


#: Whether a writable cache location exists (decided once, at import).
CACHE_OK = configure()
