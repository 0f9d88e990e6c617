"""What an audit finds: one `CourseResult` a record, in batches, counted by `AuditSummary`.

Results cross from the workers as plain tuples of their fields (`ResultFields`): a tuple
crosses a pipe several times faster than an object. `result_of` names them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import attrs

from kaprules._stamps import protocol_stamp, stamp_fields
from kaprules._version import __version__
from kaprules.errors import InputError
from kaprules.findings_files import FindingsForm, input_name, rows
from kaprules.model import Course
from kaprules.protocol import Protocol, ProtocolVersions

# A protocol, or the versions of one (judged course by course).
AnyProtocol = Protocol | ProtocolVersions

RecordData = str | bytes | dict[str, Any] | Course
"""A record's data, as a result carries it for a report that may draw the course."""

__all__ = [
    "MAX_REJECTED_KEPT",
    "MAX_SAMPLE_WEIGHT",
    "AnyProtocol",
    "AuditSummary",
    "CourseResult",
    "RecordData",
    "ResultBatch",
    "ResultFields",
    "ResultForm",
    "counts",
    "result_of",
    "summary_for",
    "text_batch",
    "wanted_in_samples",
]


MAX_SAMPLE_WEIGHT = 50_000
"""Sessions and findings, in all, of the courses an audit keeps as its samples (for the
report to draw): fifty courses of 10,000 sessions and 20,000 findings each would hold
1.3 GB; at this bound the samples hold about 45 MB however large the courses are."""

MAX_REJECTED_KEPT = 1000
"""Rejected records an `AuditSummary` keeps the line and reason of (the first 1000): every
rejected record is counted, and ``rejected_omitted`` says how many more there were, so a
million unusable lines cost no more memory than a thousand."""


def counts(finding: dict[str, Any]) -> bool:
    """Whether a finding (as `Finding.to_dict` gives it) fails its course: an unwaived error."""
    return finding["severity"] == "error" and finding.get("waiver") is None


class CourseResult(NamedTuple):
    """What an audit found for one input record.

    A named tuple: an audit makes one per record, and a tuple is made in a fraction of the
    time of a frozen attrs instance.

    Attributes:
        line: The record's 1-based line.
        source: The input it came from.
        course_id: The course's ``id``, or None; for a rejected record too, when its JSON
            parsed (or its CSV rows had a course id) and the id is a string.
        sessions: How many sessions the course has (0 when rejected).
        findings: The findings, as `Finding.to_dict` gives them, in report order.
        rejected: The loader's reason when the record is not a course, else None.
    """

    line: int
    source: str
    course_id: str | None
    sessions: int
    findings: tuple[dict[str, Any], ...]
    rejected: str | None = None

    @property
    def ok(self) -> bool:
        """True for a course without an error finding."""
        return self.rejected is None and not any(counts(f) for f in self.findings)


@attrs.define
class AuditSummary:
    """The counts of an audit; `to_dict` is what ``kaprules audit --format json`` prints.

    Attributes:
        lines_read: Records read (JSON Lines: lines; CSV: courses, by their rows).
        courses: Records evaluated as courses.
        compliant: Courses without an error finding.
        with_errors: Courses with at least one error finding.
        rejected: ``(source, line, reason)`` of each record that is not a course, the
            first `MAX_REJECTED_KEPT` of them.
        rejected_omitted: Rejected records counted but not kept in ``rejected``.
        rules: For each rule id: ``[courses with a finding, findings, waived findings]``.
        protocol_id: The protocol's id.
        protocol_version: Its version.
        as_of: The ``as_of`` of every evaluation, as ISO text, or None.
        input_sha256: SHA-256 of the input bytes, in input order, when read from files.
        inputs: ``(name, SHA-256)`` of each input file as read, in input order (empty when
            not read from files): ``input_sha256`` is the digest of their concatenation.
        protocol_sha256: The protocol's `digest` (None for several versions).
        protocol_files: ``(name, SHA-256)`` of each protocol file as read, for the caller
            that read them to set (``kaprules audit`` does); empty for a built-in protocol
            or one made in Python. The protocol's digest covers its data, these the bytes.
        plugins: The installed rule plugins whose classes the protocol's rules are (each
            ``RulePlugin.to_dict()``): the digest names a rule and its parameters, the
            plugin's distribution and version the code that judges them.
        waived: The first `MAX_REJECTED_KEPT` waived findings, each ``{"line", "course",
            "rule", "sessions", "reason", "approved_by", "approved_at"}`` (``input`` first
            for several inputs): every exception an auditor signs off.
        waived_omitted: Waived findings counted but not kept in ``waived``.
        versions: For several versions of a protocol: each one's version, effective date
            and digest, in effective order.
    """

    protocol_id: str
    protocol_version: str
    as_of: str | None
    rule_ids: tuple[str, ...]
    lines_read: int = 0
    courses: int = 0
    compliant: int = 0
    with_errors: int = 0
    rejected: list[tuple[str, int, str]] = attrs.Factory(list)
    rules: dict[str, list[int]] = attrs.Factory(dict)
    input_sha256: str | None = None
    rejected_omitted: int = 0
    protocol_sha256: str | None = None
    versions: list[dict[str, str | None]] | None = None
    waived: list[dict[str, Any]] = attrs.Factory(list)
    waived_omitted: int = 0
    inputs: list[tuple[str, str]] = attrs.Factory(list)
    protocol_files: list[tuple[str, str]] = attrs.Factory(list)
    plugins: list[dict[str, str | None]] = attrs.Factory(list)

    @property
    def rejected_count(self) -> int:
        """Every rejected record: those kept in ``rejected`` and those omitted."""
        return len(self.rejected) + self.rejected_omitted

    def reject(self, source: str, line: int, reason: str) -> None:
        """Count one rejected record; keep its details while fewer than the bound are kept."""
        if len(self.rejected) < MAX_REJECTED_KEPT:
            self.rejected.append((source, line, reason))
        else:
            self.rejected_omitted += 1

    def add_compliant(self, courses: int) -> None:
        """Count compliant courses without any finding, in bulk (a columnar batch's).

        Args:
            courses: How many.

        Raises:
            InputError: ``courses`` is not a whole number, 0 or more.
        """
        if isinstance(courses, bool) or not isinstance(courses, int) or courses < 0:
            raise InputError("courses: must be a whole number, 0 or more")
        self.lines_read += courses
        self.courses += courses
        self.compliant += courses

    def add(self, result: CourseResult) -> None:
        """Count one result."""
        self.lines_read += 1
        if result.rejected is not None:
            self.reject(result.source, result.line, result.rejected)
            return
        self.courses += 1
        if not result.findings:
            self.compliant += 1
            return
        if result.ok:
            self.compliant += 1
        else:
            self.with_errors += 1
        seen: set[str] = set()
        for finding in result.findings:
            tally = self.rules.setdefault(finding["rule"], [0, 0, 0])
            tally[1] += 1
            waiver = finding.get("waiver")
            if waiver is not None:
                tally[2] += 1
                self._waived(result, finding, waiver)
            if finding["rule"] not in seen:
                seen.add(finding["rule"])
                tally[0] += 1

    def _waived(self, result: CourseResult, finding: dict[str, Any], waiver: Any) -> None:
        if len(self.waived) >= MAX_REJECTED_KEPT:
            self.waived_omitted += 1
            return
        self.waived.append(
            {
                "input": input_name(result.source),
                "line": result.line,
                "course": result.course_id,
                "rule": finding["rule"],
                "sessions": list(finding["sessions"]),
                "reason": waiver["reason"],
                "approved_by": waiver["approved_by"],
                "approved_at": waiver["approved_at"],
            }
        )

    def merge(self, other: AuditSummary) -> None:
        """Add the counts of another summary of the same audit (a partition's, a worker's).

        Rejected records are kept up to the same bound; the rest are counted as omitted.

        Args:
            other: The other summary.
        """
        for name in ("lines_read", "courses", "compliant", "with_errors"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for source, line, reason in other.rejected:
            self.reject(source, line, reason)
        self.rejected_omitted += other.rejected_omitted
        for item in other.waived:
            if len(self.waived) < MAX_REJECTED_KEPT:
                self.waived.append(item)
            else:
                self.waived_omitted += 1
        self.waived_omitted += other.waived_omitted
        for rule_id, other_tally in other.rules.items():
            tally = self.rules.setdefault(rule_id, [0, 0, 0])
            for index, value in enumerate(other_tally):
                tally[index] += value

    def _protocol(self) -> dict[str, Any]:
        # What judged the audit (`kaprules._stamps`).
        return protocol_stamp(
            id=self.protocol_id,
            version=self.protocol_version,
            sha256=self.protocol_sha256,
            versions=self.versions,
            files=self.protocol_files,
            plugins=self.plugins,
        )

    @property
    def ok(self) -> bool:
        """True when no course has an error finding and no record was rejected."""
        return self.with_errors == 0 and self.rejected_count == 0

    def to_dict(self, *, sources: bool = False) -> dict[str, Any]:
        """The summary as plain data for JSON.

        Args:
            sources: Name the input of each rejected record (for several inputs).

        Returns:
            ``{"lines_read", "courses", "compliant", "with_errors", "rejected_count",
            "rejected": [{"line", "reason"}], "rejected_omitted", "rules": {rule id:
            {"courses", "findings", "share", "waived"}}, "protocol": {"id", "version",
            "sha256", "files": [{"name", "sha256"}], "plugins": [{"name", "value",
            "distribution", "version"}]} (for several versions, "versions": [{"version",
            "effective", "sha256"}] instead of "sha256"), "kaprules_version", "as_of",
            "input_sha256", "inputs": [{"name", "sha256"}]}``. Names are written as the
            findings file writes them (`kaprules.findings_files.input_name`). Every rule of
            the protocol is listed, with zeros when it found nothing; ``rejected`` lists
            the first `MAX_REJECTED_KEPT` rejected records, ``rejected_omitted`` counts the
            rest;
            ``waived`` and ``waived_omitted`` do the same for waived findings.
        """
        rules: dict[str, Any] = {}
        for rule_id in (*self.rule_ids, *sorted(set(self.rules) - set(self.rule_ids))):
            courses, findings, *waived = self.rules.get(rule_id, (0, 0, 0))
            share = round(courses / self.courses, 6) if self.courses else 0.0
            rules[rule_id] = {
                "courses": courses,
                "findings": findings,
                "share": share,
                "waived": sum(waived),
            }
        rejected = [
            {**({"input": input_name(source)} if sources else {}), "line": line, "reason": reason}
            for source, line, reason in self.rejected
        ]
        return {
            "lines_read": self.lines_read,
            "courses": self.courses,
            "compliant": self.compliant,
            "with_errors": self.with_errors,
            "rejected_count": self.rejected_count,
            "rejected": rejected,
            "rejected_omitted": self.rejected_omitted,
            "rules": rules,
            "waived": [
                {k: v for k, v in item.items() if sources or k != "input"} for item in self.waived
            ],
            "waived_omitted": self.waived_omitted,
            "protocol": self._protocol(),
            "kaprules_version": __version__,
            "as_of": self.as_of,
            "input_sha256": self.input_sha256,
            "inputs": [{"name": input_name(n), "sha256": h} for n, h in self.inputs],
        }


def summary_for(protocol: AnyProtocol, as_of: str | None) -> AuditSummary:
    """An empty summary of an audit of ``protocol``, stamped with its digests and plugins."""
    fields = stamp_fields(protocol)
    return AuditSummary(
        protocol.id,
        fields["version"],
        as_of,
        protocol.rule_ids,
        protocol_sha256=fields["sha256"],
        versions=fields["versions"],
        plugins=fields["plugins"],
    )


_new = tuple.__new__


def result_of(fields: ResultFields) -> CourseResult:
    """The `CourseResult` of its fields as a worker sends them (no copy is made)."""
    return _new(CourseResult, fields)


ResultFields = tuple[int, str, str | None, int, tuple[dict[str, Any], ...], str | None]


@attrs.define
class ResultForm:
    """How an audit's results are read, set when reading starts (the engine asks then).

    Attributes:
        text: None: as results; else ``(form, inputs)``: as the findings file's text
            (`kaprules.findings_files`; form None: counts only, no text).
        spill: A directory where worker processes write each batch's text to a file of
            its own (`ResultBatch.spilled`), for the main process to copy without
            reading it; None: the text comes back with the batch.
    """

    text: tuple[FindingsForm | None, bool] | None = None
    spill: str | None = None


class ResultBatch(NamedTuple):
    """The results of consecutive records as the columnar engine sends them.

    Compliant courses (evaluated, without a finding) stay columns: an audit that only
    counts them never makes their results. Positions count the batch's results from 0.

    Attributes:
        others: ``(position, fields, data)`` of every other result, in order; ``data``
            is the record's for a report that may draw it, else None.
        rows: The rows of the compliant courses, ascending: each row is a line of the
            batch's blocks, counted from 0 across them.
        ids: Their course ids.
        sessions: Their numbers of sessions.
        blocks: ``(first row, its position, source, its line)`` of each block of lines,
            in order: where a row's position, source and line come from.
        summary: For an audit read as findings text (`ResultForm.text`): the batch's
            counts, made where it was evaluated; ``others`` then holds only the results
            a report may draw, and the columns are empty.
        text: Likewise: the batch's rows of the findings file, in order.
        spilled: Or the file that holds them (UTF-8), written by the worker
            (`ResultForm.spill`); ``text`` is then empty.
    """

    others: list[tuple[int, ResultFields, RecordData | None]]
    rows: list[int]
    ids: list[str | None]
    sessions: list[int]
    blocks: list[tuple[int, int, str, int]]
    summary: AuditSummary | None = None
    text: str = ""
    spilled: str | None = None

    def with_others(self, others: list[tuple[int, ResultFields, RecordData | None]]) -> ResultBatch:
        """The batch with ``others`` instead (the same results, fewer of them drawn)."""
        return self._replace(others=others)

    def spilled_to(self, path: str) -> ResultBatch:
        """The batch with its text in the file ``path`` instead (`spilled`)."""
        return self._replace(text="", spilled=path)

    def compliant(self) -> Iterator[tuple[int, CourseResult]]:
        """``(position, result)`` of each compliant course, in order."""
        blocks, at = self.blocks, 0
        for row, course_id, sessions in zip(self.rows, self.ids, self.sessions, strict=True):
            while at + 1 < len(blocks) and blocks[at + 1][0] <= row:
                at += 1
            first_row, position, source, line = blocks[at]
            offset = row - first_row
            fields = (line + offset, source, course_id, sessions, (), None)
            yield position + offset, result_of(fields)

    def results(self) -> Iterator[tuple[CourseResult, RecordData | None]]:
        """Every result of the batch, in order, each with its ``data``."""
        others = iter(self.others)
        compliant = self.compliant()
        following = next(others, None)
        for position, result in compliant:
            while following is not None and following[0] < position:
                yield result_of(following[1]), following[2]
                following = next(others, None)
            yield result, None
        while following is not None:
            yield result_of(following[1]), following[2]
            following = next(others, None)


def wanted_in_samples(fields: ResultFields) -> bool:
    """Whether a report may draw the result: an evaluated course with an error finding."""
    # A course the report may draw: evaluated, with an error finding.
    result = result_of(fields)
    return result.rejected is None and any(counts(f) for f in result.findings)


def text_batch(
    others: Iterable[tuple[int, ResultFields, RecordData | None]],
    compliant: int,
    text: tuple[FindingsForm | None, bool],
) -> ResultBatch:
    """A batch as the findings file's rows and its counts (`ResultForm.text`).

    The results are read one at a time: only their rows are held, never their findings.

    Args:
        others: ``(position, fields, data)`` of every result but the compliant courses
            without a finding, in order (``data`` for a report that may draw it).
        compliant: Those compliant courses, counted only.
        text: ``(form, inputs)``: the rows' form (None: counts only) and whether they
            name their input.

    Returns:
        The batch: its summary, its rows, and the results a report may draw.
    """
    summary = AuditSummary("", "", None, ())
    summary.add_compliant(compliant)
    form, inputs = text
    written: list[str] = []
    drawn = []
    for entry in others:
        result = result_of(entry[1])
        summary.add(result)
        if form is not None and (result.findings or result.rejected is not None):
            written.append(rows([result], form, inputs=inputs))
        if entry[2] is not None:
            drawn.append(entry)
    return ResultBatch(drawn, [], [], [], [], summary, "".join(written))
