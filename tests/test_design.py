"""The design page's map of modules, held to the code.

The scan reads every import from kaprules a module makes, wherever it is written: at module
level, inside a function, under ``if TYPE_CHECKING:``, as ``import kaprules.x as y``, as
``from kaprules import x`` (a submodule), in the relative forms, and as a call of
``importlib.import_module`` or ``__import__`` with a constant name. A module may import only
from a lower layer of the map (a smaller number), so the graph of modules has no circle; a
second check finds circles on its own, and names them, so that a circle is reported as one
even where the map has been edited to allow its arrows.
"""

from __future__ import annotations

import ast
import functools
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "kaprules"
ROW = re.compile(r"^\| (\d+) \| `([\w.]+)` \| .+ \|$")


@functools.cache
def layers() -> dict[str, int]:
    text = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    found = {m.group(2): int(m.group(1)) for m in map(ROW.match, text.splitlines()) if m}
    assert len(found) > 10, "the map's table was not found"
    return found


def modules() -> list[Path]:
    """Every module of the package, in subpackages at any depth."""
    return sorted(PACKAGE.rglob("*.py"))


def name_of(path: Path) -> str:
    """``cli._run`` for src/kaprules/cli/_run.py, ``cli`` for its ``__init__``."""
    if not path.is_relative_to(PACKAGE):
        return path.stem
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)


MODULE_NAMES = frozenset(name_of(p) for p in modules())


class Import(NamedTuple):
    """One import from kaprules: the module as the map names it, and the name taken."""

    module: str  # "__init__" for the package itself, "?" for a name built at run time
    name: str  # "" when the module itself is imported
    line: int


def _package_of(path: Path, root: Path) -> list[str]:
    """The dotted package ``path`` is in (a file outside ``root`` is read as kaprules')."""
    if not path.is_relative_to(root):
        return ["kaprules"]
    return ["kaprules", *path.relative_to(root).parts[:-1]]


def _as_module(dotted: str) -> str | None:
    """The map's name of ``kaprules.x.y`` (``x.y``), or None for another package."""
    if dotted == "kaprules":
        return "__init__"
    if dotted.startswith("kaprules."):
        return dotted.removeprefix("kaprules.")
    return None


def _taken(module: str, name: str) -> tuple[str, str]:
    """``from module import name``: a submodule, or a name of the module."""
    sub = name if module == "__init__" else f"{module}.{name}"
    return (sub, "") if sub in MODULE_NAMES else (module, name)


def _dynamic(node: ast.Call) -> Import | None:
    """``importlib.import_module("kaprules.x")`` or ``__import__(...)``, if ``node`` is one."""
    func = node.func
    called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
    if called not in {"import_module", "__import__"} or not node.args:
        return None
    first = node.args[0]
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        module = _as_module(first.value)
        return None if module is None else Import(module, "", node.lineno)
    if isinstance(first, ast.JoinedStr):
        head = first.values[0] if first.values else None
        if isinstance(head, ast.Constant) and str(head.value).startswith("kaprules"):
            return Import("?", "", node.lineno)
    return None


@functools.cache
def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _bindings(path: Path, tree: ast.Module, root: Path) -> Iterator[tuple[Import, str | None]]:
    """Each import from kaprules in ``tree``, with the local name it binds, if that name
    stands for what is imported (``import kaprules.x as m``, ``from kaprules.x import Y``).
    """
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                module = _as_module(alias.name)
                if module is not None:
                    yield Import(module, "", node.lineno), alias.asname
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _package_of(path, root)
                base = base[: len(base) - (node.level - 1)]
                dotted = ".".join([*base, *([node.module] if node.module else [])])
            else:
                dotted = node.module or ""
            module = _as_module(dotted)
            if module is None:
                continue
            for alias in node.names:
                yield Import(*_taken(module, alias.name), node.lineno), alias.asname or alias.name
        elif isinstance(node, ast.Call) and (dynamic := _dynamic(node)) is not None:
            yield dynamic, None


@functools.cache
def _imports(path: Path, root: Path) -> tuple[Import, ...]:
    return tuple(sorted((i for i, _ in _bindings(path, _parse(path), root)), key=lambda i: i.line))


def all_imports(path: Path, root: Path = PACKAGE) -> list[Import]:
    """Every import from kaprules in ``path``, wherever and however it is written, in the
    order of its lines; ``root`` is the package's folder, for relative imports.
    """
    return list(_imports(path, root))


def arrows() -> dict[str, set[str]]:
    """The graph of modules: each module and the other kaprules modules it imports."""
    return {name_of(p): {i.module for i in all_imports(p)} - {name_of(p), "?"} for p in modules()}


def upward(path: Path) -> list[str]:
    """The imports of ``path`` that go to a module of its own layer or a higher one."""
    table = layers()
    me = name_of(path)
    return [
        f"{me} imports {i.module} (line {i.line})"
        for i in all_imports(path)
        if i.module not in {me, "?"} and table[i.module] >= table[me]
    ]


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The graph's circles: each strongly connected component of more than one module, or of
    one that imports itself, as a path around it (Tarjan's algorithm, then a walk).
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                connect(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            components.append(component)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    found = []
    for component in components:
        start = min(component)
        if len(component) == 1 and start not in graph.get(start, ()):
            continue
        found.append(_around(graph, component, start))
    return sorted(found)


def _around(graph: dict[str, set[str]], component: set[str], start: str) -> list[str]:
    """A shortest path from ``start`` back to itself inside ``component`` (breadth first)."""
    came: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for other in sorted(graph[node] & component):
                if other == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came[path[-1]])
                    return [start, *reversed(path[:-1]), start] if node != start else [start, start]
                if other not in came:
                    came[other] = node
                    following.append(other)
        frontier = following
    raise AssertionError(f"{start} is in no circle")  # pragma: no cover


def test_every_module_is_on_the_map() -> None:
    assert set(layers()) == MODULE_NAMES


@pytest.mark.parametrize("path", modules(), ids=name_of)
def test_imports_flow_one_way(path: Path) -> None:
    assert upward(path) == []


def test_the_module_graph_has_no_circle() -> None:
    found = circles(arrows())
    assert found == [], "circles: " + "; ".join(" -> ".join(c) for c in found)


def test_only_the_lazy_loader_builds_a_module_name() -> None:
    """A name built at run time cannot be checked, so only ``kaprules.__init__`` builds one."""
    built = [name_of(p) for p in modules() for i in all_imports(p) if i.module == "?"]
    assert built == ["__init__"]


def test_the_scan_sees_every_form_of_import(tmp_path: Path) -> None:
    package = tmp_path / "src" / "kaprules"
    (package / "cli").mkdir(parents=True)
    scratch = package / "cli" / "_scratch.py"
    scratch.write_text(
        "from __future__ import annotations\n"
        "import importlib\n"
        "from typing import TYPE_CHECKING\n"
        "import kaprules.model as m\n"  # 4
        "import kaprules.rules\n"  # 5
        "from kaprules import protocol, STANDARD\n"  # 6
        "from . import _status\n"  # 7
        "from .. import timeline\n"  # 8
        "from ..report import Finding\n"  # 9
        "if TYPE_CHECKING:\n"
        "    from kaprules.planning import Plan\n"  # 11
        "def f():\n"
        "    from kaprules.forecasting import forecast\n"  # 13
        "    importlib.import_module('kaprules.auditing')\n"  # 14
        "    __import__('kaprules.dask')\n"  # 15
        "    importlib.import_module(f'kaprules.{m}')\n"  # 16
        "    importlib.import_module('json')\n"
        "from kaprules.cli import _render\n"  # 18
    )
    # The scratch file is read as if it were src/kaprules/cli/_scratch.py.
    assert all_imports(scratch, package) == [
        Import("model", "", 4),
        Import("rules", "", 5),
        Import("protocol", "", 6),
        Import("__init__", "STANDARD", 6),
        Import("cli._status", "", 7),
        Import("timeline", "", 8),
        Import("report", "Finding", 9),
        Import("planning", "Plan", 11),
        Import("forecasting", "forecast", 13),
        Import("auditing", "", 14),
        Import("dask", "", 15),
        Import("?", "", 16),
        Import("cli._render", "", 18),
    ]


def test_the_circle_finder_names_a_circle() -> None:
    graph = {
        "a": {"b"},
        "b": {"c"},
        "c": {"a", "d"},
        "d": set(),
        "e": {"e"},
        "f": {"g"},
        "g": {"f"},
    }
    assert circles(graph) == [["a", "b", "c", "a"], ["e", "e"], ["f", "g", "f"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_an_upward_import_in_a_function_is_seen(tmp_path: Path) -> None:
    scratch = tmp_path / "model.py"  # read as kaprules.model, layer 1
    scratch.write_text("def f():\n    from kaprules.protocol import STANDARD\n")
    assert upward(scratch) == ["model imports protocol (line 2)"]


# Private names ------------------------------------------------------------------------------


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_imports(path: Path) -> list[str]:
    """Names with a leading underscore that ``path`` imports from other kaprules modules."""
    me = name_of(path)
    return [
        f"{i.module}.{i.name}" for i in all_imports(path) if i.module != me and _private(i.name)
    ]


@pytest.mark.parametrize("path", modules(), ids=name_of)
def test_no_private_name_crosses_a_module(path: Path) -> None:
    assert private_imports(path) == []


def test_the_scan_sees_a_private_import(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch.py"
    scratch.write_text(
        "from kaprules._time import zone\n"  # a public name of a private module: fine
        "from kaprules import __version__\n"  # a dunder: fine
        "def f():\n    from kaprules.model import _secret\n"
    )
    assert private_imports(scratch) == ["model._secret"]


@functools.cache
def _class_members_of(path: Path) -> frozenset[str]:
    return frozenset(_class_members(_parse(path)))


def _class_members(tree: ast.Module) -> Iterator[str]:
    """The names each class of a module defines: methods, class attributes, attrs fields, and
    attributes set on ``self`` (or with ``object.__setattr__(self, "name", ...)``) in its methods.
    """
    for cls in ast.walk(tree):
        if not isinstance(cls, ast.ClassDef):
            continue
        for statement in cls.body:
            if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
                yield statement.name
            elif isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
                yield statement.target.id
            elif isinstance(statement, ast.Assign):
                yield from (t.id for t in statement.targets if isinstance(t, ast.Name))
        for node in ast.walk(cls):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.ctx, ast.Store)
                and isinstance(node.value, ast.Name)
                and node.value.id == "self"
            ):
                yield node.attr
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "__setattr__"
                and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant)
                and isinstance(node.args[1].value, str)
            ):
                yield node.args[1].value


def _module_members(tree: ast.Module) -> Iterator[str]:
    """The names a module defines at module level."""
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield node.name
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            yield node.target.id
        elif isinstance(node, ast.Assign):
            yield from (t.id for t in node.targets if isinstance(t, ast.Name))


def _bound(path: Path, tree: ast.Module) -> dict[str, str]:
    """The local names that ``path`` binds to another kaprules module or to a name of one,
    each with what it stands for (``model``, ``model.Course``).
    """
    me = name_of(path)
    return {
        local: f"{i.module}.{i.name}" if i.name else i.module
        for i, local in _bindings(path, tree, PACKAGE)
        if local is not None and i.module not in {me, "?"}
    }


def _accessed(tree: ast.Module) -> Iterator[tuple[str | None, str]]:
    """(the name an attribute is read from, if a plain name; the attribute) of each attribute
    access, ``getattr``, ``setattr`` and ``hasattr`` with a constant name and
    ``operator.attrgetter`` and ``methodcaller`` included.
    """
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            base = node.value.id if isinstance(node.value, ast.Name) else None
            yield base, node.attr
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in {"getattr", "setattr", "hasattr"}
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
        ):
            base = node.args[0].id if isinstance(node.args[0], ast.Name) else None
            yield base, node.args[1].value
        elif isinstance(node, ast.Call) and (
            getattr(node.func, "attr", None) in {"attrgetter", "methodcaller"}
            or getattr(node.func, "id", None) in {"attrgetter", "methodcaller"}
        ):
            for arg in node.args:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    yield from ((None, part) for part in arg.value.split("."))


def private_attributes(path: Path, others: list[Path]) -> list[str]:
    """Private names of other kaprules modules that ``path`` reaches by attribute access.

    A private name is one that a class of another module defines (a method, a class attribute,
    an attrs field, an attribute set on ``self``), read as ``anything._name`` here (or through
    ``getattr`` or ``operator.attrgetter``), where no class or module-level code of ``path``
    defines the same name; or any private name read from what ``path`` imported from another
    kaprules module: ``module._name``, ``Course._checked``.
    """
    tree = _parse(path)
    mine = _class_members_of(path) | set(_module_members(tree))
    defined: dict[str, set[str]] = {}  # a private class member: the modules defining it
    for other in others:
        if other == path:
            continue
        for member in filter(_private, _class_members_of(other)):
            defined.setdefault(member, set()).add(name_of(other))
    bound = _bound(path, tree)
    found = set()
    for base, attr in _accessed(tree):
        if not _private(attr):
            continue
        if base in bound:
            found.add(f"{bound[base]}.{attr}")
        elif attr in defined and attr not in mine:
            found.add(f"{'/'.join(sorted(defined[attr]))}.{attr}")
    return sorted(found)


@pytest.fixture(scope="module")
def private_reach() -> dict[str, list[str]]:
    everything = modules()
    return {name_of(p): private_attributes(p, everything) for p in everything}


@pytest.mark.parametrize("path", modules(), ids=name_of)
def test_no_private_attribute_crosses_a_module(
    path: Path, private_reach: dict[str, list[str]]
) -> None:
    assert private_reach[name_of(path)] == []


def test_the_scan_sees_a_private_attribute(tmp_path: Path) -> None:
    owner = tmp_path / "owner.py"
    owner.write_text(
        "import attrs\n"
        "@attrs.frozen\n"
        "class Thing:\n"
        "    _field: int\n"
        "    _slot: int\n"
        "    def _method(self): return self._field\n"
        "    def __init_subclass__(cls): pass\n"
        "    def set(self): object.__setattr__(self, '_late', 1)\n"
        "def _helper(): pass\n"
    )
    reader = tmp_path / "reader.py"
    reader.write_text(
        "import operator\n"
        "import kaprules.model as m\n"
        "from kaprules import _columnar\n"
        "from kaprules.model import Course as C\n"
        "class Mine:\n"
        "    def _own(self): return self._own\n"  # its own: fine
        "def f(thing):\n"
        "    thing._method(); thing.__init_subclass__()\n"
        "    getattr(thing, '_late'); m._helper()\n"
        "    C._own(); operator.attrgetter('_slot', 'id')\n"
        "    return thing._field, _columnar._chunks, thing._replace(), thing._own\n"
    )
    assert private_attributes(reader, [owner, reader]) == [
        "_columnar._chunks",
        "model.Course._own",  # what was imported: even a name the reader defines too
        "model._helper",
        "owner._field",
        "owner._late",
        "owner._method",
        "owner._slot",
    ]


# Optional dependencies ----------------------------------------------------------------------

# The extras' packages (pyproject's optional dependencies), by the name they are imported as.
OPTIONAL = frozenset(
    {
        "hypothesis",
        "icalendar",
        "holidays",
        "jinja2",
        "tqdm",
        "dask",
        "pandas",
        "polars",
        "fhir",
        "pydantic",
        "starlette",
        "uvicorn",
        "jwt",
        "cryptography",
    }
)
# The modules that exist for one extra may import it at module level: importing them is
# asking for it. Every other module imports an extra only inside the function that uses it.
EXTRA_MODULES: dict[str, frozenset[str]] = {
    "strategies": frozenset({"hypothesis"}),
    "dask": frozenset({"dask", "pandas"}),
}
REQUIRED = frozenset({"attrs", "pendulum", "orjson"})


def test_the_optional_list_covers_pyproject() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "optional-dependencies"
    ]
    listed = {
        re.split(r"[<>=\[;]", requirement)[0].strip().lower()
        for group in ("strategies", "calendar", "audit", "dask", "columnar", "fhir", "serve")
        for requirement in extras[group]
        if not requirement.startswith("kaprules")
    }
    imported_as = {"fhir.resources": "fhir", "pyjwt": "jwt"}
    assert {imported_as.get(r, r) for r in listed} <= OPTIONAL


def _top_level_imports(tree: ast.Module) -> Iterator[tuple[str, int]]:
    """The top-level package of each import run when the module is imported (module level,
    ``if``, ``try`` and ``with`` blocks included, ``if TYPE_CHECKING:`` left out).
    """

    def walk(body: list[ast.stmt]) -> Iterator[tuple[str, int]]:
        for node in body:
            if isinstance(node, ast.Import):
                yield from ((a.name.split(".")[0], node.lineno) for a in node.names)
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                yield node.module.split(".")[0], node.lineno
            elif isinstance(node, ast.If):
                test = node.test
                if not (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING"):
                    yield from walk(node.body)
                yield from walk(node.orelse)
            elif isinstance(node, ast.Try):
                for part in (
                    node.body,
                    node.orelse,
                    node.finalbody,
                    *(h.body for h in node.handlers),
                ):
                    yield from walk(part)
            elif isinstance(node, ast.With):
                yield from walk(node.body)

    yield from walk(tree.body)


@pytest.mark.parametrize("path", modules(), ids=name_of)
def test_extras_are_imported_only_where_used(path: Path) -> None:
    me = name_of(path)
    allowed = EXTRA_MODULES.get(me, frozenset())
    found = {
        f"{package} (line {line})"
        for package, line in _top_level_imports(_parse(path))
        if package in OPTIONAL - allowed
    }
    assert found == set(), f"{me} imports an optional dependency when it is imported"


def test_third_party_imports_are_known() -> None:
    """Every package a module imports is the standard library's, required, or an extra."""
    unknown = {
        f"{name_of(p)}: {package}"
        for p in modules()
        for node in ast.walk(_parse(p))
        for package in (
            [a.name.split(".")[0] for a in node.names]
            if isinstance(node, ast.Import)
            else [node.module.split(".")[0]]
            if isinstance(node, ast.ImportFrom) and not node.level and node.module
            else []
        )
        if package not in sys.stdlib_module_names | REQUIRED | OPTIONAL | {"kaprules"}
    }
    assert unknown == set()


def test_the_extra_scan_sees_an_import_at_module_level(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch.py"
    scratch.write_text(
        "import json\n"
        "try:\n    import polars\nexcept ImportError:\n    polars = None\n"
        "if TYPE_CHECKING:\n    import dask\n"
        "def f():\n    import jinja2\n"
        "from fhir.resources import bundle\n"
    )
    found = [p for p, _ in _top_level_imports(_parse(scratch)) if p in OPTIONAL]
    assert found == ["polars", "fhir"]


def test_importing_every_other_module_loads_no_extra() -> None:
    """The static scan's claim, run: every module but the extras' own imports no extra."""
    names = sorted(
        f"kaprules.{m}" if m != "__init__" else "kaprules"
        for m in MODULE_NAMES - set(EXTRA_MODULES) - {"__main__"}
    )
    code = (
        f"import importlib, sys\nfor n in {names!r}:\n    importlib.import_module(n)\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({sorted(OPTIONAL)!r})))"
    )
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert done.stdout.strip() == "[]"
