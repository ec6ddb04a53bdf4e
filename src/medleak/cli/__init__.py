"""The command line, one module per group of commands, importing downward only: ``main`` (the
parser and the dispatch) -> ``run`` (attack, demo, defenses, report, train-prior), ``sweep``
(sweep, train, results), ``findings`` -> ``flags`` (flags generated from config fields) and
``common`` (exit codes, the one-line parser, messages)."""

from __future__ import annotations

from medleak.cli.common import OneLineParser, one_line_warning
from medleak.cli.main import build_parser, main

__all__ = ["OneLineParser", "build_parser", "main", "one_line_warning"]
