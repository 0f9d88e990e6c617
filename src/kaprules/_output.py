"""Atomic output files: written beside their target, renamed into place on success only.

Every file the CLI writes (audit findings and HTML report, a plan's iCalendar file) goes
through `Outputs`, as rsync and git write theirs: into a temporary file in the target's
directory (``.NAME.XXXXXXXX.tmp``), flushed and synced, then `os.replace`-d over the
target once the whole run has succeeded. A failed or interrupted run removes its temporary
files and leaves every target as it was: absent, or the earlier complete file. The outputs
of a run are replaced together or not at all: every target is checked, and its earlier
file kept aside as a backup (a hard link), before any is replaced, and a rename that fails
puts back the targets already replaced. Only a process killed outright (``kill -9``) can
leave a temporary file behind, never a target that looks whole but is not.

A text output whose name ends in ``.gz`` (``findings.csv.gz``) is written gzip-compressed,
as the inputs of the same names are read; its header holds no name and no time, so the
same run gives the same bytes.

`check_paths` refuses, before any work, an output that is an input or another output
(the same file by device and inode, whatever the spelling or symlink) and an output whose
directory cannot take a new file.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import signal
import stat
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, BinaryIO, TextIO, cast

from kaprules.errors import shown_id

__all__ = ["STOP_SIGNALS", "OutputError", "Outputs", "check_paths", "held_signals", "write_error"]


class OutputError(Exception):
    """An output cannot be written: a one-line message naming the file."""


def _shown(path: str) -> str:
    return shown_id(path, 200)


def _identity(path: str) -> tuple[Any, ...] | None:
    """What names one file whatever its spelling or symlinks.

    Its device and inode; for a file not there yet, its directory's and its name; None
    when its directory cannot be found.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        real = os.path.realpath(path)
        try:
            parent = os.stat(os.path.dirname(real) or ".")
        except OSError:
            return None
        return ("new", parent.st_dev, parent.st_ino, os.path.basename(real))
    except (OSError, ValueError):
        return None
    return ("file", info.st_dev, info.st_ino)


def check_paths(outputs: Iterable[tuple[str, str]], inputs: Iterable[str | None]) -> None:
    """Refuse outputs that would destroy an input or each other, before any work.

    Args:
        outputs: ``(option, path)`` of each output file, such as ``("--html", "r.html")``.
        inputs: The paths the run reads (``-``, standard input, and None are skipped).

    Raises:
        OutputError: An output is an input or another output, is a directory, or its
            directory does not exist or is not writable.
    """
    read: dict[tuple[Any, ...], str] = {}
    for name in inputs:
        if name is not None and name != "-":
            key = _identity(name)
            if key is not None and key[0] == "file":  # an input not there is not read
                read.setdefault(key, name)
    written: dict[tuple[Any, ...], str] = {}
    for option, path in outputs:
        key = _identity(path)
        if key is None:
            raise OutputError(f"cannot write {_shown(path)} ({option}): no such directory")
        if key in read:
            raise OutputError(
                f"{option} {_shown(path)} is the input {_shown(read[key])}; "
                "write the output elsewhere"
            )
        if key in written:
            raise OutputError(
                f"{option} {_shown(path)} is also the file of {written[key]}; "
                "give each output its own file"
            )
        if os.path.isdir(path):
            raise OutputError(f"cannot write {_shown(path)} ({option}): it is a directory")
        if key[0] == "new" or os.path.isfile(path):
            # The temporary file goes beside the target: its directory must take a new file.
            directory = os.path.dirname(path) or "."
            if not os.access(directory, os.W_OK | os.X_OK):
                raise OutputError(
                    f"cannot write {_shown(path)} ({option}): its directory is not writable"
                )
        written[key] = option


class _Pending:
    """One output: its target and, unless the target is a device or pipe, a temporary file."""

    def __init__(self, path: str, binary: bool) -> None:
        self.path = path
        self.temp: str | None = None
        # The earlier target, kept until every output is in place (see Outputs.commit).
        self.backup: str | None = None
        self.linked = False  # the backup is a hard link: the target stays in place
        self.replaced = False
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            mode = None
        except OSError as exc:
            raise _error(path, exc) from None
        if mode is not None and not stat.S_ISREG(mode):
            # /dev/null, /dev/stdout, a named pipe: no rename is possible; write through.
            fd = _open_direct(path)
            self.mode = 0
        else:
            import tempfile  # here: the CLI starts faster without it

            directory, name = os.path.split(path)
            try:
                fd, self.temp = tempfile.mkstemp(
                    prefix=f".{name}.", suffix=".tmp", dir=directory or "."
                )
            except OSError as exc:
                raise _error(path, exc) from None
            # The new file gets the old one's permissions, or those of a file just created.
            self.mode = stat.S_IMODE(mode) if mode is not None else 0o666 & ~_umask()
        self.raw: BinaryIO = os.fdopen(fd, "wb")
        self.gzip: Any = None
        if binary:
            self.handle: IO[Any] = self.raw
            return
        stream: BinaryIO = self.raw
        if path.lower().endswith(".gz"):
            import gzip

            # No file name and no time in the header: the same run, the same bytes.
            self.gzip = gzip.GzipFile(filename="", mode="wb", fileobj=self.raw, mtime=0)
            stream = self.gzip
        self.handle = io.TextIOWrapper(stream, encoding="utf-8", newline="")

    def finish(self) -> None:
        # Everything on disk before the rename: a crash after it never shows a short file.
        self._unwrap()
        if self.gzip is not None:
            self.gzip.close()  # writes the gzip trailer; the file stays open
        self.raw.flush()
        if self.temp is not None:
            os.fchmod(self.raw.fileno(), self.mode)
            os.fsync(self.raw.fileno())
        self.raw.close()

    def _unwrap(self) -> None:
        # The text layer flushed and let go: it never closes (or flushes into) the file
        # later, when it is collected.
        if isinstance(self.handle, io.TextIOWrapper):
            self.handle.detach()

    def discard(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._unwrap()
        with contextlib.suppress(OSError, ValueError):
            if self.gzip is not None:
                self.gzip.close()
        with contextlib.suppress(OSError, ValueError):
            self.raw.close()
        for name in (self.temp, self.backup if self.linked else None):
            if name is not None:
                with contextlib.suppress(OSError):
                    os.unlink(name)
        self.temp = self.backup = None

    def keep_aside(self) -> None:
        """Check the target can be replaced, and link its earlier file to a backup name.

        A hard link leaves the target in place until its rename; where links cannot be
        made (a file system without them), the target is moved aside just before it is
        replaced instead.
        """
        assert self.temp is not None
        try:
            info = os.lstat(self.path)
        except FileNotFoundError:
            return  # a new file: nothing to keep
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
        self.backup = self.temp.removesuffix(".tmp") + ".old.tmp"
        try:
            os.link(self.path, self.backup, follow_symlinks=False)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EROFS, errno.EEXIST):  # no rename either
                self.backup = None
                raise
            return  # perhaps only no hard links here: the rename will tell
        except NotImplementedError:
            return
        self.linked = True

    def replace(self) -> None:
        """Rename the temporary file over the target (the backup, if any, already kept)."""
        assert self.temp is not None
        if self.backup is not None and not self.linked:
            os.replace(self.path, self.backup)
        try:
            os.replace(self.temp, self.path)
        except OSError:
            if self.backup is not None and not self.linked:
                with contextlib.suppress(OSError):
                    os.replace(self.backup, self.path)
            raise
        self.temp = None
        self.replaced = True

    def restore(self) -> str | None:
        """Put the earlier target back after a later output failed.

        Returns None, or what is left to say when it cannot: the target holds the new
        file, and the earlier one stays under its backup name.
        """
        try:
            if self.backup is not None:
                os.replace(self.backup, self.path)
                self.backup = None
            else:
                os.unlink(self.path)  # there was none: the new file goes
        except OSError:
            self.linked = False  # the backup is no longer a spare link: it stays
            kept = "" if self.backup is None else f" (the earlier one is {_shown(self.backup)})"
            return f"{_shown(self.path)} holds the new file{kept}"
        self.replaced = False
        return None


def _open_direct(path: str) -> int:
    try:
        return os.open(path, os.O_WRONLY)
    except OSError as exc:
        raise _error(path, exc) from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_error(path: str, exc: OSError) -> OutputError:
    """The error for ``exc``, raised while writing ``path``, naming the file.

    Args:
        path: The output's target.
        exc: The error of the write.

    Returns:
        The error to raise.
    """
    return OutputError(f"cannot write {_shown(path)}: {exc.strerror or 'output error'}")


_error = write_error


STOP_SIGNALS: tuple[int, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)
"""The signals that stop a run cleanly (as GNU coreutils clean up on them): Ctrl-C,
SIGTERM, and SIGHUP (the terminal closed)."""


@contextlib.contextmanager
def held_signals() -> Iterator[None]:
    """The `STOP_SIGNALS` held back in this thread meanwhile, and delivered after."""
    mask = getattr(signal, "pthread_sigmask", None)
    if mask is None:
        yield
        return
    held = mask(signal.SIG_BLOCK, set(STOP_SIGNALS))
    try:
        yield
    finally:
        mask(signal.SIG_SETMASK, held)


class Outputs:
    """The output files of one run, made whole together or not at all.

    Use as a context manager: `open` each output before the work starts (so an unwritable
    directory stops the run at once), write, then `commit`. Leaving the block without a
    commit (an error, Ctrl-C, SIGTERM) removes the temporary files and keeps the targets.
    """

    def __init__(self) -> None:
        self._pending: list[_Pending] = []

    def open(self, path: str) -> TextIO:
        """A new temporary text file (UTF-8, newlines as written) for ``path``.

        Gzip-compressed when ``path`` ends in ``.gz`` (any case).

        Raises:
            OutputError: The file cannot be made, naming ``path``.
        """
        return cast(TextIO, self._open(path, binary=False))

    def open_binary(self, path: str) -> BinaryIO:
        """A new temporary binary file for ``path``.

        Raises:
            OutputError: The file cannot be made, naming ``path``.
        """
        return cast(BinaryIO, self._open(path, binary=True))

    def _open(self, path: str, *, binary: bool) -> IO[Any]:
        # A temporary file is made and recorded at once, for discard to find; opening a
        # named pipe waits for its reader, and Ctrl-C must still stop that.
        try:
            special = not stat.S_ISREG(os.stat(path).st_mode)
        except OSError:
            special = False
        with contextlib.nullcontext() if special else held_signals():
            pending = _Pending(path, binary)
            self._pending.append(pending)
        return pending.handle

    @contextlib.contextmanager
    def writing(self, path: str) -> Iterator[None]:
        """Name ``path`` in the message of an `OSError` raised while writing it."""
        try:
            yield
        except OSError as exc:
            raise _error(path, exc) from None

    def commit(self, announce: Callable[[], None] | None = None) -> None:
        """Sync every output, check each target can be replaced, then replace them all.

        Every target is checked (not a directory) and its earlier file linked aside before
        any is replaced; a rename that fails then puts back the targets already replaced,
        so the outputs are replaced together or not at all.

        Args:
            announce: Called once every output is ready and checked, before any target is
                replaced: a command writes its summary here, so that a summary that
                cannot be written (a full disk, a closed pipe) replaces nothing.

        Raises:
            OutputError: An output cannot be finished, checked or renamed, naming it (every
                target is left as it was).
        """
        for pending in self._pending:
            with self.writing(pending.path):
                pending.finish()
        renamed = [pending for pending in self._pending if pending.temp is not None]
        for pending in renamed:
            with self.writing(pending.path):
                pending.keep_aside()
        if announce is not None:
            announce()
        # The renames together: Ctrl-C or SIGTERM between two would pair a new findings
        # file with an old report. A signal that comes meanwhile is handled just after.
        with held_signals():
            for pending in renamed:
                try:
                    pending.replace()
                except OSError as exc:
                    raise self._rolled_back(pending, exc) from None
            for pending in renamed:
                pending.replaced = False
                if pending.backup is not None:
                    with contextlib.suppress(OSError):
                        os.unlink(pending.backup)
                    pending.backup = None
        self._pending.clear()

    def _rolled_back(self, failed: _Pending, exc: OSError) -> OutputError:
        # The targets replaced before ``failed`` get their earlier files back.
        left = [said for p in self._pending if p.replaced and (said := p.restore())]
        error = write_error(failed.path, exc)
        return OutputError("; ".join([str(error), *left])) if left else error

    def discard(self) -> None:
        """Remove every temporary file not yet renamed; the targets stay as they were."""
        with held_signals():  # a signal now would leave a temporary file behind
            for pending in self._pending:
                pending.discard()
            self._pending.clear()

    def __enter__(self) -> Outputs:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.discard()
