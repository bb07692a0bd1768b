"""``fastmlp.backends.numba.isa``: which vector ISA Numba compiles for.

The decision logic is fed CPU names and LLVM feature strings; the table it
uses is then checked against what Numba really emits for those names (a child
process per name, since Numba reads NUMBA_CPU_NAME once per process; the code
is compiled and read, never run, so any x86 target can be checked on any x86
host).
"""

import platform
import subprocess
import sys

import pytest

from fastmlp.backends.numba import isa

HOST_FEATURES_512 = "+64bit,+avx,+avx2,+fma,+avx512f,+avx512vl,+avx512bw,+sse4.2"
IS_X86 = platform.machine().lower() in ("x86_64", "amd64")


@pytest.mark.parametrize("name,features,label,register_bits,vector_bits,registers", [
    ("znver4", HOST_FEATURES_512, isa.AVX512, 512, 512, 32),
    ("znver4", "", isa.AVX512, 512, 512, 32),
    ("skylake-avx512", "", isa.AVX512, 512, 256, 32),     # LLVM's tuning prefers ymm
    ("skylake-avx512", "+avx512f,+avx2,+fma", isa.AVX512, 512, 256, 32),
    ("skylake-avx512", "+avx512f,+avx2,+fma,-prefer-256-bit", isa.AVX512, 512, 512, 32),
    ("haswell", "", isa.AVX2, 256, 256, 16),
    ("znver3", "", isa.AVX2, 256, 256, 16),
    ("znver3", "+avx,+avx2,+fma,-avx512f", isa.AVX2, 256, 256, 16),
    ("haswell", HOST_FEATURES_512, isa.AVX512, 512, 512, 32),  # host features win over the name
    ("znver4", "-avx512f", isa.AVX2, 256, 256, 16),
    ("haswell", "-avx,-avx2", isa.GENERIC, 128, 128, 16),    # NUMBA_ENABLE_AVX=0
    ("generic", "", isa.GENERIC, 128, 128, 16),
    ("x86-64", "", isa.GENERIC, 128, 128, 16),
    ("sandybridge", "", isa.GENERIC, 128, 128, 16),          # AVX without AVX2/FMA
    ("neoverse-n1", "+neon,+fp-armv8", isa.GENERIC, 128, 128, 16),
    ("apple-m1", "", isa.GENERIC, 128, 128, 16),
    ("", "", isa.GENERIC, 128, 128, 16),
])
def test_classify(name, features, label, register_bits, vector_bits, registers):
    got = isa.classify(name, features)
    assert (got.label, got.register_bits, got.vector_bits, got.registers) == (
        label, register_bits, vector_bits, registers)
    assert got.lanes(4) == vector_bits // 32 and got.lanes(8) == vector_bits // 64
    # the panel kernels ask for the registers' full width (tile.full_width_vectors)
    assert got.panel_bits == register_bits and got.panel_lanes(4) == register_bits // 32
    assert (f"{register_bits}-bit in the panel kernels" in got.describe()) == (register_bits != vector_bits)


def test_numba_target_follows_numba_settings(monkeypatch):
    from llvmlite import binding as llvm

    host = llvm.get_host_cpu_name()
    assert isa.numba_target({}) [0] == host
    assert isa.numba_target({"NUMBA_CPU_NAME": "generic"}) == ("generic", "")
    assert isa.numba_target({"NUMBA_CPU_NAME": "haswell", "NUMBA_CPU_FEATURES": ""}) == ("haswell", "")
    assert isa.numba_target({"NUMBA_CPU_FEATURES": "+avx2,+fma"}) == (host, "+avx2,+fma")
    # a name alone keeps the host's features, as in Numba
    name, features = isa.numba_target({"NUMBA_CPU_NAME": "haswell"})
    assert name == "haswell" and features == isa.numba_target({})[1]
    _, no_avx = isa.numba_target({"NUMBA_ENABLE_AVX": "0"})
    assert "+avx" not in no_avx


def test_host_is_what_this_process_numba_reads():
    from numba.core import config

    assert isa.HOST == isa.detect()
    if config.CPU_NAME is not None:
        assert isa.HOST.cpu_name == config.CPU_NAME


@pytest.mark.skipif(not IS_X86, reason="the AVX2 environment exists only on x86-64")
def test_avx2_environment():
    host = isa.detect({})
    env, reason = isa.avx2_environment({"PATH": "/bin", "NUMBA_CPU_NAME": "znver4"})
    if host.label == isa.GENERIC:
        assert env is None and "no AVX2" in reason
    else:
        assert reason is None
        assert env["NUMBA_CPU_NAME"] == "haswell" and env["NUMBA_CPU_FEATURES"] == ""
        assert isa.detect(env).label == isa.AVX2 and env["PATH"] == "/bin"


# --- the table against the code Numba emits ---------------------------------------

_PROBE = """
import numpy as np
from numba import njit
from fastmlp.backends.numba import isa

@njit(fastmath=True)
def dot(a, b):
    s = np.float32(0)
    for i in range(a.shape[0]):
        s += a[i] * b[i]
    return s

dot.compile("float32(float32[::1], float32[::1])")  # compiled, never run: any x86 target works
asm = next(iter(dot.inspect_asm().values()))
fmas = [l for l in asm.splitlines() if "vfmadd" in l or "mulps" in l]
width = max((512 if "zmm" in l else 256 if "ymm" in l else 128) for l in fmas)
print(isa.HOST.label, isa.HOST.vector_bits, width)
"""


def _probe(env_updates):
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_CPU_")}
    env.update(env_updates)
    return subprocess.Popen([sys.executable, "-c", _PROBE], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _check_probes(cases):
    """Start every child at once (each is one Numba import and a tiny compile)."""
    procs = [(case, _probe(case)) for case in cases]
    for case, proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        label, vector_bits, emitted = out.split()
        assert int(vector_bits) == int(emitted), (case, out)


@pytest.mark.skipif(not IS_X86, reason="x86 CPU names can only be targeted on x86-64")
def test_vector_width_matches_numba_code():
    """The host and the AVX2 path: the width ``isa`` predicts is the width of
    the multiply-adds Numba emits."""
    cases = [{}, {"NUMBA_CPU_NAME": "haswell", "NUMBA_CPU_FEATURES": ""}]
    if isa.detect({}).label == isa.AVX512:
        cases.append({"NUMBA_CPU_NAME": "haswell"})  # with the host's features: still AVX-512 code
    _check_probes(cases)


@pytest.mark.skipif(not IS_X86, reason="x86 CPU names can only be targeted on x86-64")
def test_vector_width_table_matches_numba_code():
    """Every x86 name of the tables, and the SSE baseline."""
    names = sorted(isa.AVX2_CPUS | isa.AVX512_CPUS | {"x86-64", "nehalem"})
    for start in range(0, len(names), 4):
        _check_probes([{"NUMBA_CPU_NAME": n, "NUMBA_CPU_FEATURES": ""} for n in names[start:start + 4]])


# --- both forward tiles compute the reference's (F), whichever this host uses --------

@pytest.mark.parametrize("variant", ["_fwd_block_5x4", "_fwd_block_pairs"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_forward_tiles_match_reference(variant, dtype):
    """Each row-block kernel, over every block of a layer whose width leaves
    blocks of 1-3 rows at the end (n_out 9, 10, 11) and batches that leave
    partial 5-sample tiles (m 7, 13), against ``reference.dense_forward``:
    float64 within 1e-10 absolute, float32 within 1e-4 relative to the
    largest |Z| (the team's equivalence bounds)."""
    import numpy as np

    from fastmlp.backends import reference
    from fastmlp.backends.numba import forward, jit
    from fastmlp.functions import ACTIVATION_CODES

    kernel = jit.specialise(getattr(forward, variant), False)
    rng = np.random.default_rng(0)
    for n_out in (9, 10, 11):
        for m in (7, 13):
            A_prev = rng.random((m, 37)).astype(dtype)
            W = rng.standard_normal((n_out, 37)).astype(dtype)
            b = rng.standard_normal(n_out).astype(dtype)
            Z, A = np.full((m, n_out), np.nan, dtype), np.full((m, n_out), np.nan, dtype)
            for j0 in range(0, n_out, 4):
                kernel(A_prev, m, W, b, ACTIVATION_CODES["sigmoid"], Z, A, j0, True)
            Z_ref, A_ref = reference.dense_forward(A_prev, W, b, "sigmoid")
            if dtype == "float64":
                np.testing.assert_allclose(Z, Z_ref, rtol=0, atol=1e-10)
                np.testing.assert_allclose(A, A_ref, rtol=0, atol=1e-10)
            else:
                np.testing.assert_allclose(Z, Z_ref, rtol=0, atol=1e-4 * np.abs(Z_ref).max())
                np.testing.assert_allclose(A, A_ref, rtol=0, atol=1e-4)


def test_forward_tile_follows_the_registers():
    from fastmlp.backends.numba import forward

    assert forward.FWD_TILE_ROWS == (4 if isa.HOST.registers >= 32 else 2)
    assert forward._fwd_block is (forward._fwd_block_5x4 if forward.FWD_TILE_ROWS == 4
                                  else forward._fwd_block_pairs)


@pytest.mark.parametrize("cpu,rows,narrow_vectors", [
    ("znver4", 6, 4),          # zmm, 32 registers: 6 x 4 zmm
    ("sapphirerapids", 6, 4),  # AVX-512 tuned to ymm: the panel kernels still ask for zmm
    ("haswell", 6, 2),         # AVX2, 16 ymm: 6 x 2 ymm
    ("generic", 0, 2),         # 128-bit vectors: no panels, the row blocks alone
])
def test_panel_tiles_follow_the_registers(cpu, rows, narrow_vectors):
    from fastmlp.backends.numba import tile
    from fastmlp.backends.numba.shapes import _panels, panel_tile_rows

    host = isa.classify(cpu)
    assert panel_tile_rows(host) == rows
    assert tile.narrow_vectors(host) == narrow_vectors
    assert tile.NARROW_VECTORS == tile.narrow_vectors(isa.HOST)
    # the accumulators, one row's loaded vectors and a broadcast stay in registers
    assert tile.NARROW_ROWS * narrow_vectors + narrow_vectors + 1 <= host.registers
    # a tile without rows: a wide layer at a large batch uses the row blocks alone
    for dtype in ("float32", "float64"):
        assert _panels(1024, 256, dtype, rows) == (16 if rows else 0)
