"""Audits: one protocol over many courses, streamed, with a summary an auditor can read.

[`audit`][kaprules.audit] takes courses (or JSON Lines text, or records read from JSON
Lines and CSV files with [`read_records`][kaprules.auditing.read_records]) and yields one
[`CourseResult`][kaprules.CourseResult] per input record, in input order, whatever the
number of worker processes; its [`AuditSummary`][kaprules.AuditSummary] counts them.
Every record is accounted for: courses evaluated + records rejected = records read.
"""

from __future__ import annotations

import array
import collections
import contextlib
import csv
import datetime as dt
import gzip
import hashlib
import io
import itertools
import json
import os
import re
import select
import signal
import sys
import threading
import time
import zlib
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from typing import IO, Any, Literal, NamedTuple, TypeVar

import attrs

from kaprules import _fast
from kaprules._output import STOP_SIGNALS, held_signals
from kaprules._time import MAX_YEAR, MIN_YEAR
from kaprules._version import __version__
from kaprules.course_files import DATE_PATTERN, DATETIME_PATTERN, course_from_data
from kaprules.errors import InputError, KapRulesError, Problem, echo, shown_id
from kaprules.evaluation import check_protocol, evaluate, judged, versioned_findings
from kaprules.findings_files import FindingsForm, header, input_name, rows
from kaprules.loading import parse_course
from kaprules.model import Course, Kind
from kaprules.plugins import plugins_used
from kaprules.protocol import STANDARD, Protocol, ProtocolVersions
from kaprules.timeline import Timeline

# A protocol, or the versions of one (judged course by course).
AnyProtocol = Protocol | ProtocolVersions

__all__ = [
    "CSV_COLUMNS",
    "INTEGRATION_KIND",
    "MAX_CELL_CHARS",
    "MAX_LINE_BYTES",
    "MAX_REJECTED_KEPT",
    "MAX_SAMPLE_WEIGHT",
    "Audit",
    "AuditSummary",
    "CourseResult",
    "Engine",
    "Record",
    "audit",
    "read_records",
]

INTEGRATION_KIND = "integration"
"""The ``kind`` of a CSV row that is an integration meeting, not a session: its
``session_id`` is the meeting's id, ``start`` its start, ``therapist`` who held it, and its
``last_food``, ``escort`` and session-day cells (``last_liquid`` to ``vitals``) are
empty."""

CSV_COLUMNS = (
    "course_id",
    "timezone",
    "session_id",
    "kind",
    "start",
    "last_food",
    "escort",
    "therapist",
    "last_liquid",
    "ready_to_leave",
    "dose_mg",
    "monitoring_form",
    "vitals",
    "enrolled",
)
"""The columns of the CSV session table, one row per session (or integration meeting, of
kind `INTEGRATION_KIND`).

The first seven are required; ``therapist`` and the rest are optional. An empty
``escort`` or ``therapist`` cell is a blank one (as ``""`` in JSON Lines); in the columns
after ``therapist`` an empty (or blank) cell is a value not recorded, and any other cell is
read exactly as written, without spaces around it. ``last_liquid``, ``ready_to_leave`` and
``monitoring_form`` are date-times written as ``start`` is; ``dose_mg`` is a number of
milligrams written with digits and an optional decimal point (``37.5``); ``vitals`` holds
the session's blood-pressure readings in one cell, each ``AT SYSTOLIC/DIASTOLIC`` (one
space, whole numbers without a leading zero), separated by ``"; "``
(``2026-12-01T08:40:00-07:00 128/82; 2026-12-01T09:45:00-07:00 130/80``). ``enrolled``
is the course's REMS enrollment date (``YYYY-MM-DD``): every row of a course that gives
one must give the same, and the others leave it empty. A cell that cannot be read, one
the loader refuses (a date that does not exist) and one longer than `MAX_CELL_CHARS` make
the course a rejected record naming the line and column, never the cell's content."""

_REQUIRED_COLUMNS = CSV_COLUMNS[:7]
# The session-day columns: cells of a session row, empty in an integration meeting's.
_SESSION_DAY_COLUMNS = ("last_liquid", "ready_to_leave", "dose_mg", "monitoring_form", "vitals")
# Records sent to a worker at once, and chunks in flight per worker: enough to keep the
# workers busy, few enough that memory stays flat whatever the input's size.
_CHUNK = 500
_IN_FLIGHT = 4
_REASON_LIMIT = 500

MAX_SAMPLE_WEIGHT = 50_000
"""Sessions and findings, in all, of the courses an audit keeps as its samples (for the
report to draw): fifty courses of 10,000 sessions and 20,000 findings each would hold
1.3 GB; at this bound the samples hold about 45 MB however large the courses are."""

MAX_REJECTED_KEPT = 1000
"""Rejected records an `AuditSummary` keeps the line and reason of (the first 1000): every
rejected record is counted, and ``rejected_omitted`` says how many more there were, so a
million unusable lines cost no more memory than a thousand."""


@attrs.frozen
class Record:
    """One input record: a course to evaluate, or a line already known to be unusable.

    Attributes:
        line: Its 1-based line in its input (for CSV, the line of the course's first row).
        data: The course as JSON text, as plain data (a CSV course), or a `Course`; for a
            record rejected before parsing, None or what is known of it (``{"id": ...}``).
        source: Which input it came from (a file name, ``-`` for standard input).
        rejected: Why the record cannot be a course, when known before parsing.
    """

    line: int
    data: str | bytes | dict[str, Any] | Course | None
    source: str = ""
    rejected: str | None = None

    def course(self) -> Course:
        """The record's course.

        Returns:
            The course, read from the record's data.

        Raises:
            InputError: The data is not a course (the loader's problems), or the record
                was rejected before parsing.
        """
        return _course_of(self.data, self.rejected)


def _course_of(data: object, rejected: str | None) -> Course:
    if rejected is not None:
        raise InputError(rejected)
    if isinstance(data, Course):
        return data
    if isinstance(data, dict):
        return course_from_data(data)
    if isinstance(data, str | bytes):
        return parse_course(data)
    raise InputError(f"not a course: {type(data).__name__}")


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
        # What judged the audit: the protocol's digest, or each version's.
        shown: dict[str, Any] = {"id": self.protocol_id}
        if self.versions is not None:
            shown["versions"] = self.versions  # each session is judged by its own
        else:
            shown["version"] = self.protocol_version
            if self.protocol_sha256 is not None:
                shown["sha256"] = self.protocol_sha256
        # The bytes each file held, and the code of each plugin rule: with the digest,
        # every input that decided a result.
        shown["files"] = [{"name": input_name(n), "sha256": h} for n, h in self.protocol_files]
        shown["plugins"] = self.plugins
        return shown

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


@attrs.define
class Engine:
    """Which engine an audit ran on, and why: what ``kaprules audit`` prints as ``engine``.

    Not part of `AuditSummary`: the engines give the same summary, byte for byte.

    Attributes:
        name: ``"columnar"`` or ``"records"``.
        why: Why, in one sentence (``auto``'s reasons, or what kept an engine asked for
            from being used).
        fell_back: The engine asked for was not used, or not for evaluating courses (a
            protocol with a rule without a vectorised form sends every course the
            per-record way): ``kaprules audit`` says so on standard error.
    """

    name: str
    why: str
    fell_back: bool = False

    def to_dict(self) -> dict[str, str]:
        """``{"name", "why"}``."""
        return {"name": self.name, "why": self.why}


class Audit:
    """The results of [`audit`][kaprules.audit], one per record, in input order.

    Made by `audit` (its constructor's arguments are the engines' own, not an API).

    Iterate it once for the `CourseResult` objects (or `flagged` for only those with a
    finding or a rejection); `summary` and `samples` are complete once the iteration has
    ended (``samples_capped`` then says whether `MAX_SAMPLE_WEIGHT`
    left a course out of the samples). Reading them earlier runs the rest of the audit first,
    without keeping its results (memory stays flat): iterating the audit after that, or a
    second time, raises `KapRulesError` instead of silently giving no results.
    """

    def __init__(
        self,
        results: Iterator[tuple[CourseResult, RecordData | None] | ResultBatch],
        summary: AuditSummary,
        sample: int,
        records: _Records | None = None,
        form: ResultForm | None = None,
        engine: Engine | None = None,
    ) -> None:
        self._results = results
        self._engine = engine or Engine("records", "")
        self._summary = summary
        self._sample = sample
        self._samples: list[tuple[CourseResult, Course]] = []
        self._weight = 0  # sessions and findings of the samples kept
        self.samples_capped = False
        self._records = records
        self._started = False
        self._done = False
        self._running: Iterator[Any] | None = None
        self._pending: Iterator[tuple[CourseResult, RecordData | None]] | None = None
        self._form = form or ResultForm()

    def __iter__(self) -> Iterator[CourseResult]:
        self._claim()
        self._running = self._iterate()
        return self._running

    def _claim(self) -> None:
        if self._started:
            raise KapRulesError(
                "this audit's results were already consumed (by an earlier iteration, or "
                "by reading summary or samples first); iterate an audit once, then read its "
                "summary, or call kaprules.audit again"
            )
        self._started = True

    def _iterate(self, everything: bool = True) -> Iterator[CourseResult]:
        # Every result, or (everything=False) only those with a finding or a rejection:
        # the others are counted, and a columnar batch's compliant courses never made.
        for item in self._results:
            if not isinstance(item, ResultBatch):
                result, data = item
                self._take(result, data)
                if everything or result.findings or result.rejected is not None:
                    yield result
            elif everything:
                # The rest of a batch lives in this iteration: kept where _finish finds it
                # if the iteration is closed halfway.
                self._pending = item.results()
                for result, data in self._pending:
                    self._take(result, data)
                    yield result
                self._pending = None
            else:
                self._summary.add_compliant(len(item.rows))
                self._pending = ((make_result(CourseResult, f), d) for _, f, d in item.others)
                for result, data in self._pending:
                    self._take(result, data)
                    if result.findings or result.rejected is not None:
                        yield result
                self._pending = None
        self._end()

    def _end(self) -> None:
        if self._records is not None:
            # The digest of every byte kaprules read, whoever passed a digest object, and
            # each input's.
            self._summary.input_sha256 = self._records._sha256.hexdigest()
            self._summary.inputs = self._records._digest.each()
        self._done = True

    def _take(self, result: CourseResult, data: RecordData | None) -> None:
        self._summary.add(result)
        self._keep(result, data)

    def _keep(self, result: CourseResult, data: RecordData | None) -> None:
        if data is not None and len(self._samples) < self._sample:
            weight = result.sessions + len(result.findings)
            if self._samples and self._weight + weight > MAX_SAMPLE_WEIGHT:
                self.samples_capped = True
            else:
                self._weight += weight
                self._samples.append((result, _course_of(data, None)))

    def flagged(self) -> Iterator[CourseResult]:
        """Iterate the results with a finding or a rejection only, in input order.

        The same audit as iterating it (`summary` and `samples` are complete once it has
        ended): the other records, compliant courses without any finding, are counted
        (with the columnar engine, without their results being made).

        Raises:
            KapRulesError: The audit's results were already consumed.
        """
        self._claim()
        self._running = self._iterate(everything=False)
        return self._running

    def findings_text(
        self, form: FindingsForm | None = "jsonl", *, inputs: bool = False
    ) -> Iterator[str]:
        """Read the audit as its findings file: the text, in pieces, in input order.

        The same audit as iterating it (`summary` and `samples` are complete once it has
        ended). With the columnar engine, a course read with certainty gets no result:
        its rows and counts are made where it is evaluated (the per-record engine makes
        each result, and writes the rows from it). ``kaprules audit`` writes these pieces.

        Args:
            form: ``"jsonl"`` or ``"csv"`` (`kaprules.findings_files`; the CSV header comes
                first); None: counts only, every piece empty (one per batch of records,
                for a progress bar).
            inputs: Rows name their input (an audit of several inputs).

        Raises:
            KapRulesError: The audit's results were already consumed.
            InputError: ``form`` is not one of these.
        """
        if form not in ("jsonl", "csv", None):
            raise InputError("form: must be 'jsonl', 'csv' or None")
        self._claim()
        self._form.text = (form, bool(inputs))
        self._running = self._texts(form, bool(inputs))
        return self._running

    def _texts(self, form: FindingsForm | None, inputs: bool) -> Iterator[str]:
        if form is not None and header(form, inputs=inputs):
            yield header(form, inputs=inputs)
        flagged: list[CourseResult] = []  # results one by one: written in runs
        since = held = 0  # results, and findings, since the last run was written
        for item in self._results:
            if isinstance(item, ResultBatch) and item.summary is not None:
                if flagged or since:
                    yield rows(flagged, form, inputs=inputs) if form is not None else ""
                    flagged, since, held = [], 0, 0
                self._summary.merge(item.summary)
                for _, fields, data in item.others:
                    self._keep(make_result(CourseResult, fields), data)
                yield item.text if form is not None else ""
                continue
            self._pending = item.results() if isinstance(item, ResultBatch) else iter((item,))
            for result, data in self._pending:
                self._take(result, data)
                since += 1
                if result.findings or result.rejected is not None:
                    flagged.append(result)
                    held += len(result.findings)
            self._pending = None
            if since >= _TEXT_RUN or held >= _TEXT_FINDINGS:
                yield rows(flagged, form, inputs=inputs) if form is not None else ""
                flagged, since, held = [], 0, 0
        if flagged or since:
            yield rows(flagged, form, inputs=inputs) if form is not None else ""
        self._end()

    @property
    def counted(self) -> int:
        """Records counted so far: every record read, once an iteration has ended."""
        return self._summary.lines_read

    def _finish(self) -> None:
        if self._done:
            return
        # The rest of the results (all of them, or those after a loop left early),
        # counted and dropped; a later iteration is an error. A loop left early goes on
        # where it stopped: within a columnar batch, its rest is in that iteration only.
        self._started = True
        for _ in self._running or ():
            pass
        # An iteration closed within a batch left the batch's rest here.
        for result, data in self._pending or ():
            self._take(result, data)
        self._pending = None
        if not self._done:
            self._form.text = (None, False)
            for _ in self._texts(None, False):
                pass

    @property
    def samples(self) -> list[tuple[CourseResult, Course]]:
        """Courses with an error finding, each with its result: what a report draws.

        The first ``sample`` of them (the argument of `audit`), in input order, while
        their sessions and findings come to at most `MAX_SAMPLE_WEIGHT` in all (the first
        is always kept); ``samples_capped`` is True when a course was left out for it.
        """
        self._finish()
        return self._samples

    @property
    def summary(self) -> AuditSummary:
        """The counts of the whole audit (its results are consumed if not read yet)."""
        self._finish()
        return self._summary

    @property
    def engine(self) -> Engine:
        """The engine chosen, and why.

        Final once the iteration has begun (``auto`` chooses by the input's size as it
        reads ahead); ``fell_back`` is known at once.
        """
        return self._engine


def audit(
    courses: Iterable[Course | str | bytes | Record],
    protocol: AnyProtocol = STANDARD,
    *,
    as_of: dt.datetime | dt.date | Literal["today"] | None = None,
    jobs: int = 1,
    sample: int = 0,
    engine: str = "auto",
) -> Audit:
    """Evaluate ``protocol`` on many courses, streamed, in input order.

    Args:
        courses: `Course` objects, JSON texts of courses (one per item, as JSON Lines
            hold them), or `Record` objects from `read_records`. Read lazily: memory stays
            flat whatever their number.
        protocol: The protocol (kap-standard v1 by default), or its versions: each
            session is judged by the version in force on its local date, course by course.
        as_of: As for `evaluate`, the same for every course; or ``"today"``: each
            course's own local date (in its timezone) at the moment the audit starts, as
            ``kaprules check --as-of today`` takes it. The summary's ``as_of`` then reads
            ``"today (each course's local date at <UTC instant>)"``.
        jobs: Worker processes (1: evaluate in this process). Results come in input
            order whatever the number.
        sample: How many courses with an error finding to keep, with their results, as
            the audit's `samples` (for a report that draws them).
        engine: ``"records"`` evaluates course by course; ``"columnar"`` reads the JSON
            Lines of `read_records` in chunks as columns (Polars, the ``columnar`` extra)
            and evaluates in vectorised form what it can take with certainty (``as_of``
            included), the rest course by course; ``"auto"`` (the default) takes
            the columnar engine when Polars is installed, the input is `read_records`',
            every rule has a vectorised form, and the input is not JSON Lines of fewer
            than 4 MiB (decompressed) for each of ``jobs`` (up to 16 MiB), which audit
            sooner course by course. The results are the same, byte for byte.

    Returns:
        The audit: iterate it for the results; then read its summary.

    Raises:
        InputError: ``protocol``, ``as_of``, ``jobs``, ``sample`` or ``engine`` is
            unusable (a bad record is a rejected result, never an exception).
    """
    from kaprules import _columnar

    check_protocol(protocol)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or not 1 <= jobs <= 256:
        raise InputError("jobs: must be a whole number from 1 to 256")
    if isinstance(sample, bool) or not isinstance(sample, int) or sample < 0:
        raise InputError("sample: must be a whole number, 0 or more")
    moment: AsOf
    shown: str | None
    if isinstance(as_of, str) and as_of == "today":
        # One instant for the whole audit: a run across midnight does not change its mind.
        moment = _Today(dt.datetime.now(dt.UTC).replace(microsecond=0))
        shown = f"today (each course's local date at {moment.instant.isoformat()})"
    else:
        # as_of is checked once here, so that no record is rejected for it.
        evaluate(Course("UTC", []), protocol, as_of=as_of)
        assert not isinstance(as_of, str)  # evaluate() refused any other text
        moment = as_of
        shown = None if as_of is None else as_of.isoformat()
    summary = summary_for(protocol, shown)
    readable = isinstance(courses, _Records) and courses._fresh
    chosen, why = _columnar.engine_choice(engine, protocol, readable)
    # Asked for and not used: a reason that says "but" (see engine_choice).
    fell_back = engine != "auto" and ", but " in why
    if chosen:
        assert isinstance(courses, _Records)
        assert isinstance(protocol, Protocol)
        form = ResultForm()
        blocks = courses._blocks()
        ran = Engine("columnar", why, fell_back)
        columnar: Iterator[tuple[CourseResult, RecordData | None] | ResultBatch]
        if engine == "columnar":
            columnar = _columnar.results(blocks, protocol, moment, jobs, sample, form)
        else:
            columnar = _by_size(blocks, protocol, moment, jobs, sample, form, ran)
        return Audit(columnar, summary, sample, courses, form, ran)
    ran = Engine("records", why, fell_back)
    units: Iterator[Record | LineBlock]
    if jobs > 1 and _fast.ENABLED and isinstance(courses, _Records) and courses._fresh:
        # JSON Lines go to the workers as blocks of bytes, split there: the main process
        # touches no line, so it keeps up with any number of workers.
        units = courses._blocks()
    else:
        # A reader not yet read is the audit's: it is left empty, whatever the audit
        # has read ahead so far.
        items = courses._records() if isinstance(courses, _Records) and courses._fresh else courses
        units = (_as_record(item, index) for index, item in enumerate(items, start=1))
    results = _per_record(units, protocol, moment, jobs, sample)
    records = courses if isinstance(courses, _Records) else None
    return Audit(results, summary, sample, records, engine=ran)


def summary_for(protocol: AnyProtocol, as_of: str | None) -> AuditSummary:
    """An empty summary of an audit of ``protocol``, stamped with its digests and plugins."""
    if isinstance(protocol, ProtocolVersions):
        every = [rule for version in protocol.versions for rule in version.rules]
        return AuditSummary(
            protocol.id,
            protocol.latest.version,
            as_of,
            protocol.rule_ids,
            versions=protocol.stamp(),
            plugins=[p.to_dict() for p in plugins_used(every)],
        )
    return AuditSummary(
        protocol.id,
        protocol.version,
        as_of,
        protocol.rule_ids,
        protocol_sha256=protocol.digest,
        plugins=[p.to_dict() for p in plugins_used(protocol.rules)],
    )


def _per_record(
    units: Iterator[Record | LineBlock],
    protocol: AnyProtocol,
    as_of: AsOf,
    jobs: int,
    sample: int,
) -> Iterator[tuple[CourseResult, RecordData | None]]:
    if jobs == 1:
        return _serial(units, protocol, as_of, sample)
    return _parallel(units, protocol, as_of, jobs, sample)


def _by_size(
    blocks: Iterator[Record | LineBlock],
    protocol: Protocol,
    as_of: AsOf,
    jobs: int,
    sample: int,
    form: ResultForm,
    ran: Engine,
) -> Iterator[tuple[CourseResult, RecordData | None] | ResultBatch]:
    """The ``auto`` engine: columnar for a large input, course by course for a small one.

    The columnar engine pays a fixed cost in each process that runs it (loading Polars,
    reading the zones' tables): JSON Lines of fewer than `_columnar.small_input` bytes
    cost less course by course, with the same results. Its blocks are read ahead to
    tell, then evaluated as they are. A CSV course (a record) ends the reading ahead: its
    size is not known, and the columnar engine reads CSV course by course anyway.
    """
    from kaprules import _columnar

    limit = _columnar.small_input(jobs)
    ahead: list[Record | LineBlock] = []
    size = 0
    for unit in blocks:
        ahead.append(unit)
        size += len(unit.data) if isinstance(unit, LineBlock) else limit
        if size >= limit:
            units = itertools.chain(ahead, blocks)
            ran.why += f", and the input is not JSON Lines of under {_SMALL} for each worker"
            yield from _columnar.results(units, protocol, as_of, jobs, sample, form)
            return
    ran.name = "records"
    # The same words whatever the jobs: the summary's JSON does not change with them.
    ran.why = f"JSON Lines of under {_SMALL} for each worker are audited sooner course by course"
    yield from _per_record(iter(ahead), protocol, as_of, jobs, sample)


_SMALL = "4 MiB"  # _columnar.small_input(1), as the engine's reason says it


@attrs.frozen
class _Today:
    """``as_of="today"`` of an audit, fixed at its start: each course's local date then."""

    instant: dt.datetime

    def date_in(self, zone: dt.tzinfo) -> dt.date:
        """The local date of the instant in ``zone``."""
        return self.instant.astimezone(zone).date()


AsOf = dt.datetime | dt.date | _Today | None


def _as_record(item: Course | str | bytes | Record, index: int) -> Record:
    if isinstance(item, Record):
        return item
    return Record(index, item)


RecordData = str | bytes | dict[str, Any] | Course
make_result = tuple.__new__
ResultFields = tuple[int, str, str | None, int, tuple[dict[str, Any], ...], str | None]
WorkResult = tuple[list[ResultFields], list[tuple[int, Any]]]
"""What a worker sends back for a task: its result fields in order, and ``(position,
data)`` of the courses a report may draw."""


# A record as plain values: (line, data, source, rejected), as Record holds them.
RecordItem = tuple[int, Any, str, str | None]


# Results read one by one are written as findings text this many at a time, or sooner
# once they hold this many findings (about a kilobyte each): 500 courses of 10,000
# findings each would hold gigabytes, where a run is now held to some 10 MB and a course.
_TEXT_RUN = 500
_TEXT_FINDINGS = 10_000


@attrs.define
class ResultForm:
    """How an audit's results are read, set when reading starts (the engine asks then).

    Attributes:
        text: None: as results; else ``(form, inputs)``: as the findings file's text
            (`kaprules.findings_files`; form None: counts only, no text).
    """

    text: tuple[FindingsForm | None, bool] | None = None


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
    """

    others: list[tuple[int, ResultFields, RecordData | None]]
    rows: list[int]
    ids: list[str | None]
    sessions: list[int]
    blocks: list[tuple[int, int, str, int]]
    summary: AuditSummary | None = None
    text: str = ""

    def compliant(self) -> Iterator[tuple[int, CourseResult]]:
        """``(position, result)`` of each compliant course, in order."""
        blocks, at = self.blocks, 0
        for row, course_id, sessions in zip(self.rows, self.ids, self.sessions, strict=True):
            while at + 1 < len(blocks) and blocks[at + 1][0] <= row:
                at += 1
            first_row, position, source, line = blocks[at]
            offset = row - first_row
            fields = (line + offset, source, course_id, sessions, (), None)
            yield position + offset, make_result(CourseResult, fields)

    def results(self) -> Iterator[tuple[CourseResult, RecordData | None]]:
        """Every result of the batch, in order, each with its ``data``."""
        others = iter(self.others)
        compliant = self.compliant()
        following = next(others, None)
        for position, result in compliant:
            while following is not None and following[0] < position:
                yield make_result(CourseResult, following[1]), following[2]
                following = next(others, None)
            yield result, None
        while following is not None:
            yield make_result(CourseResult, following[1]), following[2]
            following = next(others, None)


def course_result(record: Record, protocol: AnyProtocol, as_of: AsOf) -> CourseResult:
    item = (record.line, record.data, record.source, record.rejected)
    return make_result(CourseResult, result_fields(item, protocol, as_of))


def result_fields(item: RecordItem, protocol: AnyProtocol, as_of: AsOf) -> ResultFields:
    """A record's `CourseResult`, as the plain tuple of its fields (what workers send)."""
    line, data, source, rejected = item
    if rejected is not None:
        return (line, source, _readable_id(data), 0, (), rejected)
    try:
        course = _course_of(data, rejected)
    except InputError as exc:
        if isinstance(data, _CsvCourse):
            exc = data.explain(exc)  # by line and column, as a CSV table's reader names
        return (line, source, _readable_id(data), 0, (), _reason(exc))
    # evaluate() without its argument checks, made once by audit(), and without a Report.
    moment = as_of.date_in(course.zone) if isinstance(as_of, _Today) else as_of
    if isinstance(protocol, ProtocolVersions):
        found = versioned_findings(course, protocol, moment)[0]
    else:
        timeline = Timeline.of(course, moment, series_length=protocol.series_length)
        found = judged(timeline, protocol)
    findings = tuple(f.to_dict() for f in found) if found else ()
    return (line, source, course.id, len(course.sessions), findings, None)


def _readable_id(data: object) -> str | None:
    """The course ``id`` of a rejected record, when its JSON parsed and the id is a string.

    Parsed again only for a rejected record (the loader's error does not carry it).
    """
    if isinstance(data, str | bytes):
        try:
            data = json.loads(data)
        except (ValueError, RecursionError):
            return None
    if isinstance(data, dict):
        course_id = data.get("id")
        return course_id if isinstance(course_id, str) else None
    return None


def wanted_in_samples(fields: ResultFields) -> bool:
    # A course the report may draw: evaluated, with an error finding.
    return fields[5] is None and any(counts(f) for f in fields[4])


def _items(units: Iterable[Record | LineBlock]) -> Iterator[RecordItem]:
    for unit in units:
        if isinstance(unit, LineBlock):
            yield from unit.items()
        else:
            yield (unit.line, unit.data, unit.source, unit.rejected)


def _evaluated(
    units: Iterable[Record | LineBlock],
    protocol: AnyProtocol,
    as_of: AsOf,
    sample: int,
) -> Iterator[tuple[ResultFields, Any]]:
    """Each record's result fields, and its data when a report may draw it.

    The data comes with the first ``sample`` courses with an error finding; None otherwise.
    """
    kept = 0
    for item in _items(units):
        fields = result_fields(item, protocol, as_of)
        data = None
        if kept < sample and wanted_in_samples(fields):
            data, kept = item[1], kept + 1
        yield fields, data


def _serial(
    units: Iterator[Record | LineBlock],
    protocol: AnyProtocol,
    as_of: AsOf,
    sample: int,
) -> Iterator[tuple[CourseResult, RecordData | None]]:
    for fields, data in _evaluated(units, protocol, as_of, sample):
        yield make_result(CourseResult, fields), data


def _reason(exc: InputError) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= _REASON_LIMIT else text[:_REASON_LIMIT] + "..."


# --- worker processes -----------------------------------------------------------------

_worker: tuple[AnyProtocol, AsOf, int] | None = None

# How often a worker looks for its parent where the kernel cannot be asked to tell it.
_PARENT_POLL_SECONDS = 0.5


def _start_worker(
    protocol: AnyProtocol,
    as_of: AsOf,
    sample: int,
    parent: int,
    by_main_thread: bool,
) -> None:
    global _worker
    _worker = (protocol, as_of, sample)
    # Ctrl-C (and a terminal's SIGHUP) reaches the whole process group: the main process
    # answers it and stops the workers; a worker printing its own KeyboardInterrupt would
    # only add noise. SIGTERM ends a worker at once (a forked worker inherits the CLI's
    # handler otherwise).
    for number in STOP_SIGNALS:
        signal.signal(number, signal.SIG_DFL if number == signal.SIGTERM else signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):  # held by _parallel while forking
        signal.pthread_sigmask(signal.SIG_UNBLOCK, set(STOP_SIGNALS))
    _die_with(parent, by_main_thread)


def _die_with(parent: int, by_main_thread: bool) -> None:
    """End this worker when the process that started it ends, even by ``kill -9``.

    ``by_main_thread``: whether the parent's main thread forked it.
    """
    if sys.platform.startswith("linux") and by_main_thread:
        # The kernel sends SIGKILL when the parent dies (PR_SET_PDEATHSIG = 1). It means
        # the parent *thread*: a worker forked by another thread, which may end while the
        # audit is read on in another, has only the watch below.
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the request above was made
        os._exit(1)
    # Elsewhere (and as a second guard), a thread notices the parent is gone: a dead
    # parent's children are given a new parent.
    watcher = threading.Thread(target=_watch, args=(parent,), daemon=True)
    watcher.start()


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(_PARENT_POLL_SECONDS)
    os._exit(1)


def _work(chunk: list[LineBlock | tuple[Any, ...]]) -> WorkResult:
    """A chunk's results as plain tuples, and the data of the courses the report may draw.

    Plain tuples both ways: they cross the process boundary several times faster than
    attrs instances. At most ``sample`` data per chunk come back, by result position.
    """
    assert _worker is not None
    protocol, as_of, sample = _worker
    units = (unit if isinstance(unit, LineBlock) else Record(*unit) for unit in chunk)
    results: list[ResultFields] = []
    drawn: list[tuple[int, Any]] = []
    for fields, data in _evaluated(units, protocol, as_of, sample):
        if data is not None:
            drawn.append((len(results), data))
        results.append(fields)
    return results, drawn


def _chunks(units: Iterator[Record | LineBlock]) -> Iterator[list[LineBlock | tuple[Any, ...]]]:
    # A block (a few hundred lines) is a chunk of its own; records go _CHUNK at a time, or
    # fewer when they hold as much as a block (long CSV courses): a chunk's results are
    # held in memory, and 500 courses of 10,000 sessions would be gigabytes of them.
    chunk: list[LineBlock | tuple[Any, ...]] = []
    size = 0
    for unit in units:
        if isinstance(unit, LineBlock):
            if chunk:
                yield chunk
                chunk, size = [], 0
            yield [unit]
            continue
        chunk.append(attrs.astuple(unit, recurse=False))
        size += record_bytes(unit)
        if len(chunk) >= _CHUNK or size >= BLOCK_BYTES:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


# What a session of a record read as data (a CSV course's row) counts for in bytes.
_SESSION_BYTES = 100


def record_bytes(record: Record) -> int:
    """About how many bytes of input a record is: its text, or its sessions' rows.

    What the engines chunk records by, so that a chunk's results stay bounded however
    long its courses are.
    """
    data = record.data
    if isinstance(data, str | bytes):
        return len(data)
    if isinstance(data, Course):
        return _SESSION_BYTES * (len(data.sessions) + len(data.integrations))
    if isinstance(data, dict):
        sessions, meetings = data.get("sessions"), data.get("integrations")
        count = sum(len(x) for x in (sessions, meetings) if isinstance(x, list))
        return _SESSION_BYTES * count
    return 0


_Task = TypeVar("_Task")
_Done = TypeVar("_Done")


def worker_settings() -> tuple[AnyProtocol, AsOf, int]:
    """The protocol, ``as_of`` and ``sample`` of this worker process (from `in_workers`)."""
    assert _worker is not None, "not in a worker process started by in_workers"
    return _worker


def start_method() -> str:
    """How `in_workers` starts its worker processes: ``"fork"`` where there is a fork.

    Forked workers start at once and nothing of the caller's ``__main__`` is run again
    (spawn and forkserver import it, which breaks scripts without a ``__main__`` guard
    and stdin scripts); they also inherit what the caller mapped before the pool.
    """
    import multiprocessing

    return "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"


def in_workers(
    tasks: Iterator[_Task],
    work: Callable[[_Task], _Done],
    protocol: AnyProtocol,
    as_of: AsOf,
    jobs: int,
    sample: int,
    in_flight: int,
) -> Generator[tuple[_Task, _Done], None, None]:
    """Each task with ``work(task)``, run in ``jobs`` worker processes, in task order.

    The one pool of an audit, whichever engine: workers that ignore the stop signals the
    main process answers and die with it (`worker_settings` gives them the audit's
    settings), a bounded window of ``jobs * in_flight`` tasks in flight, and no worker
    left running after an error, a signal or a loop left early. A worker that died, at
    any point of its life (starting, receiving a task, working, sending its result), is a
    `KapRulesError`: each worker has pipes of its own, and nothing it holds can stop the
    others or the main process.

    Args:
        tasks: The tasks, read as the window frees up.
        work: A module-level function (a worker runs it by name).
        protocol: The audit's protocol.
        as_of: The audit's ``as_of``.
        jobs: Worker processes.
        sample: The audit's ``sample``.
        in_flight: Tasks in flight per worker.

    Yields:
        ``(task, result)`` in the order of ``tasks``.

    Raises:
        KapRulesError: A worker process died.
    """
    # The workers are forked by the thread that reads the audit first (it sends).
    settings = (
        protocol,
        as_of,
        sample,
        os.getpid(),
        threading.current_thread() is threading.main_thread(),
    )
    pool = _Pool(work, jobs, settings)
    try:
        window: collections.deque[tuple[int, _Task]] = collections.deque()
        for number, task in enumerate(tasks):
            if not pool.started:
                # A signal while forking would run the caller's handler in a worker
                # before _start_worker replaces it.
                with held_signals():
                    pool.start()
            pool.send(number, task)
            window.append((number, task))
            if len(window) >= jobs * in_flight:
                first, done = window.popleft()
                yield done, pool.result(first)
        while window:
            first, done = window.popleft()
            yield done, pool.result(first)
        pool.close()
    except BaseException:
        # An error, a dead worker, Ctrl-C, SIGTERM or a loop left early: no worker
        # outlives the audit, and none finishes tasks nobody will read.
        pool.stop()
        raise


_DIED = "a worker process died (killed by a signal, or out of memory); the audit was not completed"


class _Worker(NamedTuple):
    """A worker process, as the main process holds it."""

    process: Any  # a multiprocessing Process
    tasks: Any  # the main process's end of its task pipe (a Connection)
    results: Any  # the main process's end of its result pipe
    sent: collections.deque[int]  # the numbers of its tasks without a result yet, in order


class _Pool:
    """Worker processes, each with a pipe of its own for its tasks and one for its results.

    A pipe per worker, not a queue all workers share: a queue's lock went with a worker
    killed while it wrote a result, and the other workers and the main process then
    waited for it forever. Here a worker killed at any moment leaves only its own pipe
    half written, which the main process reads as an end of file (it holds no copy of the
    writing end, nor does any other worker), and its death shows on its sentinel.
    """

    def __init__(self, work: Callable[[Any], Any], jobs: int, settings: tuple[Any, ...]) -> None:
        self._work = work
        self._jobs = jobs
        self._settings = settings
        self._workers: list[_Worker] = []
        self._done: dict[int, Any] = {}  # results received before their turn
        self.started = False

    def start(self) -> None:
        """Start the workers."""
        import multiprocessing

        context: Any = multiprocessing.get_context(start_method())
        forked = context.get_start_method() == "fork"
        self.started = True
        for _ in range(self._jobs):
            task_reader, task_writer = context.Pipe(duplex=False)
            result_reader, result_writer = context.Pipe(duplex=False)
            # A forked worker inherits the main process's ends of the earlier workers'
            # pipes: it closes them, so that a worker's death is an end of file at once.
            inherited = [c for w in self._workers for c in (w.tasks, w.results)] if forked else []
            process = context.Process(
                target=_serve,
                args=(self._work, self._settings, task_reader, result_writer, inherited),
                daemon=True,
            )
            self._workers.append(_Worker(process, task_writer, result_reader, collections.deque()))
            process.start()
            task_reader.close()
            result_writer.close()

    def send(self, number: int, task: Any) -> None:
        """Send task ``number`` to the worker with the fewest tasks in hand.

        Raises:
            KapRulesError: The worker died.
        """
        worker = min(self._workers, key=lambda w: len(w.sent))
        try:
            worker.tasks.send(task)
        except OSError:  # its reading end is gone: the worker died
            raise KapRulesError(_DIED) from None
        worker.sent.append(number)

    def result(self, number: int) -> Any:
        """The result of task ``number``, once its worker sent it.

        Raises:
            KapRulesError: A worker died.
            Exception: What ``work`` raised in the worker.
        """
        while number not in self._done:
            self._receive()
        return self._done.pop(number)

    def _receive(self) -> None:
        # The results ready, or a worker's death, whichever comes first.
        from multiprocessing.connection import wait
        from multiprocessing.reduction import ForkingPickler

        workers = self._workers
        ready = wait([w.results for w in workers] + [w.process.sentinel for w in workers])
        if any(w.process.sentinel in ready for w in workers):  # a worker ended
            raise KapRulesError(_DIED)
        for worker in workers:
            if worker.results not in ready:
                continue
            try:
                payload = worker.results.recv_bytes()
            except (EOFError, OSError):  # it died, perhaps halfway through a result
                raise KapRulesError(_DIED) from None
            done, value = ForkingPickler.loads(payload)
            if not done:
                raise value
            self._done[worker.sent.popleft()] = value

    def close(self) -> None:
        """End the workers once every result is in: each finishes and exits."""
        for worker in self._workers:
            with contextlib.suppress(OSError):
                worker.tasks.send(None)
        for worker in self._workers:
            worker.process.join(5)
        self.stop()

    def stop(self) -> None:
        """Kill the workers at once, wait for them, and close the pipes."""
        for worker in self._workers:
            with contextlib.suppress(OSError, ValueError, AttributeError):
                worker.process.kill()
        # Each step on its own: a stop run again (an audit closed as the interpreter
        # exits) finds some of it done.
        for worker in self._workers:
            with contextlib.suppress(OSError, ValueError, AttributeError, AssertionError):
                worker.process.join(5)
            for connection in (worker.tasks, worker.results):
                with contextlib.suppress(OSError):
                    connection.close()
        self._workers = []


def _serve(
    work: Callable[[Any], Any],
    settings: tuple[Protocol, AsOf, int, int, bool],
    tasks: Any,
    results: Any,
    inherited: list[Any],
) -> None:
    """A worker process: the tasks of its pipe, each result sent back on its own pipe.

    A thread reads the tasks as they come and another sends the results, so the main
    process never waits on a worker that is busy, nor a worker on the main process. What
    ``work`` raises goes back to the main process, to be raised there; anything else
    ends the worker without a word (never a traceback): the main process says it died.
    """
    try:
        _serve_tasks(work, settings, tasks, results, inherited)
    except BaseException:
        os._exit(1)


def _serve_tasks(
    work: Callable[[Any], Any],
    settings: tuple[Protocol, AsOf, int, int, bool],
    tasks: Any,
    results: Any,
    inherited: list[Any],
) -> None:
    import queue
    from multiprocessing.reduction import ForkingPickler

    for connection in inherited:
        connection.close()
    _start_worker(*settings)
    incoming: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
    outgoing: queue.SimpleQueue[memoryview | None] = queue.SimpleQueue()
    threading.Thread(target=_read_tasks, args=(tasks, incoming), daemon=True).start()
    sender = threading.Thread(target=_send_results, args=(results, outgoing), daemon=True)
    sender.start()
    while (payload := incoming.get()) is not None:
        try:
            task = ForkingPickler.loads(payload)
            if task is None:  # the main process has every result
                break
            answer = ForkingPickler.dumps((True, work(task)))
        # Everything, as concurrent.futures does: Polars answers a Ctrl-C that reaches the
        # whole process group with KeyboardInterrupt, though the worker ignores SIGINT.
        except BaseException as exc:
            answer = _failure(exc)
        outgoing.put(answer)
    outgoing.put(None)
    sender.join()


def _read_tasks(tasks: Any, incoming: Any) -> None:
    try:
        while True:
            incoming.put(tasks.recv_bytes())
    except (EOFError, OSError):  # the main process is gone, or stopped the pool
        incoming.put(None)


def _send_results(results: Any, outgoing: Any) -> None:
    try:
        while (payload := outgoing.get()) is not None:
            results.send_bytes(payload)
    except OSError:  # nobody to send to: the main process is gone, or stopped the pool
        os._exit(1)


def _failure(exc: BaseException) -> memoryview:
    # What work raised, for the main process to raise; an exception that cannot cross
    # the pipe is named.
    from multiprocessing.reduction import ForkingPickler

    try:
        return ForkingPickler.dumps((False, exc))
    except Exception:
        failed = KapRulesError(f"a worker process failed: {type(exc).__name__}")
        return ForkingPickler.dumps((False, failed))


def _parallel(
    units: Iterator[Record | LineBlock],
    protocol: AnyProtocol,
    as_of: AsOf,
    jobs: int,
    sample: int,
) -> Iterator[tuple[CourseResult, RecordData | None]]:
    # A bounded window of chunks in flight, collected in submission order: input order out,
    # and never more than jobs * _IN_FLIGHT chunks held in memory.
    kept = 0
    done = in_workers(_chunks(units), _work, protocol, as_of, jobs, sample, _IN_FLIGHT)
    with contextlib.closing(done):  # leaving early stops the workers at once
        for _, (results, data) in done:
            wanted = dict(data[: max(sample - kept, 0)])
            kept += len(wanted)
            for position, fields in enumerate(results):
                yield make_result(CourseResult, fields), wanted.get(position)


# --- reading files --------------------------------------------------------------------


class _Hashing(io.RawIOBase):
    """A binary stream that hashes what is read through it."""

    def __init__(self, raw: IO[bytes], digest: Any) -> None:
        self._raw = raw
        self._digest = digest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        readinto = getattr(self._raw, "readinto", None)
        while True:
            if readinto is None:
                data = self._raw.read(len(buffer))
                size = None if data is None else len(data)
                if data:
                    buffer[: len(data)] = data
            else:  # straight into the buffer: no copy
                size = readinto(buffer)
            if size is not None:
                break
            # A non-blocking stream with nothing ready yet (not its end): wait for it.
            select.select([self._raw], [], [])
        self._digest.update(memoryview(buffer)[:size])
        return int(size)


@attrs.frozen
class LineBlock:
    """Whole lines of a JSON Lines input, read in one go for a worker to split.

    ``lines`` counts them: the line breaks, and one more when ``data`` does not end in one
    (a file's last line without its line break).
    """

    source: str
    first_line: int
    data: bytes
    lines: int

    def items(self) -> Iterator[RecordItem]:
        lines = self.data.split(b"\n")
        if self.data.endswith(b"\n"):
            lines.pop()
        for number, line in enumerate(lines, start=self.first_line):
            yield line_item(number, line, self.source)


class _Records(Iterator[Record]):
    """What `read_records` returns: its records one by one, or its JSON Lines in blocks.

    `audit` takes the blocks when it is given the reader before any record was read.
    """

    def __init__(self, sources: Sequence[str], digest: Any | None) -> None:
        self._sources = list(sources)
        # Its own SHA-256 (an audit's input_sha256), and the caller's digest if any.
        self._sha256 = hashlib.sha256()
        self._digest = _Digests(self._sha256, digest)
        self._units: Iterator[Record | LineBlock] | None = None

    @property
    def _fresh(self) -> bool:
        return self._units is None

    @property
    def bytes_read(self) -> int:
        """The bytes read from the inputs so far, as stored (compressed, for ``.gz``).

        Beside the inputs' sizes, it says how far an audit has come.
        """
        return self._digest.read

    def _blocks(self) -> Iterator[Record | LineBlock]:
        # An audit takes the records as blocks: they are its to read, and this reader is
        # left empty.
        self._units = iter(())
        return _read(self._sources, self._digest, blocks=True)

    def _records(self) -> Iterator[Record]:
        # An audit takes the records one by one: they are its to read, and this reader is
        # left empty now, before the audit reads any.
        self._units = iter(())
        units = _read(self._sources, self._digest, blocks=False)
        return (unit for unit in units if isinstance(unit, Record))

    def __next__(self) -> Record:
        if self._units is None:
            self._units = _read(self._sources, self._digest, blocks=False)
        unit = next(self._units)
        assert isinstance(unit, Record)
        return unit


def read_records(
    sources: Sequence[str],
    *,
    digest: Any | None = None,
) -> Iterator[Record]:
    """Records from JSON Lines or CSV files, read lazily, gzip or not.

    A file is CSV when its name ends in ``.csv`` (or ``.csv.gz``); otherwise JSON Lines,
    one course per line. Gzip is recognized by its first bytes. ``-`` is standard input
    (JSON Lines). In a CSV table the rows of one course must be contiguous: a course id
    met again after another course is a rejected record naming both lines.

    Args:
        sources: File paths, or ``-``.
        digest: A ``hashlib`` object updated with every byte read, in order. An audit
            of these records sets its summary's ``input_sha256`` whether given or not.

    Yields:
        One `Record` per JSON line or per CSV course.

    Raises:
        InputError: A file cannot be opened or read, or a CSV header lacks a column.
    """
    return _Records(sources, digest)


class _Digests:
    """Updates one or two hashlib objects with the same bytes, and one per input."""

    def __init__(self, own: Any, other: Any | None) -> None:
        self._own = own
        self._other = other
        self._each: list[tuple[str, Any]] = []
        self.read = 0  # bytes, as stored (compressed for .gz): what a progress bar counts

    def start(self, source: str) -> None:
        """Begin the digest of the input ``source``: the bytes from now on are its."""
        self._each.append((source, hashlib.sha256()))

    def each(self) -> list[tuple[str, str]]:
        """``(source, SHA-256)`` of each input begun, in order."""
        return [(source, digest.hexdigest()) for source, digest in self._each]

    def update(self, data: bytes) -> None:
        self.read += len(data)
        self._own.update(data)
        if self._other is not None:
            self._other.update(data)
        if self._each:
            self._each[-1][1].update(data)


def _read(sources: Sequence[str], digest: Any, *, blocks: bool) -> Iterator[Record | LineBlock]:
    for source in sources:
        if source == "-":
            raw: IO[bytes] = sys.stdin.buffer
            opened = None
        else:
            try:
                opened = open(source, "rb")  # noqa: SIM115 (closed below)
            except (OSError, ValueError) as exc:
                why = getattr(exc, "strerror", None) or "not a readable file"
                raise InputError(f"cannot read {shown_id(source, 200)}: {why}") from None
            raw = opened
        digest.start(source)
        try:
            buffered = io.BufferedReader(_Hashing(raw, digest), 1 << 16)
            stream: IO[bytes] = buffered
            if buffered.peek(2)[:2] == b"\x1f\x8b":
                stream = gzip.GzipFile(fileobj=buffered)  # type: ignore[assignment]
            name = source.lower().removesuffix(".gz")
            if name.endswith(".csv"):
                yield from _csv_records(stream, source)
            elif blocks:
                yield from _jsonl_blocks(stream, source)
            else:
                yield from _jsonl_records(stream, source)
        except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise InputError(f"cannot read {shown_id(source, 200)}: {exc}") from None
        finally:
            if opened is not None:
                opened.close()


MAX_LINE_BYTES = 16 * 1024 * 1024
"""The longest JSON line, or CSV row, an audit reads (16 MiB; a CSV row in characters, with
the line breaks of its quoted cells): a longer one stops the audit (exit 2) naming its
line, so an endless line (``/dev/zero``, a gzip of zeros) cannot fill memory."""


MAX_CELL_CHARS = 128 * 1024
"""The longest cell of a CSV session table, in characters (the csv module's default field
limit): a longer cell makes its course a rejected record naming the line and the column; the
other courses are read as usual."""


def _jsonl_records(stream: IO[bytes], source: str) -> Iterator[Record]:
    number = 0
    while True:
        line = stream.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        number += 1
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            # Not JSON Lines (a binary file, a device such as /dev/zero): stop here.
            raise InputError(_too_long(source, number))
        yield line_record(number, line, source)


# Bytes of JSON Lines read at a time for the workers: about a thousand courses (fewer,
# larger tasks cost the pool less than a block of 256 KiB, 7% of the wall time).
BLOCK_BYTES = 1 << 20


def _jsonl_blocks(stream: IO[bytes], source: str) -> Iterator[LineBlock]:
    # The lines of _jsonl_records, in blocks; the same limit on a line's length.
    before = 0  # lines in the blocks yielded so far
    carry = b""  # the start of a line whose end is not read yet
    while True:
        data = stream.read(BLOCK_BYTES)
        if not data:
            if carry:
                yield LineBlock(source, before + 1, carry, 1)
            return
        # A line that starts and ends in `data` is shorter than BLOCK_BYTES, far below the
        # limit: only the first one, carried over from earlier reads, can pass it.
        first = data.find(b"\n")
        if len(carry) + (first if first >= 0 else len(data)) > MAX_LINE_BYTES:
            raise InputError(_too_long(source, before + 1))
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            carry += data
            continue
        # One copy at most (the carry never holds a line break): every byte of the input
        # passes here.
        block = b"".join((carry, memoryview(data)[:cut])) if carry or cut < len(data) else data
        carry = data[cut:]
        for part, lines in _split(block):
            yield LineBlock(source, before + 1, part, lines)
            before += lines


# Lines in one block at most: a block comes back from its worker as one result per line,
# all at once, and a mebibyte of blank lines would be a million of them.
BLOCK_LINES = 4096


def _split(block: bytes) -> Iterator[tuple[bytes, int]]:
    """``block`` (whole lines) in parts of at most `BLOCK_LINES` lines, cut in halves.

    Each part comes with its number of lines.
    """
    lines = block.count(b"\n")
    if lines <= BLOCK_LINES:
        yield block, lines
        return
    middle = block.rfind(b"\n", 0, len(block) // 2) + 1 or block.find(b"\n") + 1
    yield from _split(block[:middle])
    yield from _split(block[middle:])


def _too_long(source: str, number: int, form: str = "JSON Lines, one course per line") -> str:
    return (
        f"{shown_id(source, 200)} line {number} is longer than {MAX_LINE_BYTES} bytes; "
        f"is it {form}?"
    )


def line_record(number: int, line: str | bytes, source: str) -> Record:
    # Shared with kaprules.dask, whose bags hold str lines.
    return Record(*line_item(number, line, source))


def line_item(number: int, line: str | bytes, source: str) -> RecordItem:
    text = line.rstrip(b"\r\n") if isinstance(line, bytes) else line.rstrip("\r\n")
    if not text.strip():
        return (number, None, source, "empty line")
    return (number, text, source, None)


class _CsvLines(Iterator[str]):
    """The lines of a CSV text for `csv.reader`, each row at most `MAX_LINE_BYTES` long.

    A row is one line, or several when a quoted cell holds line breaks: bounded as a whole,
    a file without line breaks (a gzip of zeros) stops at the limit instead of filling
    memory. The lines of the row being read are kept until it is done, so that a row with
    a cell over the csv module's field limit can be read again (`reread`).
    """

    def __init__(self, text: IO[str], source: str) -> None:
        self._text = text
        self._source = source
        self.number = 0  # lines read
        self._row = 0
        self._held: list[str] = []

    def __next__(self) -> str:
        line = self._text.readline(MAX_LINE_BYTES + 1)
        if not line:
            raise StopIteration
        self.number += 1
        self._row += len(line)
        if self._row > MAX_LINE_BYTES:
            raise InputError(_too_long(self._source, self.number, "a CSV table"))
        self._held.append(line)
        return line

    def row_done(self) -> None:
        self._row = 0
        self._held.clear()

    def reread(self) -> list[str]:
        """The row that `csv.reader` gave up on at its field limit, read whole.

        csv drops a row whose cell passes ``csv.field_size_limit()`` part way through (at
        the line where the cell passed it; a quoted cell may go on over more lines). Read
        again from its first line, with the limit raised to the row's own bound, it ends
        where csv would have ended it, so the next row is read from its own first line:
        the row's course is rejected (`MAX_CELL_CHARS`), not the file.
        """
        held, self._held = self._held, []
        with _field_limit(MAX_LINE_BYTES + 1):
            return next(csv.reader(itertools.chain(held, self)))


# csv's field limit is one setting of the process; it is raised only while a row it refused
# is read again, one such row at a time.
_FIELD_LIMIT_LOCK = threading.Lock()
_FIELD_LIMIT_ERROR = "field larger than field limit"


@contextlib.contextmanager
def _field_limit(limit: int) -> Iterator[None]:
    with _FIELD_LIMIT_LOCK:
        before = csv.field_size_limit(limit)
        try:
            yield
        finally:
            csv.field_size_limit(before)


def _csv_records(stream: IO[bytes], source: str) -> Iterator[Record]:
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="strict", newline="")
    lines = _CsvLines(text, source)
    reader = csv.reader(lines)
    try:
        header = next(reader, None)
        if header is None:
            return
        lines.row_done()
        columns = [c.strip() for c in header]
        if any(c.lower() == "waivers" for c in columns):
            raise InputError(
                f"{shown_id(source, 200)}: the CSV session table cannot carry waivers (a "
                "waivers column was found); write courses with waivers as JSON Lines"
            )
        missing = [c for c in _REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise InputError(
                f"{shown_id(source, 200)}: the CSV header lacks the column(s) "
                f"{', '.join(missing)}; found {_found(columns)}; the columns are "
                f"{', '.join(CSV_COLUMNS)}"
            )
        unknown = [i for i, c in enumerate(columns) if c not in CSV_COLUMNS]
        if unknown:
            raise InputError(
                f"{shown_id(source, 200)}: the CSV header has {len(unknown)} unknown column(s) (at "
                f"positions {', '.join(str(i + 1) for i in unknown[:20])}"
                f"{', ...' if len(unknown) > 20 else ''}); found {_found(columns)}; the columns "
                f"are {', '.join(CSV_COLUMNS)}"
            )
        index = {c: i for i, c in enumerate(columns)}

        def numbered() -> Iterator[tuple[int, list[str]]]:
            while True:
                start = lines.number + 1
                try:
                    row = next(reader, None)
                except csv.Error as exc:
                    if not str(exc).startswith(_FIELD_LIMIT_ERROR):
                        raise
                    row = lines.reread()
                if row is None:
                    return
                lines.row_done()
                if any(cell.strip() for cell in row):
                    yield start, row

        yield from csv_courses(numbered(), index, source)
    except UnicodeDecodeError:
        raise InputError(f"{shown_id(source, 200)}: the CSV file is not UTF-8 text") from None
    except csv.Error as exc:
        raise InputError(
            f"{shown_id(source, 200)} line {lines.number}: not a readable CSV file: {exc}"
        ) from None
    finally:
        text.detach()


# Header cells named in a message at most; the rest are counted.
_HEADER_SHOWN = 12


def _found(columns: list[str]) -> str:
    """A CSV header as found, for a message: what names a column is shown, the rest not.

    A cell that is a column's name but for case, spaces or hyphens (``COURSE_ID``,
    ``Session ID``) is shown, escaped; any other cell only by its position, since a file
    without a header has a course's data on its first line.
    """
    shown = []
    for number, cell in enumerate(columns[:_HEADER_SHOWN], start=1):
        plain = cell.strip().lower().replace("-", "_").replace(" ", "_")
        if plain in CSV_COLUMNS:
            shown.append(echo(cell, 40))
        else:
            shown.append(f"column {number} (not shown: it may be data)")
    more = len(columns) - _HEADER_SHOWN
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


class _Seen:
    """The course ids of a CSV table met so far, each with its first line.

    For the check that a course's rows are together. A million ids in a dict took 120 MB;
    here each is a 64-bit hash and a line in two arrays, open addressing at most half full:
    32 bytes an id. Two ids with the same hash (odds of about n**2 / 2**65 for n ids, with
    Python's keyed string hash) would read as one course met twice.
    """

    def __init__(self) -> None:
        self._keys = array.array("q", _ZERO) * 1024
        self._lines = array.array("q", _ZERO) * 1024
        self._count = 0

    def setdefault(self, course_id: str, line: int) -> int:
        """The first line of ``course_id``, recorded as ``line`` if not met before."""
        key = hash(course_id) or 1  # 0 marks an empty slot
        keys = self._keys
        mask = len(keys) - 1
        slot = key & mask
        while keys[slot]:
            if keys[slot] == key:
                return self._lines[slot]
            slot = (slot + 1) & mask
        keys[slot] = key
        self._lines[slot] = line
        self._count += 1
        if 2 * self._count > len(keys):
            self._grow()
        return line

    def _grow(self) -> None:
        old_keys, old_lines = self._keys, self._lines
        size = 2 * len(old_keys)
        self._keys = keys = array.array("q", _ZERO) * size
        self._lines = array.array("q", _ZERO) * size
        mask = size - 1
        for key, line in zip(old_keys, old_lines, strict=True):
            if key:
                slot = key & mask
                while keys[slot]:
                    slot = (slot + 1) & mask
                keys[slot] = key
                self._lines[slot] = line


_ZERO = (0,)


def csv_courses(
    rows: Iterable[tuple[int, list[str]]], index: dict[str, int], source: str
) -> Iterator[Record]:
    # One record per course of numbered session rows; shared with kaprules.dask. The rows
    # of a course are contiguous: a course id met again after another course is a rejected
    # record naming both lines.
    seen = _Seen()
    current: str | None = None
    group: list[tuple[int, list[str]]] = []
    column = index["course_id"]
    for line, row in rows:
        course_id = row[column] if len(row) > column else ""
        if course_id != current and group:
            yield _csv_course(group, index, source, seen)
            group = []
        current = course_id
        group.append((line, row))
    if group:
        yield _csv_course(group, index, source, seen)


_CSV_DOSE = re.compile(r"[0-9]{1,12}(?:\.[0-9]{0,12})?|\.[0-9]{1,12}")
# One reading of a vitals cell, exactly: the time, one space, whole numbers without a
# leading zero around a '/'. Readings are separated by "; " (`_CSV_SEPARATOR`).
_CSV_READING = re.compile(r"([^ ]+) (0|[1-9][0-9]{0,5})/(0|[1-9][0-9]{0,5})")
_CSV_SEPARATOR = "; "
_CSV_INSTANT = re.compile(DATETIME_PATTERN)
_CSV_DATE = re.compile(DATE_PATTERN)


def _given(row: list[str], index: dict[str, int], name: str) -> str | None:
    # A session-day cell's text as written; None for a cell that is empty or blank (or a
    # column the table lacks). A given cell is not stripped: ' 56' is not a dose.
    i = index.get(name)
    if i is None:
        return None
    value = row[i]
    return value if value.strip() else None


def _csv_session_day(
    line: int, row: list[str], index: dict[str, int]
) -> tuple[list[tuple[str, Any]], str | None]:
    """A session row's session-day cells as the course format's values, or why not.

    Returns the ``(name, value)`` pairs given, or no pairs and the reason (naming the line
    and column, never the cell: it holds readings and doses).
    """
    values: list[tuple[str, Any]] = []
    for name in ("last_liquid", "ready_to_leave", "monitoring_form"):
        value = _given(row, index, name)
        if value is None:
            continue
        if not _CSV_INSTANT.fullmatch(value):
            return [], (
                f"line {line}: the {name} cell is not an ISO 8601 date-time with an offset, "
                "such as 2026-12-01T09:00:00-07:00"
            )
        values.append((name, value))
    text = _given(row, index, "dose_mg")
    if text is not None:
        if not _CSV_DOSE.fullmatch(text):
            return [], (
                f"line {line}: the dose_mg cell is not a number of milligrams written with "
                "digits and an optional decimal point, such as 37.5"
            )
        values.append(("dose_mg", float(text) if "." in text else int(text)))
    vitals = _given(row, index, "vitals")
    if vitals is not None:
        readings = []
        for number, part in enumerate(vitals.split(_CSV_SEPARATOR), start=1):
            found = _CSV_READING.fullmatch(part)
            if found is None or not _CSV_INSTANT.fullmatch(found.group(1)):
                return [], (
                    f"line {line}: reading {number} of the vitals cell is not "
                    "'AT SYSTOLIC/DIASTOLIC' (such as 2026-12-01T08:40:00-07:00 128/82); "
                    "readings are separated by '; '"
                )
            at, systolic, diastolic = found.groups()
            readings.append({"at": at, "systolic": int(systolic), "diastolic": int(diastolic)})
        values.append(("vitals", readings))
    return values, None


def _csv_course(
    rows: list[tuple[int, list[str]]], index: dict[str, int], source: str, seen: _Seen
) -> Record:
    first = rows[0][0]
    width = len(index)
    head = rows[0][1]
    column = index["course_id"]
    course_id = head[column] if len(head) > column and head[column] != "" else None
    # What a rejected record keeps: its course id, when its rows name one.
    known = None if course_id is None else {"id": course_id}
    if course_id is not None:
        # First, so that a course met again is found whatever else is wrong with it.
        started = seen.setdefault(course_id, first)
        if started != first:
            return Record(
                first,
                known,
                source,
                f"the rows of course {echo(course_id)} are not together: it started on line "
                f"{started} and appears again on line {first}",
            )
    for line, row in rows:
        if len(row) != width:
            return Record(first, known, source, f"line {line}: {width} cells expected in each row")
        if max(map(len, row)) > MAX_CELL_CHARS:
            name = next(c for c, i in index.items() if len(row[i]) > MAX_CELL_CHARS)
            return Record(
                first,
                known,
                source,
                f"line {line}: the {name} cell is longer than {MAX_CELL_CHARS} characters, "
                "the limit of a cell",
            )

    def cell(row: list[str], name: str) -> str | None:
        # An empty cell is a missing value; anything else is the value as written.
        i = index.get(name)
        value = row[i] if i is not None else ""
        return value if value != "" else None

    def text(row: list[str], name: str) -> str | None:
        # A name's cell as written, an empty one too: an empty escort or therapist is a
        # blank one, as JSON Lines' "" is, so that either form gives the same finding ("has
        # a blank escort"). None only when the table lacks the (optional) column.
        i = index.get(name)
        return row[i] if i is not None else None

    zones = {cell(row, "timezone") for _, row in rows}
    if len(zones) > 1:
        return Record(first, known, source, "the rows of one course give different timezones")
    enrolled: str | None = None
    enrolled_line = first
    if "enrolled" in index:
        for line, row in rows:
            given = _given(row, index, "enrolled")
            if given is None:
                continue
            if not _CSV_DATE.fullmatch(given):
                return Record(
                    first,
                    known,
                    source,
                    f"line {line}: the enrolled cell is not a date written YYYY-MM-DD, "
                    "such as 2026-11-02",
                )
            if enrolled is not None and given != enrolled:
                return Record(
                    first,
                    known,
                    source,
                    f"line {line}: the rows of one course give different enrolled dates; "
                    "give the course's one date in each row, or leave the cell empty",
                )
            if enrolled is None:
                enrolled, enrolled_line = given, line
    day_columns = [name for name in _SESSION_DAY_COLUMNS if name in index]
    sessions = []
    session_lines = []
    meetings = []
    meeting_lines = []
    for line, row in rows:
        if cell(row, "kind") == INTEGRATION_KIND:
            # An integration meeting: its id, start and therapist; nothing of a session.
            if cell(row, "last_food") is not None or cell(row, "escort") is not None:
                return Record(
                    first,
                    known,
                    source,
                    f"line {line}: a row of kind {INTEGRATION_KIND!r} (an integration meeting) "
                    "takes no last_food or escort",
                )
            if any(_given(row, index, name) is not None for name in day_columns):
                return Record(
                    first,
                    known,
                    source,
                    f"line {line}: a row of kind {INTEGRATION_KIND!r} (an integration meeting) "
                    f"takes no session-day data ({', '.join(_SESSION_DAY_COLUMNS)})",
                )
            meetings.append(
                {
                    name: value
                    for name, value in (
                        ("id", cell(row, "session_id")),
                        ("start", cell(row, "start")),
                        ("therapist", text(row, "therapist")),
                    )
                    if value is not None
                }
            )
            meeting_lines.append(line)
            continue
        session = {
            name: value
            for name, value in (
                ("id", cell(row, "session_id")),
                ("kind", cell(row, "kind")),
                ("start", cell(row, "start")),
                ("last_food", cell(row, "last_food")),
                ("escort", text(row, "escort")),
                ("therapist", text(row, "therapist")),
            )
            if value is not None
        }
        if day_columns:
            day, reason = _csv_session_day(line, row, index)
            if reason is not None:
                return Record(first, known, source, reason)
            session.update(day)
        sessions.append(session)
        session_lines.append(line)
    data: dict[str, Any] = {"timezone": zones.pop(), "sessions": sessions}
    if enrolled is not None:
        data["enrolled"] = enrolled
    if meetings:
        data["integrations"] = meetings
    if course_id is not None:
        data["id"] = course_id
    if data["timezone"] is None:
        del data["timezone"]
    rows_of = _RowLines(first, tuple(session_lines), tuple(meeting_lines), enrolled_line)
    return Record(first, _CsvCourse(data, rows_of), source)


class _RowLines(NamedTuple):
    """Where a CSV course's values were read: the line of each row, for its problems."""

    first: int
    sessions: tuple[int, ...]
    meetings: tuple[int, ...]
    enrolled: int


class _CsvCourse(dict[str, Any]):
    """A course read from CSV rows, as the course format's data, with each row's line.

    The loader names a problem by its path in that data (``sessions[0].vitals[0].at``), and
    its message may quote the value; a CSV table's reader promises the line and the column,
    never the cell's content: `explain` says the same in those terms. (A plain dict
    subclass: it is pickled to the workers as it is.)
    """

    def __init__(self, data: dict[str, Any], lines: _RowLines) -> None:
        super().__init__(data)
        self.lines = lines

    def explain(self, error: InputError) -> InputError:
        """``error``'s problems, each by its line and column, without the cells' content."""
        return InputError(*(self._problem(p) for p in error.problems))

    def _problem(self, problem: Problem) -> str:
        path, lines = problem.path, self.lines
        head = path[0] if path else None
        if head in ("sessions", "integrations") and len(path) >= 3:
            step = path[1]
            position = step[0] if isinstance(step, tuple) else step
            rows = lines.sessions if head == "sessions" else lines.meetings
            if isinstance(position, int) and 0 <= position < len(rows):
                line, field = rows[position], path[2]
                if field == "vitals" and len(path) == 5 and isinstance(path[3], int):
                    part = str(path[4])
                    what = self._what(part, problem)
                    return (
                        f"line {line}: reading {path[3] + 1} of the vitals cell: its "
                        f"{_READING_PARTS.get(part, part)} {what}"
                    )
                if len(path) == 3 and isinstance(field, str):
                    name = "session_id" if field == "id" else field
                    return f"line {line}: the {name} cell {self._what(field, problem)}"
        if head in ("timezone", "id", "enrolled") and len(path) == 1:
            line = lines.enrolled if head == "enrolled" else lines.first
            name = "course_id" if head == "id" else str(head)
            return f"line {line}: the {name} cell {self._what(name, problem)}"
        # A problem of the course as a whole ("sessions: holds more than ..."): its path
        # holds no cell's content.
        return f"line {lines.first}: {problem}"

    def _what(self, field: str, problem: Problem) -> str:
        if problem.code == "required":
            return problem.what  # says what is wanted, quotes nothing
        if field in _CSV_QUOTED:
            # The loader quotes the value in these messages: its words without it.
            known = _CSV_QUOTED[field]
            return known.get(problem.code) or known["format"]
        what = problem.what
        if what.startswith("duplicate of "):
            what = "is a " + what
        # "duplicate of sessions[1]" names a row by its place in the course's data.
        return _DATA_PLACE.sub(self._place, what)

    def _place(self, found: re.Match[str]) -> str:
        rows = self.lines.sessions if found.group(1) == "sessions" else self.lines.meetings
        position = int(found.group(2))
        return f"the row on line {rows[position]}" if position < len(rows) else found.group(0)


_READING_PARTS = {"at": "time"}
_DATA_PLACE = re.compile(r"\b(sessions|integrations)\[([0-9]+)\]")
_YEARS = f"is outside the supported years {MIN_YEAR}-{MAX_YEAR}; check the year"
_INSTANT_WORDS = {
    "format": "is not an ISO 8601 date-time with an offset, such as 2026-12-01T09:00:00-07:00",
    "value": "is not a real date and time",
    "range": _YEARS,
}
# The loader's words for a problem with a value it quotes, by field and problem code,
# without the value; "format" also stands for any other code.
_CSV_QUOTED: dict[str, dict[str, str]] = {
    **dict.fromkeys(
        ("start", "last_food", "last_liquid", "ready_to_leave", "monitoring_form", "at"),
        _INSTANT_WORDS,
    ),
    "enrolled": {
        "format": "is not a date written YYYY-MM-DD, such as 2026-11-02",
        "value": "is not a real date",
        "range": _YEARS,
    },
    "kind": {
        "format": "is not a kind: use one of "
        + ", ".join(repr(k.value) for k in Kind)
        + f" or {INTEGRATION_KIND!r} (an integration meeting)",
    },
    "timezone": {
        "format": "is not an IANA time zone name, such as America/Denver",
    },
}
