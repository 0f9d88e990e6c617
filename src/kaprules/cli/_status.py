"""Exit statuses, the failures commands raise, and the one way a line reaches stderr."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from typing import TextIO

from kaprules._text import terminal
from kaprules.errors import Problem

EXIT_OK = 0
"""No finding is an error."""


EXIT_FINDINGS = 1
"""At least one finding is an error."""


EXIT_USAGE = 2
"""The input could not be read or used, or the command line was wrong."""


# A message as one terminal line. Messages escape what they echo; this is the last guard
# for anything that slipped by.
one_line = terminal

# Problems listed under a failure's headline, at most: the rest are counted.
MAX_LISTED = 20


class UsageError(Exception):
    """Bad usage of the command line: exit 2 with the message as one line."""


class Failure(Exception):
    """A run that cannot be made: a headline and the problems found, each one line."""

    def __init__(self, headline: str, problems: Sequence[Problem] = ()) -> None:
        super().__init__(headline)
        self.headline = headline
        self.problems = tuple(problems)

    def lines(self) -> list[str]:
        # One prefix for every failure: "kaprules: error: ..." (kaprules: is added on output).
        if len(self.problems) == 1:
            return [f"error: {self.headline}: {one_line(str(self.problems[0]))}"]
        if not self.problems:
            return [f"error: {self.headline}"]
        listed = [f"  {one_line(str(p))}" for p in self.problems[:MAX_LISTED]]
        more = len(self.problems) - MAX_LISTED
        tail = [f"  ... and {more} more"] if more > 0 else []
        return [f"error: {self.headline} ({len(self.problems)} problems):", *listed, *tail]

    def to_dict(self) -> dict[str, object]:
        return {
            "error": {
                "message": self.lines()[0].removeprefix("error: "),
                "problems": [
                    {"path": p.where, "message": p.what, "code": p.code} for p in self.problems
                ],
            }
        }


EXIT_SIGNAL = 128
"""Added to the number of the signal that stopped a run: 130 for SIGINT, 143 for SIGTERM,
129 for SIGHUP."""


_ASCII = re.compile(r"[^\x00-\x7f]")


def emit(text: str, stream: TextIO | None, *, as_json: bool) -> None:
    """Write ``text`` whole, in what ``stream`` can encode."""
    if stream is None:
        raise UsageError("standard output is closed; nothing can be written")
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        # JSON keeps every non-ASCII character inside strings: \u escapes are exact. Text
        # gets Python's backslash escapes.
        if as_json:
            text = _ASCII.sub(lambda m: json.dumps(m.group())[1:-1], text)
        else:
            text = text.encode("ascii", "backslashreplace").decode("ascii")
    stream.write(text)
    stream.flush()


def complain(message: str) -> None:
    if sys.stderr is None:  # 2>&- leaves nowhere to say it
        return
    try:
        text = "kaprules: " + message if not message.startswith("  ") else message
        emit(text + "\n", sys.stderr, as_json=False)
    except (OSError, ValueError):
        pass
