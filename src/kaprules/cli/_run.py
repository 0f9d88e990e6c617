"""Running a command: failures, signals and closed streams turned into exit statuses."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from kaprules._output import STOP_SIGNALS, OutputError
from kaprules._text import web_url
from kaprules._version import __version__
from kaprules.cli._arguments import build_parser
from kaprules.cli._audit import audit_command
from kaprules.cli._check import check_command
from kaprules.cli._protocols import protocol_command
from kaprules.cli._rules import explain_command, rules_command
from kaprules.cli._scheduling import next_command, plan_command
from kaprules.cli._serve import serve_command
from kaprules.cli._status import EXIT_SIGNAL, EXIT_USAGE, Failure, UsageError, complain, emit
from kaprules.errors import InputError, KapRulesError, ProtocolError, echo

_COMMANDS = {
    "audit": audit_command,
    "check": check_command,
    "next": next_command,
    "plan": plan_command,
    "explain": explain_command,
    "rules": rules_command,
    "protocol": protocol_command,
    "serve": serve_command,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``kaprules`` command.

    Output is written only once a command has its whole answer, and output files are
    renamed into place only when the run succeeded, so a failure never leaves half a
    report. Every failure is exit 2: a line on stderr naming it (one more line per
    problem of the input), and with ``--format json`` a JSON error object on stdout.
    Ctrl-C (SIGINT) is exit 130, SIGTERM exit 143 and SIGHUP exit 129, each with one line
    on stderr; the output files are then left as they were.

    Args:
        argv: The arguments after the program name; ``sys.argv[1:]`` when None.

    Returns:
        The exit status: 0, 1, 2, 129, 130 or 143.
    """
    with _signals():
        try:
            return _main(argv)
        except (_Signalled, KeyboardInterrupt) as exc:
            signum: int = exc.signum if isinstance(exc, _Signalled) else signal.SIGINT
            complain(_STOPPED[signum])
            return EXIT_SIGNAL + signum


class _Signalled(BaseException):
    # Not an Exception: no handler meant for errors may swallow it.
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _on_signal(signum: int, frame: object) -> None:
    # Once: a second Ctrl-C must not cut short the clean-up the first one started.
    for other in _SIGNALS:
        signal.signal(other, signal.SIG_IGN)
    raise _Signalled(signum)


_SIGNALS = STOP_SIGNALS


# The one line said for each: as a shell reports a job stopped by it.
_STOPPED: dict[int, str] = {
    getattr(signal, name): what
    for name, what in (("SIGINT", "interrupted"), ("SIGTERM", "terminated"), ("SIGHUP", "hung up"))
    if hasattr(signal, name)
}


@contextlib.contextmanager
def _signals() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP raised as `_Signalled` while a command runs, then restored.

    A signal ignored when kaprules started (a background job's SIGINT, nohup) stays ignored.
    """
    previous: dict[int, Any] = {}
    try:
        for number in _SIGNALS:
            if signal.getsignal(number) is not signal.SIG_IGN:
                previous[number] = signal.signal(number, _on_signal)
    except ValueError:  # not the main thread: signals stay the caller's
        pass
    try:
        yield
    finally:
        for code, handler in previous.items():
            signal.signal(code, handler)


def _main(argv: Sequence[str] | None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    json_wanted = _wants_json(arguments)
    try:
        if not arguments:
            emit(parser.format_help(), sys.stdout, as_json=False)
            return EXIT_USAGE
        args = parser.parse_args(arguments)
        _check_environment()
        if sys.stdout is None:  # started with stdout closed (>&-): no report can be written
            raise UsageError("standard output is closed; nothing can be written")
        buffer = io.StringIO()
        code = _COMMANDS[args.command](args, buffer)
        emit(buffer.getvalue(), sys.stdout, as_json=json_wanted)
        return code
    except UsageError as exc:
        failure = Failure(str(exc))
    except Failure as exc:
        failure = exc
    except OutputError as exc:
        failure = Failure(str(exc))
    except ProtocolError as exc:
        failure = Failure("invalid protocol", exc.problems)
    except InputError as exc:
        failure = Failure("invalid input", exc.problems)
    except KapRulesError as exc:
        failure = Failure("kaprules could not go on", exc.problems)
    except BrokenPipeError:
        # The reader went away (| head); nothing left to say.
        _quiet_stdout()
        return EXIT_USAGE
    except OSError as exc:
        failure = Failure(f"cannot write the output: {exc.strerror or 'output error'}")
    except RecursionError:
        failure = Failure("the input is nested too deeply")
    except MemoryError:
        failure = Failure("out of memory; the input is too large")
    except Exception as exc:  # the promise: never a traceback, never exit 1
        failure = Failure(
            f"internal error ({type(exc).__name__}) in kaprules {__version__}; please report "
            "it with the command that caused it"
        )
    for line in failure.lines():
        complain(line)
    if json_wanted:
        # When stdout is gone too, stderr has said it all.
        with contextlib.suppress(Exception):
            emit(json.dumps(failure.to_dict(), indent=2) + "\n", sys.stdout, as_json=True)
    return EXIT_USAGE


def _check_environment() -> None:
    # The library ignores a KAPRULES_DOCS_URL that is not a web address; a command says so.
    given = os.environ.get("KAPRULES_DOCS_URL")
    if given and web_url(given) is None:
        raise UsageError(
            f"KAPRULES_DOCS_URL: {echo(given)} is not an http(s) URL such as "
            "https://example.org/kaprules/"
        )


def _wants_json(arguments: list[str]) -> bool:
    # Known before parsing, so that a usage error can answer in JSON too.
    for index, argument in enumerate(arguments):
        if argument == "--format=json":
            return True
        if argument == "--format" and arguments[index + 1 : index + 2] == ["json"]:
            return True
    return False


def _quiet_stdout() -> None:
    # Python would report the broken pipe again when it flushes stdout at exit.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, AttributeError, ValueError):
        pass
