"""The eight published findings medleak checks, one module each (``finding_N``): the claim, where it
comes from, the criterion, the analysis and the explanation. The decision is computed from the
store, never written down here."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import import_module

from medleak.experiments.sqlite_store import StoredRun
from medleak.findings.finding import Finding
from medleak.findings.outcome import AGREES, Outcome

#: One module per finding, ``finding_1`` .. ``finding_8``, each holding its ``FINDING``.
FINDINGS: tuple[Finding, ...] = tuple(
    import_module(f"medleak.findings.finding_{number}").FINDING for number in range(1, 9)
)
BY_NUMBER = {f.number: f for f in FINDINGS}


def explain(number: int, outcome: Outcome, runs: Sequence[StoredRun]) -> str:
    """The why-sentence for an outcome that does not agree ('' when it agrees)."""
    if outcome.verdict == AGREES or number not in BY_NUMBER:
        return ""
    return BY_NUMBER[number].why(outcome, runs)


__all__ = ["BY_NUMBER", "FINDINGS", "Finding", "explain"]
