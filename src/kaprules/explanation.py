"""Auditor text: what each rule requires, rendered from the rule objects themselves.

[`explain`][kaprules.explain] renders one rule as Markdown: its statement with the actual
parameter values, a parameters table, the rationale, the source it encodes, which sessions
a finding names, and two worked examples evaluated by the rule at the moment of rendering.
``kaprules explain RULE_ID`` prints this text, and the documentation's rules page is built
from it, so neither can drift from the code. A rule's text may come from outside (a clinic's
rationale and source, a plugin's title): every text is escaped for the form written
(`kaprules._text.markdown`, or `kaprules._text.terminal` for plain text), so it is shown
as written and never becomes markup, a link or a second line.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Callable, Sequence

import attrs

from kaprules import _text, _time
from kaprules.evaluation import evaluate
from kaprules.model import Course
from kaprules.protocol import STANDARD, Protocol
from kaprules.report import Report, Severity
from kaprules.rules import Rule, cited_source, parameters_of, rationale_of

__all__ = ["WorkedExample", "explain", "rules_page", "worked_examples"]


@attrs.frozen
class WorkedExample:
    """A course shown with what one rule, evaluated alone, finds in it.

    Attributes:
        title: What the example shows.
        course: The course.
        report: The report of a protocol holding only the rule.
    """

    title: str
    course: Course
    report: Report


def worked_examples(rule: Rule) -> Sequence[WorkedExample]:
    """A passing and a failing course for a rule, as the rule judges them.

    The courses come from the rule's own ``examples()`` (kaprules' rules build them from
    their actual parameters, at the boundary of what they allow), and are evaluated by a
    protocol holding only this rule.

    Args:
        rule: The rule.

    Returns:
        The examples (passing first), or none for a rule without ``examples()``.
    """
    examples = getattr(rule, "examples", None)
    if not callable(examples):
        return ()
    alone = Protocol(f"{rule.id}-alone", "1", [rule])
    return tuple(
        WorkedExample(title, course, evaluate(course, alone)) for title, course in examples()
    )


def _presence(value: str | None) -> str:
    # Names are clinical data: show only whether one is there.
    return "missing" if value is None else ("blank" if not value.strip() else "recorded")


def _course_table(course: Course, text: Callable[[str], str]) -> list[str]:
    rows = [
        "| session | kind | local start | last food | escort | therapist |",
        "|---|---|---|---|---|---|",
    ]
    for s in course.sessions:
        food = (
            "not recorded" if s.last_food is None else _time.format_local(course.local(s.last_food))
        )
        start = _time.format_local(course.local(s.start))
        rows.append(
            f"| {text(s.id or '')} | {s.kind} | {start} | {food} | {_presence(s.escort)} "
            f"| {_presence(s.therapist)} |"
        )
    if course.integrations:
        rows += ["", "| integration meeting | local start |", "|---|---|"]
        rows += [
            f"| {text(m.id or '')} | {_time.format_local(course.local(m.start))} |"
            for m in sorted(course.integrations, key=lambda m: m.instant)
        ]
    return rows


def _value(value: object) -> str:
    return _code(json.dumps(value))


def _code(text: str) -> str:
    # A code span shows its text literally (no HTML, no links); its fence is longer than
    # any run of backticks inside, and a pipe is escaped for the table it stands in.
    line = _text.terminal(text).replace("|", "\\|")
    fence = "`" * (max((len(run) for run in re.findall("`+", line)), default=0) + 1)
    padded = f" {line} " if line.startswith("`") or line.endswith("`") else line
    return f"{fence}{padded}{fence}"


def explain(rule: Rule, *, anchor: bool = False, format: str = "markdown") -> str:
    """The auditor text of one rule, as Markdown or plain text.

    Args:
        rule: The rule, one of kaprules' own or any object following [`Rule`][kaprules.Rule].
        anchor: Give the heading an ``{#rule-id}`` anchor (for the documentation site).
        format: ``"markdown"`` (the default), or ``"text"`` for a terminal: the same
            content without Markdown markup, tables as aligned columns.

    Returns:
        The text: statement, parameters, rationale, source, named sessions and, for
        kaprules' own rules, two worked examples with their real findings.

    Raises:
        ValueError: ``format`` is neither ``"markdown"`` nor ``"text"``.
    """
    if format not in ("markdown", "text"):
        raise ValueError(f"format must be 'markdown' or 'text', got {format!r}")
    if format == "markdown":
        return _markdown(rule, anchor=anchor, text=_text.markdown)
    return _plain(_markdown(rule, anchor=anchor, text=_text.terminal))


def _plain(markdown: str) -> str:
    # The Markdown explain writes, and only that: headings, bold lead-ins, code spans,
    # tables, one quote and JSON fences.
    out: list[str] = []
    table: list[list[str]] = []
    fenced = False

    def flush() -> None:
        if table:
            widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
            out.extend(
                "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                for row in table
            )
            table.clear()

    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            out.append("  " + line)
            continue
        if line.startswith("|"):
            cells = [c.strip().replace("`", "") for c in line.strip("|").split("|")]
            if not all(set(c) <= {"-"} for c in cells):
                table.append(cells)
            continue
        flush()
        if line.startswith("## "):
            title = line[3:].replace("`", "")
            out += [title, "=" * len(title)]
        elif line.startswith("> "):
            out.append("    " + line[2:])
        else:
            plain = line.replace("**", "").replace("`", "")
            out.append(textwrap.fill(plain, 88) if plain else plain)
    flush()
    return "\n".join(out).rstrip() + "\n"


def _markdown(rule: Rule, *, anchor: bool, text: Callable[[str], str]) -> str:
    # Every text of the rule through ``text``: a clinic's or a plugin's is text from outside.
    heading = f"## {_code(rule.id)}: {text(rule.title)}" + (f" {{#{rule.id}}}" if anchor else "")
    params = rule.parameters()
    allowed = {p.name: p.check.describe() for p in parameters_of(type(rule)) if p.check}
    lines = [heading, "", f"**Requirement.** {text(rule.statement)}", "", "**Parameters.**", ""]
    lines += ["| parameter | value | allowed |", "|---|---|---|"]
    lines += [
        f"| {_code(name)} | {_value(value)} | {text(allowed.get(name, ''))} |"
        for name, value in params.items()
    ]
    severities = ", ".join(s.value for s in Severity)
    lines += [f"| `severity` | {_value(Severity(rule.severity).value)} | {severities} |", ""]
    lines += [f"**Rationale.** {text(rationale_of(rule))}", ""]
    source = cited_source(rule)
    document = text(source.document)
    lines += [
        f"**Source.** {document}, {text(source.location)}:"
        if source.location
        else f"**Source.** {document}:",
        "",
        f"> {text(source.quote)}",
        "",
    ]
    if source.note:
        lines += [text(source.note), ""]
    lines += [f"**Sessions a finding names.** {text(rule.names)}", ""]
    for example, verdict in zip(worked_examples(rule), ("Passing", "Failing"), strict=False):
        lines += [
            f"**{verdict} example: {text(example.title)}.**",
            "",
            *_course_table(example.course, text),
            "",
        ]
        if not example.report.findings:
            lines += ["No finding.", ""]
        for finding in example.report.findings:
            # JSON escapes every control character, and a fence closes only at a line's
            # start, which no line of indented JSON is.
            lines += [
                "```json",
                _text.json_text(json.dumps(finding.to_dict(), indent=2, ensure_ascii=False)),
                "```",
                "",
            ]
    return "\n".join(lines).rstrip() + "\n"


def rules_page(protocol: Protocol = STANDARD) -> str:
    """Every rule of ``protocol`` explained, with anchors, for the documentation site.

    Args:
        protocol: The protocol; kap-standard v1 by default.

    Returns:
        Markdown: one section per rule, in the protocol's order.
    """
    return "\n".join(explain(rule, anchor=True) for rule in protocol.rules)
