"""fastmlp._precompile: which specialisation an input needs, and what happens
when the child process cannot compile (the parent carries on, with a note).
The end-to-end check (first run equals second run, bit for bit) is in
tests/test_determinism.py."""

import numpy as np
import pytest

from fastmlp import _numba_cache, _precompile


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


def test_existing_marker_means_no_child(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(_numba_cache, "CACHE_OK", True)
    _precompile._marker("float64-uint8-rw").write_text("")
    monkeypatch.setattr(_precompile.subprocess, "run", lambda *a, **k: pytest.fail("no child expected"))
    assert _precompile.ensure_compiled("float64", np.zeros((2, 3), np.uint8)) is True
