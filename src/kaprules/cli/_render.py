"""What the commands write: findings, summaries, forecasts, plans and audit rows."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, TextIO

from kaprules import _time
from kaprules._text import json_text
from kaprules._words import plural
from kaprules.cli._status import one_line
from kaprules.errors import shown_id
from kaprules.model import Course
from kaprules.protocol import Protocol
from kaprules.report import Finding, Report

if TYPE_CHECKING:
    from kaprules.forecasting import Forecast
    from kaprules.planning import Plan


def local_dates(course: Course) -> dict[str, str]:
    return {s.id or "": course.local(s.start).date().isoformat() for s in course.sessions}


def finding_line(finding: Finding, dates: dict[str, str]) -> str:
    # The rule and message may be a plugin's: a line break or an escape sequence in them
    # must not forge a finding line or drive the terminal.
    where = ", ".join(f"{shown_id(s)} {dates.get(s, '?')}" for s in finding.sessions) or "course"
    rule, message = one_line(finding.rule), one_line(finding.message)
    line = f"{finding.severity.value:<7} {rule:<16} [{where}] {message}"
    waiver = finding.waiver
    if waiver is not None:
        at = "?" if waiver.approved_at is None else waiver.approved_at.isoformat()
        line += (
            f" (waived: {one_line(waiver.reason or '')}, approved by "
            f"{one_line(waiver.approved_by or '')} at {at})"
        )
    return line


def finding_counts(report: Report) -> dict[str, int]:
    # Waived findings are counted apart: they no longer fail the report.
    counts = dict.fromkeys(("error", "warning", "info", "waived"), 0)
    for f in report.findings:
        counts["waived" if f.waiver is not None else f.severity.value] += 1
    return counts


def course_summary(report: Report, course: Course) -> str:
    counts = finding_counts(report)
    verdict = "OK" if report.ok else "FAIL"
    as_of = f", as of {report.as_of}" if report.as_of else ""
    found = ", ".join(
        plural(counts[severity], noun)
        for severity, noun in (("error", "error"), ("warning", "warning"), ("info", "info finding"))
    )
    if counts["waived"]:
        found += f", {plural(counts['waived'], 'waived finding')}"
    return (
        f"{verdict}: {found} in {plural(len(course.sessions), 'session')}; "
        f"protocol {report.protocol_id} v{'+'.join(report.versions) or report.protocol_version}, "
        f"timezone {course.timezone}{as_of}"
    )


def json_out(data: object, out: TextIO) -> None:
    # DEL, C1 controls and lone surrogates, which json leaves raw, escaped (_text.json_text).
    out.write(json_text(json.dumps(data, indent=2, ensure_ascii=False)) + "\n")


def forecast_lines(f: Forecast) -> list[str]:
    from kaprules.forecasting import HORIZON_DAYS, SeriesStatus

    if f.phased:
        return _phased_forecast_lines(f)
    progress = f"{f.inductions} of {f.count} sessions"
    upcoming = f.next
    if f.status is SeriesStatus.CANNOT_COMPLETE:
        # The forecast's reason is the plan's: it names what keeps the series from fitting.
        why = f.reason or f"no day within {HORIZON_DAYS} days completes the series"
        return [f"Series cannot be completed: {progress}.", f"No next session: {why}."]
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


def _phased_forecast_lines(f: Forecast) -> list[str]:
    from kaprules.forecasting import HORIZON_DAYS, SeriesStatus

    upcoming = f.next
    if f.window_opens is None:
        first = "Course not started: no session yet."
    else:
        state = "complete" if f.status is SeriesStatus.COMPLETE else "in progress"
        first = (
            f"Course {state}: {plural(f.inductions, 'session')} since "
            f"{f.window_opens.isoformat()} (treatment week 1)."
        )
    if upcoming is None:
        if f.status is SeriesStatus.COMPLETE:
            return [first, "No next session: the protocol's phases are over."]
        return [first, f"No next session: no bookable day within {HORIZON_DAYS} days."]
    phase = "" if upcoming.phase is None else f" ({upcoming.phase})"
    until = "" if upcoming.latest is None else f" to {upcoming.latest.isoformat()}"
    lines = [
        first,
        f"Next session: treatment week {upcoming.week}{phase}, from "
        f"{upcoming.bookable_from.isoformat()}{until}.",
    ]
    refused = upcoming.refused
    if refused is not None:
        lines.append(
            f"Not earlier: {refused.date.isoformat()} is refused by {refused.rule}: "
            f"{one_line(refused.message)}."
        )
    return lines


def plan_lines(result: Plan) -> list[str]:
    lines = [f"{result.status.value}: {result.reason}."]
    for s in result.sessions:
        if s.week is not None:
            number = f"{s.number:<3} week {s.week:<3} {s.phase or ''}"
            lines.append(f"  {s.id:<10} {number:<28} {_time.format_local(s.start)} ({s.start:%a})")
            continue
        number = (
            f"{s.number} of {result.forecast.count}" if s.kind == "induction" else f"{s.number}"
        )
        lines.append(
            f"  {s.id:<10} {s.kind} {number:<8} {_time.format_local(s.start)} ({s.start:%a})"
        )
    return lines


def identity(protocol: Protocol) -> str:
    text = f"{protocol.id} version {protocol.version}"
    if protocol.derived_from is not None:
        text += f" (derived from {protocol.derived_from[0]} version {protocol.derived_from[1]})"
    return text


def _protocol_words(protocol: dict[str, Any]) -> str:
    # One version, or each version with the date it took effect.
    versions = protocol.get("versions")
    if not versions:
        return f"{protocol['id']} version {protocol['version']}"
    each = ", ".join(
        f"{v['version']}" + (f" (from {v['effective']})" if v["effective"] else "")
        for v in versions
    )
    return f"{protocol['id']} versions {each}, each session by the version then in force"


def audit_lines(data: dict[str, Any]) -> list[str]:
    lines = [
        f"Audit: {plural(data['lines_read'], 'record')} read, "
        f"{plural(data['courses'], 'course')} evaluated: {data['compliant']} compliant, "
        f"{data['with_errors']} with an error finding; "
        f"{plural(data['rejected_count'], 'record')} rejected.",
        f"Protocol {_protocol_words(data['protocol'])}, kaprules "
        f"{data['kaprules_version']}, as of {data['as_of'] or '(final records)'}.",
        f"Input SHA-256: {data['input_sha256']}",
        "",
        f"{'rule':<24} {'courses':>8} {'findings':>9} {'waived':>7} {'share':>7}",
    ]
    for rule_id, counts in data["rules"].items():
        lines.append(
            f"{rule_id:<24} {counts['courses']:>8} {counts['findings']:>9} "
            f"{counts.get('waived', 0):>7} {100 * counts['share']:>6.1f}%"
        )
    waived = len(data.get("waived", ())) + data.get("waived_omitted", 0)
    if waived:
        lines += ["", f"{plural(waived, 'finding')} waived (--format json lists them)."]
    if data["rejected_count"]:
        lines += ["", "Rejected records:"]
        for item in data["rejected"][:20]:
            where = (
                f"{shown_id(item['input'], 200)} line {item['line']}"
                if "input" in item
                else f"line {item['line']}"
            )
            lines.append(f"  {where}: {one_line(item['reason'])}")
        more = data["rejected_count"] - min(len(data["rejected"]), 20)
        if more > 0:
            listed = len(data["rejected"])
            lines.append(f"  ... and {more} more (--format json lists the first {listed})")
    return lines
