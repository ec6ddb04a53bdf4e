"""The eight published findings medleak checks, one module each (``finding_N``): the claim, where it
comes from, the criterion, the analysis and the explanation. The decision is computed from the
store, never written down here."""

from __future__ import annotations

from collections.abc import Sequence

from medleak.experiments.sqlite_store import StoredRun
from medleak.findings import (
    finding_1,
    finding_2,
    finding_3,
    finding_4,
    finding_5,
    finding_6,
    finding_7,
    finding_8,
)
from medleak.findings.finding import Finding
from medleak.findings.outcome import AGREES, Outcome

FINDINGS: tuple[Finding, ...] = tuple(
    module.FINDING
    for module in (
        finding_1,
        finding_2,
        finding_3,
        finding_4,
        finding_5,
        finding_6,
        finding_7,
        finding_8,
    )
)
BY_NUMBER = {f.number: f for f in FINDINGS}


def explain(number: int, outcome: Outcome, runs: Sequence[StoredRun]) -> str:
    """The why-sentence for an outcome that does not agree ('' when it agrees)."""
    if outcome.verdict == AGREES or number not in BY_NUMBER:
        return ""
    return BY_NUMBER[number].why(outcome, runs)


__all__ = ["BY_NUMBER", "FINDINGS", "Finding", "explain"]
