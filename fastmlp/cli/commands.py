"""The work of the ``fastmlp`` commands ``train`` (with resume, saving and
the history log), ``compile``, ``evaluate``, ``predict`` and ``plot``
(``bench`` and ``sweep`` have modules of their own).

:mod:`fastmlp.cli` parses the command line into ``args`` and calls
``args.func(args)``, one of the ``cmd_*`` functions here. Each calls the
library (``MLP``, :mod:`fastmlp.training`, :mod:`fastmlp.modelfile`,
:mod:`fastmlp.plot`, ...) and prints; nothing here computes anything the
library does not. A combination of options that makes no sense raises
:class:`~fastmlp.errors.UsageError`, which the command line reports as one
line with exit status 2.

The heavier library modules are imported inside the functions, so that
``fastmlp --help`` does not wait for numba.
"""

import sys

from fastmlp import training, validation
from fastmlp.errors import FastMLPError, UsageError, shown
from fastmlp.training import ARCHITECTURE, TRAINING


def check_output_folder(path, option):
    from pathlib import Path

    folder = Path(path).parent
    if not folder.is_dir():
        raise UsageError(f"{option} {shown(path)}: folder {shown(folder)} does not exist")
    if Path(path).is_dir():
        raise UsageError(f"{option} {shown(path)}: is a folder, expected a file name")


def _explicit(args):
    explicit = getattr(args, "explicit", None)
    return set(vars(args)) if explicit is None else explicit


# --- train ---------------------------------------------------------------------------

def cmd_train(args):
    from fastmlp.cli.report import HistoryLog, epoch_line, progress_bar

    explicit = _explicit(args)
    if args.resume:
        model, run_start, run_total = resume_model(args, explicit)
    else:
        training.apply_preset(args, explicit)
    training.check_train_options(args)
    if args.checkpoint_every and not args.save:
        raise UsageError("--checkpoint-every needs --save PATH to know where to write")
    for option in ("save", "log", "plot"):
        if getattr(args, option):
            check_output_folder(getattr(args, option), f"--{option}")
    if args.plot:
        from fastmlp.plot import require

        require("matplotlib", "--plot", "plot", "matplotlib")  # fail now, not after the run
    if args.resume:
        training.check_backend(model.backend)
    else:
        model = training.new_model(args)

    X_train, y_train, X_test, y_test = training.load_data(args)
    if args.limit:
        X_train, y_train = X_train[:args.limit], y_train[:args.limit]
    compile_kernels(model, args)
    if args.resume:
        print(f"Resuming {shown(args.resume)} after epoch {model.epochs_trained_}: test accuracy "
              f"{100 * model.score(X_test, y_test):.2f}%", flush=True)
    else:
        model.initialize()
        run_start, run_total = 0, args.epochs
        print(f"Epoch 0 (before training): test accuracy {100 * model.score(X_test, y_test):.2f}%", flush=True)
    epochs_before = model.epochs_trained_
    ran = [epochs_before]  # epochs of the run so far, the undone ones of early stopping included

    def save():
        training.save_trained(model, args, args.save, run_start=run_start, run_total=run_total,
                              epochs_run=ran[0])

    log = HistoryLog(args.log, model.history_) if args.log else None

    def after_epoch(record):
        ran[0] = record["epoch"]
        if record["epoch"] == epochs_before + 1 and getattr(model, "warm_up_seconds_", 0) > 1.0:
            print(f"(compiled the {model.backend} kernels in {model.warm_up_seconds_:.1f} s before epoch "
                  f"{record['epoch']}, not counted in epoch times; later runs load them from the cache)", flush=True)
        if log:
            log.write(record)
        if args.checkpoint_every and record["epoch"] % args.checkpoint_every == 0:
            save()
        print(epoch_line(record), flush=True)

    n_val = validation.validation_rows(len(X_train), args.val_split) if args.val_split else 0
    bar = progress_bar(len(X_train) - n_val, enabled=not args.quiet)
    try:
        training.fit_model(model, args, (X_train, y_train), (X_test, y_test), run_start=run_start,
                           run_total=run_total, progress=bar, callback=after_epoch)
    except KeyboardInterrupt:
        # MLP.fit has put back the state of the last completed epoch.
        if bar:
            bar.close()
            bar = None
        done = model.epochs_trained_
        ran[0] = done
        if log:
            log.catch_up(model.history_)
        if args.save:
            save()
            where = f"saved the state of epoch {done} to {shown(args.save)}"
        else:
            where = "nothing saved (add --save PATH to keep the weights)"
        print(f"fastmlp train: interrupted after epoch {done}; {where}", file=sys.stderr, flush=True)
        return 130
    except FastMLPError:  # DivergenceError, OutOfMemoryError: the last good state is back in place
        ran[0] = model.epochs_trained_
        if args.save and model.epochs_trained_ > epochs_before:
            save()
            print(f"fastmlp train: saved the state of epoch {model.epochs_trained_} to {shown(args.save)}",
                  file=sys.stderr)
        raise
    finally:
        if bar:
            bar.close()
        if log:
            log.close()
    print(summary_line(model, epochs_before, ran[0]), flush=True)
    if args.save:
        save()
        print(f"Saved the model (epoch {model.epochs_trained_}) to {shown(args.save)}", flush=True)
    if args.plot:
        from fastmlp.plot import plot_history

        plot_history(model.history_, args.plot)
        print(f"Plotted the learning curves to {shown(args.plot)}", flush=True)
    return 0


def summary_line(model, epochs_before, epochs_run):
    """The last line of ``fastmlp train``: the epochs run and their time, and
    the figures of the model it keeps (after early stopping: the best
    epoch's, which is what it saves)."""
    run = model.history_[epochs_before:] + model.discarded_history_
    total = sum(r["seconds"] for r in run)
    n_run = epochs_run - epochs_before
    line = f"Trained {n_run} epoch{'' if n_run == 1 else 's'} in {total:.2f} s"
    kept = model.history_[-1] if model.history_ else None
    if model.discarded_history_:
        line += (f"; early stopping kept epoch {model.epochs_trained_} (best validation accuracy "
                 f"{100 * kept['val_accuracy']:.2f}%)" if kept and "val_accuracy" in kept else
                 f"; early stopping kept epoch {model.epochs_trained_}")
    if kept and "test_accuracy" in kept:
        line += f"; test accuracy {100 * kept['test_accuracy']:.2f}%"
    return line


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
    variants = training.numba_variants(model, args)
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
        training.check_backend("numba")
        from fastmlp.backends import numba as numba_backend

        variants = numba_backend.all_variants()
        seconds = announce_compile(variants, "for every network, both dtypes")
        if not seconds:
            print(f"all {len(variants)} numba kernel variants are already compiled (in the cache)", flush=True)
        return 0
    training.apply_preset(args, _explicit(args))
    training.check_train_options(args)
    if args.backend != "numba":
        raise UsageError(f"--backend {args.backend} compiles nothing; fastmlp compile is for the numba backend")
    model = training.new_model(args)
    seconds = compile_kernels(model, args)
    if not seconds:
        print(f"the numba kernels for {_network_name(model)} are already compiled (in the cache)", flush=True)
    return 0


def resume_model(args, explicit):
    """Load ``--resume``'s model and fill ``args`` from it; explicit architecture
    options must agree with the file, explicit training options win.  Returns
    the model and its run's start and length: without ``--epochs`` the saved
    run continues to its end (its schedule too); with ``--epochs N`` a new
    run of N epochs starts."""
    from fastmlp.model import MLP, load

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
            candidate = MLP(**{**_mlp_args(saved), **_mlp_args({key: getattr(args, key)})}).build()
        except (ValueError, TypeError) as error:
            raise UsageError(str(error)) from None
        if (candidate.net_, candidate.inits_, candidate.dtype_, candidate.seed_) != (
                model.net_, model.inits_, model.dtype_, model.seed_):
            option = "--" + key.replace("_", "-")
            raise UsageError(f"{option} {_show(getattr(args, key))} conflicts with {shown(args.resume)}, which "
                             f"holds a {'-'.join(map(str, model.sizes))} network ({', '.join(model.activations_)}; "
                             f"cost {model.cost}; {model.dtype_}; seed {model.seed_}): leave {option} out when resuming")
    if "dropout" in explicit:  # a training choice: the resumed run may change it
        model.dropout = args.dropout
        try:
            model.build()
        except (ValueError, TypeError) as error:
            raise UsageError(str(error)) from None
    else:
        args.dropout = model.dropout
    stored = model.metadata_.get("extra", {}).get("train", {})
    for key in TRAINING:
        if key not in explicit and stored.get(key) is not None:
            setattr(args, key, stored[key])
    training.apply_preset(args, explicit | set(TRAINING))  # only the solver's default rate is left to fill
    if "save" not in explicit:
        args.save = args.resume
    done = model.epochs_trained_
    if "epochs" in explicit:
        if args.schedule != "constant":
            print(f"fastmlp train: note: --epochs {args.epochs} starts a new run: the {args.schedule} "
                  f"schedule runs over its {args.epochs} epochs", file=sys.stderr)
        return model, done, done + args.epochs
    run_start = stored.get("run_start", 0)
    run_total = stored.get("epochs_total", 0)
    epochs_run = stored.get("epochs_run", done)
    if done < epochs_run:  # early stopping ended the run and undid its last epochs
        raise UsageError(f"{shown(args.resume)} holds a finished run: early stopping ended it after epoch "
                         f"{epochs_run} of {run_total} and kept epoch {done}; give --epochs N to train N more")
    if epochs_run >= run_total:
        raise UsageError(f"{shown(args.resume)} already ran all {run_total} epochs of its run; "
                         f"give --epochs N to train N more")
    args.epochs = run_total - done
    return model, run_start, run_total


def _mlp_args(options):
    names = {"layers": "sizes", "seed": "seed"}
    return {names.get(k, k): v for k, v in options.items()}


def _show(value):
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else shown(value)


# --- evaluate, predict, plot ----------------------------------------------------------

def load_model(args):
    from fastmlp.model import load

    model = load(args.model, backend=args.backend)
    training.check_backend(model.backend)
    return model


def model_dataset(args, model):
    """--dataset, else the data set the model was trained on, else mnist."""
    if args.dataset is None:
        args.dataset = getattr(model, "metadata_", {}).get("extra", {}).get("train", {}).get("dataset", "mnist")
    if model.sizes[0] != 784 or model.sizes[-1] != 10:
        raise UsageError(f"{shown(args.model)} holds a {'-'.join(map(str, model.sizes))} network; "
                         f"{args.dataset} needs 784 inputs and 10 outputs")


def test_confusion(args, model):
    from fastmlp.metrics import confusion_matrix

    model_dataset(args, model)
    _, _, X_test, y_test = training.load_data(args)
    return confusion_matrix(y_test, model.predict(X_test), model.sizes[-1])


def cmd_evaluate(args):
    from fastmlp.metrics import accuracy, precision_recall
    from fastmlp.cli.report import confusion_table, per_class_table

    model = load_model(args)
    cm = test_confusion(args, model)
    precision, recall = precision_recall(cm)
    print(f"{shown(args.model)}: {'-'.join(map(str, model.sizes))} network, {model.epochs_trained_} epochs trained")
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
        raise UsageError(f"{shown(args.model)} holds a network with {model.sizes[0]} inputs, not 28x28 images")
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
                             f"not the history log {shown(args.input)}")
        plot.plot_history(read_history(args.input), args.output, title=Path(args.input).name)
        print(f"Plotted the learning curves of {shown(args.input)} to {shown(args.output)}")
        return 0
    model = load_model(args)
    if args.confusion:
        cm = test_confusion(args, model)
        plot.plot_confusion(cm, args.output, title=f"{Path(args.model).name}: test accuracy "
                                                   f"{100 * cm.trace() / cm.sum():.2f}%")
        what = "confusion matrix"
    elif args.weights:
        if model.sizes[0] != 784:
            raise UsageError(f"{shown(args.model)}: the first layer has {model.sizes[0]} inputs, not 28x28 images")
        plot.plot_weights(model, args.output, max_neurons=args.max_neurons)
        what = "first-layer weights"
    else:
        if not model.history_:
            raise UsageError(f"{shown(args.model)} has no training history to plot; try --weights")
        plot.plot_history(model.history_, args.output, title=Path(args.model).name)
        what = "learning curves"
    print(f"Plotted the {what} of {shown(args.model)} to {shown(args.output)}")
    return 0
