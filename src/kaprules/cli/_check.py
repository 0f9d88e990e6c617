"""kaprules check: a course against a protocol."""

from __future__ import annotations

import argparse
from typing import TextIO

from kaprules._stamps import protocol_stamp, stamp_fields
from kaprules._text import file_name
from kaprules.cli._reading import course_read, moment_of, protocol_and_files, protocol_of
from kaprules.cli._render import course_summary, finding_counts, finding_line, json_out, local_dates
from kaprules.cli._status import EXIT_FINDINGS, EXIT_OK
from kaprules.evaluation import evaluate
from kaprules.timeline import Timeline


def check_command(args: argparse.Namespace, out: TextIO) -> int:
    # The stamps (and hashlib) only for JSON: `check` in text starts as fast as it can.
    as_json = args.format == "json"
    protocol, files = protocol_and_files(args) if as_json else (protocol_of(args), [])
    course, read = course_read(args)
    moment = moment_of(args.as_of, course)
    report = evaluate(course, protocol, as_of=moment)
    if args.format == "json":
        data = report.to_dict()
        counts = finding_counts(report)
        timeline = Timeline.of(course, moment)
        # What the text summary line says, as data.
        data["summary"] = {
            "timezone": course.timezone,
            "sessions": len(course.sessions),
            "errors": counts["error"],
            "warnings": counts["warning"],
            "info": counts["info"],
            "waived": counts["waived"],
            "planned": [t.id for t in timeline.sessions if t.planned],
        }
        # What decided the result: the protocol as an audit's summary stamps it, the input.
        data["stamps"] = {
            "protocol": protocol_stamp(**stamp_fields(protocol), files=files),
            "input": {"name": file_name(args.path), "sha256": _sha256(read)},
        }
        json_out(data, out)
    else:
        dates = local_dates(course)
        for finding in report.findings:
            out.write(finding_line(finding, dates) + "\n")
        out.write(course_summary(report, course) + "\n")
    return EXIT_OK if report.ok else EXIT_FINDINGS


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()
