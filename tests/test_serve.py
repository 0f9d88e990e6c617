"""kaprules serve: the CDS Hooks service through a real Uvicorn server on a loopback port."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kaprules
from kaprules.cli import main

pytest.importorskip("starlette", reason="needs pip install '.[serve]'")
pytest.importorskip("uvicorn", reason="needs pip install '.[serve]'")
pytest.importorskip("jwt", reason="needs pip install '.[serve]'")
pytest.importorskip("fhir.resources", reason="needs pip install '.[serve]'")

import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import ec

from kaprules import serve
from kaprules.fhir import WAIVER_REASON_SYSTEM, course_from_bundle

from conftest import SLOW

ISS = "https://ehr.example.org/"
ZONE = "America/Denver"
NOW = dt.datetime(2030, 3, 6, 20, 0, tzinfo=dt.UTC)  # Wednesday, 13:00 in Denver
ESCORT = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
KEY = ec.generate_private_key(ec.SECP384R1())
OTHER_KEY = ec.generate_private_key(ec.SECP384R1())


# The ES384 example of the CDS Hooks 2.0 spec (Security and Safety): its public key, and its
# token for https://cds.example.org/cds-services/some-service, which expired in 2015.
SPEC_KEY = {
    "kty": "EC",
    "use": "sig",
    "crv": "P-384",
    "kid": "example-kid",
    "x": "46SDH7Znh821wblCBglA61sNE9ZrHYKKt3qRtRTmSXyOI_FIGBLWrWa0GPUkDCEk",
    "y": "XMcRuuoGW7CXjQdy-F5i3FeBE0x9hPLdeFdSoDd3ELmx404tLX0VRRcqzAsPhXcI",
    "alg": "ES384",
}
SPEC_TOKEN = (
    "eyJhbGciOiJFUzM4NCIsInR5cCI6IkpXVCIsImtpZCI6ImV4YW1wbGUta2lkIiwiamt1IjoiaHR0cHM6Ly9maGly"
    "LWVoci5leGFtcGxlLmNvbS9qd2tfdXJpIn0.eyJpc3MiOiJodHRwczovL2ZoaXItZWhyLmV4YW1wbGUuY29tLyIs"
    "InN1YiI6ImNsaWVudF9pZCIsImF1ZCI6Imh0dHBzOi8vY2RzLmV4YW1wbGUub3JnL2Nkcy1zZXJ2aWNlcy9zb21l"
    "LXNlcnZpY2UiLCJleHAiOjE0MjI1Njg4NjAsImlhdCI6MTMxMTI4MDk3MCwianRpIjoiZWUyMmIwMjEtZTFiNy00"
    "NjExLWJhNWItOGVlYzZhMzNhYzFlIiwidGVuYW50IjoiMmRkZDZjM2EtOGU5YS00NGM2LWEzMDUtNTIxMTFhZDMw"
    "MmEyIn0.CUFPkplnWd6YGIvzoHolWCQBDsCL8QtTWKGg_QFpS169WrqDGzktRi-_we6-6rVzbjerU27ZKww_SW0-b9"
    "RTz-dPJNcqsueMio8r6EqXUXhbLm_ch3XFSbDlGHDl_tqo"
)


def jwks(key: ec.EllipticCurvePrivateKey) -> dict[str, Any]:
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    return {"keys": [public | {"kid": "k1", "alg": "ES384", "use": "sig"}]}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("serve")
    (folder / "keys.json").write_text(json.dumps(jwks(KEY)))
    (folder / "spec.json").write_text(json.dumps({"keys": [SPEC_KEY]}))
    (folder / "issuers.toml").write_text(
        f'[[issuers]]\niss = "{ISS}"\njwks = "keys.json"\n\n'
        '[[issuers]]\niss = "https://fhir-ehr.example.com/"\njwks = "spec.json"\n'
    )
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{listener.getsockname()[1]}"
    log = folder / "feedback.jsonl"
    application = serve.app(
        [kaprules.get_protocol("kap-standard@2"), kaprules.get_protocol("esketamine-trd@1")],
        serve.read_issuers(folder / "issuers.toml"),
        base,
        timezone=ZONE,
        feedback_log=log,
        max_body_bytes=64 * 1024,
        now=lambda: NOW,
    )
    config = uvicorn.Config(application, log_level="error", lifespan="off")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while not running.started and time.monotonic() < deadline:
        time.sleep(0.01)
    yield {"base": base, "log": log, "port": listener.getsockname()[1]}
    running.should_exit = True
    thread.join(5)
    listener.close()


def token(aud: str, **changes: Any) -> str:
    now = int(time.time())
    claims = {"iss": ISS, "aud": aud, "exp": now + 300, "iat": now, "jti": str(uuid.uuid4())}
    claims.update(changes.pop("claims", {}))
    for name in changes.pop("drop", ()):
        del claims[name]
    key = changes.pop("key", KEY)
    alg = changes.pop("alg", "ES384")
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": "k1"})


def request(
    server: dict[str, Any],
    method: str,
    path: str,
    body: object = None,
    *,
    bearer: str | None = "auto",
    raw: bytes | None = None,
) -> tuple[int, dict[str, str], Any]:
    headers = {"Content-Type": "application/json"}
    if bearer == "auto":
        aud = server["base"] + path.removesuffix("/feedback")
        bearer = token(aud)
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    connection = http.client.HTTPConnection("127.0.0.1", server["port"], timeout=10)
    try:
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        text = response.read()
        shown = {k.lower(): v for k, v in response.getheaders()}
        return response.status, shown, json.loads(text) if text.startswith(b"{") else text
    finally:
        connection.close()


def appointment(ident: str, status: str, start: str) -> dict[str, Any]:
    return {
        "resourceType": "Appointment",
        "id": ident,
        "status": status,
        "start": start,
        "participant": [
            {"actor": {"reference": "Practitioner/t1"}, "status": "accepted"},
            {
                "type": [{"coding": [{"system": ESCORT, "code": "ESC"}]}],
                "actor": {"reference": "RelatedPerson/r1"},
                "status": "accepted",
            },
        ],
    }


def searchset(*resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": r} for r in resources],
    }


HISTORY = [
    appointment("a1", "fulfilled", "2030-03-04T09:00:00-07:00"),  # Monday
    appointment("a2", "fulfilled", "2030-03-06T09:00:00-07:00"),  # Wednesday
]


def hook_call(*proposed: dict[str, Any]) -> dict[str, Any]:
    return {
        "hook": "appointment-book",
        "hookInstance": str(uuid.uuid4()),
        "context": {
            "userId": "Practitioner/t1",
            "patientId": "p1",
            "appointments": {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [{"resource": r} for r in proposed],
            },
        },
        "prefetch": {
            # A copy: a test that changes its call must not change the history of the next.
            "appointments": searchset(*copy.deepcopy(HISTORY)),
            "encounters": None,
            "observations": None,
        },
    }


def expected_findings(protocol: str, proposed: dict[str, Any]) -> list[tuple[str, str]]:
    course = course_from_bundle(searchset(*HISTORY), timezone=ZONE).course
    session = course_from_bundle(searchset(proposed), timezone=ZONE).course.sessions[0]
    report = kaprules.check_booking(course, session, NOW, kaprules.get_protocol(protocol))
    return [(f.rule, f.severity.value) for f in report.findings]


SEVERITY = {"critical": "error", "warning": "warning", "info": "info"}


# --- discovery and the hook, over real HTTP ------------------------------------------------


def test_discovery_lists_one_appointment_book_service_per_protocol(server: dict[str, Any]) -> None:
    status, _, body = request(server, "GET", "/cds-services")
    assert status == 200
    assert [(s["id"], s["hook"]) for s in body["services"]] == [
        ("kap-standard", "appointment-book"),
        ("esketamine-trd", "appointment-book"),
    ]
    for listed in body["services"]:
        assert set(serve.REQUIRED_PREFETCH) <= set(listed["prefetch"])
        assert listed["description"]


@pytest.mark.parametrize(
    ("protocol", "start", "bookable"),
    [
        ("kap-standard@2", "2030-03-08T09:00:00-07:00", True),
        ("kap-standard@2", "2030-03-07T09:00:00-07:00", False),  # the next day: spacing
        ("esketamine-trd@1", "2030-03-11T09:00:00-07:00", True),
        ("esketamine-trd@1", "2030-03-08T09:00:00-07:00", False),  # a third in week 1
    ],
)
def test_cards_are_check_bookings_findings(
    server: dict[str, Any], protocol: str, start: str, bookable: bool
) -> None:
    proposed = appointment("new", "proposed", start)
    service = protocol.split("@")[0]
    status, _, body = request(server, "POST", f"/cds-services/{service}", hook_call(proposed))
    assert status == 200, body
    cards = body["cards"]
    findings = expected_findings(protocol, proposed)
    assert [(c["source"]["topic"]["code"], SEVERITY[c["indicator"]]) for c in cards] == findings
    assert bookable == all(c["indicator"] != "critical" for c in cards)
    assert bookable == all(severity != "error" for _, severity in findings)
    waivable = kaprules.get_protocol(protocol).waivable_rules
    for card in cards:
        assert len(card["summary"]) < 140
        assert card["source"]["label"] == "kaprules"
        assert card["links"][0]["type"] == "absolute"
        assert ("overrideReasons" in card) == (card["source"]["topic"]["code"] in waivable)
        for reason in card.get("overrideReasons", ()):
            assert reason["system"] == WAIVER_REASON_SYSTEM
            assert reason["display"]
    if not bookable:
        first = next(c for c in cards if c["indicator"] == "critical")
        assert first["selectionBehavior"] == "at-most-one"
        (action,) = first["suggestions"][0]["actions"]
        assert action["type"] == "update"
        assert action["resource"]["id"] == "new"
        moved = course_from_bundle(searchset(action["resource"]), timezone=ZONE)
        course = course_from_bundle(searchset(*HISTORY), timezone=ZONE).course
        again = kaprules.check_booking(
            course, moved.course.sessions[0], NOW, kaprules.get_protocol(protocol)
        )
        assert again.ok


def test_a_rules_link_explains_it(server: dict[str, Any]) -> None:
    status, _, text = request(server, "GET", "/rules/kap-standard/session-spacing", bearer=None)
    assert status == 200
    assert b"session-spacing" in text


# --- security ----------------------------------------------------------------------------


def refused(server: dict[str, Any], bearer: str | None, path: str = "/cds-services") -> str:
    status, headers, body = request(server, "GET", path, bearer=bearer)
    assert status == 401
    assert headers["www-authenticate"].startswith("Bearer")
    assert body["resourceType"] == "OperationOutcome"
    diagnostics: str = body["issue"][0]["diagnostics"]
    return diagnostics


def test_tokens_that_are_refused(server: dict[str, Any]) -> None:
    aud = server["base"] + "/cds-services"
    forged = token(aud, key=OTHER_KEY)
    assert "signature" in refused(server, forged)
    assert "expired" in refused(server, token(aud, claims={"exp": int(time.time()) - 600}))
    assert "aud" in refused(server, token(aud + "/no-such-service"))
    assert "aud" in refused(server, token(server["base"] + "/elsewhere"))
    assert "allowlist" in refused(server, token(aud, claims={"iss": "https://evil.example/"}))
    assert "jti" in refused(server, token(aud, drop=["jti"]))
    assert "algorithm" in refused(
        server, token(aud, key="a-shared-secret-of-32-bytes!!!!!", alg="HS256")
    )
    claims = {"iss": ISS, "aud": aud, "exp": int(time.time()) + 60, "iat": 0, "jti": "x"}
    unsigned = jwt.encode(claims, "", algorithm="none")
    assert "algorithm" in refused(server, unsigned)
    assert "Authorization" in refused(server, None)
    # The spec's own example: its signature verifies, and it is refused as expired.
    assert "expired" in refused(server, SPEC_TOKEN)
    once = token(aud)
    assert request(server, "GET", "/cds-services", bearer=once)[0] == 200
    assert "replayed" in refused(server, once)
    # A token for a service discovery lists opens the list too (one token per service).
    status, _, listed = request(server, "GET", "/cds-services", bearer=token(aud + "/kap-standard"))
    assert status == 200
    assert "kap-standard" in [s["id"] for s in listed["services"]]


def test_a_signed_token_whose_times_are_not_numbers_is_a_401(server: dict[str, Any]) -> None:
    # RFC 7519's NumericDate is a JSON number; PyJWT reads "1700000000" too. It was a 500.
    aud = server["base"] + "/cds-services"
    now = int(time.time())
    for claims in ({"exp": str(now + 300)}, {"iat": str(now)}):
        assert "number" in refused(server, token(aud, claims=claims))


# --- hostile bodies ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"[1, 2",
        b"[]",
        b'{"hook": 5}',
        json.dumps({"hook": "appointment-book", "hookInstance": "x", "context": []}).encode(),
        json.dumps(
            {
                "hook": "appointment-book",
                "hookInstance": "x",
                "context": {"appointments": {"resourceType": "Bundle", "entry": "no"}},
            }
        ).encode(),
        b"[" * 5000 + b"]" * 5000,
        b"NaN",
    ],
)
def test_hostile_bodies_are_400_with_an_operation_outcome(
    server: dict[str, Any], body: bytes
) -> None:
    status, _, answer = request(server, "POST", "/cds-services/kap-standard", raw=body)
    assert status == 400
    assert answer["resourceType"] == "OperationOutcome"
    assert "Traceback" not in json.dumps(answer)


def test_a_bad_appointment_is_named_by_its_path_in_the_request(server: dict[str, Any]) -> None:
    call = hook_call(appointment("new", "proposed", "2030-03-08"))
    status, _, answer = request(server, "POST", "/cds-services/kap-standard", call)
    assert status == 400
    assert answer["issue"][0]["expression"] == ["context.appointments.entry[0].resource.start"]


def test_a_client_gone_before_its_body_is_whole_is_not_an_internal_error(
    server: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    path = "/cds-services/kap-standard"
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token(server['base'] + path)}\r\nContent-Length: 1000\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server["port"])) as client:
        client.sendall(head.encode() + b'{"hook": ')
        time.sleep(0.1)
    said = ""
    deadline = time.monotonic() + 5
    while "disconnected" not in said and time.monotonic() < deadline:
        time.sleep(0.02)
        said += capsys.readouterr().err
    assert "internal error" not in said
    assert f"refused 400 POST {path}: the client disconnected before its whole body" in said


def test_a_call_proposing_more_appointments_than_the_limit_is_refused_before_judging(
    server: dict[str, Any],
) -> None:
    # Each proposal is judged against the history and the proposals before it: 1,000 small
    # ones (200 KB) took 12 s of one worker's event loop, every other call waiting.
    proposed = [
        appointment(f"n{i}", "proposed", f"2030-04-{1 + i % 28:02d}T09:00:00-07:00")
        for i in range(serve.MAX_PROPOSED + 1)
    ]
    started = time.monotonic()
    status, _, answer = request(server, "POST", "/cds-services/kap-standard", hook_call(*proposed))
    assert status == 400
    assert answer["issue"][0]["code"] == "too-costly"
    assert answer["issue"][0]["expression"] == ["context.appointments"]
    assert time.monotonic() - started < 1


@pytest.mark.parametrize("end", ["9999-12-31T23:59:59+14:00", "2030-03-08T08:00:00-07:00"])
def test_a_suggestion_for_a_proposal_whose_end_cannot_move_has_no_end(
    server: dict[str, Any], end: str
) -> None:
    # Year 9999 moved by days overflows (it was a 500); an end before the start (R4 app-2)
    # would move to one before the suggested start.
    proposed = appointment("new", "proposed", "2030-03-08T09:00:00-07:00") | {"end": end}
    status, _, body = request(server, "POST", "/cds-services/esketamine-trd", hook_call(proposed))
    assert status == 200
    (card,) = (c for c in body["cards"] if c.get("suggestions"))
    moved = card["suggestions"][0]["actions"][0]["resource"]
    assert moved["start"] > "2030-03-08"
    assert "end" not in moved


def test_a_body_sent_too_slowly_is_a_408_and_the_connection_closed(
    server: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A slow-loris client sends its body a byte at a time, or never: the connection was
    # held as long as the client liked.
    monkeypatch.setattr(serve, "BODY_TIMEOUT_SECONDS", 0.1, raising=False)
    path = "/cds-services/kap-standard"
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token(server['base'] + path)}\r\nContent-Length: 1000\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server["port"]), timeout=5) as client:
        client.sendall(head.encode() + b'{"hook": ')
        answer = b""
        while chunk := client.recv(4096):  # until the service closes the connection
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408 ")
    outcome = json.loads(answer.partition(b"\r\n\r\n")[2])
    assert outcome["issue"][0]["code"] == "timeout"


def test_a_body_over_the_limit_is_413(server: dict[str, Any]) -> None:
    status, _, answer = request(server, "POST", "/cds-services/kap-standard", raw=b" " * 70_000)
    assert status == 413
    assert answer["issue"][0]["code"] == "too-long"


def test_a_call_without_the_prefetch_is_412_naming_it(server: dict[str, Any]) -> None:
    call = hook_call(appointment("new", "proposed", "2030-03-08T09:00:00-07:00"))
    del call["prefetch"]["encounters"]
    status, _, answer = request(server, "POST", "/cds-services/kap-standard", call)
    assert status == 412
    assert answer["issue"][0]["expression"] == ["prefetch.encounters"]


# --- feedback ----------------------------------------------------------------------------


def test_feedback_appends_overrides_as_waivers_and_accepted_moves(server: dict[str, Any]) -> None:
    proposed = appointment("new", "proposed", "2030-03-08T09:00:00-07:00")
    _, _, body = request(server, "POST", "/cds-services/esketamine-trd", hook_call(proposed))
    card = next(c for c in body["cards"] if c["source"]["topic"]["code"] == "weekly-cap")
    reason = {"system": WAIVER_REASON_SYSTEM, "code": "clinical-judgement"}
    feedback = {
        "feedback": [
            {
                "card": card["uuid"],
                "outcome": "overridden",
                "overrideReason": {"reason": reason},
                "outcomeTimestamp": "2030-03-06T20:05:00Z",
            },
            {
                "card": card["uuid"],
                "outcome": "accepted",
                "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}],
                "outcomeTimestamp": "2030-03-06T20:06:00Z",
            },
        ]
    }
    before = server["log"].read_text().count("\n") if server["log"].exists() else 0
    status, _, answer = request(server, "POST", "/cds-services/esketamine-trd/feedback", feedback)
    assert status == 200
    assert answer == {"recorded": 2}
    lines = [json.loads(line) for line in server["log"].read_text().splitlines()[before:]]
    override, accepted = lines
    waiver = kaprules.Waiver(
        override["waiver"]["rule"],
        override["waiver"]["sessions"],
        override["waiver"]["reason"],
        override["waiver"]["approved_by"],
        dt.datetime.fromisoformat(override["waiver"]["approved_at"]),
    )
    assert waiver.rule == "weekly-cap"
    assert waiver.approved_by == "Practitioner/t1"
    assert accepted["accepted"][0]["start"].startswith("2030-03-1")


def _override_line(server: dict[str, Any], user: str, comment: str) -> dict[str, Any]:
    # One override of esketamine-trd's weekly-cap card, with this user and comment.
    call = hook_call(appointment("new", "proposed", "2030-03-08T09:00:00-07:00"))
    call["context"]["userId"] = user
    _, _, body = request(server, "POST", "/cds-services/esketamine-trd", call)
    card = next(c for c in body["cards"] if c["source"]["topic"]["code"] == "weekly-cap")
    reason = {"system": WAIVER_REASON_SYSTEM, "code": "clinical-judgement"}
    item = {
        "card": card["uuid"],
        "outcome": "overridden",
        "overrideReason": {"reason": reason, "userComment": comment},
        "outcomeTimestamp": "2030-03-06T20:05:00Z",
    }
    before = server["log"].read_text().count("\n") if server["log"].exists() else 0
    status, _, _ = request(
        server, "POST", "/cds-services/esketamine-trd/feedback", {"feedback": [item]}
    )
    assert status == 200
    line: dict[str, Any] = json.loads(server["log"].read_text().splitlines()[before])
    return line


def test_feedback_on_another_services_card_is_an_unknown_card(server: dict[str, Any]) -> None:
    # An esketamine-trd card overridden at kap-standard's endpoint: the line said
    # "service": "kap-standard" with esketamine-trd's rule and a waiver of it.
    proposed = appointment("new", "proposed", "2030-03-08T09:00:00-07:00")
    _, _, body = request(server, "POST", "/cds-services/esketamine-trd", hook_call(proposed))
    card = next(c for c in body["cards"] if c["source"]["topic"]["code"] == "weekly-cap")
    reason = {"system": WAIVER_REASON_SYSTEM, "code": "clinical-judgement"}
    item = {
        "card": card["uuid"],
        "outcome": "overridden",
        "overrideReason": {"reason": reason},
        "outcomeTimestamp": "2030-03-06T20:05:00Z",
    }
    before = server["log"].read_text().count("\n") if server["log"].exists() else 0
    path = "/cds-services/kap-standard/feedback"
    assert request(server, "POST", path, {"feedback": [item]})[0] == 200
    line = json.loads(server["log"].read_text().splitlines()[before])
    assert line["service"] == "kap-standard"
    assert line["known_card"] is False
    assert "rule" not in line
    assert line["waiver"] is None


def test_an_override_line_is_a_waiver_the_course_format_reads(server: dict[str, Any]) -> None:
    # A browser's textarea sends CRLF; a comment may hold tabs, controls, and be long.
    comment = "Worse after the missed week.\r\nBack to twice\tweekly.\rSee \x1b[31m" + "x" * 3000
    waiver = _override_line(server, "Practitioner/t1", comment)["waiver"]
    sessions = [
        {"id": s, "start": f"2030-03-0{day}T09:00:00-07:00"}
        for s, day in (("a1", 4), ("a2", 6), ("new", 8))
    ]
    course = kaprules.parse_course(
        json.dumps({"timezone": ZONE, "sessions": sessions, "waivers": [waiver]})
    )
    note = course.waivers[0].note
    assert note is not None
    assert note.startswith("Worse after the missed week.\nBack to twice weekly.\nSee \\x1b[31m")
    assert len(note) <= 2000
    report = kaprules.evaluate(course, kaprules.get_protocol("esketamine-trd@1"))
    assert any(f.rule == "weekly-cap" and f.waiver is not None for f in report.findings)


def test_an_override_by_a_user_id_no_waiver_can_hold_has_no_waiver(
    server: dict[str, Any],
) -> None:
    line = _override_line(server, "Practitioner/t1\nInjected: yes", "fine")
    assert line["waiver"] is None
    assert line["reason"]["code"] == "clinical-judgement"


# --- the command -------------------------------------------------------------------------


def test_a_bad_issuers_file_is_exit_2_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "issuers.toml"
    bad.write_text('[[issuers]]\niss = "https://ehr.example.org/"\njwks = "missing.json"\n')
    assert main(["serve", "--issuers", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "issuers[0].jwks" in err


def test_symmetric_keys_are_refused_in_a_jwks(tmp_path: Path) -> None:
    keys = copy.deepcopy(jwks(KEY))
    keys["keys"].append({"kty": "oct", "k": "c2VjcmV0", "kid": "k2"})
    (tmp_path / "k.json").write_text(json.dumps(keys))
    (tmp_path / "i.toml").write_text(f'[[issuers]]\niss = "{ISS}"\njwks = "k.json"\n')
    with pytest.raises(kaprules.InputError, match=r"issuers\[0\]\.jwks\.keys\[1\]"):
        serve.read_issuers(tmp_path / "i.toml")


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": 1, "a": 2, "b": [1.5, -0.0, 1e300, "x\\u00e9"]}',
        b'{"big": 123456789012345678901234567890}',
        b'{"a": 1, "a": 2, "b": [1.5, -0.0, 1e300, "x]}"]}',
        b'{"id": "12345678901234567890123", "n": [-12345678901234567890123]}',
        b'{"lone": "\\udfff"}',
        b"[" * 64 + b"]" * 64,
    ],
)
def test_a_body_reads_as_json_loads_reads_it(body: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    # orjson first, json.loads where orjson refuses: the same document either way.
    from kaprules import _fast, serve

    fast = serve._decode(body)
    monkeypatch.setattr(_fast, "ENABLED", False)
    assert serve._decode(body) == fast
    assert fast == json.loads(body)


def test_a_body_nested_too_deep_is_refused_on_both_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    from kaprules import _fast, serve

    deep = b"[" * 66 + b"]" * 66
    within = b'{"a": ' + b"[" * 64 + b'"]]"' + b"]" * 64 + b"}"  # 65 deep, as allowed
    with pytest.raises(serve._Refusal, match="nested more than"):
        serve._decode(deep)
    assert serve._decode(within) == json.loads(within)
    monkeypatch.setattr(_fast, "ENABLED", False)
    with pytest.raises(serve._Refusal, match="nested more than"):
        serve._decode(deep)
    assert serve._decode(within) == json.loads(within)


_DOCUMENTS = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.sampled_from('a"\\[]{}\u00e9 1'), max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None, suppress_health_check=SLOW)
@given(document=_DOCUMENTS, ascii_only=st.booleans())
def test_any_json_document_decodes_as_json_loads_reads_it(
    document: object, ascii_only: bool
) -> None:
    # The fast path (orjson, the depth read from the brackets outside the strings) or the
    # slow one: the value json.loads gives, and a refusal exactly where within_depth refuses.
    from kaprules.fhir import MAX_DEPTH, within_depth

    body = json.dumps(document, ensure_ascii=ascii_only).encode()
    if within_depth(document, MAX_DEPTH):
        assert serve._decode(body) == json.loads(body)
    else:
        with pytest.raises(serve._Refusal):
            serve._decode(body)


# --- the request format, fuzzed over real HTTP --------------------------------------------

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    # Every place in a JSON document, the root included.
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*path, index))
    return found


def _replaced(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    copied = copy.deepcopy(document)
    target = copied
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return copied


# What a patient's record may hold in free text: no answer may show it.
_SECRET = "Zebulon Quixote-Patientname"


def _with_secrets(call: dict[str, Any]) -> dict[str, Any]:
    # The patient's name on every Appointment (an actor's display) and as the patient id.
    for bundle in (call["context"]["appointments"], call["prefetch"]["appointments"]):
        for entry in bundle["entry"]:
            entry["resource"]["participant"][0]["actor"]["display"] = _SECRET
    call["context"]["patientId"] = _SECRET
    return call


def _mutation(call: dict[str, Any]) -> st.SearchStrategy[tuple[tuple[Any, ...], Any]]:
    """A place in the call and what it becomes there: a wrong value, deep nesting, a long
    string, a patient's text, or nothing (the key removed)."""
    places = st.sampled_from(_paths(call))
    deep = st.integers(40, 70).map(lambda n: json.loads("[" * n + "]" * n))
    values = st.one_of(
        _JSON,
        deep,
        st.integers(1000, 40_000).map(lambda n: "x" * n),
        st.just(_SECRET),
        st.just(_DELETED),
    )
    return st.tuples(places, values)


_DELETED = object()


@settings(max_examples=60, deadline=None, suppress_health_check=SLOW)
@given(data=st.data())
def test_any_mutation_of_a_hook_call_is_answered_without_a_failure(
    server: dict[str, Any], data: st.DataObject
) -> None:
    call = _with_secrets(hook_call(appointment("new", "proposed", "2030-03-11T09:00:00-07:00")))
    where, value = data.draw(_mutation(call))
    if value is _DELETED:
        body = copy.deepcopy(call)
        if where:
            parent = body
            for step in where[:-1]:
                parent = parent[step]
            del parent[where[-1]]
    else:
        body = _replaced(call, where, value)
    status, _, answer = request(server, "POST", "/cds-services/kap-standard", body)
    # A card answer, or a refusal that says what is wrong: never a failure of the service,
    # never the patient's text, a suggestion's moved Appointment included.
    assert status in (200, 400, 412), (where, status)
    assert isinstance(answer, dict)
    if status == 200:
        assert isinstance(answer.get("cards"), list)
        shown = json.dumps(answer)
    else:
        assert answer.get("resourceType") == "OperationOutcome"
        shown = json.dumps(answer)
    assert "Traceback" not in shown
    assert "Patientname" not in shown, (where, shown)
    assert "x" * 100 not in shown


def test_a_prefetched_appointment_with_a_list_for_an_id_is_a_400(server: dict[str, Any]) -> None:
    # Found by the fuzz test above: the id was looked up in a set, a TypeError and a 500.
    call = hook_call(appointment("new", "proposed", "2030-03-11T09:00:00-07:00"))
    call["prefetch"]["appointments"]["entry"][0]["resource"]["id"] = []
    status, _, answer = request(server, "POST", "/cds-services/kap-standard", call)
    assert status == 400
    assert answer["resourceType"] == "OperationOutcome"


@settings(max_examples=25, deadline=None, suppress_health_check=SLOW)
@given(data=st.data())
def test_any_mutation_of_feedback_is_answered_without_a_failure(
    server: dict[str, Any], data: st.DataObject
) -> None:
    reason = {"system": WAIVER_REASON_SYSTEM, "code": "clinical-judgement"}
    feedback = {
        "feedback": [
            {
                "card": str(uuid.uuid4()),
                "outcome": "overridden",
                "overrideReason": {"reason": reason, "userComment": "x"},
                "outcomeTimestamp": "2030-03-06T20:05:00Z",
            },
            {
                "card": str(uuid.uuid4()),
                "outcome": "accepted",
                "acceptedSuggestions": [{"id": str(uuid.uuid4())}],
                "outcomeTimestamp": "2030-03-06T20:06:00Z",
            },
        ]
    }
    where = data.draw(st.sampled_from(_paths(feedback)))
    body = _replaced(feedback, where, data.draw(_JSON))
    status, _, answer = request(server, "POST", "/cds-services/kap-standard/feedback", body)
    assert status in (200, 400, 404, 412), (where, status)
    assert isinstance(answer, dict)
    assert "Traceback" not in json.dumps(answer)


# --- the shared state of several workers ---------------------------------------------------


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> list[Any]:
    # Two workers' connections to one state file.
    folder = tmp_path_factory.mktemp("state")
    return [serve._shared_state(folder), serve._shared_state(folder)]


@settings(max_examples=20, deadline=None, suppress_health_check=SLOW)
@given(uses=st.lists(st.tuples(st.integers(0, 1), st.sampled_from("abcdef")), max_size=12))
def test_a_token_is_accepted_once_whichever_worker_sees_it(
    two_workers: list[Any], uses: list[tuple[int, str]]
) -> None:
    # A jti's first use anywhere is accepted, every later use refused, as one process's
    # memory would. (An issuer of its own for each example: the file is shared by all.)
    issuer = str(uuid.uuid4())
    memory = serve._MemoryState()
    now = time.time()
    for worker, jti in uses:
        expected = memory.first_use(issuer, jti, now + 60, now)
        assert two_workers[worker].first_use(issuer, jti, now + 60, now) is expected


def test_two_processes_racing_with_one_token_accept_it_once(tmp_path: Path) -> None:
    # A forked process and this one insert the same 200 jtis at once: each is taken once.
    state = serve._shared_state(tmp_path)
    jtis = [str(n) for n in range(200)]
    now = time.time()
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        won = sum(bool(state.first_use(ISS, j, now + 60, now)) for j in jtis)
        os.write(writer, str(won).encode())
        os._exit(0)
    os.close(writer)
    won = sum(bool(state.first_use(ISS, j, now + 60, now)) for j in jtis)
    os.waitpid(pid, 0)
    theirs = int(os.read(reader, 100))
    os.close(reader)
    assert won + theirs == len(jtis)


def test_a_card_remembered_by_one_worker_is_known_to_another(tmp_path: Path) -> None:
    card = serve._Card(
        "kap-standard", "weekly-cap", ("a1", "new"), "new", "p1", "Practitioner/t1",
        {"u1": "2030-03-11T09:00:00-07:00"}, frozenset({"clinical-judgement"}),
    )  # fmt: skip
    serve._shared_state(tmp_path).remember({"c1": card})
    assert serve._shared_state(tmp_path).get("c1") == card
    assert serve._shared_state(tmp_path).get("c2") is None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _serving(tmp_path: Path, *options: str, **popen: Any) -> tuple[subprocess.Popen[bytes], int]:
    """`kaprules serve` started as documented (this test's issuer), once it accepts calls."""
    (tmp_path / "keys.json").write_text(json.dumps(jwks(KEY)))
    (tmp_path / "issuers.toml").write_text(f'[[issuers]]\niss = "{ISS}"\njwks = "keys.json"\n')
    port = _free_port()
    command = [
        sys.executable, "-m", "kaprules", "serve",
        "--issuers", str(tmp_path / "issuers.toml"), "--port", str(port), *options,
    ]  # fmt: skip
    environment = os.environ | {"PYTHONPATH": str(Path(kaprules.__file__).parents[1])}
    process = subprocess.Popen(command, stderr=subprocess.PIPE, env=environment, **popen)
    try:
        deadline = time.monotonic() + 20
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    return process, port
            assert process.poll() is None
            assert time.monotonic() < deadline
            time.sleep(0.02)
    except BaseException:
        process.kill()
        process.wait()
        raise


def test_the_command_with_two_workers_refuses_a_replay_and_stops_on_ctrl_c(
    tmp_path: Path,
) -> None:
    # `kaprules serve` as documented, two workers: discovery, a hook call, a token replayed
    # on another connection (another worker: the parent hands two open connections to two
    # workers), feedback on a card another worker answered, then Ctrl-C: one line, exit 130.
    log = tmp_path / "feedback.jsonl"
    process, port = _serving(
        tmp_path,
        *("--protocol", "esketamine-trd@1", "--workers", "2", "--state-dir", str(tmp_path)),
        *("--timezone", ZONE, "--feedback-log", str(log)),
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        first, second = (http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in "12")

        def call(connection: http.client.HTTPConnection, path: str, bearer: str, body: Any) -> Any:
            data = None if body is None else json.dumps(body).encode()
            headers = {"Authorization": f"Bearer {bearer}", "Content-Type": "application/json"}
            connection.request("POST" if body else "GET", path, data, headers)
            response = connection.getresponse()
            return response.status, json.loads(response.read())

        once = token(base + "/cds-services")
        assert call(first, "/cds-services", once, None)[0] == 200
        assert call(second, "/cds-services", token(base + "/cds-services"), None)[0] == 200
        status, answer = call(second, "/cds-services", once, None)
        assert (status, answer["issue"][0]["code"]) == (401, "security")
        assert "replayed" in answer["issue"][0]["diagnostics"]
        path = "/cds-services/esketamine-trd"
        proposed = appointment("new", "proposed", "2030-03-08T09:00:00-07:00")
        status, answer = call(first, path, token(base + path), hook_call(proposed))
        assert status == 200, answer
        card = next(c for c in answer["cards"] if c["source"]["topic"]["code"] == "weekly-cap")
        reason = {"system": WAIVER_REASON_SYSTEM, "code": "clinical-judgement"}
        feedback = {
            "feedback": [
                {
                    "card": card["uuid"],
                    "outcome": "overridden",
                    "overrideReason": {"reason": reason},
                    "outcomeTimestamp": "2030-03-06T20:05:00Z",
                }
            ]
        }
        assert call(second, path + "/feedback", token(base + path), feedback)[0] == 200
        (line,) = log.read_text().splitlines()
        assert json.loads(line)["waiver"]["rule"] == "weekly-cap"
        first.close()
        second.close()
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
        linux = children.exists()
        if linux:  # a worker killed is replaced, and calls go on
            killed = int(children.read_text().split()[0])
            os.kill(killed, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while True:
                workers = [int(pid) for pid in children.read_text().split()]
                if len(workers) == 2 and killed not in workers:
                    break
                assert time.monotonic() < deadline
                time.sleep(0.02)
            again = [http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in "12"]
            for connection in again:  # one to each worker, the new one among them
                status, _ = call(connection, "/cds-services", token(base + "/cds-services"), None)
                assert status == 200
                connection.close()
        os.killpg(process.pid, signal.SIGINT)  # a terminal's Ctrl-C: the whole group
        _, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 130
    lines = err.decode().splitlines()
    assert lines[-1] == "kaprules: interrupted"
    assert "Traceback" not in err.decode()
    replaced = [line for line in lines if line.startswith("kaprules serve: worker")]
    assert len(replaced) == (1 if linux else 0)
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0  # no worker left listening


def test_the_listener_is_tcp_so_answers_are_not_held_for_a_delayed_ack() -> None:
    # asyncio sets TCP_NODELAY on a connection only when its socket names IPPROTO_TCP: a
    # listener made without it held each answer ~40 ms (Nagle's wait for a delayed ACK).
    listener = serve._listen("127.0.0.1", 0)
    with listener, socket.create_connection(listener.getsockname()):
        accepted, _ = listener.accept()
        with accepted:
            assert accepted.proto == socket.IPPROTO_TCP


def test_a_port_in_use_is_exit_2_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "keys.json").write_text(json.dumps(jwks(KEY)))
    (tmp_path / "issuers.toml").write_text(f'[[issuers]]\niss = "{ISS}"\njwks = "keys.json"\n')
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        assert main(["serve", "--issuers", str(tmp_path / "issuers.toml"), "--port", port]) == 2
    (err,) = capsys.readouterr().err.splitlines()  # one line, and no "serving" before it
    assert f"cannot listen on 127.0.0.1:{port}" in err


def test_a_feedback_log_that_cannot_be_written_is_exit_2_at_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Not a service that starts and then answers every feedback with a 500.
    (tmp_path / "keys.json").write_text(json.dumps(jwks(KEY)))
    (tmp_path / "issuers.toml").write_text(f'[[issuers]]\niss = "{ISS}"\njwks = "keys.json"\n')
    log = tmp_path / "no-such-folder" / "feedback.jsonl"
    args = ["serve", "--issuers", str(tmp_path / "issuers.toml"), "--feedback-log", str(log)]
    with socket.socket() as taken:  # were the log not checked first, it would stop here
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        assert main([*args, "--port", port]) == 2
    (err,) = capsys.readouterr().err.splitlines()
    assert "feedback_log" in err
    assert "cannot be appended to" in err
    assert not log.parent.exists()


# --- keys from a jku URL -------------------------------------------------------------------


def _asgi(
    application: Any, method: str, path: str, headers: list[tuple[bytes, bytes]]
) -> tuple[int, dict[str, str], bytes]:
    # One bodiless request through the ASGI application, as Uvicorn hands it over.
    scope = {
        "type": "http", "method": method, "path": path, "raw_path": path.encode(),
        "query_string": b"", "headers": headers, "scheme": "http",
        "server": ("127.0.0.1", 80), "http_version": "1.1", "root_path": "",
        "client": ("127.0.0.1", 5000),
    }  # fmt: skip
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(application(scope, receive, send))
    shown = {k.decode().lower(): v.decode() for k, v in sent[0]["headers"]}
    return sent[0]["status"], shown, b"".join(m.get("body", b"") for m in sent[1:])


def _asgi_get(application: Any, path: str, bearer: str) -> tuple[int, Any]:
    status, _, body = _asgi(
        application, "GET", path, [(b"authorization", f"Bearer {bearer}".encode())]
    )
    return status, json.loads(body)


@pytest.mark.parametrize(
    ("option", "value", "named"),
    [
        ("--url", "https://cds.example.org/?tenant=1", "base_url"),
        ("--url", "https://cds.example.org/#x", "base_url"),
        ("--cors", "https://ehr.example.org/", "cors[0]"),  # a browser's Origin has no /
        ("--cors", "ehr.example.org", "cors[0]"),
    ],
)
def test_a_url_or_origin_no_call_can_match_is_exit_2_at_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str, named: str
) -> None:
    # They started: every token's aud, or every browser's preflight, then failed to match.
    (tmp_path / "keys.json").write_text(json.dumps(jwks(KEY)))
    (tmp_path / "issuers.toml").write_text(f'[[issuers]]\niss = "{ISS}"\njwks = "keys.json"\n')
    args = ["serve", "--issuers", str(tmp_path / "issuers.toml"), option, value]
    with socket.socket() as taken:  # were it not checked first, it would stop here
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert main([*args, "--port", str(taken.getsockname()[1])]) == 2
    (err,) = capsys.readouterr().err.splitlines()
    assert f"cannot serve: {named}: " in err


def _preflight(application: Any, origin: str) -> tuple[int, dict[str, str], bytes]:
    # A browser's CORS preflight.
    headers = [
        (b"origin", origin.encode()),
        (b"access-control-request-method", b"POST"),
        (b"access-control-request-headers", b"authorization,content-type"),
    ]
    return _asgi(application, "OPTIONS", "/cds-services/kap-standard", headers)


def test_a_cors_preflight_from_another_origin_is_a_logged_operation_outcome(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "keys.json").write_text(json.dumps(jwks(KEY)))
    (tmp_path / "issuers.toml").write_text(f'[[issuers]]\niss = "{ISS}"\njwks = "keys.json"\n')
    ehr = "https://ehr.example.org"
    application = serve.app(
        [kaprules.get_protocol("kap-standard@2")],
        serve.read_issuers(tmp_path / "issuers.toml"),
        "http://127.0.0.1:80",
        cors=[ehr],
    )
    status, headers, _ = _preflight(application, ehr)
    assert status == 200
    assert headers["access-control-allow-origin"] == ehr
    capsys.readouterr()
    status, headers, body = _preflight(application, "https://evil.example")
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert "access-control-allow-origin" not in headers
    outcome = json.loads(body)
    assert outcome["resourceType"] == "OperationOutcome"
    assert "origin" in outcome["issue"][0]["diagnostics"]
    (said,) = capsys.readouterr().err.splitlines()
    assert said.startswith("kaprules serve: refused 400 OPTIONS /cds-services/kap-standard: ")


def test_keys_from_a_jku_are_fetched_again_for_a_new_kid_at_most_once_a_minute(
    tmp_path: Path,
) -> None:
    # A key server on loopback: the EHR rotates its key (kid k1 -> k2); the service fetches
    # the set again for the token of the new kid, but not for a third kid a moment later.
    import http.server

    served = {"keys": [jwks(KEY)["keys"][0]]}
    fetches: list[str] = []

    class KeyServer(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fetches.append(self.path)
            data = json.dumps(served).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    keys = http.server.ThreadingHTTPServer(("127.0.0.1", 0), KeyServer)
    threading.Thread(target=keys.serve_forever, args=(0.02,), daemon=True).start()
    try:
        url = f"http://127.0.0.1:{keys.server_address[1]}/jwks.json"
        (tmp_path / "issuers.toml").write_text(f'[[issuers]]\niss = "{ISS}"\njku = "{url}"\n')
        base = "https://cds.example.org"
        application = serve.app(
            [kaprules.get_protocol("kap-standard@2")],
            serve.read_issuers(tmp_path / "issuers.toml"),
            base,
        )
        aud = base + "/cds-services"
        assert _asgi_get(application, "/cds-services", token(aud))[0] == 200
        assert len(fetches) == 1  # at start-up only

        rotated = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(OTHER_KEY.public_key()))
        served["keys"] = [rotated | {"kid": "k2", "alg": "ES384", "use": "sig"}]
        now = int(time.time())
        claims = {"iss": ISS, "aud": aud, "exp": now + 60, "iat": now}

        def signed(kid: str) -> str:
            return jwt.encode(
                claims | {"jti": str(uuid.uuid4())}, OTHER_KEY, "ES384", headers={"kid": kid}
            )

        assert _asgi_get(application, "/cds-services", signed("k2"))[0] == 200
        assert len(fetches) == 2  # the new kid: fetched again
        status, answer = _asgi_get(application, "/cds-services", signed("k3"))
        assert status == 401
        assert "kid" in answer["issue"][0]["diagnostics"]
        assert len(fetches) == 2  # a minute has not passed: not fetched again
        assert _asgi_get(application, "/cds-services", token(aud))[0] == 401  # k1 is gone
    finally:
        keys.shutdown()
        keys.server_close()


def test_a_jku_that_redirects_where_a_jku_may_not_be_is_not_followed(tmp_path: Path) -> None:
    # http is allowed only to loopback by name (127.0.0.1): a redirect to plain http on
    # another host (here 127.0.0.2, reachable without a network) would let whoever is on
    # the path swap the keys. urllib followed it.
    import http.server

    class Keys(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data = json.dumps(jwks(KEY)).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    class Redirect(Keys):
        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.2:{elsewhere.server_address[1]}/k")
            self.send_header("Content-Length", "0")
            self.end_headers()

    elsewhere = http.server.ThreadingHTTPServer(("127.0.0.2", 0), Keys)
    redirect = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    for server in (elsewhere, redirect):
        threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    try:
        url = f"http://127.0.0.1:{redirect.server_address[1]}/jwks.json"
        (tmp_path / "issuers.toml").write_text(f'[[issuers]]\niss = "{ISS}"\njku = "{url}"\n')
        with pytest.raises(kaprules.InputError, match="redirect"):
            serve.read_issuers(tmp_path / "issuers.toml")
    finally:
        for server in (elsewhere, redirect):
            server.shutdown()
            server.server_close()


def test_jku_keys_are_due_again_when_stale_or_a_kid_is_new_and_a_minute_passed() -> None:
    issuer = serve.Issuer(ISS, (jwt.PyJWK(jwks(KEY)["keys"][0], "ES384"),), "https://x.example/k")
    keyset = serve._KeySet(issuer, 1000.0)
    assert keyset.due("k9", 1000.0)  # a new kid right after start-up
    assert not keyset.due("k1", 1000.0)  # a known kid, fresh keys
    keyset.tried = 1000.0
    assert not keyset.due("k9", 1000.0 + serve.JKU_RETRY_SECONDS - 1)
    assert keyset.due("k9", 1000.0 + serve.JKU_RETRY_SECONDS)
    assert not keyset.due("k1", 1000.0 + serve.JKU_TTL_SECONDS - 1)
    assert keyset.due("k1", 1000.0 + serve.JKU_TTL_SECONDS)


def test_a_jku_must_be_https_or_loopback(tmp_path: Path) -> None:
    (tmp_path / "i.toml").write_text(
        f'[[issuers]]\niss = "{ISS}"\njku = "http://keys.example.org/jwks.json"\n'
    )
    with pytest.raises(kaprules.InputError, match=r"issuers\[0\]\.jku"):
        serve.read_issuers(tmp_path / "i.toml")


def test_the_command_with_one_worker_stops_on_sigterm_in_one_line(tmp_path: Path) -> None:
    # As systemd stops it: SIGTERM to the process, exit 143 (SuccessExitStatus=143).
    process, port = _serving(tmp_path, "--workers", "1")
    try:
        server = {"base": f"http://127.0.0.1:{port}", "port": port}
        status, _, answer = request(server, "GET", "/cds-services")
        assert status == 200
        assert [s["id"] for s in answer["services"]] == ["kap-standard"]
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 143
    assert err.decode().splitlines()[-1] == "kaprules: terminated"
    assert "Traceback" not in err.decode()


def test_the_state_file_is_the_services_alone(tmp_path: Path) -> None:
    # Its cards hold patient and user ids: like the feedback log, mode 0600.
    serve._shared_state(tmp_path).first_use(ISS, "j", time.time() + 60, time.time())
    for name in (serve.STATE_FILE, serve.STATE_FILE + "-wal"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600, name


def test_a_card_the_state_file_cannot_read_is_an_unknown_card(tmp_path: Path) -> None:
    # A row written by another version (its fields changed): feedback on it is
    # "known_card": false, not a failure.
    state = serve._shared_state(tmp_path)
    state.connect().execute("INSERT INTO cards VALUES ('c1', '{\"rule\": 1}')")
    assert state.get("c1") is None


@pytest.mark.parametrize(
    ("cores", "fork", "expected"),
    [(1, True, 1), (2, True, 2), (3, True, 3), (16, True, 4), (8, False, 1)],
)
def test_the_default_workers_are_one_per_core_up_to_four(
    cores: int, fork: bool, expected: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kaprules.cli._serve import default_workers

    monkeypatch.setattr(os, "sched_getaffinity", lambda _: set(range(cores)), raising=False)
    if not fork:
        monkeypatch.delattr(os, "fork", raising=False)
    assert default_workers() == expected
