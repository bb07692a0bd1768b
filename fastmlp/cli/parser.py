"""The ``fastmlp`` command line: the parser, the argument types and :func:`main`.

The options and their types are :mod:`fastmlp.cli.options`'s; each command's
work is in :mod:`fastmlp.cli.commands` (``bench`` and ``sweep``: modules of
their own). argparse fills the same
settings the Python API takes (``MLP(...)`` and ``MLP.fit(...)``); nothing here
computes anything the library does not. User mistakes end with one line on
stderr and exit status 2, never a traceback.
"""

import argparse
import os
import sys
import warnings

from fastmlp.cli.bench_command import cmd_bench
from fastmlp.cli.commands import cmd_compile, cmd_evaluate, cmd_plot, cmd_predict, cmd_train
from fastmlp.cli.options import (ArgumentParser, add_backend_option, add_data_options, add_train_options,
                                 csv_path, image_path, name_list, non_negative_int, path_arg, positive_float,
                                 positive_int)
from fastmlp.cli.sweep_command import cmd_sweep
from fastmlp.errors import FastMLPError

#: ``fastmlp --help``'s description.
DESCRIPTION = ("Train and use multi-layer perceptrons on MNIST: fastmlp train, sweep, evaluate, predict, "
               "plot, bench and compile.")

# --- the parser -------------------------------------------------------------------

def build_parser():
    parser = ArgumentParser(prog="fastmlp", description=DESCRIPTION)
    from fastmlp._version import __version__

    parser.add_argument("--version", action="version", version=f"fastmlp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    sub.required = True
    add_train_parser(sub)
    add_sweep_parser(sub)
    add_evaluate_parser(sub)
    add_predict_parser(sub)
    add_plot_parser(sub)
    add_bench_parser(sub)
    add_compile_parser(sub)
    parser.commands = sub.choices  # name -> subparser, for errors in the subcommand's name
    return parser


def add_train_parser(sub):
    p = sub.add_parser("train", help="train a network on MNIST, printing test accuracy every epoch",
                       description="Train a network. The defaults reproduce the original project's run: "
                                   "784,30,10 sigmoid, quadratic cost, batch 10, learning rate 10, 10 epochs.")
    add_train_options(p)
    p.set_defaults(func=cmd_train)


def add_compile_parser(sub):
    p = sub.add_parser("compile", help="compile the numba kernels a train command would use, without training",
                       description="Compile (or find in the cache) the numba kernels that `fastmlp train` with the "
                                   "same options would compile on its first run, e.g. while building a container "
                                   "image or right after install. Takes every option of `fastmlp train`; only "
                                   "--dtype, the loop shapes that --layers and --batch-size give, and Adam against "
                                   "SGD change what is compiled, and each kernel variant compiles once per machine. "
                                   "--all compiles every variant this machine can run (for a container image or a CI "
                                   "cache).")
    p.add_argument("--all", action="store_true",
                   help="compile every kernel variant of this CPU, both dtypes, SGD and Adam")
    add_train_options(p)
    p.set_defaults(func=cmd_compile)


def add_sweep_parser(sub):
    p = sub.add_parser("sweep", help="train every combination of option values (a grid search), locally or on a Dask cluster",
                       description="Train one network per combination of the --param values (the grid is their "
                                   "product), a few at a time locally or on a Dask cluster, and print the trials "
                                   "sorted by validation accuracy (test accuracy without --val-split). Every train "
                                   "option is accepted and fixed for all trials unless swept.")
    grid = p.add_argument_group("sweep")
    grid.add_argument("--param", dest="params", action="append", default=[], metavar="NAME=V1,V2,...",
                      help="values of one train option, by its name (lr, layers, batch_size, seed, ...), separated "
                           "by commas, or by ':' when a value holds commas (always for layers: "
                           "784,128,10:784,256,10); repeatable")
    grid.add_argument("--jobs", type=positive_int, metavar="N",
                      help="trials run at once on this machine (default: one per core), each on cores / N threads")
    grid.add_argument("--scheduler", metavar="ADDRESS",
                      help="run the trials on the Dask distributed cluster at ADDRESS (needs pip install fastmlp[dask])")
    grid.add_argument("--connect-timeout", type=positive_float, default=10.0, metavar="SECONDS",
                      help="with --scheduler: how long to wait for the scheduler and a first worker (default 10)")
    grid.add_argument("--retries", type=non_negative_int, default=2, metavar="N",
                      help="with --scheduler: runs of a failed trial after the first (default 2); a trial whose "
                           "worker dies is run again by Dask itself")
    grid.add_argument("--out", type=csv_path, metavar="PATH", help="write one row per trial to PATH (.csv)")
    grid.add_argument("--save-best", type=path_arg, metavar="PATH", help="write the best trial's model to PATH (.npz)")
    add_train_options(p)
    p.set_defaults(func=cmd_sweep)


def add_evaluate_parser(sub):
    p = sub.add_parser("evaluate", help="test accuracy, per-class precision/recall and the confusion matrix of a saved model",
                       description="Evaluate a saved model on the test set.")
    p.add_argument("model", type=path_arg, metavar="MODEL", help="a model file written by fastmlp train --save")
    add_backend_option(p)
    add_data_options(p, dataset_default=None)
    p.set_defaults(func=cmd_evaluate)


def add_predict_parser(sub):
    p = sub.add_parser("predict", help="classify images with a saved model",
                       description="Classify images: IDX files of (n, 28, 28) uint8 images, CSV files in the original "
                                   "layout (label column shown as 'true'), .npy arrays ((n, 784) or (n, 28, 28), uint8 "
                                   "0..255 or float 0..1) or picture files (.png etc., needs Pillow). Prints one line "
                                   "per image: name, predicted class, probability (for a network without softmax "
                                   "output: the output activation divided by the sum over classes).")
    p.add_argument("model", type=path_arg, metavar="MODEL", help="a model file written by fastmlp train --save")
    p.add_argument("files", type=path_arg, metavar="FILE", nargs="+", help="images to classify")
    p.add_argument("--resize", action="store_true", help="scale pictures of another size to 28x28")
    p.add_argument("--invert", action="store_true", help="invert grey levels (MNIST digits are white on black)")
    add_backend_option(p)
    p.set_defaults(func=cmd_predict)


def add_plot_parser(sub):
    p = sub.add_parser("plot", help="draw learning curves, a confusion matrix or first-layer weights (needs matplotlib)",
                       description="Draw a figure. From a history log (.csv/.jsonl) or a model file: the loss and "
                                   "accuracy curves; from a model file with --confusion: its confusion matrix on the "
                                   "test set; with --weights: its first-layer weights as 28x28 images.")
    p.add_argument("input", type=path_arg, metavar="INPUT", help="a history log (.csv, .jsonl) or a model file (.npz)")
    p.add_argument("-o", "--output", type=image_path, required=True, metavar="PATH", help="image file to write (.png, .pdf, .svg)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--confusion", action="store_true", help="confusion matrix on the test set (model file only)")
    what.add_argument("--weights", action="store_true", help="first-layer weights, one image per hidden neuron (model file only)")
    p.add_argument("--max-neurons", type=positive_int, default=100, metavar="N", help="with --weights: draw at most N neurons (default 100)")
    add_backend_option(p)
    add_data_options(p, dataset_default=None)
    p.set_defaults(func=cmd_plot)


def add_bench_parser(sub):
    p = sub.add_parser("bench", help="measure seconds per 60,000-image epoch, GFLOP/s and compile time on this machine",
                       description="Time one epoch of 60,000 MNIST-shaped images for each backend and dtype on the "
                                   "standard networks of benchmarks/ (sigmoid, quadratic cost, plain SGD), and the "
                                   "compile time of the numba kernels. Uses the same code as benchmarks/bench_epoch.py.")
    p.add_argument("--quick", action="store_true", help="only the 784-30-10 rows")
    p.add_argument("--backends", type=name_list(("numpy", "numba", "jax", "torch")), default=None,
                   help="comma-separated, default numpy,numba (+ jax, torch when installed)")
    p.add_argument("--isa", type=name_list(("host", "avx2")), default="host",
                   help="comma-separated vector ISAs to run the numba rows for: host (this process's), "
                        "avx2 (a child process with NUMBA_CPU_NAME=haswell; x86 with AVX2 only). Default host")
    p.add_argument("--repeats", type=positive_int, default=3, help="epochs timed per row; the median is shown (default 3)")
    p.add_argument("--no-compile", dest="compile", action="store_false",
                   help="skip measuring the numba compile time (a fresh process per configuration)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the results as JSON")
    out.add_argument("--markdown", action="store_true",
                     help="print a caption line naming the machine and date, then a Markdown table")
    p.set_defaults(func=cmd_bench)


def explicit_options(argv):
    """The destinations the user actually typed in ``argv`` (defaults excluded).

    Parses ``argv`` a second time with every default suppressed, so an option
    given with its default value (``--lr 10``) still counts as given.
    """
    parser = build_parser()

    def suppress(p):
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for child in action.choices.values():
                    suppress(child)
            elif action.dest != "help":
                action.default = argparse.SUPPRESS

    suppress(parser)
    return set(vars(parser.parse_args(argv))) - {"command"}


def main(argv=None):
    if argv is None:
        argv = sys.argv[1:]
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warning
        return _main(argv)


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    """Warnings (a clipped batch size, ...) as one line, like the errors, not
    Python's two-line form with a source line."""
    print(f"fastmlp: warning: {message}", file=sys.stderr if file is None else file)


def _main(argv):
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # reported as "fastmlp train: error: ..." rather than "fastmlp: error: ..."
        parser.commands[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    args.explicit = explicit_options(argv)
    if args.command == "plot":
        args.model = args.input
    try:
        return args.func(args)
    except FastMLPError as error:
        print(f"fastmlp {args.command}: error: {error}", file=sys.stderr)
        return error.exit_code
    except BrokenPipeError:  # `fastmlp predict ... | head`: the reader has gone, stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the flush at exit does not fail again
        return 1
    except MemoryError:  # outside an epoch (an epoch's is an OutOfMemoryError, a FastMLPError)
        print(f"fastmlp {args.command}: error: out of memory; try a smaller network, batch size or --limit",
              file=sys.stderr)
        return 1
    except ImportError as error:  # a dependency that is missing or broken (e.g. numba's llvmlite)
        print(f"fastmlp {args.command}: error: {str(error).splitlines()[0] if str(error) else error!r}: "
              f"a dependency is missing or broken (reinstall fastmlp; for the numba backend, "
              f"--backend numpy runs without it)", file=sys.stderr)
        return 1
    except OSError as error:  # e.g. a log or image file that cannot be written
        where = f"{error.filename}: " if error.filename else ""
        print(f"fastmlp {args.command}: error: {where}{error.strerror or error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"fastmlp {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
