"""The design page's map of modules, held to the code."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "kaprules"
ROW = re.compile(r"^\| (\d+) \| `([\w.]+)` \| .+ \|$")


def layers() -> dict[str, int]:
    text = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    found = {m.group(2): int(m.group(1)) for m in map(ROW.match, text.splitlines()) if m}
    assert len(found) > 10, "the map's table was not found"
    return found


def modules() -> list[Path]:
    return sorted(PACKAGE.glob("*.py"))


def imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) of each module-level import from kaprules."""
    found = []
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("kaprules"):
            for alias in node.names:
                if node.module == "kaprules":
                    found.append((alias.name, ""))
                else:
                    found.append((node.module.split(".")[1], alias.name))
    return found


def all_imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) of every import from kaprules, function-local ones too."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("kaprules."):
            found += [(node.module.split(".")[1], a.name) for a in node.names]
    return found


def test_every_module_is_on_the_map() -> None:
    assert set(layers()) == {p.stem for p in modules()}


@pytest.mark.parametrize("path", modules(), ids=lambda p: p.stem)
def test_imports_flow_one_way(path: Path) -> None:
    table = layers()
    for module, _ in imports(path):
        if module != path.stem:
            assert table[module] < table[path.stem], f"{path.stem} imports {module}"


def private_imports(path: Path) -> list[str]:
    """Names with a leading underscore that ``path`` imports from other kaprules modules."""
    return [
        f"{module}.{name}"
        for module, name in all_imports(path)
        if module != path.stem and name.startswith("_") and name != "__version__"
    ]


@pytest.mark.parametrize("path", modules(), ids=lambda p: p.stem)
def test_no_private_name_crosses_a_module(path: Path) -> None:
    assert private_imports(path) == []


def test_the_scan_sees_a_private_import(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch.py"
    scratch.write_text(
        "from kaprules._time import zone\n"  # a public name of a private module: fine
        "def f():\n    from kaprules.model import _secret\n"
    )
    assert private_imports(scratch) == ["model._secret"]
