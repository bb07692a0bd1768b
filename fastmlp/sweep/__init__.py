"""``fastmlp sweep``: many independent ``fastmlp train`` runs over a grid of
option values, a few at a time on this machine or on a Dask cluster.

:mod:`~fastmlp.sweep.grid` turns ``--param NAME=V1,V2,...`` into trials and
checks each as ``fastmlp train`` would, before anything runs;
:mod:`~fastmlp.sweep.trial` is what a worker process does for one trial (the
same model construction and ``fit`` call as ``fastmlp train``, without the
printing); :mod:`~fastmlp.sweep.local` runs trials in a pool of processes on
this machine, :mod:`~fastmlp.sweep.cluster` on a Dask distributed cluster.
The command's printing, table and CSV are :mod:`fastmlp.cli.sweep_command`'s.

Scheduling is left to existing engines (``concurrent.futures`` locally, Dask
on a cluster): every trial is independent, so there is nothing to coordinate
beyond handing them out and collecting the results.
"""

from fastmlp.errors import FastMLPError


class SweepError(FastMLPError):
    """A sweep could not finish: a worker process died, or a cluster lost the
    trials' workers more often than Dask allows."""

    exit_code = 1
