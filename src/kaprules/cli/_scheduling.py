"""kaprules next and kaprules plan: the forecast and the plan of a course."""

from __future__ import annotations

import argparse
import datetime as dt
import io
import sys
from typing import TextIO

from kaprules._output import Outputs, check_paths
from kaprules.cli._reading import (
    calendar_of,
    course_of,
    moment_of,
    need_extra,
    protocol_of,
    version_at,
)
from kaprules.cli._render import forecast_lines, json_out, plan_lines
from kaprules.cli._status import EXIT_OK, UsageError, complain, emit
from kaprules.errors import shown_id
from kaprules.model import Course


def next_command(args: argparse.Namespace, out: TextIO) -> int:
    course = course_of(args)
    moment = moment_of(args.as_of, course)
    assert moment is not None  # --as-of is required
    protocol = version_at(protocol_of(args), _local_date(moment, course))
    from kaprules.forecasting import forecast

    # Without a calendar option every day is open: the forecast of the protocol alone.
    chosen = (args.calendar, args.open, args.closed, args.at, args.holidays, args.subdivision)
    calendar = None if all(v is None for v in chosen) else calendar_of(args)
    answer = forecast(course, moment, protocol, calendar)
    if args.format == "json":
        json_out(answer.to_dict(), out)
    else:
        out.write("\n".join(forecast_lines(answer)) + "\n")
    return EXIT_OK


ICS_HINT = "--ics needs the icalendar package: pip install '.[calendar]' in a checkout of kaprules"


def plan_command(args: argparse.Namespace, out: TextIO) -> int:
    if args.ics is not None:
        check_paths([("--ics", args.ics)], [args.path, args.calendar, *(args.protocol or ())])
        need_extra("icalendar", ICS_HINT)
    versions = protocol_of(args)
    calendar = calendar_of(args)
    course = course_of(args)
    moment = moment_of(args.as_of, course)
    assert moment is not None  # --as-of is required
    protocol = version_at(versions, _local_date(moment, course))
    from kaprules.planning import plan

    if args.until is not None:
        from kaprules.forecasting import protocol_phases

        if protocol_phases(protocol) is None:
            raise UsageError(
                f"--until is for phased protocols; {protocol.id} version {protocol.version} "
                "has no phases (its plan completes its series)"
            )
    result = plan(course, moment, calendar, protocol, until=args.until)
    # A plan without sessions writes no calendar file: an empty one would replace the
    # target's events with nothing, and look like a plan.
    unwritten = data = None
    if args.ics is not None:
        try:
            data = result.to_ical()
        except ImportError:
            raise UsageError(ICS_HINT) from None
        if not result.sessions:
            data = None
            unwritten = f"no calendar file written to {shown_id(args.ics, 200)}: " + (
                "the series cannot be completed"
                if result.status == "cannot-complete"
                else "no session is proposed"
            )
    text = io.StringIO()
    if args.format == "json":
        json_out(result.to_dict(), text)
        if unwritten is not None:
            complain(f"note: {unwritten}")
    else:
        text.write("\n".join(plan_lines(result)) + "\n")
        if unwritten is not None:
            text.write(f"{unwritten}\n")
        elif args.ics is not None:
            events = len(result.sessions)
            text.write(
                f"calendar file: {shown_id(args.ics, 200)} "
                f"({events} event{'' if events == 1 else 's'})\n"
            )
    if data is None:
        out.write(text.getvalue())
        return EXIT_OK
    with Outputs() as outputs:
        handle = outputs.open_binary(args.ics)
        with outputs.writing(args.ics):
            handle.write(data)
        # The plan reaches standard output before the calendar file replaces its target:
        # a plan that cannot be written (a full disk, a closed pipe) is exit 2 with the
        # target as it was. Nothing is left for `out`.
        outputs.commit(lambda: emit(text.getvalue(), sys.stdout, as_json=args.format == "json"))
    return EXIT_OK


def _local_date(moment: dt.date | dt.datetime, course: Course) -> dt.date:
    # Scheduling books by the rules in force now: the version in force on as_of's date.
    return course.local(moment).date() if isinstance(moment, dt.datetime) else moment
