"""fastmlp.backends.numba.plan, precompile and cache: which kernel variants a
run needs (and that a new network needs none it does not share), where their
files go, how the compiles are shared out over child processes, and what
happens when a child cannot compile (the parent carries on, with a note).
The end-to-end checks (first run equals second run, bit for bit; damaged and
read-only caches; concurrent compiles) are in test_determinism.py,
test_compile_ahead.py and test_readonly_install.py."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fastmlp.backends.numba import cache as _cache
from fastmlp.backends.numba import jit
from fastmlp.backends.numba import plan as _plan
from fastmlp.backends.numba import precompile as _precompile
from fastmlp.backends.numba.plan import Variant
from fastmlp.backends.numba.shapes import panel_tile_rows
from fastmlp.network import SGD, Adam, Net, init_params


def _needed(sizes, batch, dtype="float64", optimizer=SGD(0.1)):
    return set(_plan.needed_variants(sizes, dtype, batch_size=batch, rule=_plan.update_rule(optimizer)))


def test_networks_share_variants_when_their_loop_shapes_agree():
    """The layer count, widths, activations, cost and momentum are run-time
    data: what is compiled depends only on the loop shapes and the dtype."""
    original = _needed((784, 30, 10), 10)
    assert original == _needed((784, 64, 10), 10) == _needed((784, 30, 10), 10, optimizer=SGD(0.1, 0.9, True, 1e-4))
    assert original >= _needed((784, 40, 30, 10), 10)  # one more serial hidden layer: nothing new
    assert {v.stage for v in original} == {"forward", "gather", "hidden", "update", "first", "output", "epoch",
                                           "predict"}
    assert Variant("first", "float64", parallel=True) in original  # 10 x 784 x 30 multiply-adds: parallel
    assert not any(v.panels for v in original)
    adam = _needed((784, 30, 10), 10, optimizer=Adam(0.01))
    assert {v.stage for v in adam} - {v.stage for v in original} == {"adam_epoch", "adam_apply"}
    wide = _needed((784, 256, 10), 64, "float32")
    if panel_tile_rows():
        assert Variant("update", "float32", True, True) in wide and Variant("forward", "float32", True, True) in wide
    else:
        assert not any(v.panels for v in wide)
    assert len(_plan.all_variants(("float64",))) == (21 if panel_tile_rows() else 15)


def test_a_new_network_compiles_nothing_it_shares(tmp_path, monkeypatch):
    """Once one network's variants are in the cache, a second network with
    other widths, activations, cost and momentum finds all of its own there."""
    first = Net((7, 5, 3), ("sigmoid", "sigmoid"), "quadratic")
    second = Net((7, 6, 4, 3), ("tanh", "relu", "softmax"), "nll")
    _plan.prepare(first, "float64", batch_size=4)
    assert _plan.needed_variants(second.sizes, "float64", batch_size=4) == \
        _plan.needed_variants(first.sizes, "float64", batch_size=4)
    plan = _plan.prepare(second, "float64", batch_size=4, optimizer=SGD(0.1, 0.9))
    assert plan.compile_seconds == 0.0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_input_type_runs_the_one_compiled_driver(dtype):
    """uint8 pixels and float values, writable, read-only or not contiguous, all
    reach the kernels as the one pair type the drivers are compiled for (each
    dispatcher holds one signature per dtype).  Each kind gives the same bits
    whatever its layout, and pixels agree with the same pixels scaled
    beforehand."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (40, 6), dtype=np.uint8)
    floats = (pixels / 255.0).astype(dtype)
    kinds = {"pixels": [pixels, np.asfortranarray(pixels), pixels.copy()],
             "floats": [floats, np.asfortranarray(floats), floats.copy(), floats.astype(np.float64)]}
    for arrays in kinds.values():
        arrays[2].flags.writeable = False
    net = Net((6, 5, 3), ("sigmoid", "sigmoid"), "quadratic")
    y = rng.integers(0, 3, 40).astype(np.uint8)
    results = {}
    for kind, arrays in kinds.items():
        for X in arrays:
            params = init_params(net.sizes, ["normal"] * 2, np.random.default_rng(1), np.dtype(dtype))
            _plan.train_batches(params, np.zeros_like(params), net, SGD(0.5), X, y, np.arange(40), 10)
            got = np.concatenate([params, _plan.predict_proba(params, net, X).ravel()])
            np.testing.assert_array_equal(got, results.setdefault(kind, got))
    plan = _plan.prepare(net, dtype, batch_size=10)
    for v in plan.variants:
        signatures = [s for s in v.dispatcher().signatures if str(getattr(s[-1], "dtype", "")) == dtype
                      or str(getattr(s[0], "dtype", "")) == dtype]
        assert len(signatures) == 1, (v.describe(), v.dispatcher().signatures)
    tol = 1e-10 if dtype == "float64" else 1e-5  # x / 255 and x * (1 / 255) round differently
    np.testing.assert_allclose(results["floats"], results["pixels"], rtol=tol, atol=tol)


def test_kernels_are_compiled_for_the_signature_they_declare():
    """Each kernel's dispatcher holds only the signatures its ``@kernel(args=...)``
    declares, and returns what its ``returns`` says: the drivers call the
    kernels through their addresses with exactly those types
    (``calls.caller``), so any other signature would be a second compile and
    a call with the wrong layout."""
    net = Net((6, 5, 3), ("sigmoid", "softmax"), "nll")
    for optimizer in (SGD(0.1, 0.9), Adam(0.01)):
        plan = _plan.prepare(net, "float64", batch_size=4, optimizer=optimizer)
        for v in plan.variants:
            if v.stage in _plan.DRIVERS:
                continue
            d = v.dispatcher()
            declared = {jit.entry_signature(d, dtype) for dtype in ("float32", "float64")}
            assert jit.entry_signature(d, "float64") in d.signatures, v.describe()
            assert set(d.signatures) <= declared, v.describe()
            cres = d.overloads[jit.entry_signature(d, "float64")]
            assert cres.signature.return_type == jit.declared_signature(d.py_func, "float64").return_type


def test_folder_follows_numba_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    assert _cache.kernel_folder().parent == tmp_path / "fastmlp"
    assert _cache.kernel_folder().name.startswith("fastmlp_kernels_")


def test_folder_without_numba_cache_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert _cache.kernel_folder().parent == tmp_path / "fastmlp" / "numba"


def test_importing_sets_no_process_wide_numba_setting():
    """Other Numba libraries in the user's process must cache where they always do."""
    code = ("import os, numba.core.config as c; before = (os.environ.get('NUMBA_CACHE_DIR'), c.CACHE_DIR); "
            "import fastmlp.backends.numba; "
            "assert (os.environ.get('NUMBA_CACHE_DIR'), c.CACHE_DIR) == before, before")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)


def test_kernel_folder_carries_the_code_stamp(monkeypatch):
    """Kernels inline code of every file of the backend (but the plumbing) and
    freeze constants of ``functions``, ``config`` and ``network``: a change to
    any of them must select a new folder (and so new cache entries)."""
    assert {"backends/numba/tile.py", "backends/numba/update.py", "backends/numba/plan.py", "functions.py",
            "config.py"} <= set(_cache._DEPENDENCIES)
    backend = sorted(Path(_cache.__file__).parent.glob("*.py"))
    for path in backend:  # what is left out compiles nothing and chooses nothing that is compiled
        if f"backends/numba/{path.name}" not in _cache._DEPENDENCIES:
            assert path.name in _cache._PLUMBING
            assert not any(word in path.read_text() for word in ("@kernel", "njit", "specialise", "numba.jit"))
    before = _cache.kernel_folder()
    monkeypatch.setattr(_cache, "CODE_STAMP", "x" + _cache.CODE_STAMP)
    assert _cache.kernel_folder() != before


def test_kernel_folder_carries_the_cpu_target():
    """Code compiled for one CPU is not what another runs: a cache folder shared
    by two kinds of CPU, or a run with ``NUMBA_CPU_NAME``, must select its own
    folder (and its own "compiled" records)."""
    from fastmlp.backends.numba import isa

    if "NUMBA_CPU_NAME" in os.environ:  # this run has a chosen target: the other is the host's
        env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_CPU_")}
    else:
        env, _ = isa.avx2_environment()
        if env is None:  # not x86 with AVX2: any other target will do
            env = {**os.environ, "NUMBA_CPU_NAME": "generic"}
    code = "from fastmlp.backends.numba import cache; print(cache.kernel_folder().name)"
    other = subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True, text=True,
                           timeout=120).stdout.strip()
    assert other.startswith("fastmlp_kernels_") and other != _cache.kernel_folder().name


# --- children: fallbacks, share-out, estimates ----------------------------------------------

#: A variant that compiles in about a second, for the tests of the children.
SMALL = Variant("gather", "float64")


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    """An empty cache folder for this test's children, and the loading of
    ``plan._load`` recorded instead of done (this process compiles nothing:
    its dispatchers keep the cache folder they were made with)."""
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    calls = []
    monkeypatch.setattr(_plan, "_load", lambda variants: calls.append(list(variants)))
    monkeypatch.setattr(_plan, "is_compiled", lambda v: False)
    return calls


def test_failing_child_falls_back_with_a_note(fresh, monkeypatch, capsys):
    monkeypatch.setattr(_precompile.sys, "executable", "false")  # exits 1 at once
    _plan.compile_missing([SMALL])
    err = capsys.readouterr().err
    assert "compiling the kernels in a child process failed" in err and err.count("\n") == 1
    assert fresh == [[SMALL]]  # then this process compiles (or loads) it


def test_child_that_cannot_start_falls_back_with_a_note(fresh, monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(_precompile.sys, "executable", str(tmp_path / "no-such-python"))
    _plan.compile_missing([SMALL])
    assert "FileNotFoundError" in capsys.readouterr().err and fresh == [[SMALL]]


def test_child_that_hangs_is_stopped_with_a_note(fresh, monkeypatch, capsys):
    monkeypatch.setattr(_precompile, "CHILD_TIMEOUT", 0.5)
    monkeypatch.setattr(_precompile, "_CHILD", "import time; time.sleep(60)")
    _plan.compile_missing([SMALL])
    assert "no result after 0.5 s" in capsys.readouterr().err and fresh == [[SMALL]]


def test_no_child_without_a_lasting_cache(fresh, monkeypatch):
    monkeypatch.setattr(_cache, "persistent", lambda: False)
    monkeypatch.setattr(_precompile.subprocess, "run", lambda *a, **k: pytest.fail("no child expected"))
    _plan.compile_missing([SMALL])
    assert fresh == [[SMALL]]


def test_an_existing_record_means_nothing_to_compile(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(_plan, "_compiled", {})
    assert not _plan.is_compiled(SMALL)
    _plan._write_marker(_plan._marker(SMALL, SMALL.dispatcher()))
    assert _plan.is_compiled(SMALL)
    monkeypatch.setattr(_precompile.subprocess, "run", lambda *a, **k: pytest.fail("no child expected"))
    monkeypatch.setattr(_plan, "_load", lambda variants: None)
    assert _plan.compile_missing([SMALL]) == 0.0


CHILD_THEN_LOAD = r"""
import json, sys
from fastmlp.backends.numba import cache, plan
v = plan.Variant("gather", "float64")
before = plan.is_compiled(v)
seconds = plan.compile_missing([v])
print(json.dumps([before, seconds > 0, plan.compiled_in_process(), len(list(cache.kernel_folder().glob("*.compiled"))),
                  plan.compile_missing([v])]))
"""


def test_a_child_compiles_and_this_process_loads(tmp_path):
    """In a fresh cache the child compiles and writes the "compiled" record;
    the parent then loads the variant without compiling it, and a second
    process finds it done."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    runs = [json.loads(subprocess.run([sys.executable, "-c", CHILD_THEN_LOAD], env=env, check=True, timeout=300,
                                      capture_output=True, text=True).stdout) for _ in range(2)]
    assert runs[0] == [False, True, 0, 1, 0.0]
    assert runs[1] == [True, False, 0, 1, 0.0]
    times = json.loads((tmp_path / "fastmlp" / "compile-seconds.json").read_text())
    assert times["gather serial float64"] > 0


def test_variants_that_share_templates_compile_in_one_child():
    """The update and the first layer's fused update share the gradient's
    templates; the share-out keeps each group's estimate within the biggest
    variant's of the other, and gives every variant to exactly one child."""
    variants = _plan.needed_variants((784, 30, 10), "float64", batch_size=10)
    groups, longest = _precompile.share_out(variants, 2, lambda v: 1.0 if v.stage != "first" else 3.0,
                                            _plan._parts_of)
    assert sorted(map(str, sum(groups, []))) == sorted(map(str, variants)) and len(groups) == 2
    one, = _precompile.share_out(variants, 1, lambda v: 1.0, _plan._parts_of)[0]
    assert sorted(map(str, one)) == sorted(map(str, variants))
    # a variant whose parts a group compiles already costs that group SHARED_COST of its time
    parts = {"a": 1, "b": 3}
    groups, longest = _precompile.share_out(["x", "y", "z"], 2, {"x": 4.0, "y": 1.0, "z": 4.0}.get,
                                            lambda v: parts if v != "z" else {"c": 1})
    assert sorted(map(sorted, groups)) == [["x", "y"], ["z"]]
    assert longest == pytest.approx(4.0 + _precompile.SHARED_COST)


def test_the_estimate_follows_the_last_measured_times(tmp_path, monkeypatch):
    """Per variant the last compile measured on this machine (else the
    default of its stage, scaled for its loop shape), shared out over the
    cores as the children would be, plus a child's start."""
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(_plan, "is_compiled", lambda v: False)
    variants = [Variant("output", "float64"), Variant("gather", "float64")]
    assert _plan._seconds_of(Variant("update", "float32", True, True)) == pytest.approx(
        _plan.DEFAULT_SECONDS["update"] * 1.45 * 1.5 * 1.15)
    for v in variants:
        _plan._record(v.describe(), 2.0)
    monkeypatch.setattr(_precompile, "available_cores", lambda: 2)
    two = _plan.estimate_seconds(variants)
    monkeypatch.setattr(_precompile, "available_cores", lambda: 1)
    one = _plan.estimate_seconds(variants)
    assert one > two >= 2.0 and one == pytest.approx(4.0 + _plan.CHILD_START_SECONDS, rel=0.05)
    monkeypatch.setattr(_plan, "is_compiled", lambda v: True)
    assert _plan.estimate_seconds(variants) == 0.0


def test_child_refuses_another_copy_of_fastmlp(tmp_path):
    """The child checks it imported fastmlp from the folder it was given."""
    with pytest.raises(SystemExit, match="expected it under"):
        _plan.serve_child([str(tmp_path), "[]"])


def test_numba_stats_still_count_cache_misses():
    """``cache.compiled_here`` reads ``Dispatcher.stats`` (not a documented API):
    this fails loudly if a Numba release changes what it counts."""
    import numba

    f = numba.njit(lambda x: x + 1)
    f(1)
    assert _cache.compiled_here(f) is True
