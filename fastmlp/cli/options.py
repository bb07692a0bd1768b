"""The options of the ``fastmlp`` commands: the argument types (each raises
``argparse.ArgumentTypeError`` saying what was expected) and the option
groups several commands share (``fastmlp train``'s options are ``fastmlp
sweep``'s and ``fastmlp compile``'s too).

A value's bounds are checked here, as it is parsed, by the same functions
the library uses (``fastmlp.training``, ``fastmlp.validation``), so a bad
value is refused before any data is read or any kernel compiled, and a
sweep's ``--param`` values go through the same types.
"""

import argparse
import math
from pathlib import Path

from fastmlp import training
from fastmlp.backends import BACKENDS, DEFAULT_BACKEND
from fastmlp.functions import ACTIVATIONS, COSTS, INITS
from fastmlp.presets import PRESETS
from fastmlp.schedules import SCHEDULES


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit status 2)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


# --- argument types: each raises ArgumentTypeError with what was expected -----

def _integer(minimum, expected):
    """An argument type: an integer >= ``minimum``, described as ``expected``."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value}")
        return value
    return parse


positive_int = _integer(1, "a positive integer")
non_negative_int = _integer(0, "an integer >= 0")


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
    if not math.isfinite(value) or value <= 0 or (value >= 1 and value != int(value)):
        raise argparse.ArgumentTypeError(f"expected a positive sample count or a fraction in (0, 1), got {text}")
    return value if value < 1 else int(value)


def path_arg(text):
    """A file or folder name: anything the operating system can take.  A NUL
    character cannot be in a path (``open`` would raise ValueError later)."""
    if "\0" in text:
        raise argparse.ArgumentTypeError(f"a path cannot contain a NUL character, got {text!r}")
    return text


def _path_with_format(text, check_format):
    """A path whose suffix ``check_format`` accepts (it raises ValueError otherwise)."""
    path_arg(text)
    try:
        check_format(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def log_path(text):
    """``--log``: a file ending in .csv or .jsonl."""
    from fastmlp.cli.report import log_format

    return _path_with_format(text, log_format)


def image_path(text):
    """``--plot``/``-o``: a file ending in .png, .pdf or .svg."""
    from fastmlp.plot import image_format

    return _path_with_format(text, image_format)


def _checked(check, name):
    """An argument type from a library check that raises ValueError/TypeError."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        try:
            return check(value)
        except (ValueError, TypeError) as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    parse.__name__ = name
    return parse


momentum_value = _checked(training.momentum_value, "momentum")
beta_1_value = _checked(lambda value: training.beta_value(value, "beta_1"), "beta_1")
beta_2_value = _checked(lambda value: training.beta_value(value, "beta_2"), "beta_2")


def rate_list(text):
    """``--dropout``: comma-separated rates, each in [0, 1)."""
    try:
        rates = [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated rates such as 0.2,0.5, got {text!r}") from None
    for rate in rates:
        if not 0.0 <= rate < 1.0:
            raise argparse.ArgumentTypeError(f"every dropout rate must be in [0, 1), got {rate:g}")
    return rates[0] if len(rates) == 1 else rates


def csv_path(text):
    """``--out``: a file ending in .csv."""
    path_arg(text)
    if Path(text).suffix.lower() != ".csv":
        raise argparse.ArgumentTypeError(f"the results file must end in .csv, got {text!r}")
    return text


def add_data_options(p, dataset_default="mnist"):
    p.add_argument("--data-dir", type=path_arg, metavar="DIR", help="folder with the data set (default: $FASTMLP_DATA, then the user cache; downloaded when absent)")
    p.add_argument("--dataset", choices=("mnist", "fashion-mnist"), default=dataset_default,
                   help=None if dataset_default else "default: the one the model was trained on, else mnist")
    p.add_argument("--no-download", dest="download", action="store_false", help="fail instead of downloading a missing data set")


def add_backend_option(p):
    p.add_argument("--backend", choices=tuple(BACKENDS), help="default: the backend recorded in the model file")


def add_train_options(p):
    """Every option of ``fastmlp train`` (``fastmlp sweep`` takes them all too)."""
    p.add_argument("--preset", choices=sorted(PRESETS), help="a named set of the options below; explicit options win")
    arch = p.add_argument_group("network")
    arch.add_argument("--layers", type=layer_list, default=[784, 30, 10], help="layer widths (default 784,30,10)")
    arch.add_argument("--activation", type=name_list(tuple(ACTIVATIONS)), default="sigmoid",
                      help="activation of every layer, or one per layer separated by commas (default sigmoid)")
    arch.add_argument("--output-activation", choices=tuple(ACTIVATIONS), help="activation of the output layer (default: softmax for --cost nll, else --activation)")
    arch.add_argument("--cost", choices=tuple(COSTS), default="quadratic", help="default quadratic")
    arch.add_argument("--init", type=name_list(INITS), help="normal, xavier or he (default: chosen from each layer's activation)")
    opt = p.add_argument_group("training")
    opt.add_argument("--epochs", type=positive_int, default=10,
                     help="epochs to train (default 10; with --resume: the rest of the saved run)")
    opt.add_argument("--batch-size", type=positive_int, default=10)
    opt.add_argument("--solver", choices=("sgd", "adam"), default="sgd",
                     help="mini-batch SGD (with --momentum, --nesterov) or Adam (with --beta-1, --beta-2, --epsilon)")
    opt.add_argument("--lr", type=positive_float, default=None,
                     help="learning rate (default 10 for sgd, gradients averaged over the batch; 0.001 for adam)")
    opt.add_argument("--momentum", type=momentum_value, default=0.0, help="sgd: momentum coefficient in [0, 1)")
    opt.add_argument("--nesterov", action="store_true", help="sgd: Nesterov momentum (needs --momentum)")
    opt.add_argument("--beta-1", type=beta_1_value, default=0.9, help="adam: decay of the first moments (default 0.9)")
    opt.add_argument("--beta-2", type=beta_2_value, default=0.999,
                     help="adam: decay of the second moments (default 0.999)")
    opt.add_argument("--epsilon", type=positive_float, default=1e-8, help="adam: added to the root of the second moments (default 1e-8)")
    opt.add_argument("--l2", type=non_negative_float, default=0.0, help="L2 weight decay")
    opt.add_argument("--dropout", type=rate_list, metavar="RATES",
                     help="dropout rates: one for every hidden layer, or the inputs' and the hidden layers' "
                          "(0.2,0.5), or one per layer input; masks independent of threads and backend")
    opt.add_argument("--shift", type=non_negative_int, default=0, metavar="PIXELS",
                     help="augmentation: move each training image by up to PIXELS along each axis, a new draw "
                          "per epoch (0: off)")
    opt.add_argument("--max-norm", type=non_negative_float, default=0.0, metavar="C",
                     help="hold every hidden unit's incoming weights to norm <= C after each update (0: off)")
    opt.add_argument("--schedule", choices=SCHEDULES, default="constant", help="learning-rate schedule")
    opt.add_argument("--val-split", type=val_split, nargs="?", const=10000, default=0,
                     help="hold out the last N training images (or a fraction) for validation; alone: 10000")
    opt.add_argument("--patience", type=positive_int, help="stop when validation accuracy has not improved for N epochs (needs --val-split)")
    opt.add_argument("--seed", type=int, default=0, help="fixes the initial weights and the shuffles (default 0)")
    run = p.add_argument_group("running")
    run.add_argument("--backend", choices=tuple(BACKENDS), default=DEFAULT_BACKEND)
    run.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    run.add_argument("--threads", type=positive_int,
                     help="threads for the numba backend (at most NUMBA_NUM_THREADS; more are clipped with a warning)")
    run.add_argument("--limit", type=positive_int, metavar="N", help="train on the first N training images only")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    out = p.add_argument_group("saving")
    out.add_argument("--save", type=path_arg, metavar="PATH", help="write the trained model to PATH (.npz); also on Ctrl-C")
    out.add_argument("--checkpoint-every", type=positive_int, metavar="N",
                     help="also save to the --save path every N epochs")
    out.add_argument("--resume", type=path_arg, metavar="PATH",
                     help="continue training a saved model: its options and optimiser state are reused, epochs "
                          "continue numbering, and without --epochs the saved run goes on to its end")
    out.add_argument("--log", type=log_path, metavar="PATH",
                     help="write each epoch's figures to PATH as it goes (.csv or .jsonl)")
    out.add_argument("--plot", type=image_path, metavar="PATH",
                     help="draw the loss and accuracy curves to PATH (.png, .pdf, .svg; needs matplotlib)")
    add_data_options(p)
