"""``fastmlp train`` from the command line: bad arguments are one line and exit
status 2; saving, checkpoints, --resume and --log work on a tiny synthetic set.

``write_synthetic_mnist`` (from ``tests/helpers.py``, shared with the other CLI
test files) writes four IDX files of learnable fake digits, so these tests need
no download and no real MNIST.
"""

import json
import subprocess
import sys

import numpy as np
import pytest
from helpers import subprocess_env, synthetic_digits, write_synthetic_mnist

from fastmlp.cli import main
from fastmlp.model import load


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_synthetic_mnist(tmp_path_factory.mktemp("synthetic"))


def train(data_dir, *options):
    """``fastmlp train`` on the synthetic set with the numpy backend, in-process."""
    return main(["train", "--data-dir", str(data_dir), "--no-download", "--backend", "numpy",
                 "--quiet", *options])


# --- bad arguments: exit status 2 and one clear line ---------------------------------

BAD_ARGUMENTS = [
    (["--layers", "784,0,10"], "positive integer"),
    (["--layers", "784,-30,10"], "positive integer"),
    (["--layers", "100,30,10"], "must start with 784"),
    (["--layers", "784,30,9"], "must end with 10"),
    (["--layers", "784"], "at least an input and an output layer"),
    (["--layers", "784,abc,10"], "comma-separated layer widths"),
    (["--batch-size", "0"], "positive integer"),
    (["--batch-size", "-5"], "positive integer"),
    (["--epochs", "ten"], "positive integer"),
    (["--lr", "fast"], "expected a number"),
    (["--lr", "0"], "number > 0"),
    (["--momentum", "nan"], "momentum must be finite"),
    (["--momentum", "1.5"], "momentum must be < 1"),  # checked as parsed: before the data and the compile
    (["--solver", "adam", "--momentum", "0.9"], "--momentum: SGD settings; Adam has --beta-1"),
    (["--solver", "adam", "--preset", "fast"], "--preset fast is an SGD recipe"),
    (["--beta-1", "1"], "beta_1 must be < 1"),
    (["--beta-2", "-0.1"], "beta_2 must be >= 0"),
    (["--epsilon", "0"], "number > 0"),
    (["--solver", "rmsprop"], "invalid choice"),
    (["--dropout", "0.2,0.5,0.5"], "dropout needs one rate for the inputs and one per hidden layer"),
    (["--dropout", "1"], "every dropout rate must be in [0, 1)"),
    (["--dropout", "half"], "comma-separated rates"),
    (["--max-norm", "-1"], "finite number >= 0"),
    (["--seed", "x"], "invalid int value"),
    (["--patience", "3"], "--patience needs a validation set"),
    (["--nesterov"], "--nesterov needs --momentum"),
    (["--activation", "swish"], "expected one of"),
    (["--activation", "softmax,sigmoid"], "softmax is for the output layer only"),
    (["--cost", "hinge"], "invalid choice"),
    (["--log", "history.txt"], ".csv or .jsonl"),
    (["--plot", "curves.gif"], ".png, .pdf, .svg"),
    (["--checkpoint-every", "2"], "--checkpoint-every needs --save"),
    (["--save", "/no/such/folder/model.npz"], "does not exist"),
    (["--val-split", "-1"], "positive sample count"),
    (["--frobnicate"], "unrecognized arguments"),
]


@pytest.mark.parametrize("options, message", BAD_ARGUMENTS, ids=[" ".join(o) for o, _ in BAD_ARGUMENTS])
def test_train_bad_arguments_exit_2_with_one_line(options, message, capsys, tmp_path):
    try:
        status = main(["train", "--data-dir", str(tmp_path), "--no-download", "--backend", "numpy", *options])
    except SystemExit as exit:  # argparse's own errors
        status = exit.code
    captured = capsys.readouterr()
    assert status == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("fastmlp train: error: ")
    assert message in lines[0]
    assert "Traceback" not in captured.err and captured.out == ""


def test_train_bad_arguments_in_a_subprocess_print_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "fastmlp", "train", "--layers", "784,0,10"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=60,
                            env=subprocess_env())
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "fastmlp train: error:" in result.stderr


def test_evaluate_of_a_missing_file_is_one_line(capsys, tmp_path):
    assert main(["evaluate", str(tmp_path / "nothing.npz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fastmlp evaluate: error: ") and "nothing.npz" in err and err.count("\n") == 1


# --- training, saving, checkpoints, resume ----------------------------------------------

def test_train_with_limit_still_works_and_prints_epoch_lines(data_dir, capsys):
    assert train(data_dir, "--limit", "500", "--epochs", "1") == 0
    out = capsys.readouterr().out
    assert out.startswith("Epoch 0 (before training): test accuracy")
    assert "Epoch 1: loss" in out and "Trained 1 epoch in" in out


def test_train_save_writes_a_loadable_model(data_dir, tmp_path, capsys):
    path = tmp_path / "model.npz"
    assert train(data_dir, "--epochs", "2", "--layers", "784,16,10", "--lr", "3", "--save", str(path)) == 0
    assert f"Saved the model (epoch 2) to {path}" in capsys.readouterr().out
    model = load(path)
    assert model.sizes == (784, 16, 10) and model.epochs_trained_ == 2
    assert [r["epoch"] for r in model.history_] == [1, 2]
    # The file holds the weights of the last epoch: they score what that epoch recorded.
    X_test, y_test = synthetic_digits(300, seed=2)  # the test split write_synthetic_mnist writes
    assert model.score(X_test, y_test) == model.history_[-1]["test_accuracy"]
    # Trained weights, not the initial ones: this run scored 0.52-1.00 over seeds
    # 0-9 (0.67 for the seed 0 used here) on an AMD EPYC Zen 4 with OpenBLAS's
    # SkylakeX (AVX-512) and Haswell (AVX2) kernels alike, 2026-12-01; chance is 0.1.
    assert model.history_[-1]["test_accuracy"] > 0.3
    assert model.metadata_["extra"]["train"]["lr"] == 3.0
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind


def test_checkpoint_every_saves_during_the_run(data_dir, tmp_path, monkeypatch):
    import fastmlp.modelfile

    path = tmp_path / "model.npz"
    saved_epochs = []
    original = fastmlp.modelfile.save

    def spy(model, target, **kwargs):
        saved_epochs.append(model.epochs_trained_)
        return original(model, target, **kwargs)

    monkeypatch.setattr(fastmlp.modelfile, "save", spy)
    assert train(data_dir, "--epochs", "5", "--limit", "300", "--save", str(path), "--checkpoint-every", "2") == 0
    assert saved_epochs == [2, 4, 5]  # two checkpoints, then the final save
    assert load(path).epochs_trained_ == 5


def test_resume_continues_numbering_and_matches_an_uninterrupted_run(data_dir, tmp_path, capsys):
    common = ("--limit", "400", "--layers", "784,12,10", "--lr", "2", "--momentum", "0.5")
    straight, part = tmp_path / "straight.npz", tmp_path / "part.npz"
    assert train(data_dir, *common, "--epochs", "4", "--save", str(straight)) == 0
    assert train(data_dir, *common, "--epochs", "4", "--save", str(part)) == 0
    # Shorten the second run's file to its first 2 epochs by training 2 only:
    assert train(data_dir, *common, "--epochs", "2", "--save", str(part)) == 0
    capsys.readouterr()
    # --resume reuses the saved options; --epochs says how many more.
    assert train(data_dir, "--resume", str(part), "--epochs", "2") == 0
    out = capsys.readouterr().out
    assert f"Resuming {part} after epoch 2" in out
    assert "Epoch 3: loss" in out and "Epoch 4: loss" in out and "Epoch 1:" not in out
    resumed, reference = load(part), load(straight)
    assert [r["epoch"] for r in resumed.history_] == [1, 2, 3, 4]
    # Same shuffles (seeded per epoch) and the momentum buffer saved: identical weights.
    np.testing.assert_array_equal(resumed.params_, reference.params_)


def test_resume_without_epochs_finishes_the_saved_run(data_dir, tmp_path, capsys):
    path = tmp_path / "model.npz"
    assert train(data_dir, "--limit", "300", "--epochs", "3", "--save", str(path)) == 0
    assert train(data_dir, "--resume", str(path)) == 2
    assert "already ran all 3 epochs of its run; give --epochs N" in capsys.readouterr().err


def test_resume_with_a_conflicting_architecture_is_a_usage_error(data_dir, tmp_path, capsys):
    path = tmp_path / "model.npz"
    assert train(data_dir, "--limit", "300", "--epochs", "1", "--layers", "784,12,10", "--save", str(path)) == 0
    capsys.readouterr()
    for option in (["--layers", "784,30,10"], ["--activation", "relu"], ["--cost", "nll"],
                   ["--dtype", "float32"], ["--seed", "7"]):
        assert train(data_dir, "--resume", str(path), "--epochs", "1", *option) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{option[0]} {option[1]} conflicts with {path}" in err
    # Repeating the saved values is fine.
    assert train(data_dir, "--resume", str(path), "--epochs", "1", "--layers", "784,12,10", "--seed", "0") == 0


def test_resume_of_a_bad_file_is_one_line(data_dir, tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a model")
    assert train(data_dir, "--resume", str(bad)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(bad) in err and "not a fastmlp model" in err


# --- the history log ----------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_log_has_one_record_per_epoch_with_the_history_figures(data_dir, tmp_path, suffix):
    from fastmlp.cli.report import read_history

    log, path = tmp_path / f"history{suffix}", tmp_path / "model.npz"
    assert train(data_dir, "--limit", "300", "--epochs", "3", "--val-split", "50",
                 "--log", str(log), "--save", str(path)) == 0
    records = read_history(log)
    history = load(path).history_
    assert [r["epoch"] for r in records] == [1, 2, 3]
    for record, expected in zip(records, history):
        for key in ("loss", "train_accuracy", "val_accuracy", "test_accuracy", "learning_rate"):
            assert record[key] == pytest.approx(expected[key], rel=1e-12)
    if suffix == ".jsonl":
        assert all(json.loads(line) for line in log.read_text().splitlines())
    else:
        assert log.read_text().splitlines()[0] == \
            "epoch,loss,train_accuracy,val_accuracy,test_accuracy,learning_rate,seconds"


def test_log_after_resume_holds_the_whole_run(data_dir, tmp_path):
    from fastmlp.cli.report import read_history

    path, log = tmp_path / "model.npz", tmp_path / "log.jsonl"
    assert train(data_dir, "--limit", "300", "--epochs", "2", "--save", str(path)) == 0
    assert train(data_dir, "--resume", str(path), "--epochs", "1", "--log", str(log)) == 0
    assert [r["epoch"] for r in read_history(log)] == [1, 2, 3]


def test_log_is_written_as_the_run_goes(data_dir, tmp_path, monkeypatch):
    """When an epoch's line is printed the log already holds that epoch (flushed)."""
    import fastmlp.cli.report

    log = tmp_path / "log.csv"
    seen = []
    original = fastmlp.cli.report.epoch_line

    def spy(record):
        seen.append(len(log.read_text().splitlines()) - 1)  # records on disk, this one included
        return original(record)

    monkeypatch.setattr(fastmlp.cli.report, "epoch_line", spy)
    assert train(data_dir, "--limit", "200", "--epochs", "3", "--log", str(log)) == 0
    assert seen == [1, 2, 3]
