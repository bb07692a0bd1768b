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
}
