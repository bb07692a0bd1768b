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
choices, and are compiled without an on-disk cache: only the generated epoch and
prediction functions that call them are cached (``cache``), with their callees
compiled into them.

Settings come from ``fastmlp.config`` (no kernel hard-codes a flag).  The
integer codes stand for names (Numba cannot take strings cheaply).
"""

import types

import numba

from fastmlp import config
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
#: the rows of this layer's outer-product panel tiles, 0 when it has no panels:
#: ``shapes.panel_tile_rows``) and ``OPT``.
CONSTANTS = ("PANELS", "OPT")
#: Placeholders, so the templates can import the names; ``specialise`` replaces
#: them in each compiled copy (an unspecialised template is never compiled).
PANELS = OPT = None


def kernel(func):
    """Mark ``func`` as a kernel template (compiled only through ``specialise``)."""
    func._fastmlp_kernel = True
    return func


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
        copy = types.FunctionType(func.__code__, scope, func.__name__, func.__defaults__, func.__closure__)
        # A name of its own per specialisation: Numba's symbol for a function is
        # built from its qualified name and signature, and cached machine code
        # loaded from another process linked against a same-named symbol of a
        # different specialisation already in this process (wrong weights,
        # tests/backends/test_kernels.py::test_an_earlier_network_does_not_change_the_next_one).
        tag = "".join(ch if ch.isalnum() else "_" for ch in f"{'par' if parallel else 'ser'}_{key[2]}")
        copy.__qualname__, copy.__doc__, copy.__module__ = f"{func.__qualname__}__{tag}", func.__doc__, func.__module__
        copy.__name__ = f"{func.__name__}__{tag}"
        _specialised[key] = numba.njit(parallel=parallel and _has_prange(func), cache=False, **OPTIONS)(copy)
    return _specialised[key]
