"""Rule plugins: a real distribution with entry points in ``kaprules.rules``, built here.

The distribution is written as files (a package and its ``.dist-info`` with ``METADATA``
and ``entry_points.txt``), as pip would leave it, and put on ``sys.path`` for the Python
tests and on ``PYTHONPATH`` for the command line: nothing is installed into the venv.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kaprules import (
    Protocol,
    ProtocolError,
    evaluate,
    load_course,
    parse_protocol,
    plugins,
    protocol_schema,
)
from kaprules.auditing import audit, read_records

from conftest import EXAMPLES, ROOT, SLOW

Run = Callable[..., tuple[int, str, str]]
COMPLIANT = EXAMPLES / "compliant.json"
PACKAGE = "acme_kap_rules"

RULES_MODULE = '''
"""Acme's rules for kaprules."""

from collections.abc import Iterator
from typing import ClassVar

import attrs

from kaprules import BaseRule, Finding, Source, Timeline

IMPORTED = True


@attrs.frozen(repr=False)
class AtMostInDays(BaseRule):
    """At most ``sessions`` sessions in any ``days`` local days."""

    default_id: ClassVar[str] = "at-most-in-days"
    title: ClassVar[str] = "At most a few sessions in any few days"
    rationale: ClassVar[str] = "Patients need days without a session to integrate."
    source: ClassVar[Source] = Source(
        "No more than three sessions in any seven days.", "Acme clinic handbook", "page 3"
    )
    names: ClassVar[str] = "The session one too many, one finding each."

    sessions: int = 3
    days: int = 7

    @property
    def statement(self) -> str:
        return f"At most {self.sessions} sessions fall within any {self.days} local days."

    def __call__(self, timeline: Timeline) -> Iterator[Finding]:
        seen = timeline.sessions
        for index, t in enumerate(seen):
            near = [u for u in seen[: index + 1] if (t.date - u.date).days < self.days]
            if len(near) > self.sessions:
                yield Finding(
                    self.id,
                    self.severity,
                    (t.id,),
                    f"{t.label} is session {len(near)} within {self.days} days",
                    self.sessions,
                    len(near),
                )


class NotARule:
    """A class without a rule's members."""

    title = "Not a rule"


def helper() -> None:
    """Not a class at all."""
'''

ENTRY_POINTS = """\
[kaprules.rules]
at-most-in-days = acme_kap_rules.rules:AtMostInDays
broken-import = acme_kap_rules.missing:Nope
not-a-class = acme_kap_rules.rules:helper
not-a-rule = acme_kap_rules.rules:NotARule
"""

PROTOCOL = """\
id = "acme"
version = "1"

[[rules]]
id = "session-count"

[[rules]]
id = "at-most-in-days"
[rules.parameters]
sessions = {sessions}
"""


def write_distribution(
    root: Path, name: str, version: str, entry_points: str, modules: dict[str, str]
) -> Path:
    """A distribution as installed: its modules and its .dist-info, under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for module, text in modules.items():
        path = root / module
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    info = root / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\nVersion: {version}\n",
        encoding="utf-8",
    )
    (info / "entry_points.txt").write_text(entry_points, encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The acme-kap-rules 1.0 distribution, written once."""
    return write_distribution(
        tmp_path_factory.mktemp("site"),
        "acme_kap_rules",
        "1.0",
        ENTRY_POINTS,
        {f"{PACKAGE}/__init__.py": "", f"{PACKAGE}/rules.py": RULES_MODULE},
    )


def forget(package: str = PACKAGE) -> None:
    """Forget a test distribution: the plugin cache, and every module of ``package``."""
    plugins.clear_cache()
    for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
        del sys.modules[name]


def on_path(site: Path, monkeypatch: pytest.MonkeyPatch, package: str) -> Iterator[Path]:
    """A distribution on sys.path while the test runs; gone again, with every cache, after."""
    forget(package)
    monkeypatch.syspath_prepend(str(site))
    yield site
    monkeypatch.undo()
    forget(package)


@pytest.fixture
def installed(site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The distribution on sys.path for this test; gone again, with every cache, after it."""
    yield from on_path(site, monkeypatch, PACKAGE)


@pytest.fixture
def protocol_file(tmp_path: Path) -> Callable[..., Path]:
    def write(sessions: int = 3, text: str = PROTOCOL) -> Path:
        path = tmp_path / f"acme-{sessions}.toml"
        path.write_text(text.format(sessions=sessions), encoding="utf-8")
        return path

    return write


def kaprules_cli(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m kaprules`` in a fresh interpreter that sees the plugin on PYTHONPATH."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT / "src")])}
    return subprocess.run(
        [sys.executable, "-m", "kaprules", *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        cwd=ROOT,
    )


# --- Python ---------------------------------------------------------------------------


def test_parse_protocol_finds_the_plugin_rule_and_evaluates_it(installed: Path) -> None:
    lenient = parse_protocol(PROTOCOL.format(sessions=3))
    strict = parse_protocol(PROTOCOL.format(sessions=2))
    rule = strict.rule("at-most-in-days")
    assert type(rule).__module__ == f"{PACKAGE}.rules"
    assert rule.parameters() == {"sessions": 2, "days": 7}
    course = load_course(COMPLIANT)
    assert evaluate(course, lenient).ok
    found = evaluate(course, strict).findings
    # Dec 1, 3, 5, 8, 10, 14: each from the third is the third within seven days.
    assert [(f.rule, f.sessions) for f in found] == [
        ("at-most-in-days", (s,)) for s in ("s3", "s4", "s5", "s6")
    ]
    # The protocol's data names the rule as files do, meets the schema, and reads back equal.
    jsonschema.Draft202012Validator(protocol_schema()).validate(strict.to_dict())
    assert Protocol.from_dict(strict.to_dict()) == strict


def test_load_rule_class_reports_where_the_plugin_comes_from(installed: Path) -> None:
    [plugin] = [p for p in plugins.installed_plugins() if p.name == "at-most-in-days"]
    assert plugin.to_dict() == {
        "name": "at-most-in-days",
        "value": "acme_kap_rules.rules:AtMostInDays",
        "distribution": "acme-kap-rules",
        "version": "1.0",
    }
    cls = plugins.load_rule_class("at-most-in-days")
    assert cls is not None
    assert cls.__name__ == "AtMostInDays"
    assert plugins.load_rule_class("at-most-in-days") is cls  # cached
    assert plugins.load_rule_class("no-such-plugin") is None
    assert [p.name for p in plugins.installed_plugins()] == [
        "at-most-in-days",
        "broken-import",
        "not-a-class",
        "not-a-rule",
    ]


def test_a_plugin_is_imported_only_when_a_protocol_names_it(installed: Path) -> None:
    parse_protocol('id = "c"\nversion = "1"\n[[rules]]\nid = "fasting"\n')
    assert f"{PACKAGE}.rules" not in sys.modules
    parse_protocol(PROTOCOL.format(sessions=3))
    assert f"{PACKAGE}.rules" in sys.modules


def test_given_rule_classes_come_before_plugins(installed: Path) -> None:
    from kaprules import SessionSpacing

    class Spacing(SessionSpacing):
        default_id = "at-most-in-days"

    text = 'id = "c"\nversion = "1"\n[[rules]]\nid = "at-most-in-days"\n'
    assert type(parse_protocol(text, rule_classes=[Spacing]).rules[0]) is Spacing
    assert f"{PACKAGE}.rules" not in sys.modules


@pytest.mark.parametrize(
    ("name", "why"),
    [
        (
            "broken-import",
            "plugin 'broken-import' (entry point kaprules.rules: acme_kap_rules.missing:Nope, "
            "from acme-kap-rules 1.0) cannot be imported: ModuleNotFoundError",
        ),
        (
            "not-a-class",
            "plugin 'not-a-class' (entry point kaprules.rules: acme_kap_rules.rules:helper, "
            "from acme-kap-rules 1.0) is not a rule class: it is a function, not a class",
        ),
        (
            "not-a-rule",
            "plugin 'not-a-rule' (entry point kaprules.rules: acme_kap_rules.rules:NotARule, "
            "from acme-kap-rules 1.0) is not a rule class: NotARule lacks statement, "
            "rationale, source, names, parameters, __call__",
        ),
    ],
)
def test_a_broken_plugin_is_one_problem_naming_its_entry_point(
    installed: Path, name: str, why: str
) -> None:
    text = f'id = "c"\nversion = "1"\n[[rules]]\nid = "fasting"\n[[rules]]\nid = "{name}"\n'
    with pytest.raises(ProtocolError) as info:
        parse_protocol(text)
    [problem] = info.value.problems
    assert problem.path == ("rules", 1, "id")
    assert problem.code == "plugin"
    assert problem.what.startswith(why)
    assert "\n" not in str(problem)


def test_two_distributions_with_one_plugin_name_are_refused(
    installed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = write_distribution(
        tmp_path / "other",
        "other_rules",
        "2.0",
        "[kaprules.rules]\nat-most-in-days = other_rules:AtMost\n",
        {"other_rules.py": ""},
    )
    monkeypatch.syspath_prepend(str(other))
    plugins.clear_cache()
    with pytest.raises(ProtocolError, match="given by 2 entry points") as info:
        parse_protocol(PROTOCOL.format(sessions=3))
    assert "acme-kap-rules 1.0" in str(info.value)
    assert "other-rules 2.0" in str(info.value)


def test_a_distribution_with_unreadable_entry_points_is_named_and_skipped(
    installed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Run
) -> None:
    bad = write_distribution(
        tmp_path / "bad", "bad_dist", "0.1", "[kaprules.rules]\nno equals sign\n", {}
    )
    monkeypatch.syspath_prepend(str(bad))
    plugins.clear_cache()
    assert parse_protocol(PROTOCOL.format(sessions=3)).rule_ids[1] == "at-most-in-days"
    [line] = plugins.unreadable_distributions()
    assert line.endswith("bad_dist-0.1.dist-info: TypeError")
    code, out, _ = cli("rules", "--plugins", "--format", "json")
    assert code == 0
    assert json.loads(out)["unreadable"] == [line]
    assert len(json.loads(out)["plugins"]) == 4


def test_an_unknown_rule_suggests_plugin_names_too(installed: Path) -> None:
    text = 'id = "c"\nversion = "1"\n[[rules]]\nid = "at-most-in-day"\n'
    with pytest.raises(ProtocolError) as info:
        parse_protocol(text)
    [problem] = info.value.problems
    assert problem.code == "unknown-rule"
    assert problem.what == "unknown rule 'at-most-in-day'; did you mean 'at-most-in-days'?"
    with pytest.raises(ProtocolError, match="did you mean 'fasting'"):
        parse_protocol(text.replace("at-most-in-day", "fastin"))


def test_without_the_plugin_its_rule_is_unknown(protocol_file: Callable[..., Path]) -> None:
    plugins.clear_cache()
    with pytest.raises(ProtocolError, match="unknown rule 'at-most-in-days'"):
        parse_protocol(protocol_file().read_text())


@pytest.mark.parametrize(
    ("given", "why"),
    [
        ([42], "rule_classes[0]: is not a rule class: it is an int, not a class"),
        ([dict], "rule_classes[0]: is not a rule class: dict lacks title"),
        ("fasting", "rule_classes: must be an iterable of rule classes, got str"),
        (Protocol, "rule_classes: must be an iterable of rule classes, got type"),
    ],
)
def test_rule_classes_refuses_what_is_not_a_rule_class_at_once(
    given: object, why: str, tmp_path: Path
) -> None:
    missing = tmp_path / "missing.toml"  # never read: the classes are refused first
    calls: list[Callable[[], object]] = [
        lambda: Protocol.from_dict({}, rule_classes=given),  # type: ignore[arg-type]
        lambda: parse_protocol("not toml [", rule_classes=given),  # type: ignore[arg-type]
        lambda: kaprules_load(missing, given),
    ]
    for call in calls:
        with pytest.raises(ProtocolError) as info:
            call()
        assert str(info.value.problems[0]).startswith(why)


def kaprules_load(path: Path, given: object) -> object:
    from kaprules import load_protocol

    return load_protocol(path, rule_classes=given)  # type: ignore[call-overload]


def test_rule_classes_takes_any_iterable() -> None:
    from kaprules import SessionSpacing

    class Wide(SessionSpacing):
        default_id = "wide-spacing"

    text = 'id = "c"\nversion = "1"\n[[rules]]\nid = "wide-spacing"\n'
    makers: list[Callable[[], Iterable[type[Any]]]] = [
        lambda: [Wide],
        lambda: (Wide,),
        lambda: {Wide},
        lambda: iter([Wide]),
        lambda: (c for c in [Wide]),
    ]
    for make in makers:
        assert type(Protocol.from_dict(tomllib.loads(text), rule_classes=make()).rules[0]) is Wide
        assert type(parse_protocol(text, rule_classes=make()).rules[0]) is Wide
    assert parse_protocol(text.replace("wide-", "session-"), rule_classes=None).rule_ids == (
        "session-spacing",
    )


def test_audit_workers_started_by_spawn_load_the_plugin_rule(
    installed: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import multiprocessing

    # Where there is no fork (macOS, Windows), workers unpickle the protocol: they must be
    # able to import the plugin's class too.
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    protocol = parse_protocol(PROTOCOL.format(sessions=2))
    data = tmp_path / "courses.jsonl"
    course = json.dumps(json.loads(COMPLIANT.read_text(encoding="utf-8")))
    data.write_text((course + "\n") * 3, encoding="utf-8")
    run = audit(read_records([str(data)]), protocol, jobs=2)
    assert [len(r.findings) for r in run] == [4, 4, 4]
    assert run.summary.to_dict()["rules"]["at-most-in-days"]["findings"] == 12


# --- the command line -----------------------------------------------------------------


def test_check_rules_explain_and_validate_with_a_plugin_protocol(
    installed: Path, protocol_file: Callable[..., Path], cli: Run
) -> None:
    lenient, strict = str(protocol_file(3)), str(protocol_file(2))
    assert cli("check", str(COMPLIANT), "--protocol", lenient)[0] == 0
    code, out, err = cli("check", str(COMPLIANT), "--protocol", strict, "--format", "json")
    assert (code, err) == (1, "")
    assert {f["rule"] for f in json.loads(out)["findings"]} == {"at-most-in-days"}
    code, out, _ = cli("rules", "--protocol", strict, "--format", "json")
    assert code == 0
    assert json.loads(out)["rules"][1]["statement"] == (
        "At most 2 sessions fall within any 7 local days."
    )
    code, out, _ = cli("explain", "at-most-in-days", "--protocol", strict)
    assert code == 0
    assert "No more than three sessions in any seven days." in out
    code, out, _ = cli("protocol", "validate", strict)
    assert (code, out.splitlines()[0]) == (0, "valid: acme version 1, 2 rules")
    code, out, _ = cli("protocol", "show", strict, "--format", "json")
    assert code == 0
    assert json.loads(out)["rules"][1]["parameters"] == {"sessions": 2, "days": 7}


def test_next_and_plan_take_a_plugin_protocol(
    installed: Path, protocol_file: Callable[..., Path], cli: Run
) -> None:
    # Scheduling reads the series' count, window and spacing from the protocol.
    text = PROTOCOL + '[[rules]]\nid = "treatment-window"\n[[rules]]\nid = "session-spacing"\n'
    path = str(protocol_file(3, text))
    course = str(EXAMPLES / "in-progress.json")
    for command in ("next", "plan"):
        code, out, err = cli(command, course, "--as-of", "2026-12-06", "--protocol", path)
        assert (code, err) == (0, ""), command
        assert out


def test_the_command_line_in_a_fresh_interpreter(
    site: Path, protocol_file: Callable[..., Path], tmp_path: Path
) -> None:
    strict = str(protocol_file(2))
    proc = kaprules_cli(site, "check", str(COMPLIANT), "--protocol", strict)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.count("at-most-in-days") == 4
    # Audit workers get the plugin's rule too.
    data = tmp_path / "courses.jsonl"
    course = json.dumps(json.loads(COMPLIANT.read_text(encoding="utf-8")))
    data.write_text((course + "\n") * 40, encoding="utf-8")
    proc = kaprules_cli(
        site, "audit", str(data), "--jobs", "2", "--protocol", strict, "--format", "json"
    )
    assert proc.returncode == 1, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["rules"]["at-most-in-days"] == {
        **summary["rules"]["at-most-in-days"],
        "courses": 40,
        "findings": 160,
    }


def test_rules_plugins_lists_them_with_their_distribution(site: Path) -> None:
    proc = kaprules_cli(site, "rules", "--plugins", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["group"] == "kaprules.rules"
    listed = {p["name"]: p for p in data["plugins"]}
    assert list(listed) == ["at-most-in-days", "broken-import", "not-a-class", "not-a-rule"]
    assert listed["at-most-in-days"] == {
        "name": "at-most-in-days",
        "value": "acme_kap_rules.rules:AtMostInDays",
        "distribution": "acme-kap-rules",
        "version": "1.0",
        "title": "At most a few sessions in any few days",
        "problem": None,
    }
    assert "cannot be imported: ModuleNotFoundError" in listed["broken-import"]["problem"]


def test_rules_plugins_as_text(installed: Path, cli: Run) -> None:
    code, out, _ = cli("rules", "--plugins")
    assert code == 0
    assert out.splitlines()[:4] == [
        "4 rule plugins installed (entry point group kaprules.rules):",
        "",
        "at-most-in-days: acme_kap_rules.rules:AtMostInDays (acme-kap-rules 1.0)",
        "  At most a few sessions in any few days",
    ]


def test_rules_plugins_without_any(cli: Run) -> None:
    plugins.clear_cache()
    code, out, _ = cli("rules", "--plugins")
    assert (code, out) == (0, "No rule plugins are installed (entry point group kaprules.rules).\n")
    code, _, err = cli("rules", "--plugins", "--protocol", "kap-standard@2")
    assert code == 2
    assert err.count("\n") == 1


@pytest.mark.parametrize("name", ["broken-import", "not-a-class", "not-a-rule"])
def test_a_broken_plugin_on_the_command_line_is_exit_2_and_one_line(
    installed: Path, tmp_path: Path, name: str, cli: Run
) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(f'id = "c"\nversion = "1"\n[[rules]]\nid = "{name}"\n', encoding="utf-8")
    for command in (
        ("protocol", "validate", str(path)),
        ("check", str(COMPLIANT), "--protocol", str(path)),
    ):
        code, out, err = cli(*command)
        assert (code, out) == (2, "")
        [line] = err.splitlines()
        assert line.startswith(f"kaprules: error: invalid protocol: rules[0].id: plugin '{name}' ")
        assert "entry point kaprules.rules: acme_kap_rules." in line


def test_a_broken_plugin_in_a_fresh_interpreter(site: Path, tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('id = "c"\nversion = "1"\n[[rules]]\nid = "broken-import"\n', "utf-8")
    proc = kaprules_cli(site, "rules", "--protocol", str(path), "--format", "json")
    assert proc.returncode == 2
    assert proc.stderr == (
        "kaprules: error: invalid protocol: rules[0].id: plugin 'broken-import' (entry point "
        "kaprules.rules: acme_kap_rules.missing:Nope, from acme-kap-rules 1.0) cannot be "
        "imported: ModuleNotFoundError: \"No module named 'acme_kap_rules.missing'\"\n"
    )
    assert json.loads(proc.stdout)["error"]["problems"][0]["code"] == "plugin"


def test_start_up_scans_no_distributions(site: Path) -> None:
    code = (
        "import sys, kaprules, kaprules.cli; "
        'kaprules.parse_protocol(\'id = "c"\\nversion = "1"\\n[[rules]]\\nid = "fasting"\\n\'); '
        f"print(sorted(m for m in ('importlib.metadata', {PACKAGE!r}) if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT / "src")])}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert proc.stdout.strip() == "[]"


BROKEN = ("broken-import", "not-a-class", "not-a-rule")


@settings(max_examples=40, suppress_health_check=[*SLOW, HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(("at-most-in-days", "fasting", *BROKEN)) | st.text(min_size=1, max_size=30)
)
def test_any_rule_name_builds_or_is_a_protocol_error(installed: Path, name: str) -> None:
    data = {"id": "c", "version": "1", "rules": [{"id": name}]}
    if name in ("at-most-in-days", "fasting"):
        assert Protocol.from_dict(data).rule_ids == (name,)
        return
    with pytest.raises(ProtocolError) as info:
        Protocol.from_dict(data)
    for problem in info.value.problems:
        assert problem.path[:2] == ("rules", 0)
        assert str(problem).isprintable()
    expected = "plugin" if name in BROKEN else "unknown-rule"
    assert [p.code for p in info.value.problems] == [expected]
