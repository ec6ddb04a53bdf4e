"""One-line reasons for DataError messages, from whatever a decoder raised."""

from __future__ import annotations


def short_reason(exc: BaseException, limit: int = 120) -> str:
    """First line of an exception's message (or its type), cut to ``limit`` characters."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
