"""The Numba backend: the mathematics of ``fastmlp.backends.reference`` as
compiled loops, a whole epoch in one compiled call.

Every public function here has a namesake with the same arguments in
``fastmlp.backends.reference`` and computes the same numbers up to rounding
(``tests/backends/test_kernels.py``).  The modules, by stage (equation labels
refer to ``docs/math.md``):

``elementwise``  activations and derivatives (A1-A5)
``forward``      (F) register-tiled forward pass, (X) input rows
``deltas``       (D_L) output delta, cost and accuracy; (D_l) hidden deltas
``update``       (G) + (U) gradients fused with the SGD update
``epoch``        the SGD driver: every mini-batch of an epoch in one call
``adam``         the Adam driver and Adam's step (U6)
``predict``      the prediction driver
``mirrors``      the per-layer namesakes of the reference's functions
``shapes``       which loop shape each layer takes, decided from its sizes
``tile``         the narrow tile and packed panels of the panel kernels
``jit``          kernel templates and their specialisation, compile settings
``plan``         the compile plan: the variants a run needs, compiled or
                 loaded once, and ``train_batches``, ``predict_proba``
``cache``, ``precompile``, ``runtime``  where compiled code is kept, compiling
                 in child processes, and what runs around each kernel call
                 (including ``compile_ahead``)

Compile time: the kernels are templates (``jit``), compiled per variant (a
loop shape and a dtype, ``plan.Variant``) and cached on disk one by one
(``cache``); the drivers loop over the layers at run time and call the
variants through a table of their addresses (``calls``), so a new network
compiles only loop shapes no earlier network on this machine took.  docs/performance.md ("Compile
time") has the measurements.

Layout (as in the reference): activations and deltas are ``(m, n)`` row-major,
one row per sample; ``W`` is ``(n_out, n_in)`` so row ``j`` (the weights into
neuron ``j``) is contiguous.  All parameters live in one flat buffer, layer
after layer (``fastmlp.network``).

Two kernel shapes: row blocks (4 rows of W, dot products vectorised along the
inputs) for every layer, and for wide layers with big enough mini-batches
outer-product panels (narrow tiles, ``tile``) for the hidden delta, the
fused gradient + update and wide forward passes; ``docs/performance.md`` has
the measurements behind the choice (``shapes._panels``).

Determinism: every parallel loop (``prange``) gives each output element to
exactly one iteration, and the split into iterations and the summation order
inside an iteration depend only on the shapes, never on the number of threads.
So the results are bitwise identical for any ``NUMBA_NUM_THREADS``.  There are
no atomics and no shared accumulators.
"""

from fastmlp.backends.numba.mirrors import dense_forward, gradients, hidden_delta, output_delta, sgd_update
from fastmlp.backends.numba.plan import all_variants, loss_gradient, predict_proba, train_batches
from fastmlp.backends.numba.predict import PREDICT_CHUNK
from fastmlp.backends.numba.runtime import (before_run, call_guard, check_network, compile_ahead, compile_variants,
                                            estimate_seconds, missing, prepare, threads, variants_for)

__all__ = ["PREDICT_CHUNK", "all_variants", "before_run", "call_guard", "check_network", "compile_ahead",
           "compile_variants",
           "dense_forward", "estimate_seconds", "gradients", "hidden_delta", "loss_gradient", "missing", "output_delta",
           "predict_proba", "prepare", "sgd_update", "threads", "train_batches", "variants_for"]


#: What this backend implements (``MLP`` refuses what a backend lacks).
SUPPORTS = ("sgd", "adam", "identity", "sigmoid", "tanh", "relu", "leaky_relu", "softmax", "exp",
            "single_logistic_output", "target_matrix", "sample_weight")
