"""The HTML report of an audit: one self-contained file, for auditors who do not read JSON.

Rendered from a Jinja2 template with autoescaping: what the input holds (course and session
ids, messages) is escaped, and no patient, escort or therapist text is ever passed to it.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence
from typing import Any

from kaprules import _time
from kaprules.auditing import CourseResult
from kaprules.errors import shown_id
from kaprules.model import Course, Kind
from kaprules.protocol import Protocol
from kaprules.rules import SERIES_WINDOW

__all__ = ["render"]

_WIDTH = 760  # the timeline's drawing width, in SVG units
_LEFT = 20
_REJECTED_SHOWN = 1000


# A gap longer than this many days between two dates on a timeline is drawn as a break of
# _BREAK_DAYS, so that a booster months later does not squeeze the series into a dot.
_LONG_GAP = 10
_BREAK_DAYS = 3


def _scale(
    days: list[dt.date],
) -> tuple[Any, list[dict[str, Any]], list[float]]:
    """A date-to-x function over ``days``, with long gaps broken; its ticks and breaks."""
    if not days:
        days = [dt.date(2000, 1, 1)]
    offsets = {days[0]: 0.0}
    position = 0.0
    breaks: list[float] = []
    for before, after in itertools.pairwise(days):
        gap = (after - before).days
        if gap > _LONG_GAP:
            breaks.append(position + 1 + _BREAK_DAYS / 2)
            position += 1 + _BREAK_DAYS
        else:
            position += gap
        offsets[after] = position
    span = position + 1
    unit = _WIDTH / span

    def x(day: dt.date, fraction: float = 0.5) -> float:
        # Days between known dates (none lie in a break) count from the date before them.
        known = max((d for d in days if d <= day), default=days[0])
        return round(_LEFT + (offsets[known] + (day - known).days + fraction) * unit, 1)

    shown: list[dt.date] = []
    for day in days:
        if not shown or (offsets[day] - offsets[shown[-1]]) * unit >= 80:
            shown.append(day)
    ticks = [{"x": x(day, 0.5), "label": day.isoformat(), "anchor": "middle"} for day in shown]
    ticks[0]["anchor"] = "start"
    return x, ticks, [round(_LEFT + b * unit, 1) for b in breaks]


def _timeline(course: Course, result: CourseResult, window_days: int | None) -> dict[str, Any]:
    zone = course.zone
    sessions = sorted(course.sessions, key=lambda s: (s.instant, s.id or ""))
    local = [(s, s.instant.astimezone(zone)) for s in sessions]
    dates = [t.date() for _, t in local]
    inductions = [t.date() for s, t in local if s.kind is Kind.INDUCTION]
    window = None
    if inductions and window_days:
        window = (inductions[0], inductions[0] + dt.timedelta(days=window_days - 1))
    x, ticks, breaks = _scale(sorted({*dates, *(window or ())}))
    named: dict[str, list[int]] = {}
    findings = []
    for number, finding in enumerate(result.findings, start=1):
        for session_id in finding["sessions"]:
            named.setdefault(session_id, []).append(number)
        findings.append(
            {
                "number": number,
                "rule": finding["rule"],
                "severity": finding["severity"],
                "sessions": ", ".join(shown_id(s) for s in finding["sessions"]) or "course",
                "message": finding["message"],
            }
        )
    marks = [
        {
            "x": x(t.date(), 0.15 + 0.7 * (t.hour * 60 + t.minute) / 1440),
            "kind": s.kind.value,
            "id": shown_id(s.id or ""),
            "when": _time.format_local(t),
            "findings": ", ".join(str(n) for n in named.get(s.id or "", [])),
        }
        for s, t in local
    ]
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
        "ticks": ticks,
        "breaks": breaks,
        "findings": findings,
    }


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
) -> str:
    """The report as HTML text.

    Args:
        summary: `AuditSummary.to_dict()`.
        samples: Courses with an error finding, with their results, to draw.
        protocol: The protocol audited.
        inputs: The input names.
        started: When the audit started, as ISO text.
        seconds: How long it took.
        docs_url: The documentation's base URL for links to the rules page ("" for
            relative links).
        several_inputs: Whether to name the input of each rejected record.

    Returns:
        One self-contained HTML document.
    """
    import jinja2

    window = protocol.quantity(SERIES_WINDOW)
    window_days = window if isinstance(window, int) else None
    courses = summary["courses"] or 1
    rules = []
    for rule_id, counts in summary["rules"].items():
        rules.append(
            {
                "id": rule_id,
                "courses": counts["courses"],
                "findings": counts["findings"],
                "percent": f"{100 * counts['courses'] / courses:.1f}",
                "bar": round(300 * counts["courses"] / courses, 1),
                "url": f"{docs_url}rules/#{rule_id}",
            }
        )
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("kaprules", "templates"),
        autoescape=True,
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
        samples=[_timeline(course, result, window_days) for result, course in samples],
        rejected=rejected[:_REJECTED_SHOWN],
        rejected_more=summary.get("rejected_count", len(rejected))
        - len(rejected[:_REJECTED_SHOWN]),
        several_inputs=several_inputs,
        inputs=inputs,
        started=started,
        seconds=f"{seconds:.1f}",
    )
