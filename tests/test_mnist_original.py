"""The original run on the real MNIST files: the defaults of ``fastmlp train``
(784-30-10 sigmoid, quadratic cost, batch 10, learning rate 10) learn.

A shortened run, so CI stays fast; the full 10-epoch figures are in the README.
Thresholds leave room for the fact that with learning rate 10 a rounding-level
difference (another BLAS, another summation order) changes the trajectory: the
reference itself moves by about 2 points after one epoch when every initial
weight is nudged by one unit in the last place.
"""

import re

import pytest

from fastmlp.cli import main

pytestmark = pytest.mark.mnist


def accuracy_after(out, epoch):
    return float(re.search(rf"^Epoch {epoch}: .*test ([\d.]+)%", out, re.M).group(1))


@pytest.mark.parametrize("backend, epochs, at_least", [("numba", 2, 90.0), ("numpy", 1, 85.0)])
def test_original_defaults_learn(mnist_dir, capsys, backend, epochs, at_least):
    assert main(["train", "--backend", backend, "--epochs", str(epochs), "--quiet",
                 "--data-dir", str(mnist_dir), "--no-download"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^Epoch 0 \(before training\): test accuracy [\d.]+%", out, re.M)
    assert accuracy_after(out, epochs) >= at_least, out
