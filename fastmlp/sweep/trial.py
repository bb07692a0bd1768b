"""What a worker process does for a sweep: load the data once, and run one
trial as ``fastmlp train`` would.

A trial builds its network with ``commands.new_model`` and trains it with
``commands.fit_model``, the functions ``fastmlp train`` calls, from the same
settings and seed; so a trial's weights are bitwise the ones ``fastmlp train``
gives for the same options (the thread count does not change the Numba
backend's results).  Only the printing is left out.

The functions here run in worker processes (a local pool or Dask workers) and
return plain dicts, so they must stay importable without Dask.
"""

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

from fastmlp._machine import available_cores

#: (data_dir, dataset, download) -> the loaded data set.  Each worker process
#: loads a data set once and keeps it for all its trials, so no trial ships the
#: 55 MB of images.
_datasets = {}


def dataset(key):
    """The data set of ``key`` (``grid.data_key``), loaded on first use in this process."""
    from fastmlp.cli.commands import load_data

    if key not in _datasets:
        data_dir, name, download = key
        _datasets[key] = load_data(argparse.Namespace(data_dir=data_dir, dataset=name, download=download))
    return _datasets[key]


def probe(keys, numba_trials):
    """Load each data set of ``keys`` and return ``{key: number of training
    images}``; compile (or find in the cache) every numba configuration the
    trials of ``numba_trials`` (their settings) will run, side by side, so the
    trials that start together do not each compile them.  The configurations
    are worked out here, on the worker: they depend on its CPU."""
    from fastmlp.cli.commands import new_model, numba_variants

    sizes = {key: len(dataset(key)[0]) for key in keys}
    variants = []
    for settings in numba_trials:
        args = argparse.Namespace(**settings)
        variants += numba_variants(new_model(args), args)
    if variants:
        from fastmlp.backends import numba as kernels

        kernels.compile_variants(variants)
    return sizes


def run_trial(settings, threads=None, with_model=False):
    """Train one trial; return its result as a dict.

    ``settings`` are every train option (``grid.trial_settings``); ``threads``
    the thread count when the settings give none; ``with_model``: also return
    the trained model file's bytes (for ``--save-best``).  A run that diverges
    is a result (``error`` set), not an exception: one bad learning rate must
    not end the sweep.
    """
    from fastmlp.cli.commands import fit_model, new_model
    from fastmlp.errors import DivergenceError

    from fastmlp.sweep.grid import data_key

    args = argparse.Namespace(**settings)
    if args.threads is None:
        args.threads = threads
    X_train, y_train, X_test, y_test = dataset(data_key(settings))
    if args.limit:
        X_train, y_train = X_train[:args.limit], y_train[:args.limit]
    model = new_model(args)
    model.initialize()
    error = None
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fit_model(model, args, (X_train, y_train), (X_test, y_test))
        except DivergenceError as diverged:
            error = str(diverged)
    wall = time.perf_counter() - start
    history = model.history_
    best_epoch = getattr(model, "best_epoch_", None)  # with patience, the weights kept are that epoch's
    kept = history[best_epoch - 1] if best_epoch else (history[-1] if history else {})
    result = {
        "val_accuracy": None if error else kept.get("val_accuracy"),
        "test_accuracy": None if error else kept.get("test_accuracy"),
        "loss": None if error else kept.get("loss"),
        "epochs": len(history),
        "seconds": sum(record["seconds"] for record in history),
        "wall_seconds": wall,
        # Locally the pool's initializer set NUMBA_NUM_THREADS to the trial's share.
        "threads": args.threads or int(os.environ.get("NUMBA_NUM_THREADS") or available_cores()),
        "error": error,
        "warnings": sorted({str(w.message) for w in caught}),
        "pid": os.getpid(),
    }
    if with_model and error is None:
        result["model_file"] = _model_bytes(model, args)
    return result


def _model_bytes(model, args):
    """The model file ``fastmlp train --save`` would write, as bytes (the
    process that asked for them may be on another machine)."""
    from fastmlp.cli.commands import save_trained

    with tempfile.TemporaryDirectory(prefix="fastmlp-sweep-") as folder:
        path = Path(folder) / "model.npz"
        save_trained(model, args, path, args.epochs)
        return path.read_bytes()
