"""What ``fastmlp train`` reports is what it saved, and a run split by an
interruption and ``--resume`` equals the uninterrupted run, for every
optimiser and with a schedule (synthetic data, numpy and numba backends)."""

import re

import numpy as np
import pytest

from fastmlp.cli import main
from fastmlp.model import load
from fastmlp.modelfile import read_model_file


def run(command, data_dir, *options, backend="numpy"):
    return main([command, "--data-dir", str(data_dir), "--no-download", "--backend", backend, *options])


def train(data_dir, *options, backend="numpy"):
    return run("train", data_dir, "--quiet", *options, backend=backend)


def test_early_stopping_saves_the_model_it_reports(synthetic_mnist_dir, tmp_path, capsys):
    path = tmp_path / "es.npz"
    # a rate far too large for sigmoid units: validation accuracy jumps about, so patience 1 stops the run
    assert train(synthetic_mnist_dir, "--epochs", "8", "--val-split", "200", "--patience", "1", "--lr", "30",
                 "--save", str(path)) == 0
    out = capsys.readouterr().out
    kept = re.search(r"early stopping kept epoch (\d+) .*; test accuracy ([\d.]+)%", out)
    assert kept, out
    epoch, accuracy = int(kept.group(1)), kept.group(2)
    assert f"Saved the model (epoch {epoch}) to" in out
    assert run("evaluate", synthetic_mnist_dir, str(path)) == 0
    evaluated = capsys.readouterr().out
    assert f"{epoch} epochs trained" in evaluated and f"Test accuracy on mnist: {accuracy}%" in evaluated
    model = load(path)
    assert model.epochs_trained_ == model.best_epoch_ == epoch
    assert model.warm_start is False  # the CLI's settings stay out of the file


def test_an_early_stopped_run_is_finished(synthetic_mnist_dir, tmp_path, capsys):
    path = tmp_path / "es.npz"
    assert train(synthetic_mnist_dir, "--epochs", "8", "--val-split", "200", "--patience", "1", "--lr", "30",
                 "--save", str(path)) == 0
    capsys.readouterr()
    meta, _ = read_model_file(path)
    ran, kept = meta["extra"]["train"]["epochs_run"], len(meta["history"])
    assert kept < ran <= 8
    assert train(synthetic_mnist_dir, "--resume", str(path)) == 2
    assert (f"holds a finished run: early stopping ended it after epoch {ran} of 8 and kept epoch {kept}; "
            f"give --epochs N") in capsys.readouterr().err


RUNS = {
    "sgd": ["--lr", "2"],
    "momentum": ["--lr", "1", "--momentum", "0.9"],
    "nesterov": ["--lr", "1", "--momentum", "0.9", "--nesterov"],
    "adam": ["--solver", "adam", "--lr", "0.01"],
    "adam with betas": ["--solver", "adam", "--lr", "0.01", "--beta-1", "0.8", "--beta-2", "0.99",
                        "--epsilon", "1e-7"],
}


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("name", RUNS)
def test_saved_and_resumed_equals_uninterrupted(synthetic_mnist_dir, tmp_path, capsys, name, backend):
    common = ["--layers", "784,12,10", "--cost", "nll", "--activation", "relu", "--batch-size", "20",
              *RUNS[name]]
    straight, part = tmp_path / "straight.npz", tmp_path / "part.npz"
    assert train(synthetic_mnist_dir, *common, "--epochs", "3", "--save", str(straight), backend=backend) == 0
    assert train(synthetic_mnist_dir, *common, "--epochs", "2", "--save", str(part), backend=backend) == 0
    assert train(synthetic_mnist_dir, "--resume", str(part), "--epochs", "1", backend=backend) == 0
    capsys.readouterr()
    resumed, reference = load(part), load(straight)
    assert [r["epoch"] for r in resumed.history_] == [1, 2, 3]
    np.testing.assert_array_equal(resumed.params_, reference.params_)
    np.testing.assert_array_equal(resumed.velocity_, reference.velocity_)
    assert resumed.adam_steps_ == reference.adam_steps_
    assert resumed.adam_steps_ == (3 * 50 if "adam" in name else 0)  # 1000 images / batch 20, 3 epochs


@pytest.mark.parametrize("schedule", ["cosine", "step"])
def test_an_interrupted_run_resumes_on_its_schedule(synthetic_mnist_dir, tmp_path, capsys, monkeypatch, schedule):
    """Ctrl-C after epoch 2 of 4, then ``--resume`` without ``--epochs``: the
    rest of the run, at the rates of the uninterrupted run."""
    from fastmlp.cli import report

    common = ["--layers", "784,12,10", "--lr", "3", "--momentum", "0.5", "--schedule", schedule, "--epochs", "4"]
    straight, part = tmp_path / "straight.npz", tmp_path / "part.npz"
    assert train(synthetic_mnist_dir, *common, "--save", str(straight)) == 0
    real = report.epoch_line

    def interrupt_after_epoch_2(record):
        if record["epoch"] == 2:
            raise KeyboardInterrupt
        return real(record)

    monkeypatch.setattr("fastmlp.cli.report.epoch_line", interrupt_after_epoch_2)
    assert train(synthetic_mnist_dir, *common, "--save", str(part)) == 130
    monkeypatch.setattr("fastmlp.cli.report.epoch_line", real)
    assert load(part).epochs_trained_ == 2
    assert train(synthetic_mnist_dir, "--resume", str(part)) == 0
    assert "starts a new run" not in capsys.readouterr().err
    resumed, reference = load(part), load(straight)
    assert [r["learning_rate"] for r in resumed.history_] == [r["learning_rate"] for r in reference.history_]
    np.testing.assert_array_equal(resumed.params_, reference.params_)


def test_more_epochs_on_a_finished_run_start_a_new_schedule(synthetic_mnist_dir, tmp_path, capsys):
    path = tmp_path / "m.npz"
    assert train(synthetic_mnist_dir, "--lr", "3", "--schedule", "cosine", "--epochs", "2", "--save", str(path)) == 0
    assert train(synthetic_mnist_dir, "--resume", str(path), "--epochs", "2") == 0
    assert "--epochs 2 starts a new run: the cosine schedule runs over its 2 epochs" in capsys.readouterr().err
    assert [r["learning_rate"] for r in load(path).history_] == [3.0, 1.5, 3.0, 1.5]


def test_a_missing_backend_is_one_line(synthetic_mnist_dir, tmp_path, capsys, monkeypatch):
    from fastmlp.backends import BACKENDS

    path = tmp_path / "m.npz"
    assert train(synthetic_mnist_dir, "--epochs", "1", "--limit", "100", "--save", str(path)) == 0
    capsys.readouterr()
    monkeypatch.setitem(BACKENDS, "numba", "fastmlp.backends.not_installed")
    assert train(synthetic_mnist_dir, "--epochs", "1", backend="numba") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fastmlp train: error: the numba backend cannot be loaded")
    # a model file that names the backend: load builds the model, which imports it
    assert main(["evaluate", str(path), "--backend", "numba", "--data-dir", str(synthetic_mnist_dir)]) in (1, 2)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fastmlp evaluate: error: ") and "not_installed" in err[0]
