"""Faults in audits: a worker killed at any point, memory per course, outputs made whole.

The worker tests run the real command in a fresh interpreter with a fault injected into
its worker processes (forked, they inherit it): the first worker to reach the chosen point
of its life kills itself there with SIGKILL, as the kernel's out-of-memory killer would.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import kaprules
from kaprules._output import OutputError, Outputs
from kaprules.auditing import Record, by_record
from kaprules.cli import main

from conftest import ROOT
from helpers import make_audit_data

SRC = str(ROOT / "src")
EARLIER = b"an earlier, complete output\n"
posix_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")


def temps(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def run_script(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # A hang is the failure these tests exist for: the timeout turns it into one.
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": SRC},
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


# --- a worker killed at any point of its life --------------------------------------------

# Runs `kaprules audit` once per case (engine, point) in this one interpreter, each with
# fresh workers, and prints what each run came to as JSON. The points:
#   start    in the worker's start-up, before it reads any task;
#   receive  halfway through reading a task;
#   send     halfway through sending its result (a shared queue's lock died with it, and
#            the audit waited forever).
KILLING = r"""
import contextlib, io, json, os, signal, sys, time
import multiprocessing.connection as mc
from kaprules.auditing import pipeline
from kaprules.cli import main

MAIN = os.getpid()
case = {"point": None, "marker": None}

def dies_here(point):
    # True once, in the first worker process that reaches the point of this case.
    if os.getpid() == MAIN or case["point"] != point:
        return False
    try:
        os.close(os.open(case["marker"], os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True

def die():
    os.kill(os.getpid(), signal.SIGKILL)

start, send, recv = pipeline.start_worker, mc.Connection._send, mc.Connection._recv

def starting(*args):
    if dies_here("start"):
        die()
    return start(*args)

def sending(self, buf, write=os.write):
    if len(buf) > 4 and dies_here("send"):  # more than a message's length alone
        write(self._handle, bytes(buf[: len(buf) // 2]))
        die()
    return send(self, buf)

def receiving(self, size, read=os.read):
    if size > 4 and dies_here("receive"):  # a task, after its length
        recv(self, size // 2)
        die()
    return recv(self, size)

pipeline.start_worker = starting
mc.Connection._send = sending
mc.Connection._recv = receiving

data, *cases = sys.argv[1:]
report = []
for number, name in enumerate(cases):
    engine, point = name.split(":")
    case.update(point=point, marker=f"dead-{number}")
    err = io.StringIO()
    began = time.monotonic()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(["audit", data, "--engine", engine, "--jobs", "2", "--findings", "f.jsonl"])
    with open(f"/proc/{MAIN}/task/{MAIN}/children") as handle:
        left = handle.read().split()
    report.append({
        "case": name, "code": code, "err": err.getvalue(), "died": os.path.exists(f"dead-{number}"),
        "seconds": time.monotonic() - began, "workers_left": left,
    })
print(json.dumps(report))
"""


@posix_only
def test_a_worker_killed_at_any_point_is_exit_2_never_a_hang(tmp_path: Path) -> None:
    lines = list(make_audit_data.lines(1500, 5))
    (tmp_path / "in.jsonl").write_text("".join(line + "\n" for line in lines))
    (tmp_path / "f.jsonl").write_bytes(EARLIER)
    cases = ["records:start", "records:receive", "records:send", "columnar:send"]
    process = run_script(KILLING, "in.jsonl", *cases, cwd=tmp_path)
    assert process.returncode == 0, process.stderr
    report = json.loads(process.stdout)
    assert [entry["case"] for entry in report] == cases
    for entry in report:
        assert entry["died"], entry  # the fault was injected
        assert entry["code"] == 2, entry
        assert entry["err"].count("\n") == 1, entry
        assert "a worker process died" in entry["err"], entry
        assert entry["seconds"] < 30, entry
        assert entry["workers_left"] == [], entry
    assert (tmp_path / "f.jsonl").read_bytes() == EARLIER
    assert temps(tmp_path) == []


# --- memory per course ----------------------------------------------------------------

# The columnar engine's memory for three courses of N and of 2N sessions, each breaking
# session-count (whose message names every session after the sixth), measured as this
# process's peak resident memory above what it held before (VmHWM, reset by clear_refs).
COLUMNAR_PEAKS = r"""
import datetime as dt, json, sys
from kaprules._columnar.engine import work_on
from kaprules.auditing import LineBlock
from kaprules.protocol import STANDARD

def course(n):
    # A session a day, each with its last meal and escort.
    days = [dt.date(2026, 1, 1) + dt.timedelta(days=i) for i in range(n)]
    sessions = [
        {"id": f"s{i}", "kind": "induction", "start": f"{day}T09:00:00Z",
         "last_food": f"{day}T03:00:00Z", "escort": "E"}
        for i, day in enumerate(days)
    ]
    return json.dumps({"timezone": "UTC", "sessions": sessions}).encode() + b"\n"

def status(field):
    with open("/proc/self/status") as handle:
        return next(int(l.split()[1]) for l in handle if l.startswith(field))

def audited(n):
    block = LineBlock("in.jsonl", 1, course(n) * 3, 3)
    return work_on([block], STANDARD, None, 0, ("jsonl", False))

assert audited(50).summary.courses == 3  # Polars loaded, the protocol's plan built
grown = []
for n in (1500, 3000):
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    before = status("VmRSS")
    assert audited(n).summary.rules["session-count"] == [3, 3, 0]  # courses, findings, waived
    grown.append((status("VmHWM") - before) / 1024)
print(json.dumps(grown))
"""


@posix_only
def test_columnar_memory_grows_with_a_course_not_its_square(tmp_path: Path) -> None:
    pytest.importorskip("polars")
    process = run_script(COLUMNAR_PEAKS, cwd=tmp_path)
    if "clear_refs" in process.stderr:  # the peak cannot be reset here
        pytest.skip("/proc/self/clear_refs is not writable")
    assert process.returncode == 0, process.stderr
    small, large = json.loads(process.stdout)
    # Twice the sessions, at most twice the memory (some 30 and 38 MiB here): linear. The
    # joined labels of session-count on every session row took 206 and 648 MiB.
    assert large < 2 * small + 24, (small, large)


def course_without_escorts(sessions: int) -> str:
    """A course whose every session lacks an escort: a finding each, and session-count's."""
    return json.dumps(
        {
            "timezone": "UTC",
            "sessions": [
                {
                    "id": f"s{i}",
                    "kind": "induction",
                    "start": f"2026-01-{1 + 2 * i:02d}T09:00:00Z",
                    "last_food": f"2026-01-{1 + 2 * i:02d}T03:00:00Z",
                }
                for i in range(sessions)
            ],
        }
    )


def test_findings_text_is_written_a_chunk_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # The per-record engine held 500 courses' results before writing them, whatever their
    # findings: 40 courses of 10,000 failing sessions took its main process to 1.84 GiB.
    # Now a chunk (at most a block's bytes of records) becomes its rows where it is
    # evaluated, its results read one at a time.
    from kaprules.auditing import by_record

    monkeypatch.setattr(by_record, "_CHUNK", 4)
    line = course_without_escorts(12)
    each = len(next(iter(kaprules.audit([line]))).findings)
    run = kaprules.audit([line] * 30, engine="records")
    pieces = [piece for piece in run.findings_text("jsonl") if piece]
    assert sum(piece.count("\n") for piece in pieces) == 30 * each
    assert max(piece.count("\n") for piece in pieces) == 4 * each


def test_records_of_long_courses_go_to_workers_in_chunks_of_bounded_size() -> None:
    # A chunk of CSV courses was 500 courses, whatever their length: its results, held
    # while in flight, grew with the courses.
    sessions = [{"id": f"s{i}"} for i in range(5000)]
    records = [Record(line, {"timezone": "UTC", "sessions": sessions}) for line in range(20)]
    chunker = by_record.Chunks()
    chunks = list(chunker.chunks(iter(records)))
    assert sum(len(chunk) for chunk in chunks) == 20
    assert max(len(chunk) for chunk in chunks) <= 3  # about a block's bytes (1 MiB) each
    short = [Record(line, '{"timezone": "UTC", "sessions": []}') for line in range(600)]
    assert [len(chunk) for chunk in chunker.chunks(iter(short))] == [500, 100]


# --- outputs and the summary, whole together or not at all --------------------------------


def test_a_target_turned_into_a_directory_replaces_no_output(tmp_path: Path) -> None:
    findings, report = tmp_path / "f.jsonl", tmp_path / "r.html"
    findings.write_bytes(EARLIER)
    with Outputs() as outputs:
        outputs.open(str(findings)).write("new findings\n")
        outputs.open(str(report)).write("new report\n")
        report.mkdir()  # meanwhile, by someone else
        with pytest.raises(OutputError, match=r"cannot write .*r\.html: Is a directory"):
            outputs.commit()
    assert findings.read_bytes() == EARLIER
    assert temps(tmp_path) == []


@pytest.mark.parametrize("first_existed", [True, False])
def test_a_rename_that_fails_puts_back_the_outputs_already_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, first_existed: bool
) -> None:
    findings, report = tmp_path / "f.jsonl", tmp_path / "r.html"
    if first_existed:
        findings.write_bytes(EARLIER)
    report.write_bytes(EARLIER)
    replace = os.replace

    def refused(source: str, target: str) -> None:
        # The report's directory refuses the rename (as an immutable one does), after
        # every check passed: only a rename can tell.
        if target == str(report) and source.endswith(".tmp") and ".old." not in source:
            raise PermissionError(errno.EPERM, os.strerror(errno.EPERM))
        replace(source, target)

    with Outputs() as outputs:
        outputs.open(str(findings)).write("new findings\n")
        outputs.open(str(report)).write("new report\n")
        monkeypatch.setattr(os, "replace", refused)
        with pytest.raises(OutputError, match=r"cannot write .*r\.html: Operation not permitted"):
            outputs.commit()
    assert findings.exists() == first_existed
    if first_existed:
        assert findings.read_bytes() == EARLIER
    assert report.read_bytes() == EARLIER
    assert temps(tmp_path) == []


@posix_only
@pytest.mark.parametrize("stdout", ["/dev/full", "a closed pipe"])
def test_a_summary_that_cannot_be_written_replaces_no_output(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    stdout: str,
) -> None:
    for name in ("f.jsonl", "r.html"):
        (tmp_path / name).write_bytes(EARLIER)
    if stdout == "/dev/full":
        stream = open("/dev/full", "w", encoding="utf-8")  # noqa: SIM115 (closed below)
    else:
        reader, writer = os.pipe()
        os.close(reader)  # the reader went away before the summary came
        stream = os.fdopen(writer, "w", encoding="utf-8")
    monkeypatch.setattr(sys, "stdout", stream)
    monkeypatch.chdir(tmp_path)
    try:
        code = main(
            ["audit", str(ROOT / "examples/audit/courses.jsonl"), "--findings", "f.jsonl",
             "--html", "r.html"]
        )  # fmt: skip
    finally:
        with contextlib.suppress(OSError):  # what could not be written is still buffered
            stream.close()
    err = capsys.readouterr().err
    assert code == 2
    if stdout == "/dev/full":
        assert err == "kaprules: error: cannot write the output: No space left on device\n"
    else:
        assert err == ""  # a reader that went away needs no word
    for name in ("f.jsonl", "r.html"):
        assert (tmp_path / name).read_bytes() == EARLIER
    assert temps(tmp_path) == []
