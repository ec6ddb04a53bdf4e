"""Strict JSON: what medleak writes never holds ``NaN`` or ``Infinity`` (not JSON; many readers
reject them). A number that is not finite is written as null, and the record says why under
``non_finite`` (dotted path -> the value it had), so a null is never mistaken for "not measured".
"""

from __future__ import annotations

import json
import math
from typing import Any

NON_FINITE_KEY = "non_finite"


def _clean(value: Any, path: str, found: dict[str, str]) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        found[path or "."] = repr(value)
        return None
    if isinstance(value, dict):
        return {
            str(k): _clean(v, f"{path}.{k}" if path else str(k), found) for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [_clean(v, f"{path}[{i}]", found) for i, v in enumerate(value)]
    return value


def finite_record(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None; a dict also gets ``non_finite``."""
    found: dict[str, str] = {}
    clean = _clean(value, "", found)
    if found and isinstance(clean, dict):
        clean[NON_FINITE_KEY] = found
    return clean


def strict_json(value: Any, indent: int | None = 2) -> str:
    """``json.dumps`` that can only produce strict JSON (see the module docstring)."""
    return json.dumps(finite_record(value), indent=indent, allow_nan=False, default=str)


def non_finite(*values: Any) -> str | None:
    """The dotted path of the first non-finite float in ``values``, or None when all are finite."""
    for value in values:
        found: dict[str, str] = {}
        _clean(value, "", found)
        if found:
            path, number = next(iter(found.items()))
            return f"{path} = {number}"
    return None
