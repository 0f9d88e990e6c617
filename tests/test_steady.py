"""A suite that holds on a loaded machine: no hypothesis deadline or timing health check."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from conftest import ROOT

TESTS = ROOT / "tests"


def test_the_loaded_profile_has_no_deadline_and_no_timing_check() -> None:
    loaded = settings.default
    assert loaded is not None
    assert loaded.deadline is None
    assert HealthCheck.too_slow in loaded.suppress_health_check
    for name in ("ci", "dev"):
        profile = settings.get_profile(name)
        assert profile.deadline is None
        assert HealthCheck.too_slow in profile.suppress_health_check


def _own_lists(path: Path) -> list[str]:
    """The suppress_health_check lists of a test module that leave out too_slow."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.keyword) and node.arg == "suppress_health_check":
            text = ast.unparse(node.value)
            if "SLOW" not in text and "too_slow" not in text and "list(HealthCheck)" not in text:
                found.append(f"{path.name}:{node.value.lineno}: {text}")
    return found


def test_no_test_brings_back_the_timing_check() -> None:
    # A test's own list of suppressed health checks replaces the profile's.
    assert [line for path in sorted(TESTS.glob("*.py")) for line in _own_lists(path)] == []


def test_the_scan_sees_a_list_without_too_slow(tmp_path: Path) -> None:
    module = tmp_path / "test_x.py"
    module.write_text(
        "@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])\ndef f(): pass\n"
    )
    assert _own_lists(module) == [
        "test_x.py:1: [HealthCheck.function_scoped_fixture]",
    ]


def test_the_guides_property_tests_cannot_fail_on_a_slow_machine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The docs build runs the guide outside pytest: its settings must hold on their own.
    pytest.importorskip("hypothesis")
    from test_docs import fences

    monkeypatch.chdir(ROOT)
    namespace: dict[str, Any] = {"__name__": "docs_guide"}
    page = ROOT / "docs" / "guide.md"
    blocks = [b for b in fences(page) if b[0] == "python" and b[2].get("session") == "guide"]
    given = [body for _, body, _ in blocks if "@given" in body]
    assert given, "the guide has no property test"
    for _, body, _ in blocks:
        if "@given" in body:
            body = body.split("\ntest_", 1)[0]  # define the tests, do not run them here
        exec(compile(body, "guide.md", "exec"), namespace)
    tests = [v for k, v in namespace.items() if k.startswith("test_") and callable(v)]
    assert tests
    for test in tests:
        steady = test._hypothesis_internal_use_settings
        assert steady.deadline is None
        assert steady.derandomize
        assert set(steady.suppress_health_check) == set(HealthCheck)
