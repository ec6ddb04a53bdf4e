"""One published finding: its claim and source, the setting medleak runs, the criterion, and the
two functions that decide it from a store and explain a disagreement."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from medleak.experiments.sqlite_store import StoredRun
from medleak.findings.outcome import Outcome


@dataclass(frozen=True)
class Finding:
    number: int
    title: str
    claim: str
    source: str
    setting: str
    criterion: str
    analyse: Callable[[Sequence[StoredRun]], list[Outcome]]
    why: Callable[[Outcome, Sequence[StoredRun]], str]
