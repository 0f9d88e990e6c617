"""What an auditor compares: the stamps of every input that decided an audit's result.

The protocol's digest and each protocol file's SHA-256, the rule plugins and their
versions, each input's SHA-256 and name; and which engine ran, and why.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import kaprules
from kaprules import STANDARD
from kaprules.auditing import audit, files, read_records
from test_plugins import PROTOCOL, installed, site  # noqa: F401 (fixtures)

from conftest import EXAMPLES

Run = Callable[..., tuple[int, str, str]]
COURSES = EXAMPLES / "audit" / "courses.jsonl"
CSV = EXAMPLES / "audit" / "sessions.csv"
V2 = EXAMPLES / "protocols" / "kap-standard-2.toml"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _versions(tmp_path: Path) -> list[str]:
    # Two versions of kap-standard@2's rules, each its own file.
    text = V2.read_text(encoding="utf-8")
    paths = []
    for version, effective in (("2", "2020-01-01"), ("3", "2027-01-01")):
        path = tmp_path / f"v{version}.toml"
        head = f'id = "kap-standard"\nversion = "{version}"\neffective = {effective}\n'
        path.write_text(head + text.split("\n", 2)[2], encoding="utf-8")
        paths.append(str(path))
    return paths


def test_each_input_has_its_sha256_beside_the_combined_one(tmp_path: Path) -> None:
    odd = Path(os.fsdecode(bytes(tmp_path) + b"/\xff.jsonl.gz"))
    odd.write_bytes(gzip.compress(COURSES.read_bytes(), mtime=0))
    sources = [str(odd), str(CSV)]
    seen = []
    for engine in ("records", "columnar", "auto", "auto"):  # and a rerun
        summary = audit(read_records(sources), STANDARD, engine=engine).summary.to_dict()
        seen.append(json.dumps(summary, ensure_ascii=False))
    assert seen == [seen[0]] * 4
    summary = json.loads(seen[0])
    # The bytes as stored (compressed), each input's and all of them in order.
    assert summary["inputs"] == [
        {"name": str(tmp_path) + "/\\xff.jsonl.gz", "sha256": _sha(odd)},
        {"name": str(CSV), "sha256": _sha(CSV)},
    ]
    whole = hashlib.sha256(odd.read_bytes() + CSV.read_bytes()).hexdigest()
    assert summary["input_sha256"] == whole
    assert summary["protocol"] == {
        "id": "kap-standard",
        "version": "1",
        "sha256": STANDARD.digest,
        "files": [],
        "plugins": [],
    }
    # Courses given in Python: nothing read from files, no input named.
    assert audit([], STANDARD).summary.to_dict()["inputs"] == []


def test_audit_and_check_stamp_the_protocol_files_as_read(tmp_path: Path, cli: Run) -> None:
    for protocol in ([str(V2)], _versions(tmp_path)):
        given = [a for p in protocol for a in ("--protocol", p)]
        code, out, err = cli("audit", str(COURSES), "--format", "json", *given)
        assert (code, err) == (1, "")
        stamp = json.loads(out)["protocol"]
        files = [{"name": p, "sha256": _sha(Path(p))} for p in protocol]
        assert (stamp["files"], stamp["plugins"]) == (files, [])
        assert ("versions" in stamp) is (len(protocol) > 1)
        # check --format json stamps the same protocol, and its course.
        course = EXAMPLES / "violations.json"
        code, out, err = cli("check", str(course), "--format", "json", *given)
        assert (code, err) == (1, "")
        checked = json.loads(out)["stamps"]
        assert checked["protocol"] == stamp
        assert checked["input"] == {"name": str(course), "sha256": _sha(course)}


def test_a_plugin_rule_names_its_distribution_and_version(
    installed: Path,  # noqa: F811 (the fixture)
    tmp_path: Path,
    cli: Run,
) -> None:
    path = tmp_path / "acme.toml"
    path.write_text(PROTOCOL.format(sessions=2), encoding="utf-8")
    for command in ("audit", "check"):
        target = COURSES if command == "audit" else EXAMPLES / "compliant.json"
        code, out, _ = cli(command, str(target), "--protocol", str(path), "--format", "json")
        assert code == 1
        data = json.loads(out)
        stamp = data["protocol"] if command == "audit" else data["stamps"]["protocol"]
        assert stamp["plugins"] == [
            {
                "name": "at-most-in-days",
                "value": "acme_kap_rules.rules:AtMostInDays",
                "distribution": "acme-kap-rules",
                "version": "1.0",
            }
        ]


def fast_paths_on() -> bool:
    from kaprules import _fast

    return _fast.ENABLED


def test_the_summary_says_which_engine_ran_and_why(tmp_path: Path, cli: Run) -> None:
    pytest.importorskip("polars")
    expected = {
        "records": ("records", "the records engine was asked for", ""),
        "columnar": ("columnar", "the columnar engine was asked for", ""),
        # A small input: the per-record engine ends sooner (with the fast paths off, auto
        # never takes the columnar engine).
        "auto": (
            "records",
            "JSON Lines of under 4 MiB for each worker are audited sooner course by course"
            if fast_paths_on()
            else "the fast paths are off (KAPRULES_NO_FAST_PATHS=1)",
            "",
        ),
    }
    for engine, (name, why, err_expected) in expected.items():
        code, out, err = cli("audit", str(COURSES), "--format", "json", "--engine", engine)
        assert (code, err) == (1, err_expected)
        ran = json.loads(out)["engine"]
        assert ran["name"] == name
        assert ran["why"].startswith(why)
    # Several versions are judged course by course: asked for columnar, said so.
    given = [a for p in _versions(tmp_path) for a in ("--protocol", p)]
    code, out, err = cli("audit", str(COURSES), "--format", "json", "--engine", "columnar", *given)
    why = "the columnar engine was asked for, but several protocol versions are judged"
    assert json.loads(out)["engine"]["name"] == "records"
    assert json.loads(out)["engine"]["why"].startswith(why)
    assert err == f"kaprules: note: {why} course by course\n"


def test_columnar_asked_for_a_rule_without_a_vectorised_form_says_so(
    installed: Path,  # noqa: F811 (the fixture)
    tmp_path: Path,
    cli: Run,
) -> None:
    pytest.importorskip("polars")
    path = tmp_path / "acme.toml"
    path.write_text(PROTOCOL.format(sessions=2), encoding="utf-8")
    code, out, err = cli(
        "audit", str(COURSES), "--protocol", str(path), "--format", "json", "--engine", "columnar"
    )
    assert code == 1
    why = (
        "the columnar engine was asked for, but rule at-most-in-days has no vectorised form: "
        "every course goes course by course"
    )
    assert json.loads(out)["engine"] == {"name": "columnar", "why": why}
    assert err == f"kaprules: note: {why}\n"


def test_the_html_report_shows_every_stamp(tmp_path: Path, cli: Run) -> None:
    pytest.importorskip("jinja2")
    html = tmp_path / "report.html"
    code, out, _ = cli(
        "audit", str(COURSES), str(CSV), "--protocol", str(V2), "--html", str(html),
        "--format", "json", "--engine", "records",
    )  # fmt: skip
    assert code == 1
    page = html.read_text(encoding="utf-8")
    for item in json.loads(out)["inputs"]:
        assert f"<code>{item['name']}</code>, SHA-256 <code>{item['sha256']}</code>" in page
    assert f"<code>{V2}</code>, SHA-256 <code>{_sha(V2)}</code>" in page
    assert "<td>Engine</td><td>records: the records engine was asked for" in page
    assert "<td>Rule plugins</td><td>none" in page


def test_the_small_input_bound_is_stated_as_the_engine_reads_it() -> None:
    from kaprules import auditing

    stated = auditing._SMALL
    assert stated == f"{auditing.small_input(1) >> 20} MiB"


@pytest.mark.skipif(os.name != "posix", reason="/dev/full and pipes as POSIX has them")
@pytest.mark.parametrize("stdout", ["/dev/full", "a closed pipe"])
def test_a_plan_that_cannot_be_written_keeps_the_calendar_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], stdout: str
) -> None:
    # The .ics target was renamed into place before the plan reached standard output.
    pytest.importorskip("icalendar")
    import contextlib
    import sys

    from kaprules.cli import main

    target = tmp_path / "plan.ics"
    target.write_bytes(b"earlier\n")
    if stdout == "/dev/full":
        stream = open("/dev/full", "w", encoding="utf-8")  # noqa: SIM115 (closed below)
    else:
        reader, writer = os.pipe()
        os.close(reader)
        stream = os.fdopen(writer, "w", encoding="utf-8")
    monkeypatch.setattr(sys, "stdout", stream)
    course = EXAMPLES / "in-progress.json"
    try:
        code = main(["plan", str(course), "--as-of", "2026-12-06", "--ics", str(target)])
    finally:
        with contextlib.suppress(OSError):
            stream.close()
    assert code == 2
    full = "kaprules: error: cannot write the output: No space left on device\n"
    assert capsys.readouterr().err == (full if stdout == "/dev/full" else "")
    assert target.read_bytes() == b"earlier\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.ics"]


def test_the_report_draws_meetings_their_deadline_and_says_what_it_leaves_out(
    tmp_path: Path, cli: Run
) -> None:
    pytest.importorskip("jinja2")
    course = json.loads((EXAMPLES / "v2-compliant.json").read_text(encoding="utf-8"))
    lines = []
    for number, meetings in enumerate(([], [{"id": "m1", "start": "2027-02-20T10:00:00-07:00"}])):
        lines.append(json.dumps({**course, "id": f"c{number}", "integrations": meetings}))
    data = tmp_path / "in.jsonl"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    html = tmp_path / "r.html"
    args = ("audit", str(data), "--protocol", "kap-standard@2", "--html", str(html))
    assert cli(*args, "--sample", "1")[0] == 1
    page = html.read_text(encoding="utf-8")
    assert "Courses with an error finding (1 shown of 2)</h2>" in page
    assert "Every finding of every course is in the findings file (<code>--findings</code>)" in page
    # The legend comes before the first timeline; a timeline says it scrolls on a phone.
    assert page.index('class="legend"') < page.index('class="timeline"')
    assert 'class="scroll-cue"' in page
    assert "integration due by 2026-12-28" in page
    assert cli(*args, "--sample", "2")[0] == 1
    page = html.read_text(encoding="utf-8")
    assert "integration meeting m1, 2027-02-20 10:00 UTC-07:00: late</title>" in page


def test_the_progress_bar_shows_the_share_done_when_the_size_is_known(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tqdm = pytest.importorskip("tqdm", reason="the progress bar needs pip install '.[audit]'")
    from kaprules.auditing import read_records
    from kaprules.cli import _audit

    data = tmp_path / "in.jsonl"
    course = kaprules.load_course(EXAMPLES / "compliant.json")
    data.write_text(kaprules.dumps(course, indent=None) + "\n")
    size = data.stat().st_size
    assert _audit.input_size([str(data), str(data)]) == 2 * size
    assert _audit.input_size([str(data), "-"]) is None
    records = read_records([str(data)])
    list(kaprules.audit(records))
    assert records.bytes_read == size  # type: ignore[attr-defined]
    stream = io.StringIO()
    monkeypatch.setattr(stream, "isatty", lambda: True)
    monkeypatch.setattr(sys, "stderr", stream)
    bar = _audit._progress_bar(2 * size)
    _audit._advance(bar, size, 7)
    bar.refresh()
    shown = stream.getvalue()
    bar.close()
    assert "50%" in shown
    assert "7 courses" in shown
    assert isinstance(bar, tqdm.tqdm)


@given(
    st.binary(max_size=40),
    st.lists(st.lists(st.binary(max_size=200), max_size=3), max_size=4),
)
def test_each_input_is_hashed_as_its_own_bytes_and_all_of_them_together(
    before: bytes, inputs: list[list[bytes]]
) -> None:
    # The first input's digest is taken from the whole's (its bytes hashed once): only
    # while no byte came before it, and it ends where the next input begins.
    digests = files.Digests(hashlib.sha256(), None)
    digests.update(before, counted=False)
    for number, pieces in enumerate(inputs):
        digests.start(f"in{number}")
        for piece in pieces:
            digests.update(piece)
    assert digests.each() == [
        (f"in{number}", hashlib.sha256(b"".join(pieces)).hexdigest())
        for number, pieces in enumerate(inputs)
    ]
    every = before + b"".join(b"".join(pieces) for pieces in inputs)
    assert digests.hexdigest() == hashlib.sha256(every).hexdigest()


@pytest.mark.parametrize("count", [1, 2, 3])
def test_files_hashed_beside_the_workers_have_each_their_own_digest(
    count: int, tmp_path: Path
) -> None:
    contents = [bytes(range(n, 256)) * (n + 1) for n in range(count)]
    inputs = []
    for number, data in enumerate(contents):
        path = tmp_path / f"in{number}"
        path.write_bytes(data)
        inputs.append((f"in{number}", str(path), len(data)))
    assert files.hashed(inputs) == (
        hashlib.sha256(b"".join(contents)).hexdigest(),
        [(f"in{n}", hashlib.sha256(data).hexdigest()) for n, data in enumerate(contents)],
    )
