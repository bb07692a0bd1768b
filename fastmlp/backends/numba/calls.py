"""Calling a compiled kernel through its address, from a driver.

The drivers (``epoch``, ``adam``, ``predict``) are compiled once per dtype
and must call whichever kernel variant a layer takes, so they receive the
kernels' addresses at run time, as a table of int64 (``plan``), and call
them with ``caller(template)``: an intrinsic that casts its arguments to the
types the template declares (``@kernel(args=..., returns=...)``) and calls
the address with Numba's own calling convention, passing on an error status
as a call of the kernel itself would.

Why not Numba's first-class function types: a driver taking the kernels as
``FunctionType`` arguments unboxes each of them on every call (two compile
result look-ups per function, whose signature hashing dominates): 0.67 ms
per call of the epoch with 17 kernels, against 0.02 ms for the table
(AMD EPYC Zen 4), and a model calls the epoch about 50 times an
epoch when it shows a progress bar.

The address of a kernel is its native entry point (``address``); the caller
must keep the dispatcher alive while a driver may call it.
"""

import numba
from numba.core import cgutils
from numba.extending import intrinsic

from fastmlp.backends.numba import jit

#: The rows of a driver's kernel table, one per stage (``plan.KERNELS``); the
#: columns are the loop shapes (``plan.slot``).
STAGES = ("forward", "hidden", "update", "first", "gather", "output", "adam_apply")
FORWARD, HIDDEN, UPDATE, FIRST, GATHER, OUTPUT, ADAM_APPLY = range(len(STAGES))
#: Columns of the table: four loop shapes for the stages with panels.
SLOTS = 4


def address(dispatcher, signature):
    """The native entry point of ``dispatcher`` compiled for ``signature``
    (``numba.core`` internals: the compile result's library and function
    descriptor)."""
    cres = dispatcher.overloads[tuple(signature)]
    return cres.library.get_pointer_to_function(cres.fndesc.llvm_func_name)


def _declared(template, argtys):
    """The argument and return types ``template`` declares, for the dtype of
    its first argument that is an array of the parameters' dtype."""
    first = next(i for i, letter in enumerate(template._fastmlp_args) if letter in "AvG")
    signature = jit.declared_signature(template, str(argtys[first].dtype))
    return signature.args, signature.return_type


def caller(template):
    """An intrinsic ``call(addr, *args)`` for the entry kernel ``template``:
    the call of the compiled variant at ``addr`` with ``args`` cast to the
    declared argument types; it returns what the kernel returns.  It takes
    the template's own parameters by name (a ``*args`` intrinsic would get
    them folded into one tuple)."""
    def typer(typingctx, addr, args):
        params, restype = _declared(template, args)

        def codegen(context, builder, sig, llargs):
            fnty = context.call_conv.get_function_type(restype, params)
            fn = builder.inttoptr(llargs[0], fnty.as_pointer())
            status, result = context.call_conv.call_function(builder, fn, restype, params, llargs[1:])
            with cgutils.if_unlikely(builder, status.is_error):
                context.call_conv.return_status_propagate(builder, status)
            return result if restype != numba.types.none else context.get_dummy_value()

        return restype(numba.types.int64, *params), codegen

    names = ", ".join(template.__code__.co_varnames[:template.__code__.co_argcount])
    scope = {"_typer": typer}
    exec(f"def call(typingctx, addr, {names}):\n    return _typer(typingctx, addr, ({names},))\n", scope)
    call = scope["call"]
    call.__name__ = call.__qualname__ = f"call_{template.__name__.lstrip('_')}"
    return intrinsic(call)
