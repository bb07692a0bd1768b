"""Numba epochs next to NumPy's BLAS in one process.

Times one numba epoch of each row on its own (after a pause that lets every
idle thread pool go to sleep), right after a large float32 matrix product in
NumPy, the same with the backend's ``before_run`` between the two (what a
run does: ``fastmlp/backends/numba/neighbours.py``), and right after
``StandardScaler`` + ``PCA(50)`` (scikit-learn, when installed) with
``before_run``; and the matrix product on its own and right after an epoch.  The
variants are interleaved and the medians printed with their ratio to the
epoch alone.  Run ``python benchmarks/neighbours.py`` with
``OPENBLAS_CORETYPE``/``OPENBLAS_L2_SIZE`` unset on a quiet machine.
"""

import statistics
import sys
import time

import numba
import numpy as np

from fastmlp import bench
from fastmlp.backends.numba import before_run
from fastmlp.bench import machine_info

ROWS = [((784, 30, 10), 10, "float64"), ((784, 128, 64, 10), 64, "float32"), ((784, 1024, 1024, 10), 256, "float32")]
PAUSE = 0.5  # seconds: longer than OpenBLAS's and the OpenMP runtime's spin before their threads sleep
REPEATS = 7


def timed(call):
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def main(repeats=REPEATS):
    X, y = bench.make_data()
    rng = np.random.default_rng(0)
    A = rng.standard_normal((2048, 2048), dtype=np.float32)

    def blas():
        A @ A

    try:
        from sklearn.decomposition import PCA
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        def pipeline():
            make_pipeline(StandardScaler(), PCA(50, random_state=0)).fit(X[:20000].astype(np.float32))
    except ImportError:
        pipeline = None
    print(f"# {machine_info.cpu_model()}; NumPy BLAS: {machine_info.blas_info()}")
    for sizes, batch, dtype in ROWS:
        epoch = bench.make_epoch("numba", sizes, batch, dtype, X, y)
        epoch()  # compile or load
        numba_layer = numba.threading_layer()
        times = {"epoch alone": [], "epoch after A @ A": [], "epoch after A @ A, before_run": [],
                 "A @ A alone": [], "A @ A after epoch": []}
        if pipeline is not None:
            times["epoch after PCA, before_run"] = []
        for _ in range(repeats):
            time.sleep(PAUSE)
            times["epoch alone"].append(timed(epoch))
            time.sleep(PAUSE)
            blas()
            times["epoch after A @ A"].append(timed(epoch))
            time.sleep(PAUSE)
            blas()
            times["epoch after A @ A, before_run"].append(timed(lambda: (before_run(), epoch())))
            if pipeline is not None:
                time.sleep(PAUSE)
                pipeline()
                times["epoch after PCA, before_run"].append(timed(lambda: (before_run(), epoch())))
            time.sleep(PAUSE)
            times["A @ A alone"].append(timed(blas))
            time.sleep(PAUSE)
            epoch()
            times["A @ A after epoch"].append(timed(blas))
        medians = {name: statistics.median(t) for name, t in times.items()}
        print(f"{'-'.join(map(str, sizes))} b{batch} {dtype} (numba layer {numba_layer}):")
        for name, seconds in medians.items():
            base = medians["A @ A alone" if name.startswith("A @ A") else "epoch alone"]
            print(f"  {name:32s} {seconds:8.4f} s  {seconds / base:5.2f}x")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
