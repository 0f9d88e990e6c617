"""Audits: one protocol over many courses, streamed, with a summary an auditor can read.

[`audit`][kaprules.audit] takes courses (or JSON Lines text, or records read from JSON
Lines and CSV files with [`read_records`][kaprules.auditing.read_records]) and yields one
[`CourseResult`][kaprules.CourseResult] per input record, in input order, whatever the
number of worker processes; its [`AuditSummary`][kaprules.AuditSummary] counts them.
Every record is accounted for: courses evaluated + records rejected = records read.

The package: `records` (what is read), `csv_table` and `files` (the readers), `results`
(results and their summary), `pipeline` (chunks and the ordered worker pool, for every
engine), `by_record` (the per-record engine); the columnar engine is
``kaprules._columnar``. This module checks an audit's arguments once and chooses its
engine.
"""

from __future__ import annotations

import datetime as dt
import errno
import importlib.util
import itertools
import os
from collections.abc import Iterable, Iterator
from typing import Any, Literal

import attrs

from kaprules import _fast
from kaprules._columnar.forms import form_of, unvectorised
from kaprules._moments import AsOf, read_as_of, shown
from kaprules.auditing.by_record import BY_RECORD, course_result, result_fields
from kaprules.auditing.csv_table import (
    CSV_COLUMNS,
    INTEGRATION_KIND,
    MAX_CELL_CHARS,
    csv_courses,
)
from kaprules.auditing.files import Reader, read_records
from kaprules.auditing.pipeline import (
    Evaluator,
    Job,
    SpillFolder,
    in_workers,
    run,
    start_method,
    sweep_spill_folders,
    worker_settings,
)
from kaprules.auditing.records import (
    BLOCK_BYTES,
    BLOCK_LINES,
    MAX_LINE_BYTES,
    LineBlock,
    Record,
    RecordItem,
    course_of,
    line_item,
    line_record,
    record_bytes,
)
from kaprules.auditing.results import (
    MAX_REJECTED_KEPT,
    MAX_SAMPLE_WEIGHT,
    AnyProtocol,
    AuditSummary,
    CourseResult,
    RecordData,
    ResultBatch,
    ResultFields,
    ResultForm,
    counts,
    result_of,
    summary_for,
    wanted_in_samples,
)
from kaprules.errors import InputError, KapRulesError
from kaprules.evaluation import check_protocol
from kaprules.findings_files import FindingsForm, header
from kaprules.model import Course
from kaprules.protocol import STANDARD, Protocol, ProtocolVersions

__all__ = [
    "BLOCK_BYTES",
    "BLOCK_LINES",
    "CSV_COLUMNS",
    "ENGINES",
    "INTEGRATION_KIND",
    "MAX_CELL_CHARS",
    "MAX_LINE_BYTES",
    "MAX_REJECTED_KEPT",
    "MAX_SAMPLE_WEIGHT",
    "AnyProtocol",
    "AsOf",
    "Audit",
    "AuditSummary",
    "CourseResult",
    "Engine",
    "Evaluator",
    "LineBlock",
    "Record",
    "RecordData",
    "RecordItem",
    "ResultBatch",
    "ResultFields",
    "ResultForm",
    "audit",
    "available",
    "counts",
    "course_result",
    "csv_courses",
    "engine_choice",
    "engine_for",
    "in_workers",
    "line_item",
    "line_record",
    "read_records",
    "record_bytes",
    "result_fields",
    "result_of",
    "small_input",
    "start_method",
    "summary_for",
    "wanted_in_samples",
    "worker_settings",
]

ENGINES = ("auto", "columnar", "records")
"""The engines an audit may be asked for."""

# auto audits an input of fewer bytes than this per worker course by course (see
# small_input): on 2 cores the columnar engine drew level at some 6 MB with one process
# and 13 MB with two, and no course is read twice to tell.
_SMALL_PER_JOB = 4 << 20
_SMALL_JOBS = 4
_SMALL = "4 MiB"  # small_input(1), as the engine's reason says it


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
    missing = [rule.id for rule in protocol.rules if form_of(rule) is None]
    if engine == "columnar":
        if not protocol.rules or missing:
            # The columnar engine runs, and sends every course the per-record way.
            return True, _but(asked, unvectorised(missing))
        return True, asked
    if not _fast.ENABLED:
        return False, "the fast paths are off (KAPRULES_NO_FAST_PATHS=1)"
    if not protocol.rules or missing:
        return False, unvectorised(missing)
    return True, "every rule has a vectorised form"


def _but(asked: str, why: str) -> str:
    return f"{asked}, but {why}" if asked else why


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
        results: Iterator[ResultBatch],
        summary: AuditSummary,
        sample: int,
        records: Reader | None = None,
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
        for batch in self._results:
            if everything:
                # The rest of a batch lives in this iteration: kept where _finish finds it
                # if the iteration is closed halfway.
                self._pending = batch.results()
            else:
                self._summary.add_compliant(len(batch.rows))
                self._pending = ((result_of(f), d) for _, f, d in batch.others)
            for result, data in self._pending:
                self._take(result, data)
                if everything or result.findings or result.rejected is not None:
                    yield result
            self._pending = None
        self._end()

    def _end(self) -> None:
        if self._records is not None:
            # The digest of every byte kaprules read, whoever passed a digest object, and
            # each input's.
            self._summary.input_sha256 = self._records.sha256()
            self._summary.inputs = self._records.inputs()
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
                self._samples.append((result, course_of(data, None)))

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
        # Each batch comes as its rows and counts, made where it was evaluated.
        if form is not None and header(form, inputs=inputs):
            yield header(form, inputs=inputs)
        for batch in self._text_batches():
            yield batch.text if form is not None else ""

    def _text_batches(self) -> Iterator[ResultBatch]:
        for batch in self._results:
            assert batch.summary is not None  # the engines read ResultForm.text
            self._summary.merge(batch.summary)
            for _, fields, data in batch.others:
                self._keep(result_of(fields), data)
            yield batch
        self._end()

    def write_findings(
        self, out: int, form: FindingsForm, *, inputs: bool = False
    ) -> Iterator[int]:
        """Write the audit as its findings file to the file descriptor ``out``, in pieces.

        The same audit as `findings_text`, written as it is read: with worker processes,
        each writes its batches' rows to a file of its own, which is copied to ``out``
        by the kernel (``sendfile``), never read into this process.

        Args:
            out: A file descriptor open for writing (a file, a pipe, a device).
            form: ``"jsonl"`` or ``"csv"``.
            inputs: Rows name their input (an audit of several inputs).

        Yields:
            The bytes written for each batch (for a progress bar), once written.

        Raises:
            KapRulesError: The audit's results were already consumed.
            InputError: ``form`` is not one of these.
            OSError: ``out`` cannot be written.
        """
        if form not in ("jsonl", "csv"):
            raise InputError("form: must be 'jsonl' or 'csv'")
        self._claim()
        # The workers' files go there; without a usable temporary directory (TMPDIR
        # read-only, full or missing) their rows come back through their pipes instead.
        # Folders that audits killed outright left behind go first.
        sweep_spill_folders()
        folder = SpillFolder.make()
        self._form.text = (form, bool(inputs))
        self._form.spill = folder.path if folder is not None else None
        self._running = self._written(out, form, bool(inputs), folder)
        return self._running

    def _written(
        self, out: int, form: FindingsForm, inputs: bool, folder: SpillFolder | None
    ) -> Iterator[int]:
        try:
            head = header(form, inputs=inputs).encode()
            _write_all(out, head)
            yield len(head)
            for batch in self._text_batches():
                if batch.spilled is not None:
                    yield _send(out, batch.spilled)
                else:
                    data = batch.text.encode()
                    _write_all(out, data)
                    yield len(data)
        finally:
            # The workers stopped first (if the audit ended early): none writes there now.
            close = getattr(self._results, "close", None)
            if close is not None:
                close()
            if folder is not None:
                folder.close()

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
    check_protocol(protocol)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or not 1 <= jobs <= 256:
        raise InputError("jobs: must be a whole number from 1 to 256")
    if isinstance(sample, bool) or not isinstance(sample, int) or sample < 0:
        raise InputError("sample: must be a whole number, 0 or more")
    # Read once, here, so that no record is rejected for it; "today" is one instant for
    # the whole audit: a run across midnight does not change its mind.
    moment = read_as_of(as_of)
    summary = summary_for(protocol, shown(moment))
    reader = courses if isinstance(courses, Reader) else None
    fresh = reader is not None and reader.fresh
    chosen, why = engine_choice(engine, protocol, fresh)
    # Asked for and not used: a reason that says "but" (see engine_choice).
    fell_back = engine != "auto" and ", but " in why
    form = ResultForm()
    if chosen:
        assert reader is not None
        from kaprules._columnar.engine import COLUMNAR

        ran = Engine("columnar", why, fell_back)
        job = Job(COLUMNAR, protocol, moment, sample)
        blocks = reader.units(blocks=True, jobs=jobs)
        if engine == "columnar":
            batches = run(blocks, job, jobs, form)
        else:
            batches = _by_size(blocks, job, jobs, form, ran)
        return Audit(batches, summary, sample, reader, form, ran)
    ran = Engine("records", why, fell_back)
    units: Iterator[Record | LineBlock]
    if reader is not None and fresh:
        # JSON Lines go to the workers as blocks of bytes, split there: the main process
        # touches no line, so it keeps up with any number of workers. A reader not yet
        # read is the audit's: it is left empty, whatever the audit has read ahead.
        units = reader.units(blocks=jobs > 1 and _fast.ENABLED, jobs=jobs)
    else:
        units = (_as_record(item, index) for index, item in enumerate(courses, start=1))
    batches = run(units, Job(BY_RECORD, protocol, moment, sample), jobs, form)
    return Audit(batches, summary, sample, reader, form, ran)


def _by_size(
    blocks: Iterator[Record | LineBlock],
    job: Job,
    jobs: int,
    form: ResultForm,
    ran: Engine,
) -> Iterator[ResultBatch]:
    """The ``auto`` engine: columnar for a large input, course by course for a small one.

    The columnar engine pays a fixed cost in each process that runs it (loading Polars,
    reading the zones' tables): JSON Lines of fewer than `small_input` bytes cost less
    course by course, with the same results. Its blocks are read ahead to tell, then
    evaluated as they are. A CSV course (a record) ends the reading ahead: its size is not
    known, and the columnar engine reads CSV course by course anyway.
    """
    limit = small_input(jobs)
    ahead: list[Record | LineBlock] = []
    size = 0
    for unit in blocks:
        ahead.append(unit)
        size += unit.size if isinstance(unit, LineBlock) else limit
        if size >= limit:
            units = itertools.chain(ahead, blocks)
            ran.why += f", and the input is not JSON Lines of under {_SMALL} for each worker"
            yield from run(units, job, jobs, form)
            return
    ran.name = "records"
    # The same words whatever the jobs: the summary's JSON does not change with them.
    ran.why = f"JSON Lines of under {_SMALL} for each worker are audited sooner course by course"
    yield from run(iter(ahead), attrs.evolve(job, engine=BY_RECORD), jobs, form)


def _as_record(item: Course | str | bytes | Record, index: int) -> Record:
    if isinstance(item, Record):
        return item
    return Record(index, item)


def _write_all(out: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(out, view) :]


def _send(out: int, path: str) -> int:
    """Copy the file ``path`` to ``out`` in the kernel, then remove it; its size."""
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        sent = 0
        try:
            while sent < size:
                step = os.sendfile(out, handle.fileno(), sent, size - sent)
                if not step:
                    break
                sent += step
        except AttributeError:  # no sendfile here at all
            _write_all(out, handle.read())
        except OSError as exc:
            # No sendfile to this kind of file here: copied through this process.
            if sent or exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSOCK):
                raise
            _write_all(out, handle.read())
    os.unlink(path)
    return size
