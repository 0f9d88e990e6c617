"""The per-record engine: each course read and evaluated on its own, as `evaluate` does.

It evaluates every protocol and every input; the columnar engine sends it what it cannot
read with certainty.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import attrs

from kaprules._moments import AsOf, moment_in
from kaprules.auditing.csv_table import CsvCourse
from kaprules.auditing.pipeline import Job, Text, Unit
from kaprules.auditing.records import (
    BLOCK_BYTES,
    LineBlock,
    Record,
    RecordItem,
    course_of,
    line_item,
    readable_id,
    record_bytes,
)
from kaprules.auditing.results import (
    AnyProtocol,
    CourseResult,
    ResultBatch,
    ResultFields,
    result_of,
    text_batch,
    wanted_in_samples,
)
from kaprules.errors import InputError
from kaprules.evaluation import judged, versioned_findings
from kaprules.protocol import ProtocolVersions
from kaprules.timeline import Timeline

__all__ = ["BY_RECORD", "ByRecord", "course_result", "result_fields"]


# Records sent to a worker at once, and chunks in flight per worker: enough to keep the
# workers busy, few enough that memory stays flat whatever the input's size.
# Records evaluated at once: a chunk's results are held in memory until sent, and 500
# courses of 10,000 sessions would be gigabytes of them (see `Chunks`).
_CHUNK = 500
# The longest reason a rejected record keeps.
_REASON_LIMIT = 500


def course_result(record: Record, protocol: AnyProtocol, as_of: AsOf) -> CourseResult:
    """A record's result (``as_of`` as `kaprules._moments.read_as_of` reads it)."""
    item = (record.line, record.data, record.source, record.rejected)
    return result_of(result_fields(item, protocol, as_of))


def result_fields(item: RecordItem, protocol: AnyProtocol, as_of: AsOf) -> ResultFields:
    """A record's `CourseResult`, as the plain tuple of its fields (what workers send)."""
    line, data, source, rejected = item
    if rejected is not None:
        return (line, source, readable_id(data), 0, (), rejected)
    try:
        course = course_of(data, rejected)
    except InputError as exc:
        if isinstance(data, CsvCourse):
            exc = data.explain(exc)  # by line and column, as a CSV table's reader names
        return (line, source, readable_id(data), 0, (), reason(exc))
    # evaluate() without its argument checks, made once by audit(), and without a Report.
    moment = moment_in(as_of, course.zone)
    if isinstance(protocol, ProtocolVersions):
        found = versioned_findings(course, protocol, moment)[0]
    else:
        timeline = Timeline.of(course, moment, series_length=protocol.series_length)
        found = judged(timeline, protocol)
    findings = tuple(f.to_dict() for f in found) if found else ()
    return (line, source, course.id, len(course.sessions), findings, None)


def reason(exc: InputError) -> str:
    """A loader's error as a rejected record's reason: one line, bounded."""
    text = " ".join(str(exc).split())
    return text if len(text) <= _REASON_LIMIT else text[:_REASON_LIMIT] + "..."


def _items(units: Iterable[LineBlock | RecordItem], joined: bytes | None) -> Iterator[RecordItem]:
    # The records of a chunk; its blocks' lines from `joined` when given (see Job.work).
    lines = joined.split(b"\n") if joined is not None else None
    at = 0
    for unit in units:
        if not isinstance(unit, LineBlock):
            yield unit
        elif lines is None:
            yield from unit.items()
        else:
            for offset in range(unit.lines):
                yield line_item(unit.first_line + offset, lines[at + offset], unit.source)
            at += unit.lines


def _evaluated(
    items: Iterable[RecordItem], protocol: AnyProtocol, as_of: AsOf, sample: int
) -> Iterator[tuple[ResultFields, Any]]:
    """Each record's result fields, and its data when a report may draw it.

    The data comes with the first ``sample`` courses with an error finding; None otherwise.
    """
    kept = 0
    for item in items:
        fields = result_fields(item, protocol, as_of)
        data = None
        if kept < sample and wanted_in_samples(fields):
            data, kept = item[1], kept + 1
        yield fields, data


class Chunks:
    """The per-record engine's chunks: a block of lines alone, records `_CHUNK` at a time.

    Records go fewer at a time when they hold as much as a block (long CSV courses): a
    chunk's results are held in memory. Records travel as plain tuples (`RecordItem`):
    they cross a pipe several times faster than attrs instances.
    """

    def chunks(self, units: Iterator[Unit]) -> Iterator[list[Any]]:
        """The chunks of ``units``, in order."""
        chunk: list[LineBlock | RecordItem] = []
        size = 0
        for unit in units:
            if isinstance(unit, LineBlock):
                if chunk:
                    yield chunk
                    chunk, size = [], 0
                yield [unit]
                continue
            chunk.append((unit.line, unit.data, unit.source, unit.rejected))
            size += record_bytes(unit)
            if len(chunk) >= _CHUNK or size >= BLOCK_BYTES:
                yield chunk
                chunk, size = [], 0
        if chunk:
            yield chunk

    def learn(self, batch: ResultBatch) -> None:
        """Nothing to learn: the chunks' sizes are fixed."""


@attrs.frozen
class ByRecord:
    """The per-record engine (`kaprules.auditing.pipeline.Evaluator`)."""

    in_flight: int = 4

    def supports(self, protocol: AnyProtocol) -> bool:
        """Every protocol: each course is evaluated as `evaluate` does."""
        return True

    def chunker(self) -> Chunks:
        """Its chunks (`Chunks`)."""
        return Chunks()

    def forks(self) -> bool:
        """Always: it loads nothing that threads of its own."""
        return True

    def work(self, chunk: list[Any], joined: bytes | None, *, job: Job, text: Text) -> ResultBatch:
        """A chunk's results, every one as its fields (or as text, ``text``).

        At most ``job.sample`` come with their data, for a report to draw.
        """
        evaluated = _evaluated(_items(chunk, joined), job.protocol, job.as_of, job.sample)
        others = ((position, fields, data) for position, (fields, data) in enumerate(evaluated))
        if text is not None:
            return text_batch(others, 0, text)
        return ResultBatch(list(others), [], [], [], [])


BY_RECORD = ByRecord()
"""The per-record engine."""
