"""`kaprules serve`: a CDS Hooks 2.0 ``appointment-book`` service.

Needs the ``serve`` extra (``pip install '.[serve]'``: Starlette, Uvicorn, PyJWT with
cryptography, and the ``fhir`` extra). Nothing of it is imported until this module is, so
that ``import kaprules`` and ``kaprules check`` stay small.

- [`app`][kaprules.serve.app]: the ASGI application: discovery, one ``appointment-book``
  service per protocol, its feedback endpoint, and each rule's explanation.
- [`read_issuers`][kaprules.serve.read_issuers]: the ``ISSUERS.toml`` allowlist of the
  EHRs whose JSON web tokens are accepted, with their keys.
- [`run`][kaprules.serve.run]: the application under Uvicorn.

The [serve page](serve.md) describes the endpoints, the cards, the security checks and the
feedback log for integrators.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import re
import signal
import socket
import sys
import threading
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from http.client import HTTPMessage
from pathlib import Path
from typing import IO, Any, Final

import attrs

from kaprules import _fast
from kaprules._text import markdown, terminal, web_url
from kaprules._time import NoSuchDay, at_local
from kaprules.clinic_calendar import ClinicCalendar
from kaprules.errors import InputError, PathItem, Problem, echo, render_path, shown_id
from kaprules.explanation import explain
from kaprules.fhir import (
    HELD,
    KIND_SYSTEM,
    MAX_DEPTH,
    NOT_SESSIONS,
    PARTICIPATION,
    PLANNED,
    RULE_SYSTEM,
    SESSION_ID_SYSTEM,
    TIMEZONE_EXTENSION,
    WAIVER_REASON_SYSTEM,
    course_from_bundle,
    within_depth,
)
from kaprules.forecasting import check_booking, forecast
from kaprules.model import MAX_NOTE, Course, Kind, Session, waiver_problems
from kaprules.protocol import Protocol, ProtocolVersions
from kaprules.report import Finding, Severity
from kaprules.waivers import REASONS

__all__ = [
    "ALGORITHMS",
    "BODY_TIMEOUT_SECONDS",
    "HOOK",
    "JKU_RETRY_SECONDS",
    "JKU_TTL_SECONDS",
    "LEEWAY_SECONDS",
    "MAX_BODY_BYTES",
    "MAX_PROPOSED",
    "MAX_TOKEN_LIFETIME",
    "NOT_CHECKED_TOPIC",
    "OPTIONAL_PREFETCH",
    "PREFETCH",
    "REQUIRED_PREFETCH",
    "STATE_FILE",
    "Issuer",
    "app",
    "read_issuers",
    "run",
]

HOOK: Final = "appointment-book"
"""The one hook the services answer."""
ALGORITHMS: Final = ("ES384", "RS384")
"""The JWT signing algorithms accepted: the spec's recommended asymmetric two. ``none`` and
every symmetric (HMAC) algorithm are refused."""
MAX_BODY_BYTES: Final = 1024 * 1024
"""The largest request body read, in bytes (1 MiB); a larger one is answered 413."""
BODY_TIMEOUT_SECONDS: Final = 30.0
"""How long a request's body may take to arrive once its headers have (a 1 MiB body at
35 KB/s); a slower one is answered 408 and its connection closed, so that a client sending
a byte at a time cannot hold connections at will."""
MAX_PROPOSED: Final = 100
"""The most Appointments a call's ``context.appointments`` may hold (a year of weekly
sessions and more); a call with more is answered 400 (``too-costly``) before any is judged.
Each proposal is judged against the history and the proposals before it, so a call's cost
grows with their product: 1,000 proposals took 12 s of a worker, every other call waiting."""
LEEWAY_SECONDS: Final = 60
"""The clock skew allowed when ``exp`` and ``iat`` are checked."""
MAX_TOKEN_LIFETIME: Final = 3600
"""How far ahead of now a token's ``exp`` may be, in seconds: a token seen is remembered
(its ``jti``) until it expires, so a longer-lived one is refused."""
PREFETCH: Mapping[str, str] = {
    "appointments": "Appointment?patient={{context.patientId}}",
    "encounters": "Encounter?patient={{context.patientId}}",
    "observations": "Observation?patient={{context.patientId}}",
    "medications": "MedicationAdministration?patient={{context.patientId}}",
}
"""The prefetch template each service lists in discovery."""
REQUIRED_PREFETCH: Final = ("appointments", "encounters", "observations")
"""The prefetch keys a call must carry (a Bundle, or null for no data); without one, 412."""
OPTIONAL_PREFETCH: Final = ("medications",)
"""The prefetch keys read when present (doses, for the session-day rules)."""
NOT_CHECKED_TOPIC: Mapping[str, str] = {
    "system": "urn:kaprules:card",
    "code": "not-checked",
    "display": "not checked",
}
"""The ``source.topic`` of the ``info`` card of a proposed Appointment without a start."""

_MAX_TOKEN_CHARS = 16 * 1024
_MAX_LIVE_TOKENS = 100_000
_MAX_CARDS = 10_000  # the cards remembered for feedback, oldest forgotten first
_MAX_DEPTH = MAX_DEPTH  # what kaprules.fhir reads: serve checks it once, on the bytes
_MAX_JWKS_BYTES = 1024 * 1024
_MAX_TEXT = 4000
_OUTCOMES = ("accepted", "overridden")


# --- issuers -------------------------------------------------------------------------------


@attrs.frozen
class Issuer:
    """An EHR whose tokens are accepted: its ``iss`` and its public keys.

    Attributes:
        iss: The ``iss`` claim of its tokens, compared exactly.
        keys: Its public keys (``jwt.PyJWK``), each with the algorithm it verifies.
        jku: The one URL its keys were fetched from, or None for a JWKS file. A token's
            ``jku`` header, when it has one, must be this URL.
    """

    iss: str
    keys: tuple[Any, ...]
    jku: str | None = None


def read_issuers(path: str | os.PathLike[str]) -> tuple[Issuer, ...]:
    """The allowlist of an ``ISSUERS.toml`` file.

    The file holds ``[[issuers]]`` tables, each with ``iss`` and one of ``jwks`` (the path
    of a JWK Set file, relative to the TOML file's folder) or ``jku`` (the https URL the
    keys are fetched from, once, now). Only EC P-384 keys (ES384) and RSA keys of 2048 bits
    or more (RS384) are taken.

    Args:
        path: The TOML file.

    Returns:
        The issuers, in file order.

    Raises:
        InputError: The file cannot be read or is not TOML, a table lacks ``iss`` or a key
            source, an ``iss`` is listed twice, a JWKS cannot be read, holds no usable key or
            a symmetric one, or a ``jku`` cannot be fetched. Each problem names its field,
            such as ``issuers[0].jwks``.
    """
    source = Path(path)
    try:
        with source.open("rb") as handle:
            document = tomllib.load(handle)
    except OSError as exc:
        raise InputError(Problem((), f"cannot read: {exc.strerror or 'unreadable'}")) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(Problem((), f"is not TOML: {terminal(str(exc))[:200]}")) from None
    unknown = sorted(set(document) - {"issuers"})
    problems = [Problem((key,), "is not a setting of the file", "unknown-field") for key in unknown]
    tables = document.get("issuers")
    if not isinstance(tables, list) or not tables:
        raise InputError(*problems, Problem(("issuers",), "needs at least one [[issuers]] table"))
    issuers: list[Issuer] = []
    seen: set[str] = set()
    for index, table in enumerate(tables):
        where: tuple[PathItem, ...] = ("issuers", index)
        try:
            issuer = _issuer(table, where, source.parent)
        except InputError as exc:
            problems += exc.problems
            continue
        if issuer.iss in seen:
            problems.append(Problem((*where, "iss"), "is listed twice", "duplicate"))
        seen.add(issuer.iss)
        issuers.append(issuer)
    if problems:
        raise InputError(*problems)
    return tuple(issuers)


def _issuer(table: object, where: tuple[PathItem, ...], folder: Path) -> Issuer:
    if not isinstance(table, dict):
        raise InputError(Problem(where, "must be a table", "type"))
    unknown = sorted(set(table) - {"iss", "jwks", "jku"})
    if unknown:
        raise InputError(
            *(Problem((*where, k), "is not a field of an issuer", "unknown-field") for k in unknown)
        )
    iss = table.get("iss")
    if not isinstance(iss, str) or not iss.strip() or len(iss) > 1000:
        raise InputError(Problem((*where, "iss"), "must be the issuer's URI, a string", "type"))
    if ("jwks" in table) == ("jku" in table):
        raise InputError(Problem(where, "must have one of jwks (a file) or jku (a URL)"))
    if "jwks" in table:
        name = table["jwks"]
        if not isinstance(name, str) or not name:
            raise InputError(Problem((*where, "jwks"), "must be a file path", "type"))
        try:
            with (folder / name).open("rb") as handle:
                data = handle.read(_MAX_JWKS_BYTES + 1)
        except OSError as exc:
            why = exc.strerror or "unreadable"
            raise InputError(Problem((*where, "jwks"), f"cannot read the file: {why}")) from None
        return Issuer(iss, _keys(data, (*where, "jwks")))
    url = table["jku"]
    if not isinstance(url, str) or not _jku_allowed(url):
        raise InputError(
            Problem((*where, "jku"), "must be an https URL (http only on loopback)", "value")
        )
    try:
        data = _fetch_jwks(url)
    except (OSError, ValueError) as exc:
        raise InputError(
            Problem(
                (*where, "jku"),
                f"cannot fetch the key set ({_why(exc)}); kaprules serve fetches it at "
                "start-up: give a jwks file instead where the service cannot reach it",
            )
        ) from None
    return Issuer(iss, _keys(data, (*where, "jku")), jku=url)


def _jku_allowed(url: str) -> bool:
    # https; plain http only to this machine (a key server beside the service, a test).
    if web_url(url) is None:
        return False
    parts = urllib.parse.urlsplit(url)
    loopback = parts.hostname in ("localhost", "127.0.0.1", "::1")
    return parts.scheme == "https" or (parts.scheme == "http" and loopback)


class _JkuRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to a URL a ``jku`` may be itself (`_jku_allowed`)."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        # Else an https jku redirected to plain http would let the path swap the keys.
        if not _jku_allowed(newurl):
            raise urllib.error.URLError("redirected to a URL that is not https (or loopback)")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _fetch_jwks(url: str) -> bytes:
    """The key set at ``url``, at most ``_MAX_JWKS_BYTES`` (and one) bytes of it."""
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    opener = urllib.request.build_opener(_JkuRedirects)
    with opener.open(request, timeout=_JKU_TIMEOUT) as response:
        data: bytes = response.read(_MAX_JWKS_BYTES + 1)
    return data


def _why(exc: BaseException) -> str:
    return terminal(str(getattr(exc, "reason", None) or type(exc).__name__))[:200]


JKU_TTL_SECONDS: Final = 3600
"""How long keys fetched from a ``jku`` URL are used before they are fetched again."""
JKU_RETRY_SECONDS: Final = 60
"""The least time between two fetches of one issuer's ``jku`` URL: a token whose ``kid``
is unknown makes the service fetch the keys again (the EHR may have rotated them), but no
more often than this, so that unknown ``kid`` values cannot make it fetch at will."""
_JKU_TIMEOUT = 10


class _KeySet:
    """An issuer's keys from its ``jku`` URL: fetched again when stale or for a new ``kid``."""

    def __init__(self, issuer: Issuer, now: float) -> None:
        assert issuer.jku is not None
        self.url = issuer.jku
        self.iss = issuer.iss
        self.keys = issuer.keys
        self.fetched = now
        self.tried = -float(JKU_RETRY_SECONDS)  # read at start-up: a new kid may fetch now

    def due(self, kid: object, now: float) -> bool:
        """Whether to fetch now.

        When the keys are older than the TTL or none has ``kid``, and there was no fetch
        within the last ``JKU_RETRY_SECONDS``.
        """
        if now - self.tried < JKU_RETRY_SECONDS:
            return False
        unknown = isinstance(kid, str) and all(k.key_id != kid for k in self.keys)
        return unknown or now - self.fetched >= JKU_TTL_SECONDS

    def refetch(self, now: float) -> None:
        """Fetch the keys again; on any failure keep the old ones and say why."""
        self.tried = now
        try:
            keys = _keys(_fetch_jwks(self.url), ("jku",))
        except (OSError, ValueError) as exc:
            _say(f"cannot fetch the keys of an issuer from its jku ({_why(exc)}); kept")
            return
        except InputError as exc:
            _say(f"the keys of an issuer at its jku are unusable ({exc.problems[0].what}); kept")
            return
        self.keys = keys
        self.fetched = now
        _say(f"fetched the keys of an issuer from its jku: {len(keys)} key(s)")


class _Refetch(Exception):
    # The token's issuer's keys are due to be fetched: fetch (off the event loop), check again.
    def __init__(self, keyset: _KeySet) -> None:
        super().__init__(keyset.url)
        self.keyset = keyset


def _keys(data: bytes, where: tuple[PathItem, ...]) -> tuple[Any, ...]:
    import jwt

    if len(data) > _MAX_JWKS_BYTES:
        raise InputError(Problem(where, f"holds more than {_MAX_JWKS_BYTES} bytes", "range"))
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        raise InputError(Problem(where, "is not a JSON Web Key Set (JSON)")) from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise InputError(Problem(where, "must be a JWK Set: an object with a 'keys' array"))
    keys = []
    for index, entry in enumerate(entries):
        at = (*where, "keys", index)
        if not isinstance(entry, dict):
            raise InputError(Problem(at, "must be a JSON Web Key (an object)", "type"))
        kty, crv, alg = entry.get("kty"), entry.get("crv"), entry.get("alg")
        if "d" in entry or kty == "oct":
            raise InputError(Problem(at, "is a private or symmetric key; give public keys only"))
        wanted = "ES384" if (kty, crv) == ("EC", "P-384") else "RS384" if kty == "RSA" else None
        if wanted is None or alg not in (None, wanted):
            raise InputError(
                Problem(at, "is neither an EC P-384 key (ES384) nor an RSA key (RS384)", "value")
            )
        if entry.get("use") not in (None, "sig"):
            raise InputError(Problem((*at, "use"), "must be 'sig'", "value"))
        try:
            key = jwt.PyJWK(entry, wanted)
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
            raise InputError(Problem(at, "is not a usable public key")) from None
        if wanted == "RS384" and key.key.key_size < 2048:
            raise InputError(Problem(at, "is an RSA key of fewer than 2048 bits", "range"))
        keys.append(key)
    return tuple(keys)


# --- refusals ------------------------------------------------------------------------------


class _Refusal(Exception):
    # An answer other than 200: the status, an OperationOutcome, and the log line's reason.
    def __init__(
        self,
        status: int,
        diagnostics: str,
        code: str = "invalid",
        expression: Sequence[str] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(diagnostics)
        self.status = status
        self.diagnostics = diagnostics
        self.code = code
        self.expression = tuple(expression)
        self.headers = dict(headers or {})
        self.issues: list[tuple[str, str, Sequence[str]]] = [(code, diagnostics, self.expression)]


def _outcome(issues: Iterable[tuple[str, str, Sequence[str]]]) -> dict[str, Any]:
    """An OperationOutcome of ``(code, diagnostics, expression)`` issues."""
    listed = []
    for code, diagnostics, expression in issues:
        issue: dict[str, Any] = {"severity": "error", "code": code, "diagnostics": diagnostics}
        if expression:
            issue["expression"] = list(expression)
        listed.append(issue)
    return {"resourceType": "OperationOutcome", "issue": listed}


def _input_refusal(exc: InputError, status: int = 400) -> _Refusal:
    # The problems name elements and never show values: safe to answer and to log.
    problems = exc.problems[:20]
    refusal = _Refusal(status, "; ".join(str(p) for p in problems), "invalid")
    refusal.issues = [("invalid", p.what, (p.where,) if p.where else ()) for p in problems]
    return refusal


# --- tokens --------------------------------------------------------------------------------


class _Tokens:
    """The JWT checks: signature, issuer, audience, times, and replayed ``jti``."""

    def __init__(
        self,
        issuers: Sequence[Issuer],
        clock: Callable[[], float],
        replay: _MemoryState | _SharedState | None = None,
    ) -> None:
        self.issuers = {issuer.iss: issuer for issuer in issuers}
        self.clock = clock
        self.keysets = {i.iss: _KeySet(i, clock()) for i in issuers if i.jku is not None}
        self.replay = replay if replay is not None else _MemoryState()

    def check(
        self, authorization: str | None, audiences: Sequence[str], *, refetched: bool = False
    ) -> dict[str, Any]:
        """The token's claims, or a refusal.

        `_Refetch` when its issuer's keys are due to be fetched again (not when
        ``refetched``: they just were).
        """
        import jwt

        if authorization is None:
            raise self._refuse("no Authorization header", "login", error=False)
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise self._refuse("the Authorization header is not 'Bearer <JWT>'", "login")
        if len(token) > _MAX_TOKEN_CHARS:
            raise self._refuse("the token is too long")
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError:
            raise self._refuse("the token is not a JWT") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            shown = echo(alg, 20) if isinstance(alg, str) else "none given"
            raise self._refuse(f"the algorithm {shown} is not accepted (ES384 or RS384 only)")
        iss = unverified.get("iss")
        issuer = self.issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise self._refuse("the issuer (iss) is not on the allowlist")
        jku = header.get("jku")
        if jku is not None and issuer.jku is not None and jku != issuer.jku:
            raise self._refuse("the token's jku is not its issuer's allowlisted URL")
        kid = header.get("kid")
        known = issuer.keys
        keyset = self.keysets.get(issuer.iss)
        if keyset is not None:
            if not refetched and keyset.due(kid, self.clock()):
                raise _Refetch(keyset)
            known = keyset.keys
        keys = [
            k for k in known if k.algorithm_name == alg and (kid is None or k.key_id in (None, kid))
        ]
        if not keys:
            raise self._refuse("no key of the issuer matches the token's kid and alg")
        claims: dict[str, Any] | None = None
        for key in keys:
            try:
                claims = jwt.decode(
                    token,
                    key.key,
                    algorithms=[alg],
                    audience=list(audiences),
                    issuer=iss,
                    leeway=LEEWAY_SECONDS,
                    options={"require": ["iss", "aud", "exp", "iat", "jti"]},
                )
                break
            except jwt.InvalidSignatureError:
                continue
            except jwt.ExpiredSignatureError:
                raise self._refuse("the token has expired", "expired") from None
            except jwt.MissingRequiredClaimError as exc:
                raise self._refuse(f"the token has no {exc.claim} claim") from None
            except jwt.InvalidAudienceError:
                raise self._refuse("the token's aud is not this endpoint's URL") from None
            except jwt.ImmatureSignatureError:
                raise self._refuse("the token is issued in the future (iat)") from None
            except jwt.InvalidTokenError as exc:
                raise self._refuse(f"the token is invalid ({type(exc).__name__})") from None
        if claims is None:
            raise self._refuse("the token's signature does not verify")
        for name in ("exp", "iat"):  # RFC 7519's NumericDate; PyJWT also reads "1700000000"
            if isinstance(claims[name], bool) or not isinstance(claims[name], int | float):
                raise self._refuse(f"the token's {name} must be a number (a NumericDate)")
        jti, exp = claims["jti"], claims["exp"]
        if not isinstance(jti, str) or not 0 < len(jti) <= 256:
            raise self._refuse("the token's jti must be a string of 1 to 256 characters")
        now = self.clock()
        if exp > now + MAX_TOKEN_LIFETIME + LEEWAY_SECONDS:
            raise self._refuse(f"the token expires more than {MAX_TOKEN_LIFETIME} s from now")
        assert isinstance(iss, str)
        first = self.replay.first_use(iss, jti, float(exp), now)
        if first is None:
            raise _Refusal(503, "too many live tokens; try again later", "transient")
        if not first:
            raise self._refuse("the token was used before (its jti is replayed)")
        return claims

    @staticmethod
    def _refuse(why: str, code: str = "security", *, error: bool = True) -> _Refusal:
        # RFC 6750: 401 with a challenge; invalid_token once a token was given.
        challenge = 'Bearer error="invalid_token"' if error else "Bearer"
        return _Refusal(401, why, code, headers={"WWW-Authenticate": challenge})


# --- the service ---------------------------------------------------------------------------


@attrs.frozen
class _Card:
    # What feedback on a card needs: the finding's rule and sessions, who was shown it.
    service: str
    rule: str
    sessions: tuple[str, ...]
    appointment: str | None
    patient: str | None
    user: str | None
    suggestions: Mapping[str, str]  # suggestion uuid -> the moved start
    reasons: frozenset[str]


class _Service:
    """One ``appointment-book`` service: a protocol (or its versions) and the clinic's days."""

    def __init__(
        self,
        protocol: Protocol | ProtocolVersions,
        calendar: ClinicCalendar | None,
        timezone: str | None,
        base_url: str,
    ) -> None:
        self.protocol = protocol
        self.calendar = calendar
        self.timezone = timezone
        self.id = protocol.id
        self.url = f"{base_url}/cds-services/{self.id}"
        self.base_url = base_url

    def version(self, day: dt.date) -> Protocol:
        if isinstance(self.protocol, Protocol):
            return self.protocol
        return self.protocol.in_force(day) or self.protocol.latest

    def describe(self) -> dict[str, Any]:
        latest = self.version(dt.date.max)
        title = latest.title or latest.id
        return {
            "hook": HOOK,
            "id": self.id,
            "title": f"kaprules: {title}"[:200],
            "description": (
                f"Checks proposed appointments against {latest.id} version {latest.version} "
                "before they are booked: a critical card for each rule that refuses one, a "
                "warning card for each warning, and a suggestion of the next bookable day."
            ),
            "prefetch": dict(PREFETCH),
        }

    def answer(
        self, document: object, now: dt.datetime, cards: _MemoryState | _SharedState
    ) -> dict[str, Any]:
        request = _hook_request(document)
        if len(request["appointments"]) > MAX_PROPOSED:
            why = f"context.appointments holds more than {MAX_PROPOSED} Appointments, the most"
            raise _Refusal(
                400, f"{why} a call is checked for", "too-costly", ("context.appointments",)
            )
        proposed = []
        listed: list[dict[str, Any]] = []
        for path, resource in request["appointments"]:
            if _unscheduled(resource):
                listed.append(self._not_checked(path))
            else:
                proposed.append((path, resource))
        zone = self.timezone or _zone_of([r for _, r in proposed], request["history"])
        if zone is None:
            if any(r.get("status") not in NOT_SESSIONS for _, r in proposed):
                raise _Refusal(
                    400,
                    "no timezone: no Appointment has the timezone extension "
                    f"({TIMEZONE_EXTENSION}) and the service has no --timezone",
                    "required",
                    ("context.appointments",),
                )
            zone = "UTC"  # nothing is judged: the history is only read, to check it
        ids = {r.get("id") for _, r in proposed if isinstance(r.get("id"), str)}
        history, where = _history_bundle(request["history"], ids)
        try:
            course = course_from_bundle(history, timezone=zone, depth_checked=True).course
        except InputError as exc:
            raise _input_refusal(_placed(exc, where)) from None
        booked: list[tuple[Session, dict[str, Any]]] = []
        for path, resource in proposed:
            session = self._proposed(path, resource, zone, course, booked)
            if session is not None:
                booked.append((session, resource))
        booked.sort(key=lambda pair: pair[0].start)
        protocol = self.version(course.local(now).date())
        judged: list[dict[str, Any]] = []
        memos: dict[str, _Card] = {}
        for index, (session, resource) in enumerate(booked):
            before = [s for s, _ in booked[:index]]
            so_far = attrs.evolve(course, sessions=(*course.sessions, *before))
            report = check_booking(so_far, session, now, protocol, self.calendar)
            move = None
            if not report.ok:
                move = self._move(so_far, session, resource, now, protocol)
            for finding in report.findings:
                day = so_far.local(session.start).date().isoformat()
                card = self._card(finding, day, protocol, move)
                memos[card["uuid"]] = self._memo(finding, session, resource, request, card)
                judged.append(card)
                move = None  # one suggestion per appointment: on its first refusal
        if memos:
            cards.remember(memos)
        return {"cards": judged + listed}

    def _not_checked(self, path: tuple[PathItem, ...]) -> dict[str, Any]:
        """The info card of a proposed Appointment without a start: nothing to judge."""
        where = render_path(path)
        return {
            "uuid": str(uuid.uuid4()),
            "summary": "Not checked: a proposed appointment without a start",
            "indicator": "info",
            "detail": (
                f"The proposed Appointment at `{where}` has no `start`, which FHIR R4 allows "
                "of a proposed appointment (invariant app-3). The protocol's rules judge a "
                f"booking by its day, so the {markdown(self.id)} service did not check it: ask "
                "again once it has a start."
            ),
            "source": {"label": "kaprules", "topic": dict(NOT_CHECKED_TOPIC)},
        }

    def _proposed(
        self,
        path: tuple[PathItem, ...],
        resource: dict[str, Any],
        zone: str,
        course: Course,
        booked: list[tuple[Session, dict[str, Any]]],
    ) -> Session | None:
        one = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": resource}]}
        try:
            read = course_from_bundle(one, timezone=zone, depth_checked=True)
        except InputError as exc:
            raise _input_refusal(_placed(exc, {0: path})) from None
        if not read.course.sessions:
            return None  # cancelled, no-show, entered in error: nothing to book
        session = read.course.sessions[0]
        taken = {s.id for s in course.sessions} | {s.id for s, _ in booked}
        if resource.get("id") is None or session.id in taken:
            number = 1
            while f"proposed-{number}" in taken:
                number += 1
            session = attrs.evolve(session, id=f"proposed-{number}")
        return session

    def _move(
        self,
        course: Course,
        session: Session,
        resource: dict[str, Any],
        now: dt.datetime,
        protocol: Protocol,
    ) -> tuple[str, dict[str, Any]] | None:
        """The appointment moved to the next bookable day, when one is and it is accepted."""
        answer = forecast(course, now, protocol, self.calendar)
        upcoming = answer.next
        if upcoming is None or upcoming.kind is not session.kind:
            return None
        at = (self.calendar or ClinicCalendar()).at
        try:
            start = at_local(upcoming.bookable_from, at, course.zone)
        except NoSuchDay:
            return None
        if start == session.start:
            return None
        moved = attrs.evolve(session, start=start)
        if not check_booking(course, moved, now, protocol, self.calendar).ok:
            return None
        text = start.isoformat()
        end = None
        old_end, old = resource.get("end"), resource.get("start")
        if isinstance(old_end, str) and isinstance(old, str):
            try:
                length = dt.datetime.fromisoformat(old_end) - dt.datetime.fromisoformat(old)
                # An end before the start (R4 app-2) is not moved; one in year 9999 overflows.
                end = (start + length).isoformat() if length > dt.timedelta(0) else None
            except (ValueError, TypeError, OverflowError):
                end = None
        return text, _suggested(resource, text, end)

    def _card(
        self,
        finding: Finding,
        day: str,
        protocol: Protocol,
        move: tuple[str, dict[str, Any]] | None,
    ) -> dict[str, Any]:
        indicator = {
            Severity.ERROR: "critical",
            Severity.WARNING: "warning",
            Severity.INFO: "info",
        }[finding.severity]
        verb = {"critical": "Not bookable", "warning": "Warning", "info": "Note"}[indicator]
        rule = finding.rule
        summary = f"{verb} on {day}: {rule}"[:139]
        lines = [
            markdown(finding.message),
            "",
            f"Rule `{rule}` of {markdown(protocol.id)} version {markdown(protocol.version)}.",
        ]
        card: dict[str, Any] = {
            "uuid": str(uuid.uuid4()),
            "summary": summary,
            "indicator": indicator,
            "detail": "\n".join(lines),
            "source": {
                "label": "kaprules",
                "topic": {"system": RULE_SYSTEM, "code": rule, "display": rule},
            },
        }
        link = self._link(finding, protocol)
        if link is not None:
            card["source"]["url"] = link
            card["links"] = [{"label": f"What {rule} requires", "url": link, "type": "absolute"}]
        if move is not None:
            start, updated = move
            moved_day = start[:10]
            card["suggestions"] = [
                {
                    "label": f"Move to {moved_day}, the next bookable day",
                    "uuid": str(uuid.uuid4()),
                    "isRecommended": True,
                    "actions": [
                        {
                            "type": "update",
                            "description": f"Move the appointment to {start}",
                            "resource": updated,
                        }
                    ],
                }
            ]
            card["selectionBehavior"] = "at-most-one"
        if rule in protocol.waivable_rules:
            meanings = {**REASONS, **dict(protocol.reasons)}
            card["overrideReasons"] = [
                {"system": WAIVER_REASON_SYSTEM, "code": code, "display": meanings[code]}
                for code in sorted(meanings)
            ]
        return card

    def _link(self, finding: Finding, protocol: Protocol) -> str | None:
        if any(r.id == finding.rule for r in protocol.rules):
            quoted = urllib.parse.quote(finding.rule, safe="")
            return f"{self.base_url}/rules/{self.id}/{quoted}"
        url = None if finding.help is None else finding.help.url
        return url if url is not None and web_url(url) is not None else None

    def _memo(
        self,
        finding: Finding,
        session: Session,
        resource: dict[str, Any],
        request: dict[str, Any],
        card: dict[str, Any],
    ) -> _Card:
        suggestions = {
            s["uuid"]: s["actions"][0]["resource"]["start"] for s in card.get("suggestions", ())
        }
        reasons = frozenset(c["code"] for c in card.get("overrideReasons", ()))
        appointment = resource.get("id")
        return _Card(
            self.id,
            finding.rule,
            tuple(finding.sessions) or (str(session.id),),
            appointment if isinstance(appointment, str) else None,
            request["patient"],
            request["user"],
            suggestions,
            reasons,
        )


# --- what a suggestion carries ---------------------------------------------------------------

_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_REFERENCE = re.compile(
    r"(https?://[A-Za-z0-9\-.:]+(/[A-Za-z0-9\-._~]+)*/)?"
    r"[A-Z][A-Za-z]{0,63}/[A-Za-z0-9\-.]{1,64}(/_history/[A-Za-z0-9\-.]{1,64})?"
)
_DATE_TIME = re.compile(
    r"[0-9]{4}(-[0-9]{2}(-[0-9]{2}(T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?"
    r"(Z|[+-][0-9]{2}:[0-9]{2}))?)?)?"
)
_ZONE = re.compile(r"[A-Za-z0-9_+\-/]{1,64}")
_TYPE_CODE = re.compile(r"[A-Z]{2,10}")
_PARTICIPATION_SYSTEMS = (PARTICIPATION, "http://hl7.org/fhir/v3/ParticipationType")
_APPOINTMENT_STATUSES = HELD | PLANNED | NOT_SESSIONS
_STATUS_CODE = re.compile(r"[a-z]{1,16}(-[a-z]{1,16}){0,2}")  # a participant's status
_REQUIRED = frozenset({"required", "optional", "information-only"})
_KINDS = frozenset(k.value for k in Kind)


def _unscheduled(resource: Mapping[str, Any]) -> bool:
    """Whether ``resource`` is a proposed Appointment without a start (R4 app-3 allows it)."""
    return resource.get("status") == "proposed" and resource.get("start") is None


def _matches(pattern: re.Pattern[str], value: object) -> bool:
    return isinstance(value, str) and pattern.fullmatch(value) is not None


def _listed(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _suggested(resource: Mapping[str, Any], start: str, end: str | None) -> dict[str, Any]:
    """The proposed Appointment moved to ``start``, as a suggestion carries it.

    Only the elements kaprules reads to judge a booking and the moved times, each kept only
    in the shape FHIR gives it: its ``id`` and ``meta.versionId``, kaprules' session-id
    ``identifier``, ``status``, the session-kind ``serviceType`` codings, ``start`` and
    ``end``, ``minutesDuration``, ``requestedPeriod``, the timezone extension, and each
    participant's ``type`` (v3-ParticipationType codes), ``actor.reference`` (``Type/id``
    or its absolute URL), ``required`` and ``status`` (a code). Nothing else: no narrative
    (``text``), no ``display`` or ``identifier`` of a reference, no ``contained``, no free
    text (``description``, ``comment``, ``patientInstruction``), no reasons, no other
    extension. No name, birth date or identifier of the patient can be in it.
    """
    moved: dict[str, Any] = {"resourceType": "Appointment"}
    if _matches(_ID, resource.get("id")):
        moved["id"] = resource["id"]
    meta = resource.get("meta")
    if isinstance(meta, dict) and _matches(_ID, meta.get("versionId")):
        moved["meta"] = {"versionId": meta["versionId"]}
    extensions = [
        {"url": TIMEZONE_EXTENSION, "valueCode": e["valueCode"]}
        for e in _listed(resource.get("extension"))
        if isinstance(e, dict)
        and e.get("url") == TIMEZONE_EXTENSION
        and _matches(_ZONE, e.get("valueCode"))
    ]
    if extensions:
        moved["extension"] = extensions[:1]
    identifiers = [
        {"system": SESSION_ID_SYSTEM, "value": i["value"]}
        for i in _listed(resource.get("identifier"))
        if isinstance(i, dict)
        and i.get("system") == SESSION_ID_SYSTEM
        and _matches(_ID, i.get("value"))
    ]
    if identifiers:
        moved["identifier"] = identifiers
    if resource.get("status") in _APPOINTMENT_STATUSES:
        moved["status"] = resource["status"]
    kinds = [
        {"coding": [{"system": KIND_SYSTEM, "code": c["code"]}]}
        for concept in _listed(resource.get("serviceType"))
        if isinstance(concept, dict)
        for c in _listed(concept.get("coding"))
        if isinstance(c, dict) and c.get("system") == KIND_SYSTEM and c.get("code") in _KINDS
    ]
    if kinds:
        moved["serviceType"] = kinds
    moved["start"] = start
    if end is not None:
        moved["end"] = end
    minutes = resource.get("minutesDuration")
    if isinstance(minutes, int) and not isinstance(minutes, bool) and 0 < minutes < 100_000:
        moved["minutesDuration"] = minutes
    periods = [p for p in map(_period, _listed(resource.get("requestedPeriod"))) if p]
    if periods:
        moved["requestedPeriod"] = periods
    participants = [p for p in map(_participant, _listed(resource.get("participant"))) if p]
    if participants:
        moved["participant"] = participants
    return moved


def _period(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {k: value[k] for k in ("start", "end") if _matches(_DATE_TIME, value.get(k))}


def _participant(value: object) -> dict[str, Any]:
    """A participant with its type codes, its actor's reference, required and status."""
    if not isinstance(value, dict):
        return {}
    kept: dict[str, Any] = {}
    types = [
        {"coding": codings}
        for concept in _listed(value.get("type"))
        if isinstance(concept, dict)
        and (
            codings := [
                {"system": c["system"], "code": c["code"]}
                for c in _listed(concept.get("coding"))
                if isinstance(c, dict)
                and c.get("system") in _PARTICIPATION_SYSTEMS
                and _matches(_TYPE_CODE, c.get("code"))
            ]
        )
    ]
    if types:
        kept["type"] = types
    actor = value.get("actor")
    if isinstance(actor, dict) and _matches(_REFERENCE, actor.get("reference")):
        kept["actor"] = {"reference": actor["reference"]}
    if not kept:
        return {}  # neither a type nor an actor (R4 app-1): not a participant to keep
    if value.get("required") in _REQUIRED:
        kept["required"] = value["required"]
    if _matches(_STATUS_CODE, value.get("status")):
        kept["status"] = value["status"]  # R4's, or another version's (action-needed)
    return kept


class _MemoryState:
    """The tokens seen and the cards answered, in this process's memory (one worker).

    ``first_use`` is True for a token's first use, False for a replay, None when too many
    live tokens are remembered. The cards answered lately are kept by uuid for their
    feedback, the last ``_MAX_CARDS``.
    """

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str], float] = {}
        self.cards: dict[str, _Card] = {}
        self.lock = threading.Lock()

    def first_use(self, iss: str, jti: str, exp: float, now: float) -> bool | None:
        with self.lock:
            if len(self.seen) >= _MAX_LIVE_TOKENS:
                self.seen = {k: e for k, e in self.seen.items() if e + LEEWAY_SECONDS >= now}
            if len(self.seen) >= _MAX_LIVE_TOKENS:
                return None
            if (iss, jti) in self.seen:
                return False
            self.seen[(iss, jti)] = exp
            return True

    def remember(self, cards: Mapping[str, _Card]) -> None:
        with self.lock:
            self.cards.update(cards)
            while len(self.cards) > _MAX_CARDS:
                del self.cards[next(iter(self.cards))]

    def get(self, key: str) -> _Card | None:
        with self.lock:
            return self.cards.get(key)


STATE_FILE: Final = "kaprules-serve.sqlite3"
"""The shared state's file in ``--state-dir``: the tokens seen and the cards answered."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS seen (
    iss TEXT NOT NULL, jti TEXT NOT NULL, exp REAL NOT NULL, PRIMARY KEY (iss, jti)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_exp ON seen (exp);
CREATE TABLE IF NOT EXISTS cards (uuid TEXT PRIMARY KEY, card TEXT NOT NULL);
"""
_PURGE_EVERY = 1000  # writes between purges of expired tokens and old cards


class _SharedState:
    """The tokens seen and the cards answered, in one SQLite file the workers share.

    A token's first use is an INSERT into a table whose primary key is ``(iss, jti)``: of
    two workers given one token, SQLite lets one insert it, and the other's INSERT fails
    on the duplicate, a replay. The file is in WAL mode (readers never wait for the
    writer) without a sync per commit: a token is remembered once its INSERT commits, and
    only a crash of the whole machine may forget the last ones. Tokens past their ``exp``
    (and leeway) and cards past the last ``_MAX_CARDS`` are purged every
    ``_PURGE_EVERY`` writes. Each process opens its own connection (a forked worker too).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.pid = -1
        self.connection: Any = None
        self.writes = 0
        self.live = 0
        self.connect()  # here, so that a file that cannot be opened fails at start

    def connect(self) -> Any:
        import sqlite3

        if self.pid != os.getpid():
            # Its cards name patients and users: the file (and SQLite's -wal and -shm files,
            # made with its mode) is the service's user's alone, as the feedback log is.
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
            self.connection = sqlite3.connect(
                self.path, timeout=10, isolation_level=None, check_same_thread=False
            )
            self.connection.executescript(
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;" + _SCHEMA
            )
            self.pid = os.getpid()
        return self.connection

    def first_use(self, iss: str, jti: str, exp: float, now: float) -> bool | None:
        import sqlite3

        connection = self.connect()
        if self.live >= _MAX_LIVE_TOKENS:
            self.purge(now)
            if self.live >= _MAX_LIVE_TOKENS:
                return None
        try:
            connection.execute("INSERT INTO seen VALUES (?, ?, ?)", (iss, jti, exp))
        except sqlite3.IntegrityError:
            return False
        self.live += 1
        self.wrote(now)
        return True

    def remember(self, cards: Mapping[str, _Card]) -> None:
        rows = [
            (key, json.dumps(attrs.asdict(card, recurse=False), default=list))
            for key, card in cards.items()
        ]
        connection = self.connect()
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.executemany("INSERT OR REPLACE INTO cards VALUES (?, ?)", rows)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
        self.wrote(time.time(), len(rows))

    def get(self, key: str) -> _Card | None:
        row = self.connect().execute("SELECT card FROM cards WHERE uuid = ?", (key,)).fetchone()
        if row is None:
            return None
        try:
            fields = json.loads(row[0])
            fields |= {
                "sessions": tuple(fields["sessions"]),
                "reasons": frozenset(fields["reasons"]),
            }
            return _Card(**fields)
        except (ValueError, TypeError, KeyError):  # written by another kaprules version
            return None

    def wrote(self, now: float, count: int = 1) -> None:
        self.writes += count
        if self.writes >= _PURGE_EVERY:
            self.purge(now)

    def purge(self, now: float) -> None:
        connection = self.connect()
        connection.execute("DELETE FROM seen WHERE exp < ?", (now - LEEWAY_SECONDS,))
        connection.execute(
            "DELETE FROM cards WHERE rowid <= (SELECT max(rowid) FROM cards) - ?", (_MAX_CARDS,)
        )
        self.live = connection.execute("SELECT count(*) FROM seen").fetchone()[0]
        self.writes = 0


# --- reading requests ------------------------------------------------------------------------


def _string(value: object, where: str, *, required: bool = False, limit: int = 1000) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > limit:
        what = "is required" if value is None else f"must be a string of 1 to {limit} characters"
        raise _Refusal(400, f"{where} {what}", "required" if value is None else "value", (where,))
    return value


def _hook_request(document: object) -> dict[str, Any]:
    """The parts of a hook call the service reads, checked; a refusal names the element."""
    if not isinstance(document, dict):
        raise _Refusal(400, "the request must be a JSON object", "structure")
    hook = _string(document.get("hook"), "hook", required=True)
    if hook != HOOK:
        raise _Refusal(400, f"hook must be '{HOOK}'", "not-supported", ("hook",))
    _string(document.get("hookInstance"), "hookInstance", required=True, limit=256)
    context = document.get("context")
    if not isinstance(context, dict):
        raise _Refusal(400, "context must be an object", "structure", ("context",))
    patient = _string(context.get("patientId"), "context.patientId")
    user = _string(context.get("userId"), "context.userId")
    given = context.get("appointments")
    if given is None:
        raise _Refusal(
            400, "context.appointments is required", "required", ("context.appointments",)
        )
    appointments: list[tuple[tuple[PathItem, ...], dict[str, Any]]] = []
    for path, resource in _resources(given, ("context", "appointments"), plain_array=True):
        if resource.get("resourceType") != "Appointment":
            where = render_path((*path, "resourceType"))
            raise _Refusal(400, f"{where} must be 'Appointment'", "value", (where,))
        appointments.append((path, resource))
    prefetch = document.get("prefetch", {})
    if not isinstance(prefetch, dict):
        raise _Refusal(400, "prefetch must be an object", "structure", ("prefetch",))
    missing = [f"prefetch.{key}" for key in REQUIRED_PREFETCH if key not in prefetch]
    issues: list[tuple[str, str, Sequence[str]]] = []
    if missing:
        issues.append(
            (
                "required",
                f"the call lacks the prefetch {', '.join(missing)} (a Bundle, or null for no "
                "data); this service does not query the FHIR server",
                missing,
            )
        )
    read = []
    for key in (*REQUIRED_PREFETCH, *OPTIONAL_PREFETCH):
        value = prefetch.get(key)
        if value is None:
            continue
        why = _incomplete(value)
        if why is None:
            read.append(key)
        elif key in REQUIRED_PREFETCH:
            issues.append(
                (
                    "incomplete",
                    f"prefetch.{key} {why}; this service does not query the FHIR server",
                    (f"prefetch.{key}",),
                )
            )
        # An optional key the EHR could not give whole is read as if it were not sent.
    if issues:
        refusal = _Refusal(412, "; ".join(why for _, why, _ in issues), "incomplete")
        refusal.issues = issues
        raise refusal
    history: list[tuple[tuple[PathItem, ...], dict[str, Any]]] = []
    for key in read:
        history += _resources(prefetch[key], ("prefetch", key), plain_array=False)
    return {"appointments": appointments, "history": history, "patient": patient, "user": user}


def _incomplete(value: object) -> str | None:
    """Why a prefetched value is not the whole answer to its query, or None when it is.

    CDS Hooks 2.0: a CDS Client that fails to prefetch SHOULD send OperationOutcome(s),
    which the service SHOULD check for, and it MAY paginate. This service reads what it is
    sent and fetches nothing, so an OperationOutcome (alone, or in the Bundle with an
    ``error`` or ``fatal`` issue) and a Bundle with a ``next`` link are data it lacks.
    """
    if not isinstance(value, dict):
        return None
    kind = value.get("resourceType")
    if kind == "OperationOutcome":
        return "is an OperationOutcome: the EHR could not fetch it"
    if kind != "Bundle":
        return None
    for link in _listed(value.get("link")):
        if isinstance(link, dict) and link.get("relation") == "next":
            return "is one page of several (it has a next link), and the others were not sent"
    for entry in _listed(value.get("entry")):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict) and resource.get("resourceType") == "OperationOutcome":
            severities = {
                i.get("severity") for i in _listed(resource.get("issue")) if isinstance(i, dict)
            }
            if severities & {"error", "fatal"}:
                return "holds an OperationOutcome with an error: the EHR's search failed"
    return None


def _resources(
    value: object, path: tuple[PathItem, ...], *, plain_array: bool
) -> list[tuple[tuple[PathItem, ...], dict[str, Any]]]:
    """The resources of a Bundle (or of the hook examples' plain array), with their paths."""
    entries: list[tuple[tuple[PathItem, ...], object]]
    if plain_array and isinstance(value, list):
        entries = [((*path, i), r) for i, r in enumerate(value)]
    else:
        where = render_path(path)
        if not isinstance(value, dict) or value.get("resourceType") != "Bundle":
            raise _Refusal(400, f"{where} must be a FHIR Bundle", "structure", (where,))
        entry = value.get("entry", [])
        if not isinstance(entry, list):
            raise _Refusal(400, f"{where}.entry must be an array", "structure", (f"{where}.entry",))
        entries = []
        for i, item in enumerate(entry):
            if not isinstance(item, dict):
                at = render_path((*path, "entry", i))
                raise _Refusal(400, f"{at} must be an object", "structure", (at,))
            entries.append(((*path, "entry", i, "resource"), item.get("resource")))
    resources = []
    for where_path, resource in entries:
        if not isinstance(resource, dict):
            at = render_path(where_path)
            raise _Refusal(400, f"{at} must be a FHIR resource (an object)", "structure", (at,))
        resources.append((where_path, resource))
    return resources


def _zone_of(*groups: Sequence[Any]) -> str | None:
    for group in groups:
        for item in group:
            resource = item[1] if isinstance(item, tuple) else item
            for extension in resource.get("extension") or ():
                if isinstance(extension, dict) and extension.get("url") == TIMEZONE_EXTENSION:
                    code = extension.get("valueCode")
                    if isinstance(code, str):
                        return code
    return None


def _history_bundle(
    history: list[tuple[tuple[PathItem, ...], dict[str, Any]]], proposed: set[Any]
) -> tuple[dict[str, Any], dict[int, tuple[PathItem, ...]]]:
    """One Bundle of the prefetched resources, and where each entry came from."""
    entries: list[dict[str, Any]] = []
    where: dict[int, tuple[PathItem, ...]] = {}
    for path, resource in history:
        # The appointment being booked may already be in the EHR: the proposal replaces it.
        # A proposed one without a start (R4 app-3) is no session yet: nothing to count.
        known = resource.get("id")
        replaced = isinstance(known, str) and known in proposed
        if resource.get("resourceType") == "Appointment" and (replaced or _unscheduled(resource)):
            continue
        where[len(entries)] = path
        entries.append({"resource": resource})
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}, where


def _placed(exc: InputError, where: Mapping[int, tuple[PathItem, ...]]) -> InputError:
    """``exc`` with ``Bundle.entry[i].resource`` paths named as in the request."""
    problems = []
    for problem in exc.problems:
        path = problem.path
        if len(path) >= 4 and path[:2] == ("Bundle", "entry") and isinstance(path[2], int):
            origin = where.get(path[2])
            if origin is not None:
                path = (*origin, *path[4:])
        problems.append(Problem(path, problem.what, problem.code))
    return InputError(*problems)


def _decode(body: bytes) -> object:
    def constant(name: str) -> object:
        raise ValueError(name)

    if _fast.ENABLED and b"\\" not in body:
        import orjson

        # Without a backslash, no string has an escaped quote: every other piece between
        # quotes is outside the strings, and in valid JSON that is the structure and the
        # numbers. orjson reads strict JSON as json.loads does (NaN refused, the last of
        # repeated keys kept) but for integers past 64 bits, which it makes floats: a run of
        # 19 digits outside the strings goes to json.loads, as does what orjson refuses,
        # and json.loads words every refusal. The depth is read from the brackets there.
        outside = b"".join(body.split(b'"')[::2])
        if not _LONG_DIGITS.search(outside):
            try:
                document = orjson.loads(body)
            except orjson.JSONDecodeError:
                pass
            else:
                if not _brackets_within(outside, _MAX_DEPTH):
                    raise _Refusal(
                        400, f"the body is nested more than {_MAX_DEPTH} deep", "too-long"
                    )
                return document
    try:
        document = json.loads(body, parse_constant=constant)
    except RecursionError:
        raise _Refusal(400, f"the body is nested more than {_MAX_DEPTH} deep", "too-long") from None
    except (ValueError, UnicodeDecodeError):
        raise _Refusal(400, "the body is not JSON (UTF-8)", "structure") from None
    if not within_depth(document, _MAX_DEPTH):
        raise _Refusal(400, f"the body is nested more than {_MAX_DEPTH} deep", "too-long")
    return document


def _brackets_within(structure: bytes, limit: int) -> bool:
    """Whether the brackets of valid JSON (strings taken out) nest as `within_depth` allows.

    Each pass takes out the innermost pairs, ``[]`` and ``{}`` alike: the passes needed to
    take out all are the deepest nesting, which may be ``limit + 1`` (the outermost
    container and ``limit`` inside it).
    """
    brackets = structure.translate(_PAIRS, _NOT_BRACKETS)
    for _ in range(limit + 1):
        if not brackets:
            return True
        brackets = brackets.replace(b"()", b"")
    return not brackets


_LONG_DIGITS = re.compile(rb"[0-9]{19}")
_PAIRS = bytes.maketrans(b"[]{}", b"()()")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


# --- feedback ------------------------------------------------------------------------------


def _feedback_lines(
    document: object,
    service: _Service,
    cards: _MemoryState | _SharedState,
    claims: Mapping[str, Any],
    now: dt.datetime,
) -> list[bytes]:
    if not isinstance(document, dict) or not isinstance(document.get("feedback"), list):
        raise _Refusal(400, "feedback must be an array", "structure", ("feedback",))
    lines = []
    for index, item in enumerate(document["feedback"]):
        at = f"feedback[{index}]"
        if not isinstance(item, dict):
            raise _Refusal(400, f"{at} must be an object", "structure", (at,))
        card_id = _string(item.get("card"), f"{at}.card", required=True, limit=256)
        outcome = _string(item.get("outcome"), f"{at}.outcome", required=True)
        if outcome not in _OUTCOMES:
            raise _Refusal(400, f"{at}.outcome must be accepted or overridden", "value", (at,))
        stamp = _string(item.get("outcomeTimestamp"), f"{at}.outcomeTimestamp", required=True)
        assert stamp is not None
        try:
            when = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        except ValueError:
            when = None
        if when is None or when.utcoffset() is None:
            where = f"{at}.outcomeTimestamp"
            raise _Refusal(400, f"{where} must be an ISO timestamp with offset", "value", (where,))
        assert card_id is not None
        card = cards.get(card_id)
        if card is not None and card.service != service.id:
            card = None  # another service's card: its rule is not this protocol's
        record: dict[str, Any] = {
            "recorded_at": now.isoformat(),
            "service": service.id,
            "card": card_id,
            "outcome": outcome,
            "outcome_at": when.isoformat(),
            "issuer": claims.get("iss"),
            "known_card": card is not None,
        }
        if card is not None:
            record |= {
                "rule": card.rule,
                "sessions": list(card.sessions),
                "appointment": card.appointment,
                "patient": card.patient,
                "user": card.user,
            }
        if outcome == "accepted":
            accepted = item.get("acceptedSuggestions")
            if not isinstance(accepted, list) or not accepted:
                where = f"{at}.acceptedSuggestions"
                raise _Refusal(400, f"{where} is required for accepted", "required", (where,))
            moves = []
            for number, suggestion in enumerate(accepted):
                where = f"{at}.acceptedSuggestions[{number}].id"
                if not isinstance(suggestion, dict):
                    raise _Refusal(400, f"{where} is required", "required", (where,))
                key = _string(suggestion.get("id"), where, required=True, limit=256)
                start = None if card is None else card.suggestions.get(str(key))
                moves.append({"id": key, "start": start})
            record["accepted"] = moves
        else:
            record |= _override(item.get("overrideReason"), at, card, when)
        lines.append((json.dumps(record, ensure_ascii=True, separators=(",", ":")) + "\n").encode())
    return lines


def _override(given: object, at: str, card: _Card | None, when: dt.datetime) -> dict[str, Any]:
    """An override's reason, and the waiver it makes when the card's rule allows one."""
    if given is None:
        return {"reason": None, "waiver": None}
    where = f"{at}.overrideReason"
    if not isinstance(given, dict):
        raise _Refusal(400, f"{where} must be an object", "structure", (where,))
    reason = given.get("reason")
    code = system = None
    if reason is not None:
        if not isinstance(reason, dict):
            raise _Refusal(400, f"{where}.reason must be a Coding", "structure", (where,))
        code = _string(reason.get("code"), f"{where}.reason.code", limit=64)
        system = _string(reason.get("system"), f"{where}.reason.system")
    comment = _string(given.get("userComment"), f"{where}.userComment", limit=_MAX_TEXT)
    waiver = None
    if (
        card is not None
        and system == WAIVER_REASON_SYSTEM
        and code in card.reasons
        and card.user is not None
    ):
        note = None if comment is None else _note(comment)
        # Only a waiver the course format reads: one it refuses would make the patient's
        # whole course file unreadable (a user id of several lines, say).
        if not waiver_problems(card.rule, tuple(card.sessions), code, card.user, when, note):
            waiver = {
                "rule": card.rule,
                "sessions": list(card.sessions),
                "reason": code,
                "approved_by": card.user,
                "approved_at": when.isoformat(),
            }
            if note is not None:
                waiver["note"] = note
    return {"reason": None if code is None else {"system": system, "code": code}, "waiver": waiver}


def _note(comment: str) -> str | None:
    """A user's comment as a waiver's note: lines of printable text, at most `MAX_NOTE`.

    A browser's textarea sends its line breaks as CRLF, which the course format refuses, as
    it does tabs and other controls: each line is kept as a log shows it (blanks as one
    space, any other character that is not printable as its backslash escape), and a longer
    note is cut.
    """
    lines = comment.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    note = "\n".join(terminal(line) for line in lines).strip()
    if len(note) > MAX_NOTE:
        note = note[: MAX_NOTE - 1] + "\u2026"
    return note or None


def _append(path: str, lines: Sequence[bytes]) -> None:
    # One write of a whole line with O_APPEND: lines of concurrent writers never interleave.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        for line in lines:
            if os.write(fd, line) != len(line):
                raise OSError("short write to the feedback log")
    finally:
        os.close(fd)


# --- the application -----------------------------------------------------------------------


def _shared_state(folder: str | os.PathLike[str]) -> _SharedState:
    import sqlite3

    try:
        Path(folder).mkdir(mode=0o700, parents=True, exist_ok=True)
        return _SharedState(Path(folder) / STATE_FILE)
    except (OSError, sqlite3.Error) as exc:
        why = terminal(str(exc))[:200]
        raise InputError(
            Problem(("state_dir",), f"cannot hold the shared state file {STATE_FILE} ({why})")
        ) from None


def _say(line: str) -> None:
    # One line on stderr: never a token, never patient data (callers pass only those words).
    try:
        sys.stderr.write(f"kaprules serve: {terminal(line)}\n")
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass


_ORIGIN = re.compile(
    r"https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?"
)


def app(
    protocols: Sequence[Protocol | ProtocolVersions],
    issuers: Sequence[Issuer],
    base_url: str,
    *,
    calendar: ClinicCalendar | None = None,
    timezone: str | None = None,
    feedback_log: str | os.PathLike[str] | None = None,
    cors: Sequence[str] = (),
    max_body_bytes: int = MAX_BODY_BYTES,
    now: Callable[[], dt.datetime] | None = None,
    state_dir: str | os.PathLike[str] | None = None,
) -> Any:
    """The ASGI application: a CDS Hooks 2.0 ``appointment-book`` service per protocol.

    Endpoints (the [serve page](serve.md) has examples):

    - ``GET /cds-services``: discovery, one service per protocol, its id the protocol's id.
    - ``POST /cds-services/{id}``: the hook call; answers cards.
    - ``POST /cds-services/{id}/feedback``: appends accepted suggestions and overrides to
      ``feedback_log``.
    - ``GET /rules/{id}/{rule}``: what a rule requires, as text (no patient data; the cards'
      links).

    Every endpoint but the last needs ``Authorization: Bearer <JWT>``: signed with ES384 or
    RS384 by an issuer of ``issuers`` (one of its keys), ``aud`` the endpoint's URL under
    ``base_url`` (the service's URL for its feedback too), ``exp``, ``iat`` and ``jti``
    present, the ``jti`` not seen before. A refusal is 401 with an OperationOutcome; a body
    over ``max_body_bytes`` is 413, one not whole within `BODY_TIMEOUT_SECONDS` 408, bad
    input 400, a call whose required prefetch is missing, an OperationOutcome or one page of
    several 412, an unexpected failure a plain 500 JSON; each refusal is one line on stderr.
    A suggestion's Appointment carries no narrative, display or free text of the proposal
    (the serve page lists what it does), and a proposed Appointment without a start gets an
    ``info`` card (`NOT_CHECKED_TOPIC`), not a refusal.

    Args:
        protocols: The protocols, each a service; the versions of one protocol as
            `ProtocolVersions` (the version in force on today's date judges).
        issuers: The EHRs whose tokens are accepted (see `read_issuers`).
        base_url: The URL the EHR calls, such as ``https://cds.example.org``, without a
            trailing ``/``.
        calendar: The clinic's calendar: closed days refuse a booking, and suggestions
            move appointments to its open days at its time. None: every day is open, 09:00.
        timezone: The clinic's IANA zone; without it, the Appointments' timezone extension
            (a call with nothing to judge needs neither).
        feedback_log: The JSON Lines file feedback is appended to; None records none.
        cors: The origins a browser-based EHR may call from (none by default).
        max_body_bytes: The largest request body read.
        now: The moment bookings are checked at, an aware datetime; None: the clock's
            time at each call. Tokens are always checked against the clock.
        state_dir: The folder of the state that several worker processes share, the
            tokens seen (so that a token is accepted once by all of them) and the cards
            answered (so that feedback reaches the card whichever worker answered it): the
            SQLite file `STATE_FILE` there, created if missing and kept across restarts.
            None: this process's memory.

    Returns:
        The Starlette application.

    Raises:
        InputError: Two protocols have one id, ``base_url`` is not an http(s) URL (or has a
            query or fragment), an origin of ``cors`` is not ``scheme://host[:port]``, the
            timezone is unknown, the state file cannot be opened, or ``feedback_log`` cannot
            be appended to (it is created, mode 0600, if missing).
    """
    from starlette.applications import Starlette
    from starlette.datastructures import Headers
    from starlette.middleware import Middleware
    from starlette.middleware.cors import CORSMiddleware
    from starlette.requests import ClientDisconnect, Request
    from starlette.responses import JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route
    from starlette.types import Receive, Scope, Send

    base = base_url.rstrip("/")
    if web_url(base + "/") is None:
        raise InputError(Problem(("base_url",), "must be an http(s) URL", "value"))
    if "?" in base or "#" in base:  # the endpoints are BASE/cds-services/...
        why = "must have no query or fragment: the endpoints are BASE/cds-services/{id}"
        raise InputError(Problem(("base_url",), why, "value"))
    for index, origin in enumerate(cors):
        # What a browser sends as Origin: scheme://host[:port], no path, no final /.
        if not isinstance(origin, str) or _ORIGIN.fullmatch(origin) is None:
            why = f"{shown_id(str(origin), 100)} is not an origin such as https://ehr.example.org"
            raise InputError(Problem(("cors", index), why, "value"))
    if timezone is not None:
        Course(timezone, [])  # an unknown zone is refused now, not at the first call
    services: dict[str, _Service] = {}
    for protocol in protocols:
        if protocol.id in services:
            raise InputError(Problem(("protocols",), f"{echo(protocol.id)} is given twice"))
        services[protocol.id] = _Service(protocol, calendar, timezone, base)
    # The R4B models are imported now, once, not by the first call (of each worker).
    course_from_bundle({"resourceType": "Bundle", "type": "collection"}, timezone="UTC")
    cards = _MemoryState() if state_dir is None else _shared_state(state_dir)
    tokens = _Tokens(issuers, time.time, cards)
    moment = now or (lambda: dt.datetime.now(dt.UTC))
    log = None if feedback_log is None else os.fspath(feedback_log)
    if log is not None:
        try:  # now, not at the first feedback: a service that cannot record it must not start
            os.close(os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600))
        except OSError as exc:
            why = terminal(exc.strerror or type(exc).__name__)[:200]
            raise InputError(
                Problem(("feedback_log",), f"{shown_id(log, 200)} cannot be appended to ({why})")
            ) from None

    def refused(request: Request, refusal: _Refusal) -> Response:
        where = shown_id(request.url.path, 120)
        _say(f"refused {refusal.status} {request.method} {where}: {refusal.diagnostics}")
        return JSONResponse(_outcome(refusal.issues), refusal.status, headers=refusal.headers)

    async def body_of(request: Request) -> bytes:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > max_body_bytes):
            raise _Refusal(413, f"the body is larger than {max_body_bytes} bytes", "too-long")
        chunks, size = [], 0
        seconds = BODY_TIMEOUT_SECONDS
        try:
            async with asyncio.timeout(seconds):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > max_body_bytes:
                        why = f"the body is larger than {max_body_bytes} bytes"
                        raise _Refusal(413, why, "too-long")
                    chunks.append(chunk)
        except ClientDisconnect:  # not the service's failure: no answer reaches the client
            why = "the client disconnected before its whole body was sent"
            raise _Refusal(400, why, "incomplete") from None
        except TimeoutError:  # a slow-loris client holds its connection no longer
            why = f"the body was not sent whole within {seconds:g} s"
            raise _Refusal(408, why, "timeout", headers={"Connection": "close"}) from None
        return b"".join(chunks)

    def service_of(request: Request) -> _Service:
        service = services.get(request.path_params["id"])
        if service is None:
            raise _Refusal(404, "no such service", "not-found")
        return service

    def guarded(
        handler: Callable[[Request], Any],
    ) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)  # type: ignore[no-any-return]
            except _Refusal as refusal:
                return refused(request, refusal)
            except InputError as exc:
                return refused(request, _input_refusal(exc))
            except Exception as exc:  # never a stack trace in a response
                _say(f"internal error ({type(exc).__name__}) at {shown_id(request.url.path, 120)}")
                return JSONResponse(
                    _outcome([("exception", "internal error", ())]), status_code=500
                )

        return endpoint

    async def verified(request: Request, audiences: Sequence[str]) -> dict[str, Any]:
        authorization = request.headers.get("authorization")
        try:
            return tokens.check(authorization, audiences)
        except _Refetch as due:
            # Fetched off the event loop: other calls go on meanwhile.
            await asyncio.to_thread(due.keyset.refetch, tokens.clock())
            return tokens.check(authorization, audiences, refetched=True)

    async def discovery(request: Request) -> Response:
        # The list is for anyone the EHR trusts: a token for the discovery URL or for any
        # service it lists (an EHR may hold one token per service it calls).
        await verified(request, [f"{base}/cds-services", *(s.url for s in services.values())])
        return JSONResponse({"services": [s.describe() for s in services.values()]})

    async def call(request: Request) -> Response:
        service = service_of(request)
        await verified(request, [service.url])
        document = _decode(await body_of(request))
        answer = service.answer(document, moment(), cards)
        counts: dict[str, int] = {}
        for card in answer["cards"]:
            counts[card["indicator"]] = counts.get(card["indicator"], 0) + 1
        shown = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "no card"
        _say(f"answered {service.id}: {shown}")
        return JSONResponse(answer)

    async def feedback(request: Request) -> Response:
        service = service_of(request)
        claims = await verified(request, [service.url, f"{service.url}/feedback"])
        document = _decode(await body_of(request))
        lines = _feedback_lines(document, service, cards, claims, moment())
        if log is not None and lines:
            try:
                _append(log, lines)
            except OSError as exc:  # a full disk, a file made read-only since the start
                why = f"the feedback log cannot be written ({exc.strerror or type(exc).__name__})"
                raise _Refusal(500, why, "exception") from None
        return JSONResponse({"recorded": len(lines) if log is not None else 0})

    async def rule_text(request: Request) -> Response:
        service = service_of(request)
        wanted = request.path_params["rule"]
        protocol = service.version(moment().date())
        rule = next((r for r in protocol.rules if r.id == wanted), None)
        if rule is None:
            raise _Refusal(404, "no such rule in this protocol", "not-found")
        return PlainTextResponse(explain(rule, format="text"))

    async def not_found(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        refusal = _Refusal(status, "no such endpoint" if status == 404 else "not allowed here")
        return refused(request, refusal)

    class Cors(CORSMiddleware):
        # Starlette answers a refused preflight in plain text, unlogged: here, as every
        # refusal, an OperationOutcome and one line.
        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            headers = Headers(scope=scope) if scope["type"] == "http" else None
            if (
                headers is None
                or scope["method"] != "OPTIONS"
                or "origin" not in headers
                or "access-control-request-method" not in headers
            ):
                await super().__call__(scope, receive, send)
                return
            response = self.preflight_response(request_headers=headers)
            if response.status_code >= 400:
                what = bytes(response.body).decode().removeprefix("Disallowed CORS ")
                why = f"the CORS preflight is refused ({what} not allowed)"
                response = refused(Request(scope), _Refusal(response.status_code, why, "forbidden"))
            await response(scope, receive, send)

    middleware = []
    if cors:
        middleware.append(
            Middleware(
                Cors,
                allow_origins=list(cors),
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "Content-Type"],
                max_age=600,
            )
        )
    return Starlette(
        routes=[
            Route("/cds-services", guarded(discovery), methods=["GET"]),
            Route("/cds-services/{id}", guarded(call), methods=["POST"]),
            Route("/cds-services/{id}/feedback", guarded(feedback), methods=["POST"]),
            Route("/rules/{id}/{rule}", guarded(rule_text), methods=["GET"]),
        ],
        middleware=middleware,
        exception_handlers={404: not_found, 405: not_found},
    )


def run(
    application: Any,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    workers: int = 1,
    listening: Callable[[], None] | None = None,
) -> None:
    """Serve ``application`` with Uvicorn until SIGINT or SIGTERM.

    With several workers, this process binds the socket, forks the workers, accepts each
    connection and hands it to the worker with the fewest open connections (over a Unix
    socket pair), and waits: a worker that ends unexpectedly is replaced, and SIGINT or
    SIGTERM stops them all, each finishing the calls it has begun. A worker that finds this
    process gone stops itself within a second. The workers share only what
    ``application`` keeps in its ``state_dir``: give one (see `app`), or each worker keeps
    its own tokens seen and replays may pass. Before serving, what is loaded is frozen out
    of the garbage collector's walks.

    Args:
        application: The ASGI application, such as `app`'s.
        host: The address to listen on.
        port: The port to listen on.
        workers: The worker processes; more than one needs ``os.fork`` (not Windows).
        listening: Called once the port is bound, before the first call is served (to
            say so).

    Raises:
        OSError: The address cannot be listened on.
        RuntimeError: Workers needed and ``os.fork`` is missing, or workers keep ending.
    """
    import uvicorn

    if workers > 1 and not hasattr(os, "fork"):
        raise RuntimeError("--workers needs os.fork, which this system lacks")
    # No access log: refusals and answers are logged by the service, without patient data.
    config = uvicorn.Config(
        application,
        host=host,
        port=port,
        access_log=False,
        log_level="warning",
        lifespan="off",
        loop="asyncio",  # with workers, its accept is the channel's own (see _Handed)
    )
    listener = _listen(host, port)
    if listening is not None:
        listening()
    _settle_memory()
    try:
        if workers <= 1:
            uvicorn.Server(config).run(sockets=[listener])
        else:
            _supervise(config, listener, workers)
    finally:
        listener.close()


_GC_THRESHOLDS = (20_000, 50, 100)


def _settle_memory() -> None:
    """Freeze what is loaded (modules, protocols, keys) out of the garbage collector's sight.

    A call's parsed body lives through a few young collections and is promoted to the old
    generation, which the collector then walks whole every few calls: with the R4B models
    loaded that walk took 15 ms (a call's p99 in process was 21 ms, now 6 ms). Frozen, the loaded
    objects are not walked, and the young generation is collected every 20,000
    allocations, not 700 (a call's garbage is freed by reference counts; the collector is
    only for cycles).
    """
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(*_GC_THRESHOLDS)


def _listen(host: str, port: int) -> socket.socket:
    # Bound here, not by Uvicorn: a port in use is an OSError to report, not an exit.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named: asyncio sets TCP_NODELAY on a connection only when its socket says
    # so, and without it each answer waits on a delayed ACK (40 ms).
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(2048)
        listener.set_inheritable(True)
    except BaseException:
        listener.close()
        raise
    return listener


_RESTARTS = 5  # workers replaced within _RESTART_WINDOW seconds before the service stops
_RESTART_WINDOW = 60.0


def _supervise(config: Any, listener: socket.socket, workers: int) -> None:
    """Fork ``workers`` Uvicorn servers and hand each connection to the least busy one.

    This process accepts the connections and passes each, over a Unix socket pair, to the
    worker with the fewest open connections: a worker's keep-alive connections stay with
    it, so the kernel's choice (the first worker awake takes a burst) would load one worker
    and leave another idle. A worker that ends unexpectedly is replaced.
    """
    import mmap
    import selectors

    shared = mmap.mmap(-1, 8 * workers)  # each worker's count of connections closed
    closed = memoryview(shared).cast("q")
    slots: list[_Slot | None] = [None] * workers
    restarts: list[float] = []
    parent = os.getpid()

    def start(number: int) -> None:
        closed[number] = 0
        slots[number] = _fork_worker(config, number, closed, parent, [listener, *slots])

    selector = selectors.DefaultSelector()
    listener.setblocking(False)
    selector.register(listener, selectors.EVENT_READ)
    try:
        for number in range(workers):
            start(number)
        while True:
            if selector.select(0.1):  # and at least ten times a second, for ended workers
                _hand_over(listener, slots, closed)
            while True:
                try:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if not pid:
                    break
                ended = next((n for n, s in enumerate(slots) if s and s.pid == pid), None)
                if ended is None:
                    continue
                number = ended
                gone = slots[number]
                assert gone is not None
                gone.channel.close()
                slots[number] = None
                now = time.monotonic()
                restarts = [t for t in restarts if now - t < _RESTART_WINDOW] + [now]
                if len(restarts) > _RESTARTS:
                    raise RuntimeError(
                        f"workers ended {len(restarts)} times within {_RESTART_WINDOW:.0f} s"
                    )
                _say(f"worker {number + 1} ended (wait status {status}); starting another")
                start(number)
    finally:
        selector.close()
        _stop([s for s in slots if s is not None])
        closed.release()
        shared.close()


@attrs.define
class _Slot:
    # A worker: its pid, this process's end of its channel, the connections handed to it.
    pid: int
    channel: socket.socket
    handed: int = 0


def _hand_over(listener: socket.socket, slots: Sequence[_Slot | None], closed: Any) -> None:
    """Accept every waiting connection; pass each to the worker with the fewest open."""
    while True:
        try:
            connection, _ = listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # a connection reset before it was taken, or out of descriptors
            return
        with connection:
            ranked = sorted(
                (slot.handed - closed[number], number)
                for number, slot in enumerate(slots)
                if slot is not None
            )
            for _, number in ranked:
                slot = slots[number]
                assert slot is not None
                try:
                    socket.send_fds(slot.channel, [b"c"], [connection.fileno()])
                except OSError:  # that worker is ending: the next one
                    continue
                slot.handed += 1
                break


def _stop(slots: Sequence[_Slot]) -> None:
    # SIGTERM each worker (a Ctrl-C in a terminal reached them already), then wait for it.
    for slot in slots:
        slot.channel.close()
        with contextlib.suppress(ProcessLookupError):
            os.kill(slot.pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    for slot in slots:
        while True:
            try:
                done, _ = os.waitpid(slot.pid, os.WNOHANG)
            except ChildProcessError:
                break
            if done:
                break
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.pid, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(slot.pid, 0)
                break
            time.sleep(0.02)


class _Handed(socket.socket):
    """A worker's end of its channel, posing to asyncio as its listening socket.

    asyncio's ``accept`` of a listening socket is this ``accept``: it takes the next
    connection the parent handed over (``SCM_RIGHTS``), or raises ``BlockingIOError``
    when there is none; a connection's ``close`` counts it closed for the parent.
    """

    number = 0
    closed: Any = None

    def listen(self, backlog: int = 0) -> None:
        """Nothing to do: the parent listens."""

    def accept(self) -> tuple[socket.socket, Any]:
        """The next connection handed over."""
        _, fds, _, _ = socket.recv_fds(self, 1, 1)
        if not fds:  # the parent is gone: stop (the signal is handled before the next call)
            os.kill(os.getpid(), signal.SIGTERM)
            raise BlockingIOError
        connection = _Counted(fileno=fds[0])
        connection.number, connection.closed = self.number, self.closed
        return connection, connection.getpeername()


class _Counted(socket.socket):
    """A handed connection, counted in the parent's view once closed."""

    number = 0
    closed: Any = None
    counted = False

    def close(self) -> None:
        """Close the connection, and count it closed once."""
        if not self.counted:
            self.counted = True
            self.closed[self.number] += 1
        super().close()


def _fork_worker(
    config: Any, number: int, closed: Any, parent: int, parents: Sequence[Any]
) -> _Slot:
    """Fork worker ``number``; in the child, close ``parents`` (its listener and channels)."""
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid:
        theirs.close()
        return _Slot(pid, mine)
    code = 1
    try:
        import uvicorn

        def stop(signum: int, frame: object) -> None:
            # Before Uvicorn serves, or when it raises the signal again once it has stopped:
            # the worker ends quietly (the parent says the one line).
            raise SystemExit(0)

        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, stop)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        mine.close()
        for held in parents:  # the listener and the other workers' channels
            if isinstance(held, _Slot):
                held.channel.close()
            elif held is not None:
                held.close()

        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(1)
            os.kill(os.getpid(), signal.SIGTERM)  # the parent is gone: stop

        threading.Thread(target=watch, daemon=True).start()
        channel = _Handed(fileno=theirs.detach())
        channel.number, channel.closed = number, closed
        uvicorn.Server(config).run(sockets=[channel])
        code = 0
    except SystemExit:
        code = 0
    except BaseException:
        code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os._exit(code)
