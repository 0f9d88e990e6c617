"""The columnar audit engine (private): JSON Lines courses in chunks, as Polars columns.

`kaprules.audit` hands this engine the blocks of JSON Lines its reader makes. A chunk of
lines becomes one frame: a line is taken here only when it is certain to be a course the
per-record loader accepts, read to the same values (strict JSON, strings without escapes
or control characters, every key known and given once, instants in the two layouts
exporters write, a zone that exists, unique session ids). Each rule of the protocol then
states, as column operations (its ``columnar`` method), at which sessions it may have a
finding. A course taken here without any such session is compliant, and its result is
made from its columns. Every other line (not taken with certainty, or possibly with a
finding) goes through the per-record code, which rejects it or renders its findings as
it always has: so the results are those of the per-record engine, byte for byte, and a
doubt only costs time.

Polars is imported when a chunk is first read, never by ``import kaprules``.
"""

from __future__ import annotations

import bisect
import contextlib
import datetime as dt
import functools
import importlib.util
import json
import mmap
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, ClassVar, NamedTuple

import attrs

from kaprules import _fast, _time, auditing
from kaprules.auditing import (
    AsOf,
    AuditSummary,
    CourseResult,
    LineBlock,
    Record,
    RecordData,
    RecordItem,
    ResultBatch,
    ResultFields,
    ResultForm,
    in_workers,
    line_item,
    make_result,
    record_bytes,
    result_fields,
    start_method,
    wanted_in_samples,
    worker_settings,
)
from kaprules.course_files import MAX_SESSIONS
from kaprules.errors import InputError
from kaprules.findings_files import FORMULA_START, FindingsForm, input_name
from kaprules.findings_files import rows as findings_rows
from kaprules.protocol import Protocol, ProtocolVersions

__all__: list[str] = []

ENGINES = ("auto", "columnar", "records")

# Bytes of JSON Lines in one frame: large enough that Polars' per-call costs vanish,
# small enough that a few chunks in flight keep memory far under the 500 MB bound, and
# that the workers finish together (16 MiB left one idle at the end: 3 to 5% slower).
_CHUNK_BYTES = 8 << 20
_IN_FLIGHT = 2
_FINDINGS = 40_000
# Lines in one chunk at most: each comes back as a result, and 8 MiB of blank lines
# would otherwise be 8 million of them at once.
_CHUNK_LINES = 1 << 15
_RECORDS = 500
# What a record (a CSV course, read per record) counts for in a chunk's bytes.
_RECORD_BYTES = 1024
# auto audits an input of fewer bytes than this per worker course by course (see
# small_input): on 2 cores the columnar engine drew level at some 6 MB with one process
# and 13 MB with two, and no course is read twice to tell.
_SMALL_PER_JOB = 4 << 20
_SMALL_JOBS = 4

# Every character str.strip() removes (str.isspace()): a blank escort or id.
_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004"
    "\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)

_COURSE_KEYS = ("$schema", "id", "timezone", "patient")
_SESSION_KEYS = ("id", "kind", "start", "last_food", "escort", "therapist")
_INSTANT_KEYS = ("start", "last_food")
# An instant in the two layouts, 2026-12-01T09:00:00-07:00 and 2026-12-01T16:00:00Z, each
# field in its range (the day within its month is left to the parser), and the local year
# from 1901 to 2199: within the loader's range and the zone tables'.
_INSTANT = (
    r"(?:190[1-9]|19[1-9][0-9]|2[01][0-9]{2})-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
    r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:[+-](?:[01][0-9]|2[0-3]):[0-5][0-9]|Z)"
)
# Strict JSON of the shape of a course: known keys with string values, "start" and
# "last_food" instants of `_INSTANT`, and "sessions" one array of flat objects (the
# sessions). Strings hold no escape, quote or control character (C0, DEL or C1: the
# findings file escapes those, as the per-record path writes them), so each is its own
# text. Lines outside this shape take the per-record path. The instants are checked
# here, where the pattern runs over the line anyway, at no cost a session.
_S = r'"[^"\\\x00-\x1f\x7f-\x9f]*"'
# An id: text that is not all whitespace (the loader refuses a blank id).
_ID = (
    r'"[^"\\\x00-\x1f\x7f-\x9f]*[^"\\\x00-\x1f\x7f-\x9f'
    + "".join(f"\\u{ord(c):04x}" for c in _WHITESPACE if c > "\x1f")
    + r'][^"\\\x00-\x1f\x7f-\x9f]*"'
)


def _keys(names: Iterable[str]) -> str:
    return '"(?:' + "|".join(re.escape(name) for name in names) + ')" ?: ?'


_SESSION_MEMBER = (
    "(?:" + _keys(k for k in _SESSION_KEYS if k not in (*_INSTANT_KEYS, "id")) + _S
    + "|" + _keys(["id"]) + _ID
    + "|" + _keys(_INSTANT_KEYS) + '"' + _INSTANT + '")'
)  # fmt: skip
_O = r"\{ ?(?:" + _SESSION_MEMBER + r"(?: ?, ?" + _SESSION_MEMBER + r")*)? ?\}"
_A = r'"sessions" ?: ?\[ ?(?:' + _O + r"(?: ?, ?" + _O + r")*)? ?\]"
_MEMBER = (
    "(?:" + _keys(k for k in _COURSE_KEYS if k != "id") + _S
    + "|" + _keys(["id"]) + _ID + "|" + _A + ")"
)  # fmt: skip
_LINE = r"^\{ ?" + _MEMBER + r"(?: ?, ?" + _MEMBER + r")* ?\}$"


def available() -> bool:
    """Whether Polars can be imported (without importing it)."""
    return importlib.util.find_spec("polars") is not None


def small_input(jobs: int) -> int:
    """Bytes of input below which ``auto`` audits course by course, with ``jobs`` workers.

    Each process of the columnar engine first loads Polars and reads its zones' tables
    (some 0.2 s): below this size the per-record engine ends sooner. Its workers share
    the per-course work, so the bound grows with them (up to `_SMALL_JOBS`, which keeps
    what is read ahead to tell small).
    """
    return _SMALL_PER_JOB * min(jobs, _SMALL_JOBS)


def supports(protocol: Protocol) -> bool:
    """Whether every rule of ``protocol`` has a vectorised form (``as_of`` or not).

    A protocol without rules has none to evaluate as columns: its courses go per record.
    """
    rules = protocol.rules
    return bool(rules) and all(_vectorised(rule) for rule in rules)


def _vectorised(rule: object) -> bool:
    # The class whose __call__ the rule runs must also be the one that states its
    # columnar form: a subclass that changes __call__ only has none.
    def owner(name: str) -> type | None:
        return next((c for c in type(rule).__mro__ if name in c.__dict__), None)

    return owner("columnar") is not None and owner("columnar") is owner("__call__")


def engine_for(engine: object, protocol: Protocol | ProtocolVersions, readable: bool) -> bool:
    """Whether an audit runs on the columnar engine (`engine_choice` without its reason).

    Raises:
        InputError: As `engine_choice`.
    """
    return engine_choice(engine, protocol, readable)[0]


def engine_choice(
    engine: object, protocol: Protocol | ProtocolVersions, readable: bool
) -> tuple[bool, str]:
    """Whether an audit runs on the columnar engine, and why (the summary's ``engine``).

    Args:
        engine: ``"auto"``, ``"columnar"`` or ``"records"``.
        protocol: The protocol.
        readable: The input is the file reader's, not yet read (the engine reads bytes).

    Returns:
        True for the columnar engine, and the reason as one sentence. ``auto`` never takes
        it when the fast paths are off (``KAPRULES_NO_FAST_PATHS=1``); its choice by the
        input's size is `kaprules.auditing`'s, made once the input is read ahead.

    Raises:
        InputError: ``engine`` is not one of `ENGINES`, or ``"columnar"`` without Polars.
    """
    if engine not in ENGINES:
        raise InputError(f"engine: must be one of {', '.join(ENGINES)}")
    asked = "" if engine == "auto" else f"the {engine} engine was asked for"
    if engine == "records":
        return False, asked
    if not isinstance(protocol, Protocol):
        return False, _but(asked, "several protocol versions are judged course by course")
    if not available():
        if engine == "columnar":
            raise InputError(
                "engine: the columnar engine needs Polars: pip install '.[columnar]' in a "
                "checkout of kaprules"
            )
        return False, "Polars is not installed"
    if not readable:
        return False, _but(asked, "the input is not read_records' files, not yet read")
    missing = [rule.id for rule in protocol.rules if not _vectorised(rule)]
    if engine == "columnar":
        if not protocol.rules or missing:
            # The columnar engine runs, and sends every course the per-record way.
            return True, _but(asked, _unvectorised(missing))
        return True, asked
    if not _fast.ENABLED:
        return False, "the fast paths are off (KAPRULES_NO_FAST_PATHS=1)"
    if not protocol.rules or missing:
        return False, _unvectorised(missing)
    return True, "every rule has a vectorised form"


def _but(asked: str, why: str) -> str:
    return f"{asked}, but {why}" if asked else why


def _unvectorised(missing: list[str]) -> str:
    if not missing:
        return "the protocol has no rule to evaluate as columns: every course goes course by course"
    named = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
    return (
        f"rule{'s' if len(missing) > 1 else ''} {named} "
        f"{'have' if len(missing) > 1 else 'has'} no vectorised form: every course goes "
        "course by course"
    )


# --- the engine -----------------------------------------------------------------------


def results(
    units: Iterator[Record | LineBlock],
    protocol: Protocol,
    as_of: AsOf,
    jobs: int,
    sample: int,
    form: ResultForm,
) -> Iterator[ResultBatch]:
    """The results of `kaprules.audit`, in input order, from the columnar engine.

    ``form`` is asked as each chunk is sent: batches come as results, or as the findings
    file's text and counts when the audit is read that way.
    """
    size = _Size()
    tasks = ((chunk, form.text, None) for chunk in _chunks(units, size))
    if jobs > 1 and "polars" not in sys.modules:
        yield from _parallel(tasks, size, protocol, as_of, jobs, sample)
        return
    # Polars' own threads cannot be forked safely once it is loaded here: one process.
    kept = 0
    for chunk, text, _ in tasks:
        batch = _work_on(chunk, protocol, as_of, max(sample - kept, 0), text)
        size.learn(_bytes(chunk), batch)
        kept += sum(data is not None for _, _, data in batch.others)
        yield batch


class _Size:
    """How many bytes the next chunk takes: findings, not only bytes, cost memory.

    A chunk's findings come back as dicts (about a kilobyte each) or as rows of text:
    chunks start at one block and grow to _CHUNK_BYTES (twice that after 16 of them)
    while their findings stay under _FINDINGS; input dense with findings keeps them small,
    so memory stays bounded whatever the input.
    """

    def __init__(self) -> None:
        self.bytes = 1
        self.seen = 0

    def learn(self, size: int, batch: ResultBatch) -> None:
        """Learn from a chunk of ``size`` bytes (`_bytes`) and its results."""
        if batch.summary is not None:  # text: the findings' rows, not their dicts
            found = sum(tally[1] for tally in batch.summary.rules.values())
        else:
            found = sum(len(fields[4]) for _, fields, _ in batch.others)
        self.seen += size
        # A long input takes chunks twice as large: each chunk costs Polars some 25 ms of
        # its own, and a chunk left to one worker at the end matters less.
        cap = _CHUNK_BYTES * (2 if self.seen >= 16 * _CHUNK_BYTES else 1)
        if found <= _FINDINGS // 4:
            self.bytes = min(max(self.bytes, size) * 4, cap)
        elif found <= _FINDINGS // 2:
            self.bytes = min(max(self.bytes, size) * 2, cap)
        else:
            self.bytes = max(1, size * _FINDINGS // (2 * found))


_Chunk = list[Record | LineBlock]


def _bytes(chunk: _Chunk, slot: _Slot = None) -> int:
    """A chunk's size as `_Size` counts it: its lines' bytes, and a kilobyte a record."""
    lines = sum(slot[2]) if slot is not None else 0
    return lines + sum(len(u.data) if isinstance(u, LineBlock) else _record_size(u) for u in chunk)


def _record_size(record: Record) -> int:
    # A kilobyte at least, else what its sessions come to: a chunk of 500 long CSV courses
    # would otherwise hold the results of millions of sessions.
    return max(_RECORD_BYTES, record_bytes(record))


def _chunks(units: Iterator[Record | LineBlock], limit: _Size) -> Iterator[_Chunk]:
    # Blocks gathered up to limit.bytes and _CHUNK_LINES lines; a record (a CSV course)
    # travels with the chunk it falls in, in order, and _RECORDS of them make a chunk: a
    # record is evaluated course by course, and the main process reads it slowly, so
    # large chunks of them would only keep the workers waiting.
    chunk: _Chunk = []
    size = lines = records = 0
    for unit in units:
        chunk.append(unit)
        if isinstance(unit, LineBlock):
            size += len(unit.data)
            lines += unit.lines
        else:
            size += _record_size(unit)
            lines += 1
            records += 1
        if size >= limit.bytes or lines >= _CHUNK_LINES or records >= _RECORDS:
            yield chunk
            chunk, size, lines, records = [], 0, 0, 0
    if chunk:
        yield chunk


def partition_results(
    items: Sequence[object],
    first_line: int,
    protocol: Protocol,
    as_of: AsOf,
    source: str,
    record_of: Callable[[int, object], Record],
) -> Iterator[CourseResult]:
    """The results of a partition of JSON Lines texts (`kaprules.dask`), in order.

    Runs of plain text lines (a string holding one line, with at most its line break, and
    no byte order mark or lone surrogate) are read as blocks of JSON Lines; any other
    item is the record ``record_of(line number, item)`` makes of it, read per record.
    The partition is read in chunks as a file is: memory stays bounded whatever its size.
    """
    size = _Size()
    units = _partition_units(items, first_line, source, record_of)
    for chunk in _chunks(units, size):
        batch = _work_on(chunk, protocol, as_of, 0)
        size.learn(_bytes(chunk), batch)
        for result, _ in batch.results():
            yield result


def _partition_units(
    items: Sequence[object],
    first_line: int,
    source: str,
    record_of: Callable[[int, object], Record],
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
        full = size >= auditing.BLOCK_BYTES or len(run) >= auditing.BLOCK_LINES
        if run and (line is None or full):
            yield LineBlock(source, start, b"".join(run), len(run))
            run, size = [], 0
        if line is None:
            yield record_of(number, item)
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


_Text = tuple[FindingsForm | None, bool] | None
# Where a chunk's lines wait for its worker: (buffer key, slot, each block's length), or
# None when they travel with the task.
_Slot = tuple[int, int, tuple[int, ...]] | None
_Task = tuple[_Chunk, _Text, _Slot]


def _work(task: _Task) -> ResultBatch:
    # In a worker of auditing.in_workers: the same pool, signals and parent watch as the
    # per-record engine's. One Polars thread a worker: the workers already fill the cores,
    # and Polars' threads would only contend with them.
    os.environ.setdefault("POLARS_MAX_THREADS", "1")
    protocol, as_of, sample = worker_settings()
    assert isinstance(protocol, Protocol)  # several versions never run here
    chunk, text, slot = task
    data = None
    if slot is not None:
        chunk, data = _Shared.unpacked(chunk, slot)
    return _work_on(chunk, protocol, as_of, sample, text, data)


class _Shared:
    """Memory the main process shares with the workers it forks, to hand them lines.

    A pipe moves a chunk of 8 MiB in some 25 ms, while its worker waits and the main
    process works; a copy into memory both map takes 2. The buffer is mapped before the
    pool forks its workers (they inherit it, by its key: two audits at once each have
    theirs) and holds one slot per chunk in flight. A slot is reused only once its chunk's
    results are back, so a worker reads it undisturbed.
    """

    # Bytes a slot holds: a chunk of _CHUNK_BYTES * 2 and a block with a line at the
    # loader's limit; a larger chunk travels with its task.
    SLOT = 36 << 20
    live: ClassVar[dict[int, mmap.mmap]] = {}

    def __init__(self, slots: int) -> None:
        self.key = id(self)
        self.buffer = mmap.mmap(-1, slots * self.SLOT)
        self.free = list(range(slots))
        _Shared.live[self.key] = self.buffer

    @classmethod
    def make(cls, slots: int) -> _Shared | None:
        """A buffer for ``slots`` chunks, where workers are forked (else None)."""
        # Spawned workers would not inherit it.
        if start_method() != "fork":
            return None
        try:
            return cls(slots)
        except (OSError, ValueError):  # no such memory to be had: the pipe, as before
            return None

    def close(self) -> None:
        """Unmap the buffer (once its workers are stopped)."""
        _Shared.live.pop(self.key, None)
        self.buffer.close()

    def packed(self, task: _Task) -> _Task:
        """The task with its lines in a free slot, or as it is (no slot, or too large)."""
        chunk, text, _ = task
        blocks = [unit.data for unit in chunk if isinstance(unit, LineBlock)]
        if not self.free or not blocks or sum(map(len, blocks)) > self.SLOT:
            return task
        slot = self.free.pop()
        at = slot * self.SLOT
        for data in blocks:
            self.buffer[at : at + len(data)] = data
            at += len(data)
        empty = [
            attrs.evolve(unit, data=b"") if isinstance(unit, LineBlock) else unit for unit in chunk
        ]
        return empty, text, (self.key, slot, tuple(map(len, blocks)))

    def release(self, task: _Task) -> None:
        """Free the task's slot: its results are back."""
        if task[2] is not None:
            self.free.append(task[2][1])

    @staticmethod
    @contextlib.contextmanager
    def closing(shared: _Shared | None) -> Iterator[None]:
        """Close ``shared`` (if any) on leaving."""
        try:
            yield
        finally:
            if shared is not None:
                shared.close()

    @staticmethod
    def unpacked(
        chunk: _Chunk, slot: tuple[int, int, tuple[int, ...]]
    ) -> tuple[_Chunk, bytes | None]:
        """In a worker: the chunk with its lines read back from the slot.

        Returns the chunk, and its lines as `_work_on` joins them: when every block ends
        its last line, the slot's bytes are that text, and the blocks stay empty (one
        copy out of the slot, not two).
        """
        key, index, lengths = slot
        buffer = _Shared.live[key]
        at = start = index * _Shared.SLOT
        ends = []
        for size in lengths:
            at += size
            ends.append(buffer[at - 1 : at] == b"\n" if size else False)
        found: _Chunk = chunk
        data = None
        if all(ends):
            data = buffer[start:at]
        else:
            found, at = [], start
            sizes = iter(lengths)
            for unit in chunk:
                if isinstance(unit, LineBlock):
                    size = next(sizes)
                    unit = attrs.evolve(unit, data=buffer[at : at + size])
                    at += size
                found.append(unit)
        # Left mapped, the pages read would count in this worker's memory for the whole
        # audit: each worker would come to hold every slot (2 * jobs, up to 36 MiB each).
        # The main process's pages stay as they are. Only whole pages can be dropped, and
        # a refusal only costs memory.
        page = mmap.PAGESIZE
        start = -(-index * _Shared.SLOT // page) * page
        if hasattr(mmap, "MADV_DONTNEED") and at - start >= page:
            with contextlib.suppress(OSError):
                buffer.madvise(mmap.MADV_DONTNEED, start, (at - start) // page * page)
        return found, data


def _parallel(
    tasks: Iterator[_Task],
    size: _Size,
    protocol: Protocol,
    as_of: AsOf,
    jobs: int,
    sample: int,
) -> Iterator[ResultBatch]:
    kept = 0
    shared = _Shared.make(jobs * _IN_FLIGHT)
    if shared is not None:
        tasks = map(shared.packed, tasks)
    done = in_workers(tasks, _work, protocol, as_of, jobs, sample, _IN_FLIGHT)
    # Leaving early stops the workers at once; the buffer is unmapped after them.
    with _Shared.closing(shared), contextlib.closing(done):
        for task, batch in done:
            if shared is not None:
                shared.release(task)
            size.learn(_bytes(task[0], task[2]), batch)
            # Each worker drew up to `sample` courses of its own: the first ones count.
            drawn = sum(data is not None for _, _, data in batch.others)
            if drawn and kept + drawn > sample:
                others, left = [], max(sample - kept, 0)
                for position, fields, data in batch.others:
                    if data is not None:
                        data, left = (data, left - 1) if left else (None, 0)
                    others.append((position, fields, data))
                batch = batch._replace(others=others)
                drawn = min(drawn, max(sample - kept, 0))
            kept += drawn
            yield batch


def _work_on(
    chunk: _Chunk,
    protocol: Protocol,
    as_of: AsOf,
    sample: int,
    text: _Text = None,
    data: bytes | None = None,
) -> ResultBatch:
    """A chunk's results: compliant courses as columns, every other result as its fields.

    ``sample``: at most this many records come with their data, for a report to draw.
    ``text``: ``(form, inputs)`` for the findings file's rows and the counts instead (see
    `ResultBatch`). ``data``: the blocks' lines joined, each ending in a line break, when
    already at hand (the blocks are then empty).
    """
    if data is None:
        data = b"".join(
            unit.data if unit.data.endswith(b"\n") else unit.data + b"\n"
            for unit in chunk
            if isinstance(unit, LineBlock)
        )
    lines = _Rows(data)
    # Only a line with an object can be a course: blank or stray lines need no Polars.
    certain = b"{" in data and supports(protocol)
    if text is not None and _fast.ENABLED:
        tables = _tables(data, protocol, as_of) if certain else None
        return _written(chunk, lines, tables, protocol, as_of, sample, text)
    found, (rows, ids, counts) = (
        _evaluated(data, protocol, as_of) if certain else ({}, ([], [], []))
    )
    others: list[tuple[int, ResultFields, RecordData | None]] = []
    drawn = 0
    for position, row, unit, number, line in _rest(chunk, rows, lines):
        done = found.get(row)
        if done is not None:
            fields: ResultFields = (number, unit.source, done[0], done[1], done[2], None)
        else:
            fields = result_fields(_item(unit, number, line), protocol, as_of)
        record = None
        if drawn < sample and wanted_in_samples(fields):
            record, drawn = _item(unit, number, line)[1], drawn + 1
        others.append((position, fields, record))
    if text is None:
        return ResultBatch(others, rows, ids, counts, _blocks(chunk))
    summary = AuditSummary("", "", None, ())
    summary.add_compliant(len(rows))
    results = [make_result(CourseResult, fields) for _, fields, _ in others]
    for result in results:
        summary.add(result)
    form, inputs = text
    written = findings_rows(results, form, inputs=inputs) if form is not None else ""
    drawn_only = [entry for entry in others if entry[2] is not None]
    return ResultBatch(drawn_only, [], [], [], [], summary, written)


def _written(
    chunk: _Chunk,
    lines: _Rows,
    tables: tuple[Any, Any] | None,
    protocol: Protocol,
    as_of: AsOf,
    sample: int,
    text: tuple[FindingsForm | None, bool],
) -> ResultBatch:
    """A chunk as the findings file's rows and its counts (a `ResultBatch` of text).

    The courses read with certainty are counted, and their rows written, as columns;
    every other record goes through the per-record code, as in `_work_on`.
    """
    form, inputs = text
    blocks = _blocks(chunk)
    summary = AuditSummary("", "", None, ())
    pieces: tuple[list[int], list[str]] = ([], [])
    candidates: list[tuple[int, int]] = []  # (position, row) of courses a report may draw
    taken: list[int] = []
    table = heads = None
    if tables is not None:
        heads, table = tables
        vector = _vector(heads, table, protocol, form, inputs, blocks, sample)
        taken = vector.taken
        summary.add_compliant(vector.compliant)
        summary.lines_read += vector.with_errors
        summary.courses += vector.with_errors
        summary.with_errors += vector.with_errors
        summary.rules = vector.rules
        pieces = vector.rows
        candidates = vector.drawable
    others: list[tuple[int, ResultFields, RecordData | None]] = []
    record_pieces: list[tuple[int, str]] = []
    for position, _, unit, number, line in _rest(chunk, taken, lines):
        item = _item(unit, number, line)
        fields = result_fields(item, protocol, as_of)
        result = make_result(CourseResult, fields)
        summary.add(result)
        if form is not None and (result.findings or result.rejected is not None):
            record_pieces.append((position, findings_rows([result], form, inputs=inputs)))
        if sample and wanted_in_samples(fields):
            others.append((position, fields, item[1]))
    if sample and candidates and table is not None and heads is not None:
        others = _drawn(chunk, lines, others, candidates, sample, table, heads, protocol)
    others = sorted(others, key=lambda entry: entry[0])[:sample]
    written = _interleaved(pieces, record_pieces) if form is not None else ""
    return ResultBatch(others, [], [], [], [], summary, written)


def _interleaved(rows: tuple[list[int], list[str]], records: list[tuple[int, str]]) -> str:
    """The rows (positions ascending, and their texts) with the records' rows among them.

    ``records``: ``(position, rows)`` ascending, a few a chunk; the columns' rows, the
    many, are joined in runs between them.
    """
    positions, texts = rows
    parts: list[str] = []
    at = 0
    for position, text in records:
        cut = bisect.bisect_left(positions, position, lo=at)
        parts.extend((*texts[at:cut], text))
        at = cut
    parts.extend(texts[at:])
    return "".join(parts)


class _Vector(NamedTuple):
    """What `_vector` makes of the courses read with certainty."""

    taken: list[int]  # their rows, ascending: every other record goes per record
    compliant: int  # courses without an error finding
    with_errors: int
    rules: dict[str, list[int]]  # rule id: [courses, findings, waived]
    rows: tuple[list[int], list[str]]  # each finding's position, and its findings row
    drawable: list[tuple[int, int]]  # (position, row) of the first such: a report's draw


def _vector(
    heads: Any,
    table: Any,
    protocol: Protocol,
    form: FindingsForm | None,
    inputs: bool,
    blocks: list[tuple[int, int, str, int]],
    sample: int,
) -> _Vector:
    """The counts and findings rows of the courses read with certainty, as columns.

    A course whose findings cannot be drawn here with certainty (see `_assembled`, and a
    message with a control character, which the rows would escape) is not taken. The
    first ``sample`` courses with an error finding are named for a report to draw.
    """
    import polars as pl

    rules: list[Any] = list(protocol.rules)
    severities = [getattr(rule.severity, "value", rule.severity) for rule in rules]
    doubtful = (
        ~pl.col("drawable")
        | pl.col("message").is_null()
        | pl.col("expected").is_null()
        | pl.col("actual").is_null()
        | pl.col("message").str.contains(r"[\x00-\x1f]")
    )
    bad = table.filter(doubtful)["row"].unique()
    # Only the findings of the courses taken (heads) are counted and written here.
    table = table.filter(~pl.col("row").is_in(bad.implode()))
    table = table.filter(pl.col("row").is_in(heads["row"].implode()))
    heads = heads.filter(~pl.col("row").is_in(bad.implode()))
    taken = heads["row"].to_list()
    errors = [index for index, severity in enumerate(severities) if severity == "error"]
    with_errors = table.filter(pl.col("rule").is_in(errors))["row"].unique().sort()
    counts = table.group_by("rule").agg(pl.col("row").n_unique().alias("courses"), pl.len())
    found: dict[str, list[int]] = {}
    for index, courses, findings in counts.iter_rows():
        found[rules[index].id] = [courses, findings, 0]
    # Where each row's record is: its block (by first row), its line and its position.
    starts = pl.Series([b[0] for b in blocks], dtype=pl.Int64)
    block = pl.lit(starts).search_sorted(pl.col("row"), side="right").cast(pl.Int64) - 1
    offset = pl.col("row") - pl.lit(starts).gather(block)
    line = offset + pl.lit(pl.Series([b[3] for b in blocks], dtype=pl.Int64)).gather(block)
    place = offset + pl.lit(pl.Series([b[1] for b in blocks], dtype=pl.Int64)).gather(block)
    rows: tuple[list[int], list[str]] = ([], [])
    if form is not None and table.height:
        table = table.join(heads.select("row", "course_id"), on="row", how="left")
        # The order of protocol._findings (`_assembled`): first session, rule, sessions,
        # message.
        table = table.sort("row", "first", "rule", "places", "message")
        sources = [input_name(b[2]) for b in blocks]
        render = _csv_row if form == "csv" else _jsonl_row
        written = table.select(
            place.alias("position"),
            render(line, block, sources if inputs else None, rules, severities, protocol.version),
        )
        rows = written["position"].to_list(), written["text"].to_list()
    drawn = heads.filter(pl.col("row").is_in(with_errors.implode())).head(sample)
    drawn = drawn.select(place.alias("position"), "row")
    return _Vector(
        taken,
        heads.height - with_errors.len(),
        with_errors.len(),
        found,
        rows,
        [(position, row) for position, row in drawn.iter_rows()],
    )


def _json_text(text: Any) -> Any:
    """A text column as JSON writes it (``ensure_ascii=False``): no control characters."""
    import polars as pl

    escaped = text.str.replace_all("\\", "\\\\", literal=True)
    escaped = escaped.str.replace_all('"', '\\"', literal=True)
    return pl.concat_str([pl.lit('"'), escaped, pl.lit('"')])


def _csv_cell(text: Any) -> Any:
    """A text column as a findings CSV cell (`findings_files.cell`, then csv's quoting)."""
    import polars as pl

    starts = "".join(re.escape(c) for c in FORMULA_START)
    text = pl.when(text.str.contains(f"^[{starts}]")).then(pl.lit("'") + text).otherwise(text)
    quoted = pl.concat_str(
        [pl.lit('"'), text.str.replace_all('"', '""', literal=True), pl.lit('"')]
    )
    return pl.when(text.str.contains('[,"\r\n]')).then(quoted).otherwise(text)


def _each(values: list[str]) -> Any:
    """A text per value, to be gathered by an index column (a rule's, a block's)."""
    import polars as pl

    return pl.lit(pl.Series(values, dtype=pl.String))


def _jsonl_row(
    line: Any,
    block: Any,
    sources: list[str] | None,
    rules: list[Any],
    severities: list[str],
    version: str,
) -> Any:
    """Each finding's row of a JSON Lines findings file (`findings_files.rows`)."""
    import polars as pl

    course = pl.col("course_id")
    parts = [
        pl.lit("{"),
        *(
            [pl.lit('"input": '), _each([quote(s) for s in sources]).gather(block), pl.lit(", ")]
            if sources is not None
            else []
        ),
        pl.lit('"line": '),
        line.cast(pl.String),
        pl.lit(', "course": '),
        pl.when(course.is_null())
        .then(pl.lit("null"))
        .otherwise(pl.lit('"') + course + pl.lit('"')),
        pl.lit(', "rule": '),
        _each([quote(rule.id) for rule in rules]).gather(pl.col("rule")),
        pl.lit(', "severity": '),
        _each([quote(severity) for severity in severities]).gather(pl.col("rule")),
        pl.lit(', "sessions": ['),
        pl.col("ids").list.eval(_json_text(pl.element())).list.join(", "),
        pl.lit('], "message": '),
        _json_text(pl.col("message")),
        # Courses with waivers are never read here: every finding is unwaived.
        pl.lit(f', "protocol_version": {quote(version)}, "waiver": null}}\n'),
    ]
    return pl.concat_str(parts).alias("text")


def _csv_row(
    line: Any,
    block: Any,
    sources: list[str] | None,
    rules: list[Any],
    severities: list[str],
    version: str,
) -> Any:
    """Each finding's row of a CSV findings file (`findings_files.rows`)."""
    import polars as pl

    cells = [
        *([_csv_cell(_each(sources).gather(block))] if sources is not None else []),
        line.cast(pl.String),
        _csv_cell(pl.col("course_id").fill_null("")),
        _csv_cell(_each([rule.id for rule in rules]).gather(pl.col("rule"))),
        _csv_cell(_each(severities).gather(pl.col("rule"))),
        _csv_cell(pl.col("ids").list.join(" ")),
        _csv_cell(pl.col("message")),
        pl.lit(""),
        _csv_cell(pl.lit(version)),
        *(pl.lit("") for _ in range(3)),  # no waiver: courses with waivers go per record
    ]
    return (pl.concat_str(cells, separator=",") + pl.lit("\n")).alias("text")


def _drawn(
    chunk: _Chunk,
    lines: _Rows,
    others: list[tuple[int, ResultFields, RecordData | None]],
    candidates: list[tuple[int, int]],
    sample: int,
    table: Any,
    heads: Any,
    protocol: Protocol,
) -> list[tuple[int, ResultFields, RecordData | None]]:
    """The first ``sample`` courses a report may draw: per-record ones, and those read here.

    ``candidates``: ``(position, row)`` of the courses read here with an error finding,
    ascending; their results are made (findings as dicts) only when drawn.
    """
    import polars as pl

    first = sorted([*((p, None) for p, _, _ in others), *candidates[:sample]])[:sample]
    rows = [row for _, row in first if row is not None]
    if not rows:
        return others
    found = _assembled(table.filter(pl.col("row").is_in(rows)), protocol)
    known = heads.filter(pl.col("row").is_in(rows))
    facts = {row: (course_id, n) for row, course_id, n in known.iter_rows()}
    positions = {row: position for position, row in first if row is not None}
    kept = list(others)
    for row in rows:
        unit, number = _line_at(chunk, row)
        line = lines[row]
        findings = found[row]
        assert findings is not None  # drawable: checked by _vector
        course_id, n = facts[row]
        fields: ResultFields = (number, unit.source, course_id, n, findings, None)
        kept.append((positions[row], fields, line_item(number, line, unit.source)[1]))
    return kept


def _line_at(chunk: _Chunk, row: int) -> tuple[LineBlock, int]:
    """The block and line number of a row of the chunk's blocks."""
    start = 0
    for unit in chunk:
        if isinstance(unit, LineBlock):
            if row < start + unit.lines:
                return unit, unit.first_line + row - start
            start += unit.lines
    raise AssertionError(f"row {row} is beyond the chunk")


def _blocks(chunk: _Chunk) -> list[tuple[int, int, str, int]]:
    """``(first row, its position, source, its line)`` of each block (`ResultBatch`)."""
    found: list[tuple[int, int, str, int]] = []
    position = row = 0
    for unit in chunk:
        if isinstance(unit, LineBlock):
            found.append((row, position, unit.source, unit.first_line))
            row += unit.lines
            position += unit.lines
        else:
            position += 1
    return found


def _item(unit: LineBlock | Record, number: int, line: bytes | None) -> RecordItem:
    if isinstance(unit, LineBlock):
        assert line is not None
        return line_item(number, line, unit.source)
    return (unit.line, unit.data, unit.source, unit.rejected)


def _rest(
    chunk: _Chunk, taken: list[int], lines: _Rows
) -> Iterator[tuple[int, int, LineBlock | Record, int, bytes | None]]:
    """``(position, row, unit, line number, line)`` of each record whose row is not taken.

    ``taken``: rows ascending. A CSV record comes as itself (row -1, line None); a line
    with its block.
    """
    position = row = at = 0
    for unit in chunk:
        if not isinstance(unit, LineBlock):
            yield position, -1, unit, unit.line, None
            position += 1
            continue
        end = bisect.bisect_left(taken, row + unit.lines, lo=at)
        rest = sorted(set(range(row, row + unit.lines)).difference(taken[at:end]))
        for r in rest:
            yield position + r - row, r, unit, unit.first_line + r - row, lines[r]
        position += unit.lines
        row += unit.lines
        at = end


class _Rows:
    """A chunk's lines by row (its blocks' lines, in order), split when first wanted."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._lines: list[bytes] | None = None

    def __getitem__(self, row: int) -> bytes:
        if self._lines is None:
            self._lines = self._data.split(b"\n")
        return self._lines[row]


_Known = tuple[str | None, int, tuple[dict[str, Any], ...]]


def _evaluated(
    data: bytes, protocol: Protocol, as_of: AsOf = None
) -> tuple[dict[int, _Known], tuple[list[int], list[str | None], list[int]]]:
    """The courses of the lines read here, by their row: those with findings, and the rest.

    Returns ``{row: (course id, sessions, findings)}`` of the courses with findings, and
    ``(rows, course ids, sessions)`` of those without, rows ascending (see `_tables`).
    """
    import polars as pl

    tables = _tables(data, protocol, as_of)
    if tables is None:
        return {}, ([], [], [])
    heads, table = tables
    flagged = table["row"].unique()
    found = _assembled(table, protocol)
    plain = heads.filter(~pl.col("row").is_in(flagged.implode()))
    compliant = (plain["row"].to_list(), plain["course_id"].to_list(), plain["n"].to_list())
    known: dict[int, _Known] = {}
    flagged_heads = heads.filter(pl.col("row").is_in(flagged.implode()))
    rows, ids, counts = (flagged_heads[name].to_list() for name in ("row", "course_id", "n"))
    for row, course_id, count in zip(rows, ids, counts, strict=True):
        findings = found[row]
        if findings is not None:
            known[row] = (course_id, count, findings)
    return known, compliant


def _tables(data: bytes, protocol: Protocol, as_of: AsOf = None) -> tuple[Any, Any] | None:
    """The courses read here with certainty, and their findings; None: no course.

    Returns ``heads`` (``row, course_id, n``: one row per course, rows ascending) and the
    findings table of `_findings`. ``data`` holds lines, each ending in a newline: Polars
    reads them straight from the bytes. Bytes it refuses (a line it cannot decode) send
    them the slow way: line by line into a frame, the undecodable ones left out.
    """
    import polars as pl

    # ASCII is UTF-8, and telling so makes no text of the chunk (megabytes of it).
    if not data.isascii() and not _utf8(data):
        # The lines that are not UTF-8 become empty here.
        data = b"\n".join(line if _utf8(line) else b"" for line in data.split(b"\n"))
    try:
        lines = pl.scan_lines(data).with_row_index("row")
        courses = _courses(lines.filter(pl.col("line").str.contains(_LINE))).collect()
    except pl.exceptions.PolarsError:
        texts = data.decode("utf-8").split("\n")[:-1]
        frame = pl.DataFrame({"line": texts}, schema={"line": pl.String}).with_row_index("row")
        decoded = _decoded(frame.filter(pl.col("line").str.contains(_LINE)))
        if decoded is None:
            return None
        courses = _courses(decoded.lazy()).collect()
    if courses.height == 0:
        return None
    sessions = _sessions(courses, as_of)
    taken = sessions.filter(pl.col("place") == 0)["row"]
    heads = courses.filter(pl.col("row").is_in(taken.implode())).select("row", "course_id", "n")
    columns, forms = _plan(protocol)
    table = _findings(sessions.lazy(), columns, forms).collect()
    return heads.sort("row"), table


def _schema() -> Any:
    import polars as pl

    session = pl.Struct(dict.fromkeys(_SESSION_KEYS, pl.String))
    return pl.Struct({**dict.fromkeys(_COURSE_KEYS, pl.String), "sessions": pl.List(session)})


def _utf8(line: bytes) -> bool:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _decoded(frame: Any) -> Any | None:
    """The lines with their courses decoded (``c``); lines Polars cannot decode left out."""
    import polars as pl

    try:
        return frame.with_columns(pl.col("line").str.json_decode(_schema()).alias("c"))
    except pl.exceptions.PolarsError:
        if frame.height <= 1:
            return None
        half = frame.height // 2
        parts = [_decoded(frame.slice(0, half)), _decoded(frame.slice(half))]
        kept = [p for p in parts if p is not None]
        return pl.concat(kept) if kept else None


def _courses(lines: Any) -> Any:
    """One row per line of the course's shape: ``row, course_id, n, tz, sessions``.

    Lazy: ``lines`` is a LazyFrame of ``row, line``, or of ``row, line, c`` already decoded.
    """
    import polars as pl

    if "c" not in lines.collect_schema():
        lines = lines.with_columns(pl.col("line").str.json_decode(_schema()).alias("c"))
    c = pl.col("c")
    quotes = pl.col("line").str.count_matches('"', literal=True)
    # Quotes the decoded values account for: two per string, keys included. Any key the
    # decoder dropped (unknown, repeated) or value it made a string leaves quotes over.
    strings = (
        pl.sum_horizontal(
            [c.struct.field(k).is_not_null().cast(pl.Int64) * 4 for k in _COURSE_KEYS]
        )
        + c.struct.field("sessions").is_not_null().cast(pl.Int64) * 2
    )
    # (A blank id does not pass _LINE.) The loader refuses more than MAX_SESSIONS sessions.
    count = c.struct.field("sessions").list.len()
    clean = (
        c.is_not_null()
        & c.struct.field("timezone").is_not_null()
        & (count > 0)
        & (count <= MAX_SESSIONS)
    )
    return lines.filter(clean).select(
        "row",
        course_id=c.struct.field("id"),
        tz=c.struct.field("timezone"),
        sessions=c.struct.field("sessions"),
        n=c.struct.field("sessions").list.len(),
        course_quotes=quotes - strings,
    )


def _days_from(y: Any, month: Any, day: Any) -> Any:
    era = y // 400
    yoe = y - era * 400
    mp = (month + 9) % 12
    doy = (153 * mp + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _days_in_month(year: Any, month: Any) -> Any:
    import polars as pl

    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    # 31 or 30 by the month's parity, which flips after July.
    return (
        pl.when(month == 2).then(28 + leap.cast(pl.Int64)).otherwise(30 + (month + month // 8) % 2)
    )


def _instant(column: str) -> Any:
    """The UTC seconds of an instant column (of a layout `_LINE` lets through); null: null.

    The local part is read by Polars' own parser of the one layout (its fast path: several
    times cheaper than slicing out each field), which leaves impossible dates (February
    30) null; the line's pattern holds every field to its range.
    """
    import polars as pl

    text = pl.col(column)
    local = (
        text.str.slice(0, 19)
        .str.to_datetime("%Y-%m-%dT%H:%M:%S", strict=False, cache=False)
        .dt.epoch("s")
    )
    # The offset looked up: half the cost of reading its fields; null where not an offset.
    texts, seconds = _offset_texts()
    offset = text.str.slice(19).replace_strict(texts, seconds, default=None)
    return local - offset


@functools.cache
def _offset_texts() -> tuple[Any, Any]:
    """Every offset `_INSTANT` lets through (``Z``, ``+05:30``), and its seconds."""
    import polars as pl

    table = {"Z": 0}
    for sign in (1, -1):
        for minutes in range(24 * 60):
            text = f"{'+' if sign > 0 else '-'}{minutes // 60:02d}:{minutes % 60:02d}"
            table[text] = sign * minutes * 60
    return pl.Series(list(table), dtype=pl.String), pl.Series(table.values(), dtype=pl.Int64)


def _sessions(courses: Any, as_of: AsOf = None) -> Any:
    """One row per session of the clean courses, in start order, with the rules' columns.

    Eager, step by step: on these frames Polars' in-memory steps cost less than one lazy
    plan. Only the courses certain to be read as the loader reads them are kept.
    """
    import polars as pl

    zones = courses["tz"].unique().drop_nulls().to_list()
    offset, index = _zone_offsets(tuple(sorted(zones)))
    courses = courses.with_columns(
        zone=pl.col("tz").replace_strict(index, default=None, return_dtype=pl.Int64)
    )
    s = (
        courses.select(
            "row", "zone", "n", "course_quotes", "sessions", pos=pl.int_ranges(0, pl.col("n"))
        )
        .explode("sessions", "pos")
        .unnest("sessions")
    )
    start = _instant("start")
    food = _instant("last_food")
    given = [pl.col(k).is_not_null().cast(pl.Int64) for k in _SESSION_KEYS]
    s = s.select(
        "row",
        "zone",
        "course_quotes",
        "pos",
        "escort",
        "therapist",
        utc=start,
        food=food,
        sid=pl.coalesce(pl.col("id"), (pl.col("pos") + 1).cast(pl.String)),
        induction=pl.col("kind").is_null() | (pl.col("kind") == "induction"),
        valid=(pl.col("kind").is_null() | pl.col("kind").is_in(["induction", "booster"])),
        _food_given=pl.col("last_food").is_not_null(),
        quotes=pl.sum_horizontal(given) * 4,
    )
    # A start (required), and a last_food when given, that were read: their layouts are
    # the line's (_LINE), their dates real (see _instant).
    read = pl.col("utc").is_not_null() & (~pl.col("_food_given") | pl.col("food").is_not_null())
    s = s.with_columns(valid=pl.col("valid") & read).drop("_food_given")
    s = s.with_columns(offset=offset)
    # Start order; sessions that start together (ordered by id in the timeline) send their
    # course the per-record way, so that only integers are sorted here.
    s = s.with_columns(date=(pl.col("utc") + pl.col("offset")) // 86400).sort("row", "utc")
    s = s.with_columns(_as_of(as_of, index))
    s = s.with_columns(
        _tie=(pl.col("row") == pl.col("row").shift(1)) & (pl.col("utc") == pl.col("utc").shift(1))
    )
    # Whether the course is certain: every session valid, every quote accounted for, its
    # zone known, its session ids unique, no two at the same instant.
    certain = (
        ~pl.col("_tie").fill_null(False).any()
        & pl.col("valid").all()
        & pl.col("offset").is_not_null().all()
        & (pl.col("course_quotes").first() == pl.col("quotes").sum())
        & (pl.col("sid").n_unique() == pl.len())
    )
    ok = s.group_by("row").agg(certain.alias("ok")).filter(pl.col("ok"))["row"]
    s = s.filter(pl.col("row").is_in(ok.implode()))
    row = pl.col("row")
    # The frame's first row starts a course too (the shift gives it null, not True).
    start_row = (row != row.shift(1)).fill_null(True)
    number = pl.int_range(pl.len(), dtype=pl.Int64)
    ind = pl.col("induction").cast(pl.Int64)
    # Rows are sorted by course: each course's first row, and running sums from there.
    s = s.with_columns(
        _start=pl.when(start_row).then(number).forward_fill(),
        _cum=ind.cum_sum() - ind,
    )
    s = s.with_columns(
        place=number - pl.col("_start"),
        _base=pl.when(start_row).then(pl.col("_cum")).forward_fill(),
    )
    first_ind = pl.col("induction") & (pl.col("_cum") == pl.col("_base"))
    s = s.with_columns(
        prev_date=pl.when(~start_row).then(pl.col("date").shift(1)),
        inductions_before=pl.col("_cum") - pl.col("_base"),
        _fid_row=pl.when(first_ind).then(row).forward_fill(),
        _fid=pl.when(first_ind).then(pl.col("date")).forward_fill(),
    )
    return s.with_columns(
        n_induction=ind.sum().over("row"),
        first_induction_date=pl.when(pl.col("_fid_row") == row).then(pl.col("_fid")),
    ).drop("_start", "_cum", "_base", "_fid_row", "_fid", "_tie")


_EPOCH_DAY = dt.date(1970, 1, 1)


def _as_of(as_of: AsOf, zones: dict[str, int]) -> list[Any]:
    """``planned`` and ``as_of_date`` of each session, as `Timeline.of` sets them.

    ``as_of_date``: the local date of ``as_of`` in the course's zone (``zones``: the ids
    of the ``zone`` column), in days since 1970-01-01, null without ``as_of``. A session
    is planned when it starts after an ``as_of`` instant, or on a local date after an
    ``as_of`` date; "today" is a date in each zone (the per-record path's ``date_in``).
    """
    import polars as pl

    if as_of is None:
        return [pl.lit(False).alias("planned"), pl.lit(None, dtype=pl.Int64).alias("as_of_date")]
    if isinstance(as_of, dt.date) and not isinstance(as_of, dt.datetime):
        day = (dt.date(as_of.year, as_of.month, as_of.day) - _EPOCH_DAY).days
        return [
            (pl.col("date") > day).alias("planned"),
            pl.lit(day, dtype=pl.Int64).alias("as_of_date"),
        ]
    if isinstance(as_of, dt.datetime):
        instant = _time.to_utc(as_of)
        date = _local_dates(zones, lambda zone: instant.astimezone(zone).date())
        micro = (instant - _EPOCH) // dt.timedelta(microseconds=1)
        return [(pl.col("utc") * 1_000_000 > micro).alias("planned"), date.alias("as_of_date")]
    date = _local_dates(zones, as_of.date_in)  # "today": its date in each zone
    return [(pl.col("date") > date).alias("planned"), date.alias("as_of_date")]


def _local_dates(zones: dict[str, int], local: Callable[[Any], dt.date]) -> Any:
    """``local(zone)`` of each session's zone, in days since 1970-01-01 (a column)."""
    import polars as pl

    days = {z: (local(_time.zone(name)) - _EPOCH_DAY).days for name, z in zones.items()}
    return pl.col("zone").replace_strict(days, default=None, return_dtype=pl.Int64)


# UTC seconds the zone tables cover: 1901-01-01 and 2200-01-01, two days either way.
_LO = -2_177_452_800 - 2 * 86400
_HI = 7_258_118_400 + 2 * 86400
_BIAS = 1 << 32
_SHIFT = 1 << 35
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@functools.lru_cache(maxsize=1024)
def _zone_table(name: str) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """(segment starts, UTC offsets) of a zone, in seconds, from _LO to _HI; None: unknown.

    The offset is zoneinfo's own (``astimezone``, as the timeline converts), asked at the
    start of each segment. The segments' starts are a superset of the instants where the
    offset can change: every transition of the zone's file, and for the years its rule
    (its POSIX TZ string) covers, every instant around that rule's changes and the years'
    boundaries, read with the standard library's pure-Python zoneinfo. Between two starts
    zoneinfo's offset is constant, so one question per segment answers for all of it.
    Anything unexpected makes the zone unknown: its courses take the per-record path.
    """
    try:
        zone = _time.zone(name)
        from zoneinfo import _zoneinfo as pure  # type: ignore[attr-defined]

        parsed = pure.ZoneInfo.no_cache(name)
        transitions = [int(t) for t in parsed._trans_utc]
        points = {_LO, *(t for t in transitions if _LO < t < _HI)}
        after = parsed._tz_after
        if isinstance(after, pure._TZStr):
            # zoneinfo's rule for a UTC instant: the DST bounds of the instant's UTC year,
            # the start in standard time and the end in daylight time (_TZStr).
            first = max(1900, _year_of(transitions[-1]) - 1) if transitions else 1900
            std = int(after.std.utcoff.total_seconds())
            dst = int(after.dst.utcoff.total_seconds())
            for year in range(first, 2202):
                begin, end = (int(t) for t in after.transitions(year))
                new_year = int((dt.datetime(year, 1, 1, tzinfo=dt.UTC) - _EPOCH).total_seconds())
                for point in (new_year, begin - std, begin - dst, end - std, end - dst):
                    if _LO < point < _HI:
                        points.add(point)
        elif not isinstance(after, pure._ttinfo):
            return None
        starts = tuple(sorted(points))
        offsets = tuple(_offset(zone, t) for t in starts)
    except Exception:  # a zone this engine cannot read with certainty: per record
        return None
    return starts, offsets


def _year_of(seconds: int) -> int:
    return (_EPOCH + dt.timedelta(seconds=seconds)).year


def _offset(zone: Any, seconds: int) -> int:
    local = (_EPOCH + dt.timedelta(seconds=seconds)).astimezone(zone)
    offset = local.utcoffset()
    assert offset is not None
    return offset // dt.timedelta(seconds=1)


def _zone_keys(zones: list[str]) -> tuple[list[int], list[int], dict[str, int]]:
    """The zone tables of ``zones`` as one sorted key list: (keys, offsets, zone ids)."""
    keys: list[int] = []
    values: list[int] = []
    index: dict[str, int] = {}
    for name in sorted(zones):
        table = _zone_table(name)
        if table is None:
            continue
        index[name] = z = len(index) + 1
        keys.extend(z * _SHIFT + _BIAS + t for t in table[0])
        values.extend(table[1])
    return keys, values, index


# A few sets of zones only: a table for every zone holds some 3 MiB, and input whose
# chunks each have zones of their own would keep one for each.
@functools.lru_cache(maxsize=4)
def _zone_offsets(zones: tuple[str, ...]) -> tuple[Any, dict[str, int]]:
    """`_offset_of` for ``zones``, and their ids: built once for the zones of many chunks."""
    keys, values, index = _zone_keys(list(zones))
    return _offset_of(keys, values), index


def _offset_of(keys: list[int], values: list[int]) -> Any:
    """The UTC offset in seconds of each session (``zone``, ``utc``); null where unknown."""
    import polars as pl

    if not keys:
        return pl.lit(None, dtype=pl.Int64)
    utc = pl.col("utc")
    wanted = pl.when((utc >= _LO) & (utc < _HI)).then(pl.col("zone") * _SHIFT + _BIAS + utc)
    # Within its zone's keys: the first key of a zone is at _LO, below any wanted value.
    place = pl.lit(pl.Series(keys, dtype=pl.Int64)).search_sorted(wanted.fill_null(0), side="right")
    place = (place.cast(pl.Int64) - 1).clip(0, len(keys) - 1)
    found = pl.lit(pl.Series(values, dtype=pl.Int64)).gather(place)
    return pl.when(wanted.is_not_null()).then(found)


class Columns:
    """What a rule's ``columnar`` form reads and writes: Polars expressions, a row a session.

    Rows are in start order within each course (ties broken by id), as the timeline has
    them; courses read here have no integration meetings. A form honours ``as_of``
    through `planned` and `as_of_date`, as ``__call__`` does through the timeline's.

    Attributes:
        induction: Whether the session is an induction session.
        date: Its local date, in days since 1970-01-01.
        previous_date: The local date of the session before it in the course, or null.
        utc: Its start, in seconds since 1970-01-01 UTC.
        food: Its ``last_food``, in seconds since 1970-01-01 UTC, or null.
        escort: Its escort, or null.
        therapist: Its therapist, or null.
        inductions: The course's induction sessions.
        inductions_before: Induction sessions before it in the course.
        first_induction_date: The local date of the course's first induction, or null.
        first: Whether it is the course's first session.
        label: How messages name it (`TimedSession.label`).
        previous_label: How messages name the session before it.
        planned: Whether the session is still planned (`TimedSession.planned`): always
            False without ``as_of``.
        as_of_date: The local date of ``as_of`` in the course's zone
            (`Timeline.as_of_date`), in days since 1970-01-01; null without ``as_of``.
        series_length: The protocol's series length (`Timeline.series_length`), or None.
    """

    def __init__(self, series_length: int | None) -> None:
        import polars as pl

        self._pl = pl
        self.series_length = series_length
        self.induction = pl.col("induction")
        self.date = pl.col("date")
        self.previous_date = pl.col("prev_date")
        self.utc = pl.col("utc")
        self.food = pl.col("food")
        self.escort = pl.col("escort")
        self.therapist = pl.col("therapist")
        self.inductions = pl.col("n_induction")
        self.inductions_before = pl.col("inductions_before")
        self.first_induction_date = pl.col("first_induction_date")
        self.first = pl.col("place") == 0
        self.label = pl.col("label")
        self.planned = pl.col("planned")
        self.as_of_date = pl.col("as_of_date")
        self.previous_label = pl.col("prev_label")
        self.groups: list[tuple[str, Any]] = []
        self.stages: list[tuple[str, Any]] = []

    def of_kinds(self, kinds: Iterable[object]) -> Any:
        """Whether the session is of one of ``kinds``."""
        values = {str(k) for k in kinds}
        if values >= {"induction", "booster"}:
            return self._pl.lit(True)
        if "induction" in values:
            return self.induction
        if "booster" in values:
            return ~self.induction
        return self._pl.lit(False)

    def blank(self, text: Any) -> Any:
        """Whether a text column is null or only whitespace (as ``not text.strip()``)."""
        return text.is_null() | (text.str.strip_chars(_WHITESPACE) == "")

    def add_months(self, date: Any, months: int) -> Any:
        """``_time.add_months`` on a date column (days since the epoch): day clamped."""
        pl = self._pl
        at = self._stage
        # Date to civil fields, Howard Hinnant's algorithm, a column at each step: Polars
        # would otherwise grow (and evaluate) the nested expressions many times over.
        z = at(date.cast(pl.Int64) + 719468)
        era = at(z // 146097)
        doe = at(z - era * 146097)
        yoe = at((doe - doe // 1460 + doe // 36524 - doe // 146096) // 365)
        doy = at(doe - (365 * yoe + yoe // 4 - yoe // 100))
        mp = at((5 * doy + 2) // 153)
        day = at(doy - (153 * mp + 2) // 5 + 1)
        month = at(mp + 3 - 12 * (mp >= 10).cast(pl.Int64))
        year = at(yoe + era * 400 + (month <= 2).cast(pl.Int64))
        total = at(year * 12 + month - 1 + months)
        year, month = at(total // 12), at(total % 12 + 1)
        last = at(_days_in_month(year, month))
        day = at(pl.when(day > last).then(last).otherwise(day))
        y = at(year - (month <= 2).cast(pl.Int64))
        return at(_days_from(y, month, day))

    def _stage(self, expr: Any) -> Any:
        # A column computed before the rules' expressions are (see add_months).
        name = f"_stage{len(self.stages)}"
        self.stages.append((name, expr))
        return self._pl.col(name)

    # --- messages ---------------------------------------------------------------------

    def text(self, *parts: Any) -> Any:
        """Parts (text, or integer or text expressions) joined, as an f-string would."""
        pl = self._pl
        return pl.concat_str(
            [pl.lit(p) if isinstance(p, str) else p.cast(pl.String) for p in parts]
        )

    def choose(self, condition: Any, then: Any, otherwise: Any) -> Any:
        """``then`` where ``condition`` holds, else ``otherwise`` (texts or expressions)."""
        pl = self._pl
        return pl.when(condition).then(_lit(pl, then)).otherwise(_lit(pl, otherwise))

    def joined(self, where: Any, text: Any) -> Any:
        """The texts of a course's sessions where ``where`` holds, joined by ``", "``."""
        name = f"_group{len(self.groups)}"
        self.groups.append((name, text.filter(where).str.join(", ")))
        return self._pl.col(name)

    def iso(self, date: Any) -> Any:
        """A date column as ``date.isoformat()``."""
        return date.cast(self._pl.Int32).cast(self._pl.Date).dt.to_string("%Y-%m-%d")

    def days(self, n: Any) -> Any:
        """``_days(n)``: ``1 day``, ``2 days``."""
        return self.text(n, self.choose(n == 1, " day", " days"))

    def duration(self, seconds: Any) -> Any:
        """``_time.format_duration`` of whole seconds: ``3 h 59 min``, ``-1 h 00 min 05 s``."""
        pl = self._pl
        size = seconds.abs()
        minutes = (size % 3600 // 60).cast(pl.String).str.zfill(2)
        secs = (size % 60).cast(pl.String).str.zfill(2)
        return self.text(
            self.choose(seconds < 0, "-", ""),
            size // 3600,
            " h ",
            minutes,
            " min",
            self.choose(size % 60 != 0, self.text(" ", secs, " s"), ""),
        )

    def iso_duration(self, seconds: Any) -> Any:
        """``_iso_duration`` of whole seconds: ``PT3H59M``, ``-PT1H``, ``PT0S``."""
        pl = self._pl
        size = seconds.abs()
        hours, minutes, secs = size // 3600, size % 3600 // 60, size % 60
        body = pl.concat_str(
            [
                self.choose(hours != 0, self.text(hours, "H"), ""),
                self.choose(minutes != 0, self.text(minutes, "M"), ""),
                self.choose(secs != 0, self.text(secs, "S"), ""),
            ]
        )
        return self.text(
            self.choose(seconds < 0, "-", ""), "PT", self.choose(body == "", "0S", body)
        )

    def number(self, value: Any) -> Any:
        """An integer (or integer column) as a finding's expected or actual value."""
        return self.text(value if not isinstance(value, int) else str(value))

    def string(self, value: Any) -> Any:
        """A text (or text column, without quotes or escapes) as an expected or actual value."""
        if isinstance(value, str):
            return self._pl.lit(json.dumps(value))
        return self.text('"', value, '"')

    def null(self) -> Any:
        """None as an expected or actual value."""
        return self._pl.lit("null")

    def finding(
        self, where: Any, message: Any, expected: Any, actual: Any, sessions: Any = "this"
    ) -> tuple[Any, ...]:
        """A finding at each session where ``where`` holds.

        Args:
            where: Where the rule has the finding (one finding a row).
            message: Its message.
            expected: Its expected value, from `number`, `string` or `null`.
            actual: Its actual value, likewise.
            sessions: The sessions it names: ``"this"`` (the row's), ``"pair"`` (the one
                before and the row's), None (none), or a condition: the course's sessions
                where it holds.
        """
        if sessions is None or isinstance(sessions, str):
            return (where, message, expected, actual, sessions)
        name = f"_group{len(self.groups)}"
        self.groups.append((name + "_ids", self._pl.col("sid").filter(sessions)))
        self.groups.append((name + "_places", self._pl.col("place").filter(sessions)))
        return (where, message, expected, actual, name)


def _lit(pl: Any, value: Any) -> Any:
    return pl.lit(value) if isinstance(value, str) else value


_Plan = tuple[Columns, list[tuple[int, tuple[Any, ...]]]]
# The plans of the last few protocols, by identity: a protocol need not be hashable (a
# rule with a list among its fields), and equal protocols may word messages apart
# (Fasting(hours=-0.0) says "-0 h"). Each entry holds its protocol, so its id is not reused.
_PLANS: dict[int, tuple[Protocol, _Plan]] = {}


def _plan(protocol: Protocol) -> _Plan:
    """The protocol's finding forms, and the columns they read: built once per protocol."""
    kept = _PLANS.get(id(protocol))
    if kept is not None and kept[0] is protocol:
        return kept[1]
    columns = Columns(protocol.series_length)
    plan = columns, _forms(protocol, columns)
    if len(_PLANS) >= 8:
        _PLANS.clear()
    _PLANS[id(protocol)] = (protocol, plan)
    return plan


def _forms(protocol: Protocol, columns: Columns) -> list[tuple[int, tuple[Any, ...]]]:
    """(rule index, finding form) of every vectorised finding of the protocol's rules."""
    rules: list[Any] = list(protocol.rules)  # each with a columnar form (see supports)
    return [(index, form) for index, rule in enumerate(rules) for form in rule.columnar(columns)]


def _findings(sessions: Any, columns: Columns, forms: list[tuple[int, tuple[Any, ...]]]) -> Any:
    """The findings of the certain sessions' courses, a row each (lazy).

    ``row, drawable, form, rule, first, places, ids, message, expected, actual``.
    """
    import polars as pl

    for name, expr in columns.stages:
        sessions = sessions.with_columns(expr.alias(name))
    # Each form's rows, once; any null (an unknown) counts as a finding: the course is
    # then read again. Each step is collected before the next reads it twice: a plan
    # that reads a frame twice computes it twice.
    sessions = sessions.with_columns(
        [form[0].fill_null(True).alias(f"_at{k}") for k, (_, form) in enumerate(forms)]
    ).collect()
    hit = pl.any_horizontal([pl.col(f"_at{k}") for k in range(len(forms))])
    flagged = _within(sessions, sessions.filter(hit)["row"])
    flagged = _labelled(flagged.lazy()).collect()
    # A course's grouped texts and lists, only for the courses where a form reads them.
    # They join only the rows of the findings that read them, never every session row: a
    # course's joined labels on each of its sessions grew with the square of its length
    # (3 courses of 3,000 sessions took 862 MiB; now 142).
    readers = [k for k, (_, form) in enumerate(forms) if _reads(form, columns.groups)]
    grouped = None
    if readers:
        wanted = pl.any_horizontal([pl.col(f"_at{k}") for k in readers])
        grouped = _within(flagged, flagged.filter(wanted)["row"])
        grouped = grouped.group_by("row").agg(**dict(columns.groups)).lazy()
    # Ids as messages show them as they are: printable ASCII, 40 characters at most.
    drawable = pl.col("sid").str.contains(r"^[ -~]{1,40}$").all().over("row")
    # Computed once here: the forms below all read it, and Polars would compute it again
    # for each of them.
    flagged = flagged.with_columns(drawable=drawable.fill_null(False)).lazy()
    parts = []
    for number, (index, (_, message, expected, actual, named)) in enumerate(forms):
        if named == "this":
            ids, places = pl.concat_list("sid"), pl.concat_list("place")
        elif named == "pair":
            ids = pl.concat_list(pl.col("prev_sid"), pl.col("sid"))
            places = pl.concat_list(pl.col("place") - 1, pl.col("place"))
        elif named is None:
            ids = pl.lit([], dtype=pl.List(pl.String))
            places = pl.lit([], dtype=pl.List(pl.Int64))
        else:
            ids, places = pl.col(named + "_ids"), pl.col(named + "_places")
        found = flagged.filter(pl.col(f"_at{number}"))
        if grouped is not None and number in readers:
            found = found.join(grouped, on="row", how="left", maintain_order="left")
        parts.append(
            found.select(
                "row",
                "drawable",
                form=pl.lit(number, dtype=pl.Int64),
                rule=pl.lit(index, dtype=pl.Int64),
                first=places.list.first().fill_null(-1).cast(pl.Int64),
                places=places.cast(pl.List(pl.Int64)),
                ids=ids,
                message=message,
                expected=expected,
                actual=actual,
            )
        )
    return pl.concat(parts).sort("row", "first", "rule", "form")


def _within(frame: Any, rows: Any) -> Any:
    """The rows of ``frame`` whose course (``row``) is among ``rows``."""
    import polars as pl

    return frame.filter(pl.col("row").is_in(rows.unique().implode()))


def _reads(form: tuple[Any, ...], groups: list[tuple[str, Any]]) -> bool:
    """Whether a finding form reads any of the grouped columns (`Columns.joined`)."""
    _, message, expected, actual, named = form
    names = {name for name, _ in groups}
    read = {named} if isinstance(named, str) else set()
    read.update(f"{named}_ids" for named in list(read))
    for part in (message, expected, actual):
        if not isinstance(part, str):
            read.update(part.meta.root_names())
    return not names.isdisjoint(read)


def _assembled(table: Any, protocol: Protocol) -> dict[int, tuple[dict[str, Any], ...] | None]:
    """Each course's findings from the table of `_findings`, in report order.

    None for a course whose findings cannot be drawn here (an id messages would echo, an
    unknown); a course absent from the answer has no finding.
    """
    rules: list[Any] = list(protocol.rules)  # built-in rules: BaseRule's help
    heads = [(rule.id, getattr(rule.severity, "value", rule.severity)) for rule in rules]
    helps = [None if rule.help is None else rule.help.to_dict() for rule in rules]
    out: dict[int, tuple[dict[str, Any], ...] | None] = {}
    found: dict[int, list[tuple[Any, dict[str, Any]]]] = {}
    decoded: dict[str, Any] = {}
    # Column by column: several times faster than row tuples.
    columns = [
        table[name].to_list()
        for name in ("row", "drawable", "rule", "places", "ids", "message", "expected", "actual")
    ]
    for row, drawable, index, places, ids, message, expected, actual in zip(*columns, strict=True):
        if not drawable or message is None or expected is None or actual is None:
            out[row] = None
            continue
        if expected not in decoded:
            decoded[expected] = json.loads(expected)
        if actual not in decoded:
            decoded[actual] = json.loads(actual)
        rule_id, severity = heads[index]
        help = helps[index]
        finding = {
            "rule": rule_id,
            "severity": severity,
            "sessions": ids,
            "message": message,
            "expected": decoded[expected],
            "actual": decoded[actual],
            "help": None if help is None else help.copy(),
            "waiver": None,  # a course with waivers is never read here
            "protocol_version": protocol.version,
        }
        # The order of protocol._findings: first session, rule, sessions, message.
        key = ((places[:1] or [-1]), index, places, message)
        pairs = found.get(row)
        if pairs is None:
            found[row] = [(key, finding)]
        else:
            pairs.append((key, finding))
    for row, pairs in found.items():
        if row in out:
            continue
        if len(pairs) > 1:
            pairs.sort(key=lambda pair: pair[0])
        out[row] = tuple(f for _, f in pairs)
    return out


# What json.dumps(..., ensure_ascii=False) writes for a string (findings_files' rows).
quote: Any = json.encoder.encode_basestring

# " 09:00" for each minute of a day; " UTC+05:30)" for each offset in minutes, up to a
# day, then " UTC-05:30)" for the same negative ones.
_WALL_TIMES = [f" {m // 60:02d}:{m % 60:02d}" for m in range(24 * 60)]
_OFFSET_MINUTES = 24 * 60 + 1
_OFFSETS = [
    f" UTC{sign}{m // 60:02d}:{m % 60:02d})" for sign in "+-" for m in range(_OFFSET_MINUTES)
]


def _labelled(sessions: Any) -> Any:
    """The sessions with their labels: ``session s3 (2026-12-03 09:00 UTC-07:00)``."""
    import polars as pl

    local = pl.col("utc") + pl.col("offset")
    of_day = local - pl.col("date") * 86400
    minutes = pl.col("offset").abs() // 60
    negative = (pl.col("offset") < 0).cast(pl.Int64)
    # Wall times and offsets as texts looked up (`_time.format_local`'s): several times
    # cheaper than formatting their numbers row by row.
    label = pl.concat_str(
        [
            pl.lit("session "),
            pl.col("sid"),
            pl.lit(" ("),
            pl.col("date").cast(pl.Int32).cast(pl.Date).dt.to_string("%Y-%m-%d"),
            pl.lit(pl.Series(_WALL_TIMES)).gather(of_day // 60),
            pl.lit(pl.Series(_OFFSETS)).gather(minutes + negative * _OFFSET_MINUTES),
        ]
    )
    same = pl.col("row") == pl.col("row").shift(1)
    return sessions.with_columns(label=label).with_columns(
        prev_label=pl.when(same).then(pl.col("label").shift(1)),
        prev_sid=pl.when(same).then(pl.col("sid").shift(1)),
    )
