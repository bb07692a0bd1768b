"""The compile plan: the compiled functions a run needs, decided and loaded
once (``prepare``), and the calls that run them (``train_batches``,
``predict_proba``).

What is compiled is a *variant* (``Variant``): a kernel template (``jit``)
for one parameter dtype on this CPU, in one loop shape: serial or parallel,
and with or without its outer-product panels (the forward pass, the hidden
delta and the update have them).  The drivers (``epoch._train_epoch``,
``adam._train_epoch_adam``, ``predict._predict``) have one variant per
dtype.  Everything else is run-time data: the layer count and widths, the
activations and the cost, plain SGD, momentum or Nesterov (the
hyperparameters), the batch size and the input's dtype.  So a machine
compiles each variant once, ever (cached on disk, ``cache``), and a new
network reuses them; it compiles only the loop shapes no earlier network on
this machine took.  ``all_variants`` lists them all (18 kernels and 3
drivers per dtype on a CPU with panels).

``prepare`` decides each layer's loop shape (``shapes.layer_kinds``: the one
place it is decided), compiles what the cache lacks (in child processes,
``precompile``, which says why) and loads the rest, and returns a ``Plan``
holding the compiled drivers and the table of kernel addresses they call
(``_table``: a row per stage, a column per loop shape, ``slot``; the
drivers call through ``calls.caller``).  A column that no layer of the
network takes is 0 and never called: ``kinds`` selects only what the plan
compiled.
"""

import contextlib
import json
import sys
import time
import warnings
from dataclasses import dataclass

try:
    import fcntl
except ImportError:  # Windows: compiles are not serialised between processes
    fcntl = None

import numba
import numpy as np

from fastmlp import noise as noise_draws
from fastmlp._files import atomic_write
from fastmlp.backends.numba import cache, calls, jit, precompile
from fastmlp.backends.numba.adam import _adam_apply, _train_epoch_adam
from fastmlp.backends.numba.deltas import _hidden_layer, _output_rows
from fastmlp.backends.numba.epoch import _train_epoch
from fastmlp.backends.numba.forward import _forward_layer, _gather_input
from fastmlp.backends.numba.predict import PREDICT_CHUNK, _predict
from fastmlp.backends.numba.shapes import (FWD, PAR, PNL, _check_input, _codes, _panel_counts, input_type,
                                           layer_kinds, n_rows, panel_tile_rows)
from fastmlp.backends.numba.update import _update_forward_first, _update_layer
from fastmlp.functions import COST_CODES
from fastmlp.network import Adam, unpack, weight_offsets

#: The kernel templates by stage.  ``first`` is the first layer's update fused
#: with its next forward pass (``update._update_forward_first``).
KERNELS = {"forward": _forward_layer, "hidden": _hidden_layer, "update": _update_layer,
           "first": _update_forward_first, "gather": _gather_input, "output": _output_rows,
           "adam_apply": _adam_apply}
DRIVERS = {"epoch": _train_epoch, "adam_epoch": _train_epoch_adam, "predict": _predict}
#: Stages with panel variants; they take four columns of a kernel table
#: (``slot``).
PANEL_STAGES = ("forward", "hidden", "update")
#: Stages with serial and parallel variants only; they take two columns.
PARALLEL_STAGES = ("first", "gather")
#: The kernels each driver is handed, in its argument order.
CALLS = {"epoch": ("forward", "hidden", "update", "first", "gather", "output"),
         "adam_epoch": ("forward", "hidden", "update", "gather", "output", "adam_apply"),
         "predict": ("forward", "gather")}


def update_rule(optimizer):
    """``"adam"`` for ``network.Adam``; for SGD (plain, momentum and Nesterov
    share their compiled code) ``"sgd"``, or ``"sgd_max_norm"`` with max-norm,
    whose first layer cannot take the fused update-and-forward (the forward
    must see the weights after max-norm), so it needs the kernels of the
    unfused path too (``needed_variants``)."""
    if isinstance(optimizer, Adam):
        return "adam"
    return "sgd_max_norm" if getattr(optimizer, "max_norm", 0.0) > 0 else "sgd"


@dataclass(frozen=True)
class Variant:
    """One compiled function: ``stage`` (a key of ``KERNELS`` or ``DRIVERS``)
    for parameters of ``dtype``, serial or ``parallel``, without or with
    ``panels``."""
    stage: str
    dtype: str
    parallel: bool = False
    panels: bool = False

    def describe(self):
        shape = []
        if self.stage in PANEL_STAGES or self.stage in PARALLEL_STAGES:
            shape.append("parallel" if self.parallel else "serial")
        if self.panels:
            shape.append("panels")
        return " ".join([self.stage, *shape, self.dtype])

    def dispatcher(self):
        """The Numba dispatcher of this variant (``jit.specialise``)."""
        if self.stage in DRIVERS:
            return jit.specialise(DRIVERS[self.stage], True)
        rows = panel_tile_rows() if self.panels else 0
        parallel = self.parallel or self.stage == "adam_apply"
        return jit.specialise(KERNELS[self.stage], parallel, PANELS=rows, FWD_PANELS=rows)


def slot(parallel, panels=False):
    """The column of a loop shape in its stage's row of a kernel table
    (``_table``): ``2 * parallel + panels`` for ``PANEL_STAGES``,
    ``parallel`` for ``PARALLEL_STAGES``, as the drivers index them."""
    return 2 * int(bool(parallel)) + int(bool(panels))


def stage_variants(stage, dtype):
    """The variants of ``stage`` in the order of their columns (``slot``)."""
    if stage in PANEL_STAGES:
        return [Variant(stage, dtype, p, q) for p in (False, True) for q in (False, True)]
    if stage in PARALLEL_STAGES:
        return [Variant(stage, dtype, p) for p in (False, True)]
    return [Variant(stage, dtype)]


# --- compiling and loading -----------------------------------------------------

_compiled = {}
#: Seconds the serial row-block float64 variant of each stage takes to
#: compile when no variant has been measured on this machine: alone in a
#: fresh process, AMD EPYC Zen 4 (AVX-512), 2 cores, rounded
#: (docs/performance.md, "Compile time").
DEFAULT_SECONDS = {"forward": 1.8, "hidden": 2.5, "update": 3.4, "first": 4.4, "gather": 0.6,
                   "output": 0.9, "adam_apply": 2.3, "epoch": 2.4, "adam_epoch": 2.1, "predict": 1.7}
#: How much more a parallel variant, one with panels and a float32 one take
#: (the same measurements: 1.2-1.6x, 1.4-1.9x, 1.0-1.3x).
SHAPE_COST = (1.45, 1.5, 1.15)
_TIMES_FILE = "compile-seconds.json"


def _marker(variant, dispatcher):
    return cache.kernel_folder() / f"{dispatcher.py_func.__qualname__}-{variant.dtype}.compiled"


def is_compiled(variant):
    """Is ``variant`` loaded in this process, or recorded as in the cache?"""
    if variant in _compiled:
        return True
    return cache.persistent() and _marker(variant, variant.dispatcher()).exists()


def _signature(variant, dispatcher):
    """The one signature ``variant`` compiles for: a kernel's declared one
    (``jit.entry_signature``), a driver's ending in its kernel table
    (``_table``)."""
    if variant.stage not in DRIVERS:
        return jit.entry_signature(dispatcher, variant.dtype)
    t = numba.types
    dt = getattr(t, variant.dtype)
    vec, mat, ints = t.Array(dt, 1, "C"), t.Array(dt, 2, "C"), t.Array(t.int64, 1, "C")
    table, X, hyper = t.Array(t.int64, 2, "C"), input_type(variant.dtype), t.Array(t.float64, 1, "C")
    if variant.stage == "predict":
        return (vec, ints, ints, ints, X, ints, t.float64, mat, t.Array(dt, 3, "C"), table)
    head = (vec, vec, ints, ints, ints, ints, t.int64, hyper, X, t.Array(t.uint8, 1, "C"),
            ints, t.int64, t.float64, ints, t.Array(t.int64, 2, "C"), t.Array(dt, 3, "C"), vec, vec, mat, mat,
            vec, t.Array(t.uint64, 1, "C"), hyper, mat, hyper, hyper)
    if variant.stage == "adam_epoch":
        head += (vec, hyper)
    return head + (table,)


_noted_damage = False


def _compile(variant, damaged=None):
    """The dispatcher of ``variant``, compiled for its one signature (or loaded
    from the cache); returns ``(dispatcher, seconds spent compiling)``.  A
    damaged cache entry (a truncated index or data file) is dropped, for this
    variant only, and compiled again; or, when a list ``damaged`` is given,
    appended to it and left for the caller (``None, 0.0``)."""
    global _noted_damage
    if variant in _compiled:
        return _compiled[variant], 0.0
    dispatcher = variant.dispatcher()
    signature = _signature(variant, dispatcher)
    start = time.perf_counter()
    with warnings.catch_warnings():
        # the SGD drivers have no parallel loop of their own
        warnings.filterwarnings("ignore", r"\s*The keyword argument 'parallel=True'", numba.NumbaPerformanceWarning)
        try:
            dispatcher.compile(signature)
        except Exception as exc:
            if not _damaged(dispatcher, signature):
                raise
            dispatcher._cache.flush()  # an empty index for this function only
            if not _noted_damage:
                _noted_damage = True
                print(f"fastmlp: ignored a damaged Numba cache entry of {variant.describe()} "
                      f"({type(exc).__name__}); compiling it again.", file=sys.stderr)
            if damaged is not None:
                _drop_marker(variant, dispatcher)
                damaged.append(variant)
                return None, 0.0
            dispatcher.compile(signature)
    if variant.stage not in DRIVERS:
        declared = jit.declared_signature(dispatcher.py_func, variant.dtype).return_type
        actual = dispatcher.overloads[tuple(signature)].signature.return_type
        if declared != actual:
            raise TypeError(f"{variant.describe()} returns {actual}, its @kernel declares {declared}")
    seconds = time.perf_counter() - start
    if cache.compiled_here(dispatcher):
        if cache.persistent():
            _write_marker(_marker(variant, dispatcher))
    else:
        seconds = 0.0
    _compiled[variant] = dispatcher
    return dispatcher, seconds


def compiled_in_process():
    """How many of the variants this process loaded it had to compile itself
    (0 when a child compiled them all, ``precompile``)."""
    return sum(cache.compiled_here(d) for d in _compiled.values())


def _entry_point(driver):
    """The compiled ``driver`` (a ``Variant`` of ``DRIVERS``) as a Python
    callable of its one signature: it converts its arguments without typing
    them each call (the driver's dispatcher serves both dtypes)."""
    dispatcher = _compile(driver)[0]
    return dispatcher.overloads[tuple(_signature(driver, dispatcher))].entry_point


def _damaged(dispatcher, signature):
    """Did ``dispatcher``'s compile fail because its cache entry for
    ``signature`` cannot be read (a truncated or garbage file)?"""
    if dispatcher._cache is None or not cache.persistent():
        return False
    try:
        dispatcher._cache.load_overload(signature, dispatcher.targetctx)
    except Exception:  # noqa: BLE001  (unpickling a damaged entry raises anything)
        return True
    return False


def _drop_marker(variant, dispatcher):
    try:
        _marker(variant, dispatcher).unlink()
    except OSError:
        pass


def _write_marker(path):
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("compiled into this cache folder (fastmlp.backends.numba.plan)\n")
    except OSError:
        pass  # no marker: the next run announces a compile that turns out to be a load


def _record(key, seconds):
    """Keep ``seconds`` as the last compile time of the variant ``key``
    (``Variant.describe``)."""
    times = _read_times()
    times[key] = seconds
    try:
        with atomic_write(cache.root() / _TIMES_FILE, "w") as f:
            json.dump(times, f)
    except OSError:
        pass


def _read_times():
    try:
        times = json.loads((cache.root() / _TIMES_FILE).read_text())
        return {str(k): float(v) for k, v in times.items()}
    except (OSError, ValueError, AttributeError, TypeError):
        return {}


def _parts_of(variant):
    """What compiling ``variant`` compiles (``jit.compiled_with``), each with
    the length of its bytecode (a rough measure of its compile time)."""
    return {d: len(d.py_func.__code__.co_code) for d in jit.compiled_with(variant.dispatcher())}


def _seconds_of(variant, times=None):
    """The last compile of ``variant`` measured on this machine (``times``,
    default: the record), else ``DEFAULT_SECONDS`` for its stage scaled by
    ``SHAPE_COST`` for its loop shape and dtype."""
    times = _read_times() if times is None else times
    if variant.describe() in times:
        return times[variant.describe()]
    factor = 1.0
    for applies, cost in zip((variant.parallel, variant.panels, variant.dtype == "float32"), SHAPE_COST):
        factor *= cost if applies else 1.0
    return DEFAULT_SECONDS[variant.stage] * factor


#: Seconds a compiling child takes to start Python, Numba and fastmlp
#: (AMD EPYC Zen 4).
CHILD_START_SECONDS = 1.0


def estimate_seconds(variants):
    """About how long compiling what ``variants`` lacks takes, as
    ``compile_missing`` shares it out over the cores."""
    todo = [v for v in dict.fromkeys(variants) if not is_compiled(v)]
    if not todo:
        return 0.0
    times = _read_times()
    _, wall = precompile.share_out(todo, precompile.available_cores(), lambda v: _seconds_of(v, times), _parts_of)
    return wall + (CHILD_START_SECONDS if cache.persistent() else 0.0)


# --- the plan --------------------------------------------------------------------

def needed_variants(sizes, dtype, *, batch_size=None, rule="sgd"):
    """The variants a run needs: training ``sizes`` in mini-batches of
    ``batch_size`` (None: prediction only) with update ``rule``
    (``update_rule``), and predicting.  A stage of the driver's that no layer
    takes (the hidden delta of a network without hidden layers) is filled by
    its serial row-block variant."""
    dtype = np.dtype(dtype).name
    found = [Variant("forward", dtype), Variant("gather", dtype)]
    if batch_size is not None:
        kinds = layer_kinds(sizes, batch_size, dtype)
        driver = "adam_epoch" if rule == "adam" else "epoch"
        # see epoch._train_epoch: the first layer's update, forward and gather one at a time
        split = bool(kinds[0, PNL] or kinds[0, FWD] or (rule == "sgd_max_norm" and len(sizes) > 2))
        used = {stage: [] for stage in CALLS[driver]}
        for l, (par, pnl, fwd) in enumerate(kinds):
            used["forward"].append(Variant("forward", dtype, bool(par), bool(fwd)))
            if l > 0:
                used["hidden"].append(Variant("hidden", dtype, bool(par), bool(pnl)))
            if l > 0 or split or driver == "adam_epoch":
                used["update"].append(Variant("update", dtype, bool(par), bool(pnl)))
        if driver == "epoch":
            if split:
                used["gather"].append(Variant("gather", dtype, bool(kinds[0, PAR])))
            else:
                used["first"].append(Variant("first", dtype, bool(kinds[0, PAR])))
        for stage in CALLS[driver]:
            found += used[stage] or [Variant(stage, dtype)]
        found.append(Variant(driver, dtype))
    found.append(Variant("predict", dtype))
    return list(dict.fromkeys(found))


def all_variants(dtypes=("float64", "float32")):
    """Every variant this CPU runs (the panel variants where it has panels,
    ``shapes.panel_tile_rows``), for each of ``dtypes``."""
    found = []
    for dtype in dtypes:
        for stage in KERNELS:
            found += [v for v in stage_variants(stage, dtype) if not v.panels or panel_tile_rows()]
        found += [Variant(stage, dtype) for stage in DRIVERS]
    return found


def _table(driver, compiled):
    """The kernel table ``driver`` (a ``Variant`` of ``DRIVERS``) is handed:
    the address of each variant of ``compiled`` (``{Variant: dispatcher}``)
    it calls, a row per stage (``calls.STAGES``) and a column per loop shape
    (``slot``; for the prediction, the serial row-block variants in column
    0); 0 where none is compiled."""
    table = np.zeros((len(calls.STAGES), calls.SLOTS), dtype=np.int64)
    for stage in CALLS[driver.stage]:
        variants = stage_variants(stage, driver.dtype)
        for column, v in enumerate(variants[:1] if driver.stage == "predict" else variants):
            if v in compiled:
                table[calls.STAGES.index(stage), column] = calls.address(compiled[v], _signature(v, compiled[v]))
    return table


def compile_all(variants, *, record=True):
    """Compile (or load) each of ``variants`` in this process.  Returns
    ``{variant.describe(): seconds}`` for those it compiled; ``record`` keeps
    them for ``estimate_seconds``."""
    seconds = {}
    for v in dict.fromkeys(variants):
        spent = _compile(v)[1]
        if spent:
            seconds[v.describe()] = spent
            if record:
                _record(v.describe(), spent)
    return seconds


def compile_missing(variants):
    """Make sure each of ``variants`` is in the cache, compiling what it lacks
    in child processes side by side (``precompile``), or in this process when
    there is no lasting cache or a child failed; then load them all here.
    Processes that share a cache compile one at a time (``_compile_lock``):
    the second finds what the first compiled.  Returns the wall seconds spent
    compiling (0.0 when nothing was missing)."""
    variants = list(dict.fromkeys(variants))
    if all(is_compiled(v) for v in variants):
        _load(variants)
        return 0.0
    start = time.perf_counter()
    with _compile_lock():
        todo = [v for v in variants if not is_compiled(v)]
        if todo and cache.persistent():
            _compile_in_children(todo)
    _load(variants)
    return time.perf_counter() - start


def _compile_in_children(variants):
    seconds, failure = precompile.compile_in_children(variants, _seconds_of, _parts_of)
    for key, s in seconds.items():
        _record(key, s)
    if failure:
        print(f"fastmlp: compiling the kernels in a child process failed ({failure}); "
              "compiling in this process instead.", file=sys.stderr)


def _load(variants):
    """Load ``variants`` into this process (compiling what is still missing
    here).  Entries found damaged are compiled again in children, all at
    once, and then loaded."""
    damaged = []
    for v in variants:
        _compile(v, damaged)
    if damaged and cache.persistent():
        with _compile_lock():
            _compile_in_children(damaged)
    for v in damaged:
        _compile(v)


@contextlib.contextmanager
def _compile_lock():
    """An exclusive lock on the cache folder while compiling (``fcntl.flock``,
    released by the system if the process dies); none where the system has
    no ``flock`` or the cache lasts only for this process."""
    if fcntl is None or not cache.persistent():
        yield
        return
    folder = cache.kernel_folder()
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".compiling.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def serve_child(argv):
    """The entry point of a compiling child process (``precompile``)."""
    precompile.serve(argv, lambda variants: compile_all(variants, record=False), Variant)


class Workspace:
    """The work buffers of one epoch call for ``sizes`` and ``m`` samples per
    batch: activations and deltas of every layer (flat, at ``a_off``), three
    gathered input batches, the output's pre-activations, and per-thread
    scratch rows, and with dropout the delta factors ``F`` (laid out as the
    activations).  Allocated per call, so concurrent calls share nothing."""

    def __init__(self, sizes, m, dtype, dropout=False):
        self.a_off = np.concatenate([[0], np.cumsum(m * np.asarray(sizes, dtype=np.int64))]).astype(np.int64)
        self.F = np.zeros(self.a_off[-1] if dropout else 0, dtype)  # (R5) delta factors of the dropped layers
        self.A = np.zeros(self.a_off[-1], dtype)
        self.D = np.zeros(self.a_off[-1], dtype)
        self.XB = np.zeros((3, m * sizes[0]), dtype)
        self.Z_L = np.zeros((m, sizes[-1]), dtype)
        self.G = np.zeros((numba.config.NUMBA_NUM_THREADS, 4, max(sizes)), dtype)


class Plan:
    """What a run needs, decided once: per layer its loop shape (``kinds``,
    ``shapes.layer_kinds``) and its panel count, the compiled drivers and the
    kernel tables they are handed (``_table``).  ``compile_seconds``: the
    wall seconds making it spent compiling (0.0 when everything came from
    the cache)."""

    def __init__(self, sizes, dtype, batch_size, rule):
        self.sizes = tuple(int(s) for s in sizes)
        self.dtype = np.dtype(dtype).name
        self.batch_size = batch_size
        self.rule = rule
        self.variants = needed_variants(self.sizes, self.dtype, batch_size=batch_size, rule=rule)
        self.compile_seconds = compile_missing(self.variants)
        # the drivers call these through their addresses: the plan keeps them alive
        self.compiled = {v: _compiled[v] for v in self.variants if v.stage not in DRIVERS}
        self.offsets = weight_offsets(self.sizes)
        self.sizes_array = np.asarray(self.sizes, dtype=np.int64)
        predict = Variant("predict", self.dtype)
        self.predict_table = _table(predict, self.compiled)
        self.predict = _entry_point(predict)
        self.epoch = None
        if batch_size is not None:
            self.kinds = layer_kinds(self.sizes, batch_size, self.dtype)
            self.panels = _panel_counts(self.sizes, batch_size, self.dtype)
            driver = Variant("adam_epoch" if rule == "adam" else "epoch", self.dtype)
            self.table = _table(driver, self.compiled)
            self.epoch = _entry_point(driver)

    def train(self, params, velocity, net, sgd, X, y, order, noise=None, sample_weight=None):
        """``train_batches`` with this plan (see there)."""
        if update_rule(sgd) != self.rule:  # its table lacks kernels that optimiser calls
            raise ValueError(f"this plan was prepared for the update rule {self.rule!r}, not {update_rule(sgd)!r}")
        X, scale = _check_input(X, params.dtype)
        y, T = _targets(y, params.dtype)
        w = _weights(sample_weight)
        order = np.ascontiguousarray(order, dtype=np.int64)
        if not order.flags.writeable:  # the one compiled signature takes writable arrays
            order = order.copy()
        m = min(self.batch_size, len(order))
        work = Workspace(self.sizes, m, params.dtype, noise is not None and any(noise.rates))
        args = (params, velocity, self.offsets, work.a_off, self.sizes_array, _codes(net), COST_CODES[net.cost])
        drop, reg = _regularisation(self.sizes, noise, sgd.max_norm)
        if self.rule == "adam":  # (U6), see fastmlp.backends.numba.adam
            hyper = np.array([sgd.lr, sgd.beta_1, sgd.beta_2, sgd.epsilon, sgd.l2, sgd.t], dtype=np.float64)
            grads = np.zeros(params.shape[0], params.dtype)
            ghyper = np.array([-1.0, 0.0, 0.0, 0.0])  # (U1) with rate -1 on a zero buffer: the gradient
            loss, correct = self.epoch(*args, hyper, X, y, order, m, float(scale), self.panels, self.kinds,
                                       work.G, work.A, work.D, work.XB, work.Z_L, work.F, drop, reg, T, w,
                                       np.empty_like(hyper), grads, ghyper, self.table)
        else:
            hyper = np.array([sgd.lr, sgd.momentum, sgd.l2, float(bool(sgd.nesterov))], dtype=np.float64)
            loss, correct = self.epoch(*args, hyper, X, y, order, m, float(scale), self.panels, self.kinds,
                                       work.G, work.A, work.D, work.XB, work.Z_L, work.F, drop, reg, T, w,
                                       np.empty_like(hyper), self.table)
        return float(loss), int(correct)

    def loss_gradient(self, params, net, X, y, sample_weight=None):
        """``loss_gradient`` with this plan (see there): the kernels of the
        Adam epoch's loop shapes, called per layer from here on chunks of
        ``batch_size`` rows."""
        X, scale = _check_input(X, params.dtype)
        y, T = _targets(y, params.dtype)
        w = _weights(sample_weight)
        n = n_rows(X)
        total = float(np.sum(w))
        c = (n / total if total > 0 else 0.0) if len(w) else 1.0  # (W1) over the whole set

        def kernel(stage, par=0, pnl=0):
            return self.compiled[Variant(stage, self.dtype, bool(par), bool(pnl))]

        L = len(self.sizes) - 1
        m_max = min(self.batch_size, n)
        work = Workspace(self.sizes, m_max, params.dtype)
        grad = np.zeros_like(params)
        part = np.zeros_like(params)  # each chunk's gradient: plain SGD at rate 1 on zeros leaves -g
        ghyper = np.array([1.0, 0.0, 0.0, 0.0])
        codes, cost = _codes(net), COST_CODES[net.cost]
        order = np.arange(n, dtype=np.int64)
        weights, biases = unpack(params, self.sizes)
        part_W, part_b = unpack(part, self.sizes)
        loss = 0.0
        for start in range(0, n, self.batch_size):
            m = min(self.batch_size, n - start)
            x = work.XB[0][:m * self.sizes[0]].reshape(m, self.sizes[0])
            kernel("gather")(X, order, start, m, float(scale), x)
            acts = [x] + [work.A[work.a_off[l]:work.a_off[l] + m * self.sizes[l]].reshape(m, self.sizes[l])
                          for l in range(1, L + 1)]
            deltas = [None] + [work.D[work.a_off[l]:work.a_off[l] + m * self.sizes[l]].reshape(m, self.sizes[l])
                               for l in range(1, L + 1)]
            Z_L = work.Z_L[:m]
            for l in range(L):
                par, _, fwd = self.kinds[l]
                kernel("forward", par, fwd)(acts[l], m, weights[l], biases[l], codes[l], Z_L, acts[l + 1],
                                            l == L - 1)
            chunk_loss, _ = kernel("output")(Z_L, acts[L], y, T, w, c, order, start, m, codes[L - 1], cost,
                                               deltas[L])
            loss += chunk_loss
            part[...] = 0
            for l in range(L - 1, -1, -1):
                par, pnl, _ = self.kinds[l]
                if l > 0:
                    kernel("hidden", par, pnl)(deltas[l + 1], weights[l], acts[l], m, codes[l - 1], deltas[l],
                                               work.G, self.panels[l])
                kernel("update", par, pnl)(deltas[l + 1], acts[l], m, part_W[l], part_b[l], part_W[l], part_b[l],
                                           ghyper, work.G, self.panels[l])
            grad -= part * part.dtype.type(m / n)
        return loss / n, grad

    def predict_proba(self, params, net, X):
        """``predict_proba`` with this plan (see there)."""
        X, scale = _check_input(X, params.dtype)
        n = n_rows(X)
        out = np.empty((n, net.sizes[-1]), dtype=params.dtype)
        if n:
            work = np.empty((numba.config.NUMBA_NUM_THREADS, 2, PREDICT_CHUNK * max(self.sizes)), params.dtype)
            self.predict(params, self.offsets, self.sizes_array, _codes(net), X, np.arange(n, dtype=np.int64),
                         float(scale), out, work, self.predict_table)
        return out


def _targets(y, dtype):
    """The kernels' pair for ``y``: class labels (uint8) with an empty target
    matrix, or no labels with the target matrix ``y`` (2-D, Y'') in
    ``dtype``."""
    if np.ndim(y) == 2:
        return np.zeros(0, np.uint8), np.ascontiguousarray(y, dtype=dtype)
    y = np.ascontiguousarray(y, dtype=np.uint8)
    if not y.flags.writeable:  # the one compiled signature takes writable arrays
        y = y.copy()
    return y, np.zeros((0, 1), dtype)


def _weights(sample_weight):
    """Sample weights as the kernels take them: float64, empty for none."""
    if sample_weight is None:
        return np.zeros(0, np.float64)
    return np.array(sample_weight, dtype=np.float64)


def _regularisation(sizes, epoch_noise, max_norm):
    """The drivers' ``drop`` (the epoch's key, then per layer input the
    threshold of R3, 0 for no dropout) and ``reg`` (the max-norm limit of U8,
    0 for none; per layer input the scale ``1 / (1 - p)``; the shift radius
    of R6, 0 for none; the side of the input images)."""
    n_inputs = len(sizes) - 1
    drop = np.zeros(n_inputs + 1, dtype=np.uint64)
    reg = np.ones(n_inputs + 3, dtype=np.float64)
    reg[0] = max_norm
    reg[-2] = 0.0
    reg[-1] = noise_draws.image_side(sizes[0]) or 0
    if epoch_noise is not None:
        drop[0] = epoch_noise.key
        for k, rate in enumerate(epoch_noise.rates):
            drop[k + 1] = noise_draws.threshold(rate)
            reg[k + 1] = noise_draws.scale(rate)
        reg[-2] = epoch_noise.shift
    return drop, reg


_plans = {}


def prepare(net, dtype, *, batch_size=None, optimizer=None):
    """The ``Plan`` for training ``net`` (a ``network.Net``) with parameters of
    ``dtype`` in mini-batches of ``batch_size`` with ``optimizer`` (plain SGD
    when None), or for prediction alone when ``batch_size`` is None.  Made
    once per process for each (layer sizes, batch size, update rule, dtype):
    it compiles the variants the cache lacks, or loads them."""
    rule = update_rule(optimizer)
    key = (tuple(net.sizes), batch_size, rule if batch_size is not None else "", np.dtype(dtype).name)
    if key not in _plans:
        _plans[key] = Plan(net.sizes, dtype, None if batch_size is None else int(batch_size), key[2])
    return _plans[key]


def train_batches(params, velocity, net, sgd, X, y, order, batch_size, plan=None, noise=None,
                  sample_weight=None):
    """Train on ``X[order]`` in consecutive mini-batches, updating ``params`` and
    ``velocity`` in place; returns ``(loss_sum, n_correct)`` measured on each batch
    before its update.  All batches run inside one compiled call.  ``plan``:
    what ``prepare`` returned for this network, batch size and optimiser (else
    it is looked up, and made on first use).

    ``y``: class labels, or a target matrix (2-D, Y'');
    ``noise``: a ``fastmlp.noise.Noise`` (dropout, input shifts) or None;
    ``sgd.max_norm`` > 0 holds every hidden unit's incoming weights to that
    norm; ``sample_weight``: weights per sample of ``X`` (W1), or None.

    Implements (X), (F), (C), (D_L), (D_l), (G), (U1)-(U4), (U6), (U8),
    (R1)-(R6), (W1) of docs/math.md.
    Mirror: ``fastmlp.backends.reference.train_batches``.
    """
    if len(order) == 0:
        return 0.0, 0
    # the loop shapes follow the requested batch size, so a short last chunk of
    # an epoch runs the same compiled code; buffers need no more than n rows
    batch_size = int(max(batch_size, 1))
    if plan is None:
        plan = prepare(net, params.dtype, batch_size=batch_size, optimizer=sgd)
    return plan.train(params, velocity, net, sgd, X, y, order, noise, sample_weight)


#: Rows per chunk of a full-batch ``loss_gradient``: its loop shapes are an
#: epoch's at this batch size, and its work buffers stay small.
GRADIENT_CHUNK = 4096


def loss_gradient(params, net, X, y, sample_weight=None, plan=None):
    """The cost averaged over all of ``X`` (weighted by ``sample_weight``,
    W1) and its gradient with respect to ``params``, flat in their layout,
    without L2: what a full-batch optimiser (L-BFGS) asks for.  It runs the
    epoch's own kernels, forward, output delta, hidden deltas and gradients,
    in chunks of ``GRADIENT_CHUNK`` rows.  ``plan``: what ``prepare``
    returned for this network with ``batch_size=GRADIENT_CHUNK`` and Adam
    (whose update rule has every layer's gradient kernel).
    Mirror: ``fastmlp.backends.reference.loss_gradient``."""
    if plan is None:
        plan = prepare(net, params.dtype, batch_size=GRADIENT_CHUNK, optimizer=Adam(0.0))
    return plan.loss_gradient(params, net, X, y, sample_weight)


def predict_proba(params, net, X, plan=None):
    """Output activations ``A_L`` for every row of ``X``, ``(n, n_L)``.
    Implements (X), (F).  Mirror: ``fastmlp.backends.reference.predict_proba``."""
    if plan is None:
        plan = prepare(net, params.dtype)
    return plan.predict_proba(params, net, X)
