"""The grid of a sweep: ``--param NAME=V1,V2,...`` parsed with the types of
the ``fastmlp train`` parser, expanded into trials, and every trial checked as
``fastmlp train`` would check it, so that a bad grid fails before any trial runs.

A trial's settings are a plain dict of every train option (the argparse
destinations: ``lr``, ``layers``, ``batch_size``, ...), picklable for a worker
process or a Dask worker.
"""

import argparse
import itertools

from fastmlp import training, validation
from fastmlp.errors import UsageError

#: Train options a sweep does not take, and why: each reads or writes one file
#: per run, which many trials would fight over (or, for --quiet, data_dir and
#: download, concerns the whole sweep rather than a trial).
NOT_SWEPT = {
    "save": "a sweep trains many models: --save-best PATH writes the best one",
    "checkpoint_every": "a sweep saves no checkpoints: --save-best PATH writes the best model at the end",
    "resume": "a sweep starts every trial from fresh weights; resume one model with fastmlp train --resume",
    "log": "a sweep writes no per-trial logs: --out PATH writes one row per trial",
    "plot": "a sweep draws no per-trial plots: --out PATH writes one row per trial",
    "quiet": "it concerns the whole sweep",
    "data_dir": "every trial reads the same data folder",
    "download": "it concerns the whole sweep",
}

#: What ``--param nesterov=...`` accepts for an on/off option.
BOOLEANS = {"true": True, "yes": True, "on": True, "1": True,
            "false": False, "no": False, "off": False, "0": False}


class Param:
    """One swept option: its destination name, its option string and its values."""

    def __init__(self, name, option, values, texts):
        self.name, self.option, self.values, self.texts = name, option, values, texts

    def __repr__(self):
        return f"Param({self.name!r}, {self.texts!r})"


def train_actions(parser):
    """destination -> argparse action, for every option of ``parser`` (one
    built by ``add_train_options``)."""
    return {a.dest: a for a in parser._actions if a.option_strings and a.dest != "help"}


def parse_params(specs, actions, explicit=()):
    """The ``--param`` texts as a list of :class:`Param`, in the order given.

    ``actions`` are the train options (:func:`train_actions`); ``explicit`` the
    destinations typed as fixed options, which cannot be swept as well.
    Raises :class:`UsageError` naming the parameter for an unknown option, an
    empty list, a repeated value or one the train parser refuses.
    """
    params = []
    for spec in specs:
        name, sep, text = spec.partition("=")
        name = name.strip().lstrip("-").replace("-", "_")
        if not sep or not name:
            raise UsageError(f"--param {spec!r}: expected NAME=V1,V2,... such as lr=0.05,0.1")
        if name in NOT_SWEPT:
            raise UsageError(f"--param {name}: cannot be swept ({NOT_SWEPT[name]})")
        if name not in actions:
            known = ", ".join(sorted(n for n in actions if n not in NOT_SWEPT))
            raise UsageError(f"--param {name}: not a fastmlp train option; sweepable options: {known}")
        action = actions[name]
        option = max(action.option_strings, key=len)
        if any(p.name == name for p in params):
            raise UsageError(f"--param {name}: given twice; list all its values in one --param")
        if name in explicit:
            raise UsageError(f"--param {name}: {option} is also given as a fixed option; give one or the other")
        texts = split_values(name, text)
        values = []
        for item in texts:
            value = parse_value(action, item, name)
            if value in values:
                raise UsageError(f"--param {name}: the value {item} is listed twice")
            values.append(value)
        params.append(Param(name, option, values, texts))
    return params


def split_values(name, text):
    """``"0.05,0.1"`` -> ``["0.05", "0.1"]``.  Values are separated by ``:``
    when the text holds one (a layer list, or one activation per layer, has
    commas inside a value), else by commas; ``layers`` always by ``:``."""
    text = text.strip()
    if not text:
        raise UsageError(f"--param {name}: no values; expected {name}=V1,V2,...")
    separator = ":" if name == "layers" or ":" in text else ","
    items = [item.strip() for item in text.split(separator)]
    if not all(items):
        raise UsageError(f"--param {name}: empty value in {text!r} (values are separated by {separator!r})")
    return items


def parse_value(action, text, name):
    """``text`` converted and checked as the train parser does for ``action``."""
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        if text.lower() not in BOOLEANS:
            raise UsageError(f"--param {name}: expected true or false, got {text!r}")
        value = BOOLEANS[text.lower()]
        return value if isinstance(action, argparse._StoreTrueAction) else not value
    value = text
    if action.type is not None:
        try:
            value = action.type(text)
        except argparse.ArgumentTypeError as error:
            raise UsageError(f"--param {name}: {error}") from None
        except (TypeError, ValueError):
            kind = getattr(action.type, "__name__", repr(action.type))
            raise UsageError(f"--param {name}: invalid {kind} value: {text!r}") from None
    if action.choices is not None and value not in action.choices:
        choices = ", ".join(map(repr, action.choices))
        raise UsageError(f"--param {name}: invalid choice: {text!r} (choose from {choices})")
    return value


def expand(params):
    """Every combination of the values, the last parameter varying fastest:
    a list of ``{name: value}``; one empty trial when nothing is swept."""
    return [dict(zip((p.name for p in params), combo)) for combo in itertools.product(*(p.values for p in params))]


def show(value):
    """A setting as the command line writes it: ``784,30,10``, ``0.1``, ``relu``."""
    if isinstance(value, (list, tuple)):
        return ",".join(map(show, value))
    return "" if value is None else str(value)


def label(values):
    """``layers=784,30,10 lr=0.1 seed=0``, or ``(the fixed options)`` without a grid."""
    return " ".join(f"{name}={show(value)}" for name, value in values.items()) or "(the fixed options)"


def trial_settings(args, values, explicit, names):
    """The settings of one trial: every train option ``names`` from ``args``,
    then the swept ``values``, the preset filled in and ``fastmlp train``'s
    checks run (across options, and the network ``MLP`` would refuse).
    Raises :class:`UsageError` naming the trial."""
    trial = argparse.Namespace(**{name: getattr(args, name) for name in names})
    for name, value in values.items():
        setattr(trial, name, list(value) if isinstance(value, list) else value)
    try:
        training.apply_preset(trial, set(explicit) | set(values))
        training.check_train_options(trial)
        training.new_model(trial)
    except UsageError as error:
        raise UsageError(f"trial {label(values)}: {error}") from None
    return vars(trial)


def data_key(settings):
    """Which data set a trial reads: ``(data_dir, dataset, download)``."""
    return settings["data_dir"], settings["dataset"] or "mnist", settings["download"]


def check_data_options(settings, values, n_train):
    """The check that needs the number of training images ``n_train`` (known
    once a worker has loaded the data): the validation split must leave images
    for both training and validation (``validation.validation_rows``, the
    check ``MLP.fit`` runs)."""
    if not settings["val_split"]:
        return
    n = min(n_train, settings["limit"] or n_train)
    try:
        validation.validation_rows(n, settings["val_split"])
    except ValueError as error:
        raise UsageError(f"trial {label(values)}: {error}") from None
