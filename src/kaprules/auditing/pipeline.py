"""The audit's pipeline, written once for every engine: chunks, the ordered worker pool.

An engine (`Evaluator`) cuts the input into chunks and turns a chunk into a
`ResultBatch`; `run` does the rest, whichever the engine: it evaluates the chunks in this
process or in ``jobs`` worker processes that die with it, hands the workers their lines
through shared memory, keeps a bounded window of chunks in flight, gives the batches back
in input order, and keeps the first ``sample`` courses a report may draw.
"""

from __future__ import annotations

import collections
import contextlib
import mmap
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any, ClassVar, NamedTuple, Protocol, TypeVar

import attrs

from kaprules._moments import AsOf
from kaprules._output import STOP_SIGNALS, held_signals
from kaprules.auditing.records import LineBlock, Record, loaded
from kaprules.auditing.results import AnyProtocol, ResultBatch, ResultForm
from kaprules.errors import KapRulesError

__all__ = [
    "SPILL_PREFIX",
    "Chunker",
    "Evaluator",
    "Job",
    "Pool",
    "Shared",
    "SpillFolder",
    "die_with",
    "in_workers",
    "run",
    "start_method",
    "start_worker",
    "sweep_spill_folders",
    "watch",
    "worker_settings",
]


_settings: Any = None  # in a worker process: what in_workers was given for its workers


# How often a worker looks for its parent where the kernel cannot be asked to tell it.
PARENT_POLL_SECONDS = 0.5


def start_worker(settings: Any, parent: int, by_main_thread: bool) -> None:
    """In a new worker process: keep its settings, leave the stop signals to the parent.

    Args:
        settings: What `worker_settings` gives the worker's tasks.
        parent: The process id of the main process, which the worker dies with.
        by_main_thread: Whether the main process's main thread forked it.
    """
    global _settings
    _settings = settings
    # Ctrl-C (and a terminal's SIGHUP) reaches the whole process group: the main process
    # answers it and stops the workers; a worker printing its own KeyboardInterrupt would
    # only add noise. SIGTERM ends a worker at once (a forked worker inherits the CLI's
    # handler otherwise).
    for number in STOP_SIGNALS:
        signal.signal(number, signal.SIG_DFL if number == signal.SIGTERM else signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):  # held by _parallel while forking
        signal.pthread_sigmask(signal.SIG_UNBLOCK, set(STOP_SIGNALS))
    die_with(parent, by_main_thread)


def die_with(parent: int, by_main_thread: bool) -> None:
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
    watcher = threading.Thread(target=watch, args=(parent,), daemon=True)
    watcher.start()


def watch(parent: int) -> None:
    """End this process (exit status 1) once ``parent`` is no longer its parent."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_SECONDS)
    os._exit(1)


_Task = TypeVar("_Task")


_Done = TypeVar("_Done")


def worker_settings() -> Any:
    """The settings `in_workers` was given for this worker process."""
    assert _settings is not None, "not in a worker process started by in_workers"
    return _settings


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
    settings: Any,
    jobs: int,
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
        settings: What `worker_settings` gives the workers (picklable: an audit's `Job`).
        jobs: Worker processes.
        in_flight: Tasks in flight per worker.

    Yields:
        ``(task, result)`` in the order of ``tasks``.

    Raises:
        KapRulesError: A worker process died.
    """
    # The workers are forked by the thread that reads the audit first (it sends).
    started = (settings, os.getpid(), threading.current_thread() is threading.main_thread())
    pool = Pool(work, jobs, started)
    try:
        window: collections.deque[tuple[int, _Task]] = collections.deque()
        for number, task in enumerate(tasks):
            if not pool.started:
                # A signal while forking would run the caller's handler in a worker
                # before start_worker replaces it.
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


DIED = "a worker process died (killed by a signal, or out of memory); the audit was not completed"


class Worker(NamedTuple):
    """A worker process, as the main process holds it."""

    process: Any  # a multiprocessing Process
    tasks: Any  # the main process's end of its task pipe (a Connection)
    results: Any  # the main process's end of its result pipe
    sent: collections.deque[int]  # the numbers of its tasks without a result yet, in order


class Pool:
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
        self._workers: list[Worker] = []
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
                target=serve,
                args=(self._work, self._settings, task_reader, result_writer, inherited),
                daemon=True,
            )
            self._workers.append(Worker(process, task_writer, result_reader, collections.deque()))
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
            raise KapRulesError(DIED) from None
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
            raise KapRulesError(DIED)
        for worker in workers:
            if worker.results not in ready:
                continue
            try:
                payload = worker.results.recv_bytes()
            except (EOFError, OSError):  # it died, perhaps halfway through a result
                raise KapRulesError(DIED) from None
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


def serve(
    work: Callable[[Any], Any],
    settings: tuple[Any, int, bool],
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
        serve_tasks(work, settings, tasks, results, inherited)
    except BaseException:
        os._exit(1)


def serve_tasks(
    work: Callable[[Any], Any],
    settings: tuple[Any, int, bool],
    tasks: Any,
    results: Any,
    inherited: list[Any],
) -> None:
    import queue
    from multiprocessing.reduction import ForkingPickler

    for connection in inherited:
        connection.close()
    start_worker(*settings)
    incoming: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
    outgoing: queue.SimpleQueue[memoryview | None] = queue.SimpleQueue()
    threading.Thread(target=read_tasks, args=(tasks, incoming), daemon=True).start()
    sender = threading.Thread(target=send_results, args=(results, outgoing), daemon=True)
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
            answer = failure(exc)
        outgoing.put(answer)
    outgoing.put(None)
    sender.join()


def read_tasks(tasks: Any, incoming: Any) -> None:
    try:
        while True:
            incoming.put(tasks.recv_bytes())
    except (EOFError, OSError):  # the main process is gone, or stopped the pool
        incoming.put(None)


def send_results(results: Any, outgoing: Any) -> None:
    try:
        while (payload := outgoing.get()) is not None:
            results.send_bytes(payload)
    except OSError:  # nobody to send to: the main process is gone, or stopped the pool
        os._exit(1)


def failure(exc: BaseException) -> memoryview:
    # What work raised, for the main process to raise; an exception that cannot cross
    # the pipe is named.
    from multiprocessing.reduction import ForkingPickler

    try:
        return ForkingPickler.dumps((False, exc))
    except Exception:
        failed = KapRulesError(f"a worker process failed: {type(exc).__name__}")
        return ForkingPickler.dumps((False, failed))


# --- the engines' pipeline --------------------------------------------------------------

Unit = Record | LineBlock
"""What a reader gives an audit: a record, or a block of JSON Lines."""

Text = tuple[Any, bool] | None
"""How a batch is wanted (`ResultForm.text`): None for results, else ``(form, inputs)``."""


@attrs.frozen
class Job:
    """What every chunk of an audit is evaluated with (and every worker is given).

    Attributes:
        engine: The engine that evaluates the chunks.
        protocol: The protocol.
        as_of: The ``as_of``, read once (`kaprules._moments.read_as_of`).
        sample: Courses a report may draw, at most, with their data (per chunk).
    """

    engine: Evaluator
    protocol: AnyProtocol
    as_of: AsOf
    sample: int


class Chunker(Protocol):
    """How an engine cuts an audit's input into chunks, learning from their results."""

    def chunks(self, units: Iterator[Unit]) -> Iterator[list[Any]]:
        """The chunks of ``units``, in order."""

    def learn(self, batch: ResultBatch) -> None:
        """Learn from the results of the earliest chunk not learnt from yet."""


class Evaluator(Protocol):
    """An audit engine: what it supports, how it chunks, and a chunk into a batch."""

    @property
    def in_flight(self) -> int:
        """Chunks in flight per worker."""

    def supports(self, protocol: AnyProtocol) -> bool:
        """Whether it evaluates ``protocol``'s rules itself.

        Else it sends every course the per-record way, with the same results.
        """

    def chunker(self) -> Chunker:
        """A new chunker, for one audit."""

    def forks(self) -> bool:
        """Whether worker processes can be forked from this process now."""

    def work(self, chunk: list[Any], joined: bytes | None, *, job: Job, text: Text) -> ResultBatch:
        """A chunk's results, as results or as text (``text``).

        ``joined``: the chunk's blocks' lines joined, each ending in a line break, when
        they were handed or read so (the blocks are then empty).
        """


def run(units: Iterator[Unit], job: Job, jobs: int, form: ResultForm) -> Iterator[ResultBatch]:
    """The batches of an audit, in input order: its chunks evaluated by ``job.engine``.

    In this process, or in ``jobs`` worker processes (`in_workers`). ``form`` is read as
    each chunk is sent: batches come as results, or as the findings file's text and
    counts when the audit is read that way. At most ``job.sample`` results come with
    their data, the first ones.
    """
    chunker = job.engine.chunker()
    if jobs > 1 and job.engine.forks():
        # The workers write each batch's text to a file of its own, when asked.
        spilled = ((chunk, _spilling(form)) for chunk in chunker.chunks(units))
        yield from _parallel(spilled, chunker, job, jobs)
        return
    tasks = ((chunk, form.text) for chunk in chunker.chunks(units))
    kept = 0
    for chunk, text in tasks:
        left = attrs.evolve(job, sample=max(job.sample - kept, 0))
        batch = job.engine.work(*loaded(chunk), job=left, text=text)
        chunker.learn(batch)
        kept += _drawn(batch)
        yield batch


def _spilling(form: ResultForm) -> Any:
    # A task's text: (form, inputs, directory) when its text is to be written to a file.
    if form.text is None or form.spill is None or form.text[0] is None:
        return form.text
    return (*form.text, form.spill)


def _spill(batch: ResultBatch, directory: str) -> ResultBatch:
    # In a worker: the batch's text moved to a file of its own in `directory`. Where it
    # cannot be written there (the temporary directory full, or gone), the text comes
    # back with the batch, as it would without the directory: the output is not at fault.
    if not batch.text:
        return batch
    data = batch.text.encode("utf-8")
    try:
        handle, path = tempfile.mkstemp(prefix="batch-", dir=directory)
    except OSError:
        return batch
    try:
        with os.fdopen(handle, "wb") as written:
            written.write(data)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(path)
        return batch
    return batch.spilled_to(path)


# The workers' findings files go to a folder of this prefix in the temporary directory.
SPILL_PREFIX = "kaprules-findings-"


# A folder younger than this is never swept: its audit may not have locked it yet.
_SWEEP_AFTER_SECONDS = 60


class SpillFolder:
    """A temporary folder for the workers' findings files, locked while its audit lives.

    The lock (``flock`` on a file in it) is held by the audit's process and, through the
    descriptor they inherit, by its forked workers; the kernel lets it go when they all
    end, however they end. An audit killed with ``kill -9`` thus leaves an unlocked
    folder, which the next audit's `sweep_spill_folders` removes.
    """

    def __init__(self, path: str, lock: int) -> None:
        self.path = path
        self._lock = lock

    @classmethod
    def make(cls) -> SpillFolder | None:
        """A new locked folder in the temporary directory.

        Returns:
            The folder; None without a usable temporary directory (the rows then come
            back through the workers' pipes).
        """
        import shutil

        try:
            path = tempfile.mkdtemp(prefix=SPILL_PREFIX)
        except OSError:
            return None
        try:
            lock = os.open(os.path.join(path, ".lock"), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError:
            shutil.rmtree(path, ignore_errors=True)
            return None
        try:
            import fcntl
        except ImportError:  # no flock here: nothing sweeps it either
            return cls(path, lock)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
        except OSError:
            os.close(lock)
            shutil.rmtree(path, ignore_errors=True)
            return None
        return cls(path, lock)

    def close(self) -> None:
        """Remove the folder (the workers stopped first), then let its lock go."""
        import shutil

        shutil.rmtree(self.path, ignore_errors=True)
        os.close(self._lock)


def sweep_spill_folders(directory: str | None = None) -> int:
    """Remove the spill folders of audits that ended without removing theirs.

    Only this user's folders (not links), at least a minute old, whose lock no process
    holds. Anything unexpected leaves a folder where it is.

    Args:
        directory: Where to look (default: the temporary directory).

    Returns:
        How many were removed.
    """
    import shutil

    try:
        import fcntl
    except ImportError:  # no flock here: no folder can be told abandoned
        return 0
    removed = 0
    try:
        entries = list(os.scandir(directory or tempfile.gettempdir()))
    except OSError:
        return 0
    now = time.time()
    for entry in entries:
        if not entry.name.startswith(SPILL_PREFIX):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
            if not entry.is_dir(follow_symlinks=False) or info.st_uid != os.getuid():
                continue
            if now - info.st_mtime < _SWEEP_AFTER_SECONDS:
                continue
            lock = os.open(os.path.join(entry.path, ".lock"), os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: its audit runs on
            os.close(lock)
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        os.close(lock)
        removed += not os.path.lexists(entry.path)
    return removed


def _drawn(batch: ResultBatch) -> int:
    return sum(data is not None for _, _, data in batch.others)


def work_task(task: tuple[list[Any], Text, Slot]) -> ResultBatch:
    """In a worker of `in_workers`: a task's chunk evaluated by the audit's engine."""
    job = worker_settings()
    assert isinstance(job, Job)
    chunk, text, slot = task
    # The chunk's lines: from the slot the main process wrote them to, or (a regular
    # file's blocks) read here.
    chunk, joined = Shared.unpacked(chunk, slot) if slot is not None else loaded(chunk)
    if text is not None and len(text) > 2:
        return _spill(job.engine.work(chunk, joined, job=job, text=text[:2]), text[2])
    return job.engine.work(chunk, joined, job=job, text=text)


def _parallel(
    tasks: Iterator[tuple[list[Any], Text]], chunker: Chunker, job: Job, jobs: int
) -> Iterator[ResultBatch]:
    kept = 0
    in_flight = job.engine.in_flight
    shared = Shared.make(jobs * in_flight)
    packed = map(shared.packed, tasks) if shared is not None else ((*t, None) for t in tasks)
    done = in_workers(packed, work_task, job, jobs, in_flight)
    # Leaving early stops the workers at once; the buffer is unmapped after them.
    with Shared.closing(shared), contextlib.closing(done):
        for task, batch in done:
            if shared is not None:
                shared.release(task)
            chunker.learn(batch)
            # Each worker drew up to `sample` courses of its own: the first ones count.
            drawn = _drawn(batch)
            if drawn and kept + drawn > job.sample:
                others, left = [], max(job.sample - kept, 0)
                for position, fields, data in batch.others:
                    if data is not None:
                        data, left = (data, left - 1) if left else (None, 0)
                    others.append((position, fields, data))
                batch = batch.with_others(others)
                drawn = min(drawn, max(job.sample - kept, 0))
            kept += drawn
            yield batch


# Where a chunk's lines wait for its worker: (buffer key, slot, each block's length), or
# None when they travel with the task.
Slot = tuple[int, int, tuple[int, ...]] | None


class Shared:
    """Memory the main process shares with the workers it forks, to hand them lines.

    A pipe moves a chunk of 8 MiB in some 25 ms, while its worker waits and the main
    process works; a copy into memory both map takes 2. The buffer is mapped before the
    pool forks its workers (they inherit it, by its key: two audits at once each have
    theirs) and holds one slot per chunk in flight. A slot is reused only once its chunk's
    results are back, so a worker reads it undisturbed.
    """

    # Bytes a slot holds: a chunk of of 16 MiB and a block with a line at the
    # loader's limit; a larger chunk travels with its task.
    SLOT = 36 << 20
    live: ClassVar[dict[int, mmap.mmap]] = {}

    def __init__(self, slots: int) -> None:
        self.key = id(self)
        self.buffer = mmap.mmap(-1, slots * self.SLOT)
        self.free = list(range(slots))
        Shared.live[self.key] = self.buffer

    @classmethod
    def make(cls, slots: int) -> Shared | None:
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
        Shared.live.pop(self.key, None)
        self.buffer.close()

    def packed(self, task: tuple[list[Any], Text]) -> tuple[list[Any], Text, Slot]:
        """The task with its lines in a free slot, or as it is (no slot, or too large)."""
        chunk, text = task
        blocks = [unit.data for unit in chunk if isinstance(unit, LineBlock) and unit.data]
        if not self.free or not blocks or sum(map(len, blocks)) > self.SLOT:
            return chunk, text, None
        slot = self.free.pop()
        at = slot * self.SLOT
        for data in blocks:
            self.buffer[at : at + len(data)] = data
            at += len(data)
        empty = [
            attrs.evolve(unit, data=b"") if isinstance(unit, LineBlock) else unit for unit in chunk
        ]
        return empty, text, (self.key, slot, tuple(map(len, blocks)))

    def release(self, task: tuple[list[Any], Text, Slot]) -> None:
        """Free the task's slot: its results are back."""
        if task[2] is not None:
            self.free.append(task[2][1])

    @staticmethod
    @contextlib.contextmanager
    def closing(shared: Shared | None) -> Iterator[None]:
        """Close ``shared`` (if any) on leaving."""
        try:
            yield
        finally:
            if shared is not None:
                shared.close()

    @staticmethod
    def unpacked(
        chunk: list[Any], slot: tuple[int, int, tuple[int, ...]]
    ) -> tuple[list[Any], bytes | None]:
        """In a worker: the chunk with its lines read back from the slot.

        Returns the chunk, and its lines joined (each ending in a line break): when every block ends
        its last line, the slot's bytes are that text, and the blocks stay empty (one
        copy out of the slot, not two).
        """
        key, index, lengths = slot
        buffer = Shared.live[key]
        at = start = index * Shared.SLOT
        ends = []
        for size in lengths:
            at += size
            ends.append(buffer[at - 1 : at] == b"\n" if size else False)
        found: list[Any] = chunk
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
        start = -(-index * Shared.SLOT // page) * page
        if hasattr(mmap, "MADV_DONTNEED") and at - start >= page:
            with contextlib.suppress(OSError):
                buffer.madvise(mmap.MADV_DONTNEED, start, (at - start) // page * page)
        return found, data


def in_worker() -> bool:
    """Whether this process is a worker that `in_workers` started."""
    return _settings is not None


class Background:
    """One task run in a worker process of its own, beside the audit; its result when asked.

    The process is a worker as `in_workers`' are: it ignores the stop signals the main
    process answers and dies with it; one that dies is a `KapRulesError` when its result
    is asked for.
    """

    def __init__(self, work: Callable[[Any], Any], task: Any) -> None:
        import multiprocessing

        context: Any = multiprocessing.get_context(start_method())
        reader, writer = context.Pipe(duplex=False)
        parent = (os.getpid(), threading.current_thread() is threading.main_thread())
        with held_signals():  # see in_workers
            self._process = context.Process(
                target=_background, args=(work, task, writer, *parent), daemon=True
            )
            self._process.start()
        writer.close()
        self._reader = reader

    def result(self) -> Any:
        """The task's result, once the process has sent it.

        Raises:
            KapRulesError: The process died.
            Exception: What the task raised.
        """
        from multiprocessing.reduction import ForkingPickler

        try:
            payload = self._reader.recv_bytes()
        except (EOFError, OSError):  # it died, perhaps halfway through its result
            raise KapRulesError(DIED) from None
        finally:
            self.stop()
        done, value = ForkingPickler.loads(payload)
        if not done:
            raise value
        return value

    def stop(self) -> None:
        """End the process (at once, if it still runs) and close its pipe."""
        with contextlib.suppress(OSError, ValueError, AttributeError):
            self._process.kill()
        with contextlib.suppress(OSError, ValueError, AttributeError, AssertionError):
            self._process.join(5)
        with contextlib.suppress(OSError):
            self._reader.close()


def _background(
    work: Callable[[Any], Any], task: Any, results: Any, parent: int, by_main_thread: bool
) -> None:
    # A Background's process: its one result sent back, or it ends without a word.
    from multiprocessing.reduction import ForkingPickler

    try:
        start_worker(None, parent, by_main_thread)
        try:
            answer = ForkingPickler.dumps((True, work(task)))
        except BaseException as exc:
            answer = failure(exc)
        results.send_bytes(answer)
    except BaseException:
        os._exit(1)
