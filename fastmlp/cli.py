"""The ``fastmlp`` command line: ``fastmlp train`` and friends.

argparse fills the same settings the Python API takes (``MLP(...)`` and
``MLP.fit(...)``); nothing here computes anything the library does not.
User mistakes end with one line on stderr and exit status 2, never a traceback.
"""

import argparse
import sys

from fastmlp.backends import BACKENDS, DEFAULT_BACKEND
from fastmlp.errors import FastMLPError
from fastmlp.functions import ACTIVATIONS, COSTS, INITS
from fastmlp.schedules import SCHEDULES

#: Settings a preset fills in; explicit options on the command line win.
PRESETS = {
    "original": {},
}


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit status 2)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


# --- argument types: each raises ArgumentTypeError with what was expected -----

def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def non_negative_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (value >= 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text}")
    return value


def positive_float(text):
    value = non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError("expected a number > 0, got 0")
    return value


def layer_list(text):
    """``784,30,10`` -> [784, 30, 10]."""
    parts = [p for p in text.replace(" ", ",").split(",") if p]
    try:
        sizes = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated layer widths such as 784,30,10, got {text!r}") from None
    if len(sizes) < 2:
        raise argparse.ArgumentTypeError(f"expected at least an input and an output layer, such as 784,30,10, got {text!r}")
    if min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"every layer width must be a positive integer, got {text!r}")
    return sizes


def name_list(choices):
    """One name, or comma-separated names (one per layer), each among ``choices``."""
    def parse(text):
        names = [n.strip() for n in text.split(",")]
        for n in names:
            if n not in choices:
                raise argparse.ArgumentTypeError(f"expected one of {', '.join(choices)}, got {n!r}")
        return names[0] if len(names) == 1 else names
    return parse


def val_split(text):
    """A count of samples (``10000``) or a fraction (``0.1``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a sample count or a fraction, got {text!r}") from None
    if value <= 0 or (value >= 1 and value != int(value)):
        raise argparse.ArgumentTypeError(f"expected a positive sample count or a fraction in (0, 1), got {text}")
    return value if value < 1 else int(value)


# --- the parser -------------------------------------------------------------------

def build_parser():
    parser = ArgumentParser(prog="fastmlp", description=__doc__.splitlines()[0])
    from fastmlp import __version__

    parser.add_argument("--version", action="version", version=f"fastmlp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    sub.required = True
    add_train_parser(sub)
    return parser


def add_data_options(p):
    p.add_argument("--data-dir", metavar="DIR", help="folder with the data set (default: $FASTMLP_DATA, then the user cache; downloaded when absent)")
    p.add_argument("--dataset", choices=("mnist", "fashion-mnist"), default="mnist")
    p.add_argument("--no-download", dest="download", action="store_false", help="fail instead of downloading a missing data set")


def add_train_parser(sub):
    p = sub.add_parser("train", help="train a network on MNIST, printing test accuracy every epoch",
                       description="Train a network. The defaults reproduce the original project's run: "
                                   "784,30,10 sigmoid, quadratic cost, batch 10, learning rate 10, 10 epochs.")
    p.add_argument("--preset", choices=sorted(PRESETS), help="a named set of the options below; explicit options win")
    arch = p.add_argument_group("network")
    arch.add_argument("--layers", type=layer_list, default=[784, 30, 10], help="layer widths (default 784,30,10)")
    arch.add_argument("--activation", type=name_list(tuple(ACTIVATIONS)), default="sigmoid",
                      help="activation of every layer, or one per layer separated by commas (default sigmoid)")
    arch.add_argument("--output-activation", choices=tuple(ACTIVATIONS), help="activation of the output layer (default: softmax for --cost nll, else --activation)")
    arch.add_argument("--cost", choices=tuple(COSTS), default="quadratic", help="default quadratic")
    arch.add_argument("--init", type=name_list(INITS), help="normal, xavier or he (default: chosen from each layer's activation)")
    opt = p.add_argument_group("training")
    opt.add_argument("--epochs", type=positive_int, default=10)
    opt.add_argument("--batch-size", type=positive_int, default=10)
    opt.add_argument("--lr", type=positive_float, default=10.0, help="learning rate (default 10; gradients are averaged over the batch)")
    opt.add_argument("--momentum", type=non_negative_float, default=0.0)
    opt.add_argument("--nesterov", action="store_true", help="Nesterov momentum (needs --momentum)")
    opt.add_argument("--l2", type=non_negative_float, default=0.0, help="L2 weight decay")
    opt.add_argument("--schedule", choices=SCHEDULES, default="constant", help="learning-rate schedule")
    opt.add_argument("--val-split", type=val_split, nargs="?", const=10000, default=0,
                     help="hold out the last N training images (or a fraction) for validation; alone: 10000")
    opt.add_argument("--patience", type=positive_int, help="stop when validation accuracy has not improved for N epochs (needs --val-split)")
    opt.add_argument("--seed", type=int, default=0, help="fixes the initial weights and the shuffles (default 0)")
    run = p.add_argument_group("running")
    run.add_argument("--backend", choices=tuple(BACKENDS), default=DEFAULT_BACKEND)
    run.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    run.add_argument("--threads", type=positive_int, help="threads for the numba backend")
    run.add_argument("--limit", type=positive_int, metavar="N", help="train on the first N training images only")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    add_data_options(p)
    p.set_defaults(func=cmd_train)


def apply_preset(args, parser_defaults):
    """Fill options the user left at their defaults from ``--preset``."""
    for key, value in PRESETS.get(args.preset or "", {}).items():
        if getattr(args, key) == parser_defaults.get(key):
            setattr(args, key, value)


# --- commands -------------------------------------------------------------------------

def load_data(args):
    from fastmlp.data import load_mnist

    return load_mnist(args.data_dir, dataset=args.dataset, download=args.download)


def cmd_train(args):
    from fastmlp.model import MLP
    from fastmlp.report import epoch_line, progress_bar

    if args.layers[0] != 784:
        raise UsageError(f"--layers must start with 784 for {args.dataset} (28x28 images), got {args.layers[0]}")
    if args.layers[-1] != 10:
        raise UsageError(f"--layers must end with 10 for {args.dataset} (10 classes), got {args.layers[-1]}")
    if args.nesterov and not args.momentum:
        raise UsageError("--nesterov needs --momentum > 0")
    if args.patience and not args.val_split:
        raise UsageError("--patience needs a validation set: add --val-split")
    try:
        model = MLP(args.layers, activation=args.activation, output_activation=args.output_activation,
                    cost=args.cost, init=args.init, backend=args.backend, dtype=args.dtype,
                    seed=args.seed, n_threads=args.threads)
    except (ValueError, TypeError) as error:
        raise UsageError(str(error)) from None

    X_train, y_train, X_test, y_test = load_data(args)
    if args.limit:
        X_train, y_train = X_train[:args.limit], y_train[:args.limit]
    model.initialize()
    print(f"Epoch 0 (before training): test accuracy {100 * model.score(X_test, y_test):.2f}%", flush=True)
    bar = progress_bar(len(X_train) - _n_val(args.val_split, len(X_train)), enabled=not args.quiet)
    model.warm_start = True
    try:
        model.fit(X_train, y_train, epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
                  momentum=args.momentum, nesterov=args.nesterov, l2=args.l2, schedule=args.schedule,
                  val_split=args.val_split, patience=args.patience, test_data=(X_test, y_test),
                  progress=bar, callback=lambda record: print(epoch_line(record), flush=True))
    except (ValueError, TypeError) as error:
        raise UsageError(str(error)) from None
    finally:
        if bar:
            bar.close()
    total = sum(r["seconds"] for r in model.history_)
    print(f"Trained {len(model.history_)} epochs in {total:.2f} s; test accuracy "
          f"{100 * model.history_[-1]['test_accuracy']:.2f}%", flush=True)
    return 0


def _n_val(split, n):
    if not split:
        return 0
    return int(round(split * n)) if isinstance(split, float) else split


class UsageError(FastMLPError):
    """A combination of options that makes no sense."""


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except FastMLPError as error:
        print(f"fastmlp {args.command}: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print(f"fastmlp {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
