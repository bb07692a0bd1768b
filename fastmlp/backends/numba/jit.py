"""Kernel templates: every kernel of this backend is written once, as plain
Python, and compiled only through ``specialise`` for the choices a run makes.

A template is a function marked with ``@kernel``.  ``specialise(f, parallel,
PANELS=..., OPT=...)`` returns a Numba dispatcher of ``f`` in which

- the names of ``CONSTANTS`` that ``f`` (or a template it calls) reads are
  compile-time constants: Numba freezes global values, and it drops a branch
  ``if PANELS:`` before typing when ``PANELS`` is False, so code a run does not
  need (the panel kernels of a layer without panels) is never compiled;
- ``prange`` loops run in parallel when ``parallel`` is True and as plain loops
  otherwise: each parallel kernel has one body, and a configuration compiles
  only the variant it uses;
- every template it calls is itself specialised with the same choices.

Specialisations are shared (memoised) by everything that makes the same
choices.  The *entry kernels*, the templates the generated epoch and
prediction call directly (``@kernel(args=...)``, with their argument types), are
cached on disk one by one, per specialisation and dtype, so that a
configuration's entry kernels compile side by side in child processes
(``precompile``) and the epoch links them from the cache; and configurations
that share an entry kernel compile it once.  The small helpers and the
templates called below an entry kernel are not cached: they are compiled into
their caller.

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
QUADRATIC = COST_CODES["quadratic"]
CROSS_ENTROPY = COST_CODES["cross_entropy"]
NLL = COST_CODES["nll"]

#: Values of the compile-time constant ``OPT``: plain SGD (U1)-(U2), or with a
#: velocity (U3)-(U4), momentum or Nesterov as ``hyper[3]`` says at run time
#: (they differ by two coefficients, ``update._grad_update_block``).  Plain SGD
#: stays apart because it never reads or writes a velocity.
SGD_PLAIN, MOMENTUM = 0, 1
#: The names a template may read as compile-time constants: ``PANELS`` (int,
#: the rows of the outer-product panel tiles of this layer's hidden delta and
#: update, whose panels run over its inputs: ``tile.NARROW_ROWS``, or 0 when it
#: has none; ``shapes.panel_tile_rows``), ``FWD_PANELS`` (the same for its
#: forward pass, whose panels run over its outputs) and ``OPT``.
CONSTANTS = ("PANELS", "FWD_PANELS", "OPT")
#: Placeholders, so the templates can import the names; ``specialise`` replaces
#: them in each compiled copy (an unspecialised template is never compiled).
PANELS = FWD_PANELS = OPT = None


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
    "X": "the input pair (shapes.input_pair_type)",
}


def kernel(func=None, *, args=None):
    """Mark ``func`` as a kernel template (compiled only through ``specialise``).
    With ``args`` (a letter of ``ARG_TYPES`` per argument, spaces ignored) it is
    an entry kernel, cached on disk on its own (see the module docstring)."""
    def mark(f):
        if args is not None:
            letters = args.replace(" ", "")
            if len(letters) != f.__code__.co_argcount or set(letters) - ARG_TYPES.keys():
                raise TypeError(f"{f.__qualname__}: args={args!r} must give one of {''.join(ARG_TYPES)} "
                                f"per argument ({f.__code__.co_argcount})")
            f._fastmlp_args = letters
        f._fastmlp_kernel = True
        return f

    return mark if func is None else mark(func)


def entry_signature(dispatcher, dtype):
    """The Numba signature the generated code calls the entry kernel
    ``dispatcher`` (from ``specialise``) with, for parameters of ``dtype``."""
    from fastmlp.backends.numba.shapes import input_pair_type

    t = numba.types
    dt = getattr(t, str(dtype))
    kinds = {"A": t.Array(dt, 2, "C"), "v": t.Array(dt, 1, "C"), "G": t.Array(dt, 3, "C"),
             "h": t.Array(t.float64, 1, "C"), "n": t.Array(t.int64, 1, "C"), "u": t.Array(t.uint8, 1, "C"),
             "i": t.int64, "f": t.float64, "b": t.boolean, "X": input_pair_type(str(dtype))}
    return tuple(kinds[letter] for letter in dispatcher.py_func._fastmlp_args)


def code_size(dispatcher):
    """How many templates ``dispatcher`` (from ``specialise``) compiles, itself
    and everything it calls, twice that for a parallel one: a rough measure of
    its compile time, to share compiles out evenly (``precompile``)."""
    seen, todo = set(), [dispatcher.py_func._fastmlp_template]
    while todo:
        func = todo.pop()
        if func not in seen:
            seen.add(func)
            todo += _callees(func)
    return len(seen) * (2 if dispatcher.targetoptions.get("parallel") else 1)


def is_entry(dispatcher):
    """Is ``dispatcher`` (from ``specialise``) an entry kernel, cached on its own?"""
    return getattr(dispatcher.py_func, "_fastmlp_args", None) is not None


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
        if entry:
            copy._fastmlp_args = func._fastmlp_args
        # A name of its own per specialisation: Numba's symbol for a function is
        # built from its qualified name and signature, and cached machine code
        # loaded from another process linked against a same-named symbol of a
        # different specialisation already in this process (wrong weights,
        # tests/backends/test_kernels.py::test_an_earlier_network_does_not_change_the_next_one).
        tag = "".join(ch if ch.isalnum() else "_" for ch in f"{'par' if parallel else 'ser'}_{key[2]}")
        copy.__qualname__, copy.__doc__, copy.__module__ = f"{func.__qualname__}__{tag}", func.__doc__, func.__module__
        copy.__name__ = f"{func.__name__}__{tag}"
        _specialised[key] = numba.njit(parallel=parallel and _has_prange(func), cache=entry, **OPTIONS)(copy)
    return _specialised[key]
