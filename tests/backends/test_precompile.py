"""fastmlp.backends.numba.precompile and cache: which configuration an input
needs, where its files go, and what happens when the child process cannot
compile (the parent carries on, with a note).  The end-to-end checks (first run
equals second run, bit for bit; damaged entries) are in test_determinism.py
and test_compile_ahead.py."""

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from fastmlp.backends.numba import cache as _cache
from fastmlp.backends.numba import precompile as _precompile
from fastmlp.backends.numba.shapes import panel_tile_rows
from fastmlp.backends.numba.specs import EpochSpec, epoch_spec, predict_spec, spec_from_json
from fastmlp.network import SGD, Net


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_input_type_runs_the_one_compiled_epoch(dtype):
    """uint8 pixels and float values, writable, read-only or not contiguous, all
    reach the kernels as the one pair type the epoch and the prediction are
    compiled for (their dispatchers compile nothing else: another type would be
    refused).  Each kind gives the same bits whatever its layout, and pixels
    agree with the same pixels scaled beforehand."""
    from fastmlp.backends.numba import epoch, predict
    from fastmlp.network import init_params

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
            epoch.train_batches(params, np.zeros_like(params), net, SGD(0.5), X, y, np.arange(40), 10)
            got = np.concatenate([params, predict.predict_proba(params, net, X).ravel()])
            np.testing.assert_array_equal(got, results.setdefault(kind, got))
    assert len(epoch.compiled_epoch(epoch_spec(net.sizes, SGD(0.5), 10, dtype)).signatures) == 1
    assert len(predict.compiled_predict(predict_spec(net.sizes, dtype)).signatures) == 1
    tol = 1e-10 if dtype == "float64" else 1e-5  # x / 255 and x * (1 / 255) round differently
    np.testing.assert_allclose(results["floats"], results["pixels"], rtol=tol, atol=tol)


def test_spec_is_what_the_compiled_code_depends_on():
    """Sizes, activations and the cost are arguments: networks with the same
    layer count and loop shapes share one compiled epoch."""
    a = epoch_spec((784, 30, 10), SGD(3.0), 10, "float64")
    b = epoch_spec((784, 40, 10), SGD(0.1, 0.0, False, 1e-4), 10, "float64")
    assert a == b and a.parallel == (True, False) and a.panels == (0, 0)
    momentum = epoch_spec((784, 30, 10), SGD(0.1, 0.9), 10, "float64")
    assert momentum.optimiser == "momentum" != a.optimiser
    assert epoch_spec((784, 30, 10), SGD(0.1, 0.9, True), 10, "float64") == momentum  # Nesterov: an argument
    assert epoch_spec((784, 256, 10), SGD(0.1), 64, "float32").panels == (panel_tile_rows(),) * 2
    assert spec_from_json(a.to_json()) == a
    p = predict_spec((784, 30, 10), "float32")
    assert spec_from_json(p.to_json()) == p


def test_folder_follows_numba_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    spec = predict_spec((3, 2), "float64")
    assert _cache.folder(spec).parent == tmp_path / "fastmlp"
    assert _cache.folder(spec).name.startswith("fastmlp_predict_")


def test_folder_without_numba_cache_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    spec = predict_spec((3, 2), "float64")
    assert _cache.folder(spec).parent == tmp_path / "fastmlp" / "numba"


def test_importing_sets_no_process_wide_numba_setting():
    """Other Numba libraries in the user's process must cache where they always do."""
    import subprocess

    code = ("import os, numba.core.config as c; before = (os.environ.get('NUMBA_CACHE_DIR'), c.CACHE_DIR); "
            "import fastmlp.backends.numba; "
            "assert (os.environ.get('NUMBA_CACHE_DIR'), c.CACHE_DIR) == before, before")
    env = {k: v for k, v in __import__("os").environ.items() if k != "NUMBA_CACHE_DIR"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)


def test_module_name_carries_the_code_stamp(monkeypatch):
    """Kernels inline code of every file of the backend (but the plumbing) and freeze constants of
    ``functions``, ``config`` and ``network``: a change to any of them must
    select a new module (and so a new cache entry)."""
    assert {"backends/numba/tile.py", "backends/numba/update.py", "functions.py", "config.py"} <= set(
        _cache._DEPENDENCIES)
    backend = sorted(Path(_cache.__file__).parent.glob("*.py"))
    for path in backend:  # what is left out compiles nothing and defines no kernel
        if f"backends/numba/{path.name}" not in _cache._DEPENDENCIES:
            assert path.name in _cache._PLUMBING
            assert not any(word in path.read_text() for word in ("@kernel", "njit", "specialise", "numba.jit"))
    spec = predict_spec((3, 2), "float64")
    before = _cache.module_name(spec)
    monkeypatch.setattr(_cache, "CODE_STAMP", _cache.CODE_STAMP + "x")
    assert _cache.module_name(spec) != before


def test_module_name_carries_the_cpu_target():
    """Code compiled for one CPU is not what another runs: a cache folder shared
    by two kinds of CPU, or a run with ``NUMBA_CPU_NAME``, must select its own
    module (and its own "compiled by a child" record)."""
    import os
    import subprocess

    from fastmlp.backends.numba import isa

    if "NUMBA_CPU_NAME" in os.environ:  # this run has a chosen target: the other is the host's
        env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_CPU_")}
    else:
        env, _ = isa.avx2_environment()
        if env is None:  # not x86 with AVX2: any other target will do
            env = {**os.environ, "NUMBA_CPU_NAME": "generic"}
    code = ("from fastmlp.backends.numba import cache; from fastmlp.backends.numba.specs import predict_spec; "
            "print(cache.module_name(predict_spec((3, 2), 'float64')))")
    other = subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True, text=True,
                           timeout=120).stdout.strip()
    assert other.startswith("fastmlp_predict_")
    assert other != _cache.module_name(predict_spec((3, 2), "float64"))


def test_import_compiles_a_serial_epoch_without_a_warning(tmp_path):
    """An epoch whose layers are all serial is ``parallel=True`` without a
    parallel loop of its own (``epoch.compiled``); compiling it in this process
    must not warn, or a caller that turns warnings into errors could not train."""
    import warnings

    path = tmp_path / "fastmlp_test_serial_parallel.py"
    path.write_text("import numba\n\n@numba.njit('int64(int64)', parallel=True)\ndef f(x):\n    return x + 1\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        module = _cache._import(path.stem, path)
    assert module.f(1) == 2


@pytest.fixture
def fake_load(monkeypatch):
    """``cache.load`` without compiling: a module whose function reports
    ``misses`` cache misses (set ``.misses`` on the returned namespace)."""
    state = SimpleNamespace(misses=0, loaded=[])

    def load(spec, source):
        state.loaded.append(spec)
        stats = SimpleNamespace(cache_misses={"sig": state.misses})
        return SimpleNamespace(predict=SimpleNamespace(stats=stats))

    monkeypatch.setattr(_cache, "load", load)
    monkeypatch.setattr(_cache, "is_loaded", lambda spec: False)
    return state


SPEC = predict_spec((3, 2), "float64")


def test_failing_child_falls_back_with_a_note(tmp_path, monkeypatch, capsys, fake_load):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(_precompile.sys, "executable", "false")  # exits 1 at once
    _precompile.ensure_compiled(SPEC)
    err = capsys.readouterr().err
    assert "compiling the kernels in a child process failed" in err and err.count("\n") == 1
    assert fake_load.loaded == [SPEC]
    assert not _precompile._marker(SPEC).exists()


def test_child_that_cannot_start_falls_back_with_a_note(tmp_path, monkeypatch, capsys, fake_load):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(_precompile.sys, "executable", str(tmp_path / "no-such-python"))
    _precompile.ensure_compiled(SPEC)
    assert "FileNotFoundError" in capsys.readouterr().err


def test_child_that_hangs_is_stopped_with_a_note(tmp_path, monkeypatch, capsys, fake_load):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(_precompile, "CHILD_TIMEOUT", 0.5)
    monkeypatch.setattr(_precompile, "_CHILD", "import time; time.sleep(60)")
    _precompile.ensure_compiled(SPEC)
    assert "no result after 0.5 s" in capsys.readouterr().err
    assert fake_load.loaded == [SPEC] and not _precompile._marker(SPEC).exists()


def test_no_child_without_a_lasting_cache(monkeypatch, fake_load):
    monkeypatch.setattr(_cache, "persistent", lambda: False)
    monkeypatch.setattr(_precompile.subprocess, "Popen", lambda *a, **k: pytest.fail("no child expected"))
    _precompile.ensure_compiled(SPEC)
    assert fake_load.loaded == [SPEC]


def test_existing_marker_means_no_child(tmp_path, monkeypatch, fake_load):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    _precompile._marker(SPEC).parent.mkdir(parents=True)
    _precompile._marker(SPEC).write_text("")
    monkeypatch.setattr(_precompile.subprocess, "Popen", lambda *a, **k: pytest.fail("no child expected"))
    assert _precompile.ensure_compiled(SPEC) == {}
    assert fake_load.loaded == []


class FakeChild:
    """Stands in for ``subprocess.Popen`` of the compiling child: goes through
    its jobs as ``precompile._child`` does, without compiling; ``fails(spec)``
    says which configurations fail.  ``log`` gets what happens, in order."""

    log = []
    fails = staticmethod(lambda spec: False)

    def __init__(self, argv, stdin, stdout, stderr, text):
        self.jobs, self.err, self.returncode = [json.loads(job) for job in argv[4:]], stderr, None
        self.stdin = SimpleNamespace(lines=[], write=lambda line: self.stdin.lines.append(line),
                                     flush=lambda: None, close=lambda: None)
        self.stdout = self._run()

    def _run(self):
        for job in self.jobs:
            if "wait" in job:
                self.log.append("ready")
                yield _precompile._READY + "\n"
                assert self.stdin.lines == ["go\n"], "the parent answers once every child's kernels are done"
            elif "kernel" in job:
                self.log.append(job["kernel"])
            else:
                spec = spec_from_json(json.dumps(job))
                if self.fails(spec):
                    self.err.write("boom\n")
                    self.returncode = 1
                    return
                self.log.append(spec)
                yield _precompile._DONE + "\n"
        self.returncode = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def wait(self):
        return self.returncode

    def kill(self):
        pass


@pytest.fixture
def fake_child(monkeypatch):
    monkeypatch.setattr(_precompile.subprocess, "Popen", FakeChild)
    monkeypatch.setattr(FakeChild, "log", [])
    return FakeChild


def test_marker_written_after_the_child_and_dropped_if_the_parent_compiled(tmp_path, monkeypatch, fake_load,
                                                                          fake_child):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    _precompile.ensure_compiled(SPEC)
    assert _precompile._marker(SPEC).exists()
    _precompile._marker(SPEC).unlink()
    fake_load.misses = 1  # the cache missed in the parent after all
    _precompile.ensure_compiled(SPEC)
    assert not _precompile._marker(SPEC).exists()


def test_kernels_then_configurations_side_by_side(tmp_path, monkeypatch, fake_load, fake_child):
    """A run's entry kernels compile first, each once, shared out over two
    children; each child then waits until both have compiled theirs (the fake
    child checks that the parent answered only then) and goes on to one of the
    epoch and the prediction.  One failing configuration leaves the other's
    marker and the kernels' markers, and the parent then loads both (and so
    compiles the one that failed)."""
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(_precompile, "available_cores", lambda: 2)
    monkeypatch.setattr(fake_child, "fails", staticmethod(lambda spec: spec.kind == "predict"))
    epoch = epoch_spec((784, 30, 10), SGD(0.1), 10, "float64")
    kernels = {name for spec in (epoch, SPEC) for name in _precompile._kernels_of(spec)}
    seconds = _precompile.ensure_compiled(epoch, SPEC)
    log = fake_child.log
    assert log.count("ready") == 2 and log.index(epoch) > max(i for i, x in enumerate(log) if x == "ready")
    compiled = [x for x in log if isinstance(x, str) and x != "ready"]
    # the prediction's serial forward is the epoch's forward_1: compiled once
    assert sorted(compiled) == sorted(kernels - {"forward_rows"})
    assert _precompile._marker(epoch).exists() and not _precompile._marker(SPEC).exists()
    assert fake_load.loaded == [epoch, SPEC]
    assert _precompile.missing_kernels([epoch, SPEC]) == []
    assert set(seconds) == {_precompile.KERNELS, epoch, SPEC}


def test_one_core_compiles_everything_in_one_child(tmp_path, monkeypatch, fake_load, fake_child):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(_precompile, "available_cores", lambda: 1)
    epoch = epoch_spec((784, 30, 10), SGD(0.1), 10, "float64")
    plan = _precompile._plan(_precompile.missing_kernels([epoch, SPEC]), [epoch, SPEC], 1)
    assert len(plan) == 1 and plan[0][1] == [epoch, SPEC]
    _precompile.ensure_compiled(epoch, SPEC)
    assert fake_child.log.count("ready") == 1 and fake_child.log[-2:] == [epoch, SPEC]


def test_without_missing_kernels_each_configuration_has_a_child(tmp_path, monkeypatch, fake_load, fake_child):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    epoch = epoch_spec((784, 30, 10), SGD(0.1), 10, "float64")
    assert _precompile._plan([], [epoch, SPEC], 2) == [([], [epoch]), ([], [SPEC])]
    monkeypatch.setattr(_precompile, "missing_kernels", lambda specs: [])
    monkeypatch.setattr(_precompile, "available_cores", lambda: 2)
    _precompile.ensure_compiled(epoch, SPEC)
    assert "ready" not in fake_child.log and sorted(map(str, fake_child.log)) == sorted(map(str, [epoch, SPEC]))


def test_kernels_are_shared_out_by_size():
    """The biggest entry kernel (the first layer's fused update and forward)
    goes to one child, the rest to the other."""
    from fastmlp.backends.numba import jit

    epoch = epoch_spec((784, 30, 10), SGD(0.1), 10, "float64")
    jobs = [(epoch, name) for name in _precompile._kernels_of(epoch)]
    groups = _precompile._share_out(jobs, 2)
    sizes = [sum(jit.code_size(_precompile._kernels_of(s)[n]) for s, n in g) for g in groups]
    assert sorted(n for g in groups for _, n in g) == sorted(n for _, n in jobs)
    assert ("update_first" in [n for _, n in groups[0]]) and abs(sizes[0] - sizes[1]) <= max(sizes) / 2
    assert _precompile._share_out(jobs[:1], 2) == [jobs[:1]]


def test_the_estimate_is_the_last_measured_time_of_the_longest_compile(tmp_path, monkeypatch):
    """The entry kernels (5 s) first, if any are missing; then, side by side,
    an epoch (10 s) and a prediction (3 s) take about 10 s on two cores and 13 s
    on one; the times measured last are kept per kind."""
    from fastmlp.backends.numba import runtime

    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(runtime, "missing", list)  # as if nothing were compiled yet (another test may have)
    epoch = epoch_spec((784, 30, 10), SGD(0.1), 10, "float64")
    runtime._record_seconds({_precompile.KERNELS: 5.0, epoch: 10.0, SPEC: 3.0})
    monkeypatch.setattr(_precompile, "missing_kernels", lambda specs: [])
    monkeypatch.setattr(_precompile, "available_cores", lambda: 2)
    assert runtime.estimate_seconds([epoch, SPEC]) == 10.0
    assert runtime.estimate_seconds([SPEC]) == 3.0
    monkeypatch.setattr(_precompile, "available_cores", lambda: 1)
    assert runtime.estimate_seconds([epoch, SPEC]) == 13.0
    monkeypatch.setattr(_precompile, "missing_kernels", lambda specs: ["a kernel"])
    assert runtime.estimate_seconds([epoch, SPEC]) == 18.0


def test_child_refuses_another_copy_of_fastmlp(tmp_path):
    """The child checks it imported fastmlp from the folder it was given."""
    with pytest.raises(SystemExit, match="expected it under"):
        _precompile._child([str(tmp_path), SPEC.to_json()])


def test_numba_stats_still_count_cache_misses():
    """``cache.compiled_here`` reads ``Dispatcher.stats`` (not a documented API):
    this fails loudly if a Numba release changes what it counts."""
    import numba

    f = numba.njit(lambda x: x + 1)
    f(1)
    assert _cache.compiled_here(f) is True
    assert isinstance(EpochSpec.kind, str)


@pytest.mark.parametrize("optimizer", [SGD(0.1), pytest.param("adam", marks=pytest.mark.slow)])
def test_entry_kernels_are_called_with_the_signature_they_are_compiled_for(tmp_path, optimizer):
    """The generated functions call each entry kernel with exactly the types its
    ``@kernel(args=...)`` declares: a kernel child compiles that signature, and
    any other would be compiled again inside every caller.  The epoch and the
    prediction are compiled here, in this process, from files of their own (so
    no cache can spare the typing that this checks)."""
    from fastmlp.backends.numba import jit
    from fastmlp.network import Adam

    import numba

    numba.get_num_threads()  # start the thread pool first, as cache.load does
    optimizer = Adam(0.01) if optimizer == "adam" else optimizer
    specs = [epoch_spec((6, 5, 3), optimizer, 4, "float64"), predict_spec((6, 5, 3), "float64")]
    for spec in specs:
        path = tmp_path / f"fastmlp_test_signatures_{spec.kind}_{type(optimizer).__name__}.py"
        path.write_text(_precompile._source_of(spec)(spec))
        function = _precompile._function_of(_cache._import(path.stem, path))
        assert _cache.compiled_here(function)
        for name, dispatcher in _precompile._kernels_of(spec).items():
            # one specialisation serves both dtypes: one signature each
            declared = {jit.entry_signature(dispatcher, dtype) for dtype in ("float32", "float64")}
            assert jit.entry_signature(dispatcher, "float64") in dispatcher.signatures, name
            assert set(dispatcher.signatures) <= declared, name
