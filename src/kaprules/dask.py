"""Audits beyond one machine: the audit's per-course check over Dask collections.

Needs the ``dask`` extra (``pip install '.[dask]'``). The same function checks each course
as ``kaprules audit`` does, so the results and the summary are the same, record for
record; Dask only spreads the partitions over its workers (threads, processes, or a
``dask.distributed`` cluster).

- [`audit_bag`][kaprules.dask.audit_bag]: a bag of JSON Lines texts, one course each.
- [`audit_dataframe`][kaprules.dask.audit_dataframe]: a DataFrame of session rows with
  the CSV table's columns; the rows of one course together, in one partition.
- [`read_csv`][kaprules.dask.read_csv]: CSV session tables read into such a DataFrame
  exactly as ``kaprules audit`` reads them (every cell as written: ``NA`` is an escort).

Bad records are rejected as ``kaprules audit`` rejects them, with the same reasons; bad
arguments (a protocol, ``as_of``, a DataFrame without the table's columns) raise
`InputError` when the audit is made, before any work.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import attrs

from kaprules._moments import read_as_of
from kaprules.auditing import (
    BLOCK_BYTES,
    BLOCK_LINES,
    CSV_COLUMNS,
    AuditSummary,
    CourseResult,
    LineBlock,
    Record,
    ResultForm,
    course_result,
    csv_courses,
    engine_for,
    line_record,
    summary_for,
)
from kaprules.auditing.by_record import BY_RECORD
from kaprules.auditing.csv_table import REQUIRED_COLUMNS
from kaprules.auditing.pipeline import Job, run
from kaprules.errors import InputError, Problem, shown_id
from kaprules.evaluation import check_protocol
from kaprules.protocol import STANDARD, Protocol, ProtocolVersions

__all__ = ["DaskAudit", "audit_bag", "audit_dataframe", "read_csv"]

# How pandas must read a session table for its cells to be the CLI's: every cell as text,
# as written ("NA", "null" and "" are values, not missing ones).
_AS_WRITTEN: dict[str, Any] = {"dtype": str, "keep_default_na": False, "na_filter": False}


@attrs.frozen
class DaskAudit:
    """A lazy audit over a Dask collection.

    Attributes:
        results: A Dask bag of `CourseResult`, one per record, in input order.
        protocol: The protocol.
        as_of: The ``as_of`` of every evaluation, or None.
    """

    results: Any
    protocol: Protocol | ProtocolVersions
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
        summary.merge(partial)
        return summary


def _empty(
    protocol: Protocol | ProtocolVersions, as_of: dt.datetime | dt.date | None
) -> AuditSummary:
    return summary_for(protocol, None if as_of is None else as_of.isoformat())


def _count(results: Iterable[CourseResult]) -> AuditSummary:
    summary = AuditSummary("", "", None, ())
    for result in results:
        summary.add(result)
    return summary


def _merge(parts: Sequence[AuditSummary]) -> AuditSummary:
    total = AuditSummary("", "", None, ())
    for part in parts:
        total.merge(part)
    return total


def _check_lines(
    lines: Sequence[object],
    offset: int,
    protocol: Protocol | ProtocolVersions,
    as_of: Any,
    source: str,
    engine: str = "auto",
) -> list[CourseResult]:
    # A partition read as a file is, by the audit's own engines and pipeline: in chunks,
    # so memory stays bounded whatever its size.
    units: Iterator[Record | LineBlock]
    if engine_for(engine, protocol, readable=True):
        from kaprules._columnar.engine import COLUMNAR

        job = Job(COLUMNAR, protocol, as_of, 0)
        units = _partition_units(lines, offset + 1, source)
    else:
        job = Job(BY_RECORD, protocol, as_of, 0)
        units = (_line(n, line, source) for n, line in enumerate(lines, start=offset + 1))
    batches = run(units, job, 1, ResultForm())
    return [result for batch in batches for result, _ in batch.results()]


def _partition_units(
    items: Sequence[object],
    first_line: int,
    source: str,
) -> Iterator[Record | LineBlock]:
    run: list[bytes] = []
    start = first_line
    size = 0
    for number, item in enumerate(items, start=first_line):
        line = _plain(item)
        if line is not None and not run:
            start = number
        if line is not None:
            run.append(line)
            size += len(line)
        # A block of a partition's lines, as the file reader's: as many bytes and lines.
        full = size >= BLOCK_BYTES or len(run) >= BLOCK_LINES
        if run and (line is None or full):
            yield LineBlock(source, start, b"".join(run), len(run))
            run, size = [], 0
        if line is None:
            yield _line(number, item, source)
    if run:
        yield LineBlock(source, start, b"".join(run), len(run))


def _plain(item: object) -> bytes | None:
    # A bag item that is one line of text as a file holds it, else None.
    if not isinstance(item, str) or item.startswith("\ufeff"):
        return None
    text = item[:-1] if item.endswith("\n") else item
    if "\n" in text:
        return None
    try:
        return text.encode("utf-8") + b"\n"
    except UnicodeEncodeError:
        return None


def _line(number: int, item: object, source: str) -> Record:
    """A bag item as the record ``kaprules audit`` makes of the same line of a file."""
    if isinstance(item, str):
        # The CLI reads bytes, and the loader skips a UTF-8 byte order mark; a bag of text
        # holds it decoded, as U+FEFF. Read as the bytes of the file's line, so that a
        # line of Unicode spaces is what the CLI finds it (not JSON; a blank line is
        # ASCII blanks only); text no file holds (lone surrogates) is read as it is.
        text = item.removeprefix("\ufeff")
        try:
            return line_record(number, text.encode("utf-8"), source)
        except UnicodeEncodeError:
            return line_record(number, text, source)
    if isinstance(item, bytes | bytearray | memoryview):
        return line_record(number, bytes(item), source)
    # Any other value (None, a number, a dict) is read as the JSON it is written as: the
    # result is the CLI's on that line ("null" and "5" are not courses; a dict may be one).
    try:
        text = json.dumps(item, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return Record(number, None, source, f"not a JSON Lines text: {type(item).__name__}")
    return line_record(number, text, source)


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
    protocol: Protocol | ProtocolVersions = STANDARD,
    *,
    as_of: dt.datetime | dt.date | None = None,
    source: str = "",
    engine: str = "auto",
) -> DaskAudit:
    """Audit a Dask bag of JSON Lines texts (such as ``dask.bag.read_text(paths)``).

    Line numbers count the bag's items in order, from 1 (for one file read with
    ``read_text``, its line numbers). Counting them takes one pass over the bag. Each item
    is checked as ``kaprules audit`` checks the same line of a file: a blank one is an
    empty line, a leading byte order mark is skipped, bytes are UTF-8 (or UTF-16/32)
    text, and an item that is not text (None, a number, a dict) is read as the JSON it
    would be written as; a record that is not a course is a rejected result, with the
    CLI's reason.

    Args:
        lines: A ``dask.bag.Bag`` of strings (or bytes), one course each.
        protocol: The protocol (kap-standard v1 by default).
        as_of: As for `evaluate`, the same for every course.
        source: The input's name, given to each result.
        engine: As for `kaprules.audit`: ``"auto"`` reads each partition's plain text
            lines with the columnar engine when Polars is installed and every rule has a
            vectorised form; ``"records"`` course by course; ``"columnar"`` insists on
            the columnar engine. The results are the same.

    Returns:
        The lazy audit: ``.results`` (a bag) and ``.summary()``.

    Raises:
        InputError: ``lines`` is not a Dask bag, or ``protocol``, ``as_of``, ``source`` or
            ``engine`` is unusable.
    """
    _check_arguments(protocol, as_of, source)
    engine_for(engine, protocol, readable=True)  # checks it up front
    import dask.bag

    if not isinstance(lines, dask.bag.Bag):
        raise InputError(
            Problem("lines", f"must be a dask.bag.Bag of texts, got {type(lines).__name__}", "type")
        )
    check = functools.partial(_check_lines, engine=engine)
    return _over_partitions(lines, check, protocol, as_of, source)


def _check_arguments(protocol: Protocol | ProtocolVersions, as_of: object, source: object) -> None:
    # As kaprules.audit checks them, once, so that no record is rejected for them.
    check_protocol(protocol)
    read_as_of(as_of, today=False)  # "today" is kaprules.audit's alone
    if not isinstance(source, str):
        raise InputError(
            Problem("source", f"must be a string (a name), got {type(source).__name__}", "type")
        )


def _check_rows(
    frame: Any, offset: int, protocol: Protocol | ProtocolVersions, as_of: Any, source: str
) -> list[CourseResult]:
    table = frame.rename(columns=_column_name)
    columns = [c for c in CSV_COLUMNS if c in table.columns]
    index = {c: i for i, c in enumerate(columns)}
    table = table[columns]
    missing = table.isna().to_numpy()
    if missing.any():
        # A CSV file has no missing cell, only empty ones: a null here is a cell pandas
        # read as missing ("NA", "null", "N/A", ""), and its text is lost.
        row, column = (int(i[0]) for i in missing.nonzero())
        raise InputError(
            f"{shown_id(source or 'the DataFrame', 200)} line {offset + 2 + row}: the "
            f"{columns[column]} cell is missing (NaN or None), not text: {_READ_HINT}"
        )
    numbered = _numbered(table.itertuples(index=False, name=None), offset, columns, source)
    return [course_result(r, protocol, as_of) for r in csv_courses(numbered, index, source)]


def _numbered(
    rows: Iterable[tuple[Any, ...]], offset: int, columns: list[str], source: str
) -> Iterator[tuple[int, list[str]]]:
    # Lines as in the CSV file the frame was read from: the header is line 1. Rows whose
    # cells are all blank are skipped, as the CLI skips them.
    for number, row in enumerate(rows, start=offset + 2):
        cells = list(row)
        if not all(type(cell) is str for cell in cells):
            column = next(
                c for c, cell in zip(columns, cells, strict=True) if type(cell) is not str
            )
            raise InputError(
                f"{shown_id(source or 'the DataFrame', 200)} line {number}: the {column} cell "
                f"is not text; {_READ_HINT}"
            )
        if any(cell.strip() for cell in cells):
            yield number, cells


_READ_HINT = (
    "read the CSV with kaprules.dask.read_csv (or dask.dataframe.read_csv with dtype=str, "
    "keep_default_na=False, na_filter=False), so that every cell is the text it holds"
)


def _column_name(name: object) -> str:
    # The CLI strips the header's cells.
    return str(name).strip()


def _check_columns(frame: Any, source: str) -> None:
    """The CLI's checks of a CSV header, on a DataFrame's columns, and its cells as text."""
    import dask.dataframe

    if not isinstance(frame, dask.dataframe.DataFrame):
        raise InputError(
            Problem(
                "frame", f"must be a dask.dataframe.DataFrame, got {type(frame).__name__}", "type"
            )
        )
    name = shown_id(source or "the DataFrame", 200)
    found = [_column_name(c) for c in frame.columns]
    shown = ", ".join(shown_id(c, 40) for c in found[:20]) + (", ..." if len(found) > 20 else "")
    missing = [c for c in REQUIRED_COLUMNS if c not in found]
    if missing:
        raise InputError(
            f"{name}: the DataFrame lacks the column(s) {', '.join(missing)}; the columns are "
            f"{', '.join(CSV_COLUMNS)} (therapist and those after it optional); it has "
            f"{shown or 'none'}"
        )
    unknown = [i for i, c in enumerate(found) if c not in CSV_COLUMNS]
    repeated = len(set(found)) != len(found)
    if unknown or repeated:
        raise InputError(
            f"{name}: the DataFrame has {len(unknown)} unknown column(s)"
            + (" and a repeated one" if repeated else "")
            + f"; the columns are {', '.join(CSV_COLUMNS)}; it has {shown}"
        )
    # Text columns are of kind "O" (object, pandas' string dtypes) or "U"; numbers are not.
    typed = [
        c
        for c, dtype in zip(found, frame.dtypes, strict=True)
        if getattr(dtype, "kind", None) not in ("O", "U")
    ]
    if typed:
        raise InputError(f"{name}: the column(s) {', '.join(typed)} do not hold text; {_READ_HINT}")


def audit_dataframe(
    frame: Any,
    protocol: Protocol | ProtocolVersions = STANDARD,
    *,
    as_of: dt.datetime | dt.date | None = None,
    source: str = "",
) -> DaskAudit:
    """Audit a Dask DataFrame of session rows, as the CSV session table holds them.

    The columns are those of the CSV table (``course_id``, ``timezone``, ``session_id``,
    ``kind``, ``start``, ``last_food``, ``escort``, optionally ``therapist`` and the
    session-day columns of `kaprules.auditing.CSV_COLUMNS`), as text. The
    rows of one course must be together and in one partition (read each file as one
    partition, or repartition on course boundaries). Lines are numbered as in a CSV file
    with a header: the first row is line 2. Read CSV files with `read_csv`, which keeps
    every cell as written: pandas' default reading turns ``NA``, ``null``, ``N/A`` and an
    empty cell into a missing value, and a missing cell here is refused rather than
    guessed at.

    Args:
        frame: A ``dask.dataframe.DataFrame``.
        protocol: The protocol (kap-standard v1 by default).
        as_of: As for `evaluate`, the same for every course.
        source: The input's name, given to each result.

    Returns:
        The lazy audit: ``.results`` (a bag) and ``.summary()``.

    Raises:
        InputError: ``frame`` is not a Dask DataFrame, lacks a column of the table, has
            a column that is not one, or has one that does not hold text; ``protocol``,
            ``as_of`` or ``source`` is unusable. When computed: a cell is missing (NaN or
            None), as pandas' default NA values make "NA" or an empty cell.
    """
    _check_arguments(protocol, as_of, source)
    _check_columns(frame, source)
    return _over_partitions(frame, _check_rows, protocol, as_of, source)


def read_csv(paths: Any, **options: Any) -> Any:
    """CSV session tables as a Dask DataFrame, read exactly as ``kaprules audit`` reads them.

    Every cell is the text it holds: ``NA``, ``null``, ``N/A`` are values (an escort
    written ``NA`` is an escort) and an empty cell is empty, where pandas' defaults would
    make them all missing. Each file is one partition, which keeps a course's rows
    together, and blank lines are kept as rows (then skipped, as the CLI skips them) so
    that line numbers are the file's.

    Args:
        paths: A path, a glob or a list of them, as ``dask.dataframe.read_csv`` takes.
        **options: More options for ``dask.dataframe.read_csv`` (such as
            ``storage_options``); the ones that decide how cells are read cannot be
            changed.

    Returns:
        A ``dask.dataframe.DataFrame`` for `audit_dataframe`.

    Raises:
        InputError: An option would change how cells are read.
    """
    fixed = {**_AS_WRITTEN, "blocksize": None, "skip_blank_lines": False}
    clash = sorted(set(options) & set(fixed))
    if clash:
        raise InputError(
            Problem(
                "options",
                f"{', '.join(clash)} cannot be changed: they make the cells the CLI's",
                "value",
            )
        )
    import dask.dataframe

    reader: Any = dask.dataframe.read_csv
    return reader(paths, **fixed, **options)


def _over_partitions(
    collection: Any,
    check: Any,
    protocol: Protocol | ProtocolVersions,
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
