"""What a table of timings must name: the date, the CPU, the ISA of the code
Numba runs, the BLAS behind NumPy and the library versions.

Note: NumPy's OpenBLAS is slowed down on some machines by ``OPENBLAS_CORETYPE``
or ``OPENBLAS_L2_SIZE``; ``blas_info()`` reports which kernel it uses so a table
can say what the reference ran on.
"""

import os
import platform
import time
from pathlib import Path

import numpy as np


def cpu_model():
    """The CPU's model name (``/proc/cpuinfo`` on Linux, with family and model
    numbers when the name alone is as vague as "AMD EPYC"), and the core count."""
    name, family, model = "", "", ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key, value = key.strip(), value.strip()
            if key == "model name" and not name:
                name = value
            elif key == "cpu family" and not family:
                family = value
            elif key == "model" and not model:
                model = value
    except OSError:
        pass
    name = name or platform.processor() or platform.machine() or "unknown CPU"
    if family and model:
        name += f" (family {family} model {model})"
    return f"{name}, {os.cpu_count()} cores"


def blas_info():
    """Which BLAS NumPy uses and its kernel (via threadpoolctl, when installed)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    return "; ".join(f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')} "
                     f"threads={i.get('num_threads')}"
                     for i in threadpool_info() if i.get("user_api") == "blas")


def _version(dist):
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine():
    """What a table of timings must name: date (UTC), CPU, the ISA of the code
    Numba runs in this process, the BLAS behind NumPy and the library versions."""
    from fastmlp.backends.numba import isa

    return {"date": time.strftime("%Y-%m-%d", time.gmtime()), "cpu": cpu_model(),
            "isa": isa.HOST.describe(), "numpy": np.__version__, "blas": blas_info(),
            "numba": _version("numba"), "llvmlite": _version("llvmlite"),
            "jax": _version("jax"), "torch": _version("torch"), "python": platform.python_version()}
