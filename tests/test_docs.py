"""The documentation cannot rot: its code runs, its outputs are real, its pages are complete."""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kaprules import STANDARD, explain, parse_course
from kaprules.cli import build_parser, main

from check_links import broken_links
from conftest import ROOT, SITE_ENV

DOCS = ROOT / "docs"
FENCE = re.compile(r"^```(?P<info>[^\n`]*)\n(?P<body>.*?)^```\s*$", re.S | re.M)
PAGES = sorted(DOCS.glob("*.md"))


def fences(path: Path) -> list[tuple[str, str, dict[str, str]]]:
    """(language, body, attributes) of each fenced block of a Markdown file."""
    found = []
    for match in FENCE.finditer(path.read_text(encoding="utf-8")):
        info = match["info"].strip()
        language = info.split(" ", 1)[0]
        attrs = dict(re.findall(r'(\w+)="([^"]*)"', info))
        found.append((language, match["body"], attrs))
    return found


def run_python_blocks(path: Path) -> dict[str, str]:
    """Run a page's python blocks as the docs build does (a namespace per session); the output."""
    namespaces: dict[str, dict[str, object]] = {}
    outputs: dict[str, str] = {}
    for index, (language, body, attrs) in enumerate(fences(path)):
        if language != "python":
            continue
        session = attrs.get("session", f"block-{index}")
        namespace = namespaces.setdefault(session, {"__name__": f"docs_{path.stem}"})
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            exec(compile(body, f"{path.name}[{index}]", "exec"), namespace)
        outputs[f"{path.name}[{index}]"] = buffer.getvalue()
    return outputs


@pytest.fixture(autouse=True)
def _at_the_root(monkeypatch: pytest.MonkeyPatch) -> None:
    # The docs are built from the repository root; their paths (examples/...) are relative to it.
    monkeypatch.chdir(ROOT)


@pytest.mark.parametrize("page", [*PAGES, ROOT / "README.md"], ids=lambda p: p.name)
def test_every_python_block_runs(page: Path) -> None:
    if any("import dask" in body for language, body, _ in fences(page) if language == "python"):
        pytest.importorskip("dask.bag", reason=f"{page.name} runs Dask: pip install '.[dask]'")
    if any("kaprules.fhir" in body for language, body, _ in fences(page) if language == "python"):
        pytest.importorskip("fhir.resources", reason=f"{page.name} needs pip install '.[fhir]'")
    outputs = run_python_blocks(page)
    blocks = [f for f in fences(page) if f[0] == "python"]
    # Each block ran, and each that prints (and so shows a result on the page) printed.
    for (key, printed), (_, body, attributes) in zip(outputs.items(), blocks, strict=True):
        if "print(" in body and attributes.get("result", "text") != "none":
            assert printed.strip(), f"{key} printed nothing"


def test_guide_has_runnable_code_for_every_task() -> None:
    outputs = run_python_blocks(DOCS / "guide.md")
    text = "".join(outputs.values())
    assert "no-weekends ('s3',)" in text  # the custom rule ran beside the standard ones
    assert "True" in text  # the protocol round-tripped through plain data
    assert "session 's9'.start -> naive datetime" in text


def test_readme_output_is_what_the_code_prints() -> None:
    blocks = fences(ROOT / "README.md")
    python = next(i for i, b in enumerate(blocks) if b[0] == "python")
    shown = blocks[python + 1]
    assert shown[0] == "text"
    [printed] = run_python_blocks(ROOT / "README.md").values()
    assert printed == shown[1]


def test_readme_starts_with_the_two_set_up_commands() -> None:
    first = fences(ROOT / "README.md")[0]
    assert first[0] == "sh"
    assert first[1].splitlines() == [
        "pip install . && kaprules check examples/compliant.json",
        "pip install '.[test]' && pytest",
    ]
    assert main(["check", "examples/compliant.json"]) == 0


def console_blocks() -> list[tuple[str, str, int]]:
    found = []
    for page in PAGES:
        for language, body, attrs in fences(page):
            if language == "console" and attrs.get("exec"):
                for line in body.splitlines():
                    if line.startswith("$ "):
                        found.append((page.name, line[2:], int(attrs.get("returncode", "0"))))
    return found


@pytest.mark.slow
def test_console_examples_ran_as_documented(site: Path) -> None:
    # The build runs every console example and fails (--strict) on an exit status other
    # than the block's returncode; what it printed is on the page: never a traceback.
    assert console_blocks()
    for page in PAGES:
        built = site / ("index.html" if page.stem == "index" else f"{page.stem}/index.html")
        assert "Traceback (most recent call last)" not in built.read_text(encoding="utf-8")


def test_the_cli_page_shows_defaults_not_format_strings() -> None:
    # The page renders each option's help from the parser, as --help expands it.
    text = "".join(run_python_blocks(DOCS / "cli.md").values())
    assert "%(" not in text
    assert "default: kap-standard@1" in text
    assert "(default: 67108864, 64 MiB)" in text


def test_cli_examples_cover_every_command() -> None:
    documented = {shlex.split(c)[1] for _, c, _ in console_blocks() if c.startswith("kaprules ")}
    commands = next(a for a in build_parser()._actions if a.dest == "command")
    assert documented == set(commands.choices)  # type: ignore[arg-type]


def test_explain_command_prints_the_auditor_text(capsys: pytest.CaptureFixture[str]) -> None:
    for rule in STANDARD.rules:
        assert main(["explain", rule.id, "--format", "markdown"]) == 0
        assert capsys.readouterr().out == explain(rule)
        assert main(["explain", rule.id]) == 0
        text = capsys.readouterr().out
        assert text == explain(rule, format="text")
        assert "**" not in text
        assert "`" not in text
        assert rule.title in text


def test_explain_is_complete_and_its_examples_are_real() -> None:
    for rule in STANDARD.rules:
        text = explain(rule)
        for part in (rule.title, rule.statement, rule.rationale, rule.source.quote, rule.names):
            assert part in text
        assert "**Passing example" in text
        assert "No finding." in text
        assert f'"rule": "{rule.id}"' in text  # the failing example's real finding


def test_schema_and_example_pages_include_the_shipped_files() -> None:
    page = (DOCS / "input-format.md").read_text(encoding="utf-8")
    assert '--8<-- "src/kaprules/course.schema.json"' in page
    assert '--8<-- "examples/compliant.json"' in page
    assert (DOCS / "changelog.md").read_text(encoding="utf-8").strip() == '--8<-- "CHANGELOG.md"'


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    # Built once for the whole run: pytest-xdist workers share the build under a lock
    # (the pattern of the pytest-xdist docs) instead of each building the site again.
    # The docs toolchain is the docs extra's, not the test extra's: without it, skipped.
    pytest.importorskip(
        "mkdocs", reason="building the docs needs the docs extra: pip install '.[docs]'"
    )
    if shutil.which("mkdocs", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("building the docs needs the docs extra: pip install '.[docs]'")
    started = os.environ.get(SITE_ENV)
    if started is not None:
        return _waited_for(Path(started))
    shared = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        shared = shared.parent
    out = shared / "built-site"
    with open(shared / "built-site.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / "index.html").exists():
            build_site(out)
    return out


def _waited_for(where: Path) -> Path:
    # The build conftest started in the background: wait for its status, then check it.
    deadline = time.monotonic() + 600
    while not (where / "status").exists():
        if time.monotonic() > deadline:
            pytest.fail("the background docs build did not end within 10 minutes")
        time.sleep(0.2)
    status = (where / "status").read_text().strip()
    log = (where / "log").read_text(errors="replace")
    assert status == "0", log[-3000:]
    return where / "site"


def build_site(out: Path) -> None:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "NO_MKDOCS_2_WARNING": "1",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.slow
def test_built_rules_page_has_a_section_for_every_rule(site: Path) -> None:
    html = (site / "rules" / "index.html").read_text(encoding="utf-8")
    for rule in STANDARD.rules:
        assert f'<h2 id="{rule.id}">' in html
        # Statements are rendered from the parameters at build time.
        assert rule.statement.split(":")[0] in html


@pytest.mark.slow
def test_finding_help_points_at_a_real_anchor(site: Path) -> None:
    course = parse_course((ROOT / "examples" / "violations.json").read_text())
    from kaprules import evaluate

    for finding in evaluate(course).to_dict()["findings"]:
        assert finding["help"]["command"] == f"kaprules explain {finding['rule']}"
        page, fragment = finding["help"]["url"].split("#")
        assert f'id="{fragment}"' in (site / page / "index.html").read_text(encoding="utf-8")


@pytest.mark.slow
def test_built_site_has_every_page_and_public_name(site: Path) -> None:
    for page in PAGES:
        target = site / ("index.html" if page.stem == "index" else f"{page.stem}/index.html")
        assert target.exists(), page
    reference = (site / "reference" / "index.html").read_text(encoding="utf-8")
    import kaprules

    for name in kaprules.__all__:
        if name != "__version__":
            assert f'id="kaprules.{name}"' in reference, name
    assert "Method generated by attrs" not in reference


@pytest.mark.slow
def test_every_internal_link_and_anchor_of_the_built_site_exists(site: Path) -> None:
    assert broken_links(site) == []


def test_the_link_checker_finds_a_broken_link(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text(
        '<a href="rules/#fasting">x</a><a href="#top">y</a><h1 id="top"></h1>'
    )
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "index.html").write_text('<h2 id="escort"></h2>')
    assert broken_links(tmp_path) == ["index.html: rules/#fasting (no such anchor)"]


@pytest.mark.slow
def test_the_reference_renders_docstrings_not_their_markup(site: Path) -> None:
    reference = (site / "reference" / "index.html").read_text(encoding="utf-8")
    text = re.sub(r"<[^>]+>", " ", reference)
    # Inspected class constants once showed Python's own str docstring.
    assert "str(object=" not in text
    # A named tuple's fields once showed Python's own "Alias for field number 0".
    assert "Alias for field number" not in text
    # reST double backticks left unrendered.
    assert "``" not in text
    # A Returns section split into one row per line.
    assert 'class="doc-section-item"' not in reference or not re.search(
        r"Returns:.{0,400}?Returns:", text
    )
    # Private classes in Bases.
    assert "kaprules.errors._" not in text
    # Each enum member is described once, not with its class's docstring again.
    assert text.count("How much a finding matters") == 1
    assert text.count("The course breaks the protocol") == 1
