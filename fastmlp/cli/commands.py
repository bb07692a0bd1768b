"""The work of the ``fastmlp`` commands ``train`` (with resume, saving and
the history log), ``compile``, ``evaluate``, ``predict`` and ``plot``
(``bench`` and ``sweep`` have modules of their own).

:mod:`fastmlp.cli` parses the command line into ``args`` and calls
``args.func(args)``, one of the ``cmd_*`` functions here. Each calls the
library (``MLP``, :mod:`fastmlp.modelfile`, :mod:`fastmlp.plot`, ...) and prints;
nothing here computes anything the library does not. A combination of
options that makes no sense raises :class:`UsageError`, which the command
line reports as one line with exit status 2.

The library modules are imported inside the functions, so that
``fastmlp --help`` does not wait for numba.
"""

import sys

from fastmlp.errors import FastMLPError, UsageError

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


# --- shared by the commands ------------------------------------------------------------

def load_data(args):
    from fastmlp.datasets.mnist import load_mnist

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


# --- train ---------------------------------------------------------------------------

def cmd_train(args):
    from fastmlp.cli.report import HistoryLog, epoch_line, progress_bar

    explicit = getattr(args, "explicit", None)
    if explicit is None:
        explicit = set(vars(args))
    apply_preset(args, explicit)
    if args.resume:
        model = resume_model(args, explicit)
    check_train_options(args)
    if args.checkpoint_every and not args.save:
        raise UsageError("--checkpoint-every needs --save PATH to know where to write")
    for option in ("save", "log", "plot"):
        if getattr(args, option):
            check_output_folder(getattr(args, option), f"--{option}")
    if args.plot:
        from fastmlp.plot import require

        require("matplotlib", "--plot", "plot", "matplotlib")  # fail now, not after the run
    if not args.resume:
        model = new_model(args)
    check_backend(model.backend)

    X_train, y_train, X_test, y_test = load_data(args)
    if args.limit:
        X_train, y_train = X_train[:args.limit], y_train[:args.limit]
    compile_kernels(model, args)
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
        save_trained(model, args, args.save, epochs_total)

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
    try:
        fit_model(model, args, (X_train, y_train), (X_test, y_test), progress=bar, callback=after_epoch)
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
    print(f"Trained {len(run)} epoch{'' if len(run) == 1 else 's'} in {total:.2f} s; test accuracy "
          f"{100 * model.history_[-1]['test_accuracy']:.2f}%", flush=True)
    if args.save:
        save()
        print(f"Saved the model to {args.save}", flush=True)
    if args.plot:
        from fastmlp.plot import plot_history

        plot_history(model.history_, args.plot)
        print(f"Plotted the learning curves to {args.plot}", flush=True)
    return 0


def numba_variants(model, args):
    """The compiled numba variants ``fastmlp train`` with ``args`` runs, or
    None for another backend."""
    if model.backend != "numba":
        return None
    from fastmlp.backends import numba as numba_backend
    from fastmlp.network import SGD

    optimizer = SGD(args.lr, args.momentum, bool(args.nesterov), args.l2)
    return numba_backend.variants_for(model.net_, model.dtype_, batch_size=args.batch_size,
                                      optimizer=optimizer)


def _network_name(model):
    """E.g. ``784-30-10 sigmoid/quadratic float64``."""
    net = model.net_
    acts = "/".join(dict.fromkeys(net.activations))
    return f"{'-'.join(map(str, net.sizes))} {acts}/{net.cost} {model.dtype_.name}"


def compile_kernels(model, args, stream=None):
    """Before a numba run: if its kernels are not compiled yet, say so in one
    line with the expected time, show on a terminal that it is working, compile
    (``fastmlp.backends.numba.compile_variants``), then say how long it took.
    Returns the seconds (0.0 when everything was cached or for another backend)."""
    variants = numba_variants(model, args)
    if not variants:
        return 0.0
    return announce_compile(variants, f"for {_network_name(model)}", stream)


def announce_compile(variants, what, stream=None):
    """Compile what ``variants`` lack, saying so first with the expected time
    (one line), counting on a terminal, then saying how long it took; only
    load them when nothing is missing.  Returns the seconds spent compiling."""
    from fastmlp.backends import numba as numba_backend

    todo = numba_backend.missing(variants)
    if not todo:
        return numba_backend.compile_variants(variants)  # loads the cached code
    stream = stream or sys.stdout
    about = numba_backend.estimate_seconds(variants)
    print(f"compiling {len(todo)} numba kernel variant{'s' if len(todo) > 1 else ''} {what} (once on this "
          f"machine; every network reuses them), about {about:.0f} s", file=stream, flush=True)
    with _working(stream):
        seconds = numba_backend.compile_variants(variants)
    print(f"compiled in {seconds:.1f} s; later runs load them from the cache", file=stream, flush=True)
    return seconds


class _working:
    """On a terminal, a line that counts the seconds while a block runs (erased
    afterwards); elsewhere nothing, so logs stay clean."""

    def __init__(self, stream):
        self.stream = stream
        self.thread = None

    def __enter__(self):
        if self.stream.isatty():
            import threading
            import time

            self.done = threading.Event()
            start = time.perf_counter()

            def tick():
                while not self.done.wait(0.5):
                    self.stream.write(f"\r  compiling ... {time.perf_counter() - start:.0f} s")
                    self.stream.flush()

            self.thread = threading.Thread(target=tick, daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *exc):
        if self.thread is not None:
            self.done.set()
            self.thread.join()
            self.stream.write("\r\033[K")
            self.stream.flush()


def cmd_compile(args):
    """``fastmlp compile [train options]``: compile the numba kernels the same
    ``fastmlp train`` would run, without data and without training, e.g.
    while building a container image; ``fastmlp compile --all``: every kernel
    variant this machine can run, both dtypes, SGD and Adam."""
    if getattr(args, "all", False):
        if args.backend not in (None, "numba"):
            raise UsageError(f"--backend {args.backend} compiles nothing; fastmlp compile is for the numba backend")
        from fastmlp.backends import numba as numba_backend

        variants = numba_backend.all_variants()
        seconds = announce_compile(variants, "for every network, both dtypes")
        if not seconds:
            print(f"all {len(variants)} numba kernel variants are already compiled (in the cache)", flush=True)
        return 0
    explicit = getattr(args, "explicit", None)
    if explicit is None:
        explicit = set(vars(args))
    apply_preset(args, explicit)
    check_train_options(args)
    model = new_model(args)
    if model.backend != "numba":
        raise UsageError(f"--backend {model.backend} compiles nothing; fastmlp compile is for the numba backend")
    check_backend(model.backend)
    seconds = compile_kernels(model, args)
    if not seconds:
        print(f"the numba kernels for {_network_name(model)} are already compiled (in the cache)", flush=True)
    return 0


def apply_preset(args, explicit):
    """Fill in the options of ``--preset``; options typed on the command line
    (``explicit``) win over the preset."""
    for key, value in PRESETS.get(args.preset or "", {}).items():
        if key not in explicit:
            setattr(args, key, value)


def check_train_options(args):
    """The checks across options that need neither the data nor a file."""
    if args.layers[0] != 784:
        raise UsageError(f"--layers must start with 784 for {args.dataset} (28x28 images), got {args.layers[0]}")
    if args.layers[-1] != 10:
        raise UsageError(f"--layers must end with 10 for {args.dataset} (10 classes), got {args.layers[-1]}")
    if args.nesterov and not args.momentum:
        raise UsageError("--nesterov needs --momentum > 0")
    if args.patience and not args.val_split:
        raise UsageError("--patience needs a validation set: add --val-split")


def new_model(args):
    """The untrained ``MLP`` the options describe (``fastmlp sweep`` builds its
    trials with this too, so a trial is the network ``fastmlp train`` would train)."""
    from fastmlp.model import MLP

    try:
        return MLP(args.layers, activation=args.activation, output_activation=args.output_activation,
                   cost=args.cost, init=args.init, backend=args.backend, dtype=args.dtype,
                   seed=args.seed, n_threads=args.threads)
    except (ValueError, TypeError) as error:
        raise UsageError(str(error)) from None


def fit_model(model, args, train_data, test_data, progress=None, callback=None):
    """``model.fit`` with the training options of ``args``, continuing from the
    weights ``model`` holds (``initialize()`` them first, or resume).  Shared by
    ``fastmlp train`` and every ``fastmlp sweep`` trial, so both train the same bits."""
    model.warm_start = True
    try:
        return model.fit(*train_data, epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
                         momentum=args.momentum, nesterov=args.nesterov, l2=args.l2, schedule=args.schedule,
                         val_split=args.val_split, patience=args.patience, test_data=test_data,
                         progress=progress, callback=callback)
    except (ValueError, TypeError) as error:
        if isinstance(error, FastMLPError):
            raise
        raise UsageError(str(error)) from None


def save_trained(model, args, path, epochs_total):
    """Write ``model`` with the training options ``--resume`` reuses."""
    from fastmlp.modelfile import save as save_model

    options = {key: getattr(args, key) for key in TRAINING}
    save_model(model, path, extra={"train": {**options, "epochs_total": epochs_total}})


def resume_model(args, explicit):
    """Load ``--resume``'s model and fill ``args`` from it; explicit architecture
    options must agree with the file, explicit training options win."""
    from fastmlp.model import load
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


def _n_val(split, n):
    if not split:
        return 0
    return int(round(split * n)) if isinstance(split, float) else split


# --- evaluate, predict, plot ----------------------------------------------------------

def load_model(args):
    from fastmlp.model import load

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
    from fastmlp.cli.report import confusion_table, per_class_table

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
    from fastmlp.datasets.images import read_images
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
    from fastmlp.cli.report import LOG_FORMATS, read_history

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
