"""Shared fixtures and the hypothesis profiles.

Profiles: ``ci`` (derandomized, more examples, no deadline: reproducible on a loaded
machine) is loaded when the ``CI`` environment variable is set; ``dev`` otherwise.
``HYPOTHESIS_PROFILE`` picks one explicitly.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=100,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=60, deadline=None)
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
