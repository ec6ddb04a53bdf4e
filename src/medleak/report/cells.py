"""The small pieces every section of a report is built from: the verdict's badge classes, numbers
formatted for people, and the sortable table. One public module, so the run, audit and frontier
sections share them without importing each other."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from typing import Any

from medleak.metrics.verdict import INCONCLUSIVE, LEAKS, NO_MEASURABLE_LEAKAGE

#: The CSS class of each verdict's badge.
BADGES = {LEAKS: "leak", NO_MEASURABLE_LEAKAGE: "ok", INCONCLUSIVE: "warn"}


def is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def fmt(v: Any, digits: int = 2, unit: str = "") -> str:
    """A number for people: fixed digits, "n/a" when absent (never a fake 0)."""
    if not is_num(v):
        return "n/a"
    return f"{v:.{digits}f}{unit}"


def fmt_bits(bits: Any) -> str:
    """A bit count in the bytes people reason in (8 bits a byte, binary prefixes)."""
    if not is_num(bits):
        return "n/a"
    size = bits / 8
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(size) >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size:.0f} B"


def _is_numeric_cell(text: str) -> bool:
    try:
        float(text.split()[0])
    except (ValueError, IndexError):
        return text == "n/a"
    return True


def _td(cell: str | tuple[str, str]) -> str:
    """One cell: text, or (short text, the full text shown on hover)."""
    text, full = cell if isinstance(cell, tuple) else (cell, None)
    title = f' title="{escape(full)}"' if full else ""
    num = ' class="num"' if _is_numeric_cell(text) else ""
    return f"<td{num}{title}>{escape(text)}</td>"


def table(cls: str, headers: Sequence[str], rows: Sequence[Sequence[str | tuple[str, str]]]) -> str:
    """A table with escaped cells; numbers are right-aligned so their digits line up."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(_td(c) for c in row) + "</tr>" for row in rows)
    return (
        f'<table class="{cls} sortable"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    )
