"""Reading an audit's input files: JSON Lines and CSV, gzip or not, standard input.

Every byte read is hashed as it is read (the summary's ``input_sha256`` and each input's
own digest).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import select
import sys
import zlib
from collections.abc import Iterator, Sequence
from typing import IO, Any

from kaprules.auditing.csv_table import csv_records
from kaprules.auditing.records import (
    BLOCK_BYTES,
    BLOCK_LINES,
    MAX_LINE_BYTES,
    LineBlock,
    Record,
    line_record,
    too_long,
)
from kaprules.errors import InputError, shown_id

__all__ = ["Digests", "Reader", "read_records"]


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

    @property
    def fresh(self) -> bool:
        """No record was read yet: an audit may take the whole input (`units`)."""
        return self._units is None

    @property
    def bytes_read(self) -> int:
        """The bytes read from the inputs so far, as stored (compressed, for ``.gz``).

        Beside the inputs' sizes, it says how far an audit has come.
        """
        return self._digest.read

    def sha256(self) -> str:
        """The SHA-256 of every byte read, in input order (whoever passed a digest)."""
        return self._sha256.hexdigest()

    def inputs(self) -> list[tuple[str, str]]:
        """``(name, SHA-256)`` of each input begun, in order."""
        return self._digest.each()

    def units(self, *, blocks: bool) -> Iterator[Record | LineBlock]:
        """The input for an audit, which takes it: this reader is left empty now.

        Args:
            blocks: JSON Lines as blocks of lines (`LineBlock`), for an engine that
                splits them where it evaluates them; else one `Record` a line.
        """
        self._units = iter(())
        return read_sources(self._sources, self._digest, blocks=blocks)

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
        self._each: list[tuple[str, Any]] = []
        self.read = 0  # bytes, as stored (compressed for .gz): what a progress bar counts

    def start(self, source: str) -> None:
        """Begin the digest of the input ``source``: the bytes from now on are its."""
        self._each.append((source, hashlib.sha256()))

    def each(self) -> list[tuple[str, str]]:
        """``(source, SHA-256)`` of each input begun, in order."""
        return [(source, digest.hexdigest()) for source, digest in self._each]

    def update(self, data: bytes) -> None:
        """Add ``data``, the next bytes read, to every digest."""
        self.read += len(data)
        self._own.update(data)
        if self._other is not None:
            self._other.update(data)
        if self._each:
            self._each[-1][1].update(data)


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
