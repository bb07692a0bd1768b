"""Where this backend's compiled code is kept: one generated module per
configuration, in a folder of fastmlp's own, with Numba's cache beside it.

``load(spec, source)`` writes the source of a configuration's function (an
``epoch`` or ``predict`` spec) to ``<root>/<name>/<name>.py`` and imports it;
its function is compiled for its one signature when the module is imported, and
Numba caches the machine code in ``<root>/<name>/__pycache__`` (its default for a
writable source folder), so the next process loads it instead.  ``<name>`` is
a digest of the spec, the Numba version, the fast-math setting, the CPU the
code is compiled for (``isa.HOST``: name and features, which also decide the
kernels' tile shapes) and the text of every source file the compiled code is
made from (``_DEPENDENCIES``: every file of the backend but the three that
only compile and load, ``_PLUMBING``): Numba's own check compares only the
generated file, while the code inlines the kernels of the other files, and
a stale entry must never be loaded (with bounds checks off, a stale tile size
would write out of bounds).  With the CPU in the name, a cache folder shared by machines
of different CPUs (a home directory on a network drive) or a run with
``NUMBA_CPU_NAME`` set keeps one entry, and one "compiled by a child" record
(``precompile``), per CPU.

``<root>`` is ``$XDG_CACHE_HOME/fastmlp/numba`` or ``~/.cache/fastmlp/numba``,
or ``$NUMBA_CACHE_DIR/fastmlp`` when the user has chosen a Numba cache folder
(Numba then keeps the machine code under that folder too, by its own rule).
Nothing here sets ``NUMBA_CACHE_DIR`` or any other process-wide setting, so
other Numba libraries in the same process cache where they always do.  If the
folder cannot be written, a temporary one is used for this process
(``persistent()`` is False): everything works, and every process compiles.

The entry kernels (``jit``: the kernels the generated code calls directly)
are cached on their own, in ``<root>/fastmlp_kernels_<stamp>``: Numba keeps a
function's cache beside its source file and compares only that file, so each
entry kernel is compiled from a copy of its source file in that folder
(``kernel_source``), whose name changes whenever the compiled code would.

A damaged cache entry (a truncated or garbage index or data file, e.g. after a
full disk or a killed process) makes the import fail; then this
configuration's cache files (and only those: they carry its unique name) are
deleted, a one-line note goes to stderr (once per process), and it is
compiled afresh.
"""

import atexit
import hashlib
import importlib.util
import os
import shutil
import sys
import tempfile
import warnings
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
    """The folder of the generated modules (see ``_root_and_persistent``)."""
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


def module_name(spec):
    """The name of ``spec``'s generated module (also its folder's name)."""
    digest = hashlib.sha256((CODE_STAMP + spec.to_json()).encode()).hexdigest()[:20]
    return f"fastmlp_{spec.kind}_{digest}"


def kernel_folder():
    """The folder of the entry kernels' source copies and cache files."""
    return root() / f"fastmlp_kernels_{CODE_STAMP[:20]}"


def kernel_source(path):
    """The copy, in ``kernel_folder()``, of the backend's source file ``path``
    that the entry kernels defined there are compiled from (written once)."""
    copy = kernel_folder() / Path(path).name
    _write_source(copy, Path(path).read_text())
    return copy


def folder(spec):
    """The folder of ``spec``'s generated module and of its cache files."""
    return root() / module_name(spec)


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


def _cache_files(name):
    """Numba's index and data files of module ``name`` and of the entry kernels
    it links (any of them may be the damaged one), wherever Numba put them."""
    places = [root() / name / "__pycache__", kernel_folder() / "__pycache__"]
    if os.environ.get("NUMBA_CACHE_DIR"):
        places.append(Path(os.environ["NUMBA_CACHE_DIR"]))
    found = []
    for place in places:
        if place.is_dir():
            found += [p for p in place.rglob("*") if p.suffix in (".nbi", ".nbc")
                      and (p.name.startswith(f"{name}.") or place != places[0] and _is_kernel_entry(p))]
    return found


def _is_kernel_entry(path):
    """Is ``path`` a cache file of an entry kernel (compiled from ``kernel_source``)?"""
    return kernel_folder().name in path.parts


_noted = False


#: The file ``precompile`` leaves in a configuration's folder once a child
#: process compiled it into the cache.
MARKER = "compiled-by-child"


def _discard(name, exc):
    """Delete the cache files of module ``name`` and its marker (so the next run
    compiles in a child again, see ``precompile``)."""
    global _noted
    for path in [*_cache_files(name), root() / name / MARKER]:
        try:
            path.unlink()
        except OSError:
            pass
    if not _noted:
        _noted = True
        print(f"fastmlp: ignored a damaged Numba cache entry of {name} ({type(exc).__name__}); "
              "compiling it again.", file=sys.stderr)


def _import(name, path):
    """Import the generated module ``name`` from ``path``.  It goes into
    ``sys.modules`` first: Numba's cache finds a function's globals by module
    name when it loads the machine code."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        with warnings.catch_warnings():
            # the SGD epoch is parallel without a parallel loop of its own, on purpose (epoch.compiled)
            # (Numba's message starts with a line break)
            warnings.filterwarnings("ignore", r"\s*The keyword argument 'parallel=True' was specified",
                                    numba.NumbaPerformanceWarning)
            spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


_loaded = {}


def load(spec, source):
    """The generated module of ``spec`` (``source(spec)`` is its text), imported
    once per process: its function compiled, or loaded from Numba's cache."""
    name = module_name(spec)
    if name not in _loaded:
        # Start Numba's thread pool: code loaded from the cache launches parallel
        # regions of its callees, and only a function that is itself parallel
        # starts the pool when it is loaded (calling into a pool that was never
        # started crashes the process).
        numba.get_num_threads()
        path = root() / name / f"{name}.py"
        _write_source(path, source(spec))
        try:
            module = _import(name, path)
        except Exception as exc:  # noqa: BLE001  (a damaged entry raises whatever unpickling raises)
            if not _cache_files(name):
                raise  # nothing cached: a real error
            _discard(name, exc)
            module = _import(name, path)
        _loaded[name] = module
    return _loaded[name]


def compiled_in_process():
    """How many of the functions this process loaded it had to compile itself."""
    return sum(compiled_here(getattr(m, "train_epoch", None) or m.predict) for m in _loaded.values())


def is_loaded(spec):
    """Has this process already imported ``spec``'s module?"""
    return module_name(spec) in _loaded


def compiled_here(dispatcher):
    """Did this process compile ``dispatcher`` (rather than load it from the cache)?
    (``Dispatcher.stats`` counts both; ``tests/backends/test_compile_ahead.py``
    checks that it still does.)"""
    return sum(dispatcher.stats.cache_misses.values()) > 0
