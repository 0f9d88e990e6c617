"""Outputs an auditor can trust: atomic files, clean interruption, bounded memory.

The fault tests run the real command in a subprocess and interrupt it mid-run: SIGINT,
SIGTERM, ``kill -9`` of the main process and of a worker, a file size limit as a full disk.
"""

from __future__ import annotations

import gc
import gzip
import hashlib
import io
import json
import os
import resource
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kaprules
from kaprules import InputError, KapRulesError, auditing, findings_files
from kaprules._output import OutputError, Outputs, check_paths
from kaprules.auditing import (
    MAX_REJECTED_KEPT,
    AuditSummary,
    CourseResult,
    csv_table,
    files,
    pipeline,
    read_records,
)
from kaprules.auditing import records as audit_records

from conftest import ROOT
from helpers import make_audit_data

Run = Callable[..., tuple[int, str, str]]
EARLIER = b"an earlier, complete output\n"
SRC = str(ROOT / "src")


@pytest.fixture(scope="module")
def lines() -> list[str]:
    return list(make_audit_data.lines(600, 3))


def write_big(path: Path, lines: list[str], copies: int) -> Path:
    # Copies of one small data set: an input that takes seconds to audit, made in a blink.
    block = "".join(line + "\n" for line in lines).encode()
    path.write_bytes(block * copies)
    return path


def start(*args: str, cwd: Path, **kwargs: object) -> subprocess.Popen[bytes]:
    # The audit's own temporary files beside the test's folder, not in /tmp: a main
    # process killed by SIGKILL cannot remove them.
    scratch = cwd.parent / f"{cwd.name}-tmp"
    scratch.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": SRC, "TMPDIR": str(scratch)}

    def default_signals() -> None:
        # A test runner may ignore SIGINT, and a child inherits that.
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "kaprules", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=default_signals,
        **kwargs,
    )


def children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as handle:
        return [int(x) for x in handle.read().split()]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def temps(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def wait_for_work(process: subprocess.Popen[bytes], directory: Path, workers: int) -> list[int]:
    """Wait until the audit has written findings to its temporary file; its workers."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        found = [p for p in directory.glob(".f.jsonl.*.tmp") if p.stat().st_size > 0]
        kids = children(process.pid)
        if found and len(kids) >= workers:
            return kids
        time.sleep(0.02)
    raise AssertionError("the audit never started writing")


posix_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")


# --- the output module ----------------------------------------------------------------


def test_a_failed_run_keeps_the_target_and_removes_its_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    target.write_bytes(EARLIER)

    def fail() -> None:
        with Outputs() as outputs:
            outputs.open(str(target)).write("half a rep")
            assert len(temps(tmp_path)) == 1
            raise RuntimeError

    with pytest.raises(RuntimeError):
        fail()
    assert target.read_bytes() == EARLIER
    assert temps(tmp_path) == []


def test_a_commit_replaces_the_target_keeping_its_permissions(tmp_path: Path) -> None:
    target = tmp_path / "out.ics"
    target.write_bytes(EARLIER)
    target.chmod(0o640)
    with Outputs() as outputs:
        outputs.open_binary(str(target)).write(b"new")
        assert target.read_bytes() == EARLIER  # nothing shows before the commit
        outputs.commit()
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert temps(tmp_path) == []


def test_a_new_output_gets_the_permissions_of_a_created_file(tmp_path: Path) -> None:
    mask = os.umask(0o022)
    try:
        with Outputs() as outputs:
            outputs.open(str(tmp_path / "new.html")).write("x")
            outputs.commit()
    finally:
        os.umask(mask)
    assert stat.S_IMODE((tmp_path / "new.html").stat().st_mode) == 0o644


def test_a_device_is_written_through(tmp_path: Path) -> None:
    with Outputs() as outputs:
        outputs.open(os.devnull).write("discarded")
        outputs.commit()
    assert temps(Path(os.devnull).parent) == []


def test_a_write_error_names_the_file_and_keeps_the_target(tmp_path: Path) -> None:
    target = tmp_path / "f.csv"
    target.write_bytes(EARLIER)

    def fail() -> None:
        with Outputs() as outputs:
            outputs.open(str(target))
            with outputs.writing(str(target)):
                raise OSError(28, "No space left on device")

    with pytest.raises(OutputError, match=r"cannot write .*f\.csv: No space left"):
        fail()
    assert target.read_bytes() == EARLIER
    assert temps(tmp_path) == []


def test_check_paths_knows_a_file_by_inode_not_by_spelling(tmp_path: Path) -> None:
    data = tmp_path / "in.jsonl"
    data.write_text("\n")
    (tmp_path / "link.jsonl").symlink_to(data)
    (tmp_path / "sub").mkdir()
    for spelling in (
        str(tmp_path / "link.jsonl"),
        str(tmp_path / "sub" / ".." / "in.jsonl"),
        str(tmp_path / "." / "in.jsonl"),
    ):
        with pytest.raises(OutputError, match="is the input"):
            check_paths([("--findings", spelling)], [str(data)])
    new = tmp_path / "new.html"
    with pytest.raises(OutputError, match="is also the file of --findings"):
        check_paths([("--findings", str(new)), ("--html", str(tmp_path / "sub/../new.html"))], [])
    check_paths([("--findings", str(new))], ["-", None, str(data)])  # no error


# --- the command line: refused before any work -----------------------------------------


def test_an_output_that_is_an_input_is_refused(tmp_path: Path, cli: Run, lines: list[str]) -> None:
    data = write_big(tmp_path / "in.jsonl", lines[:20], 1)
    before = data.read_bytes()
    (tmp_path / "link.jsonl").symlink_to(data)
    os.chdir(tmp_path)
    for option, spelling in (
        ("--findings", "./in.jsonl"),
        ("--html", "link.jsonl"),
        ("--findings", str(tmp_path / "link.jsonl")),
    ):
        code, out, err = cli("audit", "in.jsonl", option, spelling)
        assert (code, out) == (2, "")
        assert err.count("\n") == 1
        assert "is the input" in err
        assert data.read_bytes() == before


def test_findings_and_html_into_one_file_is_refused(tmp_path: Path, cli: Run) -> None:
    target = tmp_path / "x"
    code, _, err = cli(
        "audit", "examples/audit/courses.jsonl", "--findings", str(target), "--html", str(target)
    )
    assert code == 2
    assert err.count("\n") == 1
    assert "--html" in err
    assert "--findings" in err
    assert not target.exists()


def test_a_protocol_file_is_an_input_too(tmp_path: Path, cli: Run) -> None:
    protocol = tmp_path / "p.toml"
    code, out, _ = cli("protocol", "show", "kap-standard@1")
    protocol.write_text(out)
    code, _, err = cli(
        "audit", "examples/audit/courses.jsonl", "--protocol", str(protocol), "--html",
        str(protocol),
    )  # fmt: skip
    assert code == 2
    assert "is the input" in err
    assert protocol.read_text() == out


def test_plan_ics_onto_the_course_is_refused(tmp_path: Path, cli: Run) -> None:
    course = tmp_path / "c.json"
    course.write_bytes((ROOT / "examples" / "in-progress.json").read_bytes())
    code, _, err = cli("plan", str(course), "--as-of", "2026-12-05", "--ics", str(course))
    assert code == 2
    assert "is the input" in err
    assert course.read_bytes() == (ROOT / "examples" / "in-progress.json").read_bytes()


def test_plan_ics_into_a_missing_directory_is_refused(tmp_path: Path, cli: Run) -> None:
    course = str(ROOT / "examples" / "in-progress.json")
    target = tmp_path / "missing" / "plan.ics"
    code, out, err = cli("plan", course, "--as-of", "2026-12-05", "--ics", str(target))
    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert "no such directory" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_directory_is_refused(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="its directory is not writable"):
            check_paths([("--html", str(locked / "r.html"))], [])
    finally:
        locked.chmod(0o700)


def test_a_missing_extra_is_refused_before_the_audit(
    tmp_path: Path, cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "jinja2", None)  # as if not installed
    findings = tmp_path / "f.jsonl"
    code, _, err = cli(
        "audit", "examples/audit/courses.jsonl", "--findings", str(findings), "--html",
        str(tmp_path / "r.html"),
    )  # fmt: skip
    assert code == 2
    assert err == (
        "kaprules: error: --html needs the jinja2 package: pip install '.[audit]' in a checkout "
        "of kaprules\n"
    )
    assert list(tmp_path.iterdir()) == []


@posix_only
def test_an_unwritable_output_directory_stops_the_run_before_reading(tmp_path: Path) -> None:
    # Standard input is never closed: a run that read it first would wait forever.
    (tmp_path / "file").write_text("")
    for target in ("missing/r.html", "file/r.html"):
        process = start("audit", "-", "--html", target, cwd=tmp_path, stdin=subprocess.PIPE)
        try:
            code = process.wait(timeout=20)
            err = process.stderr.read().decode() if process.stderr else ""
        finally:
            process.kill()
            process.communicate()
        assert code == 2
        assert err.count("\n") == 1
        assert err.startswith("kaprules: error: cannot write ")


@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_a_damaged_gzip_input_keeps_the_earlier_findings(
    tmp_path: Path, cli: Run, lines: list[str], damage: str
) -> None:
    packed = gzip.compress("".join(line + "\n" for line in lines).encode())
    if damage == "truncated":
        packed = packed[: len(packed) // 2]
    else:  # the deflate stream broken: zlib's own error, not gzip's
        packed = packed[:100] + b"\xff" * 8 + packed[108:]
    (tmp_path / "in.jsonl.gz").write_bytes(packed)
    findings = tmp_path / "f.jsonl"
    findings.write_bytes(EARLIER)
    code, out, err = cli("audit", str(tmp_path / "in.jsonl.gz"), "--findings", str(findings))
    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert err.startswith("kaprules: error: cannot audit: cannot read ")
    assert findings.read_bytes() == EARLIER
    assert temps(tmp_path) == []


@posix_only
def test_a_full_disk_leaves_the_earlier_outputs(tmp_path: Path, lines: list[str]) -> None:
    write_big(tmp_path / "in.jsonl", lines, 1)
    (tmp_path / "f.jsonl").write_bytes(EARLIER)

    def small_files() -> None:
        # Writing past 16 KiB fails with EFBIG (Python ignores SIGXFSZ): a disk filling up.
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 14, 1 << 14))

    process = subprocess.run(
        [sys.executable, "-m", "kaprules", "audit", "in.jsonl", "--findings", "f.jsonl"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": SRC},
        capture_output=True,
        preexec_fn=small_files,
        timeout=60,
    )
    assert process.returncode == 2
    assert process.stderr == b"kaprules: error: cannot write f.jsonl: File too large\n"
    assert (tmp_path / "f.jsonl").read_bytes() == EARLIER
    assert temps(tmp_path) == []


# --- signals and workers ----------------------------------------------------------------


@posix_only
@pytest.mark.parametrize(
    ("sent", "group", "code", "message"),
    [
        (signal.SIGINT, False, 130, "interrupted"),
        # Ctrl-C on a terminal: the whole process group, workers included.
        (signal.SIGINT, True, 130, "interrupted"),
        (signal.SIGTERM, False, 143, "terminated"),
        # The terminal closed: to the whole group too.
        (signal.SIGHUP, True, 129, "hung up"),
    ],
)
def test_an_interrupted_audit_keeps_the_earlier_outputs(
    tmp_path: Path, lines: list[str], sent: int, group: bool, code: int, message: str
) -> None:
    write_big(tmp_path / "in.jsonl", lines, 40)
    (tmp_path / "f.jsonl").write_bytes(EARLIER)
    (tmp_path / "r.html").write_bytes(EARLIER)
    process = start(
        "audit", "in.jsonl", "--jobs", "2", "--findings", "f.jsonl", "--html", "r.html",
        cwd=tmp_path, start_new_session=True,
    )  # fmt: skip
    workers = wait_for_work(process, tmp_path, 2)
    if group:
        os.killpg(process.pid, sent)
    else:
        os.kill(process.pid, sent)
    out, err = process.communicate(timeout=30)
    assert process.returncode == code
    assert err.decode() == f"kaprules: {message}\n"
    assert out == b""
    assert (tmp_path / "f.jsonl").read_bytes() == EARLIER
    assert (tmp_path / "r.html").read_bytes() == EARLIER
    assert temps(tmp_path) == []
    assert not [pid for pid in workers if alive(pid)]


@posix_only
def test_workers_die_with_a_killed_main_process(tmp_path: Path, lines: list[str]) -> None:
    write_big(tmp_path / "in.jsonl", lines, 40)
    process = start("audit", "in.jsonl", "--jobs", "2", "--findings", "f.jsonl", cwd=tmp_path)
    workers = wait_for_work(process, tmp_path, 2)
    process.kill()
    # Standard output reaches its end: no worker holds it open any more.
    process.communicate(timeout=10)
    deadline = time.monotonic() + 5
    while [pid for pid in workers if alive(pid)] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in workers if alive(pid)]
    assert not (tmp_path / "f.jsonl").exists()
    # The killed audit's folder for its workers' findings files is left, its lock let go
    # with the last of its processes: the next audit removes it (once a minute old).
    scratch = tmp_path.parent / f"{tmp_path.name}-tmp"
    left = list(scratch.glob("kaprules-findings-*"))
    assert len(left) == 1
    old = time.time() - 120
    os.utime(left[0], (old, old))
    assert pipeline.sweep_spill_folders(str(scratch)) == 1
    assert not left[0].exists()


@pytest.mark.skipif(sys.platform == "win32", reason="no flock")
def test_only_abandoned_findings_folders_are_swept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    running = pipeline.SpillFolder.make()  # an audit's, locked by this process
    assert running is not None

    def left(name: str) -> Path:
        # What an audit killed outright leaves: its folder and an unlocked lock file.
        folder = tmp_path / f"kaprules-findings-{name}"
        folder.mkdir()
        (folder / ".lock").touch()
        (folder / "batch-1").write_text("rows\n")
        return folder

    abandoned, young = left("abandoned"), left("young")
    stranger = tmp_path / "kaprules-findings-x"  # no lock file: left where it is
    stranger.mkdir()
    linked = tmp_path / "kaprules-findings-link"
    linked.symlink_to(abandoned)
    old = time.time() - 120
    for path in (Path(running.path), abandoned, stranger):
        os.utime(path, (old, old))
    assert pipeline.sweep_spill_folders() == 1
    assert not abandoned.exists()
    assert [Path(running.path).exists(), young.exists(), stranger.exists()] == [True] * 3
    assert linked.is_symlink()
    running.close()
    assert not Path(running.path).exists()


@posix_only
def test_without_the_kernel_a_worker_notices_its_parent_is_gone(tmp_path: Path) -> None:
    # The fallback where PR_SET_PDEATHSIG is not available: the parent check alone.
    script = (
        "import os, time\n"
        "from kaprules.auditing.pipeline import watch\n"
        "parent = os.getpid()\n"
        "if os.fork() == 0:\n"
        "    watch(parent)\n"
        "    time.sleep(60)  # not reached: watch ends the process\n"
        "time.sleep(60)\n"
    )
    middle = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": SRC})
    deadline = time.monotonic() + 20
    while not children(middle.pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    (child,) = children(middle.pid)
    assert alive(child)
    middle.kill()
    middle.wait()
    deadline = time.monotonic() + 5
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child)


@posix_only
def test_a_killed_worker_is_one_line_and_exit_2(tmp_path: Path, lines: list[str]) -> None:
    write_big(tmp_path / "in.jsonl", lines, 40)
    (tmp_path / "f.jsonl").write_bytes(EARLIER)
    process = start("audit", "in.jsonl", "--jobs", "2", "--findings", "f.jsonl", cwd=tmp_path)
    workers = wait_for_work(process, tmp_path, 2)
    os.kill(workers[0], signal.SIGKILL)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 2
    assert err.count(b"\n") == 1
    assert b"a worker process died" in err
    assert b"internal error" not in err
    assert (tmp_path / "f.jsonl").read_bytes() == EARLIER
    assert temps(tmp_path) == []
    assert not [pid for pid in workers if alive(pid)]


@posix_only
def test_an_audit_dropped_early_stops_its_workers(lines: list[str]) -> None:
    run = kaprules.audit(lines * 20, jobs=2)
    iterator = iter(run)
    next(iterator)
    workers = children(os.getpid())
    assert workers
    del iterator, run
    gc.collect()
    assert not [pid for pid in workers if alive(pid)]


# --- bounded memory ---------------------------------------------------------------------


def test_rejected_records_are_counted_but_kept_up_to_the_bound() -> None:
    summary = AuditSummary("p", "1", None, ())
    for line in range(1, MAX_REJECTED_KEPT + 6):
        summary.add(CourseResult(line, "in", None, 0, (), "empty line"))
    data = summary.to_dict()
    assert data["lines_read"] == data["rejected_count"] == MAX_REJECTED_KEPT + 5
    assert len(data["rejected"]) == MAX_REJECTED_KEPT
    assert data["rejected"][-1]["line"] == MAX_REJECTED_KEPT
    assert data["rejected_omitted"] == 5
    assert not summary.ok


@posix_only
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_blank_lines_cost_no_memory(tmp_path: Path, jobs: str) -> None:
    (tmp_path / "blank.jsonl").write_bytes(b"\n" * 100_000)
    script = (
        "import sys\n"
        "from kaprules.cli import main\n"
        f"code = main(['audit', 'blank.jsonl', '--format', 'json', '--jobs', '{jobs}'])\n"
        # The peak of this process alone (ru_maxrss would count the forking test runner).
        "peak = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
        "print(peak.split()[1], file=sys.stderr)\n"
    )
    process = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": SRC},
        capture_output=True,
        timeout=60,
    )
    summary = json.loads(process.stdout)
    # Every rejected record kept cost 40 MB here (62 MB in all; 26 MB now).
    assert int(process.stderr) < 50 * 1024, "KiB of the main process at its peak"
    assert summary["rejected_count"] == 100_000
    assert summary["rejected_omitted"] == 100_000 - MAX_REJECTED_KEPT


def test_blocks_of_short_lines_are_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "BLOCK_LINES", 3)
    data = b"".join(b"%d\n" % i for i in range(20))
    parts = list(files.split_block(data))
    assert b"".join(part for part, _ in parts) == data
    assert all(lines == part.count(b"\n") <= 3 for part, lines in parts)


def test_blocks_count_their_lines_a_last_one_without_its_break_too() -> None:
    data = b"".join(b"%d\n" % i for i in range(10)) + b"last"
    blocks = list(files.jsonl_blocks(io.BytesIO(data), "d.jsonl"))
    assert [(b.first_line, b.lines) for b in blocks] == [(1, 10), (11, 1)]


def test_a_csv_row_longer_than_the_limit_is_refused_naming_its_line(tmp_path: Path) -> None:
    header = "course_id,timezone,session_id,kind,start,last_food,escort\n"
    long = tmp_path / "zeros.csv.gz"
    long.write_bytes(gzip.compress(header.encode() + b"0" * (auditing.MAX_LINE_BYTES + 10)))
    with pytest.raises(InputError, match=r"zeros\.csv\.gz line 2 is longer than 16777216 bytes"):
        list(read_records([str(long)]))


def test_a_quoted_cell_cannot_span_past_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for module in (audit_records, csv_table):  # the reader's bound, and its message's
        monkeypatch.setattr(module, "MAX_LINE_BYTES", 100)
    header = "course_id,timezone,session_id,kind,start,last_food,escort\n"
    row = 'c1,UTC,s1,induction,2026-01-01T09:00:00+00:00,,"E\n'
    ok = tmp_path / "ok.csv"
    ok.write_text(header + (row + '"\n') * 5)  # each row under 100 characters
    assert len(list(read_records([str(ok)]))) == 1
    spanning = tmp_path / "spanning.csv"
    spanning.write_text(header + row + "\n" * 200 + '"\n')
    with pytest.raises(InputError, match=r"spanning\.csv line \d+ is longer than 100 bytes"):
        list(read_records([str(spanning)]))


@given(st.lists(st.tuples(st.text(max_size=3), st.integers(1, 2**40)), max_size=3000))
@settings(max_examples=30)
def test_the_compact_table_of_csv_course_ids_is_a_dict(items: list[tuple[str, int]]) -> None:
    seen, expected = csv_table.Seen(), dict[str, int]()
    for course_id, line in items:
        assert seen.setdefault(course_id, line) == expected.setdefault(course_id, line)


def test_csv_course_ids_take_little_memory() -> None:
    seen = csv_table.Seen()
    for line in range(100_000):
        seen.setdefault(f"course-{line:08d}", line)
    assert seen.setdefault("course-00000007", 5) == 7
    held = sys.getsizeof(seen._keys) + sys.getsizeof(seen._lines)
    # At most 64 bytes an id (a quarter full just after growing); a dict of the ids and
    # their lines takes about 130.
    assert held / 100_000 <= 64


# --- the Python API ---------------------------------------------------------------------


def test_summary_first_then_iterating_is_an_error_not_an_empty_audit(lines: list[str]) -> None:
    run = kaprules.audit(lines[:50])
    assert run.summary.lines_read == 50  # the summary alone runs the audit
    with pytest.raises(KapRulesError, match="already consumed"):
        iter(run)
    again = kaprules.audit(lines[:50])
    assert len(list(again)) == 50
    with pytest.raises(KapRulesError, match="already consumed"):
        list(again)
    assert again.summary.lines_read == 50


def test_a_loop_left_early_then_the_summary_counts_everything(lines: list[str]) -> None:
    run = kaprules.audit(lines[:50])
    for _ in run:
        break
    assert run.summary.lines_read == 50


@pytest.mark.parametrize("digest", [None, "sha256", "md5"])
def test_input_sha256_is_set_whenever_kaprules_reads(
    tmp_path: Path, lines: list[str], digest: str | None
) -> None:
    data = write_big(tmp_path / "in.jsonl", lines[:30], 2)
    given = hashlib.new(digest) if digest else None
    for jobs in (1, 2):
        run = kaprules.audit(read_records([str(data)], digest=given), jobs=jobs)
        assert run.summary.input_sha256 == hashlib.sha256(data.read_bytes()).hexdigest()
    if given is not None:
        assert given.hexdigest() == hashlib.new(given.name, data.read_bytes() * 2).hexdigest()


def test_input_sha256_stays_none_for_texts(lines: list[str]) -> None:
    assert kaprules.audit(lines[:3]).summary.input_sha256 is None


def test_findings_need_no_usable_temporary_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The workers write their rows to files in a temporary directory. Where none can be
    # made (TMPDIR missing or read-only) or one cannot be written any more (full, gone),
    # the rows come back through the workers' pipes: the same output, not an error
    # blamed on it.
    import tempfile

    from kaprules.auditing import pipeline
    from kaprules.auditing.results import ResultBatch

    source = tmp_path / "d.jsonl"
    source.write_text("".join(line + "\n" for line in make_audit_data.lines(200, seed=4)))
    text = "".join(kaprules.audit(read_records([str(source)])).findings_text("jsonl"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))
    for jobs in (1, 2):
        out = tmp_path / "out.jsonl"
        with out.open("wb") as handle:
            run = kaprules.audit(read_records([str(source)]), jobs=jobs, engine="records")
            written = sum(run.write_findings(handle.fileno(), "jsonl"))
        assert out.read_text() == text
        assert written == len(text.encode())
    batch = ResultBatch([], [], [], [], [], text="rows\n")
    assert pipeline._spill(batch, str(tmp_path / "gone")) == batch
    (tmp_path / "spills").mkdir()
    spilled = pipeline._spill(batch, str(tmp_path / "spills"))
    assert spilled.spilled is not None
    assert not spilled.text
    assert Path(spilled.spilled).read_text() == "rows\n"


@pytest.mark.parametrize("form", ["jsonl", "csv"])
def test_findings_written_by_the_workers_are_the_findings_text(
    form: findings_files.FindingsForm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each worker writes its batches' rows to a file of its own, copied by the kernel to
    # the output in input order: a file or a pipe gets the text findings_text gives.
    import tempfile
    import threading

    source = tmp_path / "d.jsonl"
    source.write_text("".join(line + "\n" for line in make_audit_data.lines(600, seed=4)))
    text = "".join(kaprules.audit(read_records([str(source)])).findings_text(form))
    # A temporary directory of this test's own: other tests' audits write to the shared one.
    spills = tmp_path / "temporary"
    spills.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spills))
    out = tmp_path / f"out.{form}"
    with out.open("wb") as handle:
        run = kaprules.audit(read_records([str(source)]), jobs=2, engine="records")
        pieces = run.write_findings(handle.fileno(), form)
        written = next(pieces)
        assert len(list(spills.glob("kaprules-findings-*"))) == 1  # the workers' files' folder
        written += sum(pieces)
    assert out.read_text() == text
    assert written == len(text.encode())
    assert not list(spills.iterdir())  # each file removed once copied, and their folder
    reader, writer = os.pipe()
    got: list[bytes] = []

    def read() -> None:
        with os.fdopen(reader, "rb") as pipe:
            got.append(pipe.read())

    drain = threading.Thread(target=read)
    drain.start()
    try:
        for _ in kaprules.audit(read_records([str(source)]), jobs=2).write_findings(writer, form):
            pass
    finally:
        os.close(writer)
    drain.join()
    assert got == [text.encode()]
