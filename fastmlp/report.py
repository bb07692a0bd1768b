"""What a training run shows while it runs: the progress bar and the epoch line."""

import sys


def progress_bar(total, enabled=True, stream=None):
    """A tqdm bar over ``total`` training images, or ``None`` when disabled or
    when the output is not a terminal (logs and pipes stay clean)."""
    stream = stream or sys.stderr
    if not enabled or not stream.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="img", unit_scale=True, leave=False, file=stream, dynamic_ncols=True)


def epoch_line(record):
    """One summary line per epoch, e.g.
    ``Epoch 3: loss 0.0512  train 94.10%  val 95.02%  test 94.87%  0.21 s``."""
    parts = [f"Epoch {record['epoch']}: loss {record['loss']:.4f}",
             f"train {100 * record['train_accuracy']:.2f}%"]
    for key, label in (("val_accuracy", "val"), ("test_accuracy", "test")):
        if key in record:
            parts.append(f"{label} {100 * record[key]:.2f}%")
    parts.append(f"{record['seconds']:.2f} s")
    return "  ".join(parts)
