"""Words for messages: one helper for each job, shared by every module that writes text."""

from __future__ import annotations

import datetime as dt

__all__ = ["iso_date", "plural"]


def plural(count: int, noun: str) -> str:
    """``count`` and ``noun``, with an ``s`` unless the count is one: ``3 days``, ``1 day``.

    Args:
        count: How many.
        noun: The noun in the singular.

    Returns:
        The words.
    """
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def iso_date(value: dt.date | None) -> str | None:
    """A date as ``YYYY-MM-DD`` for JSON, None kept.

    Args:
        value: A date, or None.

    Returns:
        The text, or None.
    """
    return None if value is None else value.isoformat()
