"""Reading an audit's input files: JSON Lines and CSV, gzip or not, standard input.

Every byte read is hashed as it is read (the summary's ``input_sha256`` and each input's
own digest).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import itertools
import os
import select
import stat
import sys
import threading
import weakref
import zlib
from collections.abc import Iterator, Sequence
from typing import IO, Any

from kaprules import _fast
from kaprules.auditing.csv_table import csv_records
from kaprules.auditing.pipeline import Background, in_workers, start_method
from kaprules.auditing.records import (
    BLOCK_BYTES,
    BLOCK_LINES,
    MAX_LINE_BYTES,
    LineBlock,
    Record,
    changed,
    held,
    line_record,
    opened,
    read_span,
    too_long,
)
from kaprules.errors import InputError, shown_id

__all__ = [
    "SPANS_FROM",
    "Digests",
    "Reader",
    "block_starts",
    "count_lines",
    "plain_files",
    "read_records",
]


class Hashing(io.RawIOBase):
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


class Reader(Iterator[Record]):
    """What `read_records` returns: its records one by one, or its JSON Lines in blocks.

    `audit` takes the blocks when it is given the reader before any record was read.
    """

    def __init__(self, sources: Sequence[str], digest: Any | None) -> None:
        self._sources = list(sources)
        # Its own SHA-256 (an audit's input_sha256), and the caller's digest if any.
        self._sha256 = hashlib.sha256()
        self._digest = Digests(self._sha256, digest)
        self._units: Iterator[Record | LineBlock] | None = None
        # Inputs the workers read themselves (`spans`): their digests, made beside them.
        self._hasher: threading.Thread | None = None
        self._hashing: Background | None = None
        self._unhashed: str | None = None  # why the digests could not be made
        self._handed = 0  # bytes handed to the workers as blocks they read
        # The files the workers read, held open here until this reader is gone (`held`).
        self._held: list[int] = []
        weakref.finalize(self, _close_all, self._held)

    @property
    def fresh(self) -> bool:
        """No record was read yet: an audit may take the whole input (`units`)."""
        return self._units is None

    @property
    def bytes_read(self) -> int:
        """The bytes read from the inputs so far, as stored (compressed, for ``.gz``).

        Beside the inputs' sizes, it says how far an audit has come.
        """
        return self._digest.read + self._handed

    def sha256(self) -> str:
        """The SHA-256 of every byte read, in input order (whoever passed a digest).

        Raises:
            InputError: An input the workers read could not be hashed.
        """
        self._hashed()
        return self._digest.hexdigest()

    def inputs(self) -> list[tuple[str, str]]:
        """``(name, SHA-256)`` of each input begun, in order.

        Raises:
            InputError: An input the workers read could not be hashed.
        """
        self._hashed()
        return self._digest.each()

    def units(self, *, blocks: bool, jobs: int = 1) -> Iterator[Record | LineBlock]:
        """The input for an audit, which takes it: this reader is left empty now.

        Args:
            blocks: JSON Lines as blocks of lines (`LineBlock`), for an engine that
                splits them where it evaluates them; else one `Record` a line.
            jobs: The audit's worker processes. With several, inputs that are all
                regular JSON Lines files of `SPANS_FROM` bytes or more are not read
                here: their blocks are spans of the files, which the workers read (and
                count the lines of) themselves, while a thread hashes the files.
        """
        self._units = iter(())
        if blocks and jobs > 1 and _fast.ENABLED and hasattr(os, "pread") and _forks():
            sizes = plain_files(self._sources)
            if sizes is not None and sum(sizes) >= SPANS_FROM:
                return self._spans(sizes, jobs)
        return read_sources(self._sources, self._digest, blocks=blocks)

    def _spans(self, sizes: list[int], jobs: int) -> Iterator[Record | LineBlock]:
        # The blocks of each file, cut where the main process finds line breaks (a read
        # of a few KiB a block), their lines counted by workers; every byte read, counted
        # and hashed elsewhere. A line too long sends the input the streamed way, which
        # says so where it reaches it.
        # Each file is opened once, here, and read by every process through that descriptor
        # (`held`): a file renamed over an input during the audit is not read, as a
        # stream would not read it; the bytes read are the `sizes` measured now.
        paths = self._hold(sizes)
        cuts = [block_starts(path, size) for path, size in zip(paths, sizes, strict=True)]
        if any(found is None for found in cuts):
            yield from read_sources(self._sources, self._digest, blocks=True)
            return
        inputs = list(zip(self._sources, paths, sizes, strict=True))
        tasks: list[tuple[int, str, str, list[tuple[int, int]]]] = []
        per_task = max(1, _COUNT_BYTES // BLOCK_BYTES)
        for number, ((source, path, size), starts) in enumerate(zip(inputs, cuts, strict=True)):
            assert starts is not None
            spans = list(itertools.pairwise([*starts, size]))
            tasks += [
                (number, source, path, spans[i : i + per_task])
                for i in range(0, len(spans), per_task)
            ]
        if self._digest.private:
            # The digests in a process of their own: every byte hashed beside the workers.
            self._hashing = Background(hashed, inputs)
        else:  # a caller's digest object: updated here, in a thread beside the workers
            self._hasher = threading.Thread(target=self._hash, args=(inputs,), daemon=True)
            self._hasher.start()
        # The lines of the blocks counted by workers (a fraction of a second a gigabyte
        # on each core), far enough ahead that the audit's workers never wait for them.
        line, at = 1, 0
        counted = in_workers(iter(tasks), count_lines, None, jobs, _COUNTS_AHEAD)
        with contextlib.closing(counted):  # leaving early stops the counting workers
            for (number, source, path, _), found in counted:
                if number != at:  # the next input: its lines counted from 1
                    line, at = 1, number
                for offset, size, lines in found:
                    if size:
                        yield LineBlock(source, line, b"", lines, (path, offset, size))
                    line += lines
                    self._handed += size

    def _hold(self, sizes: list[int]) -> list[str]:
        # The inputs opened here, as `held` names them (else by their paths, as they
        # were); `sizes` becomes what each descriptor's file holds now. Not too many: the
        # descriptors stay open in every worker, beside their pipes.
        if len(self._sources) > _HELD_AT_MOST:
            return list(self._sources)
        paths = []
        for number, source in enumerate(self._sources):
            try:
                descriptor = os.open(source, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
            except OSError:
                paths.append(source)
                continue
            self._held.append(descriptor)
            info = os.fstat(descriptor)
            if stat.S_ISREG(info.st_mode):  # (another file may have its name now)
                paths.append(held(descriptor))
                sizes[number] = info.st_size
            else:
                paths.append(source)
        return paths

    def _hash(self, inputs: list[tuple[str, str, int]]) -> None:
        # The digests of inputs the workers read: the same bytes, read again beside them
        # (hashlib lets other threads run while it hashes a large buffer).
        try:
            for source, path, size in inputs:
                self._digest.start(source)
                for data in _pieces(source, path, size):
                    self._digest.update(data, counted=False)
        except InputError as exc:
            self._unhashed = str(exc)

    def _hashed(self) -> None:
        if self._hashing is not None:
            self._digest.settle(*self._hashing.result())
            self._hashing = None
        if self._hasher is not None:
            self._hasher.join()
        if self._unhashed is not None:
            raise InputError(self._unhashed)

    def __next__(self) -> Record:
        if self._units is None:
            self._units = read_sources(self._sources, self._digest, blocks=False)
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
    return Reader(sources, digest)


class Digests:
    """Updates one or two hashlib objects with the same bytes, and one per input."""

    def __init__(self, own: Any, other: Any | None) -> None:
        self._own = own
        self._other = other
        # Each input's digest, or None for the first input while it is the only one: its
        # digest is then ``own``'s (its bytes hashed once, not twice), copied when the next
        # input begins.
        self._each: list[tuple[str, Any]] = []
        self._own_used = False  # whether own has any bytes yet
        self.read = 0  # bytes, as stored (compressed for .gz): what a progress bar counts
        self._settled: tuple[str, list[tuple[str, str]]] | None = None

    @property
    def private(self) -> bool:
        """No caller's digest object: the digests may be made in another process."""
        return self._other is None

    def settle(self, own: str, each: list[tuple[str, str]]) -> None:
        """Take the digests made elsewhere of every byte: the whole's, and each input's."""
        self._settled = own, each

    def hexdigest(self) -> str:
        """The SHA-256 of every byte, in input order."""
        return self._own.hexdigest() if self._settled is None else self._settled[0]

    def start(self, source: str) -> None:
        """Begin the digest of the input ``source``: the bytes from now on are its."""
        if self._each and self._each[-1][1] is None:
            self._each[-1] = (self._each[-1][0], self._own.copy())  # the first input ends
        shared = not self._each and not self._own_used
        self._each.append((source, None if shared else hashlib.sha256()))

    def each(self) -> list[tuple[str, str]]:
        """``(source, SHA-256)`` of each input begun, in order."""
        if self._settled is not None:
            return self._settled[1]
        return [(source, (digest or self._own).hexdigest()) for source, digest in self._each]

    def update(self, data: bytes, *, counted: bool = True) -> None:
        """Add ``data``, the next bytes read, to every digest (``counted``: in `read`)."""
        if counted:
            self.read += len(data)
        self._own.update(data)
        self._own_used = self._own_used or bool(data)
        if self._other is not None:
            self._other.update(data)
        if self._each:
            digest = self._each[-1][1]
            if digest is not None:
                digest.update(data)


def read_sources(
    sources: Sequence[str], digest: Any, *, blocks: bool
) -> Iterator[Record | LineBlock]:
    """The records (or, ``blocks``, JSON Lines in blocks) of ``sources``, in order."""
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
            buffered = io.BufferedReader(Hashing(raw, digest), 1 << 16)
            stream: IO[bytes] = buffered
            if buffered.peek(2)[:2] == b"\x1f\x8b":
                stream = gzip.GzipFile(fileobj=buffered)  # type: ignore[assignment]
            name = source.lower().removesuffix(".gz")
            if name.endswith(".csv"):
                yield from csv_records(stream, source)
            elif blocks:
                yield from jsonl_blocks(stream, source)
            else:
                yield from jsonl_records(stream, source)
        except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise InputError(f"cannot read {shown_id(source, 200)}: {exc}") from None
        finally:
            if opened is not None:
                opened.close()


def jsonl_records(stream: IO[bytes], source: str) -> Iterator[Record]:
    """The records of a JSON Lines stream, one a line."""
    number = 0
    while True:
        line = stream.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        number += 1
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            # Not JSON Lines (a binary file, a device such as /dev/zero): stop here.
            raise InputError(too_long(source, number))
        yield line_record(number, line, source)


def jsonl_blocks(stream: IO[bytes], source: str) -> Iterator[LineBlock]:
    """The lines of `jsonl_records`, in blocks of at most `BLOCK_BYTES` and `BLOCK_LINES`."""
    # The lines of jsonl_records, in blocks; the same limit on a line's length.
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
            raise InputError(too_long(source, before + 1))
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            carry += data
            continue
        # One copy at most (the carry never holds a line break): every byte of the input
        # passes here.
        block = b"".join((carry, memoryview(data)[:cut])) if carry or cut < len(data) else data
        carry = data[cut:]
        for part, lines in split_block(block):
            yield LineBlock(source, before + 1, part, lines)
            before += lines


def split_block(block: bytes) -> Iterator[tuple[bytes, int]]:
    """``block`` (whole lines) in parts of at most `BLOCK_LINES` lines, cut in halves.

    Each part comes with its number of lines.
    """
    lines = block.count(b"\n")
    if lines <= BLOCK_LINES:
        yield block, lines
        return
    middle = block.rfind(b"\n", 0, len(block) // 2) + 1 or block.find(b"\n") + 1
    yield from split_block(block[:middle])
    yield from split_block(block[middle:])


SPANS_FROM = 32 << 20
"""Bytes of regular JSON Lines files from which an audit with workers leaves the reading
to them (`Reader.units`): below, reading them here costs less than starting the workers
that count their lines."""

# Bytes of blocks whose lines one counting task counts; bytes read at a time to hash.
_COUNT_BYTES = 32 << 20
_COUNTS_AHEAD = 8  # counting tasks in flight a worker
_HASH_BYTES = 1 << 20
_HELD_AT_MOST = 64  # inputs held open (`Reader._hold`); more are opened where they are read
# Bytes read at a time to find the line break that ends a block.
_WINDOW = 1 << 12


def plain_files(sources: Sequence[str]) -> list[int] | None:
    """The sizes of ``sources`` when every one is a regular JSON Lines file, else None.

    Not standard input, a pipe or a device, a CSV table, or gzip (by its first bytes):
    those are read as streams.
    """
    sizes = []
    for source in sources:
        if source == "-" or source.lower().removesuffix(".gz").endswith(".csv"):
            return None
        # Its kind told before it is opened: opening a FIFO waits for a writer, and
        # reading a pipe (``/dev/stdin``) takes bytes the stream would then not see.
        try:
            if not stat.S_ISREG(os.stat(source).st_mode):
                return None
            descriptor = os.open(source, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        except (OSError, ValueError):
            return None
        try:
            info = os.fstat(descriptor)  # what was opened: still a regular file
            magic = os.pread(descriptor, 2, 0) if stat.S_ISREG(info.st_mode) else None
        except OSError:
            return None
        finally:
            os.close(descriptor)
        if magic is None or magic == b"\x1f\x8b" or _pseudo(info, magic):
            return None
        sizes.append(info.st_size)
    return sizes


def _forks() -> bool:
    # The workers, forked, inherit the files held open here (`Reader._hold`).
    return start_method() == "fork"


def _close_all(descriptors: list[int]) -> None:
    for descriptor in descriptors:
        with contextlib.suppress(OSError):
            os.close(descriptor)
    descriptors.clear()


def _pseudo(info: os.stat_result, magic: bytes) -> bool:
    # A file whose size does not say what it holds (/proc's report 0 bytes, sysfs's 4096,
    # and neither takes room on a disk): the stream reads what it holds.
    return len(magic) > info.st_size or (info.st_size > 0 and getattr(info, "st_blocks", 1) == 0)


def block_starts(path: str, size: int) -> list[int] | None:
    """Where the blocks of a JSON Lines file start: every `BLOCK_BYTES` or so, at a line.

    Each start follows a line break, found by reading a few KiB from where a block of
    `BLOCK_BYTES` would end. None when a line is longer than `MAX_LINE_BYTES` (or the
    file cannot be read here): the file is then read as a stream, which says so.
    """
    try:
        with opened(path) as descriptor:
            return _starts(descriptor, size)
    except OSError:
        return None


def _starts(descriptor: int, size: int) -> list[int] | None:
    starts = [0]
    while starts[-1] + BLOCK_BYTES < size:
        at = scanned = starts[-1] + BLOCK_BYTES
        found = -1
        while scanned < size and found < 0:
            window = os.pread(descriptor, _WINDOW, scanned)
            if not window:
                return None  # shorter than it was: the stream reads what is there
            where = window.find(b"\n")
            found = scanned + where if where >= 0 else -1
            scanned += len(window)
            if scanned - at > MAX_LINE_BYTES + 1:
                return None
        end = found if found >= 0 else size
        if end - at > MAX_LINE_BYTES - BLOCK_BYTES:  # perhaps too long: measured
            head = os.pread(descriptor, at - starts[-1], starts[-1])
            if end - (starts[-1] + head.rfind(b"\n") + 1) > MAX_LINE_BYTES:
                return None
        if found < 0 or found + 1 >= size:
            break
        starts.append(found + 1)
    return starts


def count_lines(
    task: tuple[int, str, str, list[tuple[int, int]]],
) -> list[tuple[int, int, int]]:
    """In a worker: ``(offset, size, lines)`` of the blocks of a file's spans.

    A span of more than `BLOCK_LINES` lines is cut into blocks of that many; a last line
    without its line break counts.
    """
    _, source, path, spans = task
    found = []
    for start, end in spans:
        data = read_span(source, path, start, end - start)
        lines = data.count(b"\n") + (bool(data) and not data.endswith(b"\n"))
        at = 0
        while lines > BLOCK_LINES:
            cut = at
            for _ in range(BLOCK_LINES):
                cut = data.index(b"\n", cut) + 1
            found.append((start + at, cut - at, BLOCK_LINES))
            at, lines = cut, lines - BLOCK_LINES
        found.append((start + at, len(data) - at, lines))
    return found


def hashed(inputs: Sequence[tuple[str, str, int]]) -> tuple[str, list[tuple[str, str]]]:
    """The SHA-256 of the files' bytes in order, and ``(source, SHA-256)`` of each.

    Args:
        inputs: ``(source, path, size)`` of each file: its name, where it is read (a
            path, or a file held open, `held`), and how many bytes of it the audit reads.

    Raises:
        InputError: A file cannot be read, or holds fewer bytes than that.
    """
    digests = Digests(hashlib.sha256(), None)
    for source, path, size in inputs:
        digests.start(source)
        for data in _pieces(source, path, size):
            digests.update(data)
    return digests.hexdigest(), digests.each()


def _pieces(source: str, path: str, size: int) -> Iterator[bytes]:
    # The first `size` bytes of the file, a piece at a time: what its workers read.
    try:
        with opened(path) as descriptor:
            at = 0
            while at < size:
                data = os.pread(descriptor, min(_HASH_BYTES, size - at), at)
                if not data:
                    raise InputError(changed(source))
                at += len(data)
                yield data
    except OSError as exc:
        raise InputError(f"cannot read {shown_id(source, 200)}: {exc.strerror}") from None
