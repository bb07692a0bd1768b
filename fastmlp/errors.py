"""The exceptions fastmlp raises for user mistakes and unusable data.

Every error a user can cause derives from :class:`FastMLPError`, so the CLI can
print its one-line message and exit with ``exit_code`` instead of a traceback.
Each class also derives from the built-in exception a Python user would expect
(``ValueError`` for bad values), so ``except ValueError`` keeps working.
"""


class FastMLPError(Exception):
    """Base class: a problem the user can fix, described in one line."""

    #: exit status of the CLI; 2 is the convention for usage errors.
    exit_code = 2


class UsageError(FastMLPError):
    """A combination of options or arguments that makes no sense."""


class DataError(FastMLPError, ValueError):
    """A data file is missing, malformed, truncated or fails its checksum."""


class DataUnavailableError(DataError):
    """The data set is not on disk and could not be downloaded."""

    exit_code = 1


class ModelFileError(FastMLPError, ValueError):
    """A file is not a readable fastmlp model (wrong format, truncated, too new)."""


class DivergenceError(FastMLPError, FloatingPointError):
    """Training produced a non-finite loss or weights (learning rate too large)."""

    exit_code = 1


class OutOfMemoryError(FastMLPError, MemoryError):
    """Training ran out of memory; the state of the last completed epoch is kept."""

    exit_code = 1


class BenchError(FastMLPError, RuntimeError):
    """A part of the bench failed (a child process exited with an error, a
    peer library is installed but does not import); the message names which
    and why, in one line."""

    exit_code = 1


class MissingDependencyError(FastMLPError, ImportError):
    """An optional extra (matplotlib, Pillow) is needed but not installed."""

    exit_code = 1


def shown(value):
    """``value`` (a name or path from a user's file or argument) as a message
    quotes it: as it is when it prints on one line, escaped as Python's
    ``repr`` when it holds a newline or another unprintable character, so
    every message stays one line and shows exactly what was read."""
    text = str(value)
    return text if text.isprintable() else repr(text)
