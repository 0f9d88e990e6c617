"""The ``kaprules`` command line.

Commands: ``check`` a course file, forecast its ``next`` session, ``plan`` the rest of its
series, ``explain`` one rule, list the ``rules``, and ``protocol validate`` /
``protocol show`` for protocol files. Each takes ``--protocol``: a built-in as
``NAME@VERSION`` (``kap-standard@2``) or a protocol file. Exit status: 0 when no finding is
an error (and for every answer of ``next`` and ``plan``), 1 when one is, 2 for input that
cannot be read or used and for bad usage, 130 for Ctrl-C and 143 for SIGTERM. Problems are
one line on stderr, never a traceback. Output files are atomic: a temporary file beside the
target, renamed into place only when the run succeeded.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import os
import re
import signal
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn, TextIO

import attrs

from kaprules import _fast, _time
from kaprules._output import STOP_SIGNALS, OutputError, Outputs, check_paths, write_error
from kaprules._version import __version__
from kaprules._words import plural
from kaprules.clinic_calendar import WEEKDAYS, ClinicCalendar, Closure
from kaprules.errors import InputError, KapRulesError, Problem, ProtocolError, echo, shown_id
from kaprules.evaluation import evaluate
from kaprules.loading import (
    DATETIME_PATTERN,
    load_calendar,
    load_protocol,
    parse_course,
    resolve_protocol,
)
from kaprules.model import Course
from kaprules.protocol import STANDARD, Protocol
from kaprules.report import Finding, Report, Severity
from kaprules.timeline import Timeline

# Scheduling and explanation are imported by the commands that use them: `check` starts
# without them (tests/test_startup.py).
if TYPE_CHECKING:
    from kaprules.forecasting import Forecast
    from kaprules.planning import Plan

__all__ = ["EXIT_FINDINGS", "EXIT_OK", "EXIT_SIGNAL", "EXIT_USAGE", "build_parser", "main"]

EXIT_OK = 0
"""No finding is an error."""
EXIT_FINDINGS = 1
"""At least one finding is an error."""
EXIT_USAGE = 2
"""The input could not be read or used, or the command line was wrong."""

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATETIME = re.compile(DATETIME_PATTERN)


MAX_INPUT_BYTES = 64 * 1024 * 1024
"""The most bytes a course file or standard input may hold (64 MiB) unless
``--max-input-bytes`` raises it: ``kaprules check /dev/zero`` stops instead of filling memory."""

# Problems listed under a failure's headline, at most: the rest are counted.
_MAX_LISTED = 20


class _UsageError(Exception):
    pass


class _Failure(Exception):
    """A run that cannot be made: a headline and the problems found, each one line."""

    def __init__(self, headline: str, problems: Sequence[Problem] = ()) -> None:
        super().__init__(headline)
        self.headline = headline
        self.problems = tuple(problems)

    def lines(self) -> list[str]:
        # One prefix for every failure: "kaprules: error: ..." (kaprules: is added on output).
        if len(self.problems) == 1:
            return [f"error: {self.headline}: {_one_line(str(self.problems[0]))}"]
        if not self.problems:
            return [f"error: {self.headline}"]
        listed = [f"  {_one_line(str(p))}" for p in self.problems[:_MAX_LISTED]]
        more = len(self.problems) - _MAX_LISTED
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


def _one_line(text: str) -> str:
    # Messages escape what they echo; this is the last guard for anything that slipped by.
    flat = " ".join(text.split())
    return flat if flat.isprintable() else echo(flat, 2000)[1:-1]


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Every single-valued option refuses a second value (see _Once).
        self.register("action", None, _Once)
        self.register("action", "store", _Once)

    # One line on stderr and exit 2, instead of argparse's usage block.
    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{message} (see '{self.prog} --help')")


class _Once(argparse.Action):
    # An option given twice is a mistake to point out, not a choice to make silently.
    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        seen = f"_given_{self.dest}"
        if getattr(namespace, seen, False):
            parser.error(f"{option_string} is given twice; give it once")
        setattr(namespace, seen, True)
        setattr(namespace, self.dest, values)


_TODAY = "today"
_AS_OF_HELP = (
    "YYYY-MM-DD (a local date in the course timezone), an ISO date-time with offset, or "
    "'today' (today's date in the course timezone)"
)


def _as_of(text: str) -> dt.date | dt.datetime | str:
    if text == _TODAY:
        return _TODAY  # resolved once the course, and so its timezone, is read
    value: dt.date | dt.datetime | None = None
    try:
        if _DATE.fullmatch(text):
            value = dt.date.fromisoformat(text)
        elif _DATETIME.fullmatch(text):
            value = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a real date or time: {exc}") from None
    if value is None:
        raise argparse.ArgumentTypeError(
            f"{echo(text)} is neither a date YYYY-MM-DD, nor an ISO date-time with an offset "
            "such as 2026-12-10T09:00:00-07:00, nor 'today'"
        )
    if not _time.MIN_YEAR + 1 <= value.year <= _time.MAX_YEAR - 1:
        raise argparse.ArgumentTypeError(
            f"{echo(text)} is outside the years {_time.MIN_YEAR + 1} to {_time.MAX_YEAR - 1}"
        )
    return value


_Moment = dt.date | dt.datetime | None


def _moment(value: _Moment | str, course: Course) -> _Moment:
    if value == _TODAY:
        return dt.datetime.now(course.zone).date()
    assert not isinstance(value, str)
    return value


def _weekdays(text: str) -> tuple[str, ...]:
    names = tuple(part.strip().lower() for part in text.split(","))
    wrong = [n for n in names if n not in WEEKDAYS]
    if wrong or not names:
        raise argparse.ArgumentTypeError(
            f"{echo(text)} is not a list of weekdays such as mon,tue,wed,thu,fri"
        )
    return names


def _closed_date(text: str) -> dt.date:
    if not _DATE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{echo(text)} is not a date YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a real date: {exc}") from None


def _closed_days(text: str) -> dt.date | Closure:
    # One date, or a closure FROM..TO with both ends included.
    first, dots, last = text.partition("..")
    if not dots:
        return _closed_date(text)
    if not (_DATE.fullmatch(first) and _DATE.fullmatch(last)):
        raise argparse.ArgumentTypeError(
            f"{echo(text)} is not a date YYYY-MM-DD or a range YYYY-MM-DD..YYYY-MM-DD"
        )
    try:
        return Closure(_closed_date(first), _closed_date(last))
    except InputError as exc:
        raise argparse.ArgumentTypeError(
            f"{echo(text)} is not a closure: {exc.problems[0].what}"
        ) from None


def _code(text: str) -> str:
    # The holidays package checks the code; this keeps what is echoed short and printable.
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,10}", text):
        raise argparse.ArgumentTypeError(f"{echo(text)} is not a country or subdivision code")
    return text


def _wall_time(text: str) -> dt.time:
    try:
        if re.fullmatch(r"[0-9]{2}:[0-9]{2}", text):
            return dt.time.fromisoformat(text)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"{echo(text)} is not a local time HH:MM, such as 09:00")


def _add_format(
    command: argparse.ArgumentParser,
    choices: tuple[str, ...] = ("text", "json"),
    what: str = "output format",
) -> None:
    # The one definition of --format: the first choice is the default.
    command.add_argument(
        "--format", choices=choices, default=choices[0], help=f"{what} (default: {choices[0]})"
    )


def _add_protocol(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--protocol",
        metavar="NAME@VERSION|FILE",
        default=f"{STANDARD.id}@{STANDARD.version}",
        help="the protocol: a built-in such as kap-standard@2, or a protocol file (.toml or "
        ".json); default: %(default)s",
    )


def _add_input(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "path", metavar="PATH", help="the course JSON file, or - for standard input"
    )
    command.add_argument(
        "--max-input-bytes",
        type=_byte_count,
        default=MAX_INPUT_BYTES,
        metavar="N",
        help="refuse a course larger than N bytes (default: %(default)s, 64 MiB)",
    )


def _byte_count(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) <= 2**40:
        raise argparse.ArgumentTypeError(f"{echo(text)} is not a number of bytes from 1 to 2**40")
    return int(text)


def _jobs(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 256:
        raise argparse.ArgumentTypeError(f"{echo(text)} is not a number of jobs from 1 to 256")
    return int(text)


def _docs_url(text: str) -> str:
    # The report puts it in every rule link's href: only a web address, never a
    # javascript: or data: URL, and nothing that could leave the attribute.
    import urllib.parse

    try:
        parts = urllib.parse.urlsplit(text)
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme.lower() not in ("http", "https")
        or not parts.netloc
        or not text.isprintable()
        or any(c in text for c in ' "<>`')
    ):
        raise argparse.ArgumentTypeError(
            f"{echo(text)} is not an http(s) URL such as https://example.org/kaprules/"
        )
    return text if text.endswith("/") else text + "/"


def _sample(text: str) -> int:
    if not text.isdigit() or int(text) > 100_000:
        raise argparse.ArgumentTypeError(f"{echo(text)} is not a number from 0 to 100000")
    return int(text)


def _add_scheduling(command: argparse.ArgumentParser) -> None:
    _add_input(command)
    command.add_argument(
        "--as-of",
        type=_as_of,
        required=True,
        metavar="DATE|DATETIME|today",
        help=f"the moment of the answer: {_AS_OF_HELP}",
    )
    _add_format(command)
    _add_protocol(command)


def _add_calendar(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--calendar",
        metavar="FILE",
        help="a clinic calendar file (.toml or .json); the options below change it",
    )
    command.add_argument(
        "--open",
        type=_weekdays,
        metavar="DAYS",
        help="the open weekdays, such as mon,tue,wed,thu,fri (the default)",
    )
    command.add_argument(
        "--closed",
        type=_closed_days,
        action="append",
        metavar="YYYY-MM-DD[..YYYY-MM-DD]",
        help="a date, or a range of dates with both ends included, on which the clinic is "
        "closed, added to the calendar's; may be repeated",
    )
    command.add_argument(
        "--at",
        type=_wall_time,
        metavar="HH:MM",
        help="the local time proposed sessions start (default 09:00)",
    )
    command.add_argument(
        "--holidays",
        type=_code,
        metavar="COUNTRY",
        help="close on the public holidays of this country, such as US (instead of the "
        "calendar's); needs the calendar extra",
    )
    command.add_argument(
        "--subdivision",
        type=_code,
        metavar="CODE",
        help="and of this subdivision of it, such as CO (instead of the calendar's)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser: the one definition the CLI reference is checked against.

    Returns:
        The ``kaprules`` argument parser.
    """
    parser = _Parser(
        prog="kaprules",
        description="Check KAP treatment courses against the kap-standard protocol or a "
        "clinic's own.",
        epilog="Exit status: 0 no error finding, 1 an error finding, 2 bad input or usage, "
        "130 interrupted (Ctrl-C), 143 terminated (SIGTERM), 129 hung up (SIGHUP).",
    )
    parser.add_argument("-V", "--version", action="version", version=f"kaprules {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    check = commands.add_parser(
        "check",
        help="check a course file against a protocol",
        description="Check a course (JSON) against a protocol (kap-standard v1 by default) and "
        "list every finding.",
    )
    _add_input(check)
    check.add_argument(
        "--as-of",
        type=_as_of,
        metavar="DATE|DATETIME|today",
        help=f"evaluate a course in progress: {_AS_OF_HELP}; later sessions count as planned",
    )
    _add_format(check)
    _add_protocol(check)

    next_cmd = commands.add_parser(
        "next",
        help="forecast when the next session of a course may be",
        description="Forecast the next session of a course: its kind, the first and last "
        "local dates it may be booked on, and whether the series can still be completed. "
        "Without a calendar option every day is open. "
        "Exit 0 for every answer, cannot-complete included.",
    )
    _add_scheduling(next_cmd)
    _add_calendar(next_cmd)

    plan_cmd = commands.add_parser(
        "plan",
        help="propose the rest of a series on the days the clinic is open",
        description="Propose the remaining sessions of a course on open days of the clinic's "
        "calendar, earliest first, from the day after --as-of. Exit 0 for every answer, "
        "cannot-complete included.",
    )
    _add_scheduling(plan_cmd)
    _add_calendar(plan_cmd)
    plan_cmd.add_argument(
        "--ics",
        metavar="OUT.ics",
        help="also write the proposed sessions to this iCalendar file",
    )

    audit_cmd = commands.add_parser(
        "audit",
        help="check many courses and summarize, for auditors",
        description="Check every course of JSON Lines or CSV files (gzip or not; - for "
        "standard input) against a protocol, streamed, and summarize per rule. Exit 0 when "
        "no course has an error finding and no record was rejected, 1 when one has or was, "
        "2 when the audit could not be made.",
    )
    audit_cmd.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="a JSON Lines file (one course per line), a CSV session table (.csv), or -",
    )
    audit_cmd.add_argument(
        "--as-of",
        type=_as_of,
        metavar="DATE|DATETIME",
        help="evaluate courses in progress, as for check: the same moment for every course, "
        "or 'today' (each course's local date when the audit starts)",
    )
    audit_cmd.add_argument(
        "--jobs", type=_jobs, default=1, metavar="N", help="worker processes (default: 1)"
    )
    audit_cmd.add_argument(
        "--findings",
        metavar="OUT.jsonl|OUT.csv",
        help="write every finding, one per line, in input order",
    )
    audit_cmd.add_argument("--html", metavar="REPORT.html", help="write the HTML report")
    audit_cmd.add_argument(
        "--sample",
        type=_sample,
        default=50,
        metavar="N",
        help="courses with an error finding drawn in the HTML report (default: 50)",
    )
    audit_cmd.add_argument(
        "--docs-url",
        type=_docs_url,
        metavar="URL",
        help="the documentation's base URL (http or https), for the report's rule links to "
        "its rules page; without it they point to the rules stated in the report itself",
    )
    _add_format(audit_cmd, what="summary format")
    _add_protocol(audit_cmd)

    explain_cmd = commands.add_parser(
        "explain",
        help="print what one rule requires, for auditors",
        description="Print the auditor text of one rule of a protocol: its requirement with "
        "parameters, rationale, source and two worked examples.",
    )
    explain_cmd.add_argument(
        "rule_id", metavar="RULE_ID", help="a rule id, such as session-spacing"
    )
    _add_format(
        explain_cmd,
        ("text", "markdown"),
        "plain text for a terminal, or the Markdown of the rules page",
    )
    _add_protocol(explain_cmd)

    rules = commands.add_parser(
        "rules",
        help="list a protocol's rules",
        description="List the rules of a protocol (kap-standard v1 by default) with their "
        "parameters and statements.",
    )
    _add_format(rules)
    rules.add_argument(
        "--plugins",
        action="store_true",
        help="list the installed rule plugins (entry point group kaprules.rules) and the "
        "distributions they come from, instead of a protocol's rules",
    )
    _add_protocol(rules)

    protocol = commands.add_parser(
        "protocol",
        help="validate or show protocol files",
        description="Validate a clinic's protocol file, or show a protocol as a file.",
    )
    actions = protocol.add_subparsers(dest="action", metavar="ACTION", required=True)
    validate = actions.add_parser(
        "validate",
        help="check a protocol file and summarize it",
        description="Read a protocol file (.toml or .json); list every problem with its path, "
        "or summarize the protocol. Exit 0 when valid, 2 when not.",
    )
    validate.add_argument("file", metavar="FILE", help="the protocol file")
    show = actions.add_parser(
        "show",
        help="print a protocol as a protocol file",
        description="Print a built-in protocol or a protocol file as TOML or JSON, the start "
        "of a clinic's own file.",
    )
    show.add_argument("spec", metavar="NAME@VERSION|FILE", help="such as kap-standard@2")
    _add_format(show, ("toml", "json"))
    return parser


def _local_dates(course: Course) -> dict[str, str]:
    return {s.id or "": course.local(s.start).date().isoformat() for s in course.sessions}


def _finding_line(finding: Finding, dates: dict[str, str]) -> str:
    where = ", ".join(f"{shown_id(s)} {dates.get(s, '?')}" for s in finding.sessions) or "course"
    return f"{finding.severity.value:<7} {finding.rule:<16} [{where}] {finding.message}"


def _counts(report: Report) -> dict[str, int]:
    counts = dict.fromkeys(("error", "warning", "info"), 0)
    for f in report.findings:
        counts[f.severity.value] += 1
    return counts


def _summary(report: Report, course: Course) -> str:
    counts = _counts(report)
    verdict = "OK" if report.ok else "FAIL"
    as_of = f", as of {report.as_of}" if report.as_of else ""
    found = ", ".join(
        plural(counts[severity], noun)
        for severity, noun in (("error", "error"), ("warning", "warning"), ("info", "info finding"))
    )
    return (
        f"{verdict}: {found} in {plural(len(course.sessions), 'session')}; "
        f"protocol {report.protocol_id} v{report.protocol_version}, "
        f"timezone {course.timezone}{as_of}"
    )


def _protocol(args: argparse.Namespace) -> Protocol:
    return resolve_protocol(args.protocol)


def _source(args: argparse.Namespace) -> str:
    return "standard input" if args.path == "-" else shown_id(args.path, 200)


def _course(args: argparse.Namespace) -> Course:
    limit: int = args.max_input_bytes
    try:
        if args.path == "-":
            if sys.stdin is None:  # started with stdin closed (<&-)
                raise _UsageError("standard input is closed; give a file instead of -")
            data = sys.stdin.buffer.read(limit + 1)
        else:
            with open(args.path, "rb") as handle:
                data = handle.read(limit + 1)
    except (OSError, ValueError) as exc:
        why = getattr(exc, "strerror", None) or "not a readable file"
        raise _UsageError(f"cannot read {_source(args)}: {why}") from None
    if len(data) > limit:
        raise _UsageError(
            f"{_source(args)} holds more than {limit} bytes, the input limit; raise it with "
            "--max-input-bytes"
        )
    try:
        return parse_course(data)
    except InputError as exc:
        raise _Failure(f"invalid course in {_source(args)}", exc.problems) from None


def _json_out(data: object, out: TextIO) -> None:
    json.dump(data, out, indent=2, ensure_ascii=False)
    out.write("\n")


def _check(args: argparse.Namespace, out: TextIO) -> int:
    protocol = _protocol(args)
    course = _course(args)
    moment = _moment(args.as_of, course)
    report = evaluate(course, protocol, as_of=moment)
    if args.format == "json":
        data = report.to_dict()
        counts = _counts(report)
        timeline = Timeline.of(course, moment)
        # What the text summary line says, as data.
        data["summary"] = {
            "timezone": course.timezone,
            "sessions": len(course.sessions),
            "errors": counts["error"],
            "warnings": counts["warning"],
            "info": counts["info"],
            "planned": [t.id for t in timeline.sessions if t.planned],
        }
        _json_out(data, out)
    else:
        dates = _local_dates(course)
        for finding in report.findings:
            out.write(_finding_line(finding, dates) + "\n")
        out.write(_summary(report, course) + "\n")
    return EXIT_OK if report.ok else EXIT_FINDINGS


def _forecast_lines(f: Forecast) -> list[str]:
    from kaprules.forecasting import HORIZON_DAYS, SeriesStatus

    progress = f"{f.inductions} of {f.count} sessions"
    upcoming = f.next
    if f.status is SeriesStatus.CANNOT_COMPLETE:
        if f.window_closes is None:
            return [
                f"Series cannot be completed: {progress}.",
                f"No next session: no first day within {HORIZON_DAYS} days fits the series.",
            ]
        return [
            f"Series cannot be completed: {progress}; its window closed for them on "
            f"{f.window_closes.isoformat()}.",
            f"No next session: the remaining {f.count - f.inductions} no longer fit in the window.",
        ]
    status = {
        SeriesStatus.NOT_STARTED: "Series not started",
        SeriesStatus.IN_PROGRESS: "Series in progress",
        SeriesStatus.COMPLETE: "Series complete",
    }[f.status]
    first = f"{status}: {progress}."
    due = f.integration
    meetings = (
        []
        if due is None
        else [
            f"Integration: {due.needed} {'meeting' if due.needed == 1 else 'meetings'} "
            f"still needed by {due.by.isoformat()}."
        ]
    )
    if upcoming is None:
        return [first, *meetings, "No next session: the protocol has no booster to come."]
    until = f" to {upcoming.latest.isoformat()}" if upcoming.latest is not None else ""
    return [
        first,
        *meetings,
        f"Next {upcoming.kind.value} session: from {upcoming.bookable_from.isoformat()}{until}.",
    ]


def _next(args: argparse.Namespace, out: TextIO) -> int:
    protocol = _protocol(args)
    course = _course(args)
    moment = _moment(args.as_of, course)
    assert moment is not None  # --as-of is required
    from kaprules.forecasting import forecast

    # Without a calendar option every day is open: the forecast of the protocol alone.
    chosen = (args.calendar, args.open, args.closed, args.at, args.holidays, args.subdivision)
    calendar = None if all(v is None for v in chosen) else _calendar(args)
    answer = forecast(course, moment, protocol, calendar)
    if args.format == "json":
        _json_out(answer.to_dict(), out)
    else:
        out.write("\n".join(_forecast_lines(answer)) + "\n")
    return EXIT_OK


def _calendar(args: argparse.Namespace) -> ClinicCalendar:
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
        raise _Failure(f"invalid calendar{where}", exc.problems) from None


def _plan_lines(result: Plan) -> list[str]:
    lines = [f"{result.status.value}: {result.reason}."]
    for s in result.sessions:
        number = (
            f"{s.number} of {result.forecast.count}" if s.kind == "induction" else f"{s.number}"
        )
        lines.append(
            f"  {s.id:<10} {s.kind} {number:<8} {_time.format_local(s.start)} ({s.start:%a})"
        )
    return lines


_ICS_HINT = "--ics needs the icalendar package: pip install 'kaprules[calendar]'"


def _plan(args: argparse.Namespace, out: TextIO) -> int:
    if args.ics is not None:
        check_paths([("--ics", args.ics)], [args.path, args.calendar, args.protocol])
        _need("icalendar", _ICS_HINT)
    protocol = _protocol(args)
    calendar = _calendar(args)
    course = _course(args)
    moment = _moment(args.as_of, course)
    assert moment is not None  # --as-of is required
    from kaprules.planning import plan

    result = plan(course, moment, calendar, protocol)
    # A plan without sessions writes no calendar file: an empty one would replace the
    # target's events with nothing, and look like a plan.
    unwritten = None
    if args.ics is not None:
        try:
            data = result.to_ical()
        except ImportError:
            raise _UsageError(_ICS_HINT) from None
        if not result.sessions:
            unwritten = f"no calendar file written to {shown_id(args.ics, 200)}: " + (
                "the series cannot be completed"
                if result.status == "cannot-complete"
                else "no session is proposed"
            )
        else:
            with Outputs() as outputs:
                handle = outputs.open_binary(args.ics)
                with outputs.writing(args.ics):
                    handle.write(data)
                outputs.commit()
    if args.format == "json":
        _json_out(result.to_dict(), out)
        if unwritten is not None:
            _complain(f"note: {unwritten}")
    else:
        out.write("\n".join(_plan_lines(result)) + "\n")
        if unwritten is not None:
            out.write(f"{unwritten}\n")
        elif args.ics is not None:
            events = len(result.sessions)
            out.write(
                f"calendar file: {shown_id(args.ics, 200)} "
                f"({events} event{'' if events == 1 else 's'})\n"
            )
    return EXIT_OK


def _rules(args: argparse.Namespace, out: TextIO) -> int:
    if args.plugins:
        if getattr(args, "_given_protocol", False):
            raise _UsageError(
                "--plugins lists the installed rule plugins; give it without --protocol"
            )
        return _plugins(args, out)
    protocol = _protocol(args)
    if args.format == "json":
        data = protocol.to_dict()
        data["rules"] = [
            {**entry, "title": rule.title, "statement": rule.statement}
            for entry, rule in zip(data["rules"], protocol.rules, strict=True)
        ]
        _json_out(data, out)
        return EXIT_OK
    out.write(_identity(protocol) + "\n")
    for rule in protocol.rules:
        params = ", ".join(f"{k}={v}" for k, v in rule.parameters().items()) or "no parameters"
        out.write(f"\n{rule.id} ({Severity(rule.severity).value}): {rule.title}\n")
        out.write(f"  parameters: {params}\n")
        out.write(f"  {rule.statement}\n")
    return EXIT_OK


def _plugins(args: argparse.Namespace, out: TextIO) -> int:
    from kaprules import plugins
    from kaprules.rules import BUILTIN_RULES

    entries = []
    for plugin in plugins.installed_plugins():
        entry: dict[str, Any] = {**plugin.to_dict(), "title": None, "problem": None}
        try:
            title = getattr(plugin.load(), "title", None)
            entry["title"] = title if isinstance(title, str) else None
        except ProtocolError as exc:
            entry["problem"] = exc.problems[0].what
        if plugin.name in BUILTIN_RULES:
            entry["problem"] = f"not used: kaprules' own rule {plugin.name} has this id"
        entries.append(entry)
    unreadable = list(plugins.unreadable_distributions())
    if args.format == "json":
        data = {"group": plugins.ENTRY_POINT_GROUP, "plugins": entries, "unreadable": unreadable}
        _json_out(data, out)
        return EXIT_OK
    for line in unreadable:
        out.write(f"entry points cannot be read, skipped: {_one_line(line)}\n")
    if not entries:
        out.write(
            f"No rule plugins are installed (entry point group {plugins.ENTRY_POINT_GROUP}).\n"
        )
        return EXIT_OK
    out.write(
        f"{plural(len(entries), 'rule plugin')} installed "
        f"(entry point group {plugins.ENTRY_POINT_GROUP}):\n"
    )
    for entry in entries:
        origin = "unknown distribution"
        if entry["distribution"] is not None:
            origin = f"{entry['distribution']} {entry['version'] or '(no version)'}"
        where = f"{shown_id(entry['value'], 200)} ({shown_id(origin, 200)})"
        out.write(f"\n{shown_id(entry['name'])}: {where}\n")
        if entry["problem"] is not None:
            out.write(f"  {_one_line(entry['problem'])}\n")
        elif entry["title"] is not None:
            out.write(f"  {shown_id(entry['title'], 200)}\n")
    return EXIT_OK


def _explain(args: argparse.Namespace, out: TextIO) -> int:
    protocol = _protocol(args)
    try:
        rule = protocol.rule(args.rule_id)
    except ProtocolError as exc:
        raise _UsageError(str(exc)) from None
    from kaprules.explanation import explain

    out.write(explain(rule, format=args.format))
    return EXIT_OK


def _identity(protocol: Protocol) -> str:
    text = f"{protocol.id} version {protocol.version}"
    if protocol.derived_from is not None:
        text += f" (derived from {protocol.derived_from[0]} version {protocol.derived_from[1]})"
    return text


def _protocol_command(args: argparse.Namespace, out: TextIO) -> int:
    if args.action == "validate":
        protocol = load_protocol(args.file)
        out.write(f"valid: {_identity(protocol)}, {len(protocol.rules)} rules\n")
        for rule in protocol.rules:
            out.write(f"  {rule.id} ({Severity(rule.severity).value})\n")
        return EXIT_OK
    protocol = resolve_protocol(args.spec)
    if args.format == "json":
        _json_out(protocol.to_dict(), out)
    else:
        out.write(protocol.to_toml())
    return EXIT_OK


def _audit(args: argparse.Namespace, out: TextIO) -> int:
    protocol = _protocol(args)
    if args.inputs.count("-") > 1:
        raise _UsageError("standard input (-) can be read once")
    if "-" in args.inputs and sys.stdin is None:
        raise _UsageError("standard input is closed; give a file instead of -")
    wanted = [(o, p) for o, p in (("--findings", args.findings), ("--html", args.html)) if p]
    # Before any work: a large audit is not run to be lost at the end.
    check_paths(wanted, [*args.inputs, args.protocol])
    if args.html:
        _need("jinja2", "--html needs the jinja2 package: pip install 'kaprules[audit]'")
    with Outputs() as outputs:
        # Made now, so an unwritable directory stops the run before it starts.
        findings_out = outputs.open(args.findings) if args.findings else None
        html_out = outputs.open(args.html) if args.html else None
        done = _audit_run(args, protocol, findings_out, outputs)
        if html_out is not None:
            with outputs.writing(args.html):
                html_out.write(done.page)
        outputs.commit()
    data, seconds = done.data, done.seconds
    if args.format == "json":
        _json_out(data, out)
    else:
        out.write("\n".join(_audit_lines(data)) + "\n")
    if sys.stderr is not None and sys.stderr.isatty():
        rate = data["lines_read"] / seconds if seconds > 0 else 0.0
        sys.stderr.write(
            f"kaprules: audited {data['lines_read']} records in {seconds:.1f} s "
            f"({rate:.0f} a second)\n"
        )
    return done.code


class _Audited(NamedTuple):
    code: int
    data: dict[str, Any]
    page: str
    seconds: float


def _audit_run(
    args: argparse.Namespace, protocol: Protocol, findings_out: TextIO | None, outputs: Outputs
) -> _Audited:
    # The audit itself: findings written as they come; the summary and the HTML page
    # returned, for the caller to write and commit.
    import time

    from kaprules.auditing import audit, read_records

    started = time.time()
    several = len(args.inputs) > 1
    records = read_records(args.inputs)
    sample = args.sample if args.html else 0
    try:
        run = audit(records, protocol, as_of=args.as_of, jobs=args.jobs, sample=sample)
    except InputError as exc:
        raise _Failure("cannot audit", exc.problems) from None
    csv_out = None
    if findings_out is not None and args.findings.lower().endswith(".csv"):
        import csv

        # Rows end in "\r\n" for the writer, so that it quotes a cell holding a lone "\r"
        # (with "\n" it would not, and the cell would break its row); written with "\n".
        csv_out = csv.writer(_NewlineRows(findings_out), lineterminator="\r\n")
        with outputs.writing(args.findings):
            head = ["input"] if several else []
            csv_out.writerow([*head, *_FINDINGS_COLUMNS])
    progress = _progress()
    try:
        for result in run:
            if progress is not None:
                progress.update(1)
            if findings_out is not None and (result.findings or result.rejected is not None):
                try:  # not a context manager: this runs once a course
                    _write_findings(result, findings_out, csv_out, several)
                except OSError as exc:
                    raise write_error(args.findings, exc) from None
    except InputError as exc:
        raise _Failure("cannot audit", exc.problems) from None
    finally:
        if progress is not None:
            progress.close()
    summary = run.summary
    seconds = time.time() - started
    data = summary.to_dict(sources=several)
    page = ""
    if args.html:
        from kaprules.audit_html import render

        page = render(
            data,
            run.samples,
            protocol=protocol,
            inputs=[shown_id(name, 200) for name in args.inputs],
            started=dt.datetime.fromtimestamp(started, dt.UTC).isoformat(timespec="seconds"),
            seconds=seconds,
            docs_url=args.docs_url or "",
            several_inputs=several,
            samples_capped=run.samples_capped,
        )
    return _Audited(EXIT_OK if summary.ok else EXIT_FINDINGS, data, page, seconds)


def _need(module: str, hint: str) -> None:
    # An optional extra, looked for before any work (not imported: that costs time).
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise _UsageError(hint)


def _progress() -> Any:
    # A progress bar on a terminal only; nothing extra when stderr is a file or a pipe.
    if sys.stderr is None or not sys.stderr.isatty():
        return None
    try:
        import tqdm  # type: ignore[import-untyped]
    except ImportError:
        return None
    # No monitor thread: worker processes are forked while the bar is shown.
    tqdm.tqdm.monitor_interval = 0
    return tqdm.tqdm(unit=" courses", file=sys.stderr, dynamic_ncols=True, leave=False)


# What json.dumps(..., ensure_ascii=False) writes for a string, without its per-call cost
# (it builds an encoder each time): a finding row is written several times faster.
_quote: Any = json.encoder.encode_basestring


class _NewlineRows:
    """A text file that takes CSV rows ending in CR LF and writes them ending in LF."""

    def __init__(self, handle: TextIO) -> None:
        self._handle = handle

    def write(self, row: str) -> int:
        return self._handle.write(row[:-2] + "\n")


# What a spreadsheet reads as the start of a formula (OWASP's list for CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> object:
    """A findings CSV cell: text a spreadsheet would run as a formula gets a leading ``'``."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


# The findings CSV's columns (after ``input`` for several inputs): a finding fills all but
# ``rejected``; a rejected record fills ``line``, ``course`` (when known) and ``rejected``.
_FINDINGS_COLUMNS = ("line", "course", "rule", "severity", "sessions", "message", "rejected")


def _write_findings(result: Any, handle: TextIO, csv_out: Any, several: bool) -> None:
    if result.rejected is not None:
        # A rejected record is a row too: the findings file lists every problem record.
        if csv_out is not None:
            row = [result.source] if several else []
            row += [result.line, result.course_id, "", "", "", "", result.rejected]
            csv_out.writerow([_cell(value) for value in row])
            return
        entry: dict[str, Any] = {"input": result.source} if several else {}
        entry |= {"line": result.line, "course": result.course_id, "rejected": result.rejected}
        handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
        return
    if csv_out is not None:
        for finding in result.findings:
            row = [result.source] if several else []
            row += [result.line, result.course_id, finding["rule"], finding["severity"]]
            row += [" ".join(finding["sessions"]), finding["message"], ""]
            csv_out.writerow([_cell(value) for value in row])
        return
    if not _fast.ENABLED:
        for finding in result.findings:
            entry = {"input": result.source} if several else {}
            entry |= {"line": result.line, "course": result.course_id, "rule": finding["rule"]}
            entry |= {"severity": finding["severity"], "sessions": list(finding["sessions"])}
            entry["message"] = finding["message"]
            handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
        return
    # The text of json.dumps({"input"?, "line", "course", "rule", "severity", "sessions",
    # "message"}, ensure_ascii=False), one line per finding.
    head = f'{{"input": {_quote(result.source)}, ' if several else "{"
    course = "null" if result.course_id is None else _quote(result.course_id)
    head += f'"line": {int(result.line)}, "course": {course}, "rule": '
    for finding in result.findings:
        sessions = ", ".join(map(_quote, finding["sessions"]))
        handle.write(
            f'{head}{_quote(finding["rule"])}, "severity": {_quote(finding["severity"])}, '
            f'"sessions": [{sessions}], "message": {_quote(finding["message"])}}}\n'
        )


def _audit_lines(data: dict[str, Any]) -> list[str]:
    lines = [
        f"Audit: {plural(data['lines_read'], 'record')} read, "
        f"{plural(data['courses'], 'course')} evaluated: {data['compliant']} compliant, "
        f"{data['with_errors']} with an error finding; "
        f"{plural(data['rejected_count'], 'record')} rejected.",
        f"Protocol {data['protocol']['id']} version {data['protocol']['version']}, kaprules "
        f"{data['kaprules_version']}, as of {data['as_of'] or '(final records)'}.",
        f"Input SHA-256: {data['input_sha256']}",
        "",
        f"{'rule':<24} {'courses':>8} {'findings':>9} {'share':>7}",
    ]
    for rule_id, counts in data["rules"].items():
        lines.append(
            f"{rule_id:<24} {counts['courses']:>8} {counts['findings']:>9} "
            f"{100 * counts['share']:>6.1f}%"
        )
    if data["rejected_count"]:
        lines += ["", "Rejected records:"]
        for item in data["rejected"][:20]:
            where = (
                f"{shown_id(item['input'], 200)} line {item['line']}"
                if "input" in item
                else f"line {item['line']}"
            )
            lines.append(f"  {where}: {_one_line(item['reason'])}")
        more = data["rejected_count"] - min(len(data["rejected"]), 20)
        if more > 0:
            listed = len(data["rejected"])
            lines.append(f"  ... and {more} more (--format json lists the first {listed})")
    return lines


_COMMANDS = {
    "audit": _audit,
    "check": _check,
    "next": _next,
    "plan": _plan,
    "explain": _explain,
    "rules": _rules,
    "protocol": _protocol_command,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``kaprules`` command.

    Output is written only once a command has its whole answer, and output files are
    renamed into place only when the run succeeded, so a failure never leaves half a
    report. Every failure is exit 2: a line on stderr naming it (one more line per
    problem of the input), and with ``--format json`` a JSON error object on stdout.
    Ctrl-C (SIGINT) is exit 130, SIGTERM exit 143 and SIGHUP exit 129, each with one line
    on stderr; the output files are then left as they were.

    Args:
        argv: The arguments after the program name; ``sys.argv[1:]`` when None.

    Returns:
        The exit status: 0, 1, 2, 129, 130 or 143.
    """
    with _signals():
        try:
            return _main(argv)
        except (_Signalled, KeyboardInterrupt) as exc:
            signum: int = exc.signum if isinstance(exc, _Signalled) else signal.SIGINT
            _complain(_STOPPED[signum])
            return EXIT_SIGNAL + signum


EXIT_SIGNAL = 128
"""Added to the number of the signal that stopped a run: 130 for SIGINT, 143 for SIGTERM,
129 for SIGHUP."""


class _Signalled(BaseException):
    # Not an Exception: no handler meant for errors may swallow it.
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _on_signal(signum: int, frame: object) -> None:
    # Once: a second Ctrl-C must not cut short the clean-up the first one started.
    for other in _SIGNALS:
        signal.signal(other, signal.SIG_IGN)
    raise _Signalled(signum)


_SIGNALS = STOP_SIGNALS
# The one line said for each: as a shell reports a job stopped by it.
_STOPPED: dict[int, str] = {
    getattr(signal, name): what
    for name, what in (("SIGINT", "interrupted"), ("SIGTERM", "terminated"), ("SIGHUP", "hung up"))
    if hasattr(signal, name)
}


@contextlib.contextmanager
def _signals() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP raised as `_Signalled` while a command runs, then restored.

    A signal ignored when kaprules started (a background job's SIGINT, nohup) stays ignored.
    """
    previous: dict[int, Any] = {}
    try:
        for number in _SIGNALS:
            if signal.getsignal(number) is not signal.SIG_IGN:
                previous[number] = signal.signal(number, _on_signal)
    except ValueError:  # not the main thread: signals stay the caller's
        pass
    try:
        yield
    finally:
        for code, handler in previous.items():
            signal.signal(code, handler)


def _main(argv: Sequence[str] | None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    json_wanted = _wants_json(arguments)
    try:
        if not arguments:
            _emit(parser.format_help(), sys.stdout, as_json=False)
            return EXIT_USAGE
        args = parser.parse_args(arguments)
        if sys.stdout is None:  # started with stdout closed (>&-): no report can be written
            raise _UsageError("standard output is closed; nothing can be written")
        buffer = io.StringIO()
        code = _COMMANDS[args.command](args, buffer)
        _emit(buffer.getvalue(), sys.stdout, as_json=json_wanted)
        return code
    except _UsageError as exc:
        failure = _Failure(str(exc))
    except _Failure as exc:
        failure = exc
    except OutputError as exc:
        failure = _Failure(str(exc))
    except ProtocolError as exc:
        failure = _Failure("invalid protocol", exc.problems)
    except InputError as exc:
        failure = _Failure("invalid input", exc.problems)
    except KapRulesError as exc:
        failure = _Failure("kaprules could not go on", exc.problems)
    except BrokenPipeError:
        # The reader went away (| head); nothing left to say.
        _quiet_stdout()
        return EXIT_USAGE
    except OSError as exc:
        failure = _Failure(f"cannot write the output: {exc.strerror or 'output error'}")
    except RecursionError:
        failure = _Failure("the input is nested too deeply")
    except MemoryError:
        failure = _Failure("out of memory; the input is too large")
    except Exception as exc:  # the promise: never a traceback, never exit 1
        failure = _Failure(
            f"internal error ({type(exc).__name__}) in kaprules {__version__}; please report "
            "it with the command that caused it"
        )
    for line in failure.lines():
        _complain(line)
    if json_wanted:
        # When stdout is gone too, stderr has said it all.
        with contextlib.suppress(Exception):
            _emit(json.dumps(failure.to_dict(), indent=2) + "\n", sys.stdout, as_json=True)
    return EXIT_USAGE


def _wants_json(arguments: list[str]) -> bool:
    # Known before parsing, so that a usage error can answer in JSON too.
    for index, argument in enumerate(arguments):
        if argument == "--format=json":
            return True
        if argument == "--format" and arguments[index + 1 : index + 2] == ["json"]:
            return True
    return False


def _emit(text: str, stream: TextIO | None, *, as_json: bool) -> None:
    """Write ``text`` whole, in what ``stream`` can encode."""
    if stream is None:
        raise _UsageError("standard output is closed; nothing can be written")
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


_ASCII = re.compile(r"[^\x00-\x7f]")


def _quiet_stdout() -> None:
    # Python would report the broken pipe again when it flushes stdout at exit.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, AttributeError, ValueError):
        pass


def _complain(message: str) -> None:
    if sys.stderr is None:  # 2>&- leaves nowhere to say it
        return
    try:
        text = "kaprules: " + message if not message.startswith("  ") else message
        _emit(text + "\n", sys.stderr, as_json=False)
    except (OSError, ValueError):
        pass
