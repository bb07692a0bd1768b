"""The MLP estimator: its API, its checks and its training loop (NumPy backend)."""

import numpy as np
import numpy.testing as npt
import pytest

from fastmlp import MLP
from fastmlp.errors import DivergenceError


@pytest.fixture(scope="module")
def blobs():
    """A small, learnable 3-class problem with 12 uint8 features."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 600).astype(np.uint8)
    centres = rng.integers(0, 256, (3, 12))
    X = np.clip(centres[y] + rng.normal(0, 25, (600, 12)), 0, 255).astype(np.uint8)
    return X, y


def small(**kwargs):
    kwargs.setdefault("backend", "numpy")
    kwargs.setdefault("seed", 0)
    return MLP([12, 8, 3], **kwargs)


#: The blobs are separable: this run scored 1.0 for every seed 0-9 (AMD EPYC
#: Zen 4, AVX-512, OpenBLAS; 2026-12-01), so 0.9 leaves room for any BLAS's
#: rounding and still fails a model that did not learn (chance is 1/3).
BLOBS_MIN_SCORE = 0.9


def test_fit_predict_score(blobs):
    X, y = blobs
    model = small().fit(X, y, epochs=5, batch_size=10, learning_rate=3.0)
    assert model.score(X, y) > BLOBS_MIN_SCORE
    assert model.predict(X).shape == (600,)
    assert model.predict_proba(X).shape == (600, 3)
    assert [r["epoch"] for r in model.history_] == [1, 2, 3, 4, 5]
    assert set(model.history_[0]) >= {"loss", "train_accuracy", "seconds", "learning_rate"}
    assert model.history_[-1]["loss"] < model.history_[0]["loss"]


def test_same_seed_same_model(blobs):
    X, y = blobs
    a = small(seed=7).fit(X, y, epochs=2)
    b = small(seed=7).fit(X, y, epochs=2)
    npt.assert_array_equal(a.params_, b.params_)
    assert not np.array_equal(a.params_, small(seed=8).fit(X, y, epochs=2).params_)


def test_warm_start_continues_like_one_run(blobs):
    X, y = blobs
    once = small().fit(X, y, epochs=4)
    twice = small(warm_start=True)
    twice.fit(X, y, epochs=2).fit(X, y, epochs=2)
    npt.assert_array_equal(once.params_, twice.params_)
    assert [r["epoch"] for r in twice.history_] == [1, 2, 3, 4]


def test_test_and_validation_accuracy_are_recorded(blobs):
    X, y = blobs
    model = small().fit(X, y, epochs=2, val_split=100, test_data=(X[:50], y[:50]))
    assert {"val_accuracy", "test_accuracy"} <= set(model.history_[-1])


def test_val_split_keeps_last_rows_out_of_training(blobs):
    X, y = blobs
    a = small().fit(X, y, epochs=1, val_split=100)
    b = small().fit(X[:500], y[:500], epochs=1, validation_data=(X[500:], y[500:]))
    npt.assert_array_equal(a.params_, b.params_)
    assert a.history_[0]["val_accuracy"] == b.history_[0]["val_accuracy"]


def _patience_rule(accuracies, patience):
    """Where a run with these validation accuracies stops (or None) and its best epoch."""
    best_epoch = 1
    for epoch, accuracy in enumerate(accuracies, start=1):
        if accuracy > accuracies[best_epoch - 1]:
            best_epoch = epoch
        elif epoch - best_epoch >= patience:
            return epoch, best_epoch
    return None, best_epoch


def test_early_stopping_restores_the_whole_state_of_the_best_epoch(blobs):
    X, y = blobs
    settings = dict(learning_rate=3.0, momentum=0.5, val_split=200)
    model = small().fit(X, y, epochs=30, patience=2, **settings)
    accuracies = [r["val_accuracy"] for r in model.history_ + model.discarded_history_]
    stop, best_epoch = _patience_rule(accuracies, 2)
    # The blobs are separable: validation accuracy stops improving long before
    # epoch 30, so the run stopped early, exactly where the rule says.
    assert stop is not None and stop < 30 and len(accuracies) == stop
    # One state: weights, velocities, history and epoch count are all the best epoch's.
    assert model.best_epoch_ == model.epochs_trained_ == best_epoch
    assert [r["epoch"] for r in model.discarded_history_] == list(range(best_epoch + 1, stop + 1))
    at_best = small().fit(X, y, epochs=best_epoch, **settings)
    npt.assert_array_equal(model.params_, at_best.params_)
    npt.assert_array_equal(model.velocity_, at_best.velocity_)
    assert model.score(X[-200:], y[-200:]) == model.history_[-1]["val_accuracy"] == max(accuracies)
    last = small().fit(X, y, epochs=stop, **settings)
    assert not np.array_equal(model.params_, last.params_)
    # Continuing recomputes the undone epochs bit for bit (shuffles depend on seed and epoch only).
    model.warm_start = True
    model.fit(X, y, epochs=stop - best_epoch, **settings)
    npt.assert_array_equal(model.params_, last.params_)
    npt.assert_array_equal(model.velocity_, last.velocity_)


def test_early_stopping_restores_adams_moments_and_step_count(blobs):
    X, y = blobs
    settings = dict(learning_rate=0.05, solver="adam", val_split=200)
    model = small().fit(X, y, epochs=30, patience=1, **settings)
    assert model.discarded_history_, "the run should stop early on separable blobs"
    at_best = small().fit(X, y, epochs=model.best_epoch_, **settings)
    npt.assert_array_equal(model.params_, at_best.params_)
    npt.assert_array_equal(model.velocity_, at_best.velocity_)
    assert model.adam_steps_ == at_best.adam_steps_ == model.best_epoch_ * -(-400 // 10)


def test_a_warm_start_keeps_its_state_when_no_epoch_beats_it(blobs):
    X, y = blobs
    model = small().fit(X, y, epochs=8, learning_rate=3.0, val_split=200)
    # separable blobs: the start already scores 1.0, which no later epoch can beat
    assert model.history_[-1]["val_accuracy"] == 1.0
    before = model.params_.copy(), model.velocity_.copy()
    model.warm_start = True
    model.fit(X, y, epochs=5, learning_rate=3.0, val_split=200, patience=2)
    assert [r["epoch"] for r in model.discarded_history_] == [9, 10]
    assert model.epochs_trained_ == model.best_epoch_ == 8
    npt.assert_array_equal(model.params_, before[0])
    npt.assert_array_equal(model.velocity_, before[1])


def test_divergence_is_reported_and_last_finite_weights_kept(blobs):
    X, y = blobs
    model = MLP([12, 8, 3], activation="leaky_relu", cost="nll", backend="numpy", seed=0)
    with pytest.raises(DivergenceError, match=r"epoch \d+.*smaller learning rate"):
        model.fit(X, y, epochs=5, learning_rate=1e6)
    assert np.isfinite(model.params_).all()


def test_interrupt_restores_last_completed_epoch(blobs, monkeypatch):
    X, y = blobs
    model = small()
    model.fit(X, y, epochs=1)
    after_epoch_1 = model.params_.copy()
    from fastmlp.backends import reference

    real = reference.train_batches

    def interrupted(params, *args, **kwargs):
        real(params, *args, **kwargs)
        if params is model.params_:  # a real epoch (not the warm-up on a copy) changed
            raise KeyboardInterrupt  # the weights, then "Ctrl-C" arrives

    monkeypatch.setattr(reference, "train_batches", interrupted)
    model.warm_start = True
    with pytest.raises(KeyboardInterrupt):
        model.fit(X, y, epochs=1)
    npt.assert_array_equal(model.params_, after_epoch_1)
    assert len(model.history_) == 1


def test_batch_larger_than_data_is_clipped_with_warning(blobs):
    X, y = blobs
    with pytest.warns(UserWarning, match="larger than the 20 training samples"):
        small().fit(X[:20], y[:20], epochs=1, batch_size=64)


@pytest.mark.parametrize("schedule, expected", [
    ("constant", [1.0, 1.0, 1.0]),
    ("step", [1.0, 0.1, 0.01]),           # step_size defaults to epochs // 3 = 1, gamma 0.1
    ("cosine", [1.0, 0.75, 0.25]),        # (1 + cos(pi * i / 3)) / 2
])
def test_schedules_set_the_learning_rate(blobs, schedule, expected):
    X, y = blobs
    model = small().fit(X, y, epochs=3, learning_rate=1.0, schedule=schedule)
    rates = [r["learning_rate"] for r in model.history_]
    npt.assert_allclose(rates, expected, rtol=1e-12)
    # The recorded rate is the one training used: one epoch at a time at those
    # constant rates gives the same weights.
    by_hand = small(warm_start=True)
    for rate in rates:
        by_hand.fit(X, y, epochs=1, learning_rate=rate)
    npt.assert_array_equal(model.params_, by_hand.params_)


def test_the_constructor_only_stores_its_arguments():
    model = MLP(sizes=[784], activation="swish", backend="cuda", dtype="float16", seed=-1)
    assert model.get_params()["sizes"] == [784] and model.activation == "swish"
    assert not hasattr(model, "net_") and not hasattr(model, "seed_") and model.params_ is None


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(sizes=[784]), ValueError, "at least an input and an output"),
    (dict(sizes=[784, 0, 10]), ValueError, "every layer size must be >= 1"),
    (dict(sizes="784,30"), TypeError, "list of layer widths"),
    (dict(activation="softmax"), ValueError, "hidden layer 1.*softmax is for the output layer only"),
    (dict(activation="swish"), ValueError, "must be one of"),
    (dict(cost="nll", output_activation="sigmoid"), ValueError, "cost 'nll' needs an output activation among softmax"),
    (dict(cost="cross_entropy", activation="tanh"), ValueError, "cost 'cross_entropy' needs"),
    (dict(backend="cuda"), ValueError, "backend must be one of"),
    (dict(dtype="float16"), ValueError, "dtype must be float64 or float32"),
    (dict(init="zeros"), ValueError, "init must be one of"),
    (dict(activation=["relu", "relu", "relu"]), ValueError, "one entry per non-input layer"),
    (dict(sizes=[784, 200000, 10000]), ValueError, "GiB"),
])
def test_bad_constructor_arguments_are_refused_by_build_fit_and_initialize(kwargs, error, match):
    kwargs.setdefault("sizes", [784, 30, 10])
    model = MLP(**kwargs)  # stores, as scikit-learn's estimators do
    for call in (model.build, model.initialize, lambda: model.fit(np.zeros((2, 784), np.uint8), [0, 1])):
        with pytest.raises(error, match=match):
            call()
    assert model.params_ is None


def test_the_memory_check_counts_the_batch(monkeypatch):
    from fastmlp import model as model_module

    sizes = (784, 30, 10)
    small_batch = model_module.training_bytes(sizes, 8, batch_size=10)
    large_batch = model_module.training_bytes(sizes, 8, batch_size=1000)
    assert large_batch - small_batch >= 990 * 3 * sum(sizes) * 8  # activations, deltas, inputs
    monkeypatch.setattr(model_module, "memory_limit", lambda: (small_batch + large_batch) // 2)
    X, y = np.zeros((1000, 784), np.uint8), np.zeros(1000, int)
    MLP(list(sizes), backend="numpy", seed=0).fit(X, y, epochs=1, batch_size=10)
    with pytest.raises(ValueError, match="at batch size 1000; this machine has"):
        MLP(list(sizes), backend="numpy", seed=0).fit(X, y, epochs=1, batch_size=1000)


def test_running_out_of_memory_in_an_epoch_keeps_the_last_state(blobs, monkeypatch):
    from fastmlp.backends import reference
    from fastmlp.errors import OutOfMemoryError

    X, y = blobs
    model = small().fit(X, y, epochs=1)
    after_epoch_1 = model.params_.copy()
    real = reference.train_batches

    def out_of_memory(params, *args, **kwargs):
        real(params, *args, **kwargs)
        if params is model.params_:
            raise MemoryError

    monkeypatch.setattr(reference, "train_batches", out_of_memory)
    model.warm_start = True
    with pytest.raises(OutOfMemoryError, match=r"^out of memory in epoch 2 of a 12-8-3 float64 network at "
                                               r"batch size 10; the weights of epoch 1 were kept"):
        model.fit(X, y, epochs=1)
    npt.assert_array_equal(model.params_, after_epoch_1)
    assert model.epochs_trained_ == 1


@pytest.mark.parametrize("X, y, error, match", [
    (np.zeros((5, 11), np.uint8), np.zeros(5, int), ValueError, "11 features per sample, but the network's input layer expects 12"),
    (np.zeros(12, np.uint8), np.zeros(1, int), ValueError, "must be 2-D"),
    (np.zeros((5, 12, 1), np.uint8), np.zeros(5, int), ValueError, "must be 2-D"),
    (np.zeros((0, 12), np.uint8), np.zeros(0, int), ValueError, "empty"),
    (np.full((5, 12), np.nan), np.zeros(5, int), ValueError, "NaN or infinite"),
    (np.zeros((5, 12), np.uint8), np.zeros(4, int), ValueError, "5 samples but y has 4 labels"),
    (np.zeros((5, 12), np.uint8), np.full(5, 3), ValueError, "labels from 3 to 3, but the output layer has 3 classes"),
    (np.zeros((5, 12), np.uint8), np.zeros(5, float), TypeError, "integer class labels"),
    (np.full((5, 12), 300), np.zeros(5, int), ValueError, "integer inputs must be pixels in 0..255"),
    (np.zeros((5, 12), object), np.zeros(5, int), TypeError, "numeric array"),
])
def test_bad_fit_inputs_are_refused_before_any_work(X, y, error, match):
    model = small()
    with pytest.raises(error, match=match):
        model.fit(X, y, epochs=1)
    assert model.params_ is None  # nothing was drawn or trained


@pytest.mark.parametrize("kwargs, match", [
    (dict(epochs=0), "epochs must be >= 1"),
    (dict(batch_size=0), "batch_size must be >= 1"),
    (dict(learning_rate=-1.0), "learning_rate must be > 0"),
    (dict(momentum=1.5), "momentum must be < 1"),
    (dict(l2=-0.1), "l2 must be >= 0"),
    (dict(nesterov=True), "nesterov=True needs momentum > 0"),
    (dict(patience=2), "patience .* needs validation data"),
    (dict(val_split=600), "must leave samples for both"),
    (dict(schedule="linear"), "schedule must be one of"),
])
def test_bad_fit_settings(blobs, kwargs, match):
    X, y = blobs
    with pytest.raises(ValueError, match=match):
        small().fit(X, y, **kwargs)


def test_big_endian_and_non_contiguous_inputs_are_handled(blobs):
    X, y = blobs
    model = small().fit(X, y, epochs=1)
    Xf = X.astype(">f8")[:, :] / 255.0
    npt.assert_allclose(model.predict_proba(Xf[::2]), model.predict_proba(X[::2]), rtol=1e-12)
    npt.assert_array_equal(model.predict(np.asfortranarray(X)), model.predict(X))


def test_predict_before_fit_is_a_clear_error():
    with pytest.raises(RuntimeError, match="call fit"):
        small().predict(np.zeros((1, 12), np.uint8))


@pytest.mark.parametrize("schedule", ["step", "cosine"])
def test_a_schedule_split_over_fits_gives_the_rates_of_one_run(blobs, schedule):
    X, y = blobs
    once = small().fit(X, y, epochs=4, learning_rate=1.0, schedule=schedule)
    split = small(warm_start=True).fit(X, y, epochs=1, learning_rate=1.0, schedule=schedule, schedule_length=4)
    split.fit(X, y, epochs=3, learning_rate=1.0, schedule=schedule, schedule_start=1, schedule_length=4)
    assert [r["learning_rate"] for r in split.history_] == [r["learning_rate"] for r in once.history_]
    npt.assert_array_equal(split.params_, once.params_)


def test_a_schedule_position_past_its_length_is_refused(blobs):
    X, y = blobs
    with pytest.raises(ValueError, match="runs past the schedule_length 3"):
        small().fit(X, y, epochs=2, schedule="cosine", schedule_start=2, schedule_length=3)


def test_dropout_is_deterministic_changes_training_and_leaves_prediction_alone(blobs):
    X, y = blobs
    a = small(dropout=(0.2, 0.5)).fit(X, y, epochs=3, learning_rate=3.0)
    b = small(dropout=(0.2, 0.5)).fit(X, y, epochs=3, learning_rate=3.0)
    plain = small().fit(X, y, epochs=3, learning_rate=3.0)
    npt.assert_array_equal(a.params_, b.params_)
    assert not np.array_equal(a.params_, plain.params_)
    assert a.score(X, y) > BLOBS_MIN_SCORE
    npt.assert_array_equal(a.predict_proba(X), a.predict_proba(X))  # no mask at prediction: repeatable


def test_max_norm_holds_the_hidden_units(blobs):
    X, y = blobs
    model = small().fit(X, y, epochs=2, learning_rate=3.0, momentum=0.5, max_norm=0.5)
    assert np.linalg.norm(model.weights_[0], axis=1).max() <= 0.5 * (1 + 1e-12)


@pytest.mark.parametrize("dropout, match", [
    ((0.2, 0.5, 0.5), "one rate for the inputs and one per hidden layer"),
    (1.0, r"in \[0, 1\)"),
])
def test_bad_dropout_is_refused_at_fit(blobs, dropout, match):
    X, y = blobs
    with pytest.raises(ValueError, match=match):
        small(dropout=dropout).fit(X, y, epochs=1)
