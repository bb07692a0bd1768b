"""Training from a set of named options: what ``fastmlp train`` and every
``fastmlp sweep`` trial share, so a trial trains bitwise the network
``fastmlp train`` would train with the same options.

``options`` is any object with ``fastmlp train``'s option names as
attributes (an ``argparse.Namespace``; a sweep trial's settings dict turned
into one).  A combination that makes no sense raises
:class:`~fastmlp.errors.UsageError` naming the option; nothing here prints.

A *run* is one training of ``epochs_total`` epochs that started when the
model held ``run_start`` epochs; it may be split over several processes
(interrupted and resumed), and its learning-rate schedule spans the whole
run, so the split changes nothing.
"""

from fastmlp import validation
from fastmlp.backends import get_backend
from fastmlp.errors import FastMLPError, UsageError
from fastmlp.model import MLP
from fastmlp.network import SGD, Adam
from fastmlp.presets import PRESETS

#: Options that fix the network; with --resume they come from the file.
ARCHITECTURE = ("layers", "activation", "output_activation", "cost", "init", "dtype", "seed")
#: Training options stored in the model file and reused by --resume unless given again.
TRAINING = ("solver", "batch_size", "lr", "momentum", "nesterov", "beta_1", "beta_2", "epsilon", "l2",
            "max_norm", "shift", "schedule", "val_split", "patience", "limit", "dataset", "checkpoint_every")
#: The learning rate when none is given: the original's 10 for SGD (gradients
#: averaged over the batch, quadratic cost), Adam's usual 0.001 (scikit-learn's
#: and PyTorch's default too).
DEFAULT_RATES = {"sgd": 10.0, "adam": 0.001}
#: Options only plain SGD takes.
SGD_ONLY = ("momentum", "nesterov")
#: Options only Adam takes.
ADAM_ONLY = ("beta_1", "beta_2", "epsilon")


# --- the options -----------------------------------------------------------------

def momentum_value(value):
    """The check of a momentum coefficient, shared by the parser and ``MLP.fit``: [0, 1)."""
    return validation.check_number(value, "momentum", 0.0, maximum=1.0)


def beta_value(value, name):
    """The check of one of Adam's decay rates: [0, 1)."""
    return validation.check_number(value, name, 0.0, maximum=1.0)


def apply_preset(options, explicit):
    """Fill in the options of ``--preset`` (explicit options win) and the
    defaults that depend on other options (the learning rate on the
    solver)."""
    preset = PRESETS.get(getattr(options, "preset", None) or "", {})
    if getattr(options, "solver", "sgd") == "adam":
        clashes = [key for key in SGD_ONLY if preset.get(key) and key not in explicit]
        if clashes:
            raise UsageError(f"--preset {options.preset} is an SGD recipe ({', '.join(clashes)}); "
                             f"with --solver adam give the options yourself")
    for key, value in preset.items():
        if key not in explicit:
            setattr(options, key, value)
    if getattr(options, "lr", None) is None:
        options.lr = DEFAULT_RATES[getattr(options, "solver", "sgd")]


def check_train_options(options):
    """The checks across options that need neither the data nor a file."""
    if options.layers[0] != 784:
        raise UsageError(f"--layers must start with 784 for {options.dataset} (28x28 images), "
                         f"got {options.layers[0]}")
    if options.layers[-1] != 10:
        raise UsageError(f"--layers must end with 10 for {options.dataset} (10 classes), "
                         f"got {options.layers[-1]}")
    solver = getattr(options, "solver", "sgd")
    if solver == "adam":
        given = [key for key in SGD_ONLY if getattr(options, key, None)]
        if given:
            names = " and ".join("--" + key for key in given)
            raise UsageError(f"{names}: SGD settings; Adam has --beta-1 and --beta-2")
    if options.nesterov and not options.momentum:
        raise UsageError("--nesterov needs --momentum > 0")
    if options.patience and not options.val_split:
        raise UsageError("--patience needs a validation set: add --val-split")


def check_backend(name):
    """Import the backend now, so a missing one is one line and not a traceback."""
    try:
        get_backend(name)
    except ImportError as error:
        raise UsageError(f"the {name} backend cannot be loaded ({error}); try --backend numpy") from None


def optimizer(options, lr=None):
    """The ``network.SGD`` or ``network.Adam`` the options describe."""
    lr = options.lr if lr is None else lr
    max_norm = getattr(options, "max_norm", 0.0) or 0.0
    if getattr(options, "solver", "sgd") == "adam":
        return Adam(lr, options.beta_1, options.beta_2, options.epsilon, options.l2, max_norm=max_norm)
    return SGD(lr, options.momentum, bool(options.nesterov), options.l2, max_norm)


# --- the model -------------------------------------------------------------------

def new_model(options):
    """The untrained ``MLP`` the options describe, checked (``MLP.build``)."""
    check_backend(options.backend)
    try:
        return MLP(options.layers, activation=options.activation, output_activation=options.output_activation,
                   cost=options.cost, init=options.init, backend=options.backend, dtype=options.dtype,
                   seed=options.seed, n_threads=options.threads, dropout=getattr(options, "dropout", None)).build()
    except (ValueError, TypeError) as error:
        raise UsageError(str(error)) from None


def numba_variants(model, options):
    """The compiled numba variants a training with ``options`` runs, or None
    for another backend."""
    if model.backend != "numba":
        return None
    from fastmlp.backends import numba as numba_backend

    return numba_backend.variants_for(model.net_, model.dtype_, batch_size=options.batch_size,
                                      optimizer=optimizer(options))


def load_data(options):
    """The data set of ``options.dataset`` (default mnist) from ``options.data_dir``."""
    from fastmlp.datasets.mnist import load_mnist

    return load_mnist(options.data_dir, dataset=options.dataset or "mnist", download=options.download)


def fit_model(model, options, train_data, test_data, *, run_start=0, run_total=None, progress=None,
              callback=None):
    """``model.fit`` with the training options, continuing from the state
    ``model`` holds (``initialize()`` it first, or resume), for
    ``options.epochs`` epochs of the run that started at epoch ``run_start``
    and ends at ``run_total`` (default: after these epochs)."""
    done = model.epochs_trained_
    run_total = done + options.epochs if run_total is None else run_total
    solver = getattr(options, "solver", "sgd")
    settings = (dict(beta_1=options.beta_1, beta_2=options.beta_2, epsilon=options.epsilon) if solver == "adam"
                else dict(momentum=options.momentum, nesterov=options.nesterov))
    warm_start, model.warm_start = model.warm_start, True
    try:
        return model.fit(*train_data, epochs=options.epochs, batch_size=options.batch_size,
                         learning_rate=options.lr, solver=solver, l2=options.l2, schedule=options.schedule,
                         schedule_start=done - run_start, schedule_length=run_total - run_start,
                         max_norm=getattr(options, "max_norm", 0.0) or 0.0, shift=getattr(options, "shift", 0) or 0,
                         val_split=options.val_split, patience=options.patience, test_data=test_data,
                         progress=progress, callback=callback, **settings)
    except (ValueError, TypeError) as error:
        if isinstance(error, FastMLPError):
            raise
        raise UsageError(str(error)) from None
    finally:
        model.warm_start = warm_start


def save_trained(model, options, path, *, run_start, run_total, epochs_run):
    """Write ``model`` with the training options ``--resume`` reuses and
    where its run stands: it started at epoch ``run_start``, spans
    ``run_total`` epochs, and ``epochs_run`` of them ran (more than the
    model holds when early stopping undid the last ones)."""
    from fastmlp.modelfile import save as save_model

    stored = {key: getattr(options, key, None) for key in TRAINING}
    save_model(model, path, extra={"train": {**stored, "run_start": run_start, "epochs_total": run_total,
                                             "epochs_run": epochs_run}})
