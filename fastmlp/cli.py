"""The ``fastmlp`` command line: ``fastmlp train``, ``evaluate``, ``predict`` and ``plot``.

argparse fills the same settings the Python API takes (``MLP(...)`` and
``MLP.fit(...)``); nothing here computes anything the library does not.
User mistakes end with one line on stderr and exit status 2, never a traceback.
"""

import argparse
import math
import os
import sys
import warnings

from fastmlp.backends import BACKENDS, DEFAULT_BACKEND
from fastmlp.errors import FastMLPError
from fastmlp.functions import ACTIVATIONS, COSTS, INITS
from fastmlp.schedules import SCHEDULES

#: Settings a preset fills in; explicit options on the command line win.
PRESETS = {
    # The original project's run (the defaults): 784-30-10 sigmoid, quadratic, lr 10.
    "original": {},
    # 98% test accuracy in 4 epochs: one ReLU layer of 256, softmax with the
    # log-likelihood cost, momentum, and a cosine schedule that ends the run
    # with small steps.  Chosen by measuring time to 98% (benchmarks/time_to_accuracy.py);
    # 784-192-10 reached 98% too, an epoch later.
    "fast": {"layers": [784, 256, 10], "activation": "relu", "cost": "nll", "dtype": "float32",
             "batch_size": 64, "lr": 0.1, "momentum": 0.9, "schedule": "cosine", "epochs": 4},
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
    if not math.isfinite(value) or value <= 0 or (value >= 1 and value != int(value)):
        raise argparse.ArgumentTypeError(f"expected a positive sample count or a fraction in (0, 1), got {text}")
    return value if value < 1 else int(value)


def path_arg(text):
    """A file or folder name: anything the operating system can take.  A NUL
    character cannot be in a path (``open`` would raise ValueError later)."""
    if "\0" in text:
        raise argparse.ArgumentTypeError(f"a path cannot contain a NUL character, got {text!r}")
    return text


def log_path(text):
    """``--log``: a file ending in .csv or .jsonl."""
    from fastmlp.report import log_format

    path_arg(text)
    try:
        log_format(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def image_path(text):
    """``--plot``/``-o``: a file ending in .png, .pdf or .svg."""
    from fastmlp.plot import image_format

    path_arg(text)
    try:
        image_format(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


# --- the parser -------------------------------------------------------------------

def build_parser():
    parser = ArgumentParser(prog="fastmlp", description=__doc__.splitlines()[0])
    from fastmlp import __version__

    parser.add_argument("--version", action="version", version=f"fastmlp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    sub.required = True
    add_train_parser(sub)
    add_evaluate_parser(sub)
    add_predict_parser(sub)
    add_plot_parser(sub)
    add_bench_parser(sub)
    parser.commands = sub.choices  # name -> subparser, for errors in the subcommand's name
    return parser


def add_data_options(p, dataset_default="mnist"):
    p.add_argument("--data-dir", type=path_arg, metavar="DIR", help="folder with the data set (default: $FASTMLP_DATA, then the user cache; downloaded when absent)")
    p.add_argument("--dataset", choices=("mnist", "fashion-mnist"), default=dataset_default,
                   help=None if dataset_default else "default: the one the model was trained on, else mnist")
    p.add_argument("--no-download", dest="download", action="store_false", help="fail instead of downloading a missing data set")


def add_backend_option(p):
    p.add_argument("--backend", choices=tuple(BACKENDS), help="default: the backend recorded in the model file")


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
    opt.add_argument("--epochs", type=positive_int, default=10,
                     help="epochs to train (default 10; with --resume: the rest of the saved run)")
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
    run.add_argument("--threads", type=positive_int,
                     help="threads for the numba backend (at most NUMBA_NUM_THREADS; more are clipped with a warning)")
    run.add_argument("--limit", type=positive_int, metavar="N", help="train on the first N training images only")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    out = p.add_argument_group("saving")
    out.add_argument("--save", type=path_arg, metavar="PATH", help="write the trained model to PATH (.npz); also on Ctrl-C")
    out.add_argument("--checkpoint-every", type=positive_int, metavar="N",
                     help="also save to the --save path every N epochs")
    out.add_argument("--resume", type=path_arg, metavar="PATH",
                     help="continue training a saved model (its options are reused; epochs continue numbering)")
    out.add_argument("--log", type=log_path, metavar="PATH",
                     help="write each epoch's figures to PATH as it goes (.csv or .jsonl)")
    out.add_argument("--plot", type=image_path, metavar="PATH",
                     help="draw the loss and accuracy curves to PATH (.png, .pdf, .svg; needs matplotlib)")
    add_data_options(p)
    p.set_defaults(func=cmd_train)


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
    p.add_argument("--backends", type=name_list(("numpy", "numba", "torch")), default=None,
                   help="comma-separated, default numpy,numba (+ torch when installed)")
    p.add_argument("--repeats", type=positive_int, default=3, help="epochs timed per row; the median is shown (default 3)")
    p.add_argument("--no-compile", dest="compile", action="store_false", help="skip measuring the compile time")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
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


# --- commands -------------------------------------------------------------------------

def load_data(args):
    from fastmlp.data import load_mnist

    return load_mnist(args.data_dir, dataset=args.dataset or "mnist", download=args.download)


#: Options that fix the network; with --resume they come from the file.
ARCHITECTURE = ("layers", "activation", "output_activation", "cost", "init", "dtype", "seed")
#: Training options stored in the model file and reused by --resume unless given again.
TRAINING = ("batch_size", "lr", "momentum", "nesterov", "l2", "schedule", "val_split", "patience",
            "limit", "dataset", "checkpoint_every")


def check_backend(name):
    """Import the backend now, so a missing one is one line and not a traceback."""
    from fastmlp.backends import get_backend

    try:
        get_backend(name)
    except ImportError as error:
        raise UsageError(f"the {name} backend cannot be loaded ({error}); try --backend numpy") from None


def check_output_folder(path, option):
    from pathlib import Path

    folder = Path(path).parent
    if not folder.is_dir():
        raise UsageError(f"{option} {path}: folder {folder} does not exist")
    if Path(path).is_dir():
        raise UsageError(f"{option} {path}: is a folder, expected a file name")


def cmd_train(args):
    from fastmlp.model import MLP
    from fastmlp.report import HistoryLog, epoch_line, progress_bar

    explicit = getattr(args, "explicit", None)
    if explicit is None:
        explicit = set(vars(args))
    for key, value in PRESETS.get(args.preset or "", {}).items():
        if key not in explicit:  # options typed on the command line win over the preset
            setattr(args, key, value)
    if args.resume:
        model = resume_model(args, explicit)
    if args.layers[0] != 784:
        raise UsageError(f"--layers must start with 784 for {args.dataset} (28x28 images), got {args.layers[0]}")
    if args.layers[-1] != 10:
        raise UsageError(f"--layers must end with 10 for {args.dataset} (10 classes), got {args.layers[-1]}")
    if args.nesterov and not args.momentum:
        raise UsageError("--nesterov needs --momentum > 0")
    if args.patience and not args.val_split:
        raise UsageError("--patience needs a validation set: add --val-split")
    if args.checkpoint_every and not args.save:
        raise UsageError("--checkpoint-every needs --save PATH to know where to write")
    for option in ("save", "log", "plot"):
        if getattr(args, option):
            check_output_folder(getattr(args, option), f"--{option}")
    if args.plot:
        from fastmlp.plot import require

        require("matplotlib", "--plot", "plot", "matplotlib")  # fail now, not after the run
    if not args.resume:
        try:
            model = MLP(args.layers, activation=args.activation, output_activation=args.output_activation,
                        cost=args.cost, init=args.init, backend=args.backend, dtype=args.dtype,
                        seed=args.seed, n_threads=args.threads)
        except (ValueError, TypeError) as error:
            raise UsageError(str(error)) from None
    check_backend(model.backend)

    X_train, y_train, X_test, y_test = load_data(args)
    if args.limit:
        X_train, y_train = X_train[:args.limit], y_train[:args.limit]
    if args.resume:
        done = model.epochs_trained_
        print(f"Resuming {args.resume} after epoch {done}: test accuracy "
              f"{100 * model.score(X_test, y_test):.2f}%", flush=True)
    else:
        model.initialize()
        print(f"Epoch 0 (before training): test accuracy {100 * model.score(X_test, y_test):.2f}%", flush=True)
    epochs_before = model.epochs_trained_
    epochs_total = epochs_before + args.epochs

    def save():
        from fastmlp.io import save as save_model

        options = {key: getattr(args, key) for key in TRAINING}
        save_model(model, args.save, extra={"train": {**options, "epochs_total": epochs_total}})

    log = HistoryLog(args.log, model.history_) if args.log else None

    def after_epoch(record):
        if record["epoch"] == epochs_before + 1 and getattr(model, "warm_up_seconds_", 0) > 1.0:
            print(f"(compiled the {model.backend} kernels in {model.warm_up_seconds_:.1f} s before epoch "
                  f"{record['epoch']}, not counted in epoch times; later runs load them from the cache)", flush=True)
        if log:
            log.write(record)
        if args.checkpoint_every and record["epoch"] % args.checkpoint_every == 0:
            save()
        print(epoch_line(record), flush=True)

    bar = progress_bar(len(X_train) - _n_val(args.val_split, len(X_train)), enabled=not args.quiet)
    model.warm_start = True
    try:
        model.fit(X_train, y_train, epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
                  momentum=args.momentum, nesterov=args.nesterov, l2=args.l2, schedule=args.schedule,
                  val_split=args.val_split, patience=args.patience, test_data=(X_test, y_test),
                  progress=bar, callback=after_epoch)
    except (ValueError, TypeError) as error:
        if isinstance(error, FastMLPError):
            raise
        raise UsageError(str(error)) from None
    except KeyboardInterrupt:
        # MLP.fit has put back the weights of the last completed epoch.
        if bar:
            bar.close()
            bar = None
        done = model.epochs_trained_
        if log:
            log.catch_up(model.history_)
        if args.save:
            save()
            where = f"saved the weights of epoch {done} to {args.save}"
        else:
            where = "nothing saved (add --save PATH to keep the weights)"
        print(f"fastmlp train: interrupted after epoch {done}; {where}", file=sys.stderr, flush=True)
        return 130
    except FastMLPError:  # DivergenceError: the last finite weights are back in place
        if args.save and model.epochs_trained_:
            save()
            print(f"fastmlp train: saved the weights of epoch {model.epochs_trained_} to {args.save}",
                  file=sys.stderr)
        raise
    finally:
        if bar:
            bar.close()
        if log:
            log.close()
    run = model.history_[epochs_before:]
    total = sum(r["seconds"] for r in run)
    print(f"Trained {len(run)} epochs in {total:.2f} s; test accuracy "
          f"{100 * model.history_[-1]['test_accuracy']:.2f}%", flush=True)
    if args.save:
        save()
        print(f"Saved the model to {args.save}", flush=True)
    if args.plot:
        from fastmlp.plot import plot_history

        plot_history(model.history_, args.plot)
        print(f"Plotted the learning curves to {args.plot}", flush=True)
    return 0


def cmd_bench(args):
    import json

    from fastmlp import bench

    rows = [row for row in bench.BENCH_ROWS if not args.quick or row[0] == (784, 30, 10)]
    backends = args.backends
    if isinstance(backends, str):
        backends = [backends]
    if backends and "torch" in backends and not bench.torch_available():
        raise UsageError("--backends torch: PyTorch is not installed (pip install torch)")
    print(bench.blas_info(), file=sys.stderr, flush=True)
    results = bench.run_bench(rows, backends=backends, repeats=args.repeats)
    compile_times = {}
    if args.compile and (backends is None or "numba" in backends):
        compile_times = {dtype: bench.compile_time(dtype) for dtype in ("float64", "float32")}
    if args.json:
        print(json.dumps({"rows": results, "compile_time": compile_times}, indent=2))
        return 0
    print(bench.format_table(results))
    for dtype, t in compile_times.items():
        print(f"numba compile time ({dtype}): first run {t['first_run']:.1f} s, cached {t['cached']:.2f} s")
    return 0


def resume_model(args, explicit):
    """Load ``--resume``'s model and fill ``args`` from it; explicit architecture
    options must agree with the file, explicit training options win."""
    from fastmlp.io import load
    from fastmlp.model import MLP

    model = load(args.resume, backend=args.backend if "backend" in explicit else None)
    if args.threads:
        model.n_threads = args.threads
    saved = {"layers": list(model.sizes), "activation": model.activation,
             "output_activation": model.output_activation, "cost": model.cost, "init": model.init,
             "dtype": str(model.dtype_), "seed": model.seed_}
    for key in ARCHITECTURE:
        if key not in explicit:
            setattr(args, key, saved[key])
            continue
        try:
            candidate = MLP(**{**_mlp_args(saved), **_mlp_args({key: getattr(args, key)})})
        except (ValueError, TypeError) as error:
            raise UsageError(str(error)) from None
        if (candidate.sizes, candidate.activations_, candidate.inits_, candidate.cost,
                candidate.dtype_, candidate.seed_) != (model.sizes, model.activations_, model.inits_,
                                                       model.cost, model.dtype_, model.seed_):
            option = "--" + key.replace("_", "-")
            raise UsageError(f"{option} {_show(getattr(args, key))} conflicts with {args.resume}, which holds a "
                             f"{'-'.join(map(str, model.sizes))} network ({', '.join(model.activations_)}; "
                             f"cost {model.cost}; {model.dtype_}; seed {model.seed_}): leave {option} out when resuming")
    stored = model.metadata_.get("extra", {}).get("train", {})
    for key in TRAINING:
        if key not in explicit and key in stored:
            setattr(args, key, stored[key])
    if "epochs" not in explicit:
        remaining = stored.get("epochs_total", 0) - model.epochs_trained_
        if remaining <= 0:
            raise UsageError(f"{args.resume} already holds all {model.epochs_trained_} epochs of its run; "
                             f"give --epochs N to train N more")
        args.epochs = remaining
    if args.schedule != "constant":
        print(f"fastmlp train: note: the {args.schedule} schedule restarts when resuming "
              f"(it runs over the {args.epochs} epochs of this run)", file=sys.stderr)
    if "save" not in explicit:
        args.save = args.resume
    return model


def _mlp_args(options):
    names = {"layers": "sizes", "seed": "seed"}
    return {names.get(k, k): v for k, v in options.items()}


def _show(value):
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def load_model(args):
    from fastmlp.io import load

    model = load(args.model, backend=args.backend)
    check_backend(model.backend)
    return model


def model_dataset(args, model):
    """--dataset, else the data set the model was trained on, else mnist."""
    if args.dataset is None:
        args.dataset = getattr(model, "metadata_", {}).get("extra", {}).get("train", {}).get("dataset", "mnist")
    if model.sizes[0] != 784 or model.sizes[-1] != 10:
        raise UsageError(f"{args.model} holds a {'-'.join(map(str, model.sizes))} network; "
                         f"{args.dataset} needs 784 inputs and 10 outputs")


def test_confusion(args, model):
    from fastmlp.metrics import confusion_matrix

    model_dataset(args, model)
    _, _, X_test, y_test = load_data(args)
    return confusion_matrix(y_test, model.predict(X_test), model.sizes[-1])


def cmd_evaluate(args):
    from fastmlp.metrics import accuracy, precision_recall
    from fastmlp.report import confusion_table, per_class_table

    model = load_model(args)
    cm = test_confusion(args, model)
    precision, recall = precision_recall(cm)
    print(f"{args.model}: {'-'.join(map(str, model.sizes))} network, {model.epochs_trained_} epochs trained")
    print(f"Test accuracy on {args.dataset}: {100 * accuracy(cm):.2f}% ({int(cm.trace())} of {int(cm.sum())})")
    print()
    print(per_class_table(precision, recall, cm.sum(axis=1)))
    print()
    print("Confusion matrix (rows: true class, columns: predicted class)")
    print(confusion_table(cm))
    return 0


def cmd_predict(args):
    from fastmlp.inputs import read_images
    from fastmlp.metrics import class_probabilities

    model = load_model(args)
    if model.sizes[0] != 784:
        raise UsageError(f"{args.model} holds a network with {model.sizes[0]} inputs, not 28x28 images")
    batches = [read_images(path, resize=args.resize, invert=args.invert) for path in args.files]
    for images in batches:
        P = class_probabilities(model, images.X)
        predicted = P.argmax(axis=1)
        for i, name in enumerate(images.names):
            line = f"{name}\t{predicted[i]}\t{P[i, predicted[i]]:.4f}"
            if images.labels is not None:
                line += f"\ttrue {images.labels[i]}"
            print(line)
    return 0


def cmd_plot(args):
    from pathlib import Path

    from fastmlp import plot
    from fastmlp.report import LOG_FORMATS, read_history

    check_output_folder(args.output, "-o")
    plot.require("matplotlib", "fastmlp plot", "plot", "matplotlib")
    suffix = Path(args.input).suffix.lower()
    if suffix in LOG_FORMATS:
        if args.confusion or args.weights:
            raise UsageError(f"--{'confusion' if args.confusion else 'weights'} needs a model file, "
                             f"not the history log {args.input}")
        plot.plot_history(read_history(args.input), args.output, title=Path(args.input).name)
        print(f"Plotted the learning curves of {args.input} to {args.output}")
        return 0
    model = load_model(args)
    if args.confusion:
        cm = test_confusion(args, model)
        plot.plot_confusion(cm, args.output, title=f"{Path(args.model).name}: test accuracy "
                                                   f"{100 * cm.trace() / cm.sum():.2f}%")
        what = "confusion matrix"
    elif args.weights:
        if model.sizes[0] != 784:
            raise UsageError(f"{args.model}: the first layer has {model.sizes[0]} inputs, not 28x28 images")
        plot.plot_weights(model, args.output, max_neurons=args.max_neurons)
        what = "first-layer weights"
    else:
        if not model.history_:
            raise UsageError(f"{args.model} has no training history to plot; try --weights")
        plot.plot_history(model.history_, args.output, title=Path(args.model).name)
        what = "learning curves"
    print(f"Plotted the {what} of {args.model} to {args.output}")
    return 0


def _n_val(split, n):
    if not split:
        return 0
    return int(round(split * n)) if isinstance(split, float) else split


class UsageError(FastMLPError):
    """A combination of options that makes no sense."""


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
    except OSError as error:  # e.g. a log or image file that cannot be written
        where = f"{error.filename}: " if error.filename else ""
        print(f"fastmlp {args.command}: error: {where}{error.strerror or error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"fastmlp {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
