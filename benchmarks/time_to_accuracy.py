"""Time to 98% test accuracy on MNIST: fastmlp's ``--preset fast`` against PyTorch.

Run from the repository root (``FASTMLP_DATA`` pointing at MNIST):

    python benchmarks/time_to_accuracy.py [--epochs 10] [--skip-torch]

Three trainings in one run, on the same machine and data:

1. PyTorch on the CPU, the reference point of issue 6: 784-512-256-10 ReLU,
   softmax cross-entropy, SGD with momentum 0.9, learning rate 0.1, batch 128,
   float32, default PyTorch initialisation.
2. fastmlp (numba) with exactly that network and those settings, for the
   epoch-time comparison.
3. fastmlp with ``fastmlp train --preset fast`` (whatever network and
   settings the preset holds).

Times are training seconds only (evaluation after each epoch is not counted);
Numba's compile time is kept out by a warm-up call and reported separately by
``fastmlp bench``.  Time to 98% is the training time summed up to the first
epoch whose test accuracy is at least 98.0%.
"""

import argparse
import time

import numpy as np

from fastmlp import MLP, load_mnist
from fastmlp.presets import PRESETS

TARGET = 0.98


def torch_run(data, epochs, seed=0):
    import torch

    torch.manual_seed(seed)
    X = torch.from_numpy(data.X_train.astype(np.float32) / 255)
    y = torch.from_numpy(data.y_train.astype(np.int64))
    Xt = torch.from_numpy(data.X_test.astype(np.float32) / 255)
    yt = torch.from_numpy(data.y_test.astype(np.int64))
    net = torch.nn.Sequential(torch.nn.Linear(784, 512), torch.nn.ReLU(),
                              torch.nn.Linear(512, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    history = []
    for _ in range(epochs):
        start = time.perf_counter()
        for idx in torch.randperm(len(X)).split(128):
            opt.zero_grad()
            loss_fn(net(X[idx]), y[idx]).backward()
            opt.step()
        seconds = time.perf_counter() - start
        with torch.no_grad():
            accuracy = (net(Xt).argmax(1) == yt).float().mean().item()
        history.append((seconds, accuracy))
    return history


def fastmlp_run(data, epochs, model_args, fit_args):
    model = MLP(**model_args)
    # warm-up: compile (or load from the cache) before the clock starts
    MLP(**{**model_args, "seed": 1}).fit(data.X_train[:256], data.y_train[:256], epochs=1,
                                         **{k: v for k, v in fit_args.items() if k != "schedule"})
    model.fit(data.X_train, data.y_train, epochs=epochs, test_data=(data.X_test, data.y_test), **fit_args)
    return [(r["seconds"], r["test_accuracy"]) for r in model.history_]


def preset_args(name):
    """MLP(...) and fit(...) arguments equal to ``fastmlp train --preset NAME``."""
    p = PRESETS[name]
    model_args = dict(sizes=p["layers"], activation=p.get("activation", "sigmoid"), cost=p.get("cost", "quadratic"),
                      dtype=p.get("dtype", "float64"), backend="numba", seed=0)
    fit_args = dict(batch_size=p["batch_size"], learning_rate=p["lr"], momentum=p.get("momentum", 0.0),
                    nesterov=p.get("nesterov", False), l2=p.get("l2", 0.0), schedule=p.get("schedule", "constant"))
    return model_args, fit_args, p.get("epochs", 10)


def time_to(history, target=TARGET):
    total = 0.0
    for epoch, (seconds, accuracy) in enumerate(history, 1):
        total += seconds
        if accuracy >= target:
            return epoch, total
    return None, None


def summary(name, history):
    epoch, seconds = time_to(history)
    per_epoch = float(np.median([s for s, _ in history]))
    reached = f"epoch {epoch}, {seconds:.2f} s" if epoch else "not reached"
    return (f"| {name} | {per_epoch:.3f} | {reached} | {100 * history[-1][1]:.2f}% after {len(history)} epochs "
            f"({sum(s for s, _ in history):.2f} s) |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--skip-torch", action="store_true")
    args = parser.parse_args()
    data = load_mnist(download=False)
    rows = []
    if not args.skip_torch:
        rows.append(("PyTorch 784-512-256-10 (float32)", torch_run(data, args.epochs)))
    same = dict(sizes=[784, 512, 256, 10], activation="relu", cost="nll", dtype="float32", backend="numba", seed=0)
    rows.append(("fastmlp numba, same network and settings",
                 fastmlp_run(data, args.epochs, same, dict(batch_size=128, learning_rate=0.1, momentum=0.9))))
    model_args, fit_args, preset_epochs = preset_args("fast")
    rows.append((f"fastmlp --preset fast ({'-'.join(map(str, model_args['sizes']))}, {model_args['dtype']})",
                 fastmlp_run(data, preset_epochs, model_args, fit_args)))
    print("| run | median s/epoch | time to 98.0% test accuracy | final |")
    print("|---|---|---|---|")
    for name, history in rows:
        print(summary(name, history), flush=True)
        print("<!-- per epoch (s, acc): " + ", ".join(f"({s:.2f}, {100 * a:.2f})" for s, a in history) + " -->")


if __name__ == "__main__":
    main()
