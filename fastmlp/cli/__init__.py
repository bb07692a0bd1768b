"""The ``fastmlp`` command line.

:mod:`~fastmlp.cli.parser` builds the parser and holds :func:`main`;
:mod:`~fastmlp.cli.commands` does each command's work;
:mod:`~fastmlp.cli.report` prints and logs; :mod:`~fastmlp.cli.bench_command`
runs ``fastmlp bench`` on :mod:`fastmlp.bench`, which times the epochs.
"""

from fastmlp.presets import PRESETS
from fastmlp.cli.parser import build_parser, main

__all__ = ["PRESETS", "build_parser", "main"]
