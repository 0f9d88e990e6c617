"""Time arithmetic shared by the model, the rules and the loader (private).

The standard library only: pendulum's DateTime is accepted as the datetime it is, and
month arithmetic is a few lines here, so that no command pays pendulum's ~30 ms import.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import zoneinfo

UTC = dt.UTC

# Instants are kept far from datetime's limits, so that no date arithmetic of a rule (up to
# a century of days or months, see rules.py) can overflow during evaluation.
MIN_YEAR, MAX_YEAR = 1900, 9000


def valid_text(value: str) -> bool:
    """Whether ``value`` is valid Unicode text: no lone surrogate, so it encodes as UTF-8."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_aware(value: dt.datetime) -> bool:
    """Whether ``value`` denotes one instant (has a UTC offset)."""
    return value.tzinfo is not None and value.utcoffset() is not None


def in_range(value: dt.datetime) -> bool:
    """Whether an aware datetime's instant falls in UTC years ``MIN_YEAR`` to ``MAX_YEAR``."""
    # An offset is under a day, so only the boundary years need the (costlier) conversion.
    if MIN_YEAR < value.year < MAX_YEAR:
        return True
    try:
        year = to_utc(value).year
    except OverflowError:
        return False
    return MIN_YEAR <= year <= MAX_YEAR


def to_utc(value: dt.datetime) -> dt.datetime:
    """The instant of an aware datetime, as a plain ``datetime`` in UTC.

    Rebuilt field by field so that subclasses (pendulum's DateTime) become the plain,
    fast standard type before they reach the rules.
    """
    if type(value) is dt.datetime:
        return value.astimezone(UTC)
    offset = value.utcoffset()
    assert offset is not None  # callers check is_aware first
    naive = dt.datetime(
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond,
    )
    return (naive - offset).replace(tzinfo=UTC)


# Files a zone directory may hold that are not IANA zones: the host's own zone (the same
# course would read differently on another machine), and tzcode's build artefacts.
_NOT_ZONES = frozenset({"localtime", "posixrules", "Factory", "leapseconds", "+VERSION"})


@functools.cache
def zone_names() -> frozenset[str]:
    """The names a course timezone may have: the IANA database's zones and links.

    Listing them walks the zone directory (~60 ms): `zone` does without, on valid names.
    """
    return frozenset(
        name
        for name in zoneinfo.available_timezones()
        if name not in _NOT_ZONES and not name.startswith(("posix/", "right/"))
    )


@functools.cache
def _entries(directory: str) -> frozenset[str]:
    try:
        return frozenset(os.listdir(directory))
    except OSError:
        return frozenset()


def _listed(name: str) -> bool:
    """Whether ``name`` is one of `zone_names`, mostly without listing them all."""
    # ZoneInfo refuses absolute and unnormalised paths, and files that are not zones.
    if name in _NOT_ZONES or name.startswith(("posix/", "right/")):
        return False
    for root in zoneinfo.TZPATH:
        if os.path.isfile(os.path.join(root, name)):
            # Spelled as stored: a case-insensitive file system would open 'america/denver'.
            parts = name.split("/")
            return all(
                part in _entries(os.path.join(root, *parts[:depth]))
                for depth, part in enumerate(parts)
            )
    # No zone file on this host's path (tzdata package, or not a zone): the full list.
    return name in zone_names()


@functools.lru_cache(maxsize=512)
def zone(name: str) -> zoneinfo.ZoneInfo:
    """The IANA zone called ``name``.

    Only names of the IANA time zone database are zones: never the host's ``localtime``,
    ``posixrules``, ``Factory``, or the ``posix/`` and ``right/`` copies.

    Raises:
        ValueError: ``name`` is not a zone in the IANA database.
    """
    if not _listed(name):
        raise ValueError("not an IANA zone name")
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError("not an IANA zone name") from exc


# Days in each month of a common year.
_MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


@functools.lru_cache(maxsize=4096)
def add_months(date: dt.date, months: int) -> dt.date:
    """``date`` plus ``months`` calendar months, keeping the day and clamping to month end.

    Aug 31 + 6 months is Feb 28 (Feb 29 in a leap year): CQL's rule (and pendulum's), not
    CDC CDSi's roll to the first of the next month.
    """
    year, month = divmod(date.year * 12 + date.month - 1 + months, 12)
    month += 1
    last = _MONTH_DAYS[month - 1]
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        last = 29
    return dt.date(year, month, min(date.day, last))


class NoSuchDay(ValueError):
    """A local date that never existed in a zone (Pacific/Apia skipped 2011-12-30)."""


def day_exists(date: dt.date, zone: zoneinfo.ZoneInfo) -> bool:
    """Whether local ``date`` happened in ``zone``: some wall time of it was on the clocks.

    A date is missing when a change of offset of a day or more skipped all of it (Samoa
    and Tokelau skipped 2011-12-30 to move across the date line). Its midnight, if skipped,
    reads as the end of the skipped span; the date exists when that end is still on it.
    """
    midnight = dt.datetime.combine(date, dt.time(0), tzinfo=zone)
    return midnight.astimezone(UTC).astimezone(zone).date() == date


def at_local(date: dt.date, time: dt.time, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    """The aware datetime at wall ``time`` on local ``date`` in ``zone``.

    A wall time skipped by a DST change moves forward by the change, as clocks do; if
    that would leave ``date`` (a change at midnight), noon is used, so the local date is
    always ``date``.

    Raises:
        NoSuchDay: ``date`` never existed in ``zone`` (see `day_exists`).
    """
    for wall in (time, dt.time(12), dt.time(9), dt.time(15), dt.time(0)):
        local = dt.datetime.combine(date, wall, tzinfo=zone).astimezone(UTC).astimezone(zone)
        if local.date() == date:
            return local
    raise NoSuchDay(f"the local date {date.isoformat()} never existed in {zone.key}")


def format_local(value: dt.datetime) -> str:
    """A local datetime as ``2026-12-01 09:00 UTC-07:00``: date, wall time and offset."""
    offset = value.utcoffset()
    seconds = 0 if offset is None else int(offset.total_seconds())
    sign = "-" if seconds < 0 else "+"
    minutes = abs(seconds) // 60
    # isoformat, cut after the minutes, is strftime's '%Y-%m-%d %H:%M' at a third the cost.
    wall = value.isoformat(" ", "minutes")[:16]
    return f"{wall} UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def format_duration(delta: dt.timedelta) -> str:
    """An elapsed time as ``3 h 59 min`` (negative when the order is reversed)."""
    seconds = int(delta.total_seconds())
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{sign}{hours} h {minutes:02d} min"
    return f"{text} {secs:02d} s" if secs else text
