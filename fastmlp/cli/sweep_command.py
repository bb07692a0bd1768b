"""``fastmlp sweep``: its checks, the progress over trials, the results table,
the ``--out`` CSV and the ``--save-best`` model.

The grid, the trial and the two ways of running trials (processes of this
machine, a Dask cluster) are :mod:`fastmlp.sweep`'s; this module only puts
them together and prints.  Everything that can be wrong with the grid is
reported before the first trial starts.
"""

import csv
import sys
import time

from fastmlp.cli.commands import check_output_folder
from fastmlp.cli.options import ArgumentParser, add_train_options
from fastmlp.errors import UsageError, shown

#: Columns of ``--out`` after the trial number and the swept options.
RESULT_FIELDS = ("val_accuracy", "test_accuracy", "loss", "epochs", "seconds", "threads", "error")


def cmd_sweep(args):
    from fastmlp.sweep import grid

    for name in ("save", "checkpoint_every", "resume", "log", "plot"):
        if getattr(args, name):
            raise UsageError(f"--{name.replace('_', '-')}: {grid.NOT_SWEPT[name]}")
    if args.scheduler and args.jobs:
        raise UsageError("--jobs is for trials on this machine; with --scheduler the cluster's workers "
                         "decide how many run at once")
    for option, path in (("--out", args.out), ("--save-best", args.save_best)):
        if path:
            check_output_folder(path, option)
    train_parser = ArgumentParser(prog="fastmlp train")
    add_train_options(train_parser)
    actions = grid.train_actions(train_parser)
    explicit = set(getattr(args, "explicit", None) or ()) & set(actions)
    params = grid.parse_params(args.params, actions, explicit)
    combos = grid.expand(params)
    settings = [grid.trial_settings(args, values, explicit, actions) for values in combos]

    runner = _runner(args, settings)
    try:
        prepared, kernels = _check_with_the_data(runner, settings, combos)
        print(f"Sweep of {_grid_size(params, len(settings))}, {runner.where}", flush=True)
        if prepared > 1.0:
            what = "the data and the numba kernels" if kernels else "the data"
            print(f"(a worker loaded {what} in {prepared:.1f} s before the trials started; "
                  f"not counted in the sweep's time)", flush=True)
        results, best_model_file, seconds, stop = _run(args, runner, settings, combos)
    except BaseException:  # a trial's error: stop the others now
        runner.close(cancel=True)
        raise
    runner.close(cancel=stop is not None)
    status = _report(args, params, combos, settings, results, best_model_file, seconds, runner.where)
    if stop is None:
        return status
    done = sum(r is not None for r in results)
    kept = f"; the finished ones are in {args.out}" if args.out and done else ""
    if isinstance(stop, KeyboardInterrupt):
        print(f"fastmlp sweep: interrupted after {done} of {len(results)} trials{kept}", file=sys.stderr)
        return 130
    print(f"fastmlp sweep: error: {stop} ({done} of {len(results)} trials finished{kept})", file=sys.stderr)
    return stop.exit_code


def _runner(args, settings):
    if args.scheduler:
        from fastmlp.sweep.cluster import ClusterRunner

        return ClusterRunner(args.scheduler, args.connect_timeout, args.retries)
    from fastmlp.sweep.local import LocalRunner
    from fastmlp import _machine

    cores = _machine.available_cores()
    jobs = min(args.jobs or cores, len(settings))
    threads = max(1, cores // jobs)
    asked = sorted({s["threads"] for s in settings if s["threads"]})
    # A worker's Numba pool must hold the --threads a trial asks for.
    shown = f"threads as --threads says ({','.join(map(str, asked))})" if asked else None
    return LocalRunner(jobs, max([threads, *asked]), shown)


def _check_with_the_data(runner, settings, combos):
    """Let one worker load every data set the trials read (and have the kernels
    compiled once, before trials start side by side), then run the checks
    that need the number of training images.  Returns the seconds it took
    and whether any trial runs the numba kernels."""
    from fastmlp.sweep import grid
    from fastmlp.sweep.trial import probe

    start = time.perf_counter()
    keys = sorted({grid.data_key(s) for s in settings}, key=repr)
    numba_trials = [s for s in settings if s["backend"] == "numba"]
    sizes = runner.call(probe, keys, numba_trials)
    for s, values in zip(settings, combos):
        grid.check_data_options(s, values, sizes[grid.data_key(s)])
    return time.perf_counter() - start, bool(numba_trials)


def _grid_size(params, n):
    if not params:
        return "1 trial (no --param: the fixed options only)"
    return f"{n} trial{'s' if n > 1 else ''} ({' x '.join(f'{len(p.values)} {p.name}' for p in params)})"


def _run(args, runner, settings, combos):
    """Run every trial.  Returns the results by trial index (``None`` for a
    trial not run), the best trial's model file (with ``--save-best``), the
    wall time, and what stopped the sweep early: ``None``, the
    KeyboardInterrupt of Ctrl-C or a :class:`~fastmlp.sweep.SweepError`
    (a worker died); the trials finished by then are kept."""
    from fastmlp.sweep import SweepError, grid

    n = len(settings)
    results = [None] * n
    use_val = all(s["val_split"] for s in settings)
    bar = None
    if not args.quiet and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=n, unit="trial", leave=False, file=sys.stderr, dynamic_ncols=True)
    seen_warnings = set()
    best = None  # (rank key, model file bytes) of the best trial so far, for --save-best
    start = time.perf_counter()
    stop = None
    try:
        for done, (i, result) in enumerate(runner.run_trials(settings, bool(args.save_best)), 1):
            model_file = result.pop("model_file", None)
            results[i] = result
            if model_file is not None and (best is None or rank_key(i, result, use_val) < best[0]):
                best = (rank_key(i, result, use_val), model_file)
            for message in result["warnings"]:
                if message not in seen_warnings:
                    seen_warnings.add(message)
                    _write(bar, f"fastmlp sweep: warning: trial {grid.label(combos[i])}: {message}")
            if bar is not None:
                bar.update(1)
            elif not args.quiet:
                print(f"trial {done}/{n} {grid.label(combos[i])}: {summary(result)}", file=sys.stderr, flush=True)
    except (KeyboardInterrupt, SweepError) as error:
        stop = error
    finally:
        if bar is not None:
            bar.close()
    return results, best[1] if best else None, time.perf_counter() - start, stop


def _write(bar, line):
    if bar is not None:
        bar.write(line, file=sys.stderr)
    else:
        print(line, file=sys.stderr, flush=True)


def rank_key(i, result, use_val):
    """Sort order of the table: finished trials first, the best accuracy
    (validation, or test when a trial has no validation split) first, ties in
    grid order."""
    if result["error"] is not None:
        return (1, 0.0, i)
    accuracy = result["val_accuracy"] if use_val else result["test_accuracy"]
    return (0, -accuracy, i)


def summary(result):
    """``val 95.10%  test 94.87%  loss 0.0213  3 epochs  1.2 s``, or the divergence."""
    if result["error"] is not None:
        return outcome(result)
    parts = [f"{label} {100 * result[key]:.2f}%" for key, label in (("val_accuracy", "val"), ("test_accuracy", "test"))
             if result[key] is not None]
    return "  ".join([*parts, f"loss {result['loss']:.4f}", f"{result['epochs']} epochs", f"{result['seconds']:.1f} s"])


def outcome(result):
    """What became of a trial that has no figures: it diverged, or it failed."""
    if result.get("diverged", True):
        return f"diverged in epoch {result['epochs'] + 1}"
    return f"failed: {result['error']}"


def results_table(params, combos, results, use_val):
    """The trials as text, best first: rank, the swept options, the figures."""
    from fastmlp.sweep import grid

    order = sorted((i for i in range(len(results)) if results[i] is not None),
                   key=lambda i: rank_key(i, results[i], use_val))
    with_val = any(results[i]["val_accuracy"] is not None for i in order)
    header = ["#", *(p.name for p in params), *(["val"] if with_val else []), "test", "loss", "epochs", "seconds"]
    rows = []
    for rank, i in enumerate(order, 1):
        r = results[i]
        cells = [str(rank), *(grid.show(combos[i][p.name]) for p in params)]
        if r["error"] is not None:
            cells += [*(["-"] if with_val else []), "-", outcome(r), "", ""]
        else:
            cells += [*([_percent(r["val_accuracy"])] if with_val else []), _percent(r["test_accuracy"]),
                      f"{r['loss']:.4f}", str(r["epochs"]), f"{r['seconds']:.2f}"]
        rows.append(cells)
    widths = [max(len(row[c]) for row in [header, *rows]) for c in range(len(header))]
    numeric = {0, *range(1 + len(params), len(header))}
    lines = []
    for row in [header, *rows]:
        lines.append("  ".join(cell.rjust(w) if c in numeric else cell.ljust(w)
                               for c, (cell, w) in enumerate(zip(row, widths))).rstrip())
    return "\n".join(lines), order


def _percent(value):
    return "-" if value is None else f"{100 * value:.2f}%"


def write_results(path, params, combos, results, order):
    """``--out``: one row per trial, best first; figures as Python writes
    floats (they read back to the same bits)."""
    from fastmlp._files import atomic_write
    from fastmlp.sweep import grid

    with atomic_write(path, "w") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["trial", *(p.name for p in params), *RESULT_FIELDS])
        for i in order:
            r = results[i]
            writer.writerow([i + 1, *(grid.show(combos[i][p.name]) for p in params),
                             *("" if r[key] is None else r[key] for key in RESULT_FIELDS)])


def _report(args, params, combos, settings, results, best_model_file, seconds, where):
    from fastmlp._files import atomic_write
    from fastmlp.sweep import grid

    use_val = all(s["val_split"] for s in settings)
    table, order = results_table(params, combos, results, use_val)
    if not order:
        return 1
    print()
    print(table)
    print()
    n = len(order)
    best = order[0]
    finished = results[best]["error"] is None
    which = "validation" if use_val else "test"
    line = f"{n} trial{'s' if n > 1 else ''} in {seconds:.1f} s ({where})"
    if finished:
        key = "val_accuracy" if use_val else "test_accuracy"
        line += f"; best by {which} accuracy: {grid.label(combos[best])} ({100 * results[best][key]:.2f}%)"
    print(line, flush=True)
    if args.out:
        write_results(args.out, params, combos, results, order)
        print(f"Wrote the results to {shown(args.out)}", flush=True)
    if finished and args.save_best:
        with atomic_write(args.save_best) as f:
            f.write(best_model_file)
        print(f"Saved the best model (trial {best + 1}: {grid.label(combos[best])}) to {shown(args.save_best)}",
              flush=True)
    failed = [i for i in order if results[i]["error"] is not None and not results[i].get("diverged", True)]
    if failed:
        first = results[failed[0]]["error"]
        print(f"fastmlp sweep: error: {len(failed)} of {len(results)} trials failed (trial {failed[0] + 1}, "
              f"{grid.label(combos[failed[0]])}: {first})", file=sys.stderr)
        return 1
    if not finished:
        print("fastmlp sweep: error: every trial diverged; try smaller learning rates"
              + ("; nothing saved" if args.save_best else ""), file=sys.stderr)
        return 1
    return 0
