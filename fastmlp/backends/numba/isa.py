"""The vector ISA of the code Numba emits on this process: CPU name, features,
vector width and register count, decided once at import.

Numba chooses its target the same way for every function it compiles
(``numba.core.codegen.CPUCodegen``): the CPU name is ``NUMBA_CPU_NAME`` when
set, else LLVM's host CPU; the features are ``NUMBA_CPU_FEATURES`` when set
(empty for ``NUMBA_CPU_NAME=generic``), else the host's features (with every
``avx*`` feature switched off when ``NUMBA_ENABLE_AVX=0``).  An empty feature
string means "whatever the named CPU has", so this module carries a table of
what LLVM's x86 CPU names imply.

Two widths matter and they differ on Intel's AVX-512 parts: the registers are
512 bits wide, but LLVM's tuning for skylake-avx512, icelake, sapphirerapids and
the x86-64-v4 level prefers 256-bit vectors, so loops vectorise to ``ymm``
(32 of them) rather than ``zmm``.  On an AMD EPYC (Zen 4) with Numba 0.68.1 /
llvmlite 0.50, a fast-math dot product compiled with
``NUMBA_CPU_NAME=<name> NUMBA_CPU_FEATURES=""`` uses zmm only for znver4;
skylake-avx512, icelake-server, sapphirerapids and x86-64-v4 use ymm
(tests/backends/test_isa.py repeats the check).  ``vector_bits`` is the width
the vectoriser uses, ``register_bits`` the width of the registers; the panel
kernels ask for the full width (``panel_bits``, ``tile.full_width_vectors``).
"""

import os
from dataclasses import dataclass

AVX512 = "AVX-512"
AVX2 = "AVX2"
GENERIC = "generic"

#: x86 CPU names (LLVM's spelling) whose default features include AVX-512F.
AVX512_CPUS = frozenset({
    "knl", "knm", "skylake-avx512", "cascadelake", "cooperlake", "cannonlake",
    "icelake-client", "icelake-server", "tigerlake", "rocketlake", "sapphirerapids",
    "emeraldrapids", "graniterapids", "graniterapids-d", "diamondrapids", "znver4", "znver5",
    "x86-64-v4",
})
#: Of those, the ones LLVM tunes to prefer 256-bit vectors (``prefer-256-bit``).
PREFER_256_CPUS = AVX512_CPUS - {"knl", "knm", "znver4", "znver5"}
#: x86 CPU names whose default features include AVX2 and FMA but not AVX-512F.
AVX2_CPUS = frozenset({
    "haswell", "broadwell", "skylake", "alderlake", "raptorlake", "meteorlake", "arrowlake",
    "arrowlake-s", "lunarlake", "pantherlake", "gracemont", "sierraforest", "grandridge",
    "clearwaterforest", "znver1", "znver2", "znver3", "bdver4", "x86-64-v3",
})


@dataclass(frozen=True)
class Isa:
    """What the kernels are compiled for."""
    cpu_name: str
    features: str
    label: str          # AVX512, AVX2 or GENERIC
    register_bits: int  # width of one vector register
    vector_bits: int    # width LLVM's vectoriser uses
    registers: int      # vector registers the ISA names

    def lanes(self, itemsize):
        """Elements of ``itemsize`` bytes in one vector the vectoriser uses."""
        return self.vector_bits // (8 * itemsize)

    @property
    def panel_bits(self):
        """Width of the panel kernels' vectors: the registers' full width,
        which they ask LLVM for (``tile.full_width_vectors``)."""
        return self.register_bits

    def panel_lanes(self, itemsize):
        """Elements of ``itemsize`` bytes in one vector of the panel kernels."""
        return self.panel_bits // (8 * itemsize)

    def describe(self):
        width = f"{self.vector_bits}-bit vectors"
        if self.panel_bits != self.vector_bits:
            width += f", {self.panel_bits}-bit in the panel kernels"
        return f"{self.label} ({self.cpu_name}, {width}, {self.registers} vector registers)"


def _flags(features):
    """``"+avx2,-avx512f"`` -> ``{"avx2": True, "avx512f": False}``."""
    out = {}
    for item in features.split(","):
        item = item.strip()
        if len(item) > 1 and item[0] in "+-":
            out[item[1:]] = item[0] == "+"
    return out


def classify(cpu_name, features=""):
    """The ``Isa`` LLVM targets for ``cpu_name`` with ``features`` (LLVM's
    ``+feat,-feat`` string; explicit flags win over what the name implies)."""
    name = (cpu_name or "generic").lower()
    flags = _flags(features or "")
    by_name_512 = name in AVX512_CPUS
    by_name_avx2 = by_name_512 or name in AVX2_CPUS
    avx512 = flags.get("avx512f", by_name_512)
    # AVX2 code without FMA is rare; the kernels' tiles count on fused multiply-adds
    avx2 = flags.get("avx2", by_name_avx2) and flags.get("fma", by_name_avx2)
    if avx512 and avx2:
        prefer_256 = flags.get("prefer-256-bit", name in PREFER_256_CPUS)
        return Isa(cpu_name, features, AVX512, 512, 256 if prefer_256 else 512, 32)
    if avx2:
        return Isa(cpu_name, features, AVX2, 256, 256, 16)
    # Anything else (SSE-only x86, ARM NEON, SVE at its 128-bit minimum, POWER
    # VSX): 128-bit vectors; 16 registers is the smallest file among them (SSE),
    # so tiles sized for it never spill on the others.
    return Isa(cpu_name, features, GENERIC, 128, 128, 16)


def numba_target(environ=None):
    """``(cpu_name, features)`` Numba compiles for, decided as
    ``numba.core.codegen`` does, from ``environ`` (default ``os.environ``)."""
    from llvmlite import binding as llvm

    env = os.environ if environ is None else environ
    name = env.get("NUMBA_CPU_NAME")
    features = env.get("NUMBA_CPU_FEATURES")
    if features is None and name is not None and name.lower() == "generic":
        features = ""
    if name is None:
        name = llvm.get_host_cpu_name()
    if features is None:
        features = _host_features(env, name)
    return name, features


#: CPU names for which Numba switches AVX off unless NUMBA_ENABLE_AVX says otherwise
#: (``numba.core.config.avx_default``).
_NUMBA_NO_AVX_CPUS = frozenset({"corei7-avx", "core-avx-i", "sandybridge", "ivybridge", "nocona"})


def _host_features(env, cpu_name):
    from llvmlite import binding as llvm

    try:
        features = llvm.get_host_cpu_features()
    except RuntimeError:  # LLVM cannot read them on this platform
        return ""
    enable = env.get("NUMBA_ENABLE_AVX")
    avx_on = (cpu_name not in _NUMBA_NO_AVX_CPUS) if enable is None else enable.strip() not in ("0", "")
    if not avx_on:
        for key in features:
            if key.startswith("avx"):
                features[key] = False
    return features.flatten()


def detect(environ=None):
    """The ``Isa`` of the code Numba emits in a process with ``environ``
    (default: what this process's Numba has read, ``numba.core.config``)."""
    if environ is not None:
        return classify(*numba_target(environ))
    from numba.core import codegen, config

    name = config.CPU_NAME
    if name is None:
        from llvmlite import binding as llvm

        name = llvm.get_host_cpu_name()
    features = config.CPU_FEATURES
    if features is None:
        features = codegen.get_host_cpu_features()
    return classify(name, features)


#: This process's target, decided once (Numba reads its settings once too).
HOST = detect()


def avx2_environment(environ=None):
    """The environment that makes Numba emit AVX2 code on an AVX-512 x86 host
    (``NUMBA_CPU_NAME=haswell`` and an empty ``NUMBA_CPU_FEATURES``: with the
    host's features, which include ``+avx512f``, LLVM still emits zmm code), or
    a one-line reason why that makes no sense here."""
    env = dict(os.environ if environ is None else environ)
    host = classify(*numba_target({k: v for k, v in env.items() if not k.startswith("NUMBA_CPU_")}))
    if host.label == GENERIC:
        return None, f"this CPU ({host.cpu_name}) has no AVX2 (or is not x86-64)"
    env["NUMBA_CPU_NAME"] = "haswell"
    env["NUMBA_CPU_FEATURES"] = ""
    return env, None
