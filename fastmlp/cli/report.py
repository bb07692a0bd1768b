"""What a run shows and records: the progress bar, the epoch line, the history
log (``--log``) and the text tables of ``fastmlp evaluate``."""

import csv
import json
import sys
from pathlib import Path


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


# --- the training log: --log history.csv / history.jsonl ------------------------------

#: Columns of a history log, in order (the keys of an ``MLP.history_`` record).
LOG_FIELDS = ("epoch", "loss", "train_accuracy", "val_accuracy", "test_accuracy", "learning_rate", "seconds")
LOG_FORMATS = (".csv", ".jsonl")


def log_format(path):
    """``"csv"`` or ``"jsonl"`` from the file name, else ``ValueError``."""
    suffix = Path(path).suffix.lower()
    if suffix not in LOG_FORMATS:
        raise ValueError(f"a history log must end in .csv or .jsonl, got {str(path)!r}")
    return suffix[1:]


class HistoryLog:
    """Writes one line per epoch to a CSV or JSON-lines file as training runs.

    The log is appended line by line and flushed after every epoch rather than
    written once through a temporary file: its purpose is to be read while the
    run goes on (``tail -f``) and to survive a crash or a kill -9 with every
    finished epoch in it.  Each line is complete when flushed, so a reader sees
    whole records; only a machine crash could leave a partial last line, which
    ``read_history`` then reports.  (Model files, which must never be half
    written, go through ``fastmlp._files.atomic_write`` instead.)

    Opening truncates the file and writes ``history`` first (the epochs of a
    resumed model), so the log always holds the whole run.
    """

    def __init__(self, path, history=()):
        self.path = Path(path)
        self.format = log_format(path)
        self.file = open(self.path, "w", encoding="utf-8", newline="")
        self.n_written = 0
        if self.format == "csv":
            self.writer = csv.DictWriter(self.file, LOG_FIELDS, extrasaction="ignore", lineterminator="\n")
            self.writer.writeheader()
        for record in history:
            self.write(record, flush=False)
        self.file.flush()

    def write(self, record, flush=True):
        if self.format == "csv":
            self.writer.writerow({key: _plain(record.get(key, "")) for key in LOG_FIELDS})
        else:
            self.file.write(json.dumps({key: _plain(value) for key, value in record.items()}) + "\n")
        self.n_written += 1
        if flush:
            self.file.flush()

    def catch_up(self, history):
        """Write the records of ``history`` not written yet (after a Ctrl-C that
        arrived between an epoch's end and its log line)."""
        for record in history[self.n_written:]:
            self.write(record)

    def close(self):
        self.file.close()


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def read_history(path):
    """Read a history log written by :class:`HistoryLog` into a list of dicts.

    Raises ``DataError`` naming the file and line for anything unreadable.
    """
    from fastmlp.errors import DataError

    path = Path(path)
    kind = log_format(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read ({getattr(error, 'strerror', None) or error})") from None
    records = []
    if kind == "jsonl":
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise DataError(f"{path}: line {number}: expected a JSON record, found {line[:40]!r}") from None
            if not isinstance(record, dict) or "epoch" not in record or "loss" not in record:
                raise DataError(f"{path}: line {number}: expected a record with epoch and loss")
            records.append(record)
    else:
        rows = list(csv.DictReader(text.splitlines()))
        for number, row in enumerate(rows, start=2):
            if None in row or "epoch" not in row or "loss" not in row:
                raise DataError(f"{path}: line {number}: expected the columns {', '.join(LOG_FIELDS)}")
            record = {}
            for key, cell in row.items():
                if cell in ("", None):
                    continue
                try:
                    record[key] = int(cell) if key == "epoch" else float(cell)
                except ValueError:
                    raise DataError(f"{path}: line {number}: {key} is not a number: {cell!r}") from None
            records.append(record)
    if not records:
        raise DataError(f"{path}: expected at least one epoch record, found none")
    return records


# --- evaluation tables ----------------------------------------------------------------

def per_class_table(precision, recall, support):
    """Precision, recall and support per class as aligned text."""
    lines = ["class  precision  recall  support"]
    for k, (p, r, n) in enumerate(zip(precision, recall, support)):
        lines.append(f"{k:>5}  {_percent(p):>9}  {_percent(r):>6}  {int(n):>7}")
    return "\n".join(lines)


def _percent(value):
    return "n/a" if value != value else f"{100 * value:.2f}%"


def confusion_table(cm):
    """The confusion matrix as aligned text: rows true class, columns predicted."""
    width = max(4, len(str(int(cm.max()))) + 1)
    n = len(cm)
    header = "true\\pred" + "".join(f"{j:>{width}}" for j in range(n))
    lines = [header]
    for i in range(n):
        lines.append(f"{i:>9}" + "".join(f"{int(c):>{width}}" for c in cm[i]))
    return "\n".join(lines)
