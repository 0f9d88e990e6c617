"""kaprules.fhir: FHIR R4B Bundles into courses and back, findings as DetectedIssues."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import pytest
from hypothesis import HealthCheck, given, settings

# The fhir extra is optional: without it these tests are skipped, saying why.
pytest.importorskip("fhir.resources", reason="needs pip install '.[fhir]'")

import kaprules
from kaprules import Course, InputError, Session, Vital, Waiver, evaluate
from kaprules.fhir import (
    OBSERVATION_SYSTEM,
    PARTICIPATION,
    TIMEZONE_EXTENSION,
    appointment_id,
    appointments_from_course,
    course_from_bundle,
    detected_issues,
    proposed_appointments,
)
from kaprules.strategies import compliant_courses

DENVER = ZoneInfo("America/Denver")
LOINC = "http://loinc.org"
SECRET = "Peter Chalmers"  # a name: must never reach a message, a note or an error


def appointment(
    id: str = "a1",
    status: str = "fulfilled",
    start: Any = "2026-12-01T09:00:00-07:00",
    *,
    zone: str | None = "America/Denver",
    escort: bool = True,
    **more: Any,
) -> dict[str, Any]:
    participants: list[dict[str, Any]] = [
        {"actor": {"reference": "Patient/p1", "display": SECRET}, "status": "accepted"},
        {"actor": {"reference": "Practitioner/t1", "display": "Dr T"}, "status": "accepted"},
    ]
    if escort:
        participants.append(
            {
                "type": [{"coding": [{"system": PARTICIPATION, "code": "ESC"}]}],
                "actor": {"reference": "RelatedPerson/r1", "display": SECRET},
                "status": "accepted",
            }
        )
    resource: dict[str, Any] = {
        "resourceType": "Appointment",
        "id": id,
        "status": status,
        "start": start,
        "participant": participants,
        **more,
    }
    if zone is not None:
        resource["extension"] = [{"url": TIMEZONE_EXTENSION, "valueCode": zone}]
    return resource


def observation(code: str, system: str = LOINC, **more: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": system, "code": code}]},
        **more,
    }


def bundle(*resources: Any) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": r} for r in resources],
    }


def problems_of(error: pytest.ExceptionInfo[InputError]) -> list[str]:
    return [p.where for p in error.value.problems]


@pytest.mark.parametrize(
    ("status", "planned", "skipped"),
    [
        ("fulfilled", False, 0),
        ("arrived", False, 0),
        ("checked-in", False, 0),
        ("proposed", True, 0),
        ("pending", True, 0),
        ("booked", True, 0),
        ("cancelled", None, 1),
        ("noshow", None, 1),
        ("entered-in-error", None, 1),
    ],
)
def test_each_appointment_status(status: str, planned: bool | None, skipped: int) -> None:
    read = course_from_bundle(bundle(appointment("a0"), appointment(status=status)))
    assert read.skipped == skipped
    assert [s.id for s in read.course.sessions] == (["a0"] if planned is None else ["a0", "a1"])
    assert read.planned == (("a1",) if planned else ())
    if skipped:
        assert any("not sessions" in note for note in read.notes)


def test_the_escort_and_the_therapist_are_read_and_never_shown() -> None:
    read = course_from_bundle(
        bundle(appointment(), appointment("a2", escort=False, start="2026-12-03T09:00:00-07:00"))
    )
    first, second = read.course.sessions
    assert first.escort == SECRET
    assert first.therapist == "Dr T"
    assert second.escort is None
    assert second.therapist == "Dr T"
    report = evaluate(read.course)
    assert [f.rule for f in report.findings if f.rule == "escort"] == ["escort"]
    shown = (
        repr(read) + json.dumps(report.to_dict()) + json.dumps(detected_issues(report, read.course))
    )
    assert SECRET not in shown


def test_a_declined_escort_is_no_escort() -> None:
    declined = appointment()
    declined["participant"][2]["status"] = "declined"
    assert course_from_bundle(bundle(declined)).course.sessions[0].escort is None


def test_session_day_data_by_encounter_reference_and_by_time() -> None:
    encounter = {
        "resourceType": "Encounter",
        "id": "e1",
        "status": "finished",
        "class": {"code": "AMB"},
        "appointment": [{"reference": "Appointment/a1"}],
    }
    food = observation(
        "67517-3",
        encounter={"reference": "Encounter/e1"},
        valueDateTime="2026-12-01T04:00:00-07:00",
    )
    pressure = observation(
        "85354-9",
        effectiveDateTime="2026-12-01T08:50:00-07:00",  # no reference: matched by time
        component=[
            {
                "code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
                "valueQuantity": {"value": 128},
            },
            {
                "code": {"coding": [{"system": LOINC, "code": "8462-4"}]},
                "valueQuantity": {"value": 82},
            },
        ],
    )
    liquid = observation(
        "last-liquid",
        OBSERVATION_SYSTEM,
        encounter={"reference": "Encounter/e1"},
        valueDateTime="2026-12-01T08:00:00-07:00",
    )
    dose = {
        "resourceType": "MedicationAdministration",
        "status": "completed",
        "medicationCodeableConcept": {"text": "ketamine"},
        "subject": {"reference": "Patient/p1"},
        "context": {"reference": "Encounter/e1"},
        "effectiveDateTime": "2026-12-01T09:00:00-07:00",
        "dosage": {"dose": {"value": 56, "unit": "mg", "code": "mg"}},
    }
    far = observation(
        "67517-3",
        effectiveDateTime="2026-12-05T09:00:00-07:00",
        valueDateTime="2026-12-05T04:00:00-07:00",
    )
    read = course_from_bundle(bundle(appointment(), encounter, food, pressure, liquid, dose, far))
    session = read.course.sessions[0]
    assert session.last_food == dt.datetime(2026, 12, 1, 4, tzinfo=DENVER)
    assert session.last_liquid == dt.datetime(2026, 12, 1, 8, tzinfo=DENVER)
    assert session.vitals == (Vital(dt.datetime(2026, 12, 1, 8, 50, tzinfo=DENVER), 128, 82),)
    assert session.dose_mg == 56
    assert read.notes[-1] == "Bundle.entry[6].resource: matches no session; not read"
    assert read.notes[0].startswith("1 session has no kind coding")


def test_fasting_status_is_never_a_last_meal() -> None:
    yes = observation(
        "49541-6", effectiveDateTime="2026-12-01T08:00:00-07:00", valueCodeableConcept={"text": "Y"}
    )
    read = course_from_bundle(bundle(appointment(), yes))
    assert read.course.sessions[0].last_food is None
    assert any("49541-6" in note and "yes/no" in note for note in read.notes)


def test_timezone_from_the_extension_the_argument_or_neither() -> None:
    assert course_from_bundle(bundle(appointment())).course.timezone == "America/Denver"
    given = course_from_bundle(bundle(appointment()), timezone="Europe/Berlin")
    assert given.course.timezone == "Europe/Berlin"
    assert any("overridden" in note for note in given.notes)
    assert (
        course_from_bundle(bundle(appointment(zone=None)), timezone="UTC").course.timezone == "UTC"
    )
    with pytest.raises(InputError) as missing:
        course_from_bundle(bundle(appointment(zone=None)))
    assert problems_of(missing) == ["timezone"]
    with pytest.raises(InputError) as unknown:
        course_from_bundle(bundle(appointment(zone="Mars/Olympus")))
    assert problems_of(unknown) == ["Bundle.entry[0].resource.extension[0].valueCode"]


def test_the_appointment_book_example_is_read_leniently() -> None:
    # The hook's published example: STU3 `reason` with a coding object, a malformed `end`,
    # a plain array, and the STU3 name of the participation code system.
    example = appointment(
        "apt1",
        "proposed",
        "2019-08-10T09:00:00-06:00",
        zone=None,
        escort=False,
        reason={"coding": {"system": "", "code": "1023001"}},
        end="2019-08-10T09:10:00:00-06:00",
    )
    example["participant"][1]["type"] = [
        {"coding": [{"system": "http://hl7.org/fhir/v3/ParticipationType", "code": "ATND"}]}
    ]
    read = course_from_bundle([example], timezone="America/Denver")
    assert [s.id for s in read.course.sessions] == ["apt1"]
    assert read.course.sessions[0].therapist == "Dr T"
    assert read.planned == ("apt1",)
    assert (
        "Bundle.entry[0].resource.reason: is not an element of this R4B resource; ignored"
        in read.notes
    )
    assert any(note.startswith("Bundle.entry[0].resource.end:") for note in read.notes)


@pytest.mark.parametrize(
    ("document", "where"),
    [
        ("{", "Bundle"),
        (b"\xff\xfe\x00", "Bundle"),
        (42, "Bundle"),
        ({"resourceType": "Patient"}, "Bundle.resourceType"),
        ({"resourceType": "Bundle", "entry": {}}, "Bundle.entry"),
        (bundle("x"), "Bundle.entry[0].resource"),
        (bundle({"resourceType": 7}), "Bundle.entry[0].resource.resourceType"),
        (bundle(appointment(start="tomorrow")), "Bundle.entry[0].resource.start"),
        (bundle(appointment(start=None)), "Bundle.entry[0].resource.start"),
        (bundle(appointment(start="2026-12-01")), "Bundle.entry[0].resource.start"),
        (bundle(appointment(status=SECRET)), "Bundle.entry[0].resource.status"),
        (bundle(appointment(participant=SECRET)), "Bundle.entry[0].resource.participant"),
        (bundle(appointment(), appointment()), "Bundle.entry[1].resource.id"),
        (
            bundle(
                appointment(),
                observation(
                    "67517-3", encounter={"reference": "Appointment/a1"}, valueDateTime="2026-12-01"
                ),
            ),
            "Bundle.entry[1].resource.valueDateTime",
        ),
        ("[" * 100_000 + "]" * 100_000, "Bundle"),
        (
            json.dumps(
                bundle(appointment(meta={"tag": [{"extension": [{"x": [[[[]]]]}]}] * 1}))
            ).replace("[[[[]]]]", "[" * 70 + "]" * 70),
            "Bundle",
        ),
        ("[" + " " * (17 * 1024 * 1024) + "]", "Bundle"),
    ],
)
def test_bad_input_names_the_element_and_never_the_value(document: Any, where: str) -> None:
    with pytest.raises(InputError) as error:
        course_from_bundle(document)
    assert problems_of(error)[0] == where
    assert SECRET not in str(error.value)
    assert "pydantic" not in str(error.value)
    assert error.value.__cause__ is None or not isinstance(error.value.__cause__, ValueError)


def test_other_resources_are_counted_not_read() -> None:
    patient = {"resourceType": "Patient", "id": "p1", "name": [{"text": SECRET}]}
    read = course_from_bundle(bundle(patient, appointment(), {"resourceType": SECRET}))
    assert "1 Patient resource not read" in read.notes
    assert "1 (unnamed type) resource not read" in read.notes
    assert SECRET not in " ".join(read.notes)


def carried(course: Course) -> Course:
    # What the mapping carries: no meetings, waivers, patient, extra, id or enrolment.
    return attrs.evolve(course, patient=None, integrations=(), enrolled=None)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(compliant_courses(protocol=kaprules.ESKETAMINE_TRD))
def test_a_course_round_trips_through_fhir(course: Course) -> None:
    written = appointments_from_course(course)
    read = course_from_bundle(json.dumps(written))
    assert read.course == carried(course)
    assert read.skipped == 0
    assert read.planned == ()
    assert read.notes == ()


@settings(max_examples=4, deadline=None)
@given(compliant_courses())
def test_planned_sessions_round_trip_as_booked(course: Course) -> None:
    as_of = course.sessions[2].instant
    read = course_from_bundle(appointments_from_course(course, as_of=as_of))
    assert read.course == carried(course)
    assert read.planned == tuple(s.id for s in course.sessions if s.instant > as_of)


def test_written_resources_validate_as_r4b() -> None:
    from fhir.resources.R4B.bundle import Bundle

    course = kaprules.load_course("examples/compliant.json")
    Bundle.model_validate(appointments_from_course(course, patient="Patient/p1"))
    assert appointment_id("s 1").startswith("kaprules-")
    assert appointment_id("s-1") == "s-1"


def test_a_waived_finding_is_a_detected_issue_with_its_mitigation() -> None:
    from fhir.resources.R4B.detectedissue import DetectedIssue

    at = [dt.datetime(2026, 12, d, 9, tzinfo=DENVER) for d in (1, 3, 4)]
    sessions = [Session(t, id=f"s{n}") for n, t in enumerate(at, start=1)]
    approved = dt.datetime(2026, 12, 4, 17, tzinfo=DENVER)
    waiver = Waiver("weekly-cap", ["s1", "s2", "s3"], "clinical-judgement", "Dr A", approved)
    course = Course("America/Denver", sessions, waivers=[waiver])
    report = evaluate(course, kaprules.ESKETAMINE_TRD)
    issues = detected_issues(report, course)
    assert len(issues) == len(report.findings)
    (cap,) = [i for i in issues if i["code"]["text"] == "weekly-cap"]
    for issue in issues:
        DetectedIssue.model_validate(issue)
    assert cap["severity"] == "high"
    assert [r["reference"] for r in cap["implicated"]] == [
        "Appointment/s1",
        "Appointment/s2",
        "Appointment/s3",
    ]
    assert cap["mitigation"] == [
        {
            "action": {
                "text": "clinical-judgement",
                "coding": [{"system": "urn:kaprules:waiver-reason", "code": "clinical-judgement"}],
            },
            "date": "2026-12-04T17:00:00-07:00",
            "author": {"display": "Dr A"},
        }
    ]
    (finding,) = [f for f in report.findings if f.rule == "weekly-cap"]
    assert cap["detail"] == finding.message


def test_forecast_and_plan_as_proposed_appointments() -> None:
    from fhir.resources.R4B.bundle import Bundle

    course = Course(
        "America/Denver", [Session(dt.datetime(2026, 12, 1, 9, tzinfo=DENVER), id="s1")]
    )
    as_of = dt.datetime(2026, 12, 1, 12, tzinfo=DENVER)
    forecast = kaprules.forecast(course, as_of=as_of)
    assert forecast.next is not None
    (only,) = [e["resource"] for e in proposed_appointments(forecast)["entry"]]
    assert only["status"] == "proposed"
    assert "start" not in only
    assert only["requestedPeriod"] == [
        {"start": forecast.next.bookable_from.isoformat(), "end": str(forecast.next.latest)}
    ]
    plan = kaprules.plan(course, as_of=as_of)
    written = proposed_appointments(plan)
    Bundle.model_validate(written)
    starts = [e["resource"]["start"] for e in written["entry"]]
    assert len(starts) == len([s for s in plan.sessions if s.kind != "integration"])
    with pytest.raises(InputError, match="forecast_or_plan"):
        proposed_appointments(course)  # type: ignore[arg-type]
