"""kaprules serve: the CDS Hooks ``appointment-book`` service under Uvicorn."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from kaprules.cli._reading import calendar_of, need_extra, protocol_specs
from kaprules.cli._status import EXIT_OK, Failure, UsageError, complain
from kaprules.errors import InputError, shown_id
from kaprules.loading import resolve_protocol
from kaprules.protocol import Protocol, ProtocolVersions

SERVE_HINT = (
    "kaprules serve needs Starlette, Uvicorn and PyJWT: pip install '.[serve]' in a checkout "
    "of kaprules"
)


def services_of(specs: list[str]) -> list[Protocol | ProtocolVersions]:
    """One protocol per id: the specs naming versions of one protocol become its versions."""
    groups: dict[str, list[str]] = {}
    for spec in specs:
        groups.setdefault(resolve_protocol(spec).id, []).append(spec)
    return [resolve_protocol(group) for group in groups.values()]


def default_workers() -> int:
    """One worker per core this process may use, at most 4; one where there is no fork."""
    import os

    if not hasattr(os, "fork"):
        return 1
    if hasattr(os, "sched_getaffinity"):
        cores = len(os.sched_getaffinity(0))
    else:
        cores = os.cpu_count() or 1
    return max(1, min(cores, 4))


def serve_command(args: argparse.Namespace, out: TextIO) -> int:
    for module in ("starlette", "uvicorn", "jwt", "cryptography", "fhir.resources"):
        need_extra(module.split(".")[0] if module != "fhir.resources" else "fhir", SERVE_HINT)
    protocols = services_of(protocol_specs(args))
    if args.workers is None:
        # As many as the cores: one worker's 20 waiting clients queue behind each other.
        args.workers = default_workers()
    chosen = (args.calendar, args.open, args.closed, args.at, args.holidays, args.subdivision)
    calendar = None if all(v is None for v in chosen) else calendar_of(args)
    from kaprules import serve

    try:
        issuers = serve.read_issuers(args.issuers)
    except InputError as exc:
        raise Failure(f"invalid issuers file {shown_id(args.issuers, 200)}", exc.problems) from None
    host = f"[{args.host}]" if ":" in args.host else args.host
    base = (args.url or f"http://{host}:{args.port}").rstrip("/")
    if args.state_dir is not None or args.workers == 1:
        return _serve(serve, args, protocols, calendar, issuers, base, host, args.state_dir)
    import tempfile  # here: the other commands start without it

    # The workers must share the tokens seen: a private folder for this run, removed after.
    with tempfile.TemporaryDirectory(prefix="kaprules-serve-") as state:
        return _serve(serve, args, protocols, calendar, issuers, base, host, state)


def _serve(
    serve: Any,
    args: argparse.Namespace,
    protocols: list[Protocol | ProtocolVersions],
    calendar: Any,
    issuers: Any,
    base: str,
    host: str,
    state: str | None,
) -> int:
    try:
        application = serve.app(
            protocols,
            issuers,
            base,
            calendar=calendar,
            timezone=args.timezone,
            feedback_log=args.feedback_log,
            cors=tuple(args.cors or ()),
            max_body_bytes=args.max_body_bytes,
            state_dir=state,
        )
    except InputError as exc:
        raise Failure("cannot serve", exc.problems) from None
    ids = ", ".join(p.id for p in protocols)
    workers = f", {args.workers} workers" if args.workers > 1 else ""

    def listening() -> None:
        said = f"serving {ids} at {base}/cds-services (listening on {host}:{args.port}{workers})"
        complain(said)
        if args.feedback_log is None:
            complain("note: no --feedback-log: feedback is answered but not recorded")

    try:
        serve.run(application, args.host, args.port, workers=args.workers, listening=listening)
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{args.port}: {exc.strerror or exc}") from None
    except RuntimeError as exc:
        raise UsageError(f"kaprules serve stopped: {exc}") from None
    return EXIT_OK
