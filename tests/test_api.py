"""The public API: curated, sorted, exported and documented."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import kaprules
import kaprules.strategies
from kaprules.rules import BUILTIN_RULES

ROOT = Path(__file__).resolve().parents[1]
SEED = Path(__file__).resolve().parents[2] / "shared" / "seeds" / "000_3c713af0057dde73.txt"
SEED_MISSING = (
    f"the founding document's text is missing: put it at {SEED} (shared/seeds/ beside this "
    "checkout) to check that sources quote it verbatim"
)
# Every module of the package without a leading underscore is public: found, not listed.
PUBLIC_MODULES = sorted(
    m.name for m in pkgutil.iter_modules(kaprules.__path__) if not m.name.startswith("_")
)
# Modules with a namespace of their own; every other public module's names are curated
# into `kaprules` itself.
OWN_NAMESPACE = {
    "audit_html",
    "auditing",
    "calendar_files",
    "cli",
    "course_files",
    "dask",
    "fhir",
    "findings_files",
    "explanation",
    "plugins",
    "protocol_files",
    "serve",
    "strategies",
}
# Module constants kept in their module (documented there).
UNEXPORTED = {
    "BUILTIN_RULES",
    "CLINIC_CALENDAR",
    "CSV_COLUMNS",
    "DOCS_URL",
    "FOUNDING_DOCUMENT",
    "FUTURE_START",
    "HORIZON_DAYS",
    "INTEGRATION",
    "RULE_MEMBERS",
    "SEARCH_LIMIT",
    "SERIES_COMPLETION",
    "WEEKDAYS",
}


def test_all_is_sorted_and_complete() -> None:
    names = [n for n in kaprules.__all__ if n != "__version__"]

    # isort order, as ruff's RUF022 keeps it: CONSTANTS, then Classes, then the rest.
    def group(n: str) -> tuple[int, str]:
        return (0 if n.isupper() else 1 if n[0].isupper() else 2, n)

    assert kaprules.__all__ == sorted(set(kaprules.__all__), key=group)
    for name in names:
        assert hasattr(kaprules, name), name


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_every_public_name_is_documented(module: str) -> None:
    mod = importlib.import_module(f"kaprules.{module}")
    assert inspect.getdoc(mod)
    for name in mod.__all__:
        obj = getattr(mod, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert inspect.getdoc(obj), f"{module}.{name} has no docstring"
            for attr, member in vars(obj).items() if inspect.isclass(obj) else []:
                if not attr.startswith("_") and (
                    inspect.isfunction(member) or isinstance(member, property)
                ):
                    assert inspect.getdoc(member), f"{module}.{name}.{attr} has no docstring"


def test_the_public_modules_are_found() -> None:
    # A floor, so that a broken discovery cannot pass the checks below vacuously.
    assert {"evaluation", "forecasting", "auditing", "dask", "rules", "plugins"} <= set(
        PUBLIC_MODULES
    )


@pytest.mark.parametrize("module", sorted(set(PUBLIC_MODULES) - OWN_NAMESPACE))
def test_module_names_are_exported_at_the_top(module: str) -> None:
    for name in importlib.import_module(f"kaprules.{module}").__all__:
        if name not in UNEXPORTED:
            assert name in kaprules.__all__, f"kaprules.{module}.{name} is not exported"
            assert getattr(kaprules, name) is getattr(
                importlib.import_module(f"kaprules.{module}"), name
            )


BUILTINS = [cls() for cls in BUILTIN_RULES.values()]


def test_every_builtin_rule_is_in_a_builtin_protocol() -> None:
    in_protocols = {type(r) for p in kaprules.builtin_protocols() for r in p.rules}
    assert in_protocols == set(BUILTIN_RULES.values())


@pytest.mark.parametrize("rule", BUILTINS, ids=lambda r: r.id)
def test_every_builtin_rule_has_complete_metadata(rule: kaprules.Rule) -> None:
    for field in ("id", "title", "statement", "rationale", "names"):
        value = getattr(rule, field)
        assert isinstance(value, str), field
        assert value.strip(), field
    assert rule.source.quote
    assert rule.source.location
    assert rule.source.document
    assert inspect.getdoc(type(rule))


@pytest.mark.skipif(not SEED.exists(), reason=SEED_MISSING)
@pytest.mark.parametrize("rule", BUILTINS, ids=lambda r: r.id)
def test_source_quotes_are_verbatim(rule: kaprules.Rule) -> None:
    assert_verbatim(rule.source)


OWN_SOURCES = [
    (f"{p.id}@{p.version}:{r.id}", r.own_source)  # type: ignore[attr-defined]
    for p in kaprules.builtin_protocols()
    for r in p.rules
    if getattr(r, "own_source", None) is not None
]


@pytest.mark.skipif(not SEED.exists(), reason=SEED_MISSING)
@pytest.mark.parametrize(("name", "source"), OWN_SOURCES, ids=[n for n, _ in OWN_SOURCES])
def test_builtin_protocols_own_sources_are_verbatim(name: str, source: kaprules.Source) -> None:
    assert_verbatim(source)


def test_some_builtin_protocol_cites_its_own_sources() -> None:
    assert len(OWN_SOURCES) >= 3


def assert_verbatim(source: kaprules.Source) -> None:
    rule = source
    if rule.document == kaprules.rules.FOUNDING_DOCUMENT:
        assert rule.quote in SEED.read_text(encoding="utf-8")
        return
    # Other sources: the excerpt as read, on the provenance page under the document's
    # address (whitespace aside: a PDF copy lost some spaces).
    page = (ROOT / "docs" / "provenance.md").read_text(encoding="utf-8")
    address = rule.document.rsplit(" ", 1)[-1]
    excerpt = page.split(f"<{address}>", 1)[1].split("\n- ", 1)[0]
    assert "".join(rule.quote.split()) in "".join(excerpt.split())


def test_each_public_name_is_filed_under_one_module() -> None:
    # The lazy-import table names each name's module once, and that module defines it.
    seen: dict[str, str] = {}
    for module, names in kaprules._MODULES.items():
        for name in names:
            assert name not in seen, f"{name} is filed under {seen[name]} and {module}"
            seen[name] = module
            assert name in importlib.import_module(f"kaprules.{module}").__all__, (module, name)
