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
    return sorted([*PACKAGE.glob("*.py"), *PACKAGE.glob("*/*.py")])


def name_of(path: Path) -> str:
    """``cli._run`` for src/kaprules/cli/_run.py, ``cli`` for its ``__init__``."""
    if not path.is_relative_to(PACKAGE):
        return path.stem
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)


def imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) of each module-level import from kaprules."""
    found = []
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("kaprules"):
            for alias in node.names:
                if node.module == "kaprules":
                    found.append((alias.name, ""))
                else:
                    found.append((node.module.split(".", 1)[1], alias.name))
    return found


def all_imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) of every import from kaprules, function-local ones too."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("kaprules."):
            found += [(node.module.split(".", 1)[1], a.name) for a in node.names]
    return found


def test_every_module_is_on_the_map() -> None:
    assert set(layers()) == {name_of(p) for p in modules()}


@pytest.mark.parametrize("path", modules(), ids=name_of)
def test_imports_flow_one_way(path: Path) -> None:
    table = layers()
    me = name_of(path)
    for module, _ in imports(path):
        if module != me:
            assert table[module] < table[me], f"{me} imports {module}"


def private_imports(path: Path) -> list[str]:
    """Names with a leading underscore that ``path`` imports from other kaprules modules."""
    return [
        f"{module}.{name}"
        for module, name in all_imports(path)
        if module != name_of(path) and name.startswith("_") and name != "__version__"
    ]


@pytest.mark.parametrize("path", modules(), ids=name_of)
def test_no_private_name_crosses_a_module(path: Path) -> None:
    assert private_imports(path) == []


def test_the_scan_sees_a_private_import(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch.py"
    scratch.write_text(
        "from kaprules._time import zone\n"  # a public name of a private module: fine
        "def f():\n    from kaprules.model import _secret\n"
    )
    assert private_imports(scratch) == ["model._secret"]
