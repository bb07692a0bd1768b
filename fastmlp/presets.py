"""Named sets of training options (``fastmlp train --preset NAME``); options
given explicitly win over a preset's.  Keys are ``fastmlp train``'s option
names (argparse destinations)."""

PRESETS = {
    # The original project's run (the defaults): 784-30-10 sigmoid, quadratic, lr 10.
    "original": {},
    # 98% test accuracy in 4 epochs: one ReLU layer of 256, softmax with the
    # log-likelihood cost, momentum, and a cosine schedule that ends the run
    # with small steps.  Chosen by measuring time to 98% (benchmarks/time_to_accuracy.py);
    # 784-192-10 reached 98% too, an epoch later.
    "fast": {"layers": [784, 256, 10], "activation": "relu", "cost": "nll", "dtype": "float32",
             "batch_size": 64, "lr": 0.1, "momentum": 0.9, "schedule": "cosine", "epochs": 4},
    # The most accurate plain MLP found within 5 minutes of training on a
    # 2-core machine: two ReLU layers of 800, light dropout (inputs 0.1,
    # hidden 0.3), max-norm 3, every image shifted by up to 2 pixels, and a
    # cosine schedule over 40 epochs.  Chosen by the sweeps of docs/presets.md.
    "best": {"layers": [784, 800, 800, 10], "activation": "relu", "cost": "nll", "dtype": "float32",
             "batch_size": 128, "lr": 0.05, "momentum": 0.9, "schedule": "cosine", "epochs": 40,
             "dropout": [0.1, 0.3], "max_norm": 3.0, "shift": 2},
}
