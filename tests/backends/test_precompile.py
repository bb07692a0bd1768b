"""fastmlp.backends.numba.precompile: which specialisation an input needs, and what happens
when the child process cannot compile (the parent carries on, with a note).
The end-to-end check (first run equals second run, bit for bit) is in
tests/test_determinism.py."""

import numpy as np
import pytest

from fastmlp.backends.numba import cache as _numba_cache
from fastmlp.backends.numba import precompile as _precompile


@pytest.mark.parametrize("dtype,X,key", [
    ("float64", np.zeros((2, 3), np.uint8), "float64-uint8-rw"),
    ("float32", np.zeros((2, 3), np.float32), "float32-float32-rw"),
    ("float32", np.zeros((2, 3), np.float64), "float32-float32-rw"),   # converted: a writable copy
    ("float64", np.zeros((3, 2), np.uint8).T, "float64-uint8-rw"),     # not contiguous: a copy
])
def test_types_key(dtype, X, key):
    assert _precompile._types_key(dtype, X) == key


def test_types_key_read_only_input():
    X = np.zeros((2, 3), np.uint8)
    X.flags.writeable = False
    assert _precompile._types_key("float32", X) == "float32-uint8-ro"


def test_marker_follows_the_cache_location(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    marker = _precompile._marker("float64-uint8-rw")
    assert marker.parent == tmp_path and marker.name.startswith("fastmlp-compiled-float64-uint8-rw-")


def test_failing_child_falls_back_with_a_note(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(_numba_cache, "CACHE_OK", True)
    monkeypatch.setattr(_precompile.sys, "executable", "false")  # exits 1 at once
    assert _precompile.ensure_compiled("float64", np.zeros((2, 3), np.uint8)) is False
    err = capsys.readouterr().err
    assert "compiling the kernels in a child process failed" in err and err.count("\n") == 1
    assert not list(tmp_path.glob("fastmlp-compiled-*"))


def test_no_child_without_a_writable_cache(monkeypatch):
    monkeypatch.setattr(_numba_cache, "CACHE_OK", False)
    monkeypatch.setattr(_precompile.subprocess, "run", lambda *a, **k: pytest.fail("no child expected"))
    assert _precompile.ensure_compiled("float64", np.zeros((2, 3), np.uint8)) is False


@pytest.fixture(autouse=True)
def fresh_memory(monkeypatch):
    """Each test starts with no types key remembered as checked."""
    monkeypatch.setattr(_precompile, "_ensured", set())


def test_existing_marker_means_no_child(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(_numba_cache, "CACHE_OK", True)
    _precompile._marker("float64-uint8-rw").write_text("")
    monkeypatch.setattr(_precompile.subprocess, "run", lambda *a, **k: pytest.fail("no child expected"))
    assert _precompile.ensure_compiled("float64", np.zeros((2, 3), np.uint8)) is True


def test_child_that_cannot_start_falls_back_with_a_note(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(_numba_cache, "CACHE_OK", True)
    monkeypatch.setattr(_precompile.sys, "executable", str(tmp_path / "no-such-python"))
    assert _precompile.ensure_compiled("float32", np.zeros((2, 3), np.uint8)) is False
    assert "FileNotFoundError" in capsys.readouterr().err


def test_child_refuses_another_copy_of_fastmlp(tmp_path):
    """The child checks it imported fastmlp from the folder it was given."""
    with pytest.raises(SystemExit, match="expected it under"):
        _precompile._child([str(tmp_path), "float64-uint8-rw"])


def test_markers_dropped_when_this_process_compiled(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from fastmlp.backends.numba import epoch

    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    marker = _precompile._marker("float64-uint8-rw")
    marker.write_text("")
    compiled = SimpleNamespace(stats=SimpleNamespace(cache_misses={"sig": 1}))
    monkeypatch.setattr(epoch, "_train_epoch", compiled)
    _precompile.forget_if_compiled_here("float64", np.zeros((2, 3), np.uint8))
    assert not marker.exists()


def test_read_only_labels_do_not_compile_another_epoch_kernel():
    """``train_batches`` copies a read-only ``y`` (small), so the array types the
    markers name are the only ones that select a specialisation."""
    from fastmlp.backends import numba as kernels
    from fastmlp.backends.numba import epoch
    from fastmlp.network import SGD, Net, n_params

    net = Net((3, 2, 2), ("sigmoid", "sigmoid"), "quadratic")
    params = np.zeros(n_params(net.sizes))
    X = np.zeros((2, 3), np.uint8)
    y = np.zeros(2, np.uint8)
    kernels.train_batches(params, np.zeros_like(params), net, SGD(0.1), X, y, np.arange(2), 2)
    before = len(epoch._train_epoch.signatures)
    y.flags.writeable = False
    kernels.train_batches(params, np.zeros_like(params), net, SGD(0.1), X, y, np.arange(2), 2)
    assert len(epoch._train_epoch.signatures) == before


def test_cache_keys_carry_the_dependency_stamp():
    """Constants frozen in from other modules (tile size, codes) and the
    fast-math switch are part of every cache key of the kernels."""
    from fastmlp.backends.numba import epoch

    cache = epoch._train_epoch._cache
    key = cache._index_key(epoch._train_epoch.signatures[0], epoch._train_epoch.targetctx.codegen())
    assert key[-1] == _numba_cache.DEPENDENCY_STAMP
    assert "backends/numba/tile.py:" in key[-1] and "backends/numba/update.py:" in key[-1]
    assert "functions.py:" in key[-1]


def test_checked_once_per_process(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(_numba_cache, "CACHE_OK", True)
    _precompile._marker("float64-uint8-rw").write_text("")
    X = np.zeros((2, 3), np.uint8)
    assert _precompile.ensure_compiled("float64", X) is True
    monkeypatch.setattr(_precompile, "_marker", lambda key: pytest.fail("checked twice"))
    assert _precompile.ensure_compiled("float64", X) is True
