"""Where Numba keeps its on-disk cache of compiled kernels.

Numba caches next to the source file (``fastmlp/__pycache__``) by default.  When
the package is installed somewhere read-only (a system site-packages, a
container image) that fails, so before any kernel is compiled we point
``NUMBA_CACHE_DIR`` at a per-user folder: ``$XDG_CACHE_HOME/fastmlp/numba`` or
``~/.cache/fastmlp/numba``.  A user's own ``NUMBA_CACHE_DIR`` always wins.  If no
location is writable the kernels are compiled without a cache (``CACHE_OK`` is
False), which costs compile time on every start but nothing else.

This module must be imported before ``numba`` compiles anything; ``jit.py``
imports it first.

A damaged cache entry (a truncated or garbage ``.nbi`` index or ``.nbc`` data
file, e.g. after a full disk or a killed process) must not stop a run: Numba
0.68 unpickles these files without catching errors, so the first call of a
kernel would raise ``UnpicklingError``/``EOFError``.  ``protect`` makes a kernel's
cache treat any failure to load (or save) an entry as a cache miss: that
kernel's own cache files are deleted, a one-line note goes to stderr (once per
process), and the kernel is compiled afresh (and cached again).
"""

import os
import sys
import tempfile
from pathlib import Path

from fastmlp._files import user_cache_root

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
    return user_cache_root() / "numba"


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


def cache_root():
    """The folder Numba caches this package's kernels under."""
    folder = os.environ.get("NUMBA_CACHE_DIR")
    return Path(folder) if folder else _PACKAGE_DIR / "__pycache__"


_noted = False


def _discard(cache, exc):
    """Delete the index and data files of one kernel's cache (never other files)."""
    global _noted
    cache_file = cache._cache_file
    folder = Path(cache_file._cache_path)
    base = cache_file._index_name[:-len(".nbi")]
    # with the entry go fastmlp.backends.numba.precompile's markers, so the next run compiles
    # in a child process again instead of in-process
    markers = cache_root().glob("fastmlp-compiled-*")
    for path in [folder / cache_file._index_name, *folder.glob(base + ".*.nbc"), *markers]:
        try:
            path.unlink()
        except OSError:
            pass
    if not _noted:
        _noted = True
        print(f"fastmlp: ignored a damaged Numba cache entry in {folder} "
              f"({type(exc).__name__}); the kernels are compiled again.", file=sys.stderr)


#: The fastmlp package folder (paths in stamps are relative to it).
_FASTMLP_DIR = _PACKAGE_DIR.parents[1]
#: Numba keys a cache entry on the kernel's own source file and bytecode only,
#: but a kernel also inlines the kernels of the other files of this folder and
#: freezes in globals from these modules (tile sizes, activation codes,
#: tolerances) and the fast-math setting; an entry compiled under other values
#: must not be loaded (with ``boundscheck`` off a stale tile size would write
#: out of bounds).  So the stamps of every file of the backend and of these
#: modules join every key.
_DEPENDENCIES = (*sorted(str(f.relative_to(_FASTMLP_DIR)) for f in _PACKAGE_DIR.glob("*.py")),
                 "functions.py", "config.py", "network.py")


def file_stamps(names):
    """``name:mtime:size`` of each of the fastmlp package's files ``names``
    (paths relative to the package folder), joined by ``|`` (what Numba itself
    compares to decide a cache entry is stale)."""
    stamps = []
    for name in names:
        try:
            st = (_FASTMLP_DIR / name).stat()
            stamps.append(f"{name}:{st.st_mtime_ns}:{st.st_size}")
        except OSError:
            stamps.append(f"{name}:missing")
    return "|".join(stamps)


DEPENDENCY_STAMP = os.environ.get("FASTMLP_FASTMATH", "1") + "|" + file_stamps(_DEPENDENCIES)

_safe_classes = {}


def _safe_class(base):
    """A subclass of Numba's cache class whose load/save failures are misses."""
    if base not in _safe_classes:
        class SafeCache(base):
            def _index_key(self, sig, codegen):
                return super()._index_key(sig, codegen) + (DEPENDENCY_STAMP,)

            def load_overload(self, sig, target_context):
                try:
                    return super().load_overload(sig, target_context)
                except Exception as exc:  # any unreadable entry: compile instead
                    _discard(self, exc)
                    return None

            def save_overload(self, sig, data):
                try:
                    super().save_overload(sig, data)
                except Exception as exc:  # e.g. a damaged index met while saving
                    _discard(self, exc)

        SafeCache.__name__ = SafeCache.__qualname__ = "Safe" + base.__name__
        _safe_classes[base] = SafeCache
    return _safe_classes[base]


def protect(dispatcher):
    """Make ``dispatcher``'s on-disk cache (if it has one) robust to damaged entries."""
    cache = getattr(dispatcher, "_cache", None)
    if cache is not None and hasattr(cache, "_cache_file"):
        cache.__class__ = _safe_class(type(cache))
    return dispatcher
