"""The HTML report of an audit: one self-contained file, for auditors who do not read JSON.

Rendered from a Jinja2 template with autoescaping: what the input holds (course and session
ids, messages) is escaped, its control characters and lone surrogates too
(`kaprules._text.html`, on every value the template writes), and no patient, escort or
therapist text is ever passed to it.
The report states every rule of the protocol (statement, parameters, rationale, source), so
that it can be read without the documentation site, e-mailed or printed.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import json
from collections.abc import Callable, Sequence
from typing import Any

from kaprules import _text, _time
from kaprules import report as _report
from kaprules.auditing.results import MAX_SAMPLE_WEIGHT, CourseResult
from kaprules.errors import shown_id
from kaprules.model import Course, Kind
from kaprules.protocol import Protocol
from kaprules.report import Severity
from kaprules.rules import (
    SERIES_WINDOW,
    IntegrationFollowup,
    Rule,
    cited_source,
    parameters_of,
    rationale_of,
)

__all__ = ["MAX_FINDINGS_LISTED", "MAX_MARKS", "render"]

_WIDTH = 760  # the timeline's drawing width, in SVG units
_LEFT = 20
_REJECTED_SHOWN = 1000

MAX_MARKS = 400
"""Sessions a course's timeline draws at most: those named by a finding first, then the
others in time order. The report says when a course has more, so that a course of
thousands of sessions costs the report no more than this."""

MAX_FINDINGS_LISTED = 200
"""Findings a drawn course lists at most in the report (the findings file has them all)."""

# A gap longer than this many days between two dates on a timeline is drawn as a break of
# _BREAK_DAYS, so that a booster months later does not squeeze the series into a dot.
_LONG_GAP = 10
_BREAK_DAYS = 3

# Tick labels: ISO dates of 10 characters at _TICK_FONT SVG units, each about 0.6 em wide;
# a label is drawn only where it clears the one before by _TICK_GAP units.
_TICK_FONT = 12
_TICK_LABEL = round(10 * 0.62 * _TICK_FONT)
_TICK_GAP = 10


def _scale(
    days: list[dt.date],
) -> tuple[Callable[..., float], list[dict[str, Any]], list[float]]:
    """A date-to-x function over ``days`` (sorted), with long gaps broken; ticks and breaks."""
    if not days:
        days = [dt.date(2000, 1, 1)]
    offsets = [0.0]
    position = 0.0
    breaks: list[float] = []
    for before, after in itertools.pairwise(days):
        gap = (after - before).days
        if gap > _LONG_GAP:
            breaks.append(position + 1 + _BREAK_DAYS / 2)
            position += 1 + _BREAK_DAYS
        else:
            position += gap
        offsets.append(position)
    span = position + 1
    unit = _WIDTH / span

    def x(day: dt.date, fraction: float = 0.5) -> float:
        # Days between known dates (none lie in a break) count from the date before them.
        index = max(bisect.bisect_right(days, day) - 1, 0)
        known = days[index]
        return round(_LEFT + (offsets[index] + (day - known).days + fraction) * unit, 1)

    ticks: list[dict[str, Any]] = []
    right = -float("inf")  # where the last label drawn ends
    for day in days:
        middle = x(day, 0.5)
        # The first label starts at its tick; the others are centred on theirs, and kept
        # inside the drawing.
        if not ticks:
            left, anchor = middle, "start"
        elif middle + _TICK_LABEL / 2 > _LEFT + _WIDTH:
            left, anchor = middle - _TICK_LABEL, "end"
        else:
            left, anchor = middle - _TICK_LABEL / 2, "middle"
        if left >= right + _TICK_GAP:
            ticks.append({"x": middle, "label": day.isoformat(), "anchor": anchor})
            right = left + _TICK_LABEL
    return x, ticks, [round(_LEFT + b * unit, 1) for b in breaks]


def _drawn(course: Course, named: dict[str, list[int]]) -> tuple[list[Any], int]:
    """The sessions a timeline draws (at most `MAX_MARKS`, named ones first), and all."""
    sessions = sorted(course.sessions, key=lambda s: (s.instant, s.id or ""))
    if len(sessions) <= MAX_MARKS:
        return sessions, len(sessions)
    first = [s for s in sessions if (s.id or "") in named][:MAX_MARKS]
    chosen = {id(s) for s in first}
    rest = [s for s in sessions if id(s) not in chosen][: MAX_MARKS - len(first)]
    return sorted([*first, *rest], key=lambda s: (s.instant, s.id or "")), len(sessions)


def _timeline(
    course: Course, result: CourseResult, window_days: int | None, within_days: int | None = None
) -> dict[str, Any]:
    zone = course.zone
    named: dict[str, list[int]] = {}
    findings = []
    for number, finding in enumerate(result.findings, start=1):
        for session_id in finding["sessions"]:
            named.setdefault(session_id, []).append(number)
        if number <= MAX_FINDINGS_LISTED:
            findings.append(
                {
                    "number": number,
                    "rule": finding["rule"],
                    "severity": finding["severity"],
                    "sessions": ", ".join(shown_id(s) for s in finding["sessions"][:20])
                    + (", ..." if len(finding["sessions"]) > 20 else "")
                    or "course",
                    "message": finding["message"],
                    "waiver": finding.get("waiver"),
                    "version": finding.get("protocol_version"),
                }
            )
    sessions, total = _drawn(course, named)
    local = [(s, s.instant.astimezone(zone)) for s in sessions]
    dates = [t.date() for _, t in local]
    inductions = [t.date() for s, t in local if s.kind is Kind.INDUCTION]
    window = None
    if inductions and window_days:
        window = (inductions[0], inductions[0] + dt.timedelta(days=window_days - 1))
    # Integration meetings, and the last day they are due (integration-followup's
    # within_days after the last induction session): a late meeting is drawn past it.
    meetings = sorted(
        ((m, m.instant.astimezone(zone)) for m in course.integrations[:MAX_MARKS]),
        key=lambda pair: (pair[1], pair[0].id or ""),
    )
    due = None
    if inductions and within_days:
        due = max(inductions) + dt.timedelta(days=within_days)
    meeting_days = [t.date() for _, t in meetings]
    x, ticks, breaks = _scale(
        sorted({*dates, *(window or ()), *meeting_days, *((due,) if due else ())})
    )
    marks = [
        {
            "x": x(t.date(), 0.15 + 0.7 * (t.hour * 60 + t.minute) / 1440),
            "kind": s.kind.value,
            "id": shown_id(s.id or ""),
            "when": _time.format_local(t),
            "findings": ", ".join(str(n) for n in named.get(s.id or "", [])[:10]),
        }
        for s, t in local
    ]
    # A finding's number is written above its mark only where it clears the last one
    # written (dense courses would blot them into a bar); the mark's tooltip has them all.
    clear = -float("inf")
    for mark in marks:
        mark["numbered"] = bool(mark["findings"]) and mark["x"] >= clear
        if mark["numbered"]:
            clear = mark["x"] + 7 * len(mark["findings"]) + 6
    return {
        "id": shown_id(course.id) if course.id else None,
        "line": result.line,
        "source": result.source,
        "timezone": course.timezone,
        "width": _WIDTH + 2 * _LEFT,
        "window": None
        if window is None
        else {
            "x": x(window[0], 0),
            "width": round(x(window[1], 1) - x(window[0], 0), 1),
            "label": (
                f"{window_days}-day window, {window[0].isoformat()} to {window[1].isoformat()}"
            ),
        },
        "marks": marks,
        "meetings": [
            {
                "x": x(t.date(), 0.15 + 0.7 * (t.hour * 60 + t.minute) / 1440),
                "id": shown_id(m.id or ""),
                "when": _time.format_local(t),
                "late": due is not None and t.date() > due,
            }
            for m, t in meetings
        ],
        "due": None
        if due is None
        else {"x": x(due, 1), "label": f"integration due by {due.isoformat()}"},
        "sessions": total,
        "ticks": ticks,
        "tick_font": _TICK_FONT,
        "breaks": breaks,
        "findings": findings,
        "findings_more": len(result.findings) - len(findings),
    }


def _stated(rule: Rule, docs_url: str) -> dict[str, Any]:
    """What the report states of one rule: kaprules explain's content, without examples."""
    try:
        allowed = {p.name: p.check.describe() for p in parameters_of(type(rule)) if p.check}
    except Exception:
        # A custom rule class whose constructor cannot be read: its values, without bounds.
        allowed = {}
    parameters = [
        {"name": name, "value": json.dumps(value, ensure_ascii=False), "allowed": allowed.get(name)}
        for name, value in rule.parameters().items()
    ]
    severity = Severity(rule.severity).value
    parameters.append(
        {
            "name": "severity",
            "value": json.dumps(severity),
            "allowed": ", ".join(s.value for s in Severity),
        }
    )
    source = cited_source(rule)
    return {
        "id": rule.id,
        "anchor": f"rule-{rule.id}",
        "url": _link(rule, docs_url),
        "title": rule.title,
        "statement": rule.statement,
        "parameters": parameters,
        "rationale": rationale_of(rule),
        "source": {
            "quote": source.quote,
            "document": source.document,
            "location": source.location,
            "note": source.note,
        },
        "names": rule.names,
    }


def _link(rule: Rule, docs_url: str) -> str:
    """Where a rule's id links: its findings' ``help.url`` on the site, else its statement.

    The help URL is made with ``docs_url`` as its base (the one setting,
    `kaprules.report.DOCS_URL`, otherwise), so that a renamed rule (``escort-booster``,
    ``rule = "escort"``) links where its findings' help does. A rule without help, or with
    a URL that is not http(s), links to its statement in the report.
    """
    in_page = f"#rule-{rule.id}"
    if not docs_url:
        return in_page
    try:
        found = getattr(rule, "help", None)
        url = found.url if isinstance(found, _report.Help) else None
    except Exception:  # a custom rule's property may raise anything
        url = None
    if not isinstance(url, str):
        return in_page
    if _report.DOCS_URL and url.startswith(_report.DOCS_URL):
        url = url[len(_report.DOCS_URL) :]
    if _text.web_url(url) is not None:
        return url  # a rule's own help_url
    import urllib.parse

    # kaprules' own help is relative to the site (rules/#escort): put under docs_url.
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return in_page
    if parts.scheme or parts.netloc or url.startswith("/"):
        return in_page
    return docs_url + url if _text.web_url(docs_url + url) is not None else in_page


def render(
    summary: dict[str, Any],
    samples: Sequence[tuple[CourseResult, Course]],
    *,
    protocol: Protocol,
    inputs: Sequence[str],
    started: str,
    seconds: float,
    docs_url: str,
    several_inputs: bool,
    samples_capped: bool = False,
) -> str:
    """The report as HTML text.

    Args:
        summary: `AuditSummary.to_dict()`.
        samples: Courses with an error finding, with their results, to draw.
        protocol: The protocol audited.
        inputs: The input names.
        started: When the audit started, as ISO text.
        seconds: How long it took.
        docs_url: The documentation's base URL (an http or https URL ending in ``/``) for
            each rule's link to its findings' help page (``help.url`` with this base);
            ``""`` for `kaprules.report.DOCS_URL`, and when that is empty too, each rule
            links to its statement in the report itself (``#rule-<id>``).
        several_inputs: Whether to name the input of each rejected record.
        samples_capped: Whether the audit left courses out of ``samples`` for their size
            (`kaprules.auditing.MAX_SAMPLE_WEIGHT`): the report says so.

    Returns:
        One self-contained HTML document.
    """
    import jinja2

    docs_url = docs_url or _report.DOCS_URL
    window = protocol.quantity(SERIES_WINDOW)
    window_days = window if isinstance(window, int) else None
    followup = next((r for r in protocol.rules if isinstance(r, IntegrationFollowup)), None)
    within_days = followup.within_days if followup is not None else None
    courses = summary["courses"] or 1
    stated = {rule.id: _stated(rule, docs_url) for rule in protocol.rules}
    rules = []
    for rule_id, counts in summary["rules"].items():
        rules.append(
            {
                "id": rule_id,
                "title": stated[rule_id]["title"] if rule_id in stated else "",
                "courses": counts["courses"],
                "findings": counts["findings"],
                "waived": counts.get("waived", 0),
                "percent": f"{100 * counts['courses'] / courses:.1f}",
                "bar": round(300 * counts["courses"] / courses, 1),
                "url": stated[rule_id]["url"] if rule_id in stated else None,
            }
        )
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("kaprules", "templates"),
        autoescape=True,
        # Every value written: control characters and lone surrogates escaped.
        finalize=_text.html,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    template = environment.get_template("audit.html.jinja")
    rejected = summary["rejected"]
    return template.render(
        summary=summary,
        protocol=protocol,
        rules=rules,
        stated=list(stated.values()),
        external=bool(docs_url),
        samples=[_timeline(course, result, window_days, within_days) for result, course in samples],
        with_errors=summary["with_errors"],
        max_marks=MAX_MARKS,
        samples_capped=samples_capped,
        sample_weight=MAX_SAMPLE_WEIGHT,
        rejected=rejected[:_REJECTED_SHOWN],
        rejected_more=summary.get("rejected_count", len(rejected))
        - len(rejected[:_REJECTED_SHOWN]),
        several_inputs=several_inputs,
        inputs=inputs,
        started=started,
        seconds=f"{seconds:.1f}",
    )
