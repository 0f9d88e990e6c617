"""Shared fixtures and the hypothesis profiles.

Profiles: ``ci`` (derandomized, more examples, no deadline: reproducible on a loaded
machine) is loaded when the ``CI`` environment variable is set; ``dev`` otherwise. Neither
has a deadline or the ``too_slow`` health check: a slow machine cannot fail a test.
``HYPOTHESIS_PROFILE`` picks one explicitly.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# No deadline and no too_slow health check in either profile: on a loaded machine a slow
# example is not a failure. (A test that suppresses other health checks lists SLOW too:
# a list of its own replaces the profile's.)
SLOW = [HealthCheck.too_slow]
settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=100,
    deadline=None,
    print_blob=True,
    suppress_health_check=SLOW,
)
settings.register_profile("dev", max_examples=60, deadline=None, suppress_health_check=SLOW)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
DENVER = "America/Denver"


@pytest.fixture
def examples_dir() -> Path:
    return EXAMPLES


def mst(*args: int) -> dt.datetime:
    """A datetime at UTC-07:00 (Denver in winter)."""
    return dt.datetime(*args, tzinfo=dt.timezone(dt.timedelta(hours=-7)))  # type: ignore[misc,arg-type]


@pytest.fixture
def cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., tuple[int, str, str]]:
    """The command in this process, from the repository root: (status, stdout, stderr).

    Faster than a subprocess; the tests that need the real entry point, streams and
    encodings run one.
    """
    from kaprules.cli import main

    monkeypatch.chdir(ROOT)

    def call(*args: str, stdin: str | bytes = b"") -> tuple[int, str, str]:
        data = stdin.encode("utf-8", "surrogatepass") if isinstance(stdin, str) else stdin
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return call
