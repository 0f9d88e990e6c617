"""The moment courses are judged at: ``as_of`` checked once, and "today" in one place.

`Timeline.of` checks an ``as_of`` (`kaprules.timeline.checked_as_of`); an audit reads
its ``as_of`` once with `read_as_of` (``"today"`` becomes one `Today` for the whole audit)
and hands the result on to its engines, which ask `moment_in` for a course's moment in
its own zone.
"""

from __future__ import annotations

import datetime as dt

import attrs

from kaprules.timeline import checked_as_of

TODAY = "today"
"""How ``as_of`` is written for each course's own local date (`Today`)."""


@attrs.frozen
class Today:
    """``as_of="today"``, fixed at one instant: each course's local date then.

    Attributes:
        instant: The instant, in UTC, to the second.
    """

    instant: dt.datetime

    @classmethod
    def now(cls) -> Today:
        """Today as of this instant: a run across midnight does not change its mind."""
        return cls(dt.datetime.now(dt.UTC).replace(microsecond=0))

    def date_in(self, zone: dt.tzinfo) -> dt.date:
        """The local date of the instant in ``zone``."""
        return self.instant.astimezone(zone).date()

    def on_this_machine(self) -> dt.date:
        """The date of the instant on this machine's clock, for what has no zone of its own."""
        return self.instant.astimezone().date()

    def shown(self) -> str:
        """How a summary names it: ``today (each course's local date at <UTC instant>)``."""
        return f"today (each course's local date at {self.instant.isoformat()})"


AsOf = dt.datetime | dt.date | Today | None
"""An ``as_of`` once read: None, a local date, an aware datetime, or `Today`."""


def read_as_of(as_of: object, *, today: bool = True) -> AsOf:
    """An audit's ``as_of``, read once: `checked_as_of`, or (``today``) ``"today"`` as `Today`.

    Raises:
        InputError: As `Timeline.of` (`kaprules.timeline.checked_as_of`).
    """
    if today and isinstance(as_of, str) and as_of == TODAY:
        return Today.now()
    return checked_as_of(as_of)


def shown(as_of: AsOf) -> str | None:
    """``as_of`` as a summary shows it: ISO text, `Today.shown`, or None."""
    if isinstance(as_of, Today):
        return as_of.shown()
    return None if as_of is None else as_of.isoformat()


def moment_in(as_of: AsOf, zone: dt.tzinfo) -> dt.datetime | dt.date | None:
    """The ``as_of`` a course in ``zone`` is judged at (`Today`: its local date there)."""
    return as_of.date_in(zone) if isinstance(as_of, Today) else as_of
