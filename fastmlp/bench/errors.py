"""The error a failing part of the bench raises: a child process that exits
with an error, or a peer library that is installed but does not import."""

from fastmlp.errors import FastMLPError


class BenchError(FastMLPError, RuntimeError):
    """A part of the bench failed; the message names which and why, in one line."""

    exit_code = 1
