"""Child Python processes of the bench (compile times in a fresh process,
the numba rows for another vector ISA): run one, return what it printed, and
turn a failure into one :class:`~fastmlp.errors.BenchError` line naming
the child and its last line on stderr."""

import subprocess
import sys
from pathlib import Path

from fastmlp.errors import BenchError
from fastmlp.errors import shown

#: The folder fastmlp is imported from (a child must import the same copy).
IMPORT_ROOT = str(Path(__file__).resolve().parents[2])


def run_python(code, args=(), env=None, what="a child process", echo_stderr=False):
    """Run ``python -c code *args`` with ``env`` and return its stdout.

    A child that exits with an error, or is killed, raises ``BenchError``
    naming ``what``, the exit status and the child's last stderr line (its
    traceback's last line, the exception).  With ``echo_stderr`` a successful
    child's stderr (warnings) is passed on to this process's stderr."""
    res = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True)
    if res.returncode != 0:
        status = f"killed by signal {-res.returncode}" if res.returncode < 0 else f"exit status {res.returncode}"
        raise BenchError(f"{what} failed ({status}, expected 0): {last_line(res.stderr)}")
    if echo_stderr and res.stderr:
        sys.stderr.write(res.stderr)
    return res.stdout


def last_line(text, default="nothing on stderr"):
    """The last non-empty line of ``text``, quoted with ``shown``."""
    lines = [line for line in text.splitlines() if line.strip()]
    return shown(lines[-1].strip()) if lines else default
