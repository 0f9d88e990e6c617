"""Audits beyond one machine: the audit's per-course check over Dask collections.

Needs the ``dask`` extra (``pip install '.[dask]'``). The same function checks each course
as ``kaprules audit`` does, so the results and the summary are the same, record for
record; Dask only spreads the partitions over its workers (threads, processes, or a
``dask.distributed`` cluster).

- [`audit_bag`][kaprules.dask.audit_bag]: a bag of JSON Lines texts, one course each.
- [`audit_dataframe`][kaprules.dask.audit_dataframe]: a DataFrame of session rows with
  the CSV table's columns; the rows of one course together, in one partition.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from kaprules.auditing import (
    CSV_COLUMNS,
    AuditSummary,
    CourseResult,
    course_result,
    csv_courses,
    line_record,
)
from kaprules.protocol import STANDARD, Protocol

__all__ = ["DaskAudit", "audit_bag", "audit_dataframe"]


@attrs.frozen
class DaskAudit:
    """A lazy audit over a Dask collection.

    Attributes:
        results: A Dask bag of `CourseResult`, one per record, in input order.
        protocol: The protocol.
        as_of: The ``as_of`` of every evaluation, or None.
    """

    results: Any
    protocol: Protocol
    as_of: dt.datetime | dt.date | None

    def summary(self, **compute: Any) -> AuditSummary:
        """Compute the summary, as ``kaprules audit`` gives it (without an input hash).

        Args:
            **compute: Passed to ``dask.compute`` (for example ``scheduler="processes"``).

        Returns:
            The summary.
        """
        counted = self.results.reduction(_count, _merge)
        (partial,) = _dask()[0](counted, **compute)
        summary = _empty(self.protocol, self.as_of)
        _fold(summary, partial)
        return summary


def _empty(protocol: Protocol, as_of: dt.datetime | dt.date | None) -> AuditSummary:
    return AuditSummary(
        protocol.id,
        protocol.version,
        None if as_of is None else as_of.isoformat(),
        protocol.rule_ids,
    )


def _count(results: Iterable[CourseResult]) -> dict[str, Any]:
    summary = AuditSummary("", "", None, ())
    for result in results:
        summary.add(result)
    return attrs.asdict(summary)


def _merge(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    total = AuditSummary("", "", None, ())
    for part in parts:
        _fold(total, part)
    return attrs.asdict(total)


def _fold(summary: AuditSummary, part: dict[str, Any]) -> None:
    for name in ("lines_read", "courses", "compliant", "with_errors"):
        setattr(summary, name, getattr(summary, name) + part[name])
    for source, line, reason in part["rejected"]:
        summary.reject(source, line, reason)
    summary.rejected_omitted += part["rejected_omitted"]
    for rule_id, (courses, findings) in part["rules"].items():
        counts = summary.rules.setdefault(rule_id, [0, 0])
        counts[0] += courses
        counts[1] += findings


def _check_lines(
    lines: Sequence[str], offset: int, protocol: Protocol, as_of: Any, source: str
) -> list[CourseResult]:
    return [
        course_result(line_record(number, line, source), protocol, as_of)
        for number, line in enumerate(lines, start=offset + 1)
    ]


def _dask() -> tuple[Any, Any, Any]:
    # Imported when used: the dask extra is optional. Dask's API is untyped: Any here.
    import dask.bag
    import dask.base
    from dask.delayed import delayed

    compute: Any = dask.base.compute
    from_delayed: Any = dask.bag.from_delayed
    return compute, delayed, from_delayed


def _offsets(collection: Any) -> tuple[list[Any], list[int]]:
    compute, delayed, _ = _dask()
    parts = collection.to_delayed()
    lengths = compute(*[delayed(len)(part) for part in parts])
    return parts, [0, *itertools.accumulate(lengths)][:-1]


def audit_bag(
    lines: Any,
    protocol: Protocol = STANDARD,
    *,
    as_of: dt.datetime | dt.date | None = None,
    source: str = "",
) -> DaskAudit:
    """Audit a Dask bag of JSON Lines texts (such as ``dask.bag.read_text(paths)``).

    Line numbers count the bag's items in order, from 1 (for one file read with
    ``read_text``, its line numbers). Counting them takes one pass over the bag.

    Args:
        lines: A ``dask.bag.Bag`` of strings, one course each.
        protocol: The protocol (kap-standard v1 by default).
        as_of: As for `evaluate`, the same for every course.
        source: The input's name, given to each result.

    Returns:
        The lazy audit: ``.results`` (a bag) and ``.summary()``.
    """
    return _over_partitions(lines, _check_lines, protocol, as_of, source)


def _check_rows(
    frame: Any, offset: int, protocol: Protocol, as_of: Any, source: str
) -> list[CourseResult]:
    columns = [c for c in CSV_COLUMNS if c in frame.columns]
    index = {c: i for i, c in enumerate(columns)}
    rows = frame[columns].fillna("").astype(str).itertuples(index=False, name=None)
    # Lines as in the CSV file the frame was read from: the header is line 1.
    numbered = ((number, list(row)) for number, row in enumerate(rows, start=offset + 2))
    return [course_result(r, protocol, as_of) for r in csv_courses(numbered, index, source)]


def audit_dataframe(
    frame: Any,
    protocol: Protocol = STANDARD,
    *,
    as_of: dt.datetime | dt.date | None = None,
    source: str = "",
) -> DaskAudit:
    """Audit a Dask DataFrame of session rows, as the CSV session table holds them.

    The columns are those of the CSV table (``course_id``, ``timezone``, ``session_id``,
    ``kind``, ``start``, ``last_food``, ``escort``, optionally ``therapist``), as text. The
    rows of one course must be together and in one partition (read each file as one
    partition, or repartition on course boundaries). Lines are numbered as in a CSV file
    with a header: the first row is line 2.

    Args:
        frame: A ``dask.dataframe.DataFrame``.
        protocol: The protocol (kap-standard v1 by default).
        as_of: As for `evaluate`, the same for every course.
        source: The input's name, given to each result.

    Returns:
        The lazy audit: ``.results`` (a bag) and ``.summary()``.
    """
    return _over_partitions(frame, _check_rows, protocol, as_of, source)


def _over_partitions(
    collection: Any,
    check: Any,
    protocol: Protocol,
    as_of: dt.datetime | dt.date | None,
    source: str,
) -> DaskAudit:
    # Each partition is checked with the number of records before it, for line numbers.
    _, delayed, from_delayed = _dask()
    parts, offsets = _offsets(collection)
    checked = [
        delayed(check)(part, offset, protocol, as_of, source)
        for part, offset in zip(parts, offsets, strict=True)
    ]
    return DaskAudit(from_delayed(checked), protocol, as_of)
