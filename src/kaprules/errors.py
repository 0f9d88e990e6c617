"""Exceptions raised by kaprules.

Every exception kaprules raises on purpose derives from [`KapRulesError`][kaprules.KapRulesError],
so ``except kaprules.KapRulesError`` catches them all. Input problems are collected rather
than reported one at a time: an [`InputError`][kaprules.InputError] carries every
[`Problem`][kaprules.Problem] found, each naming where it is.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

__all__ = ["InputError", "KapRulesError", "Problem", "ProtocolError"]


class KapRulesError(Exception):
    """Base class of every exception kaprules raises on purpose."""


@attrs.frozen
class Problem:
    """One thing wrong with the input, and where it is.

    Attributes:
        where: The path to the bad value, such as ``"sessions[2] (id 's3').start"``;
            empty for the input as a whole.
        what: What is wrong and, where possible, how to fix it. Never echoes escort
            names or patient identifiers.
    """

    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}" if self.where else self.what

    def within(self, prefix: str) -> Problem:
        """Return this problem with ``prefix`` put before its path.

        Args:
            prefix: The path of the enclosing value, such as ``"sessions[2]"``.

        Returns:
            A new problem whose ``where`` starts with ``prefix``.
        """
        if not self.where:
            return Problem(prefix, self.what)
        joiner = "" if self.where.startswith("[") else "."
        return Problem(f"{prefix}{joiner}{self.where}", self.what)


class InputError(KapRulesError, ValueError):
    """A course, session or option that kaprules cannot accept.

    Raised when a [`Session`][kaprules.Session] or [`Course`][kaprules.Course] is built from
    bad values, when JSON cannot be read as a course, and for a bad ``as_of``. It lists
    every problem found, not only the first.

    Attributes:
        problems: Each problem found, in input order.
    """

    problems: tuple[Problem, ...]

    def __init__(self, *problems: Problem | str) -> None:
        self.problems = tuple(p if isinstance(p, Problem) else Problem("", p) for p in problems)
        super().__init__(self._render())

    @classmethod
    def collect(cls, problems: Iterable[Problem]) -> InputError | None:
        """Return an error carrying ``problems``, or None when there are none.

        Args:
            problems: The problems found.

        Returns:
            An `InputError`, or None for an empty iterable.
        """
        found = tuple(problems)
        return cls(*found) if found else None

    def _render(self) -> str:
        if len(self.problems) == 1:
            return str(self.problems[0])
        return f"{len(self.problems)} problems: " + "; ".join(str(p) for p in self.problems)


class ProtocolError(KapRulesError, ValueError):
    """A protocol that cannot be built or changed as asked.

    For example two rules with one id, dropping a rule the protocol does not have, or
    protocol data naming a rule kaprules does not know.
    """
