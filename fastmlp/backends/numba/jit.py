"""Kernel templates: every kernel of this backend is written once, as plain
Python, and compiled only through ``specialise`` for the choices a run makes.

A template is a function marked with ``@kernel``.  ``specialise(f, parallel,
PANELS=...)`` returns a Numba dispatcher of ``f`` in which

- the names of ``CONSTANTS`` that ``f`` (or a template it calls) reads are
  compile-time constants: Numba freezes global values, and it drops a branch
  ``if PANELS:`` before typing when ``PANELS`` is False, so code a variant
  does not need (the panel kernels of a variant without panels) is never
  compiled;
- ``prange`` loops run in parallel when ``parallel`` is True and as plain
  loops otherwise: each parallel kernel has one body, compiled serial or
  parallel as a variant needs;
- every template it calls is itself specialised with the same choices.

Specialisations are shared (memoised) by everything that makes the same
choices.  The *entry kernels*, the templates the drivers call through their
addresses (``@kernel(args=...)``, with their argument types), and the drivers
themselves (``@kernel(args=DRIVER)``) are cached on disk one by one, per
specialisation and dtype (``plan``).  The small helpers and the templates
called below an entry kernel are not cached: they are compiled into their
caller.

Settings come from ``fastmlp.config`` (no kernel hard-codes a flag).  The
integer codes stand for names (Numba cannot take strings cheaply).
"""

import types

import numba

from fastmlp import config
from fastmlp.backends.numba import cache
from fastmlp.functions import ACTIVATION_CODES, COST_CODES

#: Options of every compiled function of this backend.
OPTIONS = {"fastmath": config.FASTMATH, "error_model": "numpy", "nogil": True}

SIGMOID = ACTIVATION_CODES["sigmoid"]
TANH = ACTIVATION_CODES["tanh"]
RELU = ACTIVATION_CODES["relu"]
LEAKY_RELU = ACTIVATION_CODES["leaky_relu"]
SOFTMAX = ACTIVATION_CODES["softmax"]
IDENTITY = ACTIVATION_CODES["identity"]
EXP = ACTIVATION_CODES["exp"]
#: Not an activation: the code under which ``elementwise._derivative`` returns
#: its argument, for a delta whose factors are given (dropout, ``dropout``).
GIVEN = max(ACTIVATION_CODES.values()) + 1
QUADRATIC = COST_CODES["quadratic"]
CROSS_ENTROPY = COST_CODES["cross_entropy"]
NLL = COST_CODES["nll"]
POISSON = COST_CODES["poisson"]

#: The names a template may read as compile-time constants: ``PANELS`` (int,
#: the rows of the outer-product panel tiles of this layer's hidden delta and
#: update, whose panels run over its inputs: ``tile.NARROW_ROWS``, or 0 when it
#: has none; ``shapes.panel_tile_rows``), ``FWD_PANELS`` (the same for its
#: forward pass, whose panels run over its outputs).
CONSTANTS = ("PANELS", "FWD_PANELS")
#: Placeholders, so the templates can import the names; ``specialise`` replaces
#: them in each compiled copy (an unspecialised template is never compiled).
PANELS = FWD_PANELS = None


#: The argument types an entry kernel declares, one letter each, for a
#: configuration whose parameters have dtype ``dt`` (``entry_signature``).
ARG_TYPES = {
    "A": "2-D array of dt",
    "v": "1-D array of dt",
    "G": "3-D array of dt",
    "h": "1-D array of float64 (hyperparameters)",
    "n": "1-D array of int64",
    "u": "1-D array of uint8",
    "i": "int64",
    "f": "float64",
    "b": "bool",
    "X": "the input tuple (shapes.input_type)",
}


#: ``kernel(args=DRIVER)`` marks a driver: an entry kernel whose signature
#: ``plan`` gives at compile time (it ends in a table of kernel addresses).
DRIVER = "driver"


def kernel(func=None, *, args=None, returns=""):
    """Mark ``func`` as a kernel template (compiled only through ``specialise``).
    With ``args`` (a letter of ``ARG_TYPES`` per argument, spaces ignored, or
    ``DRIVER``) it is an entry kernel, cached on disk on its own (see the
    module docstring); ``returns`` gives the letters of the tuple it returns
    ("" for nothing), so a driver can call it through its address with the
    declared types (``calls.caller``, ``declared_signature``)."""
    def mark(f):
        f._fastmlp_returns = returns
        if args == DRIVER:
            f._fastmlp_args = DRIVER
        elif args is not None:
            letters = args.replace(" ", "")
            if len(letters) != f.__code__.co_argcount or set(letters) - ARG_TYPES.keys():
                raise TypeError(f"{f.__qualname__}: args={args!r} must give one of {''.join(ARG_TYPES)} "
                                f"per argument ({f.__code__.co_argcount})")
            f._fastmlp_args = letters
        f._fastmlp_kernel = True
        return f

    return mark if func is None else mark(func)


def declared_signature(template, dtype):
    """The Numba signature (argument and return types) the entry kernel
    ``template`` declares (``@kernel(args=..., returns=...)``) for parameters
    of ``dtype``."""
    from fastmlp.backends.numba.shapes import input_type

    if template._fastmlp_args == DRIVER:
        raise TypeError(f"{template.__qualname__} is a driver: its signature comes from its plan")
    t = numba.types
    dt = getattr(t, str(dtype))
    kinds = {"A": t.Array(dt, 2, "C"), "v": t.Array(dt, 1, "C"), "G": t.Array(dt, 3, "C"),
             "h": t.Array(t.float64, 1, "C"), "n": t.Array(t.int64, 1, "C"), "u": t.Array(t.uint8, 1, "C"),
             "i": t.int64, "f": t.float64, "b": t.boolean, "X": input_type(str(dtype))}
    returns = template._fastmlp_returns
    result = t.Tuple(tuple(kinds[letter] for letter in returns)) if returns else t.none
    return result(*(kinds[letter] for letter in template._fastmlp_args))


def entry_signature(dispatcher, dtype):
    """The argument types the drivers call the entry kernel ``dispatcher``
    (from ``specialise``) with, for parameters of ``dtype``."""
    return declared_signature(dispatcher.py_func, dtype).args


def compiled_with(dispatcher):
    """The specialisations (from ``specialise``) that compiling ``dispatcher``
    compiles in a fresh process: itself and every template below it.  Two
    variants that share some compile them once when one process compiles
    both (``precompile`` groups them so)."""
    seen, todo = set(), [dispatcher]
    while todo:
        d = todo.pop()
        if d not in seen:
            seen.add(d)
            todo += d.py_func._fastmlp_callees
    return frozenset(seen)


def _is_kernel(obj):
    return getattr(obj, "_fastmlp_kernel", False) is True


def _callees(func):
    names = func.__code__.co_names
    return [func.__globals__[n] for n in names if _is_kernel(func.__globals__.get(n))]


def _has_prange(func):
    return "prange" in func.__code__.co_names


_used = {}


def constants_used(func):
    """The names of ``CONSTANTS`` that ``func`` or any template it calls reads,
    and whether any of them has a ``prange`` loop: ``(names, parallel_loops)``."""
    if func not in _used:
        _used[func] = (frozenset(), False)  # a guard against recursion
        names = {n for n in func.__code__.co_names if n in CONSTANTS}
        loops = _has_prange(func)
        for callee in _callees(func):
            sub, sub_loops = constants_used(callee)
            names |= sub
            loops = loops or sub_loops
        _used[func] = (frozenset(names), loops)
    return _used[func]


_specialised = {}


def specialise(func, parallel=False, **constants):
    """A dispatcher of template ``func`` for these choices (see the module
    docstring).  ``constants`` may name more than ``func`` reads; each
    specialisation depends only on the ones it (transitively) uses, so
    templates untouched by a choice are compiled once for all of them."""
    names, loops = constants_used(func)
    missing = names - constants.keys()
    if missing:
        raise TypeError(f"{func.__qualname__} needs the compile-time constants {sorted(missing)}")
    parallel = bool(parallel and loops)
    key = (func, parallel, tuple(sorted((n, constants[n]) for n in names)))
    if key not in _specialised:
        scope = dict(func.__globals__)
        scope.update((n, constants[n]) for n in names)
        for name in func.__code__.co_names:
            if _is_kernel(scope.get(name)):
                scope[name] = specialise(scope[name], parallel, **constants)
        code = func.__code__
        entry = getattr(func, "_fastmlp_args", None) is not None
        if entry:
            # An entry kernel may be loaded from the disk cache at its first
            # call, and its code asks the thread pool for the thread id
            # (``deltas``), which crashes a process whose pool was never
            # started (segmentation fault, Numba 0.68.1: the per-layer
            # functions of ``mirrors`` in a fresh process, serial layers too).
            numba.get_num_threads()
            # Numba keeps a function's cache beside its source file and checks
            # only that file: the copy in a folder named after the code stamp
            # (cache.kernel_source) is stale exactly when the compiled code is.
            code = code.replace(co_filename=str(cache.kernel_source(code.co_filename)))
        copy = types.FunctionType(code, scope, func.__name__, func.__defaults__, func.__closure__)
        copy._fastmlp_template = func
        copy._fastmlp_callees = tuple(scope[name] for name in code.co_names if _is_kernel(func.__globals__.get(name)))
        if entry:
            copy._fastmlp_args, copy._fastmlp_returns = func._fastmlp_args, func._fastmlp_returns
        # A name of its own per specialisation: Numba's symbol for a function is
        # built from its qualified name and signature, and cached machine code
        # loaded from another process would link against a same-named symbol
        # of a different specialisation already in this process (wrong weights,
        # tests/backends/test_kernels.py::test_an_earlier_network_does_not_change_the_next_one).
        tag = "".join(ch if ch.isalnum() else "_" for ch in f"{'par' if parallel else 'ser'}_{key[2]}")
        copy.__qualname__, copy.__doc__, copy.__module__ = f"{func.__qualname__}__{tag}", func.__doc__, func.__module__
        copy.__name__ = f"{func.__name__}__{tag}"
        # A driver is parallel although it has no parallel loop of its own:
        # called from a serial function, the parallel kernels run 1.3-20x
        # slower (docs/performance.md, "Structure of an epoch").
        driver = getattr(func, "_fastmlp_args", None) == DRIVER
        _specialised[key] = numba.njit(parallel=driver or (parallel and _has_prange(func)), cache=entry,
                                       **OPTIONS)(copy)
    return _specialised[key]
