"""Figures: ``fastmlp plot`` and ``train --plot`` write real, non-blank images."""

import sys

import numpy as np
import pytest
from helpers import write_synthetic_mnist

from fastmlp.cli import main

pytest.importorskip("matplotlib")


def assert_real_image(path, min_kb=8):
    """The file exists, is a few KB, and its pixels are not all one colour."""
    import matplotlib.image

    assert path.is_file()
    assert path.stat().st_size > min_kb * 1024
    pixels = matplotlib.image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 200 and pixels.shape[1] > 200
    assert pixels[..., :3].var() > 1e-3  # not blank
    return pixels


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny training run that also draws its curves and logs its history."""
    root = tmp_path_factory.mktemp("plot")
    data = write_synthetic_mnist(root / "data", n_train=600, n_test=200)
    model, curves, log = root / "model.npz", root / "train_curves.png", root / "history.jsonl"
    status = main(["train", "--data-dir", str(data), "--no-download", "--backend", "numpy", "--quiet",
                   "--layers", "784,16,10", "--lr", "3", "--epochs", "4", "--val-split", "100",
                   "--save", str(model), "--plot", str(curves), "--log", str(log)])
    assert status == 0
    return {"root": root, "data": data, "model": model, "curves": curves, "log": log}


def test_train_plot_draws_the_curves(run):
    assert_real_image(run["curves"])


@pytest.mark.parametrize("source", ["log", "model"])
def test_plot_history_from_a_log_or_a_model(run, tmp_path, capsys, source):
    out = tmp_path / "curves.png"
    assert main(["plot", str(run[source]), "-o", str(out)]) == 0
    assert "Plotted the learning curves" in capsys.readouterr().out
    assert_real_image(out)


def test_plot_history_from_csv(run, tmp_path):
    log, out = tmp_path / "h.csv", tmp_path / "curves.svg"
    from fastmlp.cli.report import HistoryLog
    from fastmlp.model import load

    writer = HistoryLog(log, load(run["model"]).history_)
    writer.close()
    assert main(["plot", str(log), "-o", str(out)]) == 0
    assert out.read_text().lstrip().startswith("<?xml")


def test_plot_confusion(run, tmp_path):
    out = tmp_path / "cm.png"
    assert main(["plot", str(run["model"]), "--confusion", "-o", str(out),
                 "--data-dir", str(run["data"]), "--no-download"]) == 0
    assert_real_image(out)


def test_plot_weights_grid(run, tmp_path):
    out = tmp_path / "w.png"
    assert main(["plot", str(run["model"]), "--weights", "-o", str(out)]) == 0
    pixels = assert_real_image(out)
    # Red and blue weights both appear (RdBu colour map around 0).
    rgb = pixels[..., :3].reshape(-1, 3)
    assert ((rgb[:, 0] > rgb[:, 2] + 0.3).any() and (rgb[:, 2] > rgb[:, 0] + 0.3).any())


def test_plot_functions_directly(run, tmp_path):
    from fastmlp.model import load
    from fastmlp.plot import plot_confusion, plot_history, plot_weights

    model = load(run["model"])
    assert_real_image(plot_history(model.history_, tmp_path / "a.png"))
    assert_real_image(plot_weights(model, tmp_path / "b.png", max_neurons=5), min_kb=4)
    cm = np.diag([10] * 10) + 1
    assert_real_image(plot_confusion(cm, tmp_path / "c.png"))


PLOT_ERRORS = [
    (["history.txt", "-o", "x.png"], "not a fastmlp model file"),  # not a log suffix: read as a model
    (["{log}", "--weights", "-o", "x.png"], "--weights needs a model file"),
    (["{log}", "-o", "x.jpg"], "must end in .png, .pdf, .svg"),
    (["{model}"], "the following arguments are required: -o/--output"),
    (["{model}", "--weights", "--confusion", "-o", "x.png"], "not allowed with"),
    (["{model}", "-o", "/no/such/folder/x.png"], "does not exist"),
]


@pytest.mark.parametrize("argv, message", PLOT_ERRORS, ids=[" ".join(a) for a, _ in PLOT_ERRORS])
def test_plot_errors_are_one_line(run, tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "history.txt").write_text("epoch,loss\n")
    argv = [a.format(log=run["log"], model=run["model"]) for a in argv]
    try:
        status = main(["plot", *argv])
    except SystemExit as exit:
        status = exit.code
    assert status == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("fastmlp plot: error: ") and message in err, err


def test_plot_of_a_bad_log_names_the_line(tmp_path, capsys):
    log = tmp_path / "h.csv"
    log.write_text("epoch,loss\n1,0.5\n2,oops\n")
    assert main(["plot", str(log), "-o", str(tmp_path / "x.png")]) == 2
    assert "line 3: loss is not a number: 'oops'" in capsys.readouterr().err


def test_missing_matplotlib_is_a_clear_message(run, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["plot", str(run["log"]), "-o", str(tmp_path / "x.png")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs matplotlib" in err and "pip install matplotlib" in err
    assert "fastmlp[plot]" in err


def test_train_plot_without_matplotlib_fails_before_training(run, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    status = main(["train", "--data-dir", str(run["data"]), "--no-download", "--backend", "numpy",
                   "--plot", str(tmp_path / "c.png")])
    assert status == 1
    captured = capsys.readouterr()
    assert "needs matplotlib" in captured.err and "Epoch" not in captured.out
