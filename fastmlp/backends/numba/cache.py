"""Where this backend's compiled code is kept, and when it is stale.

Every compiled function of this backend is an entry kernel or a driver
(``jit``), cached by Numba one by one in ``<root>/fastmlp_kernels_<stamp>``:
Numba keeps a function's cache beside its source file and checks only that
file, so each is compiled from a copy of its source file in that folder
(``kernel_source``).  ``<stamp>`` is a digest of the Numba version, the
fast-math setting, the CPU the code is compiled for (``isa.HOST``: name and
features, which also decide the kernels' tile shapes) and the text of every
source file the compiled code is made from (``_DEPENDENCIES``: every file of
the backend but the three that only plan, compile and load, ``_PLUMBING``):
the code inlines templates of other files, and a stale entry must never be
loaded (with bounds checks off, a stale tile size would write out of bounds).
With the CPU in the name, a cache folder shared by machines of different CPUs
(a home directory on a network drive) or a run with ``NUMBA_CPU_NAME`` set
keeps one set of entries per CPU.

``<root>`` is ``$XDG_CACHE_HOME/fastmlp/numba`` or ``~/.cache/fastmlp/numba``,
or ``$NUMBA_CACHE_DIR/fastmlp`` when the user has chosen a Numba cache folder.
Nothing here sets ``NUMBA_CACHE_DIR`` or any other process-wide setting, so
other Numba libraries in the same process cache where they always do.  If the
folder cannot be written, a temporary one is used for this process
(``persistent()`` is False): everything works, and every process compiles.

A damaged entry (a truncated or garbage index or data file, e.g. after a full
disk or a killed process) is dropped by ``plan._compile`` for that function
alone, and compiled afresh.
"""

import atexit
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import numba

from fastmlp import config
from fastmlp._files import user_cache_root
from fastmlp.backends.numba import isa

_PACKAGE_DIR = Path(__file__).resolve().parent
_FASTMLP_DIR = _PACKAGE_DIR.parents[1]
#: The backend's files that only organise compiling and loading: none of their
#: code is compiled, so a change to them keeps the cache.
_PLUMBING = ("cache.py", "precompile.py", "runtime.py")
#: The files (relative to the fastmlp package) whose code the compiled functions contain.
_DEPENDENCIES = (*sorted(str(f.relative_to(_FASTMLP_DIR)) for f in _PACKAGE_DIR.glob("*.py")
                         if f.name not in _PLUMBING),
                 "functions.py", "config.py", "network.py")


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


_roots = {}


def _root_and_persistent():
    """``(folder, persistent)``: ``$NUMBA_CACHE_DIR/fastmlp`` when the user chose a
    Numba cache folder (everything compiled then lives there), else
    ``user_cache_dir()``; a temporary folder for this process if that cannot
    be written."""
    chosen = os.environ.get("NUMBA_CACHE_DIR")
    wanted = Path(chosen) / "fastmlp" if chosen else user_cache_dir()
    if wanted not in _roots:
        if _writable(wanted):
            _roots[wanted] = (wanted, True)
        else:
            folder = Path(tempfile.mkdtemp(prefix="fastmlp-numba-"))
            atexit.register(shutil.rmtree, folder, True)
            _roots[wanted] = (folder, False)
    return _roots[wanted]


def root():
    """The folder of the compiled code (see ``_root_and_persistent``)."""
    return _root_and_persistent()[0]


def persistent():
    """Does ``root()`` outlive this process?"""
    return _root_and_persistent()[1]


def code_stamp():
    """A digest of what the compiled code is made of (see the module docstring)."""
    h = hashlib.sha256()
    h.update(f"numba {numba.__version__}|fastmath {config.FASTMATH and sorted(config.FASTMATH)}".encode())
    h.update(f"cpu {isa.HOST.cpu_name}|{isa.HOST.features}".encode())
    for name in _DEPENDENCIES:
        h.update(name.encode())
        try:
            h.update((_FASTMLP_DIR / name).read_bytes())
        except OSError:
            h.update(b"missing")
    return h.hexdigest()


CODE_STAMP = code_stamp()


def kernel_folder():
    """The folder of the entry kernels' source copies and cache files."""
    return root() / f"fastmlp_kernels_{CODE_STAMP[:20]}"


def kernel_source(path):
    """The copy, in ``kernel_folder()``, of the backend's source file ``path``
    that the entry kernels defined there are compiled from (written once)."""
    copy = kernel_folder() / Path(path).name
    _write_source(copy, Path(path).read_text())
    return copy


def _write_source(path, text):
    """Write ``path`` once: a file that exists is kept as it is, because Numba's
    cache entries are stamped with its modification time."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        try:
            os.link(tmp, path)  # fails if another process wrote it first: keep theirs
        except FileExistsError:
            pass
    finally:
        os.unlink(tmp)


def compiled_here(dispatcher):
    """Did this process compile ``dispatcher`` (rather than load it from the cache)?
    (``Dispatcher.stats`` counts both; ``tests/backends/test_compile_ahead.py``
    checks that it still does.)"""
    return sum(dispatcher.stats.cache_misses.values()) > 0
