"""Model files: ``save(model, path)`` writes one, ``read_model_file(path)``
reads its metadata and arrays back, checked (``fastmlp.load`` builds the
``MLP`` from them).  Nothing here depends on the ``MLP`` class.

A model file is an ordinary NumPy ``.npz`` archive (a zip of ``.npy`` arrays)
that ``np.load(path, allow_pickle=False)`` can open without fastmlp:

``metadata``  uint8 ``(n_bytes,)``: UTF-8 JSON text (see below).  Stored as
              bytes, not as a pickled object, so loading never runs code.
``params``    ``(n_params,)`` in the model's dtype: every weight and bias, flat,
              in the layout of ``fastmlp.network`` (``W_1, b_1, W_2, b_2, ...``,
              each ``W_l`` row-major ``(n_out, n_in)``).
``velocity``  same shape and dtype, SGD's momentum buffer; present only when
              it is not all zeros.
``adam_moments``  ``(2 n_params,)`` in the model's dtype: Adam's first moments,
              then its second moments; present only after Adam steps, with
              their count in the metadata's ``adam_steps``.

With the optimiser state and the history (whose length is the epoch count)
in the file, a resumed training continues exactly as the uninterrupted one.

The JSON metadata holds ``format`` ("fastmlp-model"), ``format_version``
(:data:`FORMAT_VERSION`), the fastmlp version that wrote it, the constructor
arguments that describe the network (sizes, activation, output_activation,
cost, init, backend, dtype, dropout, seed), the resolved per-layer ``activations`` and
``inits``, the training
``history`` and an ``arrays`` table with the shape and dtype of every array, which
``load`` checks before trusting anything.  Run settings (``warm_start``,
``n_threads``) are not the model's and are not stored.  Callers may add a JSON-able ``extra``
dict (the CLI keeps its training options there so ``--resume`` can reuse them).

Writes go to a temporary file in the destination folder, which then replaces
the destination in one ``os.replace``: an interrupted save leaves the previous
file intact, never half of a new one.
"""

import json
import struct
import tokenize
import zipfile
import zlib
from pathlib import Path

import numpy as np

from fastmlp._files import atomic_write
from fastmlp.errors import ModelFileError, shown

#: Version of the file layout described above; ``load`` refuses newer ones.
#: Version 2 adds ``adam_moments`` and ``adam_steps``; version 1 files load.
FORMAT_VERSION = 2
FORMAT_NAME = "fastmlp-model"
METADATA_KEY = "metadata"

#: Constructor arguments stored (and passed back to ``MLP`` on load): the
#: network's description, not run settings such as ``warm_start``.
INIT_ARGS = ("sizes", "activation", "output_activation", "cost", "init", "backend", "dtype", "dropout")
_REQUIRED = ("format_version", "sizes", "activations", "inits", "cost", "dtype", "seed", "backend",
             "history", "arrays")


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (tuple, np.ndarray)):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__} in model metadata")


# --- save ----------------------------------------------------------------------------

def save(model, path, *, extra=None):
    """Write ``model`` (a fitted or initialised ``MLP``) to ``path`` as described above.

    Parameters
    ----------
    model : MLP
    path : str or Path
        Written exactly as given (no ``.npz`` is appended).
    extra : dict, optional
        JSON-able information kept under ``"extra"`` in the metadata.

    Raises
    ------
    ModelFileError
        The model has no weights, or they are not all finite (such a file could
        only spread a diverged run).
    """
    from fastmlp._version import __version__

    path = Path(path)
    if model.params_ is None:
        raise ModelFileError(f"{shown(path)}: nothing to save: the model has no weights yet (call fit() or initialize())")
    params = np.ascontiguousarray(model.params_)
    if not np.isfinite(params).all():
        raise ModelFileError(f"{shown(path)}: refusing to save non-finite weights "
                             f"({int((~np.isfinite(params)).sum())} NaN or infinite values)")
    arrays = {"params": params}
    state = getattr(model, "velocity_", None)
    adam_steps = int(getattr(model, "adam_steps_", 0) or 0)
    if state is not None and np.any(state):
        if not np.isfinite(state).all():
            raise ModelFileError(f"{shown(path)}: refusing to save a non-finite optimiser state")
        if state.shape == params.shape:
            arrays["velocity"] = np.ascontiguousarray(state, dtype=params.dtype)
        elif state.shape == (2 * params.size,) and adam_steps:
            arrays["adam_moments"] = np.ascontiguousarray(state, dtype=params.dtype)

    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "fastmlp_version": __version__,
        **{key: getattr(model, key) for key in INIT_ARGS},
        "sizes": list(model.sizes),
        "dtype": str(model.dtype_),
        "seed": int(model.seed_),
        "activations": list(model.activations_),
        "inits": list(model.inits_),
        "layout": "W_1, b_1, W_2, b_2, ... flat; W_l row-major (n_out, n_in)",
        "history": [dict(record) for record in model.history_],
        "arrays": {name: {"shape": list(a.shape), "dtype": a.dtype.str} for name, a in arrays.items()},
    }
    if "adam_moments" in arrays:
        meta["adam_steps"] = adam_steps
    if getattr(model, "best_epoch_", None) is not None:
        meta["best_epoch"] = int(model.best_epoch_)
    if extra:
        meta["extra"] = extra
    try:
        text = json.dumps(meta, default=_json_default, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ModelFileError(f"{shown(path)}: cannot store the model's metadata as JSON ({error})") from None
    arrays[METADATA_KEY] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    if not path.parent.is_dir():
        raise ModelFileError(f"{shown(path)}: cannot save: folder {shown(path.parent)} does not exist")
    try:
        with atomic_write(path) as f:
            np.savez(f, **arrays)
    except OSError as error:
        raise ModelFileError(f"{shown(path)}: cannot save ({error.strerror or error})") from None
    return path


# --- load ----------------------------------------------------------------------------

#: What zipfile and numpy raise on damaged bytes (found by tests/test_fuzz_cli.py):
#: bad zip structures and CRCs (BadZipFile, EOFError, struct.error, zlib.error,
#: NotImplementedError for an unknown compression method), and .npy headers numpy
#: cannot parse (ValueError, SyntaxError and tokenize.TokenError from its header
#: parser, OverflowError and MemoryError for absurd shapes).
_CORRUPT = (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, RuntimeError, TypeError,
            SyntaxError, tokenize.TokenError, struct.error, zlib.error, NotImplementedError,
            OverflowError, MemoryError)

def read_model_file(path):
    """The metadata dict and the arrays of a model file, checked.

    Raises ``ModelFileError`` with one line naming the file when it is
    missing, not a fastmlp model, written by a newer format version,
    truncated or corrupt, or when an array disagrees with the metadata.
    """
    path = Path(path)
    fail = failer(path)
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as error:
        raise fail(f"cannot open ({error.strerror or error})") from None
    if head[:4] != b"PK\x03\x04":
        kind = "a single .npy array" if head.startswith(b"\x93NUM") else "not a zip archive"
        raise fail(f"not a fastmlp model file ({kind}; expected an .npz written by fastmlp)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = set(archive.files)
            if METADATA_KEY not in names:
                listed = ", ".join(shown(name) for name in sorted(names)) or "nothing"
                raise fail(f"not a fastmlp model file (no fastmlp metadata; it holds {listed})")
            meta = _parse_metadata(archive[METADATA_KEY], fail)
            declared = meta["arrays"]
            if set(declared) | {METADATA_KEY} != names:
                raise fail(f"holds arrays {sorted(names - {METADATA_KEY})} but its metadata lists {sorted(declared)}")
            arrays = {name: archive[name] for name in declared}
    except ModelFileError:
        raise
    except _CORRUPT as error:
        # Truncated or corrupt zips (BadZipFile, bad CRC), and members numpy
        # refuses: pickled object arrays (ValueError), damaged .npy headers.
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        if "pickle" in reason.lower():
            reason = "it holds a pickled object array, which fastmlp never writes or loads"
        raise fail(f"truncated or corrupt model file ({reason})") from None
    for name, spec in declared.items():
        _check_array(arrays[name], name, spec, fail)
    return meta, arrays


# --- checks ----------------------------------------------------------------------------

def failer(path):
    def fail(message):
        return ModelFileError(f"{shown(path)}: {message}")
    return fail


def _parse_metadata(array, fail):
    if array.dtype != np.uint8 or array.ndim != 1:
        raise fail(f"metadata must be a 1-D uint8 array of JSON text, found {array.dtype} {array.shape}")
    try:
        meta = json.loads(array.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise fail(f"metadata is not valid JSON ({error})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise fail("not a fastmlp model file (its metadata does not say format 'fastmlp-model')")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise fail(f"invalid model format version {version!r}")
    if version > FORMAT_VERSION:
        from fastmlp._version import __version__
        writer = meta.get("fastmlp_version", "a newer fastmlp")
        raise fail(f"written by fastmlp {writer} in model format version {version}; this fastmlp "
                   f"({__version__}) reads version {FORMAT_VERSION} at most: upgrade fastmlp to load it")
    missing = [key for key in _REQUIRED if key not in meta]
    if missing:
        raise fail(f"metadata lacks {', '.join(missing)}")
    arrays = meta["arrays"]
    if not isinstance(arrays, dict) or not all(
            isinstance(spec, dict) and isinstance(spec.get("shape"), list) and isinstance(spec.get("dtype"), str)
            for spec in arrays.values()):
        raise fail("metadata 'arrays' must map each array name to its shape and dtype")
    return meta


def _check_array(array, name, spec, fail):
    try:
        dtype = np.dtype(spec["dtype"])
    except TypeError:
        raise fail(f"metadata gives array {name!r} an unknown dtype {spec['dtype']!r}") from None
    if array.shape != tuple(spec["shape"]) or array.dtype != dtype:
        raise fail(f"array {name!r} has shape {array.shape} and dtype {array.dtype}, but the metadata "
                   f"says {tuple(spec['shape'])} {dtype}")


def check_history(history, fail):
    if not isinstance(history, list) or not all(isinstance(r, dict) for r in history):
        raise fail("history must be a list of per-epoch records")
    for i, record in enumerate(history, start=1):
        if record.get("epoch") != i:
            raise fail(f"history record {i} has epoch {record.get('epoch')!r}, expected {i}")
    return [dict(r) for r in history]
