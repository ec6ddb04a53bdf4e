"""What an analysis hands the document: per data source an outcome, a table and a plot panel."""

from __future__ import annotations

from dataclasses import dataclass, field

from medleak.findings.stats import Summary

AGREES = "agrees"
DISAGREES = "disagrees"
INCONCLUSIVE = "inconclusive"


@dataclass
class Series:
    """One line of a plot: x values with mean and sd of y (the error bars)."""

    label: str
    xs: list[float]
    stats: list[Summary]


@dataclass
class Panel:
    """One subplot: series over numeric x (log when ``xlog``) or over named categories."""

    title: str
    xlabel: str
    ylabel: str
    series: list[Series] = field(default_factory=list)
    categories: list[str] | None = None
    xlog: bool = False
    hline: float | None = None
    hline_label: str = ""


@dataclass
class Outcome:
    """The decision on one data source, the sentence with the numbers, and the evidence."""

    source: str
    verdict: str
    reason: str
    headers: list[str]
    rows: list[list[str]]
    panel: Panel


def cell(summary: Summary | None, digits: int = 2) -> str:
    return "-" if summary is None else f"{summary.mean:.{digits}f} ± {summary.sd:.{digits}f}"
