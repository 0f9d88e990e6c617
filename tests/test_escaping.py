"""Text from outside (users, plugins, files): one escaping policy, each output form in one place.

The plugins here are a real distribution written as files and put on ``sys.path`` (as in
test_plugins.py): a rule whose finding message holds a line break, escape codes and a lone
surrogate, and plugins that misbehave (an exception whose ``__str__`` raises, a descriptor
or metaclass that raises on the class, a constructor that raises).
"""

from __future__ import annotations

import copy
import csv
import gzip
import io
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kaprules import Protocol, ProtocolError, _text, protocol_schema
from kaprules import report as kaprules_report
from test_plugins import on_path, write_distribution

from conftest import EXAMPLES, ROOT

Run = Callable[..., tuple[int, str, str]]
COMPLIANT = EXAMPLES / "compliant.json"
PACKAGE = "escaping_rules"
MESSAGE = "bad\nerror   forged           [s9 2026-12-01] \x1b[31mred\x07\x9b2J \udfff"
# As a terminal line, and as a CSV cell, shows it.
SHOWN = r"bad error forged [s9 2026-12-01] \x1b[31mred\x07\x9b2J \udfff"
CELL = r"bad\nerror   forged           [s9 2026-12-01] \x1b[31mred\x07\x9b2J \udfff"

RULES_MODULE = '''
"""Rules that misbehave, for kaprules' tests."""

from typing import ClassVar

import attrs

from kaprules import BaseRule, Source

MESSAGE = "bad\\nerror   forged           [s9 2026-12-01] \\x1b[31mred\\x07\\x9b2J \\udfff"


@attrs.frozen(repr=False)
class Loud(BaseRule):
    """A finding message with a line break, escape codes and a lone surrogate."""

    default_id: ClassVar[str] = "loud"
    title: ClassVar[str] = "Loud"
    rationale: ClassVar[str] = "Tests."
    source: ClassVar[Source] = Source("q", "d", "l")
    names: ClassVar[str] = "The first session."

    @property
    def statement(self) -> str:
        return "Loud."

    def __call__(self, timeline):
        for t in timeline.sessions[:1]:
            yield self.finding((t,), MESSAGE)


class Raising:
    def __get__(self, instance, owner=None):
        raise RuntimeError("descriptor")


@attrs.frozen(repr=False)
class Descriptor(Loud):
    """Its statement raises when read on the class."""

    default_id: ClassVar[str] = "descriptor"
    statement = Raising()


class Meta(type(Loud)):
    def __getattribute__(cls, name):
        if name in ("__mro__", "__name__"):
            raise RuntimeError("metaclass")
        return super().__getattribute__(name)


class Metaclass(Loud, metaclass=Meta):
    """Its metaclass raises when the class is read."""


@attrs.frozen(repr=False)
class Constructor(Loud):
    """Its constructor raises an exception whose text cannot be read."""

    default_id: ClassVar[str] = "constructor"

    def __attrs_post_init__(self):
        from escaping_rules.boom import Unreadable

        raise Unreadable()
'''

BOOM_MODULE = '''
class Unreadable(Exception):
    """An exception whose text cannot be read."""

    def __str__(self):
        raise RuntimeError("no text")
'''

ENTRY_POINTS = """\
[kaprules.rules]
loud = escaping_rules.rules:Loud
boom = escaping_rules.raising:Nope
descriptor = escaping_rules.rules:Descriptor
metaclass = escaping_rules.rules:Metaclass
constructor = escaping_rules.rules:Constructor
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    modules = {
        f"{PACKAGE}/__init__.py": "",
        f"{PACKAGE}/rules.py": RULES_MODULE,
        f"{PACKAGE}/boom.py": BOOM_MODULE,
        # A module that raises, on import, an exception whose __str__ raises.
        f"{PACKAGE}/raising.py": "from escaping_rules.boom import Unreadable\nraise Unreadable()\n",
    }
    root = tmp_path_factory.mktemp("escaping-site")
    return write_distribution(root, PACKAGE, "1.0", ENTRY_POINTS, modules)


@pytest.fixture
def installed(site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    yield from on_path(site, monkeypatch, PACKAGE)


def protocol_of(tmp_path: Path, rule: str) -> str:
    path = tmp_path / f"{rule}.toml"
    path.write_text(f'id = "c"\nversion = "1"\n[[rules]]\nid = "{rule}"\n', encoding="utf-8")
    return str(path)


# --- 1. terminal text -----------------------------------------------------------------


def test_check_text_escapes_a_plugin_message(installed: Path, tmp_path: Path, cli: Run) -> None:
    protocol = protocol_of(tmp_path, "loud")
    code, out, _ = cli("check", str(COMPLIANT), "--protocol", protocol)
    assert code == 1
    finding, summary = out.splitlines()  # no forged line
    assert summary.startswith("FAIL: 1 error")
    assert finding.endswith(SHOWN)
    assert not re.search("[\x1b\x07\x9b]", out)
    # JSON keeps the message exact, with its own escapes (a C1 control too), but for the
    # lone surrogate, which standard output cannot hold either: the text \udfff.
    code, out, _ = cli("check", str(COMPLIANT), "--protocol", protocol, "--format", "json")
    assert not re.search("[\x1b\x07\x9b]", out)
    message = json.loads(out)["findings"][0]["message"]
    assert message == MESSAGE.replace("\udfff", "\\udfff")


def test_terminal_escapes_what_is_not_printable() -> None:
    assert _text.terminal("a\n\tb  c") == "a b c"
    assert _text.terminal("\x1b[2J\x07\x9b\u2028x\udfff é") == r"\x1b[2J\x07\x9b x\udfff é"


# --- 2. files: JSON Lines, CSV, HTML, with lone surrogates ----------------------------


@pytest.mark.parametrize("engine", ["records", "columnar"])
def test_audit_files_hold_lone_surrogates_escaped(
    installed: Path, tmp_path: Path, cli: Run, engine: str
) -> None:
    if engine == "columnar":
        pytest.importorskip("polars", reason="the columnar engine needs: pip install '.[columnar]'")
    data = tmp_path / "courses.jsonl"
    course = json.loads(COMPLIANT.read_text(encoding="utf-8"))
    # A course whose id holds C1 controls (raw: JSON needs no escape for them), and a
    # rejected record whose course id holds a lone surrogate, as JSON text escapes it.
    lines = [json.dumps(course), json.dumps({**course, "id": "a\x85\x9b"}, ensure_ascii=False)]
    lines.append('{"id": "c\\udfff", "sessions": []}')
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    protocol = protocol_of(tmp_path, "loud")
    jsonl, table, page = tmp_path / "f.jsonl", tmp_path / "f.csv", tmp_path / "r.html"
    for findings in (jsonl, table):
        args = ("audit", str(data), "--engine", engine, "--protocol", protocol)
        code, _, err = cli(*args, "--findings", str(findings), "--html", str(page))
        # A custom rule has no vectorised form: the columnar engine says it goes per record.
        assert code == 1
        assert err.startswith("kaprules: note: ") if engine == "columnar" else err == ""
    text = jsonl.read_text("utf-8")
    assert not re.search("[\x1b\x07\x85\x9b]", text)
    found, c1, rejected = [json.loads(line) for line in text.splitlines()]
    assert found["message"] == c1["message"] == MESSAGE.replace("\udfff", "\\udfff")
    assert c1["course"] == "a\x85\x9b"  # exact, through JSON's escapes
    assert rejected["course"] == "c\\udfff"
    rows = list(csv.reader(io.StringIO(table.read_text("utf-8"))))
    assert [row[1] for row in rows[1:]] == ["", r"a\x85\x9b", r"c\udfff"]
    assert rows[1][5] == rows[2][5] == CELL
    html = page.read_text("utf-8")
    assert SHOWN.split("] ")[1] in html
    assert not re.search("[\x1b\x07\x85\x9b]", html)


def test_each_form_escapes_controls_and_surrogates() -> None:
    assert _text.json_text('["c\udfff\x9b\x7f\u2028"]') == '["c\\\\udfff\\u009b\\u007f\u2028"]'
    assert json.loads(_text.json_text(json.dumps(["\x85"], ensure_ascii=False))) == ["\x85"]
    assert _text.csv_cell("=c\udfff\x1b\n") == "'=c\\udfff\\x1b\\n"
    assert _text.csv_cell("\tx") == "\\tx"  # escaped: no longer a formula's start
    assert _text.html("a\x1b\tb\udfff") == "a\\x1b\tb\\udfff"
    assert _text.file_name("a\udcffb\x1b.jsonl") == "a\\xffb\\x1b.jsonl"


# --- 3. plugins that misbehave --------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("boom", "cannot be imported: Unreadable"),
        ("descriptor", "is not a rule class: reading Descriptor.statement on the class raised "),
        ("metaclass", "is not a rule class: reading the class raised RuntimeError: 'metaclass'"),
        ("constructor", ": cannot be built: Unreadable"),
    ],
)
def test_a_misbehaving_plugin_is_exit_2_naming_its_entry_point(
    installed: Path, tmp_path: Path, cli: Run, name: str, why: str
) -> None:
    protocol = protocol_of(tmp_path, name)
    for command in (
        ("protocol", "validate", protocol),
        ("check", str(COMPLIANT), "--protocol", protocol),
    ):
        code, out, err = cli(*command)
        assert (code, out) == (2, "")
        [line] = err.splitlines()
        assert f"plugin '{name}' (entry point kaprules.rules: escaping_rules." in line
        assert why in line
    code, out, _ = cli("rules", "--plugins", "--format", "json")
    assert code == 0
    [entry] = [p for p in json.loads(out)["plugins"] if p["name"] == name]
    if name != "constructor":  # its class is sound: only building a rule fails
        assert f"plugin '{name}' (entry point" in entry["problem"]


# --- 4. Markdown ----------------------------------------------------------------------

CLINIC = """\
id = "clinic"
version = "1"
[[rules]]
id = "fasting"
rationale = "<script>alert(1)</script> [x](javascript:alert(1)) https://example.org/kap."
[rules.source]
text = "<img src=x onerror=alert(2)>"
document = "![i](javascript:alert(3))"
location = "<a href='javascript:alert(4)'>here</a>"
note = "# heading | cell & `code`"
"""


def test_explain_markdown_escapes_a_clinics_text(tmp_path: Path, cli: Run) -> None:
    path = tmp_path / "clinic.toml"
    path.write_text(CLINIC, encoding="utf-8")
    code, out, _ = cli("explain", "fasting", "--format", "markdown", "--protocol", str(path))
    assert code == 0
    assert "<script" not in out
    assert "<img" not in out
    assert "<a " not in out
    assert not re.search(r"(?<!\\)\]\(javascript:", out)  # every "]" before it escaped
    assert "&lt;script&gt;alert(1)&lt;/script&gt; \\[x\\](javascript:alert(1))" in out
    assert "<https://example.org/kap>." in out  # only an http(s) URL becomes a link
    assert "\n&#35; heading &#124; cell &amp; \\`code\\`\n" in out
    markdown = pytest.importorskip("markdown", reason="rendering needs: pip install '.[docs]'")
    html = markdown.markdown(out, extensions=["tables"])
    assert "<script" not in html
    assert "<img" not in html
    assert "javascript:alert" not in re.findall(r'href="([^"]*)"', html)
    assert re.findall(r'href="([^"]*)"', html) == ["https://example.org/kap"]
    # The text form shows the clinic's words as written.
    code, out, _ = cli("explain", "fasting", "--protocol", str(path))
    assert "<script>alert(1)</script> [x](javascript:alert(1))" in out


# --- 5. the protocol schema states the loader's text rules ----------------------------

BASE: dict[str, Any] = {
    "id": "p",
    "version": "1",
    "title": "t",
    "citation": "c",
    "rules": [
        {"id": "fasting", "rationale": "r", "source": {"text": "q", "document": "d"}},
    ],
}
LINES: list[tuple[tuple[str | int, ...], int]] = [
    (("id",), _text.LINE_LIMIT),
    (("version",), _text.LINE_LIMIT),
    (("title",), _text.LINE_LIMIT),
    (("citation",), _text.LINE_LIMIT),
    (("rules", 0, "rationale"), _text.RATIONALE_LIMIT),
    *((("rules", 0, "source", f), _text.LINE_LIMIT) for f in ("text", "document", "location")),
    (("rules", 0, "source", "note"), _text.LINE_LIMIT),
]


def _with(path: tuple[str | int, ...], value: object) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    here: Any = data
    for step in path[:-1]:
        here = here[step]
    here[path[-1]] = value
    return data


def _refusals() -> Iterator[tuple[str, dict[str, Any]]]:
    for path, limit in LINES:
        where = ".".join(map(str, path))
        for bad in ("a\nb", "a\x1bb", "   ", "", "a\u2028b", "\xa0", "x" * (limit + 1)):
            yield f"{where}={bad[:8]!r}", _with(path, bad)
    for bad in ("x y", "a" * 2000, "Fasting", "fasting\n", ""):
        yield f"rules.0.id={bad[:8]!r}", _with(("rules", 0, "id"), bad)
        rule = {"id": bad, "rule": "fasting"}
        yield f"rules.0.id={bad[:8]!r} (rule=fasting)", _with(("rules", 0), rule)
    for bad in ("2026-12-01\n", "2026-12-1", "2026-12-01T00:00"):
        yield f"effective={bad!r}", _with(("effective",), bad)


VALIDATOR = jsonschema.Draft202012Validator(protocol_schema())
REFUSALS = list(_refusals())


@pytest.mark.parametrize("data", [d for _, d in REFUSALS], ids=[n for n, _ in REFUSALS])
def test_the_schema_refuses_what_the_loader_refuses(data: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError):
        Protocol.from_dict(data)
    assert not VALIDATOR.is_valid(data)


def test_the_schema_takes_the_base_and_integer_versions() -> None:
    assert Protocol.from_dict(BASE).id == "p"
    assert VALIDATOR.is_valid(BASE)
    assert VALIDATOR.is_valid(_with(("version",), 3))


def test_the_unprintable_class_is_exact_on_the_basic_multilingual_plane() -> None:
    import unicodedata

    named = re.compile(f"[{_text.UNPRINTABLE}]")
    for code in range(0x10000):
        char = chr(code)
        if unicodedata.category(char) == "Cs":
            continue
        if named.match(char):
            assert not char.isprintable(), hex(code)  # never refuses what the loader takes
        elif unicodedata.category(char) != "Cn":
            assert char.isprintable(), hex(code)  # names every assigned one it refuses


TITLE = jsonschema.Draft202012Validator(protocol_schema()["properties"]["title"])


@settings(max_examples=40)
@given(st.text(max_size=12))
def test_the_schema_takes_what_the_loader_takes(value: str) -> None:
    if _text.is_line(value):
        assert TITLE.is_valid(value)


# --- 6. gzip findings -----------------------------------------------------------------


@pytest.mark.parametrize("engine", ["records", "columnar"])
def test_gz_findings_are_gzip(tmp_path: Path, cli: Run, engine: str) -> None:
    if engine == "columnar":
        pytest.importorskip("polars", reason="the columnar engine needs: pip install '.[columnar]'")
    data = EXAMPLES / "audit" / "courses.jsonl"
    for form in ("csv", "jsonl"):
        plain, packed = tmp_path / f"f.{form}", tmp_path / f"f.{form}.GZ"
        for out in (plain, packed):
            code, _, err = cli("audit", str(data), "--engine", engine, "--findings", str(out))
            assert (code, err) == (1, "")
        assert gzip.decompress(packed.read_bytes()) == plain.read_bytes()
        assert plain.read_text("utf-8").startswith("line," if form == "csv" else "{")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "f.csv",
        "f.csv.GZ",
        "f.jsonl",
        "f.jsonl.GZ",
    ]


# --- 7, 8. one documentation URL ------------------------------------------------------


def test_html_links_a_renamed_rule_where_its_help_points(tmp_path: Path, cli: Run) -> None:
    lakeside = EXAMPLES / "protocols" / "lakeside-kap.toml"
    page = tmp_path / "r.html"
    code, _, err = cli(
        "audit", str(EXAMPLES / "audit" / "courses.jsonl"), "--protocol", str(lakeside),
        "--html", str(page), "--docs-url", "https://docs.example/kap",
    )  # fmt: skip
    assert err == ""
    assert code in (0, 1)
    html = page.read_text("utf-8")
    row = re.search(r'<a href="([^"]*)"><code>escort-booster</code>', html)
    assert row is not None
    booster = Protocol.from_dict(_toml(lakeside)).rule("escort-booster")
    assert row.group(1) == "https://docs.example/kap/" + booster.help.url  # type: ignore[attr-defined]
    assert "#escort-booster" not in row.group(1)


def _toml(path: Path) -> dict[str, Any]:
    import tomllib

    return tomllib.loads(path.read_text(encoding="utf-8"))


def test_the_docs_url_setting_gives_the_html_report_its_links(
    tmp_path: Path, cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kaprules_report, "DOCS_URL", "https://set.example/")
    page = tmp_path / "r.html"
    cli("audit", str(EXAMPLES / "audit" / "courses.jsonl"), "--html", str(page))
    assert '<a href="https://set.example/rules/#fasting">' in page.read_text("utf-8")


def test_kaprules_docs_url_makes_every_help_url_absolute(
    tmp_path: Path, cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The setting starts as the environment variable (read when kaprules.report is first
    # imported; here it was, so the reading is asked again).
    monkeypatch.setenv("KAPRULES_DOCS_URL", "https://docs.example/kap")
    base = kaprules_report._docs_url_of_environment()
    assert base == "https://docs.example/kap/"
    monkeypatch.setattr(kaprules_report, "DOCS_URL", base)
    late = json.loads(COMPLIANT.read_text(encoding="utf-8"))
    late["sessions"][0]["last_food"] = late["sessions"][0]["start"]
    path = tmp_path / "late.json"
    path.write_text(json.dumps(late), encoding="utf-8")
    code, out, _ = cli("check", str(path), "--format", "json")
    assert code == 1
    [finding] = json.loads(out)["findings"]
    assert finding["help"]["url"] == "https://docs.example/kap/rules/#fasting"
    # Anything else is refused by the command line, and ignored by the library.
    monkeypatch.setenv("KAPRULES_DOCS_URL", "javascript:alert(1)")
    assert kaprules_report._docs_url_of_environment() == ""
    code, out, err = cli("check", str(path))
    assert (code, out) == (2, "")
    assert err.startswith("kaprules: error: KAPRULES_DOCS_URL: 'javascript:alert(1)' is not ")
    assert err.count("\n") == 1


# --- 9. small truths ------------------------------------------------------------------


def test_a_blank_escort_reads_the_same_from_csv_and_json_lines(tmp_path: Path, cli: Run) -> None:
    course = json.loads(COMPLIANT.read_text(encoding="utf-8"))
    course["sessions"] = course["sessions"][:1]
    course["sessions"][0]["escort"] = ""
    lines = tmp_path / "c.jsonl"
    lines.write_text(json.dumps(course) + "\n", encoding="utf-8")
    table = tmp_path / "c.csv"
    s = course["sessions"][0]
    table.write_text(
        "course_id,timezone,session_id,kind,start,last_food,escort\n"
        f"c1,{course['timezone']},{s['id']},{s['kind']},{s['start']},{s['last_food']},\n",
        encoding="utf-8",
    )
    messages = []
    for path in (lines, table):
        out = tmp_path / f"{path.name}.findings.jsonl"
        cli("audit", str(path), "--findings", str(out))
        rows = [json.loads(r) for r in out.read_text("utf-8").splitlines()]
        messages.append([r["message"] for r in rows if r["rule"] == "escort"])
    assert messages[0] == messages[1]
    assert "has a blank escort" in messages[0][0]


def test_install_lines_name_a_checkout() -> None:
    for page in [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]:
        text = page.read_text(encoding="utf-8")
        assert not re.search(r"pip install '?kaprules\[", text), page.name


# The files whose install hints say where kaprules comes from: a checkout, not an index.
HINTED = [
    "auditing/__init__.py",
    "calendar.schema.json",
    "cli/_arguments.py",
    "cli/_audit.py",
    "cli/_scheduling.py",
    "clinic_calendar.py",
    "fhir.py",
    "planning.py",
    "strategies.py",
]


@pytest.mark.parametrize("name", HINTED)
def test_install_hints_name_a_checkout(name: str) -> None:
    text = (ROOT / "src" / "kaprules" / name).read_text(encoding="utf-8")
    assert "pip install '.[" in text
    assert not re.search(r"kaprules\[", text)
