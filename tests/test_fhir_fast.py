"""kaprules.fhir's fast reader gives exactly what the R4B models give.

Resources are read straight from JSON only when the model would surely accept them with the
same values; these tests feed both readers valid, mutated, lenient (STU3) and hostile
resources and demand the same course, planned ids, skipped count and notes, or the same
InputError.
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("fhir.resources", reason="needs pip install '.[fhir]'")

from kaprules import InputError, _fast, fhir
from kaprules.fhir import KIND_SYSTEM, OBSERVATION_SYSTEM, PARTICIPATION, TIMEZONE_EXTENSION

from conftest import SLOW

LOINC = "http://loinc.org"
START = "2026-12-01T09:00:00-07:00"

needs_fast_paths = pytest.mark.skipif(
    not _fast.ENABLED, reason="KAPRULES_NO_FAST_PATHS is set: no fast path fires"
)


def coding(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def resources() -> list[dict[str, Any]]:
    """One session's records in the shapes EHRs and appointments_from_course write."""
    link = {"reference": "Encounter/e1"}
    return [
        {
            "resourceType": "Appointment",
            "id": "a1",
            "extension": [{"url": TIMEZONE_EXTENSION, "valueCode": "America/Denver"}],
            "identifier": [{"system": "urn:kaprules:session-id", "value": "s1"}],
            "status": "fulfilled",
            "serviceType": [coding(KIND_SYSTEM, "induction")],
            "start": START,
            "end": "2026-12-01T11:00:00-07:00",
            "participant": [
                {"actor": {"reference": "Practitioner/t1"}, "status": "accepted"},
                {
                    "type": [coding(PARTICIPATION, "ESC")],
                    "actor": {"reference": "RelatedPerson/r1", "display": "E"},
                    "required": "required",
                    "status": "accepted",
                },
            ],
        },
        {
            "resourceType": "Appointment",
            "id": "a2",
            "status": "booked",
            "start": "2026-12-04T09:30:00.5Z",
            "participant": [{"actor": {"reference": "Practitioner/t1"}, "status": "accepted"}],
        },
        {
            "resourceType": "Encounter",
            "id": "e1",
            "status": "finished",
            "class": {"code": "AMB"},
            "appointment": [{"reference": "Appointment/a1"}],
        },
        {
            "resourceType": "Observation",
            "status": "final",
            "code": coding(LOINC, "67517-3"),
            "encounter": link,
            "valueDateTime": "2026-12-01T03:00:00-07:00",
        },
        {
            "resourceType": "Observation",
            "id": "o2",
            "status": "final",
            "code": coding(OBSERVATION_SYSTEM, "ready-to-leave"),
            "subject": {"reference": "Patient/p1"},
            "basedOn": [{"reference": "Appointment/a1"}],
            "effectiveDateTime": START,
            "valueDateTime": "2026-12-01T11:00:00-07:00",
        },
        {
            "resourceType": "Observation",
            "status": "final",
            "code": coding(LOINC, "85354-9"),
            "encounter": link,
            "effectiveDateTime": "2026-12-01T08:50:00-07:00",
            "component": [
                {"code": coding(LOINC, "8480-6"), "valueQuantity": {"value": 124}},
                {
                    "code": coding(LOINC, "8462-4"),
                    "valueQuantity": {"value": 80, "unit": "mmHg", "code": "mm[Hg]"},
                },
            ],
        },
        {
            "resourceType": "MedicationAdministration",
            "status": "completed",
            "medicationCodeableConcept": {"text": "ketamine"},
            "subject": {"display": "patient"},
            "context": link,
            "effectiveDateTime": START,
            "dosage": {"dose": {"value": 56, "unit": "mg", "code": "mg"}},
        },
    ]


HOSTILE: list[Any] = [
    None, True, 0, -1, 124, 124.0, 124.5, -0.0, 1e20, 10**20, "", " ", "124", "x",
    " x ", "x  y", "a\tb", "a\nb", "\u00a0", "\ud800", "é", "mg", "final", "booked",
    "cancelled", "America/Denver", "Appointment/a1", "Encounter/e1", "67517-3",
    "2026", "2026-12-01", "2026-12-01T09:00Z", "2026-12-01T09:00:00", "2026-12-01T09:00:00Z",
    "2026-12-01T09:00:00.1234567Z", "2026-12-01T09:00:00.123456+14:00",
    "2026-12-01T09:00:60Z", "2026-02-30T09:00:00Z", "2026-12-01T24:00:00Z",
    "2026-12-01T09:00:00-00:00", "0001-01-01T00:00:00Z", "2026-12-01T09:00:00+14:01",
    [], {}, [None], [{}], {"x": 1}, {"reference": "Encounter/e1"}, [{"code": "AMB"}],
]  # fmt: skip


def places(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside a resource."""
    found = [path] if path else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += places(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += places(item, (*path, index))
    return found


@st.composite
def mutated(draw: st.DrawFn) -> list[dict[str, Any]]:
    bundle = resources()
    for _ in range(draw(st.integers(0, 3))):
        resource = draw(st.sampled_from(bundle))
        path = draw(st.sampled_from(places(resource)))
        parent = resource
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["set", "set", "delete", "unknown", "stu3"]))
        if action == "set":
            parent[path[-1]] = copy.deepcopy(draw(st.sampled_from(HOSTILE)))
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            # An unknown element, a primitive's extension, or STU3's names (Observation
            # context, Encounter class as an array) that R4B lacks.
            name = draw(st.sampled_from(["_start", "_status", "context", "meta", "note", "x"]))
            parent[name] = draw(st.sampled_from(HOSTILE))
    return bundle


def outcome(bundle: list[dict[str, Any]], fast: bool, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(_fast, "ENABLED", fast)
    try:
        return fhir.course_from_bundle({"resourceType": "Bundle", "entry": [
            {"resource": r} for r in bundle
        ]})  # fmt: skip
    except InputError as exc:
        return [(p.path, p.what, p.code) for p in exc.problems]


@needs_fast_paths
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[*SLOW, HealthCheck.function_scoped_fixture],
)
@given(bundle=mutated())
def test_the_fast_reader_equals_the_models(
    bundle: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = outcome(bundle, True, monkeypatch)
    assert fast == outcome(bundle, False, monkeypatch)


def agrees(read: Any, model: Any) -> bool:
    """Whether every value the fast reader gave is the model's, of the same kind."""
    if isinstance(read, list):
        return len(read) == len(model) and all(map(agrees, read, model))
    if isinstance(read, fhir._Element):
        return all(
            agrees(value, getattr(model, "class_fhir" if name == "class" else name))
            for name, value in read._values.items()
        )
    if isinstance(read, dt.datetime):
        return bool(read == model and read.utcoffset() == model.utcoffset())
    return type(read) is type(model) and bool(read == model)


def variants(resource: dict[str, Any]) -> list[dict[str, Any]]:
    """The resource with each element removed, or replaced by each hostile value."""
    found = []
    for path in places(resource):
        for value in ["(delete)", "(unknown)", *HOSTILE]:
            changed = copy.deepcopy(resource)
            parent = changed
            for step in path[:-1]:
                parent = parent[step]
            if value == "(delete)":
                del parent[path[-1]]
            elif value == "(unknown)":
                if not isinstance(parent, dict):
                    continue
                parent["_" + str(path[-1])] = {"extension": []}
            else:
                parent[path[-1]] = copy.deepcopy(value)
            found.append(changed)
    return found


@needs_fast_paths
def test_what_the_fast_reader_takes_the_model_reads_alike() -> None:
    # Every element of every shape, removed or made hostile: whatever is read fast, the
    # model accepts whole (no element left to a note) and reads to the same values.
    import pydantic

    models = fhir._models()
    taken = 0
    for resource in resources():
        for changed in variants(resource):
            if changed.get("resourceType") != resource["resourceType"]:
                continue  # course_from_bundle reads no other
            read = fhir._fast_read(changed)
            if read is None:
                continue
            taken += 1
            try:
                model = models[changed["resourceType"]].model_validate(changed)
            except pydantic.ValidationError as exc:  # pragma: no cover - the failure
                pytest.fail(f"read fast, refused by the model: {exc.errors()}")
            assert agrees(read, model)
    assert taken > 100  # the fast reader does take most well-formed variants


@needs_fast_paths
def test_the_common_shapes_are_read_fast() -> None:
    assert all(fhir._fast_read(r) is not None for r in resources())


def test_a_hostile_primitive_extension_is_an_input_error() -> None:
    # fhir.resources' own validator raised AttributeError on `"_start": "2026"`: a traceback.
    bundle = resources()
    bundle[0]["_start"] = "2026"
    with pytest.raises(InputError) as caught:
        fhir.course_from_bundle({"resourceType": "Bundle", "entry": [{"resource": bundle[0]}]})
    assert [str(p.path[-1]) for p in caught.value.problems] == ["resource"]
