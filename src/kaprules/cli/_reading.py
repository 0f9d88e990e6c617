"""What the commands read from their arguments: the course, protocol and calendar."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys

import attrs

from kaprules._moments import TODAY, Today
from kaprules.cli._arguments import DEFAULT_PROTOCOL, Moment
from kaprules.cli._status import Failure, UsageError
from kaprules.clinic_calendar import ClinicCalendar
from kaprules.errors import InputError, shown_id
from kaprules.loading import (
    MAX_FILE_BYTES,
    load_calendar,
    parse_course,
    read_at_most,
    resolve_protocol,
)
from kaprules.model import Course
from kaprules.protocol import Protocol, ProtocolVersions


def moment_of(value: Moment | str, course: Course) -> Moment:
    if value == TODAY:
        return Today.now().date_in(course.zone)
    assert not isinstance(value, str)
    return value


def protocol_of(args: argparse.Namespace) -> Protocol | ProtocolVersions:
    return resolve_protocol(protocol_specs(args))


def protocol_and_files(
    args: argparse.Namespace,
) -> tuple[Protocol | ProtocolVersions, list[tuple[str, str]]]:
    """The protocol, and ``(path, SHA-256)`` of each protocol file it was read from.

    A built-in names no file. Each file is hashed before and after it is read: one that
    changed meanwhile is refused, so the stamp is of the bytes that made the protocol.

    Raises:
        UsageError: A protocol file changed while it was read.
    """
    specs = protocol_specs(args)
    files = [s for s in specs if os.path.exists(s)]  # as resolve_protocol tells them
    before = [_sha256(path) for path in files]
    protocol = resolve_protocol(specs)
    stamps = []
    for path, first in zip(files, before, strict=True):
        if first is None or _sha256(path) != first:
            raise UsageError(f"{shown_id(path, 200)} changed while it was read; run again")
        stamps.append((path, first))
    return protocol, stamps


def _sha256(path: str) -> str | None:
    import hashlib  # only stamps need it: `check` in text does not pay for it

    try:
        with open(path, "rb") as handle:
            data = read_at_most(handle, MAX_FILE_BYTES)
    except (OSError, ValueError):
        return None
    return None if data is None else hashlib.sha256(data).hexdigest()


def protocol_specs(args: argparse.Namespace) -> list[str]:
    # --protocol, given once or more (the versions of one protocol), or the default.
    given: list[str] | None = args.protocol
    return given or [DEFAULT_PROTOCOL]


def version_at(protocol: Protocol | ProtocolVersions, date: dt.date | None) -> Protocol:
    """The one version a command that needs one uses: in force on ``date``, or the latest.

    Raises:
        InputError: ``date`` is before the first version's effective date.
    """
    if isinstance(protocol, Protocol):
        return protocol
    return protocol.latest if date is None else protocol.at(date)


def source_of(args: argparse.Namespace) -> str:
    return "standard input" if args.path == "-" else shown_id(args.path, 200)


def course_of(args: argparse.Namespace) -> Course:
    return course_read(args)[0]


def course_read(args: argparse.Namespace) -> tuple[Course, bytes]:
    """The course, and the bytes it was read from (for their SHA-256)."""
    limit: int = args.max_input_bytes
    try:
        if args.path == "-":
            if sys.stdin is None:  # started with stdin closed (<&-)
                raise UsageError("standard input is closed; give a file instead of -")
            data = read_at_most(sys.stdin.buffer, limit)
        else:
            with open(args.path, "rb") as handle:
                data = read_at_most(handle, limit)
    except (OSError, ValueError) as exc:
        why = getattr(exc, "strerror", None) or "not a readable file"
        raise UsageError(f"cannot read {source_of(args)}: {why}") from None
    if data is None:
        raise UsageError(
            f"{source_of(args)} holds more than {limit} bytes, the input limit; raise it with "
            "--max-input-bytes"
        )
    try:
        return parse_course(data), data
    except InputError as exc:
        raise Failure(f"invalid course in {source_of(args)}", exc.problems) from None


def calendar_of(args: argparse.Namespace) -> ClinicCalendar:
    try:
        calendar = ClinicCalendar() if args.calendar is None else load_calendar(args.calendar)
        # Options change only what they name (--closed adds dates): the file keeps the rest.
        country, subdivision = calendar.holidays, calendar.subdivision
        if args.holidays is not None and args.holidays != country:
            # The file's subdivision belongs to the file's country.
            country, subdivision = args.holidays, None
        if args.subdivision is not None:
            subdivision = args.subdivision
        return attrs.evolve(
            calendar,
            weekdays=calendar.weekdays if args.open is None else args.open,
            closed=(*calendar.closed, *(args.closed or ())),
            at=calendar.at if args.at is None else args.at,
            holidays=country,
            subdivision=subdivision,
        )
    except InputError as exc:
        where = f" {shown_id(args.calendar, 200)}" if args.calendar is not None else ""
        raise Failure(f"invalid calendar{where}", exc.problems) from None


def need_extra(module: str, hint: str) -> None:
    # An optional extra, looked for before any work (not imported: that costs time).
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise UsageError(hint)
