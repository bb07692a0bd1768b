"""A whole epoch in one compiled call, built for the run's configuration
(``specs.EpochSpec``): the source of a function that runs every mini-batch's
forward pass, output delta, hidden deltas and fused gradient + update, unrolled
layer by layer with each layer's kernels specialised for it
(``jit.specialise``); and its public wrapper ``train_batches``.

The generated source is written to a file of its own (``cache``), so Numba
caches its machine code next to it, one file per configuration.

Mirror: ``fastmlp.backends.reference.train_batches``.
"""

import numba
import numpy as np

from fastmlp.backends.numba import cache, precompile
from fastmlp.backends.numba.deltas import _hidden_layer, _output_rows
from fastmlp.backends.numba.forward import _forward_layer, _gather_input
from fastmlp.backends.numba.jit import OPTIONS, kernel, specialise
from fastmlp.backends.numba.shapes import _check_input, _codes, _panel_counts, input_pair_type
from fastmlp.backends.numba.specs import OPTIMISERS, epoch_spec
from fastmlp.backends.numba.update import _update_forward_first, _update_layer
from fastmlp.functions import COST_CODES
from fastmlp.network import Adam, weight_offsets


@kernel(args="v v i i i")
def _layer_views(params, velocity, o, n_in, n_out):
    """``W``, ``b`` of the layer whose weights start at ``o``, and the same views of ``velocity``."""
    W = params[o:o + n_out * n_in].reshape((n_out, n_in))
    b = params[o + n_out * n_in:o + (n_in + 1) * n_out]
    vW = velocity[o:o + n_out * n_in].reshape((n_out, n_in))
    vb = velocity[o + n_out * n_in:o + (n_in + 1) * n_out]
    return W, b, vW, vb


@kernel(args="i v")
def _zeros(n, like):
    """``n`` zeros of ``like``'s dtype, filled by a plain loop: in a parallel
    function ``np.zeros`` becomes a parallel loop of its own, compiled apart."""
    buf = np.empty(n, like.dtype)
    for i in range(n):
        buf[i] = 0
    return buf


@kernel(args="v i i i")
def _act_view(buf, o, n, m):
    """The ``(m, n)`` matrix at offset ``o`` of a flat work buffer."""
    return buf[o:o + m * n].reshape((m, n))


def _first_layer_split(spec):
    """Does the first layer have panels (in its update or its forward)?  They
    run down all rows of W, so its update, its forward for the next batch and
    the gather of the batch after are three calls (``_update_layer``,
    ``_forward_layer``, ``_gather_input``, each the same compiled kernel as
    elsewhere in the epoch when the loop shapes agree, so it compiles once),
    not the fused ``_update_forward_first``."""
    return bool(spec.panels[0] or spec.forward_panels[0])


def layer_kernels(spec):
    """The specialised dispatchers the generated epoch of ``spec`` calls, by the
    names it calls them."""
    opt = OPTIMISERS[spec.optimiser]
    found = {"gather_input": specialise(_gather_input), "layer_views": specialise(_layer_views),
             "act_view": specialise(_act_view), "output_rows": specialise(_output_rows),
             "zeros": specialise(_zeros)}
    for l, (par, panels, fwd) in enumerate(zip(spec.parallel, spec.panels, spec.forward_panels)):
        found[f"forward_{l}"] = specialise(_forward_layer, par, FWD_PANELS=fwd)
        if l == 0 and _first_layer_split(spec):
            found["update_first"] = specialise(_update_layer, par, PANELS=panels, OPT=opt)
            found["gather_next"] = specialise(_gather_input, par)
        elif l == 0:
            found["update_first"] = specialise(_update_forward_first, par, PANELS=0, OPT=opt)
        else:
            found[f"hidden_{l}"] = specialise(_hidden_layer, par, PANELS=panels)
            found[f"update_{l}"] = specialise(_update_layer, par, PANELS=panels, OPT=opt)
    return found


def signature(spec):
    """The one signature the epoch of ``spec`` is compiled for."""
    t = numba.types
    dt, i64 = getattr(t, spec.dtype), t.int64
    vec = t.Array(dt, 1, "C")
    ints = t.Array(i64, 1, "C")
    X = input_pair_type(spec.dtype)
    return t.Tuple((t.float64, i64))(vec, vec, ints, ints, ints, i64, t.Array(t.float64, 1, "C"), X,
                                     t.Array(t.uint8, 1, "C"), ints, i64, t.float64, ints, i64)


def compiled(spec):
    """The decorator of the generated epoch: compiled at once (when its module is
    imported) for its one signature, cached on disk.  ``parallel=True`` although
    the SGD epoch has no parallel loop of its own: called from a non-parallel
    function the parallel kernels ran 1.3-20x slower (docs/performance.md,
    "Structure of an epoch"); with no array expressions in its body (``_zeros``)
    it compiled in the same time (20.5 against 20.0-23.3 CPU seconds, 784-30-10
    float64, Zen 4, machine shared, 2026-12-01)."""
    return numba.njit(signature(spec), parallel=True, cache=True, **OPTIONS)


def source(spec):
    """Python source of the epoch for ``spec``: ``_train_epoch`` below, written
    out for its number of layers."""
    if spec.optimiser == "adam":  # its own epoch (Adam needs whole gradients first)
        from fastmlp.backends.numba import adam

        return adam.source(spec)
    L = spec.n_layers
    s0 = "sizes[0]"

    def x_view(slot, rows):
        return f"XB[{slot}, :{rows} * {s0}].reshape(({rows}, {s0}))"

    def act(buf, l, rows):
        return f"act_view({buf}, a_off[{l}], sizes[{l}], {rows})"

    keep = lambda l: "yes" if l == L - 1 else "no"  # noqa: E731  (keep Z only at the output)
    views = [f"    W{l}, b{l}, vW{l}, vb{l} = layer_views(params, velocity, offsets[{l}], sizes[{l}], sizes[{l + 1}])"
             for l in range(L)]
    forwards = [f"        forward_{l}({act('A_buf', l, 'm')}, m, W{l}, b{l}, acts[{l}], Z_L, "
                f"{act('A_buf', l + 1, 'm')}, {keep(l)})" for l in range(1, L)]
    backwards = []
    for l in range(L - 1, 0, -1):
        backwards += [f"        hidden_{l}(d{l + 1}, W{l}, {act('A_buf', l, 'm')}, m, acts[{l - 1}], "
                      f"{act('D_buf', l, 'm')}, G, panels[{l}])",
                      f"        d{l} = {act('D_buf', l, 'm')}",
                      f"        update_{l}(d{l + 1}, {act('A_buf', l, 'm')}, m, W{l}, b{l}, vW{l}, vb{l}, hyper, G, "
                      f"panels[{l}])"]
    # the first layer: its update for batch t, its forward for batch t + 1, the gather of batch t + 2
    x_t, x_next, x_after = x_view("t % 3", "m"), x_view("(t + 1) % 3", "m1"), x_view("(t + 2) % 3", "m2")
    a1_next = act("A_buf", 1, "m1")
    update = f"d1, {x_t}, m, W0, b0, vW0, vb0, hyper, G, panels[0]"
    if _first_layer_split(spec):
        first_layer = [f"        update_first({update})",
                       "        if m1 > 0:",
                       f"            forward_0({x_next}, m1, W0, b0, acts[0], Z_L, {a1_next}, {keep(0)})",
                       f"        gather_next(X, order, s2, m2, scale, {x_after})"]
    else:
        first_layer = [f"        update_first({update},",
                       f"                     {x_next}, m1, acts[0], Z_L, {a1_next}, {keep(0)}, X, order, s2, scale, "
                       f"{x_after})"]
    lines = [
        f'"""The training epoch for {spec.describe()}.',
        "",
        "Generated by fastmlp.backends.numba.epoch from its ``_train_epoch``; Numba caches",
        'its machine code beside this file.  Deleting the folder only costs a compile."""',
        "",
        "import numpy as np",
        "",
        "from fastmlp.backends.numba import epoch as _epoch",
        "from fastmlp.backends.numba.specs import spec_from_json as _spec_from_json",
        "",
        f"SPEC = _spec_from_json({spec.to_json()!r})",
        "globals().update(_epoch.layer_kernels(SPEC))",
        "",
        "",
        "@_epoch.compiled(SPEC)",
        "def train_epoch(params, velocity, offsets, sizes, acts, cost, hyper, X, y, order, batch_size, scale,",
        "                panels, n_threads):",
        "    # 0, True and False as values: a literal is a type of its own and would",
        "    # compile another copy of every kernel it is passed to",
        "    zero = batch_size - batch_size",
        "    yes = zero == 0",
        "    no = zero != 0",
        f"    a_off = np.empty({L + 2}, np.int64)",
        "    a_off[0] = zero",
        f"    for l in range({L + 1}):",
        "        a_off[l + 1] = a_off[l] + batch_size * sizes[l]",
        "    width = sizes[0]",
        f"    for l in range(1, {L + 1}):",
        "        width = max(width, sizes[l])",
        f"    A_buf = zeros(a_off[{L + 1}], params)",
        f"    D_buf = zeros(a_off[{L + 1}], params)",
        f"    XB = zeros(3 * batch_size * {s0}, params).reshape((3, batch_size * {s0}))",
        f"    Z_L = zeros(batch_size * sizes[{L}], params).reshape((batch_size, sizes[{L}]))",
        "    G = zeros(n_threads * 4 * width, params).reshape((n_threads, 4, width))",
        *views,
        "    n = order.shape[0]",
        "    loss_sum = 0.0",
        "    n_correct = 0",
        "    m = min(batch_size, n)",
        f"    gather_input(X, order, zero, m, scale, {x_view(0, 'm')})",
        "    if n > batch_size:",
        "        m1 = min(batch_size, n - batch_size)",
        f"        gather_input(X, order, batch_size, m1, scale, {x_view(1, 'm1')})",
        f"    forward_0({x_view(0, 'm')}, m, W0, b0, acts[0], Z_L, {act('A_buf', 1, 'm')}, {keep(0)})",
        "    t = 0",
        "    for start in range(0, n, batch_size):",
        "        m = min(batch_size, n - start)",
        *forwards,
        f"        d{L} = {act('D_buf', L, 'm')}",
        f"        loss, correct = output_rows(Z_L, {act('A_buf', L, 'm')}, y, order, start, m, acts[{L - 1}], "
        f"cost, d{L})",
        "        loss_sum += loss",
        "        n_correct += correct",
        *backwards,
        "        s1, s2 = start + batch_size, start + 2 * batch_size",
        "        m1 = min(batch_size, n - s1) if s1 < n else zero",
        "        m2 = min(batch_size, n - s2) if s2 < n else zero",
        *first_layer,
        "        t += 1",
        "    return loss_sum, n_correct",
        "",
    ]
    return "\n".join(lines)


def compiled_epoch(spec):
    """The compiled epoch of ``spec``: all mini-batches of one epoch.  For each
    batch (F) forward through every layer, (C)/(D_L) at the output, then from the
    last layer back (D_l) with the old weights followed by the fused (G)+(U)
    update of that layer.  The first layer's update is followed by its forward
    pass for the *next* batch, so the first layer's forward for batch t+1
    happens at the end of batch t, and then the inputs (X) of batch t+2 are
    gathered: all three in one parallel region (``_update_forward_first``)
    when that layer has no panels, else one region each.  Work buffers are
    allocated once, outside the batch loop; ``source`` writes it out, ``cache``
    compiles or loads it."""
    return cache.load(spec, source).train_epoch


def train_batches(params, velocity, net, sgd, X, y, order, batch_size):
    """Train on ``X[order]`` in consecutive mini-batches, updating ``params`` and
    ``velocity`` in place; returns ``(loss_sum, n_correct)`` measured on each batch
    before its update.  All batches run inside one compiled call.

    Implements (X), (F), (C), (D_L), (D_l), (G), (U1)-(U4), (U6) of docs/math.md.
    Mirror: ``fastmlp.backends.reference.train_batches``.
    """
    sizes = np.asarray(net.sizes, dtype=np.int64)
    X, scale = _check_input(X, params.dtype)
    y = np.ascontiguousarray(y, dtype=np.uint8)
    order = np.ascontiguousarray(order, dtype=np.int64)
    if not y.flags.writeable:  # the one compiled signature takes writable y and order
        y = y.copy()
    if not order.flags.writeable:
        order = order.copy()
    if len(order) == 0:
        return 0.0, 0
    batch_size = int(max(batch_size, 1))
    # the loop shapes follow the requested batch size, so a short last chunk of
    # an epoch runs the same compiled code; buffers need no more than n rows
    spec = epoch_spec(net.sizes, sgd, batch_size, params.dtype)
    precompile.ensure_compiled(spec)
    if isinstance(sgd, Adam):  # (U6), see fastmlp.backends.numba.adam
        hyper = np.array([sgd.lr, sgd.beta_1, sgd.beta_2, sgd.epsilon, sgd.l2, sgd.t], dtype=np.float64)
    else:
        hyper = np.array([sgd.lr, sgd.momentum, sgd.l2, float(bool(sgd.nesterov))], dtype=np.float64)
    loss_sum, n_correct = compiled_epoch(spec)(
        params, velocity, weight_offsets(net.sizes), sizes, _codes(net), COST_CODES[net.cost], hyper,
        X, y, order, min(batch_size, len(order)), float(scale), _panel_counts(net.sizes, batch_size, params.dtype),
        numba.config.NUMBA_NUM_THREADS)
    return float(loss_sum), int(n_correct)
