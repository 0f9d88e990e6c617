"""The command-line parser: each option defined once, its values checked as they are read."""

from __future__ import annotations

import argparse
import datetime as dt
import re
from typing import Any, NoReturn

from kaprules import _time
from kaprules._moments import TODAY
from kaprules._text import web_url
from kaprules._version import __version__
from kaprules.cli._status import UsageError
from kaprules.clinic_calendar import WEEKDAYS, Closure, weekday_hint
from kaprules.course_files import DATETIME_PATTERN
from kaprules.errors import InputError, echo
from kaprules.loading import MAX_FILE_BYTES
from kaprules.protocol import STANDARD

DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


DATETIME = re.compile(DATETIME_PATTERN)


class Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Every single-valued option refuses a second value (see _Once).
        self.register("action", None, _Once)
        self.register("action", "store", _Once)

    # One line on stderr and exit 2, instead of argparse's usage block.
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


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


_AS_OF_HELP = (
    "YYYY-MM-DD (a local date in the course timezone), an ISO date-time with offset, or "
    "'today' (today's date in the course timezone)"
)


def as_of(text: str) -> dt.date | dt.datetime | str:
    if text == TODAY:
        return TODAY  # resolved once the course, and so its timezone, is read
    value: dt.date | dt.datetime | None = None
    try:
        if DATE.fullmatch(text):
            value = dt.date.fromisoformat(text)
        elif DATETIME.fullmatch(text):
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


Moment = dt.date | dt.datetime | None


def _weekdays(text: str) -> tuple[str, ...]:
    parts = [part.strip() for part in text.split(",")]
    names = tuple(part.lower() for part in parts)
    wrong = [part for part in parts if part.lower() not in WEEKDAYS]
    if wrong:
        # The first wrong name, with the nearest weekday: one line, as every usage error.
        raise argparse.ArgumentTypeError(
            f"{echo(wrong[0])} is not a weekday name (mon to sun, in a list such as "
            f"mon,wed,fri){weekday_hint(wrong[0])}"
        )
    return names


def _closed_date(text: str) -> dt.date:
    if not DATE.fullmatch(text):
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
    if not (DATE.fullmatch(first) and DATE.fullmatch(last)):
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


DEFAULT_PROTOCOL = f"{STANDARD.id}@{STANDARD.version}"


def _add_protocol(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--protocol",
        metavar="NAME@VERSION|FILE",
        action="append",
        help="the protocol: a built-in such as kap-standard@2, or a protocol file (.toml or "
        f".json); default: {DEFAULT_PROTOCOL}. Give it again for each version of one "
        "protocol (v1.toml, v2.toml): each session is judged by the version in force on its "
        "local date",
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
    url = web_url(text)
    if url is None:
        raise argparse.ArgumentTypeError(
            f"{echo(text)} is not an http(s) URL such as https://example.org/kaprules/"
        )
    return url


def _sample(text: str) -> int:
    if not text.isdigit() or int(text) > 100_000:
        raise argparse.ArgumentTypeError(f"{echo(text)} is not a number from 0 to 100000")
    return int(text)


def _add_scheduling(command: argparse.ArgumentParser) -> None:
    _add_input(command)
    command.add_argument(
        "--as-of",
        type=as_of,
        required=True,
        metavar="DATE|DATETIME|today",
        help=f"the moment of the answer: {_AS_OF_HELP}",
    )
    _add_format(command)
    _add_protocol(command)


def add_calendar(command: argparse.ArgumentParser) -> None:
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
    parser = Parser(
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
        type=as_of,
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
    add_calendar(next_cmd)

    plan_cmd = commands.add_parser(
        "plan",
        help="propose the rest of a series on the days the clinic is open",
        description="Propose the remaining sessions of a course on open days of the clinic's "
        "calendar, earliest first, from the day after --as-of. Exit 0 for every answer, "
        "cannot-complete included.",
    )
    _add_scheduling(plan_cmd)
    add_calendar(plan_cmd)
    plan_cmd.add_argument(
        "--ics",
        metavar="OUT.ics",
        help="also write the proposed sessions to this iCalendar file",
    )
    plan_cmd.add_argument(
        "--until",
        type=_closed_date,
        metavar="YYYY-MM-DD",
        help="phased protocols only: the last local date to plan for (default: the end of "
        "the last phase, or 12 weeks after --as-of when it is open-ended)",
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
        type=as_of,
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
    audit_cmd.add_argument(
        "--engine",
        choices=("auto", "columnar", "records"),
        default="auto",
        help="columnar: read JSON Lines in chunks as columns (needs pip install '.[columnar]'); "
        "records: course by course; auto (default): columnar when it can. The outputs are "
        "the same",
    )
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
    explain_cmd.add_argument(
        "--as-of",
        type=as_of,
        metavar="DATE|DATETIME|today",
        help="with several versions of a protocol: explain the version in force on this local "
        "date (default: the latest)",
    )

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
    validate.add_argument(
        "file",
        metavar="FILE",
        nargs="+",
        help="the protocol file; several files (or one of [[versions]]) are the versions of "
        "one protocol, checked together",
    )
    show = actions.add_parser(
        "show",
        help="print a protocol as a protocol file",
        description="Print a built-in protocol or a protocol file as TOML or JSON, the start "
        "of a clinic's own file.",
    )
    show.add_argument("spec", metavar="NAME@VERSION|FILE", help="such as kap-standard@2")
    _add_format(show, ("toml", "json"))
    _add_serve(commands)
    return parser


def _add_serve(commands: Any) -> None:
    serve = commands.add_parser(
        "serve",
        help="serve a CDS Hooks appointment-book service (needs the serve extra)",
        description="Serve a CDS Hooks 2.0 appointment-book service for each --protocol "
        "(versions of one protocol make one service), answering with cards whether a "
        "proposed appointment may be booked. Every call needs a JWT signed by an issuer of "
        "--issuers. Runs until SIGINT or SIGTERM.",
    )
    serve.add_argument(
        "--protocol",
        metavar="NAME@VERSION|FILE",
        action="append",
        help="a protocol to serve, a built-in such as kap-standard@2 or a protocol file; "
        f"repeat it for each (default: {DEFAULT_PROTOCOL}); files of one protocol's "
        "versions make one service",
    )
    add_calendar(serve)
    serve.add_argument(
        "--issuers",
        required=True,
        metavar="ISSUERS.toml",
        help="the EHRs whose tokens are accepted: [[issuers]] tables with iss and jwks (a "
        "JWK Set file) or jku (its https URL)",
    )
    serve.add_argument("--host", default="127.0.0.1", help="the address to listen on")
    serve.add_argument(
        "--port", type=_port, default=8080, help="the port to listen on (default: 8080)"
    )
    serve.add_argument(
        "--url",
        type=_docs_url,
        metavar="BASE",
        help="the base URL the EHR calls, which tokens' aud must start with (default: "
        "http://HOST:PORT)",
    )
    serve.add_argument(
        "--timezone",
        type=_zone,
        metavar="ZONE",
        help="the clinic's IANA zone (default: the Appointments' timezone extension)",
    )
    serve.add_argument(
        "--feedback-log",
        metavar="FILE.jsonl",
        help="append accepted suggestions and overrides to this JSON Lines file",
    )
    serve.add_argument(
        "--cors",
        action="append",
        metavar="ORIGIN",
        help="an origin a browser-based EHR may call from, such as https://ehr.example.org; "
        "may be repeated (default: none)",
    )
    serve.add_argument(
        "--max-body-bytes",
        type=_byte_count,
        default=1024 * 1024,
        metavar="N",
        help="answer 413 to a request body larger than N bytes (default: %(default)s, 1 MiB)",
    )
    serve.add_argument(
        "--workers",
        type=_workers,
        metavar="N",
        help="serve with N worker processes (default: one per core this process may use, "
        "at most 4; 1 where there is no fork); they share the tokens seen and the cards "
        "answered through --state-dir",
    )
    serve.add_argument(
        "--state-dir",
        metavar="DIR",
        help="keep the tokens seen (replays refused) and the cards answered (for feedback) "
        "in DIR/kaprules-serve.sqlite3, shared by the workers and kept across restarts "
        "(default: memory with one worker, a temporary folder removed at exit with more)",
    )


def _workers(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise argparse.ArgumentTypeError(f"{echo(text)} is not a worker count from 1 to 64")
    return int(text)


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{echo(text)} is not a port from 1 to 65535")
    return int(text)


def _zone(text: str) -> str:
    try:
        _time.zone(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{echo(text)} is not an IANA timezone name, such as America/Denver"
        ) from None
    return text


# The loader's limit, the one constant: --max-input-bytes may raise it for a command.
MAX_INPUT_BYTES = MAX_FILE_BYTES
