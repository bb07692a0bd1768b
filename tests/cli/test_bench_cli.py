"""``fastmlp bench``: the table, the caption, the JSON it prints, the
``--isa`` choice and the JAX row's maths.

The command's code runs for real, on epochs of ``SMALL`` images instead of
60,000 (``epochs.N_IMAGES``), so these tests stay fast; full epochs are for
``fastmlp bench`` itself.  A part of the bench that fails (a child process, a
peer that does not import) ends the command with one line on stderr.
"""

import json
import os
import re
import sys
import time

import numpy as np
import pytest

from fastmlp import bench
from fastmlp.backends import reference
from fastmlp.backends.numba import isa
from fastmlp.bench import compile_time, epochs, peers
from fastmlp.cli import main
from fastmlp.errors import UsageError
from fastmlp.network import SGD, Net, init_params

SMALL = 400
HAS_JAX = bench.jax_available()


@pytest.fixture
def small(monkeypatch):
    monkeypatch.setattr(epochs, "N_IMAGES", SMALL)


def _json(capsys, argv):
    assert main(argv + ["--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_bench_quick_json(small, capsys):
    out = _json(capsys, ["bench", "--quick", "--repeats", "1", "--no-compile", "--backends", "numpy,numba"])
    rows = out["rows"]
    assert [(r["dtype"], r["backend"]) for r in rows] == [
        ("float64", "numpy"), ("float64", "numba"), ("float32", "numpy"), ("float32", "numba")]
    for r in rows:
        assert r["sizes"] == "784-30-10" and r["batch"] == 10
        assert r["seconds"] > 0 and r["gflops"] == pytest.approx(bench.flops_per_epoch((784, 30, 10)) / r["seconds"] / 1e9)
        assert r["speedup"] == pytest.approx(1.0) if r["backend"] == "numpy" else r["speedup"] > 0
        assert r["isa"] == (isa.HOST.label if r["backend"] == "numba" else None)
        assert r["compile_s"] is None  # --no-compile
    info = out["machine"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", info["date"]) and info["date"] in _dates_around_now()
    assert info["isa"] == isa.HOST.describe() and info["numpy"] == np.__version__
    assert info["cpu"] and info["numba"]


def test_undefined_speed_up_is_null_and_dash(small, capsys):
    """Without the numpy rows there is nothing to divide by: JSON null, '-' in the tables."""
    rows = _json(capsys, ["bench", "--quick", "--repeats", "1", "--no-compile", "--backends", "numba"])["rows"]
    assert [r["speedup"] for r in rows] == [None, None]
    text = bench.format_text(rows, bench.machine())
    assert "nan" not in text
    for line in text.splitlines()[4:6]:
        assert line.split()[:5] == ["784-30-10", "10", line.split()[2], "numba", isa.HOST.label.split()[0]]
        assert line.split()[-2:] == ["-", "-"]
    assert "| - | - |" in bench.format_table(rows)


def test_bench_markdown(small, capsys):
    assert main(["bench", "--quick", "--repeats", "1", "--no-compile", "--backends", "numpy,numba", "--markdown"]) == 0
    lines = capsys.readouterr().out.splitlines()
    caption, blank, header, rule, *rows = lines
    assert caption.startswith("*") and caption.endswith(".*")
    assert any(day in caption for day in _dates_around_now()) and bench.cpu_model() in caption
    assert isa.HOST.describe() in caption and f"NumPy {np.__version__}" in caption
    assert blank == ""
    assert header == "| network | batch | dtype | backend | ISA | s/epoch | GFLOP/s | speed-up vs numpy | compile s |"
    assert rule == "|---|---|---|---|---|---|---|---|---|"
    assert len(rows) == 4 and rows[0].startswith("| 784-30-10 | 10 | float64 | numpy | - |")
    assert f"| 784-30-10 | 10 | float32 | numba | {isa.HOST.label} |" in "\n".join(rows)


def test_compile_times_share_one_cache_in_row_order(monkeypatch):
    """Every row's first call runs in a fresh process, the rows in order and
    sharing one cache that starts empty (so a row compiles only what no
    earlier row did), then each row once more from the filled cache."""
    calls = []

    def first_call(cache, dtype, sizes, batch):
        calls.append((cache, dtype, sizes, batch))
        return 0.1, float(len(calls)), 9 if len(calls) == 1 else 0

    monkeypatch.setattr(compile_time, "_first_call", first_call)
    rows = bench.BENCH_ROWS[:3]
    got = bench.compile_times(rows)
    assert len({c[0] for c in calls}) == 1 and len(calls) == 2 * len(rows)
    assert [c[1:] for c in calls[:len(rows)]] == [(d, s, b) for s, b, d in rows]
    assert got[rows[0]] == {"first_run": 1.0, "variants": 9, "import": 0.1, "cached": len(rows) + 1.0}
    assert got[rows[1]]["variants"] == 0 and got[rows[2]]["cached"] == 2 * len(rows)


def test_compile_time_is_a_real_first_run():
    """A fresh process with an empty cache compiles; the next row with the
    same loop shapes compiles nothing; the same call from the filled cache
    loads.  The bound: loading was 20-100x faster than compiling on the
    machines measured, so half is far from either."""
    rows = [((7, 5, 3), 4, "float64"), ((7, 6, 4, 3), 4, "float64")]
    t = bench.compile_times(rows)
    assert t[rows[0]]["variants"] > 0 and t[rows[1]]["variants"] == 0
    assert t[rows[0]]["cached"] < 0.5 * t[rows[0]]["first_run"]


def test_bench_torch_missing_is_a_usage_error(monkeypatch, capsys):
    monkeypatch.setattr(bench, "torch_available", lambda: False)
    assert main(["bench", "--backends", "torch"]) == 2
    assert "PyTorch is not installed" in capsys.readouterr().err


def test_bench_jax_missing_is_a_usage_error(monkeypatch, capsys):
    monkeypatch.setattr(bench, "jax_available", lambda: False)
    assert main(["bench", "--backends", "jax"]) == 2
    assert "JAX is not installed" in capsys.readouterr().err


def test_bench_without_peers(small, monkeypatch, capsys):
    """With neither torch nor jax importable the default run has numpy and numba rows only."""
    monkeypatch.setattr(bench.peers, "available", lambda library: False)
    rows = _json(capsys, ["bench", "--quick", "--repeats", "1", "--no-compile"])["rows"]
    assert {r["backend"] for r in rows} == {"numpy", "numba"}


def test_isa_refused_where_it_makes_no_sense(monkeypatch, capsys):
    monkeypatch.setattr(isa, "avx2_environment", lambda environ=None: (None, "this CPU (neoverse-n1) has no AVX2 (or is not x86-64)"))
    assert main(["bench", "--isa", "avx2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "fastmlp bench: error: --isa avx2: this CPU (neoverse-n1) has no AVX2 (or is not x86-64)"
    assert main(["bench", "--isa", "host,avx2", "--backends", "numpy"]) == 2
    assert "only the numba rows" in capsys.readouterr().err


@pytest.mark.skipif(isa.avx2_environment()[0] is None, reason="the host has no AVX2 path (not x86-64 with AVX2)")
def test_bench_isa_avx2_runs_a_child(small, capsys):
    """The numba rows run for this process's ISA and, in a child that compiles
    for haswell (tens of seconds), for AVX2."""
    rows = _json(capsys, ["bench", "--quick", "--repeats", "1", "--no-compile", "--backends", "numba",
                          "--isa", "host,avx2"])["rows"]
    labels = [r["isa"] for r in rows if r["dtype"] == "float32"]
    assert labels[0] == isa.HOST.label and labels[1].startswith(isa.AVX2)
    assert all(r["seconds"] > 0 for r in rows)


# --- a part that fails: one line, exit status 1 -------------------------------------

def _one_line_error(capsys, argv, status=1):
    assert main(argv) == status
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert err.startswith("fastmlp bench: error: ")
    return err.strip()


#: A child whose traceback ends in a line holding an escape sequence and a tab.
_FAILING_CHILD = ("import sys; sys.stderr.write('Traceback (most recent call last):\\n  File x\\n"
                  "ValueError: broken\\x1b[0m\\there\\n'); sys.exit(3)")


def test_failing_compile_child_is_one_line(small, monkeypatch, capsys):
    """The compile-time child exits with an error: the row, the exit status and
    the child's last stderr line, escaped, in one line; no traceback."""
    monkeypatch.setattr(compile_time, "_COMPILE_SNIPPET", _FAILING_CHILD)
    err = _one_line_error(capsys, ["bench", "--quick", "--repeats", "1", "--backends", "numba"])
    assert err == ("fastmlp bench: error: the compile-time child for 784-30-10 batch 10 float64 failed "
                   "(exit status 3, expected 0): 'ValueError: broken\\x1b[0m\\there'")


def test_compile_child_printing_garbage_is_one_line(monkeypatch):
    monkeypatch.setattr(compile_time, "_COMPILE_SNIPPET", "print('hello\\x07 world')")
    with pytest.raises(bench.BenchError) as error:
        compile_time._first_call("unused", "float64", (784, 30, 10), 10)
    assert str(error.value) == ("the compile-time child for 784-30-10 batch 10 float64 printed 'hello\\x07 world': "
                                "expected its import seconds, first-call seconds and the number of variants it "
                                "compiled")
    assert error.value.exit_code == 1 and isinstance(error.value, RuntimeError)


def _fake_avx2(monkeypatch):
    env = dict(os.environ, NUMBA_CPU_NAME="haswell", NUMBA_CPU_FEATURES="")
    monkeypatch.setattr(isa, "avx2_environment", lambda environ=None: (env, None))


def test_failing_isa_child_is_one_line(small, monkeypatch, capsys):
    """The ``--isa avx2`` child exits with an error (here on any host: its
    program is replaced): one line naming it, no ``CalledProcessError``."""
    _fake_avx2(monkeypatch)
    monkeypatch.setattr(epochs, "_ISA_CHILD", _FAILING_CHILD)
    err = _one_line_error(capsys, ["bench", "--quick", "--repeats", "1", "--no-compile", "--backends", "numba",
                                   "--isa", "avx2"])
    assert err.startswith("fastmlp bench: error: the child timing the numba rows for ")
    assert err.endswith("(NUMBA_CPU_NAME=haswell) failed (exit status 3, expected 0): "
                        "'ValueError: broken\\x1b[0m\\there'")


def test_isa_child_printing_garbage_is_one_line(small, monkeypatch, capsys):
    _fake_avx2(monkeypatch)
    monkeypatch.setattr(epochs, "_ISA_CHILD", "print('[1, 2')")
    err = _one_line_error(capsys, ["bench", "--quick", "--repeats", "1", "--no-compile", "--backends", "numba",
                                   "--isa", "avx2"])
    assert err.endswith("printed [1, 2: expected the JSON list of its rows")


def test_isa_child_reports_a_failing_grandchild_as_its_message(monkeypatch, capsys):
    """Inside the ``--isa`` child a failing compile-time child is the child's
    one-line message on stderr (which the parent quotes), not a traceback."""
    monkeypatch.setattr(epochs, "N_IMAGES", epochs.N_IMAGES)  # _child_main sets it: restored after
    monkeypatch.setattr(epochs, "_time_rows", lambda rows, backends, repeats: {
        row + ("numba",): (1.0, None) for row in rows})

    def first_call(cache, dtype, sizes, batch):
        raise bench.BenchError("the compile-time child for 7-5-3 batch 4 float64 failed "
                               "(exit status 1, expected 0): x")

    monkeypatch.setattr(compile_time, "_first_call", first_call)
    spec = json.dumps({"rows": [[[7, 5, 3], 4, "float64"]], "repeats": 1, "compile": True, "n_images": 40})
    with pytest.raises(SystemExit) as exit_:
        epochs._child_main(spec)
    assert exit_.value.code == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "the compile-time child for 7-5-3 batch 4 float64 failed (exit status 1, expected 0): x\n"


def test_run_bench_refuses_avx2_before_timing(monkeypatch):
    """The library checks ``isas`` before it times anything (a usage error, as the command's)."""
    monkeypatch.setattr(isa, "avx2_environment", lambda environ=None: (None, "this CPU (x) has no AVX2"))
    monkeypatch.setattr(epochs, "_time_rows", lambda *a: pytest.fail("timed before checking --isa"))
    with pytest.raises(UsageError) as error:
        bench.run_bench(bench.BENCH_ROWS[:1], backends=("numpy", "numba"), isas=("avx2",))
    assert str(error.value) == "--isa avx2: this CPU (x) has no AVX2" and error.value.exit_code == 2


@pytest.mark.parametrize("library,name", [("torch", "PyTorch"), ("jax", "JAX")])
def test_peer_that_does_not_import_is_one_line(small, monkeypatch, capsys, library, name):
    """A peer found installed that fails to import (``None`` in ``sys.modules``
    makes ``import`` fail as a broken install does): one line, exit status 1."""
    monkeypatch.setattr(peers, "available", lambda lib: True)
    monkeypatch.setitem(sys.modules, library, None)
    err = _one_line_error(capsys, ["bench", "--quick", "--repeats", "1", "--no-compile", "--backends", library])
    assert err == (f"fastmlp bench: error: {name} is installed but does not import (ModuleNotFoundError: "
                   f"import of {library} halted; None in sys.modules): expected 'import {library}' to work, "
                   "or uninstall it")


def test_peer_import_error_keeps_its_first_line(tmp_path, monkeypatch):
    """NumPy-built extensions fail with messages of many lines: the first, escaped, in one line."""
    (tmp_path / "brokenpeer.py").write_text("raise ImportError('libfoo.so:\\tcannot open\\n\\nmore advice')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(bench.BenchError) as error:
        peers.load("brokenpeer")
    assert str(error.value) == ("brokenpeer is installed but does not import ('ImportError: libfoo.so:\\tcannot "
                                "open'): expected 'import brokenpeer' to work, or uninstall it")


# --- the JAX row computes the reference's epoch ------------------------------------

@pytest.mark.skipif(not HAS_JAX, reason="jax is not installed (pip install jax)")
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_jax_epoch_matches_reference(dtype):
    """Two epochs of a tiny network (batch 8 over 50 samples: six full batches
    in the scan and a shorter last one) against the NumPy reference, within the
    team's equivalence bounds (float64 1e-10 absolute, float32 1e-4 relative to
    the largest weight); the weights move by O(1), so a wrong step could not pass."""
    net = Net((20, 7, 5), ("sigmoid", "sigmoid"), "quadratic")
    rng = np.random.default_rng(3)
    X = rng.integers(0, 256, (50, 20), dtype=np.uint8)
    y = rng.integers(0, 5, 50).astype(np.uint8)
    start = init_params(net.sizes, ["normal"] * 2, np.random.default_rng(0), np.dtype(dtype))
    order = np.random.default_rng(1).permutation(50).astype(np.int64)
    epoch = bench.peers.JaxEpoch(start, net, X, y, order, 8, dtype, 3.0)
    ref = start.copy()
    for _ in range(2):
        reference.train_batches(ref, np.zeros_like(ref), net, SGD(3.0), X, y, order, 8)
        epoch()
    got = epoch.params()
    assert got.dtype == np.dtype(dtype) and epoch.compile_seconds > 0
    assert np.abs(ref - start).max() > 0.1
    if dtype == "float64":
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-10)
    else:
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-4 * np.abs(ref).max())


@pytest.mark.skipif(not HAS_JAX, reason="jax is not installed (pip install jax)")
def test_bench_jax_row(small, capsys):
    rows = _json(capsys, ["bench", "--quick", "--repeats", "1", "--backends", "numpy,jax"])["rows"]
    jax_rows = [r for r in rows if r["backend"] == "jax"]
    assert [r["dtype"] for r in jax_rows] == ["float64", "float32"]
    assert all(r["compile_s"] > 0 and r["seconds"] > 0 and r["speedup"] > 0 for r in jax_rows)


def _dates_around_now():
    """Today's UTC date and the one a minute ago, so a run that crosses
    midnight UTC still matches the date the bench printed."""
    return {time.strftime("%Y-%m-%d", time.gmtime(time.time() - lag)) for lag in (0, 60)}
