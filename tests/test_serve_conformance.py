"""kaprules serve against recorded ``appointment-book`` requests of public kits and specs.

The requests under ``tests/data/cds-hooks/`` are modelled on published ones (each file's
``.md`` names its source): the CDS Hooks spec's own examples, the Inferno Da Vinci CRD
conformance test kit's requests, and the Da Vinci PDex sample. They are sent as recorded
and with the prefetch this service needs added, in process, to the ASGI application that
``kaprules serve`` runs. Each answer must be either spec-valid cards or a documented 4xx
with an OperationOutcome, never a 500, and must echo nothing of the patient's identity.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kaprules

pytest.importorskip("starlette", reason="needs pip install '.[serve]'")
pytest.importorskip("jwt", reason="needs pip install '.[serve]'")
pytest.importorskip("fhir.resources", reason="needs pip install '.[serve]'")

import jwt

from kaprules import serve
from kaprules.fhir import course_from_bundle
from test_serve import ISS, KEY, NOW, ZONE, jwks, token

from conftest import SLOW

DATA = Path(__file__).parent / "data" / "cds-hooks"
BASE = "https://cds.clinic.example"
SERVICE = "/cds-services/kap-standard"
OUR_PREFETCH = {"appointments": None, "encounters": None, "observations": None}
INDICATORS = {"info", "warning", "critical"}
ACTIONS = {"create", "update", "delete"}
# The identity planted in the recorded requests (the sources' own names replaced by these).
IDENTITY = (
    "Avery Quinn Sample",
    "Avery Sample",
    "Testperson",
    "Casey",
    "1984-05-17",
    "7730215",
    "HP567123489",
)

# A held Appointment, and the links of a searchset's first page of several.
HELD = {
    "resourceType": "Appointment",
    "id": "h1",
    "status": "fulfilled",
    "start": "2030-03-06T09:00:00-07:00",
    "participant": [{"actor": {"reference": "Practitioner/example"}, "status": "accepted"}],
}
NEXT_PAGE = [
    {"relation": "self", "url": "https://ehr.example.test/r4/Appointment?patient=example"},
    {"relation": "next", "url": "https://ehr.example.test/r4/Appointment?patient=example&p=2"},
]


def recorded(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((DATA / f"{name}.json").read_text("utf-8"))
    return document


def with_our_prefetch(document: dict[str, Any]) -> dict[str, Any]:
    """The recorded request as an EHR configured with this service's discovery sends it."""
    changed = copy.deepcopy(document)
    changed["prefetch"] = {**changed.get("prefetch", {}), **OUR_PREFETCH}
    return changed


def renamed_key(document: dict[str, Any]) -> dict[str, Any]:
    """The spec example's ``context.appointment`` as the hook defines it: ``appointments``."""
    changed = with_our_prefetch(document)
    changed["context"]["appointments"] = changed["context"].pop("appointment")
    return changed


def application(timezone: str | None = ZONE) -> Any:
    keys = tuple(jwt.PyJWK(k, "ES384") for k in jwks(KEY)["keys"])
    return serve.app(
        [kaprules.get_protocol("kap-standard@2"), kaprules.get_protocol("esketamine-trd@1")],
        [serve.Issuer(ISS, keys)],
        BASE,
        timezone=timezone,
        now=lambda: NOW,
    )


@pytest.fixture(scope="module")
def app() -> Any:
    return application()


def post(app: Any, body: object, path: str = SERVICE) -> tuple[int, Any]:
    """The request as Uvicorn hands it to the application, with a fresh signed token."""
    data = json.dumps(body).encode()
    headers = [
        (b"authorization", f"Bearer {token(BASE + path)}".encode()),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(data)).encode()),
    ]
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": headers,
        "scheme": "https",
        "server": ("cds.clinic.example", 443),
        "http_version": "1.1",
        "root_path": "",
        "client": ("127.0.0.1", 5000),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": data, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    text = b"".join(m.get("body", b"") for m in sent[1:])
    return int(sent[0]["status"]), json.loads(text)


# --- what a valid answer is -------------------------------------------------------------------


def _absolute(url: object) -> bool:
    return isinstance(url, str) and re.match(r"https?://[^/\s]+", url) is not None


def card_problems(card: dict[str, Any]) -> list[str]:
    """Where a card breaks the CDS Hooks 2.0 card schema (empty when it does not)."""
    problems = []
    uuid.UUID(card["uuid"])
    summary = card.get("summary")
    if not isinstance(summary, str) or not summary or len(summary) >= 140:
        problems.append("summary must be a string under 140 characters")
    if card.get("indicator") not in INDICATORS:
        problems.append(f"indicator {card.get('indicator')!r}")
    source = card.get("source")
    if not isinstance(source, dict) or not isinstance(source.get("label"), str):
        problems.append("source.label is required")
    elif "url" in source and not _absolute(source["url"]):
        problems.append("source.url must be absolute")
    if "detail" in card and not isinstance(card["detail"], str):
        problems.append("detail must be a string")
    suggestions = card.get("suggestions", [])
    if suggestions and card.get("selectionBehavior") not in {"at-most-one", "any"}:
        problems.append("selectionBehavior is required with suggestions")
    for suggestion in suggestions:
        if not isinstance(suggestion.get("label"), str):
            problems.append("suggestion.label is required")
        uuid.UUID(suggestion["uuid"])
        for action in suggestion.get("actions", []):
            if action.get("type") not in ACTIONS or not isinstance(action.get("description"), str):
                problems.append(f"action {action.get('type')!r} needs a type and description")
            resource = action.get("resource")
            if action.get("type") in {"create", "update"} and (
                not isinstance(resource, dict) or "resourceType" not in resource
            ):
                problems.append("a create or update action needs its resource")
    for reason in card.get("overrideReasons", []):
        if not isinstance(reason.get("code"), str) or not isinstance(reason.get("system"), str):
            problems.append("overrideReasons are Codings with system and code")
    for link in card.get("links", []):
        if link.get("type") not in {"absolute", "smart"} or not _absolute(link.get("url")):
            problems.append("links need an absolute url and a type")
    return problems


def outcome_expressions(body: Any) -> list[str]:
    """The expressions of an OperationOutcome, after checking it is one."""
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"], body
    found = []
    for issue in body["issue"]:
        assert issue["severity"] in {"error", "fatal"}
        assert isinstance(issue["code"], str)
        assert isinstance(issue["diagnostics"], str)
        assert "Traceback" not in issue["diagnostics"]
        found += issue.get("expression", [])
    return found


def echoed(body: Any) -> list[str]:
    text = json.dumps(body)
    return [value for value in IDENTITY if value in text]


# --- the recorded requests, and what each must get -------------------------------------------


PREFETCH_KEYS = ["prefetch.appointments", "prefetch.encounters", "prefetch.observations"]
CASES: dict[str, tuple[Callable[[], dict[str, Any]], int, list[str]]] = {
    # name: (the request, the status, the OperationOutcome's expressions or the days refused)
    "spec-stu3-as-recorded": (lambda: recorded("spec-stu3-example"), 412, PREFETCH_KEYS),
    "spec-stu3-prefetched": (
        lambda: with_our_prefetch(recorded("spec-stu3-example")),
        200,
        ["2019-08-10", "2020-08-01"],
    ),
    "spec-singular-key-as-recorded": (
        lambda: recorded("spec-singular-key-example"),
        400,
        ["context.appointments"],
    ),
    "spec-singular-key-renamed": (
        lambda: renamed_key(recorded("spec-singular-key-example")),
        200,
        ["2013-12-10"],
    ),
    "inferno-crd-as-recorded": (
        lambda: recorded("inferno-crd-appointment-book"),
        412,
        PREFETCH_KEYS,
    ),
    "inferno-crd-prefetched": (
        lambda: with_our_prefetch(recorded("inferno-crd-appointment-book")),
        200,
        ["2019-08-10", "2020-08-01"],
    ),
    "inferno-crd-prefetch-as-recorded": (
        lambda: recorded("inferno-crd-appointment-book-prefetch"),
        412,
        PREFETCH_KEYS,
    ),
    "inferno-crd-prefetch-prefetched": (
        lambda: with_our_prefetch(recorded("inferno-crd-appointment-book-prefetch")),
        200,
        [],
    ),
    "pdex-as-recorded": (lambda: recorded("pdex-appointment-book"), 412, PREFETCH_KEYS),
    "pdex-prefetched": (lambda: with_our_prefetch(recorded("pdex-appointment-book")), 200, []),
}


@pytest.mark.parametrize("service", ["kap-standard", "esketamine-trd"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_a_recorded_request_gets_valid_cards_or_a_documented_refusal(
    app: Any, name: str, service: str
) -> None:
    make, status, expected = CASES[name]
    answered, body = post(app, make(), f"/cds-services/{service}")
    assert answered == status, body
    if status != 200:
        assert sorted(outcome_expressions(body)) == sorted(expected)
        return
    assert set(body) <= {"cards", "systemActions"}
    for card in body["cards"]:
        assert card_problems(card) == [], card
    # Every proposed appointment in the past is refused (future-start), on its own day.
    refused = {
        card["summary"].removeprefix("Not bookable on ")[:10]
        for card in body["cards"]
        if card["indicator"] == "critical" and card["source"]["topic"]["code"] == "future-start"
    }
    assert refused == set(expected)


def test_every_recorded_request_is_replayed_and_has_a_note_of_its_source() -> None:
    recorded_files = {p.stem for p in DATA.glob("*.json")}
    assert recorded_files == {
        "spec-stu3-example",
        "spec-singular-key-example",
        "inferno-crd-appointment-book",
        "inferno-crd-appointment-book-prefetch",
        "pdex-appointment-book",
    }
    for stem in recorded_files:
        assert (DATA / f"{stem}.md").is_file(), f"{stem}.json has no note of its source"


def shifted(document: dict[str, Any], *starts: str) -> dict[str, Any]:
    """The recorded request with its proposed Appointments moved to ``starts``."""
    changed = with_our_prefetch(document)
    given = changed["context"]["appointments"]
    resources = given if isinstance(given, list) else [e["resource"] for e in given["entry"]]
    for resource, start in zip(resources, starts, strict=True):
        resource["start"] = start
        resource.pop("end", None)
    return changed


@pytest.mark.parametrize(
    ("name", "starts"),
    [
        # After NOW (Wednesday 6 March 2030, 13:00 in Denver): two sessions two days apart.
        (
            "inferno-crd-appointment-book",
            ("2030-03-09T09:00:00-07:00", "2030-03-11T09:00:00-06:00"),
        ),
        # The spec's example has the same id twice: the second is checked as a second session.
        ("spec-stu3-example", ("2030-03-09T09:00:00-07:00", "2030-03-09T15:00:00-07:00")),
    ],
)
def test_a_recorded_shape_booked_in_the_future_gets_check_bookings_findings(
    app: Any, name: str, starts: tuple[str, ...]
) -> None:
    document = shifted(recorded(name), *starts)
    status, body = post(app, document)
    assert status == 200, body
    protocol = kaprules.get_protocol("kap-standard@2")
    so_far = kaprules.Course(ZONE, [])
    expected = []
    given = document["context"]["appointments"]
    for resource in given if isinstance(given, list) else [e["resource"] for e in given["entry"]]:
        session = course_from_bundle([resource], timezone=ZONE).course.sessions[0]
        if session.id in {s.id for s in so_far.sessions}:
            session = attrs.evolve(session, id="second")
        report = kaprules.check_booking(so_far, session, NOW, protocol)
        expected += [(f.rule, f.severity.value) for f in report.findings]
        so_far = attrs.evolve(so_far, sessions=(*so_far.sessions, session))
    severity = {"critical": "error", "warning": "warning", "info": "info"}
    cards = [(c["source"]["topic"]["code"], severity[c["indicator"]]) for c in body["cards"]]
    assert sorted(cards) == sorted(expected)
    for card in body["cards"]:
        assert card_problems(card) == [], card


@pytest.mark.parametrize("name", sorted(CASES))
def test_nothing_of_the_patients_identity_is_echoed(app: Any, name: str) -> None:
    make, _, _ = CASES[name]
    document = make()
    assert any(value in json.dumps(document) for value in IDENTITY)
    _, body = post(app, document)
    assert echoed(body) == []


def test_a_proposed_appointment_without_a_start_gets_an_info_card_not_a_refusal(
    app: Any,
) -> None:
    # The Inferno kit's proposed Appointment has no start: R4 allows that of a proposed one
    # (invariant app-3). Nothing to judge it by: one info card says it was not checked.
    status, body = post(app, with_our_prefetch(recorded("inferno-crd-appointment-book-prefetch")))
    assert status == 200, body
    (card,) = body["cards"]
    assert card["indicator"] == "info"
    assert card["source"]["topic"] == dict(serve.NOT_CHECKED_TOPIC)
    assert "context.appointments.entry[0].resource" in card["detail"]
    assert card_problems(card) == []
    assert "suggestions" not in card


def test_a_start_less_proposal_beside_a_dated_one_leaves_the_dated_one_judged(app: Any) -> None:
    document = shifted(
        recorded("inferno-crd-appointment-book"),
        "2030-03-09T09:00:00-07:00",
        "2030-03-10T09:00:00-06:00",
    )
    status, both = post(app, document)
    assert ("critical", "session-spacing") in _topics(both)  # the 10th is a day after the 9th
    del document["context"]["appointments"]["entry"][0]["resource"]["start"]
    status, body = post(app, document)
    assert status == 200, body
    # The start-less one is no session: the 10th, judged alone, is bookable.
    assert _topics(body) == [("info", "not-checked")]


def test_a_start_less_proposal_in_the_history_is_no_session(app: Any) -> None:
    # The EHR's other proposals may lack a start too: they count for nothing, refuse nothing.
    document = shifted(
        recorded("inferno-crd-appointment-book"),
        "2030-03-09T09:00:00-07:00",
        "2030-03-11T09:00:00-06:00",
    )
    status, alone = post(app, document)
    assert status == 200, alone
    other = recorded("inferno-crd-appointment-book-prefetch")["context"]["appointments"]
    document["prefetch"]["appointments"] = other
    status, body = post(app, document)
    assert status == 200, body
    assert _topics(body) == _topics(alone)


@pytest.mark.parametrize("status", ["booked", "pending", "fulfilled"])
def test_an_appointment_without_a_start_that_is_not_proposed_is_still_a_400(
    app: Any, status: str
) -> None:
    # app-3 lets only proposed, cancelled and waitlisted Appointments lack a start.
    document = with_our_prefetch(recorded("inferno-crd-appointment-book-prefetch"))
    document["context"]["appointments"]["entry"][0]["resource"]["status"] = status
    answered, body = post(app, document)
    assert answered == 400, body
    assert outcome_expressions(body) == ["context.appointments.entry[0].resource.start"]
    # And a held Appointment without a start in the history, as before.
    document = with_our_prefetch(recorded("inferno-crd-appointment-book"))
    held = {**HELD, "id": "h2"}
    del held["start"]
    document["prefetch"]["appointments"] = {"resourceType": "Bundle", "entry": [{"resource": held}]}
    answered, body = post(app, document)
    assert answered == 400, body
    assert outcome_expressions(body) == ["prefetch.appointments.entry[0].resource.start"]


@pytest.mark.parametrize("name", ["pdex-appointment-book", "inferno-crd-appointment-book-prefetch"])
def test_nothing_to_judge_needs_no_timezone(name: str) -> None:
    # PDex's empty context.appointments; the Inferno kit's one start-less proposal.
    status, body = post(application(timezone=None), with_our_prefetch(recorded(name)))
    assert status == 200, body
    assert [c["indicator"] for c in body["cards"]] == (["info"] if "inferno" in name else [])


def test_a_dated_proposal_without_a_timezone_is_still_a_400() -> None:
    status, body = post(
        application(timezone=None), with_our_prefetch(recorded("inferno-crd-appointment-book"))
    )
    assert status == 400, body
    assert outcome_expressions(body) == ["context.appointments"]


_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.text(max_size=30),
    st.sampled_from(["2019-08-10", "2030-03-09T09:00:00", "Appointment", "Bundle", "searchset"]),
    st.lists(st.integers(), max_size=2),
    st.fixed_dictionaries({}),
)


def _places(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path] if path else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _places(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _places(item, (*path, index))
    return found


@settings(max_examples=40, deadline=None, suppress_health_check=SLOW)
@given(data=st.data())
def test_any_change_to_a_recorded_request_is_answered_without_a_failure(
    app: Any, data: st.DataObject
) -> None:
    name = data.draw(st.sampled_from(sorted(CASES)))
    document = CASES[name][0]()
    where = data.draw(st.sampled_from(_places(document)))
    target = document
    for step in where[:-1]:
        target = target[step]
    if data.draw(st.booleans()) and isinstance(target, dict):
        del target[where[-1]]
    else:
        target[where[-1]] = data.draw(_VALUES)
    status, body = post(app, document)
    # Cards, or a refusal that says what is wrong: never a failure of the service.
    assert status in (200, 400, 412), (name, where, status, body)
    assert echoed(body) == [], (name, where)
    if status == 200:
        assert all(card_problems(card) == [] for card in body["cards"])
    else:
        assert outcome_expressions(body)


def test_a_prefetch_the_ehr_could_not_fetch_is_412() -> None:
    document = with_our_prefetch(recorded("inferno-crd-appointment-book"))
    failed = {"severity": "error", "code": "timeout", "diagnostics": "search timed out"}
    document["prefetch"]["observations"] = {"resourceType": "OperationOutcome", "issue": [failed]}
    status, body = post(application(), document)
    assert status == 412, body
    assert outcome_expressions(body) == ["prefetch.observations"]


def test_a_paginated_prefetch_is_not_judged_as_the_whole_history() -> None:
    document = shifted(
        recorded("inferno-crd-appointment-book"),
        "2030-03-09T09:00:00-07:00",
        "2030-03-11T09:00:00-06:00",
    )
    document["prefetch"]["appointments"] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": 40,
        "link": NEXT_PAGE,
        "entry": [{"resource": HELD, "search": {"mode": "match"}}],
    }
    status, body = post(application(), document)
    assert status == 412, body
    assert outcome_expressions(body) == ["prefetch.appointments"]


def _failed(severity: str) -> dict[str, Any]:
    issue = {"severity": severity, "code": "timeout", "diagnostics": "Avery Sample: timed out"}
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def test_every_prefetch_that_is_not_whole_is_named_with_what_is_missing(app: Any) -> None:
    document = with_our_prefetch(recorded("inferno-crd-appointment-book"))
    del document["prefetch"]["encounters"]
    document["prefetch"]["appointments"] = {
        "resourceType": "Bundle",
        "link": NEXT_PAGE,
        "entry": [{"resource": HELD}],
    }
    document["prefetch"]["observations"] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": _failed("fatal"), "search": {"mode": "outcome"}}],
    }
    status, body = post(app, document)
    assert status == 412, body
    assert sorted(outcome_expressions(body)) == PREFETCH_KEYS
    codes = {tuple(i["expression"]): i["code"] for i in body["issue"]}
    assert codes[("prefetch.encounters",)] == "required"
    assert codes[("prefetch.appointments",)] == "incomplete"
    assert echoed(body) == []  # the EHR's OperationOutcome is not shown back


def test_a_warning_in_a_searchset_and_an_optional_key_not_whole_are_read(app: Any) -> None:
    # A warning (search.mode outcome) leaves the search whole; the optional medications the
    # EHR could not give are as if not sent, the doses unknown, as when the key is absent.
    document = shifted(
        recorded("inferno-crd-appointment-book"),
        "2030-03-09T09:00:00-07:00",
        "2030-03-11T09:00:00-06:00",
    )
    document["prefetch"]["observations"] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": _failed("warning"), "search": {"mode": "outcome"}}],
    }
    status, whole = post(app, document)
    assert status == 200, whole
    for medications in (_failed("error"), {"resourceType": "Bundle", "link": NEXT_PAGE}):
        document["prefetch"]["medications"] = medications
        status, body = post(app, document)
        assert status == 200, body
        assert _topics(body) == _topics(whole)


def _topics(body: Any) -> list[tuple[str, str]]:
    return sorted((c["indicator"], c["source"]["topic"]["code"]) for c in body["cards"])


def test_a_suggestion_carries_the_moved_appointment_and_nothing_of_the_patient(app: Any) -> None:
    status, body = post(app, renamed_key(recorded("spec-singular-key-example")))
    assert status == 200, body
    (suggestion,) = [s for c in body["cards"] for s in c.get("suggestions", ())]
    (action,) = suggestion["actions"]
    moved = action["resource"]
    assert moved == {
        "resourceType": "Appointment",
        "id": "example",
        "status": "proposed",
        "start": moved["start"],
        "end": moved["end"],
        "participant": [
            {
                "actor": {"reference": "Patient/example"},
                "required": "required",
                "status": "tentative",
            },
            {
                "type": [
                    {
                        "coding": [
                            {"system": "http://hl7.org/fhir/v3/ParticipationType", "code": "ATND"}
                        ]
                    }
                ],
                "actor": {"reference": "Practitioner/example"},
                "required": "required",
                "status": "accepted",
            },
            {
                "actor": {"reference": "Location/1"},
                "required": "required",
                "status": "action-needed",
            },
        ],
    }
    # Two hours long, as proposed; moved to a day the service would accept.
    length = dt.datetime.fromisoformat(moved["end"]) - dt.datetime.fromisoformat(moved["start"])
    assert length == dt.timedelta(hours=2)
    assert course_from_bundle([moved], timezone=ZONE).course.sessions[0].start > NOW


# --- kaprules.fhir on the recorded Appointments ----------------------------------------------


def appointments_of(name: str, key: str = "appointments") -> Any:
    return recorded(name)["context"][key]


@pytest.mark.parametrize(
    ("name", "key", "ignored"),
    [
        (
            "inferno-crd-appointment-book",
            "appointments",
            ["entry[0].resource.end", "entry[0].resource.reason", "entry[1].resource.end"],
        ),
        (
            "spec-singular-key-example",
            "appointment",
            [
                "a plain array",
                "entry[0].resource.serviceCategory",
                "entry[0].resource.indication",
                "entry[0].resource.incomingReferral",
            ],
        ),
    ],
)
def test_stu3_elements_are_ignored_with_a_note_naming_them(
    name: str, key: str, ignored: list[str]
) -> None:
    read = course_from_bundle(appointments_of(name, key), timezone=ZONE)
    assert read.course.sessions
    assert set(read.planned) == {s.id for s in read.course.sessions}
    notes = " ".join(read.notes)
    for element in ignored:
        assert element in notes, (element, read.notes)
    assert not any(value in notes for value in IDENTITY)
    # The practitioner is the therapist: untyped, or typed ATND in the STU3 code system.
    assert all(s.therapist == "Dr Jordan Lindqvist" for s in read.course.sessions)


def test_the_spec_examples_repeated_id_is_an_error_naming_both_entries() -> None:
    # Read as one Bundle (a history), two Appointments with one id are one session twice.
    with pytest.raises(kaprules.InputError) as caught:
        course_from_bundle(appointments_of("spec-stu3-example"), timezone=ZONE)
    assert [p.where for p in caught.value.problems] == ["Bundle.entry[1].resource.id"]
    assert "Bundle.entry[0].resource" in str(caught.value)
    assert echoed(str(caught.value)) == []


def test_a_bundle_without_a_type_is_read_and_an_appointment_without_start_is_named() -> None:
    bundle = appointments_of("inferno-crd-appointment-book-prefetch")
    assert "type" not in bundle
    with pytest.raises(kaprules.InputError) as caught:
        course_from_bundle(bundle, timezone=ZONE)
    assert [p.where for p in caught.value.problems] == ["Bundle.entry[0].resource.start"]
    bundle["entry"][0]["resource"]["start"] = "2030-03-09T09:00:00-07:00"
    read = course_from_bundle(bundle, timezone=ZONE)
    assert [s.id for s in read.course.sessions] == ["forprefetch-pra"]
    # Three PPRF participants: the Practitioner's reference is the therapist, not the Location.
    assert read.course.sessions[0].therapist == "Practitioner/app-par-act"


def test_a_searchsets_next_page_is_noted_as_not_read() -> None:
    bundle = {"resourceType": "Bundle", "type": "searchset", "link": NEXT_PAGE}
    bundle["entry"] = [{"resource": HELD}]
    read = course_from_bundle(bundle, timezone=ZONE)
    assert [s.id for s in read.course.sessions] == ["h1"]
    paged = [n for n in read.notes if n.startswith("Bundle.link[1]:")]
    assert paged == ["Bundle.link[1]: a next page is not read; only this page's entries are"]
    assert "example" not in " ".join(read.notes)  # the link's URL is not shown
    del bundle["link"]
    assert not any("Bundle.link" in n for n in course_from_bundle(bundle, timezone=ZONE).notes)


def test_without_a_timezone_the_offsets_are_not_guessed_into_a_zone() -> None:
    with pytest.raises(kaprules.InputError) as caught:
        course_from_bundle(appointments_of("inferno-crd-appointment-book"))
    assert [p.where for p in caught.value.problems] == ["timezone"]
