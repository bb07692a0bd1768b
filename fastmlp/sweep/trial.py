"""What a worker process does for a sweep: load the data once, and run one
trial as ``fastmlp train`` would.

A trial builds its network with ``training.new_model`` and trains it with
``training.fit_model``, the functions ``fastmlp train`` calls, from the same
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

from fastmlp import training
from fastmlp._machine import available_cores
from fastmlp.errors import DivergenceError, FastMLPError
from fastmlp.sweep.grid import data_key

#: (data_dir, dataset, download) -> the loaded data set.  Each worker process
#: loads a data set once and keeps it for all its trials, so no trial ships the
#: 55 MB of images.
_datasets = {}


def dataset(key):
    """The data set of ``key`` (``grid.data_key``), loaded on first use in this process."""
    if key not in _datasets:
        data_dir, name, download = key
        _datasets[key] = training.load_data(argparse.Namespace(data_dir=data_dir, dataset=name, download=download))
    return _datasets[key]


def probe(keys, numba_trials):
    """Load each data set of ``keys`` and return ``{key: number of training
    images}``; compile (or find in the cache) every numba configuration the
    trials of ``numba_trials`` (their settings) will run, side by side, so the
    trials that start together do not each compile them.  The configurations
    are worked out here, on the worker: they depend on its CPU."""
    sizes = {key: len(dataset(key)[0]) for key in keys}
    variants = []
    for settings in numba_trials:
        args = argparse.Namespace(**settings)
        variants += training.numba_variants(training.new_model(args), args)
    if variants:
        from fastmlp.backends import numba as kernels

        kernels.compile_variants(variants)
    return sizes


def run_trial(settings, threads=None, with_model=False):
    """Train one trial; return its result as a dict.

    ``settings`` are every train option (``grid.trial_settings``); ``threads``
    the thread count when the settings give none; ``with_model``: also return
    the trained model file's bytes (for ``--save-best``).  A run that
    diverges, or fails in any other way once its data is loaded, is a result
    (``error`` set, ``diverged`` saying which), not an exception: one bad
    trial must not end the sweep or lose the others.  The figures are those
    of the model the trial keeps (after early stopping: its best epoch's);
    ``seconds`` counts every epoch it ran.
    """
    args = argparse.Namespace(**settings)
    if args.threads is None:
        args.threads = threads
    X_train, y_train, X_test, y_test = dataset(data_key(settings))
    if args.limit:
        X_train, y_train = X_train[:args.limit], y_train[:args.limit]
    model = None
    error, diverged = None, False
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model = training.new_model(args)
            model.initialize()
            training.fit_model(model, args, (X_train, y_train), (X_test, y_test))
        except DivergenceError as failure:
            error, diverged = str(failure), True
        except Exception as failure:  # noqa: BLE001 - reported as this trial's result
            error = describe(failure)
    wall = time.perf_counter() - start
    history = model.history_ if model is not None else []
    run = [*history, *(model.discarded_history_ if model is not None else [])]
    kept = history[-1] if history else {}
    result = {
        "val_accuracy": None if error else kept.get("val_accuracy"),
        "test_accuracy": None if error else kept.get("test_accuracy"),
        "loss": None if error else kept.get("loss"),
        "epochs": len(history),
        "seconds": sum(record["seconds"] for record in run),
        "wall_seconds": wall,
        # Locally the pool's initializer set NUMBA_NUM_THREADS to the trial's share.
        "threads": args.threads or int(os.environ.get("NUMBA_NUM_THREADS") or available_cores()),
        "error": error,
        "diverged": diverged,
        "warnings": sorted({str(w.message) for w in caught}),
        "pid": os.getpid(),
    }
    if with_model and error is None:
        result["model_file"] = _model_bytes(model, args, len(run))
    return result


def describe(error):
    """One line for a trial's failure: a fastmlp error's own message, else
    the exception's type and the first line of its message."""
    if isinstance(error, FastMLPError):
        return str(error)
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def failed_result(error, settings=None):
    """The result of a trial whose worker raised ``error`` before it could
    report (its data could not be loaded, say): no figures, the error."""
    return {"val_accuracy": None, "test_accuracy": None, "loss": None, "epochs": 0, "seconds": 0.0,
            "wall_seconds": 0.0, "threads": (settings or {}).get("threads"), "error": describe(error),
            "diverged": False, "warnings": [], "pid": None}


def _model_bytes(model, args, epochs_run):
    """The model file ``fastmlp train --save`` would write, as bytes (the
    process that asked for them may be on another machine)."""
    with tempfile.TemporaryDirectory(prefix="fastmlp-sweep-") as folder:
        path = Path(folder) / "model.npz"
        training.save_trained(model, args, path, run_start=0, run_total=args.epochs, epochs_run=epochs_run)
        return path.read_bytes()
