"""Exceptions raised by kaprules.

Every exception kaprules raises on purpose derives from [`KapRulesError`][kaprules.KapRulesError],
so ``except kaprules.KapRulesError`` catches them all. Problems are collected rather than
reported one at a time: an [`InputError`][kaprules.InputError] or a
[`ProtocolError`][kaprules.ProtocolError] carries every [`Problem`][kaprules.Problem] found,
each with the path to the bad value (``sessions[2].start``, ``rules[3].parameters.hours``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Self

import attrs

__all__ = ["InputError", "KapRulesError", "PathItem", "Problem", "ProtocolError"]

PathItem = str | int | tuple[int, str]
"""One step of a problem's path: a field name, a list index, or an index with the id of the
session found there (rendered ``[2] (id 's3')``)."""

# Ids are echoed in paths: keep them short and on one line whatever the input holds.
_ID_ECHO = 40


def _to_path(value: Iterable[PathItem] | str) -> tuple[PathItem, ...]:
    # A plain string is one step: the form Problem took before paths were structured.
    if isinstance(value, str):
        return (value,) if value else ()
    return tuple(value)


def echo(value: str, limit: int = _ID_ECHO) -> str:
    """``value`` quoted for a message: escaped, on one line, at most ``limit`` characters.

    Args:
        value: Text from the input, such as a session id.
        limit: The most characters of ``value`` to show.

    Returns:
        A Python-style quoted literal, with ``...`` when cut.
    """
    cut = value[:limit]
    text = repr(cut).encode("ascii", "backslashreplace").decode("ascii")
    return text + ("..." if len(value) > limit else "")


def shown_id(value: str, limit: int = _ID_ECHO) -> str:
    """An id or path as a message shows it: as it is when short and printable, else echoed.

    They come from the input or the command line: one with a newline or an escape sequence
    could forge report lines or drive a terminal, and a huge one would flood it.

    Args:
        value: The id (or a file path).
        limit: The most characters shown as they are.

    Returns:
        ``value`` itself, or `echo(value, limit)` (quoted, escaped, bounded).
    """
    if len(value) <= limit and value.isprintable():
        return value
    return echo(value, limit)


def got(value: object) -> str:
    """``", got <its JSON type>"`` for a message about a value of a wrong type.

    Args:
        value: A value read from a document; None for one that is missing.

    Returns:
        The phrase, or nothing for None.
    """
    return "" if value is None else f", got {json_type(value)}"


def json_type(value: object) -> str:
    """The JSON name of a value's type, for messages about JSON or TOML input.

    Args:
        value: A value read from a document.

    Returns:
        ``"null"``, ``"a boolean"``, ``"a number"``, ``"a string"``, ``"an array"``,
        ``"an object"``, or the Python type's name for anything else.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``choices``, or an empty string.

    Args:
        name: What was given.
        choices: The known names.

    Returns:
        The hint, to append to a message.
    """
    # Only the first 64 characters are compared: a huge name must not cost a huge match.
    # Case is ignored: FASTING means fasting.
    import difflib  # on the error path only: start-up does not pay for it

    lowered: dict[str, str] = {}
    for choice in choices:
        lowered.setdefault(choice.lower(), choice)
    close = difflib.get_close_matches(name[:64].lower(), list(lowered), n=1, cutoff=0.5)
    return f"; did you mean {lowered[close[0]]!r}?" if close else ""


def unknown_field(
    where: tuple[PathItem, ...], position: int, key: object, allowed: tuple[str, ...]
) -> Problem:
    """The problem of an unknown key in an object of a document.

    The key's text is shown only when it is a close match to a known field (a typo): key
    names can hold anything, a patient's name included. Otherwise the key is named by its
    position.

    Args:
        where: The path of the object.
        position: The key's 0-based position in the object.
        key: The key.
        allowed: The object's known fields.

    Returns:
        The problem, with code ``"unknown-field"``.
    """
    if isinstance(key, str) and (hint := did_you_mean(key, allowed)):
        return Problem((*where, key), "unknown field" + hint, "unknown-field")
    return Problem(
        where,
        f"unknown field (key {position + 1} of the object); allowed: {', '.join(allowed)}",
        "unknown-field",
    )


def render_path(path: tuple[PathItem, ...]) -> str:
    """A path as text: ``sessions[2] (id 's3').start``, ``rules[3].parameters.hours``.

    Args:
        path: The steps.

    Returns:
        The rendered path; empty for the input as a whole.
    """
    parts: list[str] = []
    for step in path:
        if isinstance(step, tuple):
            index, label = step
            parts.append(f"[{index}] (id {echo(label)})")
        elif isinstance(step, int):
            parts.append(f"[{step}]")
        else:
            parts.append(f".{step}" if parts else step)
    return "".join(parts)


@attrs.frozen
class Problem:
    """One thing wrong with the input, where it is, and what kind of problem it is.

    Args:
        path: The steps to the bad value, such as ``("sessions", (2, "s3"), "start")``
            (a plain string is taken as one step); empty for the input as a whole.
        what: What is wrong and, where possible, how to fix it. Never echoes escort
            names, therapist names or patient identifiers.
        code: A stable, machine-readable kind of problem, such as ``"required"``,
            ``"type"``, ``"unknown-field"`` or ``"range"``.
    """

    path: tuple[PathItem, ...] = attrs.field(converter=_to_path)
    what: str
    code: str = "invalid"

    @property
    def where(self) -> str:
        """The path, rendered once: ``sessions[2] (id 's3').start``."""
        return render_path(self.path)

    def __str__(self) -> str:
        where = self.where
        return f"{where}: {self.what}" if where else self.what

    def within(self, *prefix: PathItem) -> Problem:
        """Return this problem with ``prefix`` put before its path.

        Args:
            *prefix: The steps to the enclosing value, such as ``"sessions", 2``.

        Returns:
            A new problem whose path starts with ``prefix``.
        """
        return Problem((*prefix, *self.path), self.what, self.code)


class KapRulesError(Exception):
    """Base class of every exception kaprules raises on purpose; it carries the problems.

    Attributes:
        problems: Each problem found, in order (at least one).
    """

    problems: tuple[Problem, ...]

    def __init__(self, *problems: Problem | str) -> None:
        self.problems = tuple(p if isinstance(p, Problem) else Problem((), p) for p in problems)
        super().__init__(self._render())

    @classmethod
    def collect(cls, problems: Iterable[Problem]) -> Self | None:
        """Return an error carrying ``problems``, or None when there are none.

        Args:
            problems: The problems found.

        Returns:
            An error of this class, or None for an empty iterable.
        """
        found = tuple(problems)
        return cls(*found) if found else None

    def _render(self) -> str:
        if len(self.problems) == 1:
            return str(self.problems[0])
        return f"{len(self.problems)} problems: " + "; ".join(str(p) for p in self.problems)


class InputError(KapRulesError, ValueError):
    """A course, session or option that kaprules cannot accept.

    Raised when a [`Session`][kaprules.Session] or [`Course`][kaprules.Course] is built from
    bad values, when JSON cannot be read as a course, and for a bad ``as_of``. It lists
    every problem found, not only the first.

    Attributes:
        problems: Each problem found, in input order.
    """


class ProtocolError(KapRulesError, ValueError):
    """A protocol or rule that cannot be built or changed as asked.

    For example two rules with one id, a parameter out of range, parameters of two rules
    that contradict each other, or protocol data naming a rule kaprules does not know. It
    lists every problem found, each with its path (``rules[3].parameters.hours``).

    Attributes:
        problems: Each problem found, in order.
    """
