"""Shared fixtures and the hypothesis profiles.

Profiles: ``ci`` (derandomized, more examples, no deadline: reproducible on a loaded
machine) is loaded when the ``CI`` environment variable is set; ``dev`` otherwise. Neither
has a deadline or the ``too_slow`` health check: a slow machine cannot fail a test.
``HYPOTHESIS_PROFILE`` picks one explicitly.
"""

from __future__ import annotations

import compileall
import contextlib
import datetime as dt
import io
import os
import shlex
import subprocess
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
    max_examples=80,
    deadline=None,
    print_blob=True,
    suppress_health_check=SLOW,
)
settings.register_profile("dev", max_examples=60, deadline=None, suppress_health_check=SLOW)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)

ROOT = Path(__file__).resolve().parent.parent

# Bytecode. An environment may set PYTHONDONTWRITEBYTECODE: then every process of the suite
# (each xdist worker, and the many `python -m kaprules` the tests start) compiles every
# module it imports from source, and pytest rewrites every test module again. The source is
# compiled once, here (py_compile writes whatever the flag says; a file already compiled is
# skipped), and pytest keeps its rewritten test modules (in __pycache__, ignored by git).
sys.dont_write_bytecode = False
compileall.compile_dir(ROOT / "src", quiet=2)  # a read-only tree: left as it is
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


# The documentation site, built in the background from the start of the run: the tests
# that read it run last (see pytest_collection_modifyitems), by when it is built, so that
# no xdist worker sits waiting for the build. tests/test_docs.py's `site` fixture waits
# for it, and builds the site itself when this did not start (no docs extra).
SITE_ENV = "KAPRULES_TEST_SITE"
_site_build: subprocess.Popen[bytes] | None = None


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    global _site_build
    config = session.config
    if hasattr(config, "workerinput") or SITE_ENV in os.environ:
        return  # a worker: the controller started the build, and said where
    import importlib.util

    if importlib.util.find_spec("mkdocs") is None:
        return
    if config.args and not any(_reads_docs(arg) for arg in config.args):
        return  # a run that reads no docs need not build them
    import tempfile

    where = Path(tempfile.mkdtemp(prefix="kaprules-site-"))
    os.environ[SITE_ENV] = str(where)  # the workers, started after this, inherit it
    command = (
        f"{shlex.quote(sys.executable)} -m mkdocs build --strict --site-dir "
        f"{shlex.quote(str(where / 'site'))} >{shlex.quote(str(where / 'log'))} 2>&1; "
        f"echo $? >{shlex.quote(str(where / 'status.tmp'))}; "
        f"mv {shlex.quote(str(where / 'status.tmp'))} {shlex.quote(str(where / 'status'))}"
    )
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "NO_MKDOCS_2_WARNING": "1",
    }
    # A session of its own, so that stopping it stops mkdocs too, not only the shell.
    _site_build = subprocess.Popen(["sh", "-c", command], cwd=ROOT, env=env, start_new_session=True)


def _reads_docs(arg: str) -> bool:
    # Whether a command-line argument selects tests/test_docs.py (or a folder holding it).
    path = Path(arg.split("::")[0])
    path = path if path.is_absolute() else Path.cwd() / path
    try:
        path = path.resolve()
    except OSError:
        return False
    docs = (ROOT / "tests" / "test_docs.py").resolve()
    return path == docs or path in docs.parents


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _site_build is None:
        return
    if _site_build.poll() is None:
        import signal

        # The whole group: killing the shell alone left mkdocs writing into the folder
        # after it was removed.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(_site_build.pid, signal.SIGKILL)
        _site_build.wait()
    import shutil

    shutil.rmtree(os.environ.pop(SITE_ENV), ignore_errors=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The tests that read the built site last: by then the background build is done.
    reading = [i for i in items if "site" in getattr(i, "fixturenames", ())]
    if reading:
        others = [i for i in items if "site" not in getattr(i, "fixturenames", ())]
        items[:] = others + reading
