"""Start-up: which modules `import kaprules` and `kaprules check` load (not how long they take).

Each check runs a fresh interpreter, since this test process has imported everything.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import kaprules

ROOT = Path(__file__).resolve().parents[1]
INIT = ROOT / "src" / "kaprules" / "__init__.py"
COMPLIANT = ROOT / "examples" / "compliant.json"

# Not loaded by `kaprules check`: the audit machinery, other commands' modules, the extras,
# the test helpers, and what the standard library makes slow to import.
NEVER = (
    "concurrent.futures",
    "cryptography",
    "dask",
    "difflib",
    "fhir",
    "hashlib",
    "hypothesis",
    "icalendar",
    "importlib.metadata",
    "importlib.resources",
    "jinja2",
    "jwt",
    "kaprules.audit_html",
    "kaprules.auditing",
    "kaprules.dask",
    "kaprules.explanation",
    "kaprules.fhir",
    "kaprules.forecasting",
    "kaprules.planning",
    "kaprules.serve",
    "kaprules.strategies",
    "logging",
    "multiprocessing",
    "pendulum",
    "pydantic",
    "starlette",
    "tqdm",
    "uvicorn",
)


def loaded_by(code: str) -> set[str]:
    """The modules a fresh interpreter has after running ``code`` beyond a bare one's."""
    show = "\nimport sys\nprint('\\n'.join(sys.modules))"

    def modules(source: str) -> set[str]:
        proc = subprocess.run(
            [sys.executable, "-c", source + show],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        return set(proc.stdout.split())

    return modules(code) - modules("")


def test_import_kaprules_loads_only_its_version() -> None:
    assert loaded_by("import kaprules") == {"kaprules", "kaprules._version"}


def test_check_loads_no_audit_export_or_test_code_and_lists_no_zones() -> None:
    code = (
        "import contextlib, io, kaprules.cli, kaprules._time as t\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    assert kaprules.cli.main(['check', {str(COMPLIANT)!r}]) == 0\n"
        "assert t.zone_names.cache_info().currsize == 0, 'zone names listed'\n"
    )
    loaded = loaded_by(code)
    assert {"kaprules.loading", "kaprules.protocol", "kaprules._time"} <= loaded
    assert sorted(loaded.intersection(NEVER)) == []


def test_the_lazy_table_matches_the_typing_imports_and_all() -> None:
    # Three spellings of one list (what type checkers read, what runs, what is exported).
    tree = ast.parse(INIT.read_text(encoding="utf-8"))
    block = next(
        n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING"
    )
    typed = {
        alias.name: node.module
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    lazy = {name: f"kaprules.{module}" for name, module in kaprules._MODULE_OF.items()}
    assert typed == lazy
    assert sorted(lazy) == sorted(set(kaprules.__all__) - {"__version__"})


def test_every_exported_name_resolves_to_its_module_object_in_a_fresh_interpreter() -> None:
    code = (
        "import importlib, kaprules\n"
        "from kaprules import *\n"
        "for name, module in kaprules._MODULE_OF.items():\n"
        "    defined = importlib.import_module('kaprules.' + module)\n"
        "    assert globals()[name] is getattr(defined, name)\n"
        "assert set(kaprules.__all__) <= set(dir(kaprules))\n"
        "print(len(kaprules.__all__))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert proc.stdout.strip() == str(len(kaprules.__all__))


def test_dir_lists_public_names_before_their_first_use() -> None:
    code = "import kaprules\nprint(' '.join(dir(kaprules)))"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert set(kaprules.__all__) <= set(proc.stdout.split())


def test_an_unknown_name_is_an_attribute_error_and_a_submodule_still_imports() -> None:
    with pytest.raises(AttributeError, match="no attribute 'evaluat'"):
        _ = kaprules.evaluat  # type: ignore[attr-defined]
    with pytest.raises(ImportError):
        exec("from kaprules import evaluat")
    from kaprules import _toml

    assert _toml.__name__ == "kaprules._toml"


def test_the_start_up_benchmark_times_all_three_commands(
    capsys: pytest.CaptureFixture[str],
) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import bench_startup  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    status = bench_startup.main(["--rounds", "1"])
    lines = capsys.readouterr().out.splitlines()
    assert status in (0, 1)  # 1: a goal missed, as a loaded machine may
    assert [line.split()[0] for line in lines[2:]] == ["bare", "import", "kaprules"]
