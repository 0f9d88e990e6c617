"""FHIR R4B in and out: Bundles of Appointments into courses, findings into DetectedIssues.

Needs the ``fhir`` extra (``pip install '.[fhir]'``, which installs
``fhir.resources``): every resource read is validated by its R4B model, and nothing of it
is imported until a function here is called, so that ``import kaprules`` stays small.

- [`course_from_bundle`][kaprules.fhir.course_from_bundle]: a patient's Appointments,
  Encounters, Observations and MedicationAdministrations become a
  [`Course`][kaprules.Course], by the mapping the [FHIR page](fhir.md) describes field by
  field, with the notes of what was not read.
- [`appointments_from_course`][kaprules.fhir.appointments_from_course]: a course back to a
  Bundle, which `course_from_bundle` reads as the same course.
- [`detected_issues`][kaprules.fhir.detected_issues]: a report's findings as DetectedIssue
  resources.
- [`proposed_appointments`][kaprules.fhir.proposed_appointments]: a forecast or a plan as
  proposed Appointments with the bookable window as ``requestedPeriod``.

Bad input is an [`InputError`][kaprules.InputError] whose problems name the element
(``Bundle.entry[3].resource.start``); no message shows a name, an identifier or a value
of the input.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

import attrs

from kaprules import _fast, _time
from kaprules.errors import InputError, PathItem, Problem, echo, render_path
from kaprules.forecasting import Forecast
from kaprules.model import Course, Kind, Session, Vital
from kaprules.planning import INTEGRATION, Plan
from kaprules.report import Finding, Report, Severity

__all__ = [
    "BLOOD_PRESSURE_PANELS",
    "DIASTOLIC",
    "FASTING_STATUS",
    "HELD",
    "KAPRULES_OBSERVATIONS",
    "KIND_SYSTEM",
    "LAST_ORAL_INTAKE",
    "MATCH_WINDOW",
    "MAX_BUNDLE_BYTES",
    "MAX_DEPTH",
    "NOT_SESSIONS",
    "OBSERVATION_SYSTEM",
    "PLANNED",
    "RULE_SYSTEM",
    "SESSION_ID_SYSTEM",
    "SYSTOLIC",
    "TIMEZONE_EXTENSION",
    "WAIVER_REASON_SYSTEM",
    "FhirCourse",
    "appointment_id",
    "appointments_from_course",
    "course_from_bundle",
    "detected_issues",
    "proposed_appointments",
]

# --- codes and systems -----------------------------------------------------------------

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
# STU3 named the v3 code systems so; the appointment-book hook's own example does.
_OLD_PARTICIPATION = "http://hl7.org/fhir/v3/ParticipationType"
TIMEZONE_EXTENSION = "http://hl7.org/fhir/StructureDefinition/timezone"
"""The FHIR extension whose ``valueCode`` is an IANA zone: the course's timezone."""

LAST_ORAL_INTAKE = "67517-3"
"""LOINC "Last oral intake [Date and time]": its ``valueDateTime`` is ``last_food``."""
FASTING_STATUS = "49541-6"
"""LOINC "Fasting status - Reported", an ordinal (yes/no) answer, not a time: never read."""
BLOOD_PRESSURE_PANELS = frozenset({"85354-9", "35094-2", "55417-0"})
"""The LOINC blood pressure panels (FHIR's VitalSignsBPPanel value set): each is a `Vital`."""
SYSTOLIC = "8480-6"
"""LOINC systolic blood pressure, a panel's component."""
DIASTOLIC = "8462-4"
"""LOINC diastolic blood pressure, a panel's component."""

SESSION_ID_SYSTEM = "urn:kaprules:session-id"
"""The ``Appointment.identifier`` system whose value is the session's id."""
KIND_SYSTEM = "urn:kaprules:session-kind"
"""The ``Appointment.serviceType`` coding system of a session's kind (induction, booster)."""
OBSERVATION_SYSTEM = "urn:kaprules:observation"
"""The code system of the session-day times no LOINC code names (see `KAPRULES_OBSERVATIONS`)."""
KAPRULES_OBSERVATIONS: Mapping[str, str] = {
    "last-liquid": "last_liquid",
    "ready-to-leave": "ready_to_leave",
    "monitoring-form": "monitoring_form",
}
"""`OBSERVATION_SYSTEM` codes and the `Session` field each one's ``valueDateTime`` fills."""
RULE_SYSTEM = "urn:kaprules:rule"
"""The ``DetectedIssue.code`` system: codes are rule ids."""
WAIVER_REASON_SYSTEM = "urn:kaprules:waiver-reason"
"""The ``DetectedIssue.mitigation.action`` system: codes are waiver reasons."""

HELD = frozenset({"fulfilled", "arrived", "checked-in"})
"""Appointment statuses read as a session that took place."""
PLANNED = frozenset({"proposed", "pending", "booked"})
"""Appointment statuses read as a planned session."""
NOT_SESSIONS = frozenset({"cancelled", "noshow", "entered-in-error", "waitlist"})
"""Appointment statuses that are not sessions: skipped, and counted."""

MATCH_WINDOW = dt.timedelta(hours=12)
"""How far from a session's start an unlinked Observation's time may be to be its data."""
MAX_BUNDLE_BYTES = 16 * 1024 * 1024
"""The largest Bundle text read, in bytes."""
MAX_DEPTH = 64
"""The deepest nesting of objects and arrays read."""

_SEVERITY = {Severity.ERROR: "high", Severity.WARNING: "moderate", Severity.INFO: "low"}
_PERFORMERS = ("PPRF", "ATND", "PRF", "SPRF")  # the therapist, in order of preference
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_TYPE_NAME = re.compile(r"[A-Z][A-Za-z]{0,63}")
_MINUTES = 120  # an Appointment's end: R4B wants one with a start (app-2); none is read

# The elements each read resource is read from: an error elsewhere is a note, not a refusal.
_READ: Mapping[str, frozenset[str]] = {
    "Appointment": frozenset(
        {"id", "identifier", "status", "start", "participant", "extension", "serviceType"}
    ),
    "Encounter": frozenset({"id", "appointment", "status"}),
    "Observation": frozenset(
        {
            "id",
            "status",
            "code",
            "encounter",
            "basedOn",
            "effectiveDateTime",
            "effectiveInstant",
            "effectivePeriod",
            "valueDateTime",
            "component",
        }
    ),
    "MedicationAdministration": frozenset(
        {"id", "status", "context", "effectiveDateTime", "effectivePeriod", "dosage"}
    ),
}
_BASE = ("Bundle",)


@attrs.frozen
class FhirCourse:
    """A course read from FHIR, with what the mapping did not read.

    Attributes:
        course: The course: its sessions from the Appointments held or planned.
        planned: The ids of the sessions whose Appointment is planned (``proposed``,
            ``pending``, ``booked``); pass an ``as_of`` before them to
            [`evaluate`][kaprules.evaluate].
        skipped: How many Appointments are not sessions (cancelled, no-show, entered in
            error, waitlisted).
        notes: What was ignored, one sentence each, naming elements by path and never
            showing their values.
    """

    course: Course
    planned: tuple[str, ...] = ()
    skipped: int = 0
    notes: tuple[str, ...] = ()


# --- reading -----------------------------------------------------------------------------


def _models() -> dict[str, Any]:
    # The R4B models, imported on first use: the extra is optional.
    try:
        from fhir.resources.R4B.appointment import Appointment
        from fhir.resources.R4B.encounter import Encounter
        from fhir.resources.R4B.medicationadministration import MedicationAdministration
        from fhir.resources.R4B.observation import Observation
    except ImportError:
        raise InputError(
            "kaprules.fhir needs fhir.resources: pip install '.[fhir]' in a checkout of kaprules"
        ) from None
    return {
        "Appointment": Appointment,
        "Encounter": Encounter,
        "Observation": Observation,
        "MedicationAdministration": MedicationAdministration,
    }


def _reject_constant(name: str) -> Any:
    raise InputError(f"Bundle: {name} is not valid JSON")


def _decode(bundle: object) -> Any:
    if isinstance(bundle, Mapping | list):
        return bundle
    if not isinstance(bundle, str | bytes | bytearray):
        raise InputError(
            Problem(_BASE, f"must be a dict or JSON text, got {type(bundle).__name__}", "type")
        )
    if len(bundle) > MAX_BUNDLE_BYTES:
        raise InputError(Problem(_BASE, f"is larger than {MAX_BUNDLE_BYTES} bytes", "range"))
    try:
        return json.loads(bundle, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise InputError(Problem(_BASE, f"is not valid JSON: {exc.msg} ({where})")) from None
    except UnicodeDecodeError:
        raise InputError(Problem(_BASE, "is not UTF-8 text")) from None
    except RecursionError:
        raise InputError(Problem(_BASE, f"is nested more than {MAX_DEPTH} deep", "range")) from None
    except ValueError:  # an integer past the digit limit
        raise InputError(Problem(_BASE, "holds a number too long to read", "range")) from None


def _check_depth(document: object) -> None:
    # A hostile document must not exhaust the stack before pydantic sees it.
    if not within_depth(document, MAX_DEPTH):
        raise InputError(Problem(_BASE, f"is nested more than {MAX_DEPTH} deep", "range"))


def within_depth(value: object, limit: int) -> bool:
    """Whether no value lies more than ``limit`` containers deep in ``value``.

    Recursive, but never deeper than ``limit`` (it stops there), and it skips scalars
    without a call: several times faster than a walk of every value on a stack.
    """
    if limit < 0:
        return False
    if isinstance(value, Mapping):
        values: Any = value.values()
    elif isinstance(value, list | tuple):
        values = value
    else:
        return True
    below = limit - 1
    for item in values:
        kind = type(item)
        if kind in _SCALARS:
            continue
        nested = kind is dict or kind is list or isinstance(item, Mapping | tuple)
        if nested and (below < 0 or not within_depth(item, below)):
            return False
    return True


_SCALARS = frozenset((str, int, float, bool, type(None)))


def _entries(document: object, notes: list[str]) -> Iterator[tuple[tuple[PathItem, ...], Any]]:
    if isinstance(document, list):
        # The appointment-book hook's examples post a plain array of Appointments.
        notes.append("a plain array of resources was read as a Bundle's entries")
        for index, resource in enumerate(document):
            yield (*_BASE, "entry", index, "resource"), resource
        return
    if not isinstance(document, Mapping):
        raise InputError(Problem(_BASE, "must be a JSON object (a FHIR Bundle)", "type"))
    if document.get("resourceType") != "Bundle":
        raise InputError(Problem((*_BASE, "resourceType"), "must be 'Bundle'", "value"))
    entries = document.get("entry", [])
    if not isinstance(entries, list):
        raise InputError(Problem((*_BASE, "entry"), "must be an array", "type"))
    links = document.get("link")
    for index, link in enumerate(links if isinstance(links, list) else ()):
        if isinstance(link, Mapping) and link.get("relation") == "next":
            # A searchset's first page (CDS Hooks lets a prefetch be paginated): the
            # pages after it are not fetched, so the course lacks what they hold.
            where = render_path((*_BASE, "link", index))
            notes.append(f"{where}: a next page is not read; only this page's entries are")
    for index, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise InputError(Problem((*_BASE, "entry", index), "must be an object", "type"))
        yield (*_BASE, "entry", index, "resource"), entry.get("resource")


_PYDANTIC_WORDS = {
    "missing": "is required",
    "model_field_validation.missing": "is required",
    "string_type": "must be a string",
    "list_type": "must be an array",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "bool_type": "must be true or false",
    "int_type": "must be an integer",
    "decimal_type": "must be a number",
    "extra_forbidden": "is not an element of this R4B resource",
}


def _problem_of(path: tuple[PathItem, ...], error: Mapping[str, Any]) -> Problem:
    # Never pydantic's message: some quote the input, which may be a name.
    loc = tuple(step for step in error.get("loc", ()) if isinstance(step, str | int))
    kind = str(error.get("type", "invalid"))
    what = _PYDANTIC_WORDS.get(kind, f"is not a valid R4B value ({kind})")
    return Problem((*path, *loc), what, "type" if kind.endswith("_type") else "value")


def _validated(
    model: Any, path: tuple[PathItem, ...], resource: Mapping[str, Any], notes: list[str]
) -> Any:
    """The resource as its R4B model; errors in elements not read become notes."""
    import pydantic

    read = _READ[resource["resourceType"]]
    try:
        return model.model_validate(resource)
    except pydantic.ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
    except (RecursionError, ValueError, TypeError, AttributeError):
        # fhir.resources' own validators assume shapes: `"_start": 1` is an AttributeError.
        raise InputError(Problem(path, "is not a readable R4B resource")) from None
    refused = [e for e in errors if e.get("loc") and e["loc"][0] in read]
    if refused:
        raise InputError(*(_problem_of(path, e) for e in refused))
    for error in errors:
        problem = _problem_of(path, error)
        notes.append(f"{problem.where}: {problem.what}; ignored")
    kept = {k: v for k, v in resource.items() if k in read or k == "resourceType"}
    try:
        return model.model_validate(kept)
    except pydantic.ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        raise InputError(*(_problem_of(path, e) for e in errors)) from None


# --- the fast reader ---------------------------------------------------------------------
#
# The R4B models cost most of a call. The common, well-formed shapes of the four read
# resources are read here straight from the JSON, when it is certain that the model would
# accept the whole resource and give the same values; anything else (an unknown element, a
# primitive extension, a date without a time, a leap second, a string with a control
# character, an empty array) is left to `_validated`. The rules below are each a subset of
# what fhir.resources (fhir_core.types) accepts; tests/test_fhir_fast.py holds the two
# readers equal. `KAPRULES_NO_FAST_PATHS=1` turns this reader off.

# A dateTime with its time, to the second (at most microseconds) and an offset: the FHIR
# dateTime and instant regexes (spec), less leap seconds and digits Python cannot keep.
_FAST_INSTANT = re.compile(
    r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)-(0[1-9]|1[0-2])-"
    r"(0[1-9]|[1-2][0-9]|3[0-1])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?"
    r"(Z|[+\-]((0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
)
_FAST_DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_NOT_READ = object()  # a value the fast reader is not certain of


def _fast_string(value: object) -> object:
    # R4B string: `[ \r\n\t\S]+`; a printable string has no other whitespace, no surrogate.
    if type(value) is str and value and len(value) <= 4096 and value.isprintable():
        return value
    return _NOT_READ


def _fast_code(value: object) -> object:
    # R4B code: `^[^\s]+(\s[^\s]+)*$`; a string (as above) with single inner spaces.
    if (
        type(value) is str
        and value
        and len(value) <= 4096
        and value.isprintable()
        and value[0] != " "
        and value[-1] != " "
        and "  " not in value
    ):
        return value
    return _NOT_READ


def _fast_uri(value: object) -> object:
    # A string (as above) without a space.
    if (
        type(value) is str
        and value
        and len(value) <= 4096
        and " " not in value
        and value.isprintable()
    ):
        return value
    return _NOT_READ


def _fast_id(value: object) -> object:
    if type(value) is str and _FHIR_ID.fullmatch(value):
        return value
    return _NOT_READ


def _fast_datetime(value: object) -> object:
    if type(value) is not str or not _FAST_INSTANT.fullmatch(value):
        return _NOT_READ
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:  # 31 February: the model's words, not ours
        return _NOT_READ


def _fast_decimal(value: object) -> object:
    # fhir_core's Decimal: the spec regex over str(value), then Decimal(str(value)).
    if type(value) is int and -(10**15) < value < 10**15:
        return Decimal(value)
    if type(value) is float and _FAST_DECIMAL.fullmatch(str(value)):
        return Decimal(str(value))
    return _NOT_READ


_PRIMITIVES = {
    "string": _fast_string,
    "code": _fast_code,
    "uri": _fast_uri,
    "id": _fast_id,
    "dateTime": _fast_datetime,
    "instant": _fast_datetime,
    "decimal": _fast_decimal,
}

# type -> (element -> (type, is an array), the required elements). Choice elements are
# kept to one kind each (effectiveDateTime, valueDateTime ...), so no one-of rule applies.
_SHAPES: Mapping[str, tuple[Mapping[str, tuple[str, bool]], frozenset[str]]] = {
    "Coding": (
        {
            "system": ("uri", False),
            "version": ("string", False),
            "code": ("code", False),
            "display": ("string", False),
        },
        frozenset(),
    ),
    "CodeableConcept": ({"coding": ("Coding", True), "text": ("string", False)}, frozenset()),
    "Identifier": (
        {"use": ("code", False), "system": ("uri", False), "value": ("string", False)},
        frozenset(),
    ),
    "Reference": (
        {
            "reference": ("string", False),
            "type": ("uri", False),
            "identifier": ("Identifier", False),
            "display": ("string", False),
        },
        frozenset(),
    ),
    "Quantity": (
        {
            "value": ("decimal", False),
            "unit": ("string", False),
            "system": ("uri", False),
            "code": ("code", False),
        },
        frozenset(),
    ),
    "Extension": ({"url": ("uri", False), "valueCode": ("code", False)}, frozenset({"url"})),
    "AppointmentParticipant": (
        {
            "type": ("CodeableConcept", True),
            "actor": ("Reference", False),
            "required": ("code", False),
            "status": ("code", False),
        },
        frozenset({"status"}),
    ),
    "Appointment": (
        {
            "id": ("id", False),
            "extension": ("Extension", True),
            "identifier": ("Identifier", True),
            "status": ("code", False),
            "serviceType": ("CodeableConcept", True),
            "start": ("instant", False),
            "end": ("instant", False),
            "participant": ("AppointmentParticipant", True),
        },
        frozenset({"status", "participant"}),
    ),
    "Encounter": (
        {
            "id": ("id", False),
            "status": ("code", False),
            "class": ("Coding", False),
            "subject": ("Reference", False),
            "appointment": ("Reference", True),
        },
        frozenset({"status", "class"}),
    ),
    "ObservationComponent": (
        {"code": ("CodeableConcept", False), "valueQuantity": ("Quantity", False)},
        frozenset({"code"}),
    ),
    "Observation": (
        {
            "id": ("id", False),
            "basedOn": ("Reference", True),
            "status": ("code", False),
            "code": ("CodeableConcept", False),
            "subject": ("Reference", False),
            "encounter": ("Reference", False),
            "effectiveDateTime": ("dateTime", False),
            "valueDateTime": ("dateTime", False),
            "component": ("ObservationComponent", True),
        },
        frozenset({"status", "code"}),
    ),
    "MedicationAdministrationDosage": (
        {"text": ("string", False), "dose": ("Quantity", False)},
        frozenset(),
    ),
    "MedicationAdministration": (
        {
            "id": ("id", False),
            "status": ("code", False),
            "medicationCodeableConcept": ("CodeableConcept", False),
            "subject": ("Reference", False),
            "context": ("Reference", False),
            "effectiveDateTime": ("dateTime", False),
            "dosage": ("MedicationAdministrationDosage", False),
        },
        frozenset({"status", "medicationCodeableConcept", "subject", "effectiveDateTime"}),
    ),
}


class _Element(types.SimpleNamespace):
    """A resource or element read by the fast reader: the model's attributes, None if absent.

    Each shape has its subclass (`_CLASSES`), whose class attributes are its elements, all
    None: an element read is in the instance's ``__dict__``, one absent is found on the
    class, both without a Python call; any other name is None too.
    """

    @property
    def _values(self) -> dict[str, Any]:
        return self.__dict__

    def __getattr__(self, name: str) -> Any:
        return None


_CLASSES: Mapping[str, type[_Element]] = {
    kind: type(f"_{kind}", (_Element,), dict.fromkeys(elements))
    for kind, (elements, _required) in _SHAPES.items()
}


def _compile(kind: str, readers: Mapping[str, Callable[[object], object]]) -> Any:
    """The fast reader of one shape: its elements' readers looked up once, here."""
    elements, required = _SHAPES[kind]
    plan = {name: (readers[inner], many) for name, (inner, many) in elements.items()}
    cls = _CLASSES[kind]
    resource = kind in _READ

    def read(value: object) -> object:
        if type(value) is not dict or not value:
            return _NOT_READ
        read: dict[str, Any] = {}
        for name, given in value.items():
            step = plan.get(name)
            if step is None:
                if resource and name == "resourceType":
                    continue
                return _NOT_READ
            reader, many = step
            if many:
                if type(given) is not list or not given:
                    return _NOT_READ
                items = []
                for item in given:
                    got = reader(item)
                    if got is _NOT_READ:
                        return _NOT_READ
                    items.append(got)
                read[name] = items
            else:
                got = reader(given)
                if got is _NOT_READ:
                    return _NOT_READ
                read[name] = got
        if not required <= read.keys():
            return _NOT_READ
        return cls(**read)

    return read


def _compiled() -> dict[str, Callable[[object], object]]:
    # In _SHAPES' order, each shape after the shapes it holds.
    readers: dict[str, Callable[[object], object]] = dict(_PRIMITIVES)
    for kind in _SHAPES:
        readers[kind] = _compile(kind, readers)
    return readers


_READERS = _compiled()


def _fast_read(resource: Mapping[str, Any]) -> _Element | None:
    """The resource read without its model, or None unless the model surely reads it so."""
    if not _fast.ENABLED:
        return None
    read = _READERS[resource["resourceType"]](resource)
    return read if isinstance(read, _Element) else None


def _instant(
    value: object, path: tuple[PathItem, ...], problems: list[Problem]
) -> dt.datetime | None:
    # FHIR dateTime may be a bare date or year: a session-day time needs the time and offset.
    if value is None:
        return None
    if isinstance(value, dt.datetime) and value.utcoffset() is not None:
        offset = value.utcoffset()
        assert offset is not None
        return value.replace(tzinfo=dt.timezone(offset))
    problems.append(Problem(path, "must be a date and time with a UTC offset", "value"))
    return None


def _codes(concept: Any) -> set[tuple[str | None, str]]:
    if concept is None:
        return set()
    return {(c.system, c.code) for c in concept.coding or () if c.code is not None}


def _participation(concept_list: Any) -> set[str]:
    codes: set[str] = set()
    for concept in concept_list or ():
        codes |= {
            code
            for system, code in _codes(concept)
            if system in (PARTICIPATION, _OLD_PARTICIPATION)
        }
    return codes


def _actor_text(actor: Any) -> str | None:
    if actor is None:
        return None
    if actor.display:
        return str(actor.display)
    if actor.reference:
        return str(actor.reference)
    if actor.identifier is not None and actor.identifier.value:
        return str(actor.identifier.value)
    return None


def _people(appointment: Any) -> tuple[str | None, str | None]:
    """The escort and the therapist of an Appointment (never shown)."""
    escort: str | None = None
    ranked: list[tuple[int, str]] = []
    for participant in appointment.participant or ():
        if participant.status == "declined":
            continue
        types = _participation(participant.type)
        text = _actor_text(participant.actor)
        if text is None:
            continue
        if "ESC" in types:
            escort = escort or text
            continue
        rank = next((i for i, code in enumerate(_PERFORMERS) if code in types), None)
        reference = participant.actor.reference or ""
        if (
            rank is None
            and not types
            and reference.startswith(("Practitioner/", "PractitionerRole/"))
        ):
            rank = len(_PERFORMERS)
        if rank is not None:
            ranked.append((rank, text))
    therapist = min(ranked, key=lambda r: r[0])[1] if ranked else None
    return escort, therapist


def _reference_id(reference: Any, kind: str) -> str | None:
    text = getattr(reference, "reference", None)
    if isinstance(text, str) and text.startswith(kind + "/"):
        return text[len(kind) + 1 :].split("/_history/")[0]
    return None


@attrs.define
class _Draft:
    # One session as it is read: the Appointment's values, then its session-day data.
    path: tuple[PathItem, ...]
    start: dt.datetime
    kind: Kind
    id: str | None
    escort: str | None
    therapist: str | None
    values: dict[str, Any] = attrs.Factory(dict)
    vitals: list[Vital] = attrs.Factory(list)


def course_from_bundle(
    bundle: Mapping[str, Any] | Sequence[Any] | str | bytes,
    *,
    timezone: str | None = None,
    depth_checked: bool = False,
) -> FhirCourse:
    """Read a FHIR R4B Bundle of a patient's records as a course.

    Each Appointment held or planned is a session; Encounters link Observations and
    MedicationAdministrations to it, or else their time does. The mapping is on the
    [FHIR page](fhir.md), field by field. Parsing is lenient where EHRs are known to
    deviate (STU3 elements, a plain array of Appointments): an element that is not read
    and does not validate as R4B is ignored with a note.

    Args:
        bundle: The Bundle, as a dict or JSON text; or a plain array of resources.
        timezone: The clinic's IANA zone. Overrides the Appointments' timezone extension;
            required when they have none.
        depth_checked: True when the caller has made sure that nothing in ``bundle``, a
            dict or list, lies more than `MAX_DEPTH` containers deep (as ``kaprules
            serve`` does on a request's bytes): the walk that checks it is skipped.

    Returns:
        The course, the planned sessions' ids, the skipped count and the notes.

    Raises:
        InputError: The Bundle is not JSON, not a Bundle, too large or too deep, an
            element the mapping reads is missing or invalid, or no timezone is known.
            Each problem names its element (``Bundle.entry[3].resource.start``) and
            never shows a value.
    """
    models = _models()
    notes: list[str] = []
    document = _decode(bundle)
    if not (depth_checked and isinstance(bundle, Mapping | list)):
        _check_depth(document)
    resources: dict[str, list[tuple[tuple[PathItem, ...], Any]]] = {k: [] for k in models}
    others: dict[str, int] = {}
    problems: list[Problem] = []
    for path, resource in _entries(document, notes):
        if not isinstance(resource, Mapping):
            problems.append(Problem(path, "must be a FHIR resource (an object)", "type"))
            continue
        kind = resource.get("resourceType")
        if not isinstance(kind, str):
            problems.append(Problem((*path, "resourceType"), "must be a string", "type"))
            continue
        if kind not in models:
            shown = kind if _TYPE_NAME.fullmatch(kind) else "(unnamed type)"
            others[shown] = others.get(shown, 0) + 1
            continue
        try:
            read = _fast_read(resource)
            if read is None:
                read = _validated(models[kind], path, resource, notes)
            resources[kind].append((path, read))
        except InputError as exc:
            problems += exc.problems
    if problems:
        raise InputError(*problems)
    for kind, count in sorted(others.items()):
        notes.append(f"{count} {kind} resource{'s' if count != 1 else ''} not read")
    drafts, planned, skipped, zone = _appointments(resources["Appointment"], notes, problems)
    if timezone is not None:
        if zone is not None and zone[0] != timezone:
            notes.append(f"{zone[1]}: the timezone extension is overridden by the argument")
        zone = (timezone, ("timezone",))
    if zone is None and not any(p.path[-1:] == ("valueCode",) for p in problems):
        problems.append(
            Problem(
                "timezone",
                "is not known: no Appointment has the timezone extension "
                f"({TIMEZONE_EXTENSION}); pass timezone=",
                "required",
            )
        )
    if problems:
        raise InputError(*problems)
    assert zone is not None
    encounters = _encounters(resources["Encounter"], drafts)
    # Once, not per Observation: the drafts' ids are settled by now.
    by_appointment = {_appointment_key(d): d for d in drafts.values()}
    for path, observation in resources["Observation"]:
        _observation(path, observation, drafts, encounters, notes, problems, by_appointment)
    for path, administration in resources["MedicationAdministration"]:
        _administration(path, administration, drafts, encounters, notes, problems, by_appointment)
    if problems:
        raise InputError(*problems)
    return FhirCourse(_course(zone, drafts), tuple(planned), skipped, tuple(notes))


def _appointments(
    appointments: list[tuple[tuple[PathItem, ...], Any]],
    notes: list[str],
    problems: list[Problem],
) -> tuple[dict[str, _Draft], list[str], int, tuple[str, tuple[PathItem, ...]] | None]:
    drafts: dict[str, _Draft] = {}
    planned: list[str] = []
    skipped = 0
    zone: tuple[str, tuple[PathItem, ...]] | None = None
    kinds_assumed = 0
    for position, (path, appointment) in enumerate(appointments):
        status = appointment.status
        if status in NOT_SESSIONS:
            skipped += 1
            continue
        if status not in HELD and status not in PLANNED:
            known = ", ".join(sorted(HELD | PLANNED | NOT_SESSIONS))
            problems.append(
                Problem((*path, "status"), f"is not an R4B Appointment status ({known})")
            )
            continue
        for index, extension in enumerate(appointment.extension or ()):
            if extension.url != TIMEZONE_EXTENSION:
                continue
            where = (*path, "extension", index, "valueCode")
            name = extension.valueCode
            if not isinstance(name, str) or _zone_problem(name):
                problems.append(Problem(where, "must be an IANA timezone name", "value"))
            elif zone is None:
                zone = (name, where)
            elif zone[0] != name:
                problems.append(
                    Problem(where, f"differs from the timezone of {render_path(zone[1])}")
                )
        start = _instant(appointment.start, (*path, "start"), problems)
        if appointment.start is None:
            problems.append(Problem((*path, "start"), "is required for a session", "required"))
        kind = Kind.INDUCTION
        given = {
            code for system, code in _codes_of(appointment.serviceType) if system == KIND_SYSTEM
        }
        if given & {k.value for k in Kind}:
            kind = Kind(sorted(given & {k.value for k in Kind})[0])
        else:
            kinds_assumed += 1
        session_id = next(
            (
                str(i.value)
                for i in appointment.identifier or ()
                if i.system == SESSION_ID_SYSTEM and i.value
            ),
            appointment.id or str(position + 1),
        )
        if session_id in drafts:
            problems.append(
                Problem(
                    (*path, "id"),
                    "is a second Appointment of the session at "
                    + render_path(drafts[session_id].path),
                    "duplicate",
                )
            )
            continue
        if start is None:
            continue
        escort, therapist = _people(appointment)
        drafts[session_id] = _Draft(path, start, kind, session_id, escort, therapist)
        if status in PLANNED:
            planned.append(session_id)
    if kinds_assumed:
        notes.append(
            f"{kinds_assumed} session{'s have' if kinds_assumed != 1 else ' has'} no kind "
            f"coding ({KIND_SYSTEM}) and "
            f"{'were' if kinds_assumed != 1 else 'was'} read as induction"
        )
    if skipped:
        notes.append(
            f"{skipped} Appointment{'s' if skipped != 1 else ''} cancelled, no-show, entered "
            "in error or waitlisted: not sessions"
        )
    return drafts, planned, skipped, zone


def _codes_of(concepts: Any) -> set[tuple[str | None, str]]:
    found: set[tuple[str | None, str]] = set()
    for concept in concepts or ():
        found |= _codes(concept)
    return found


def _zone_problem(name: str) -> bool:
    try:
        _time.zone(name)
    except ValueError:
        return True
    return False


def _encounters(
    encounters: list[tuple[tuple[PathItem, ...], Any]], drafts: dict[str, _Draft]
) -> dict[str, str]:
    """Encounter id -> session id, through ``Encounter.appointment``."""
    by_appointment = {_appointment_key(d): key for key, d in drafts.items()}
    linked: dict[str, str] = {}
    for _path, encounter in encounters:
        for reference in encounter.appointment or ():
            target = _reference_id(reference, "Appointment")
            if encounter.id and target in by_appointment:
                linked[encounter.id] = by_appointment[target]
    return linked


def _appointment_key(draft: _Draft) -> str:
    return appointment_id(draft.id or "")


def _session_of(
    references: Sequence[Any],
    when: dt.datetime | None,
    drafts: dict[str, _Draft],
    encounters: dict[str, str],
    drafts_by_appointment: dict[str, _Draft],
) -> _Draft | None:
    by_appointment = drafts_by_appointment
    for reference in references:
        encounter = _reference_id(reference, "Encounter")
        if encounter is not None and encounter in encounters:
            return drafts[encounters[encounter]]
        appointment = _reference_id(reference, "Appointment")
        if appointment is not None and appointment in by_appointment:
            return by_appointment[appointment]
    if when is None:
        return None
    near = [
        (abs(d.start - when), d.start, d)
        for d in drafts.values()
        if abs(d.start - when) <= MATCH_WINDOW
    ]
    return min(near, key=lambda n: (n[0], n[1]))[2] if near else None


def _effective(
    resource: Any, path: tuple[PathItem, ...], problems: list[Problem]
) -> dt.datetime | None:
    for name in ("effectiveDateTime", "effectiveInstant"):
        value = getattr(resource, name, None)
        if value is not None:
            return _instant(value, (*path, name), problems)
    period = getattr(resource, "effectivePeriod", None)
    if period is not None and period.start is not None:
        return _instant(period.start, (*path, "effectivePeriod", "start"), problems)
    return None


_NOT_DATA = frozenset({"entered-in-error", "cancelled", "not-done", "stopped", "registered"})


def _observation(
    path: tuple[PathItem, ...],
    observation: Any,
    drafts: dict[str, _Draft],
    encounters: dict[str, str],
    notes: list[str],
    problems: list[Problem],
    by_appointment: dict[str, _Draft],
) -> None:
    codes = _codes(observation.code)
    if (LOINC, FASTING_STATUS) in codes:
        notes.append(
            f"{render_path(path)}: LOINC {FASTING_STATUS} (fasting status) is a yes/no "
            "answer, not the time of the last meal: not read"
        )
        return
    field: str | None = None
    if (LOINC, LAST_ORAL_INTAKE) in codes:
        field = "last_food"
    for code, name in KAPRULES_OBSERVATIONS.items():
        if (OBSERVATION_SYSTEM, code) in codes:
            field = name
    panel = any((LOINC, code) in codes for code in BLOOD_PRESSURE_PANELS)
    if field is None and not panel:
        notes.append(f"{render_path(path)}: an Observation the mapping does not read")
        return
    if observation.status in _NOT_DATA:
        notes.append(f"{render_path(path)}: status {observation.status}; not read")
        return
    when = _effective(observation, path, problems)
    draft = _session_of(
        [observation.encounter, *(observation.basedOn or ())],
        when,
        drafts,
        encounters,
        by_appointment,
    )
    if draft is None:
        notes.append(f"{render_path(path)}: matches no session; not read")
        return
    if field is not None:
        value = _instant(observation.valueDateTime, (*path, "valueDateTime"), problems)
        if observation.valueDateTime is None:
            problems.append(Problem((*path, "valueDateTime"), "is required", "required"))
        elif value is not None:
            if field in draft.values:
                notes.append(f"{render_path(path)}: a later value replaces an earlier one")
            draft.values[field] = value
        return
    readings: dict[str, int] = {}
    for index, component in enumerate(observation.component or ()):
        coded = _codes(component.code)
        for name, code in (("systolic", SYSTOLIC), ("diastolic", DIASTOLIC)):
            if (LOINC, code) not in coded:
                continue
            quantity = component.valueQuantity
            where = (*path, "component", index, "valueQuantity", "value")
            if quantity is None or quantity.value is None:
                problems.append(Problem(where, "is required", "required"))
            elif quantity.value != int(quantity.value):
                problems.append(Problem(where, "must be a whole number of mmHg", "value"))
            else:
                readings[name] = int(quantity.value)
    if when is None:
        problems.append(
            Problem((*path, "effectiveDateTime"), "is required for a reading", "required")
        )
        return
    if len(readings) < 2:
        notes.append(f"{render_path(path)}: a panel without both readings; not read")
        return
    try:
        draft.vitals.append(Vital(when, readings["systolic"], readings["diastolic"]))
    except InputError as exc:
        problems += (Problem(path, f"{p.where}: {p.what}", p.code) for p in exc.problems)


def _administration(
    path: tuple[PathItem, ...],
    administration: Any,
    drafts: dict[str, _Draft],
    encounters: dict[str, str],
    notes: list[str],
    problems: list[Problem],
    by_appointment: dict[str, _Draft],
) -> None:
    if administration.status in _NOT_DATA:
        notes.append(f"{render_path(path)}: status {administration.status}; not read")
        return
    when = _effective(administration, path, problems)
    draft = _session_of([administration.context], when, drafts, encounters, by_appointment)
    if draft is None:
        notes.append(f"{render_path(path)}: matches no session; not read")
        return
    dose = None if administration.dosage is None else administration.dosage.dose
    where = (*path, "dosage", "dose")
    if dose is None or dose.value is None:
        problems.append(Problem((*where, "value"), "is required", "required"))
        return
    unit = dose.code or dose.unit
    if unit != "mg":
        problems.append(Problem((*where, "code"), "must be 'mg' (milligrams, UCUM)", "value"))
        return
    value: Decimal = dose.value
    draft.values["dose_mg"] = int(value) if value == int(value) else float(value)


def _course(zone: tuple[str, tuple[PathItem, ...]], drafts: dict[str, _Draft]) -> Course:
    sessions: list[Session] = []
    problems: list[Problem] = []
    for draft in drafts.values():
        try:
            sessions.append(
                Session(
                    draft.start,
                    draft.kind,
                    draft.id,
                    draft.values.get("last_food"),
                    draft.escort,
                    therapist=draft.therapist,
                    last_liquid=draft.values.get("last_liquid"),
                    vitals=draft.vitals,  # in Bundle order, as written
                    ready_to_leave=draft.values.get("ready_to_leave"),
                    dose_mg=draft.values.get("dose_mg"),
                    monitoring_form=draft.values.get("monitoring_form"),
                )
            )
        except InputError as exc:
            # The session's own words (field names), placed at its Appointment.
            problems += (Problem(draft.path, str(p), p.code) for p in exc.problems)
    if problems:
        raise InputError(*problems)
    try:
        return Course(zone[0], sessions)
    except InputError as exc:
        raise InputError(*(Problem(zone[1], p.what, p.code) for p in exc.problems)) from None


# --- writing -----------------------------------------------------------------------------


def appointment_id(session_id: str) -> str:
    """The Appointment id of a session: its id when that is a FHIR id, else a digest of it.

    Args:
        session_id: The session's id.

    Returns:
        ``[A-Za-z0-9-.]{1,64}``: the id itself, or ``kaprules-`` and 32 hex digits.
    """
    if _FHIR_ID.fullmatch(session_id):
        return session_id
    digest = hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()
    return f"kaprules-{digest[:32]}"


def _reference(session_id: str) -> dict[str, Any]:
    return {
        "reference": f"Appointment/{appointment_id(session_id)}",
        "identifier": {"system": SESSION_ID_SYSTEM, "value": session_id},
    }


def _text(value: dt.datetime) -> str:
    text = Session(value).to_dict()["start"]
    assert isinstance(text, str)
    return text


def _coding(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def _timezone(name: str) -> list[dict[str, str]]:
    return [{"url": TIMEZONE_EXTENSION, "valueCode": name}]


def _participant(code: str, display: str | None) -> dict[str, Any]:
    participant: dict[str, Any] = {
        "type": [_coding(PARTICIPATION, code)],
        "required": "required",
        "status": "accepted" if display is not None else "needs-action",
    }
    if display is not None:
        participant["actor"] = {"display": display}
    return participant


def _bundle(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": f"urn:kaprules:{r['resourceType']}/{r['id']}", "resource": r}
            for r in resources
        ],
    }


def appointments_from_course(
    course: Course, *, as_of: dt.datetime | None = None, patient: str | None = None
) -> dict[str, Any]:
    """Write a course as a FHIR R4B Bundle that `course_from_bundle` reads back.

    Each session becomes an Appointment (``fulfilled`` when held, ``booked`` when it starts
    after ``as_of``) with the course's timezone extension, its kind, id, escort
    (``ESC``) and therapist (``PPRF``); its session-day data becomes an Encounter and
    Observations and a MedicationAdministration linked to it. ``course_from_bundle`` of
    the result equals the course in every field the mapping carries (see the
    [FHIR page](fhir.md)); integration meetings, waivers, ``extra``, ``enrolled`` and the
    course's ``id`` and ``patient`` are not written.

    Args:
        course: The course.
        as_of: Sessions starting after it are ``booked``; None (a final record) writes
            every session ``fulfilled``.
        patient: A reference to the patient (``Patient/123``) for ``subject`` and the
            ``SBJ`` participant, or None to write none.

    Returns:
        A Bundle of type ``collection``, as plain data for ``json.dumps``.

    Raises:
        InputError: ``course`` is not a Course, or ``as_of`` is not an aware datetime.
    """
    if not isinstance(course, Course):
        raise InputError(Problem("course", f"must be a Course, got {type(course).__name__}"))
    if as_of is not None and (not isinstance(as_of, dt.datetime) or as_of.utcoffset() is None):
        raise InputError(Problem("as_of", "must be an aware datetime or None", "type"))
    subject = None if patient is None else {"reference": patient}
    resources: list[dict[str, Any]] = []
    for session in course.sessions:
        assert session.id is not None
        key = appointment_id(session.id)
        planned = as_of is not None and session.instant > _time.to_utc(as_of)
        participants = [_participant("SBJ", None)]
        if subject is not None:
            participants[0].update(actor=subject, status="accepted")
        if session.escort is not None:
            participants.append(_participant("ESC", session.escort))
        if session.therapist is not None:
            participants.append(_participant("PPRF", session.therapist))
        resources.append(
            {
                "resourceType": "Appointment",
                "id": key,
                "extension": _timezone(course.timezone),
                "identifier": [{"system": SESSION_ID_SYSTEM, "value": session.id}],
                "status": "booked" if planned else "fulfilled",
                "serviceType": [_coding(KIND_SYSTEM, session.kind.value)],
                "start": _text(session.start),
                "end": _text(session.start + dt.timedelta(minutes=_MINUTES)),
                "participant": participants,
            }
        )
        resources += _session_day(session, key, subject, planned)
    return _bundle(resources)


def _session_day(
    session: Session, key: str, subject: dict[str, Any] | None, planned: bool
) -> list[dict[str, Any]]:
    times = {
        "last_food": (LOINC, LAST_ORAL_INTAKE),
        **{field: (OBSERVATION_SYSTEM, code) for code, field in KAPRULES_OBSERVATIONS.items()},
    }
    recorded = {f: getattr(session, f) for f in times if getattr(session, f) is not None}
    if not recorded and not session.vitals and session.dose_mg is None:
        return []
    encounter = f"{key}-encounter"
    link = {"reference": f"Encounter/{encounter}"}
    resources: list[dict[str, Any]] = [
        {
            "resourceType": "Encounter",
            "id": encounter,
            "status": "planned" if planned else "finished",
            "class": {
                "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                "code": "AMB",
            },
            "appointment": [{"reference": f"Appointment/{key}"}],
        }
    ]
    extra = {} if subject is None else {"subject": subject}
    for n, (field, value) in enumerate(recorded.items(), start=1):
        system, code = times[field]
        resources.append(
            {
                "resourceType": "Observation",
                "id": f"{key}-{n}",
                "status": "final",
                "code": _coding(system, code),
                **extra,
                "encounter": link,
                "effectiveDateTime": _text(session.start),
                "valueDateTime": _text(value),
            }
        )
    for n, vital in enumerate(session.vitals, start=1):
        components = [
            {
                "code": _coding(LOINC, code),
                "valueQuantity": {
                    "value": reading,
                    "unit": "mmHg",
                    "system": UCUM,
                    "code": "mm[Hg]",
                },
            }
            for code, reading in ((SYSTOLIC, vital.systolic), (DIASTOLIC, vital.diastolic))
        ]
        resources.append(
            {
                "resourceType": "Observation",
                "id": f"{key}-bp-{n}",
                "status": "final",
                "code": _coding(LOINC, "85354-9"),
                **extra,
                "encounter": link,
                "effectiveDateTime": _text(vital.at),
                "component": components,
            }
        )
    if session.dose_mg is not None:
        resources.append(
            {
                "resourceType": "MedicationAdministration",
                "id": f"{key}-dose",
                "status": "completed",
                "medicationCodeableConcept": {"text": "ketamine"},
                "subject": subject or {"display": "patient"},
                "context": link,
                "effectiveDateTime": _text(session.start),
                "dosage": {
                    "dose": {"value": session.dose_mg, "unit": "mg", "system": UCUM, "code": "mg"}
                },
            }
        )
    return resources


def _finding_issue(number: int, finding: Finding) -> dict[str, Any]:
    issue: dict[str, Any] = {
        "resourceType": "DetectedIssue",
        "id": f"kaprules-finding-{number}",
        "status": "final",
        "code": {"coding": [{"system": RULE_SYSTEM, "code": finding.rule}], "text": finding.rule},
        "severity": _SEVERITY[finding.severity],
        "implicated": [_reference(s) for s in finding.sessions],
        "detail": finding.message,
    }
    if finding.help is not None and finding.help.url.startswith(("http://", "https://")):
        issue["reference"] = finding.help.url
    waiver = finding.waiver
    if waiver is not None:
        action: dict[str, Any] = {"text": waiver.reason or "waived"}
        if waiver.reason:
            action["coding"] = [{"system": WAIVER_REASON_SYSTEM, "code": waiver.reason}]
        mitigation: dict[str, Any] = {"action": action}
        if waiver.approved_at is not None:
            mitigation["date"] = _text(waiver.approved_at)
        if waiver.approved_by is not None:
            mitigation["author"] = {"display": waiver.approved_by}
        issue["mitigation"] = [mitigation]
    if not issue["implicated"]:
        del issue["implicated"]
    return issue


def detected_issues(report: Report, course: Course) -> list[dict[str, Any]]:
    """A report's findings as FHIR R4B DetectedIssue resources.

    Severity ``high``, ``moderate`` or ``low`` for an error, warning or info finding;
    ``code`` names the rule (`RULE_SYSTEM`); ``detail`` is the finding's message, which
    names sessions by id and local time only; ``implicated`` references the Appointments
    of the sessions the finding names (as `appointments_from_course` writes them, by id
    and by `SESSION_ID_SYSTEM` identifier). A waived finding carries its waiver as a
    ``mitigation``: the reason code as the action, ``approved_by`` as the author's
    display, ``approved_at`` as the date.

    Args:
        report: The report of `evaluate` on ``course``.
        course: The course the report judged.

    Returns:
        One DetectedIssue per finding, in the report's order, as plain data.

    Raises:
        InputError: ``report`` is not a Report, ``course`` not a Course, or a finding
            names a session the course lacks.
    """
    if not isinstance(report, Report):
        raise InputError(Problem("report", f"must be a Report, got {type(report).__name__}"))
    if not isinstance(course, Course):
        raise InputError(Problem("course", f"must be a Course, got {type(course).__name__}"))
    known = {s.id for s in course.sessions}
    for index, finding in enumerate(report.findings):
        for session in finding.sessions:
            if session not in known:
                raise InputError(
                    Problem(
                        ("report", "findings", index),
                        f"names session {echo(session)}, which the course lacks",
                    )
                )
    return [_finding_issue(n, f) for n, f in enumerate(report.findings, start=1)]


def _proposed(
    number: int,
    kind: str,
    zone: str,
    window: tuple[dt.date, dt.date | None],
    start: dt.datetime | None,
) -> dict[str, Any]:
    period = {"start": window[0].isoformat()}
    if window[1] is not None:
        period["end"] = window[1].isoformat()
    appointment: dict[str, Any] = {
        "resourceType": "Appointment",
        "id": f"kaprules-proposed-{number}",
        "extension": _timezone(zone),
        "status": "proposed",
        "serviceType": [_coding(KIND_SYSTEM, kind)],
        "requestedPeriod": [period],
        "participant": [_participant("SBJ", None)],
    }
    if start is not None:
        appointment["start"] = _text(start)
        appointment["end"] = _text(start + dt.timedelta(minutes=_MINUTES))
    return appointment


def proposed_appointments(forecast_or_plan: Forecast | Plan) -> dict[str, Any]:
    """A forecast's next session, or a plan's sessions, as proposed FHIR R4B Appointments.

    A forecast gives one Appointment, without a start, whose ``requestedPeriod`` is the
    bookable window (``bookable_from`` to ``latest``; open-ended when there is no latest);
    none when there is no next session. A plan gives one per proposed session (integration
    meetings are not sessions, and are left out) with its start; the first one's
    ``requestedPeriod`` is the forecast's window, each later one's its own local date.

    Args:
        forecast_or_plan: The result of [`forecast`][kaprules.forecast] or
            [`plan`][kaprules.plan].

    Returns:
        A Bundle of type ``collection`` of Appointments with status ``proposed``.

    Raises:
        InputError: The argument is neither a Forecast nor a Plan.
    """
    if isinstance(forecast_or_plan, Forecast):
        following = forecast_or_plan.next
        if following is None:
            return _bundle([])
        window = (following.bookable_from, following.latest)
        return _bundle(
            [_proposed(1, following.kind.value, forecast_or_plan.timezone, window, None)]
        )
    if isinstance(forecast_or_plan, Plan):
        zone = forecast_or_plan.course.timezone
        upcoming = forecast_or_plan.forecast.next
        resources = []
        sessions = [s for s in forecast_or_plan.sessions if s.kind != INTEGRATION]
        for number, proposed in enumerate(sessions, start=1):
            day = forecast_or_plan.course.local(proposed.start).date()
            window = (
                (upcoming.bookable_from, upcoming.latest)
                if number == 1 and upcoming is not None
                else (day, day)
            )
            resources.append(_proposed(number, str(proposed.kind), zone, window, proposed.start))
        return _bundle(resources)
    raise InputError(
        Problem(
            "forecast_or_plan",
            f"must be a Forecast or a Plan, got {type(forecast_or_plan).__name__}",
            "type",
        )
    )
