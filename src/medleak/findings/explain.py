"""What the why-sentences of the findings share (each finding module writes its own)."""

from __future__ import annotations

from collections.abc import Sequence

from medleak.experiments.sqlite_store import StoredRun
from medleak.findings.stats import (
    finished,
    leak,
    source_of,
    summarise,
)


def of_source(runs: Sequence[StoredRun], source: str) -> list[StoredRun]:
    return [r for r in finished(runs) if source_of(r) == source]


def metric_text(runs: Sequence[StoredRun], key: str) -> str:
    s = summarise(r.metrics.get(key) for r in runs)
    return "-" if s is None else f"{s.mean:.2f}"


def leak_text(runs: Sequence[StoredRun]) -> str:
    s = summarise(leak(r.metrics) for r in runs)
    return "-" if s is None else f"{s.mean:.2f}"
