"""Image order in a data set: the victims of a run are a slice of it, so order decides who."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def arrange(
    items: Sequence[T], label: Callable[[T], int], key: Callable[[T], Any], order: str
) -> list[T]:
    """Sort each class by ``key`` (the file name), then lay the classes out.

    ``balanced``: round-robin over the classes in label order (NORMAL, PNEUMONIA, NORMAL, ...),
    and the rest of the longer class at the end; any short prefix holds every class.
    ``sorted``: one block per class, in label order.
    """
    if order not in ("balanced", "sorted"):
        raise ValueError(f"unknown order {order!r}")
    groups: dict[int, list[T]] = {}
    for item in items:
        groups.setdefault(label(item), []).append(item)
    blocks = [sorted(groups[k], key=key) for k in sorted(groups)]
    if order == "sorted":
        return [item for block in blocks for item in block]
    out: list[T] = []
    for position in range(max((len(b) for b in blocks), default=0)):
        out.extend(block[position] for block in blocks if position < len(block))
    return out
