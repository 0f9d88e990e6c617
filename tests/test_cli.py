"""The kaprules command: exit codes, output formats, one-line errors."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kaprules import STANDARD, evaluate, load_course
from kaprules.cli import main

from conftest import EXAMPLES

COMPLIANT = str(EXAMPLES / "compliant.json")
VIOLATIONS = str(EXAMPLES / "violations.json")
IN_PROGRESS = str(EXAMPLES / "in-progress.json")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_compliant_example_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "check", COMPLIANT)
    assert (code, err) == (0, "")
    assert out.startswith("OK: 0 errors, 0 warnings, 0 info findings in 7 sessions")


def test_violations_example_exits_1_with_a_line_per_finding(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "check", VIOLATIONS)
    report = evaluate(load_course(VIOLATIONS))
    lines = out.splitlines()
    assert code == 1
    assert len(lines) == len(report.findings) + 1
    assert lines[0].split()[:3] == ["error", "session-spacing", "[s1"]
    assert "2026-12-01" in lines[0]
    assert lines[-1].startswith("FAIL: 6 errors, 0 warnings")
    assert "Alex" not in out
    assert "P-0002" not in out


def test_json_output_is_report_to_dict(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "check", VIOLATIONS, "--format", "json")
    assert code == 1
    data = json.loads(out)
    report = evaluate(load_course(VIOLATIONS))
    assert data.pop("summary") == {
        "timezone": "America/Denver",
        "sessions": len(load_course(VIOLATIONS).sessions),
        "errors": len(report.errors),
        "warnings": 0,
        "info": 0,
        "waived": 0,
        "planned": [],
    }
    assert set(data.pop("stamps")) == {"protocol", "input"}  # test_stamps.py reads them
    assert data == report.to_dict()


@pytest.mark.parametrize(
    ("as_of", "code"),
    [
        (None, 1),
        ("2026-12-06", 0),
        ("2026-12-07T23:59:00-07:00", 0),
        ("2026-12-08T09:00:00-07:00", 1),  # s4 starts then: no longer planned
        ("2026-12-15", 1),  # window closed with five sessions
    ],
)
def test_as_of(capsys: pytest.CaptureFixture[str], as_of: str | None, code: int) -> None:
    extra = [] if as_of is None else ["--as-of", as_of]
    assert run(capsys, "check", IN_PROGRESS, *extra)[0] == code


def test_stdin(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    stdin = io.TextIOWrapper(io.BytesIO(Path(COMPLIANT).read_bytes()))
    monkeypatch.setattr(sys, "stdin", stdin)
    assert run(capsys, "check", "-")[0] == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["check", "missing.json"],
            "kaprules: error: cannot read missing.json: No such file or directory",
        ),
        (["check", str(EXAMPLES)], "kaprules: error: cannot read"),
        (["check"], "kaprules: error: the following arguments are required: PATH"),
        (
            ["check", COMPLIANT, "--as-of", "soon"],
            "kaprules: error: argument --as-of: 'soon' is neither",
        ),
        (["check", COMPLIANT, "--as-of", "2026-12-06T09:00"], "is neither a date"),
        (["check", COMPLIANT, "--as-of", "2026-02-30"], "'2026-02-30' is not a real date"),
        (["check", COMPLIANT, "--as-of", "2026-13-06"], "month must be in 1..12"),
        (
            ["check", COMPLIANT, "--as-of", "2026-12-01", "--as-of", "2026-12-02"],
            "--as-of is given twice",
        ),
        (["check", COMPLIANT, "--format", "text", "--format=text"], "--format is given twice"),
        (["check", COMPLIANT, "--format", "xml"], "argument --format: invalid choice"),
        (["frobnicate"], "kaprules: error: argument COMMAND: invalid choice"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert message in err


def test_invalid_course_exits_2_naming_session_and_field(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(
        '{"timezone": "UTC", "sessions": [{"id": "s1", "start": "2026-12-01T09:00:00"}]}'
    )
    code, out, err = run(capsys, "check", str(bad))
    assert (code, out) == (2, "")
    assert err.startswith(f"kaprules: error: invalid course in {bad}: sessions[0] (id 's1').start:")
    assert err.count("\n") == 1


@given(st.binary(max_size=300))
def test_no_traceback_on_any_bytes(data: bytes) -> None:
    proc_in = io.TextIOWrapper(io.BytesIO(data))
    saved, sys.stdin = sys.stdin, proc_in
    out, err = io.StringIO(), io.StringIO()
    saved_out, saved_err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        code = main(["check", "-"])
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved, saved_out, saved_err
    assert code in (0, 1, 2)
    if code == 2:
        assert err.getvalue().startswith("kaprules: ")
        assert err.getvalue().count("\n") == 1


def test_rules_text_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "rules")
    assert code == 0
    for rule in STANDARD.rules:
        assert f"{rule.id} ({rule.severity.value}): {rule.title}" in out
        assert rule.statement in out
    code, out, _ = run(capsys, "rules", "--format", "json")
    data = json.loads(out)
    assert [r["id"] for r in data["rules"]] == list(STANDARD.rule_ids)
    assert data["rules"][3]["parameters"] == {"hours": 4}
    assert data["rules"][3]["statement"] == STANDARD.rule("fasting").statement


def test_python_m_and_console_script_agree() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "kaprules", "check", VIOLATIONS, "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["ok"] is False
    assert "Traceback" not in proc.stderr


def test_start_up_imports_nothing_heavy() -> None:
    heavy = ("hypothesis", "pendulum", "jsonschema")
    code = f"import sys, kaprules.cli; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("kaprules 0.")


def test_importing_main_module_does_not_run_the_cli() -> None:
    code = "import sys; sys.argv = ['x', 'bogus']; import kaprules.__main__; print('imported')"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert (proc.returncode, proc.stdout.strip(), proc.stderr) == (0, "imported", "")


def test_bare_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys)
    assert code == 2
    assert out.startswith("usage: kaprules")
    assert "check" in out
    assert "plan" in out
    assert err == ""


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_version_flags(capsys: pytest.CaptureFixture[str], flag: str) -> None:
    with pytest.raises(SystemExit) as info:
        main([flag])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("kaprules ")
