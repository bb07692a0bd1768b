"""Model files (``fastmlp.modelfile``): round trips are bit-identical, and every kind of
bad file is refused with one ``ModelFileError`` line naming it."""

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import synthetic_digits

from fastmlp import MLP, ModelFileError
from fastmlp.config import TEST_ATOL_FLOAT64, TEST_RTOL_FLOAT32
from fastmlp.model import load
from fastmlp.modelfile import FORMAT_VERSION, save


BACKENDS = ["numpy", "numba"]


def tiny_data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 784)).astype(np.uint8), rng.integers(0, 10, n)


@pytest.fixture(scope="module")
def fitted():
    X, y = tiny_data()
    model = MLP([784, 8, 10], activation="relu", cost="nll", backend="numpy", seed=3)
    model.fit(X, y, epochs=2, batch_size=16, learning_rate=0.1, momentum=0.9, val_split=20)
    return model


def write_npz(path, **arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def metadata_of(path):
    with np.load(path, allow_pickle=False) as archive:
        return json.loads(archive["metadata"].tobytes()), {k: archive[k] for k in archive.files}


def rewrite(path, meta, arrays):
    arrays = dict(arrays)
    arrays["metadata"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    return write_npz(path, **arrays)


# --- round trips ------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_save_load_round_trip_is_bit_identical(backend, dtype, tmp_path):
    X, y = tiny_data()
    model = MLP([784, 10, 7, 10], activation=["tanh", "relu", "sigmoid"], cost="cross_entropy",
                backend=backend, dtype=dtype, seed=11)
    model.fit(X, y, epochs=2, batch_size=10, learning_rate=0.5)
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = load(path)
    assert loaded.backend == backend and loaded.dtype_ == np.dtype(dtype)
    assert loaded.params_.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(loaded.params_, model.params_)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert loaded.history_ == model.history_
    assert loaded.seed_ == 11 and loaded.sizes == tuple(model.sizes)
    assert loaded.activations_ == model.activations_ and loaded.inits_ == model.inits_


def test_round_trip_keeps_history_seed_and_momentum(fitted, tmp_path):
    path = save(fitted, tmp_path / "m.npz")
    loaded = load(path)
    assert [r["epoch"] for r in loaded.history_] == [1, 2]
    assert loaded.history_[1]["val_accuracy"] == fitted.history_[1]["val_accuracy"]
    assert loaded.seed_ == fitted.seed_ == 3
    np.testing.assert_array_equal(loaded.velocity_, fitted.velocity_)
    assert loaded.activations_ == ["relu", "softmax"] and loaded.cost == "nll"


def test_a_drawn_seed_is_kept(tmp_path):
    model = MLP([784, 4, 10], backend="numpy").initialize()  # seed drawn at random
    loaded = load(save(model, tmp_path / "m.npz"))
    assert loaded.seed_ == model.seed_
    np.testing.assert_array_equal(loaded.initialize().params_, model.initialize().params_)


def test_load_can_override_the_backend(fitted, tmp_path):
    path = save(fitted, tmp_path / "m.npz")
    loaded = load(path, backend="numba")
    assert loaded.backend == "numba" and fitted.backend == "numpy"
    X, _ = tiny_data(seed=1)
    np.testing.assert_allclose(loaded.predict_proba(X), fitted.predict_proba(X), rtol=0, atol=TEST_ATOL_FLOAT64)


# --- a file written by an earlier fastmlp -------------------------------------------------

#: A model file of format version 1, committed so that a change of the format or
#: of ``load`` that stops old files from loading fails here.  Written on
#: 2026-12-01 by fastmlp 0.1.0 (NumPy backend) with
#:     X, y = synthetic_digits(300, seed=1)        # tests/helpers.py
#:     model = MLP([784, 4, 10], activation="tanh", cost="nll", backend="numpy", dtype="float32", seed=5)
#:     model.fit(X, y, epochs=3, batch_size=10, learning_rate=0.05, momentum=0.9, val_split=50)
#:     model.save(FORMAT_1_FILE)
#: and, next to it, the check set: X = synthetic_digits(12, seed=9)[0] and
#: proba = model.predict_proba(X) as that run computed them.  Do not rewrite
#: these files when the format changes: old files must keep loading.
FORMAT_1_FILE = Path(__file__).parent / "data" / "model-format-1.npz"
FORMAT_1_CHECK = Path(__file__).parent / "data" / "model-format-1-check.npz"


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_format_1_file_loads_and_predicts_what_it_did(backend):
    model = load(FORMAT_1_FILE, backend=backend)
    assert model.sizes == (784, 4, 10) and model.activations_ == ["tanh", "softmax"] and model.cost == "nll"
    assert model.dtype_ == np.float32 and model.params_.dtype == np.float32 and model.seed_ == 5
    assert model.inits_ == ["xavier", "xavier"] and model.epochs_trained_ == 3
    assert [r["epoch"] for r in model.history_] == [1, 2, 3] and model.history_[-1]["val_accuracy"] == 0.86
    assert model.velocity_.shape == model.params_.shape and np.any(model.velocity_)  # momentum was saved
    with np.load(FORMAT_1_CHECK, allow_pickle=False) as check:
        X, proba = check["X"], check["proba"]
    # float32 results of two BLAS kernels or backends agree to TEST_RTOL_FLOAT32.
    np.testing.assert_allclose(model.predict_proba(X), proba, rtol=TEST_RTOL_FLOAT32, atol=TEST_RTOL_FLOAT32)
    top_two = np.sort(proba, axis=1)[:, -2:]
    assert (top_two[:, 1] - top_two[:, 0]).min() > 0.1  # no near-tie, so the labels are exact on any CPU
    np.testing.assert_array_equal(model.predict(X), proba.argmax(axis=1))
    np.testing.assert_array_equal(proba.argmax(axis=1), [4, 8, 4, 2, 1, 6, 6, 7, 6, 7, 4, 4])


#: How far a resumed fourth epoch may be from four epochs in one run, relative to
#: the largest weight.  Measured 2026-12-01 on an AMD EPYC Zen 4 (AVX-512,
#: OpenBLAS SkylakeX kernels): nudging every initial weight by one ulp moves the
#: four-epoch weights by 1.1e-6 of the largest one (the rounding noise another
#: CPU adds to the file's three epochs); resuming with the momentum buffer lost
#: moves them by 5.7e-2.  1e-4 lies between the two by a factor of ~100 and ~500.
RESUME_RTOL = TEST_RTOL_FLOAT32


def test_training_resumes_from_a_format_1_file_like_an_uninterrupted_run():
    X, y = synthetic_digits(300, seed=1)
    fit = dict(batch_size=10, learning_rate=0.05, momentum=0.9, val_split=50)
    resumed = load(FORMAT_1_FILE)
    resumed.warm_start = True
    resumed.fit(X, y, epochs=1, **fit)
    assert [r["epoch"] for r in resumed.history_] == [1, 2, 3, 4]
    straight = MLP([784, 4, 10], activation="tanh", cost="nll", backend="numpy", dtype="float32", seed=5)
    straight.fit(X, y, epochs=4, **fit)
    scale = float(np.abs(straight.params_).max())
    np.testing.assert_allclose(resumed.params_, straight.params_, rtol=0, atol=RESUME_RTOL * scale)


def test_file_is_a_plain_npz_with_json_metadata_and_no_pickle(fitted, tmp_path):
    path = save(fitted, tmp_path / "m.npz")
    meta, arrays = metadata_of(path)  # allow_pickle=False: nothing pickled inside
    assert arrays["metadata"].dtype == np.uint8
    assert meta["format"] == "fastmlp-model" and meta["format_version"] == FORMAT_VERSION == 2
    assert meta["sizes"] == [784, 8, 10] and meta["activations"] == ["relu", "softmax"]
    assert meta["cost"] == "nll" and meta["dtype"] == "float64" and meta["seed"] == 3
    assert meta["backend"] == "numpy" and meta["fastmlp_version"]
    assert meta["inits"] == ["he", "xavier"] and len(meta["history"]) == 2
    assert arrays["params"].shape == (785 * 8 + 9 * 10,)


def test_save_writes_through_a_temporary_file(fitted, tmp_path, monkeypatch):
    """A save that fails half-way leaves the previous file and no temporary one."""
    path = save(fitted, tmp_path / "m.npz")
    before = path.read_bytes()

    def broken_savez(f, **arrays):
        f.write(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(KeyboardInterrupt):
        save(fitted, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]


def test_saved_file_gets_ordinary_permissions(fitted, tmp_path):
    import os

    mask = os.umask(0o022)
    os.umask(mask)
    path = save(fitted, tmp_path / "m.npz")
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask


def test_refuses_to_save_non_finite_weights(fitted, tmp_path):
    model = load(save(fitted, tmp_path / "m.npz"))
    model.params_[5] = np.nan
    with pytest.raises(ModelFileError, match="non-finite weights"):
        save(model, tmp_path / "bad.npz")
    assert not (tmp_path / "bad.npz").exists()


def test_refuses_to_save_an_unfitted_model(tmp_path):
    with pytest.raises(ModelFileError, match="no weights yet"):
        save(MLP([784, 4, 10], backend="numpy"), tmp_path / "m.npz")


def test_save_into_a_missing_folder_is_one_error(fitted, tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        save(fitted, tmp_path / "missing" / "m.npz")


# --- bad files: one ModelFileError naming the file -----------------------------------------

def assert_refused(path, *fragments):
    with pytest.raises(ModelFileError) as info:
        load(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_missing_file(tmp_path):
    assert_refused(tmp_path / "nope.npz", "cannot open")


def test_random_bytes(tmp_path):
    path = tmp_path / "random.npz"
    path.write_bytes(np.random.default_rng(0).bytes(5000))
    assert_refused(path, "not a fastmlp model file")


def test_random_bytes_after_a_zip_signature(tmp_path):
    path = tmp_path / "random.npz"
    path.write_bytes(b"PK\x03\x04" + np.random.default_rng(1).bytes(5000))
    assert_refused(path, "truncated or corrupt")


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_truncated_file(fitted, tmp_path, keep):
    data = save(fitted, tmp_path / "m.npz").read_bytes()
    path = tmp_path / "cut.npz"
    path.write_bytes(data[:int(len(data) * keep)])
    assert_refused(path, "truncated or corrupt")


def test_corrupted_bytes_fail_the_zip_checksum(fitted, tmp_path):
    data = bytearray(save(fitted, tmp_path / "m.npz").read_bytes())
    start = data.index(b"params.npy") + 200  # inside the weights
    data[start:start + 8] = b"\x00\xff" * 4
    path = tmp_path / "flipped.npz"
    path.write_bytes(bytes(data))
    assert_refused(path, "truncated or corrupt")


def test_plain_npz_without_metadata(tmp_path):
    path = write_npz(tmp_path / "plain.npz", W=np.zeros((3, 3)), b=np.zeros(3))
    assert_refused(path, "not a fastmlp model file", "no fastmlp metadata", "W, b")


def test_a_single_npy_array(tmp_path):
    path = tmp_path / "array.npz"
    with open(path, "wb") as f:
        np.save(f, np.zeros(3))
    assert_refused(path, "single .npy array")


def test_metadata_of_another_program(fitted, tmp_path):
    path = save(fitted, tmp_path / "m.npz")
    meta, arrays = metadata_of(path)
    meta["format"] = "something-else"
    assert_refused(rewrite(path, meta, arrays), "not a fastmlp model file")


def test_metadata_not_json(fitted, tmp_path):
    _, arrays = metadata_of(save(fitted, tmp_path / "m.npz"))
    arrays["metadata"] = np.frombuffer(b"{not json", dtype=np.uint8)
    assert_refused(write_npz(tmp_path / "m.npz", **arrays), "not valid JSON")


def test_newer_format_version(fitted, tmp_path):
    path = save(fitted, tmp_path / "m.npz")
    meta, arrays = metadata_of(path)
    meta["format_version"] = FORMAT_VERSION + 1
    meta["fastmlp_version"] = "9.0"
    assert_refused(rewrite(path, meta, arrays), f"format version {FORMAT_VERSION + 1}", "upgrade fastmlp",
                   "fastmlp 9.0")


def test_mismatched_shape(fitted, tmp_path):
    path = save(fitted, tmp_path / "m.npz")
    meta, arrays = metadata_of(path)
    arrays["params"] = arrays["params"][:-1]
    assert_refused(rewrite(path, meta, arrays), "'params'", "shape")


def test_shape_consistent_with_the_table_but_not_the_sizes(fitted, tmp_path):
    path = save(fitted, tmp_path / "m.npz")
    meta, arrays = metadata_of(path)
    meta["sizes"] = [784, 9, 10]
    assert_refused(rewrite(path, meta, arrays), "784-9-10", "needs shape")


def test_mismatched_dtype(fitted, tmp_path):
    path = save(fitted, tmp_path / "m.npz")
    meta, arrays = metadata_of(path)
    arrays["params"] = arrays["params"].astype(np.float32)
    assert_refused(rewrite(path, meta, arrays), "'params'", "float32")


def test_an_array_the_metadata_does_not_list(fitted, tmp_path):
    path = save(fitted, tmp_path / "m.npz")
    meta, arrays = metadata_of(path)
    arrays["extra"] = np.zeros(2)
    assert_refused(rewrite(path, meta, arrays), "metadata lists")


def test_pickled_object_array(fitted, tmp_path):
    path = save(fitted, tmp_path / "m.npz")
    meta, arrays = metadata_of(path)
    meta["arrays"]["params"]["dtype"] = "|O"
    arrays["params"] = np.array([{"evil": 1}, None], dtype=object)  # written with pickle
    message = assert_refused(rewrite(path, meta, arrays), "pickled object array")
    assert "never writes or loads" in message


def test_non_finite_weights_in_a_file(fitted, tmp_path):
    path = save(fitted, tmp_path / "m.npz")
    meta, arrays = metadata_of(path)
    arrays["params"] = arrays["params"].copy()
    arrays["params"][0] = np.inf
    assert_refused(rewrite(path, meta, arrays), "non-finite weights")


def test_history_out_of_order(fitted, tmp_path):
    path = save(fitted, tmp_path / "m.npz")
    meta, arrays = metadata_of(path)
    meta["history"] = meta["history"][::-1]
    assert_refused(rewrite(path, meta, arrays), "history record 1 has epoch 2")


def test_unknown_activation_in_metadata(fitted, tmp_path):
    path = save(fitted, tmp_path / "m.npz")
    meta, arrays = metadata_of(path)
    meta["activation"] = meta["activations"] = ["gelu", "softmax"]
    assert_refused(rewrite(path, meta, arrays), "cannot build")


def test_a_zip_that_is_not_an_npz(tmp_path):
    path = tmp_path / "docs.npz"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("readme.txt", "hello")
    path.write_bytes(buffer.getvalue())
    assert_refused(path, "not a fastmlp model file")


# --- the state of a run, and only that -------------------------------------------------

def test_run_settings_are_not_saved(tmp_path):
    X, y = tiny_data()
    model = MLP([784, 4, 10], backend="numpy", seed=1, n_threads=3, warm_start=True).fit(X, y, epochs=1)
    meta, _ = metadata_of(save(model, tmp_path / "m.npz"))
    assert "warm_start" not in meta and "n_threads" not in meta
    loaded = load(tmp_path / "m.npz")
    assert loaded.warm_start is False and loaded.n_threads is None
    # so fit starts afresh, as documented for a model whose warm_start is off
    np.testing.assert_array_equal(loaded.fit(X, y, epochs=1).params_,
                                  MLP([784, 4, 10], backend="numpy", seed=1).fit(X, y, epochs=1).params_)


def test_an_old_file_that_stored_warm_start_loads_without_it(fitted, tmp_path):
    path = save(fitted, tmp_path / "m.npz")
    meta, arrays = metadata_of(path)
    meta.update(warm_start=True, n_threads=64)
    assert load(rewrite(path, meta, arrays)).warm_start is False


def test_adams_moments_and_step_count_are_saved(tmp_path):
    X, y = tiny_data()
    model = MLP([784, 4, 10], cost="nll", backend="numpy", seed=2)
    model.fit(X, y, epochs=2, batch_size=16, learning_rate=0.01, solver="adam")
    meta, arrays = metadata_of(save(model, tmp_path / "m.npz"))
    assert meta["adam_steps"] == model.adam_steps_ == 2 * -(-len(X) // 16)
    assert arrays["adam_moments"].shape == (2 * model.params_.size,) and "velocity" not in arrays
    loaded = load(tmp_path / "m.npz")
    np.testing.assert_array_equal(loaded.velocity_, model.velocity_)
    assert loaded.adam_steps_ == model.adam_steps_


@pytest.mark.parametrize("steps", [None, 0, True, "3"])
def test_adams_moments_without_a_valid_step_count_are_refused(tmp_path, steps):
    X, y = tiny_data()
    model = MLP([784, 4, 10], cost="nll", backend="numpy", seed=2).fit(X, y, epochs=1, solver="adam",
                                                                      learning_rate=0.01)
    path = save(model, tmp_path / "m.npz")
    meta, arrays = metadata_of(path)
    if steps is None:
        del meta["adam_steps"]
    else:
        meta["adam_steps"] = steps
    assert_refused(rewrite(path, meta, arrays), "Adam's moments", "step count")


RESUMED_RUNS = {
    "sgd": dict(learning_rate=0.5),
    "momentum": dict(learning_rate=0.2, momentum=0.9),
    "nesterov": dict(learning_rate=0.2, momentum=0.9, nesterov=True),
    "adam": dict(learning_rate=0.01, solver="adam"),
    "adam, l2 and a cosine schedule": dict(learning_rate=0.01, solver="adam", l2=1e-4, schedule="cosine"),
    "momentum, dropout and max-norm": dict(learning_rate=0.2, momentum=0.9, max_norm=1.0),
}
#: The constructor's arguments of a run, where they differ from the default.
RESUMED_MODELS = {"momentum, dropout and max-norm": dict(dropout=(0.2, 0.5))}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", RESUMED_RUNS)
def test_a_resumed_run_equals_an_uninterrupted_one_bit_for_bit(tmp_path, backend, name):
    X, y = tiny_data()
    settings = dict(batch_size=16, val_split=40, **RESUMED_RUNS[name])
    new = lambda: MLP([784, 6, 10], activation="relu", cost="nll", backend=backend, seed=4,  # noqa: E731
                      **RESUMED_MODELS.get(name, {}))
    straight = new().fit(X, y, epochs=4, **settings)
    first = new().fit(X, y, epochs=2, schedule_length=4, **settings)
    resumed = load(save(first, tmp_path / "m.npz"))
    resumed.warm_start = True
    resumed.fit(X, y, epochs=2, schedule_start=2, schedule_length=4, **settings)
    np.testing.assert_array_equal(resumed.params_, straight.params_)
    np.testing.assert_array_equal(resumed.velocity_, straight.velocity_)
    assert resumed.adam_steps_ == straight.adam_steps_
    strip = lambda history: [{k: v for k, v in r.items() if k != "seconds"} for r in history]  # noqa: E731
    assert strip(resumed.history_) == strip(straight.history_)


def test_dropout_is_saved_with_the_model(tmp_path):
    X, y = tiny_data()
    model = MLP([784, 6, 10], backend="numpy", seed=4, dropout=0.5).fit(X, y, epochs=1)
    loaded = load(save(model, tmp_path / "m.npz"))
    assert loaded.dropout == 0.5 and loaded.dropout_ == (0.0, 0.5)
