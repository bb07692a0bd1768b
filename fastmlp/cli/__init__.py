"""The ``fastmlp`` command line.

:mod:`~fastmlp.cli.parser` builds the parser and holds :func:`main`;
:mod:`~fastmlp.cli.commands` does each command's work;
:mod:`~fastmlp.cli.report` prints and logs; :mod:`~fastmlp.cli.bench` times
epochs of every backend and peer for ``fastmlp bench``.
"""

from fastmlp.cli.commands import PRESETS
from fastmlp.cli.parser import build_parser, main

__all__ = ["PRESETS", "build_parser", "main"]
