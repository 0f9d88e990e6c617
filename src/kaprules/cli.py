"""The ``kaprules`` command line.

Commands: ``check`` a course file, ``explain`` one rule, list the ``rules``. Exit status:
0 when no finding is an error, 1 when one is, 2 for input that cannot be read or used and
for bad usage. Problems are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from collections.abc import Sequence
from typing import NoReturn, TextIO

from kaprules._version import __version__
from kaprules.audit import explain
from kaprules.errors import InputError, KapRulesError
from kaprules.loading import DATETIME_PATTERN, parse_course
from kaprules.model import Course
from kaprules.protocol import STANDARD, evaluate
from kaprules.report import Finding, Report

__all__ = ["EXIT_FINDINGS", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]

EXIT_OK = 0
"""No finding is an error."""
EXIT_FINDINGS = 1
"""At least one finding is an error."""
EXIT_USAGE = 2
"""The input could not be read or used, or the command line was wrong."""

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATETIME = re.compile(DATETIME_PATTERN)


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    # One line on stderr and exit 2, instead of argparse's usage block.
    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{message} (see '{self.prog} --help')")


def _as_of(text: str) -> dt.date | dt.datetime:
    try:
        if _DATE.fullmatch(text):
            return dt.date.fromisoformat(text)
        if _DATETIME.fullmatch(text):
            return dt.datetime.fromisoformat(text)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(
        f"{text[:40]!r} is neither a date YYYY-MM-DD nor an ISO date-time with an offset "
        "such as 2026-12-10T09:00:00-07:00"
    )


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser: the one definition the CLI reference is checked against.

    Returns:
        The ``kaprules`` argument parser.
    """
    parser = _Parser(
        prog="kaprules",
        description="Check KAP treatment courses against the kap-standard protocol.",
        epilog="Exit status: 0 no error finding, 1 an error finding, 2 bad input or usage.",
    )
    parser.add_argument("--version", action="version", version=f"kaprules {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    check = commands.add_parser(
        "check",
        help="check a course file against the standard protocol",
        description="Check a course (JSON) against kap-standard and list every finding.",
    )
    check.add_argument("path", metavar="PATH", help="the course JSON file, or - for standard input")
    check.add_argument(
        "--as-of",
        type=_as_of,
        metavar="DATE_OR_DATETIME",
        help="evaluate a course in progress: YYYY-MM-DD (a local date in the course timezone) "
        "or an ISO date-time with offset; later sessions count as planned",
    )
    check.add_argument(
        "--format", choices=("text", "json"), default="text", help="output format (default: text)"
    )

    explain_cmd = commands.add_parser(
        "explain",
        help="print what one rule requires, for auditors",
        description="Print the auditor text of one kap-standard rule: its requirement with "
        "parameters, rationale, source and two worked examples.",
    )
    explain_cmd.add_argument(
        "rule_id", metavar="RULE_ID", help="a rule id, such as session-spacing"
    )

    rules = commands.add_parser(
        "rules",
        help="list the standard protocol's rules",
        description="List the rules of kap-standard with their parameters and statements.",
    )
    rules.add_argument(
        "--format", choices=("text", "json"), default="text", help="output format (default: text)"
    )
    return parser


def _local_dates(course: Course) -> dict[str, str]:
    return {s.id or "": course.local(s.start).date().isoformat() for s in course.sessions}


def _finding_line(finding: Finding, dates: dict[str, str]) -> str:
    where = ", ".join(f"{s} {dates.get(s, '?')}" for s in finding.sessions) or "course"
    return f"{finding.severity.value:<7} {finding.rule:<16} [{where}] {finding.message}"


def _summary(report: Report, course: Course) -> str:
    counts = dict.fromkeys(("error", "warning", "info"), 0)
    for f in report.findings:
        counts[f.severity.value] += 1
    verdict = "OK" if report.ok else "FAIL"
    as_of = f", as of {report.as_of}" if report.as_of else ""
    return (
        f"{verdict}: {counts['error']} error(s), {counts['warning']} warning(s), "
        f"{counts['info']} info in {len(course.sessions)} session(s); "
        f"protocol {report.protocol_id} v{report.protocol_version}, "
        f"timezone {course.timezone}{as_of}"
    )


def _check(args: argparse.Namespace, out: TextIO) -> int:
    if args.path == "-":
        course = parse_course(sys.stdin.buffer.read())
    else:
        try:
            with open(args.path, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            raise _UsageError(f"cannot read {args.path}: {exc.strerror or exc}") from None
        course = parse_course(data)
    report = evaluate(course, as_of=args.as_of)
    if args.format == "json":
        json.dump(report.to_dict(), out, indent=2, ensure_ascii=False)
        out.write("\n")
    else:
        dates = _local_dates(course)
        for finding in report.findings:
            out.write(_finding_line(finding, dates) + "\n")
        out.write(_summary(report, course) + "\n")
    return EXIT_OK if report.ok else EXIT_FINDINGS


def _rules(args: argparse.Namespace, out: TextIO) -> int:
    if args.format == "json":
        data = STANDARD.to_dict()
        data["rules"] = [
            {**entry, "title": rule.title, "statement": rule.statement}
            for entry, rule in zip(STANDARD.to_dict()["rules"], STANDARD.rules, strict=True)  # type: ignore[arg-type]
        ]
        json.dump(data, out, indent=2, ensure_ascii=False)
        out.write("\n")
        return EXIT_OK
    out.write(f"{STANDARD.id} version {STANDARD.version}\n")
    for rule in STANDARD.rules:
        params = ", ".join(f"{k}={v}" for k, v in rule.parameters().items()) or "no parameters"
        out.write(f"\n{rule.id} ({rule.severity.value}): {rule.title}\n")
        out.write(f"  parameters: {params}\n")
        out.write(f"  {rule.statement}\n")
    return EXIT_OK


def _explain(args: argparse.Namespace, out: TextIO) -> int:
    out.write(explain(STANDARD.rule(args.rule_id)))
    return EXIT_OK


_COMMANDS = {"check": _check, "explain": _explain, "rules": _rules}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``kaprules`` command.

    Args:
        argv: The arguments after the program name; ``sys.argv[1:]`` when None.

    Returns:
        The exit status: 0, 1 or 2.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return _COMMANDS[args.command](args, sys.stdout)
    except _UsageError as exc:
        _complain(f"error: {exc}")
    except InputError as exc:
        source = "standard input" if args.path == "-" else args.path
        _complain(f"invalid course in {source}: {exc}")
    except KapRulesError as exc:
        _complain(f"error: {exc}")
    except BrokenPipeError:
        # The reader went away (| head); nothing left to say.
        sys.stderr.close()
    return EXIT_USAGE


def _complain(message: str) -> None:
    sys.stderr.write("kaprules: " + " ".join(message.split()) + "\n")
