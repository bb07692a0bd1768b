"""``fastmlp bench``: the table and the JSON it prints (one quick, real measurement)."""

import json

import pytest

from fastmlp.cli import main


def test_bench_quick_json(capsys):
    assert main(["bench", "--quick", "--repeats", "1", "--no-compile", "--backends", "numpy,numba", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert {(r["dtype"], r["backend"]) for r in rows} == {
        ("float64", "numpy"), ("float64", "numba"), ("float32", "numpy"), ("float32", "numba")}
    for r in rows:
        assert r["sizes"] == "784-30-10" and r["batch"] == 10
        assert r["seconds"] > 0 and r["gflops"] > 0
        assert r["speedup"] == pytest.approx(1.0) if r["backend"] == "numpy" else r["speedup"] > 0


def test_bench_table(capsys):
    assert main(["bench", "--quick", "--repeats", "1", "--no-compile", "--backends", "numba"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| network | batch | dtype | backend | s/epoch | GFLOP/s |")
    assert "| 784-30-10 | 10 | float32 | numba |" in out


def test_bench_torch_missing_is_a_usage_error(monkeypatch, capsys):
    from fastmlp.cli import bench

    monkeypatch.setattr(bench, "torch_available", lambda: False)
    assert main(["bench", "--backends", "torch"]) == 2
    assert "PyTorch is not installed" in capsys.readouterr().err
