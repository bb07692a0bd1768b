"""Run sweep trials on this machine: a pool of ``jobs`` worker processes, each
running one trial at a time on ``threads`` threads.

The workers are started with ``spawn`` rather than ``fork``: forking a parent
whose Numba or BLAS thread pools are already running can leave the child with
locks held by threads that do not exist in it.  A fresh interpreter also lets
the initializer set ``NUMBA_NUM_THREADS`` before Numba is imported, so a
worker's thread pool is its share of the cores and ``jobs`` trials at once
never oversubscribe the machine.
"""

import multiprocessing
import os
import signal
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool

from fastmlp.sweep import SweepError


def _init_worker(threads):
    """In each worker, before any trial: its thread share, and Ctrl-C left to
    the parent (which stops the workers itself)."""
    os.environ["NUMBA_NUM_THREADS"] = str(threads)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)
    try:  # NumPy is already imported here (it came with fastmlp); set its BLAS threads
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
    except ImportError:
        pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class LocalRunner:
    """Trials in ``jobs`` processes of this machine, ``threads`` threads each."""

    def __init__(self, jobs, threads, trial_threads=None):
        """``trial_threads``: what the trials' own ``--threads`` ask for (a
        text for the description), when they do."""
        self.jobs, self.threads = jobs, threads
        each = trial_threads or f"{threads} thread{'s' if threads > 1 else ''} each"
        self.where = f"{jobs} at a time on this machine, {each}"
        self._pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_init_worker, initargs=(threads,))

    def call(self, function, *args):
        """``function(*args)`` in one worker; its result."""
        try:
            return self._pool.submit(function, *args).result()
        except BrokenProcessPool:
            raise SweepError("a worker process died before the trials started (out of memory?)") from None

    def run_trials(self, settings, with_model):
        """Yield ``(index, result)`` for each trial as it finishes (results of
        :func:`fastmlp.sweep.trial.run_trial`)."""
        from fastmlp.sweep.trial import failed_result, run_trial

        futures = {self._pool.submit(run_trial, s, None, with_model): i for i, s in enumerate(settings)}
        self._futures = futures
        for future in as_completed(futures):
            i = futures[future]
            try:
                result = future.result()
            except BrokenProcessPool:
                # Every unfinished trial fails with it; which one's process died is not known.
                raise SweepError("a worker process died while trials ran (out of memory? try fewer --jobs)") from None
            except Exception as error:  # noqa: BLE001 - the trial's failure is its result
                result = failed_result(error, settings[i])
            yield i, result

    def close(self, cancel=False):
        """Shut the pool down; ``cancel``: drop the trials not started and stop
        the running ones now (Ctrl-C, or an error in one trial)."""
        if cancel:
            for future in getattr(self, "_futures", ()):
                future.cancel()
            # ProcessPoolExecutor has no public way to stop running tasks.
            for process in list(getattr(self._pool, "_processes", {}).values()):
                process.terminate()
        self._pool.shutdown(wait=True, cancel_futures=cancel)
