"""Words for messages: one helper for each job, shared by every module that writes text."""

from __future__ import annotations

import datetime as dt

__all__ = ["iso_date", "number", "ordinal", "plural"]


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


def ordinal(n: int) -> str:
    """``n`` as an ordinal: ``1st``, ``2nd``, ``11th``, ``23rd``."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def number(value: float) -> str:
    """A number as messages write it: ``12``, ``3.5`` (``f"{value:g}"``)."""
    return f"{value:g}"
