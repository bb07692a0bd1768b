"""Run sweep trials on a Dask distributed cluster (``pip install fastmlp[dask]``).

Dask does the scheduling: one task per trial, submitted with ``retries`` (a
trial that raises is run again) and ``pure=False`` (two trials with equal
settings are still two runs).  A worker that dies mid-trial is Dask's own
business: the scheduler gives the trial to another worker, so it costs that
trial a run, not the sweep.  Each worker loads the data set itself (its
``--data-dir``, ``$FASTMLP_DATA`` or its cache) once per process, rather than
receiving 55 MB of images with every trial.

Threads: a worker on a host where the cluster runs ``k`` trials at once (the
sum of the ``nthreads`` of the workers there) gives each trial ``cores / k``
threads, as ``--jobs`` does on this machine.  Start workers with one thread
each (``dask worker ADDRESS --nworkers N --nthreads 1``): trials in threads of
one process would share one Numba thread pool and take turns on it.
"""

import logging
import time

from fastmlp.errors import MissingDependencyError, UsageError
from fastmlp.sweep import SweepError


def _distributed():
    try:
        import distributed
    except ImportError:
        raise MissingDependencyError("--scheduler needs Dask distributed, which is not installed: "
                                     "pip install 'fastmlp[dask]' (or pip install 'dask[distributed]')") from None
    return distributed


def _host(address):
    from distributed.comm import get_address_host

    return get_address_host(address)


def run_cluster_trial(settings, threads_by_host, with_model):
    """On a Dask worker: one trial, on this host's share of its cores."""
    from distributed import get_worker

    from fastmlp._machine import available_cores
    from fastmlp.sweep.trial import run_trial

    worker = get_worker()
    concurrent = threads_by_host.get(_host(worker.address)) or worker.state.nthreads
    threads = max(1, available_cores() // concurrent)
    try:  # the numpy backend's share too (its BLAS threads); the numba backend takes ``threads``
        from threadpoolctl import threadpool_limits
    except ImportError:
        return run_trial(settings, threads, with_model)
    with threadpool_limits(threads):
        return run_trial(settings, threads, with_model)


class ClusterRunner:
    """Trials as tasks of the Dask scheduler at ``address``."""

    def __init__(self, address, timeout, retries):
        distributed = _distributed()
        from distributed.comm import get_address_host_port, normalize_address

        try:
            get_address_host_port(normalize_address(address))
        except ValueError as error:
            raise UsageError(f"--scheduler {address}: {error}") from None
        # The client's own log lines (reconnections, a worker lost) would
        # interleave with the progress bar; failures reach the user as errors.
        logging.getLogger("distributed").setLevel(logging.ERROR)
        self.address, self.retries = address, retries
        start = time.monotonic()
        try:
            self.client = distributed.Client(address, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError) as error:
            raise UsageError(f"--scheduler {address}: no Dask scheduler answered after "
                             f"{time.monotonic() - start:.1f} s ({error})") from None
        try:
            self.client.wait_for_workers(1, timeout=max(1.0, timeout - (time.monotonic() - start)))
        except (OSError, TimeoutError):
            self.client.close()
            raise UsageError(f"--scheduler {address}: the scheduler has no workers after "
                             f"{time.monotonic() - start:.1f} s; start some with: dask worker {address} "
                             f"--nthreads 1") from None
        workers = self.client.scheduler_info(n_workers=-1)["workers"]
        self.threads_by_host = {}
        for address_, info in workers.items():
            host = _host(address_)
            self.threads_by_host[host] = self.threads_by_host.get(host, 0) + info["nthreads"]
        n_threads = sum(self.threads_by_host.values())
        self.where = (f"on the Dask cluster at {address}: {len(workers)} worker{'s' if len(workers) > 1 else ''}, "
                      f"{n_threads} trial{'s' if n_threads > 1 else ''} at a time")
        self._futures = []

    def call(self, function, *args):
        """``function(*args)`` on one worker; its result."""
        future = self.client.submit(function, *args, pure=False, retries=self.retries)
        self._futures.append(future)
        return future.result()

    def run_trials(self, settings, with_model):
        """Yield ``(index, result)`` for each trial as it finishes (results of
        :func:`fastmlp.sweep.trial.run_trial`)."""
        from distributed import as_completed
        from distributed.scheduler import KilledWorker

        from fastmlp.sweep.trial import failed_result

        futures = {}
        for i, s in enumerate(settings):
            future = self.client.submit(run_cluster_trial, s, self.threads_by_host, with_model,
                                        key=f"fastmlp-trial-{i}-{time.time_ns()}", pure=False,
                                        retries=self.retries)
            futures[future] = i
        self._futures = list(futures)
        for future in as_completed(futures, loop=self.client.loop):
            i = futures[future]
            try:
                result = future.result()
            except KilledWorker:
                raise SweepError(f"trial {i + 1}: the workers running it died too often (Dask's "
                                 f"distributed.scheduler.allowed-failures); is a worker running out of memory?") from None
            except Exception as error:  # noqa: BLE001 - after its retries, the failure is the trial's result
                result = failed_result(error, settings[i])
            future.release()
            yield i, result

    def close(self, cancel=False):
        if cancel and self._futures:
            self.client.cancel(self._futures)
        self.client.close()
