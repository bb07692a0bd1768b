"""(U6) Adam in the compiled epoch: the epoch source for an ``EpochSpec`` whose
optimiser is ``"adam"``, and the Adam step (``_adam_apply``).

Every mini-batch runs (X), (F), (C)/(D_L) and (D_l) with the same kernels as
the SGD epoch (``epoch.source``); the fused (G)+(U) kernel ``_update_layer``,
specialised for plain SGD with rate -1 and no decay, writes each layer's
gradient ``g / m`` into a buffer that starts at zero (``0 - (-1) * x`` is
``x`` exactly), and ``_adam_apply`` then takes the Adam step for every
parameter and zeroes the buffer again.  The first layer's forward pass cannot
be fused with its update here (the SGD epoch's ``_update_forward_first``):
Adam needs the whole gradient before any weight changes.

The signature is the SGD epoch's (``epoch.signature``): ``velocity`` holds the
first moments, then the second moments (``network.optimizer_state_size``), and
``hyper = (lr, beta_1, beta_2, epsilon, l2, t)`` with ``t`` the Adam steps taken
before this call.

Mirror: ``fastmlp.backends.reference.adam_update`` inside ``train_batches``.
"""

import math

from numba import prange

from fastmlp.backends.numba.deltas import _hidden_layer, _output_rows
from fastmlp.backends.numba.forward import _forward_layer, _gather_input
from fastmlp.backends.numba.jit import SGD_PLAIN, kernel, specialise
from fastmlp.backends.numba.update import _update_layer


@kernel
def _adam_rows(P, M, V, G, o, n_rows, n_cols, decay, lr_t, b1, c1, b2, c2, eps):
    """(U6) for the ``n_rows x n_cols`` block of the flat buffers at ``o``:
    ``g = G + decay P``, the moments, ``P -= lr_t m / (sqrt(v) + eps)``, then
    ``G = 0`` for the next batch.  One row per iteration (each element has one
    owner, so the numbers do not depend on the thread count)."""
    for j in prange(n_rows):
        base = o + j * n_cols
        for k in range(n_cols):
            i = base + k
            g = G[i] + decay * P[i]
            mk = b1 * M[i] + c1 * g
            vk = b2 * V[i] + c2 * (g * g)
            M[i] = mk
            V[i] = vk
            P[i] -= lr_t * mk / (math.sqrt(vk) + eps)
            G[i] = 0


@kernel(args="v v v n n h i")
def _adam_apply(params, velocity, grads, offsets, sizes, hyper, step):
    """(U6) Adam step ``step`` (1-based) for every layer: weights with the L2
    decay ``hyper[4]``, biases without.  Constants are rounded to the
    parameters' dtype as the reference's NumPy scalars are."""
    dt = params.dtype.type
    n = params.shape[0]
    M = velocity[:n]
    V = velocity[n:]
    b1, b2 = hyper[1], hyper[2]
    lr_t = dt(hyper[0] * math.sqrt(1.0 - b2 ** step) / (1.0 - b1 ** step))
    zero = dt(0.0)
    for l in range(sizes.shape[0] - 1):
        n_in, n_out = sizes[l], sizes[l + 1]
        o = offsets[l]
        _adam_rows(params, M, V, grads, o, n_out, n_in, dt(hyper[4]), lr_t, dt(b1), dt(1.0 - b1), dt(b2),
                   dt(1.0 - b2), dt(hyper[3]))
        _adam_rows(params, M, V, grads, o + n_out * n_in, 1, n_out, zero, lr_t, dt(b1), dt(1.0 - b1), dt(b2),
                   dt(1.0 - b2), dt(hyper[3]))


def layer_kernels(spec):
    """The specialised dispatchers the generated Adam epoch of ``spec`` calls."""
    from fastmlp.backends.numba.epoch import _act_view, _layer_views

    found = {"gather_input": specialise(_gather_input), "layer_views": specialise(_layer_views),
             "act_view": specialise(_act_view), "output_rows": specialise(_output_rows),
             "adam_apply": specialise(_adam_apply, True)}
    for l, (par, panels, fwd) in enumerate(zip(spec.parallel, spec.panels, spec.forward_panels)):
        found[f"forward_{l}"] = specialise(_forward_layer, par, FWD_PANELS=fwd)
        found[f"gradient_{l}"] = specialise(_update_layer, par, PANELS=panels, OPT=SGD_PLAIN)
        if l > 0:
            found[f"hidden_{l}"] = specialise(_hidden_layer, par, PANELS=panels)
    return found


def source(spec):
    """Python source of the Adam epoch for ``spec``, unrolled over its layers."""
    L = spec.n_layers

    def act(buf, l, rows):
        return f"act_view({buf}, a_off[{l}], sizes[{l}], {rows})"

    x_view = "XB[:m * sizes[0]].reshape((m, sizes[0]))"
    keep = lambda l: "yes" if l == L - 1 else "no"  # noqa: E731  (keep Z only at the output)
    views = [f"    W{l}, b{l}, GW{l}, Gb{l} = layer_views(params, grads, offsets[{l}], sizes[{l}], sizes[{l + 1}])"
             for l in range(L)]
    inputs = [x_view] + [act("A_buf", l, "m") for l in range(1, L)]
    forwards = [f"        forward_{l}({inputs[l]}, m, W{l}, b{l}, acts[{l}], Z_L, {act('A_buf', l + 1, 'm')}, "
                f"{keep(l)})" for l in range(L)]
    backwards = []
    for l in range(L - 1, -1, -1):
        if l > 0:  # delta_l with the old W_l, before any update
            backwards += [f"        hidden_{l}(d{l + 1}, W{l}, {act('A_buf', l, 'm')}, m, acts[{l - 1}], "
                          f"{act('D_buf', l, 'm')}, G, panels[{l}])",
                          f"        d{l} = {act('D_buf', l, 'm')}"]
        backwards.append(f"        gradient_{l}(d{l + 1}, {inputs[l]}, m, GW{l}, Gb{l}, GW{l}, Gb{l}, ghyper, G, "
                         f"panels[{l}])")
    lines = [
        f'"""The Adam training epoch for {spec.describe()}.',
        "",
        "Generated by fastmlp.backends.numba.adam from its ``source``; Numba caches",
        'its machine code beside this file.  Deleting the folder only costs a compile."""',
        "",
        "import numpy as np",
        "",
        "from fastmlp.backends.numba import adam as _adam",
        "from fastmlp.backends.numba import epoch as _epoch",
        "from fastmlp.backends.numba.specs import spec_from_json as _spec_from_json",
        "",
        f"SPEC = _spec_from_json({spec.to_json()!r})",
        "globals().update(_adam.layer_kernels(SPEC))",
        "",
        "",
        "@_epoch.compiled(SPEC)",
        "def train_epoch(params, velocity, offsets, sizes, acts, cost, hyper, X, y, order, batch_size, scale,",
        "                panels, n_threads):",
        "    dt = params.dtype",
        "    zero = batch_size - batch_size  # 0, True, False as values, not literals (one type each)",
        "    yes = zero == 0",
        "    no = zero != 0",
        f"    a_off = np.zeros({L + 2}, np.int64)",
        f"    for l in range({L + 1}):",
        "        a_off[l + 1] = a_off[l] + batch_size * sizes[l]",
        f"    A_buf = np.zeros(a_off[{L + 1}], dt)",
        f"    D_buf = np.zeros(a_off[{L + 1}], dt)",
        "    XB = np.zeros(batch_size * sizes[0], dt)",
        f"    Z_L = np.zeros((batch_size, sizes[{L}]), dt)",
        "    G = np.zeros((n_threads, 4, sizes.max()), dt)",
        "    grads = np.zeros(params.shape[0], dt)",
        "    ghyper = np.zeros(4)",
        "    ghyper[0] = -1.0  # (U1) with rate -1 on a zero buffer: the buffer becomes the gradient",
        *views,
        "    n = order.shape[0]",
        "    loss_sum = 0.0",
        "    n_correct = 0",
        "    t = np.int64(hyper[5])",
        "    for start in range(0, n, batch_size):",
        "        m = min(batch_size, n - start)",
        "        gather_input(X, order, start, m, scale, " + x_view + ")",
        *forwards,
        f"        d{L + 0} = {act('D_buf', L, 'm')}",
        f"        loss, correct = output_rows(Z_L, {act('A_buf', L, 'm')}, y, order, start, m, acts[{L - 1}], "
        f"cost, d{L})",
        "        loss_sum += loss",
        "        n_correct += correct",
        *backwards,
        "        t += 1",
        "        adam_apply(params, velocity, grads, offsets, sizes, hyper, t)",
        "    return loss_sum, n_correct",
        "",
    ]
    return "\n".join(lines)
