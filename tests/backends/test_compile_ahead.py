"""Compiling ahead (``fastmlp compile``, ``fastmlp.compile_ahead``), what the CLI
says about a compile, two processes compiling at once, and the Numba cache of
other libraries left alone.

Each compiling test runs in child processes with a fresh ``NUMBA_CACHE_DIR``
(fastmlp keeps its compiled configurations under it then), so it measures a
first run on this machine."""

import os
import subprocess
import sys

import numpy as np
from helpers import REPO


def _env(cache_dir, **extra):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(NUMBA_CACHE_DIR=str(cache_dir), PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               **extra)
    return env


def _fastmlp(args, cache_dir):
    return subprocess.run([sys.executable, "-m", "fastmlp", *args], env=_env(cache_dir), capture_output=True,
                          text=True, timeout=900)


def test_cli_compile_says_what_and_then_finds_it_cached(tmp_path):
    first = _fastmlp(["compile", "--layers", "784,30,10"], tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    lines = first.stdout.splitlines()
    assert lines[0].startswith("compiling 9 numba kernel variants for 784-30-10 sigmoid/quadratic float64 "
                               "(once on this machine; every network reuses them), about "), lines
    assert lines[-1].startswith("compiled in ") and "cache" in lines[-1], lines
    assert "\r" not in first.stdout  # not a terminal: no counting line
    # another network with the same loop shapes, other activations, cost, momentum: nothing new
    again = _fastmlp(["compile", "--layers", "784,40,20,10", "--activation", "tanh", "--output-activation",
                      "sigmoid", "--cost", "cross_entropy", "--momentum", "0.9", "--lr", "0.5"], tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.splitlines() == ["the numba kernels for 784-40-20-10 tanh/sigmoid/cross_entropy float64 are "
                                         "already compiled (in the cache)"]
    code = ("import numpy as np, fastmlp; from fastmlp.backends.numba import plan; "
            "m = fastmlp.MLP([784, 30, 10], seed=0); "
            "assert fastmlp.compile_ahead(m) == 0.0; "
            "X = np.random.default_rng(0).integers(0, 256, (50, 784), dtype=np.uint8); "
            "m.fit(X, np.arange(50) % 10, epochs=1, progress=False); "
            "m.fit(X / 255.0, np.arange(50) % 10, epochs=1, progress=False); "  # floats: the same kernels
            "print(plan.compiled_in_process())")
    loaded = subprocess.run([sys.executable, "-c", code], env=_env(tmp_path), capture_output=True, text=True,
                            timeout=900)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert loaded.stdout.split() == ["0"], "a later run compiled in-process instead of loading the cache"


def test_compile_ahead_numpy_backend_compiles_nothing():
    import fastmlp

    assert fastmlp.compile_ahead(fastmlp.MLP([4, 3, 2], backend="numpy")) == 0.0


def test_cli_compile_refuses_the_numpy_backend(tmp_path):
    result = _fastmlp(["compile", "--backend", "numpy"], tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("fastmlp compile: error: --backend numpy compiles nothing")
    assert "Traceback" not in result.stderr


TRAIN = r"""
import sys
import numpy as np
from fastmlp.backends import numba as kernels
from fastmlp.network import Net, SGD, init_params

net = Net((50, 9, 3), ("relu", "softmax"), "nll")
rng = np.random.default_rng(0)
X = rng.integers(0, 256, (64, 50), dtype=np.uint8)
y = rng.integers(0, 3, 64).astype(np.uint8)
params = init_params(net.sizes, ["he", "xavier"], np.random.default_rng(1), np.dtype("float32"))
kernels.train_batches(params, np.zeros_like(params), net, SGD(0.1, 0.9), X, y, rng.permutation(64), 8)
np.save(sys.argv[1], params)
"""


def test_two_processes_compiling_at_once_both_succeed(tmp_path):
    """Both start with the same empty cache, compile the same configuration and
    write it at the same time; both finish, with the same weights, and a third
    process loads what they wrote."""
    cache_dir = tmp_path / "cache"
    runs = [subprocess.Popen([sys.executable, "-c", TRAIN, str(tmp_path / f"{i}.npy")], env=_env(cache_dir),
                             stderr=subprocess.PIPE, text=True) for i in range(2)]
    for run in runs:
        _, err = run.communicate(timeout=900)
        assert run.returncode == 0, err[-2000:]
    third = subprocess.run([sys.executable, "-c", TRAIN, str(tmp_path / "2.npy")], env=_env(cache_dir),
                           capture_output=True, text=True, timeout=900)
    assert third.returncode == 0, third.stderr[-2000:]
    a, b, c = (np.load(tmp_path / f"{i}.npy") for i in range(3))
    assert a.tobytes() == b.tobytes() == c.tobytes()


def test_other_numba_libraries_cache_where_they_always_do(tmp_path):
    """After fastmlp is imported and has compiled, a cached function of another
    library still caches next to its own source (Numba's default)."""
    lib = tmp_path / "otherlib.py"
    lib.write_text("import numba\n\n@numba.njit(cache=True)\ndef twice(x):\n    return 2 * x\n")
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import numpy as np; "
            "from fastmlp.backends import numba as kernels; from fastmlp.network import Net, n_params; "
            "net = Net((3, 2), ('sigmoid',), 'quadratic'); "
            "kernels.predict_proba(np.zeros(n_params(net.sizes)), net, np.zeros((2, 3), np.uint8)); "
            "import otherlib; assert otherlib.twice(2) == 4")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(XDG_CACHE_HOME=str(tmp_path / "xdg"), PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path)], env=env, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    assert list((tmp_path / "__pycache__").glob("otherlib.twice-*.nbi"))
    assert not list((tmp_path / "xdg").rglob("otherlib*"))


DAMAGED = r"""
import sys
import numpy as np
from fastmlp.backends import numba as kernels
from fastmlp.backends.numba import plan
from fastmlp.network import Net, SGD, init_params

net = Net((20, 6, 3), ("sigmoid", "sigmoid"), "quadratic")
X = np.random.default_rng(0).integers(0, 256, (40, 20), dtype=np.uint8)
params = init_params(net.sizes, ["normal"] * 2, np.random.default_rng(1), np.dtype("float64"))
kernels.train_batches(params, np.zeros_like(params), net, SGD(0.1), X, np.arange(40) % 3, np.arange(40), 4)
np.save(sys.argv[1], np.concatenate([params, kernels.predict_proba(params, net, X).ravel()]))
print(plan.compiled_in_process())
"""


def test_a_damaged_entry_is_compiled_again_alone(tmp_path):
    """One variant's cache files overwritten with garbage: the next run says so
    in one line, has that variant alone compiled again in a child (the others
    load), and trains the same weights."""
    cache_dir = tmp_path / "cache"
    run = lambda name: subprocess.run([sys.executable, "-c", DAMAGED, str(tmp_path / name)],  # noqa: E731
                                      env=_env(cache_dir), capture_output=True, text=True, timeout=900)
    first = run("first.npy")
    assert first.returncode == 0 and first.stdout.split() == ["0"], first.stderr[-2000:]
    damaged = sorted(cache_dir.rglob("*._output_rows*.nb[ic]"))
    assert damaged
    for path in damaged:
        path.write_bytes(b"\x80\x04garbage")
    second = run("second.npy")
    assert second.returncode == 0, second.stderr[-2000:]
    assert second.stdout.split() == ["0"]  # a child compiled the output kernel again, and nothing else
    note = second.stderr.strip().splitlines()
    assert len(note) == 1 and "ignored a damaged Numba cache entry of output float64" in note[0]
    assert np.load(tmp_path / "first.npy").tobytes() == np.load(tmp_path / "second.npy").tobytes()


def test_cli_compile_all_asks_for_every_variant(monkeypatch, capsys):
    """``fastmlp compile --all`` compiles ``all_variants()`` in one call (so
    side by side), announced in one line; nothing missing, it says so."""
    from fastmlp.backends import numba as kernels
    from fastmlp.cli import main

    asked = []
    monkeypatch.setattr(kernels, "missing", lambda variants: list(variants))
    monkeypatch.setattr(kernels, "estimate_seconds", lambda variants: 30.0)
    monkeypatch.setattr(kernels, "compile_variants", lambda variants: asked.append(list(variants)) or 31.0)
    assert main(["compile", "--all"]) == 0
    assert asked == [kernels.all_variants()]
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (f"compiling {len(asked[0])} numba kernel variants for every network, both dtypes (once on "
                        "this machine; every network reuses them), about 30 s")
    assert lines[-1].startswith("compiled in 31.0 s")
    monkeypatch.setattr(kernels, "missing", lambda variants: [])
    monkeypatch.setattr(kernels, "compile_variants", lambda variants: 0.0)
    assert main(["compile", "--all"]) == 0
    assert capsys.readouterr().out.strip() == f"all {len(asked[0])} numba kernel variants are already compiled (in " \
                                              "the cache)"
