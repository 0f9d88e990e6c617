"""The course model: a patient's sessions and integration meetings in a clinic's timezone.

A [`Course`][kaprules.Course] holds [`Session`][kaprules.Session] and
[`Integration`][kaprules.Integration] objects. All are frozen and check themselves when
built: a course that exists is structurally sound, so the rules never meet a naive
datetime, an unknown timezone or a duplicate id.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
import types
import zoneinfo
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from kaprules import _time
from kaprules.errors import InputError, PathItem, Problem, echo

__all__ = ["Course", "Integration", "JSONValue", "Kind", "Session", "Vital", "Waiver"]

JSONValue = str | int | float | bool | None | list[Any] | dict[str, Any]
"""A value that ``json.dumps`` writes as it is: what rule parameters, expected and actual
values, and clinic-defined ``extra`` data are made of."""


class Kind(enum.StrEnum):
    """What a session is in the protocol. Compares equal to its plain string.

    Attributes:
        INDUCTION: One session of the induction series.
        BOOSTER: A session after the induction series, to maintain it.
    """

    INDUCTION = "induction"
    BOOSTER = "booster"


def _redacted(value: object) -> str:
    # Escort and therapist names, patient ids, readings and doses are clinical data: keep
    # them out of logs and tracebacks.
    return "None" if value is None else "'<redacted>'"


def _label(session_id: object) -> str:
    if isinstance(session_id, str) and session_id.strip():
        return f"session {echo(session_id)}"
    return "session (no id)"


def _type_name(value: object) -> str:
    return type(value).__name__


def _check_instant(name: str, value: object, *, required: bool) -> list[Problem]:
    if value is None:
        return [Problem(name, "is required", "required")] if required else []
    if not isinstance(value, dt.datetime):
        return [Problem(name, f"must be a datetime.datetime, got {_type_name(value)}", "type")]
    if not _time.is_aware(value):
        return [
            Problem(
                name,
                f"naive datetime {value.isoformat()} has no UTC offset; "
                "give a timezone-aware datetime (for example with tzinfo=ZoneInfo(...))",
                "naive",
            )
        ]
    if not _time.in_range(value):
        return [Problem(name, out_of_range(value), "range")]
    return []


def out_of_range(value: dt.date) -> str:
    return (
        f"{value.isoformat()} is outside the supported years "
        f"{_time.MIN_YEAR}-{_time.MAX_YEAR}; check the year"
    )


_SURROGATE = "holds a lone surrogate (invalid Unicode); give valid UTF-8 text"


def _optional_text(name: str, value: object) -> list[Problem]:
    if value is not None and not isinstance(value, str):
        return [Problem(name, f"must be a string or None, got {_type_name(value)}", "type")]
    if value is not None and not _time.valid_text(value):
        return [Problem(name, _SURROGATE, "value")]
    return []


def _id_problems(value: object) -> list[Problem]:
    if value is None:
        return []
    if not isinstance(value, str):
        return [Problem("id", f"must be a string, got {_type_name(value)}", "type")]
    if not _time.valid_text(value):
        return [Problem("id", _SURROGATE, "value")]
    if not value.strip():
        return [Problem("id", "is empty; give a non-blank id or leave it out", "value")]
    return []


MIN_READING, MAX_READING = 1, 400
"""The blood-pressure readings a `Vital` accepts, in mmHg (whole numbers, bounds included)."""

READING_RANGE = f"a whole number from {MIN_READING} to {MAX_READING} (mmHg)"


def reading_problems(name: str, value: object) -> list[Problem]:
    """The problem with one blood-pressure reading (private helper). Never shows the value."""
    if isinstance(value, bool) or not isinstance(value, int):
        return [Problem(name, f"must be {READING_RANGE}, got {_type_name(value)}", "type")]
    if not MIN_READING <= value <= MAX_READING:
        return [Problem(name, f"must be {READING_RANGE}, got one outside that range", "range")]
    return []


def vital_problems(at: object, systolic: object, diastolic: object) -> list[Problem]:
    """Every structural problem with one reading's values, by field name (private helper)."""
    found = (
        _check_instant("at", at, required=True)
        + reading_problems("systolic", systolic)
        + reading_problems("diastolic", diastolic)
    )
    if not found and diastolic > systolic:  # type: ignore[operator]
        # Never a real reading (60/200 is 200/60 entered the wrong way round); the values
        # are not shown.
        found.append(
            Problem(
                "diastolic",
                "must be at most the systolic pressure; the two may be swapped",
                "value",
            )
        )
    return found


MAX_DOSE_MG = 100_000
"""The largest ``dose_mg`` a session accepts, in milligrams: as the protocols' dose
parameters are bounded. More is a typing error, not a dose."""


MAX_READINGS = 100
"""The most blood-pressure readings a session holds (its ``vitals``): a monitoring period
takes a few, so more is an export gone wrong; refused, so that one session cannot hold a
table's worth of readings."""


def readings_count_problems(count: int) -> list[Problem]:
    """The problem with a session holding ``count`` readings, or none (private helper)."""
    if count > MAX_READINGS:
        return [Problem("vitals", f"holds more than {MAX_READINGS} readings, the limit", "range")]
    return []


def dose_problems(value: object) -> list[Problem]:
    """The problem with a session's dose, or none (private helper). Never shows the value."""
    if value is None:
        return []
    if isinstance(value, bool) or not isinstance(value, int | float):
        return [
            Problem(
                "dose_mg",
                f"must be a number (int or float) or None, got {_type_name(value)}",
                "type",
            )
        ]
    if isinstance(value, float) and not math.isfinite(value):
        return [Problem("dose_mg", "must be a finite number of milligrams", "value")]
    if value <= 0:
        return [Problem("dose_mg", "must be a number of milligrams above 0", "range")]
    if value > MAX_DOSE_MG:
        return [Problem("dose_mg", f"must be at most {MAX_DOSE_MG} mg, got more", "range")]
    return []


def _vitals_problems(value: object) -> list[Problem]:
    if isinstance(value, set | frozenset):
        return [
            Problem(
                "vitals",
                f"is an unordered {_type_name(value)}; give a list or tuple of Vital",
                "type",
            )
        ]
    if not isinstance(value, tuple):
        return [
            Problem("vitals", f"must be a list or tuple of Vital, got {_type_name(value)}", "type")
        ]
    return readings_count_problems(len(value)) or [
        Problem(("vitals", index), f"must be a Vital, got {_type_name(item)}", "type")
        for index, item in enumerate(value)
        if not isinstance(item, Vital)
    ]


def enrolled_problems(value: object) -> list[Problem]:
    """The problem with a course's enrollment date, or none (private helper)."""
    if value is None:
        return []
    if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
        return [
            Problem(
                "enrolled",
                f"must be a datetime.date (a local date, not a datetime) or None, got "
                f"{_type_name(value)}",
                "type",
            )
        ]
    if not _time.MIN_YEAR <= value.year <= _time.MAX_YEAR:
        return [Problem("enrolled", out_of_range(value), "range")]
    return []


def session_problems(
    start: object,
    kind: object,
    id: object,
    last_food: object,
    escort: object,
    therapist: object = None,
    *,
    last_liquid: object = None,
    vitals: object = (),
    ready_to_leave: object = None,
    dose_mg: object = None,
    monitoring_form: object = None,
) -> list[Problem]:
    """Every structural problem with one session's values, by field name (private helper)."""
    problems = _check_instant("start", start, required=True)
    if not isinstance(kind, str):
        problems.append(Problem("kind", f"must be a string, got {_type_name(kind)}", "type"))
    elif kind not in _KINDS:
        problems.append(
            Problem(
                "kind",
                f"unknown kind {echo(kind)}; use one of {', '.join(map(repr, _KINDS))}",
                "value",
            )
        )
    problems += _id_problems(id)
    problems += _check_instant("last_food", last_food, required=False)
    problems += _optional_text("escort", escort)
    problems += _optional_text("therapist", therapist)
    problems += _check_instant("last_liquid", last_liquid, required=False)
    problems += _vitals_problems(vitals)
    problems += _check_instant("ready_to_leave", ready_to_leave, required=False)
    problems += dose_problems(dose_mg)
    problems += _check_instant("monitoring_form", monitoring_form, required=False)
    return problems


_KINDS = tuple(k.value for k in Kind)
KIND_BY_VALUE: dict[str, Kind] = {k.value: k for k in Kind}


def timezone_problem(value: object) -> Problem | None:
    """The problem with a timezone value, or None when it names an IANA zone (private)."""
    if not isinstance(value, str):
        return Problem("timezone", f"must be a string, got {_type_name(value)}", "type")
    try:
        _time.zone(value)
    except ValueError:
        return Problem(
            "timezone",
            f"unknown timezone {echo(value, 60)}; use an IANA name such as 'America/Denver'",
            "value",
        )
    return None


def to_kind(value: Kind | str) -> Kind:
    # An unknown value passes through so that the post-init check can name the session.
    # Looked up, not constructed: Kind(value) would copy a huge value into its error.
    if isinstance(value, str):
        return KIND_BY_VALUE.get(value, value)  # type: ignore[arg-type]
    return value


# --- clinic-defined data ----------------------------------------------------------------

# Deep enough for any record a clinic keeps; shallow enough that freezing cannot recurse
# out of the stack.
_MAX_DEPTH = 32
_EMPTY: Mapping[str, Any] = types.MappingProxyType({})


def freeze_json(value: object, path: tuple[PathItem, ...] = ()) -> tuple[Any, list[Problem]]:
    """A JSON value made immutable: objects become read-only mappings, arrays tuples.

    Args:
        value: Plain data: str, int, finite float, bool, None, lists (or tuples) and
            mappings with string keys.
        path: Where the value is, for problems.

    Returns:
        The frozen value and the problems found (the value is None when there are some).
        Problems name positions and types only, never the data itself.
    """
    problems: list[Problem] = []

    def walk(item: object, where: tuple[PathItem, ...]) -> Any:
        if len(where) - len(path) > _MAX_DEPTH:
            problems.append(Problem(where, f"is nested more than {_MAX_DEPTH} deep", "range"))
            return None
        if isinstance(item, str):
            if not _time.valid_text(item):
                problems.append(Problem(where, _SURROGATE, "value"))
            return item
        if item is None or isinstance(item, bool | int):
            return item
        if isinstance(item, float):
            if not math.isfinite(item):
                problems.append(Problem(where, "must be a finite number", "value"))
            return item
        if isinstance(item, list | tuple):
            return tuple(walk(x, (*where, i)) for i, x in enumerate(item))
        if isinstance(item, Mapping):
            frozen: dict[str, Any] = {}
            for position, (key, inner) in enumerate(item.items()):
                if not isinstance(key, str):
                    # The key itself may be clinical data: name its position, not its text.
                    problems.append(
                        Problem(where, f"key {position} must be a string, got {_type_name(key)}")
                    )
                    continue
                if not _time.valid_text(key):
                    problems.append(Problem(where, f"key {position} {_SURROGATE}", "value"))
                    continue
                frozen[key] = walk(inner, (*where, f"<key {position}>"))
            return types.MappingProxyType(frozen)
        problems.append(
            Problem(
                where,
                f"must be JSON data (str, number, bool, None, list, dict), got {_type_name(item)}",
                "type",
            )
        )
        return None

    frozen = walk(value, path)
    return (None if problems else frozen), problems


def thaw_json(value: Any) -> JSONValue:
    """A frozen JSON value as plain, mutable data for ``json.dumps``.

    Args:
        value: A value made by [`freeze_json`][kaprules.model.freeze_json].

    Returns:
        Plain dicts and lists.
    """
    if isinstance(value, Mapping):
        return {k: thaw_json(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw_json(v) for v in value]
    return value  # type: ignore[no-any-return]


@attrs.frozen
class _Unfrozen:
    # What the converter leaves when a value cannot be frozen: the post-init check names
    # the problems, with the session's label, from here.
    problems: tuple[Problem, ...]


def _extra(value: Mapping[str, JSONValue] | None) -> Any:
    # Converter: each value is walked once, here. Returns the frozen mapping, or _Unfrozen.
    if value is None:
        return _EMPTY
    if not isinstance(value, Mapping):
        problem = Problem("extra", f"must be a mapping, got {_type_name(value)}", "type")
        return _Unfrozen((problem,))
    frozen, problems = freeze_json(value, ("extra",))
    return _Unfrozen(tuple(problems)) if problems else frozen


def _extra_problems(value: object) -> tuple[Problem, ...]:
    return value.problems if isinstance(value, _Unfrozen) else ()


def _rebuilt(cls: type[Any], fields: dict[str, Any]) -> Any:
    # Unpickling and copying: the class built again from its own fields, checked as new.
    return cls(**fields)


def _reduced(instance: Any) -> tuple[Any, tuple[type[Any], dict[str, Any]]]:
    # A read-only mapping (``extra``) cannot be pickled: each init field is handed back as
    # the constructor takes it, ``extra`` thawed into plain data (which it freezes again).
    fields = {
        f.alias: thaw_json(getattr(instance, f.name))
        if f.name == "extra"
        else getattr(instance, f.name)
        for f in attrs.fields(type(instance))
        if f.init
    }
    return _rebuilt, (type(instance), fields)


def _instant_text(value: dt.datetime) -> str:
    # An offset with seconds (local mean time before 1900-ish) is not in the format: write
    # such an instant in UTC, which is the same instant.
    offset = value.utcoffset()
    if offset is not None and offset.seconds % 60 == 0 and not offset.microseconds:
        return value.isoformat()
    return _time.to_utc(value).isoformat().replace("+00:00", "Z")


# --- the records ------------------------------------------------------------------------


def _as_tuple(value: Iterable[Any]) -> tuple[Any, ...]:
    # Accept any ordered iterable, but leave strings, mappings, unordered collections and
    # non-iterables for the post-init check to name.
    if isinstance(value, str | bytes | Mapping | set | frozenset) or not isinstance(
        value, Iterable
    ):
        return value  # type: ignore[return-value]
    return tuple(value)


def _pretty(self: object, printer: Any, cycle: bool) -> None:
    # Pretty-printers (IPython, hypothesis' failing examples) would list attrs fields one by
    # one, names included; give them the redacted repr instead.
    printer.text(repr(self))


def _as_instant(value: object) -> object:
    # Sessions compare by instant: by PEP 495 an aware datetime in a repeated hour (a DST
    # fold) never equals one in another zone, even for the same instant.
    if isinstance(value, dt.datetime) and value.utcoffset() is not None:
        return _time.to_utc(value)
    return value


@attrs.frozen
class Vital:
    """A blood-pressure reading taken during a session.

    Args:
        at: When it was taken: an aware datetime in the years 1900 to 9000 (UTC).
        systolic: The systolic pressure in mmHg, a whole number from 1 to 400.
        diastolic: The diastolic pressure in mmHg, a whole number from 1 to 400, at most
            ``systolic``.

    The readings are clinical data: never shown in findings, messages or this object's
    repr.

    Raises:
        InputError: A naive datetime or one outside the supported years, or a reading that
            is not a whole number (an ``int``, not a ``bool``) from 1 to 400; the message
            names the field, never the reading.
    """

    at: dt.datetime = attrs.field(eq=_as_instant)
    systolic: int = attrs.field(repr=_redacted)
    diastolic: int = attrs.field(repr=_redacted)
    _repr_pretty_ = _pretty

    def __attrs_post_init__(self) -> None:
        problems = vital_problems(self.at, self.systolic, self.diastolic)
        if problems:
            raise InputError(*(p.within("vital") for p in problems))

    def to_dict(self) -> dict[str, Any]:
        """This reading in the JSON course format.

        Returns:
            ``{"at", "systolic", "diastolic"}``; the instant keeps its UTC offset.
        """
        return {
            "at": _instant_text(self.at),
            "systolic": self.systolic,
            "diastolic": self.diastolic,
        }


@attrs.frozen
class Session:
    """One session of a course, as recorded or planned.

    Args:
        start: When the session starts: a timezone-aware ``datetime.datetime``
            (pendulum's ``DateTime`` is one) in the years 1900 to 9000 (UTC).
        kind: ``"induction"`` or ``"booster"`` (or a [`Kind`][kaprules.Kind]).
        id: A non-blank identifier, unique in its course. Left as None, the course gives
            the session its 1-based position in the given order (``"1"``, ``"2"``, ...).
        last_food: When the patient last ate before the session: an aware datetime, or
            None when not recorded.
        escort: Who drives the patient home, or None when nobody is recorded. Never shown
            in findings, messages or this object's repr.
        therapist: The psychotherapist who guided the session, or None when not recorded.
            Never shown in findings, messages or this object's repr.
        extra: Clinic-defined data for rules of your own: a mapping of JSON values, kept
            read-only (objects as read-only mappings, arrays as tuples). Never shown in
            findings, messages or this object's repr.
        last_liquid: When the patient last drank before the session: an aware datetime,
            or None when not recorded.
        vitals: The blood-pressure readings taken during the session, as
            [`Vital`][kaprules.Vital] objects in any ordered iterable (kept as a tuple):
            at most `MAX_READINGS` (100); empty when none are recorded.
        ready_to_leave: When monitoring ended and the patient was assessed ready to leave:
            an aware datetime, or None when not recorded.
        dose_mg: The ketamine dose given, in milligrams: an ``int`` or ``float`` above 0
            and at most `MAX_DOSE_MG` (100000), or None when not recorded.
        monitoring_form: When the REMS Patient Monitoring Form for the session was
            submitted: an aware datetime, or None when not recorded.

    ``start`` is when dosing begins (the first device, or the infusion's start). The
    session-day data (``last_liquid`` to ``monitoring_form``) is clinical data: never shown
    in findings, messages or this object's repr.

    Attributes:
        instant: The start as a plain ``datetime`` in UTC, set when the session is built.

    Raises:
        InputError: A naive datetime or one outside the supported years, an unknown kind,
            an empty id, a dose that is not a positive finite number, a reading that is not
            a `Vital`, more than `MAX_READINGS` readings, or a wrong type; the message names
            the session and the field.
    """

    start: dt.datetime = attrs.field(eq=_as_instant)
    kind: Kind = attrs.field(default=Kind.INDUCTION, converter=to_kind, repr=lambda k: repr(str(k)))
    id: str | None = None
    last_food: dt.datetime | None = attrs.field(default=None, eq=_as_instant)
    escort: str | None = attrs.field(default=None, repr=_redacted)
    therapist: str | None = attrs.field(default=None, repr=_redacted, kw_only=True)
    extra: Mapping[str, Any] = attrs.field(
        default=None, converter=_extra, repr=False, hash=False, kw_only=True
    )
    last_liquid: dt.datetime | None = attrs.field(
        default=None, eq=_as_instant, repr=False, kw_only=True
    )
    vitals: tuple[Vital, ...] = attrs.field(
        default=(), converter=_as_tuple, repr=False, kw_only=True
    )
    ready_to_leave: dt.datetime | None = attrs.field(
        default=None, eq=_as_instant, repr=False, kw_only=True
    )
    dose_mg: float | int | None = attrs.field(default=None, repr=False, kw_only=True)
    monitoring_form: dt.datetime | None = attrs.field(
        default=None, eq=_as_instant, repr=False, kw_only=True
    )
    instant: dt.datetime = attrs.field(init=False, eq=False, repr=False)
    """The start as a plain ``datetime`` in UTC (set when the session is built)."""
    _repr_pretty_ = _pretty

    def __attrs_post_init__(self) -> None:
        problems = session_problems(
            self.start,
            self.kind,
            self.id,
            self.last_food,
            self.escort,
            self.therapist,
            last_liquid=self.last_liquid,
            vitals=self.vitals,
            ready_to_leave=self.ready_to_leave,
            dose_mg=self.dose_mg,
            monitoring_form=self.monitoring_form,
        )
        problems += _extra_problems(self.extra)
        if problems:
            raise InputError(*(p.within(_label(self.id)) for p in problems))
        object.__setattr__(self, "instant", _time.to_utc(self.start))

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickling and `copy.deepcopy`: the session rebuilt from its fields."""
        return _reduced(self)

    @property
    def food_instant(self) -> dt.datetime | None:
        """``last_food`` as a plain ``datetime`` in UTC, or None."""
        return None if self.last_food is None else _time.to_utc(self.last_food)

    def to_dict(self) -> dict[str, Any]:
        """This session in the JSON course format.

        Returns:
            ``{"id", "kind", "start", ...}``; ``last_food``, ``escort``, ``therapist``,
            ``extra``, ``last_liquid``, ``vitals`` (when not empty), ``ready_to_leave``,
            ``dose_mg`` and ``monitoring_form`` only when set. Instants keep their UTC
            offset.
        """
        data: dict[str, JSONValue] = {"id": self.id, "kind": self.kind.value}
        data["start"] = _instant_text(self.start)
        if self.last_food is not None:
            data["last_food"] = _instant_text(self.last_food)
        if self.escort is not None:
            data["escort"] = self.escort
        if self.therapist is not None:
            data["therapist"] = self.therapist
        if self.extra:
            data["extra"] = thaw_json(self.extra)
        if self.last_liquid is not None:
            data["last_liquid"] = _instant_text(self.last_liquid)
        if self.vitals:
            data["vitals"] = [v.to_dict() for v in self.vitals]
        if self.ready_to_leave is not None:
            data["ready_to_leave"] = _instant_text(self.ready_to_leave)
        if self.dose_mg is not None:
            data["dose_mg"] = self.dose_mg
        if self.monitoring_form is not None:
            data["monitoring_form"] = _instant_text(self.monitoring_form)
        return data


_new = object.__new__


def _slot_setters(cls: type[Any], *names: str) -> tuple[Any, ...]:
    """The slots' own setters, past a frozen class's ``__setattr__`` (private fast paths)."""
    return tuple(cls.__dict__[name].__set__ for name in names)


_SESSION_SET = _slot_setters(
    Session,
    "start",
    "kind",
    "id",
    "last_food",
    "escort",
    "therapist",
    "extra",
    "instant",
    "last_liquid",
    "vitals",
    "ready_to_leave",
    "dose_mg",
    "monitoring_form",
)


def trusted_session(
    start: dt.datetime,
    kind: Kind,
    id: str | None,
    last_food: dt.datetime | None,
    escort: str | None,
    therapist: str | None,
) -> Session:
    """A session from values the loader has already checked as ``__init__`` would.

    The course format's fast path (`kaprules.course_files`), and nothing else: every value
    must be what ``Session.__init__`` accepts and converts to (aware datetimes in range, a
    `Kind`, valid non-blank text), for nothing is checked again. Not part of the public API.
    """
    self = _new(Session)
    _SESSION_SET[0](self, start)
    _SESSION_SET[1](self, kind)
    _SESSION_SET[2](self, id)
    _SESSION_SET[3](self, last_food)
    _SESSION_SET[4](self, escort)
    _SESSION_SET[5](self, therapist)
    _SESSION_SET[6](self, _EMPTY)
    _SESSION_SET[7](self, start.astimezone(_time.UTC))
    _SESSION_SET[8](self, None)
    _SESSION_SET[9](self, ())
    _SESSION_SET[10](self, None)
    _SESSION_SET[11](self, None)
    _SESSION_SET[12](self, None)
    return self


@attrs.frozen
class Integration:
    """An integration meeting with the psychotherapist, after the treatments.

    Args:
        start: When the meeting starts: an aware datetime in the years 1900 to 9000 (UTC).
        id: An optional identifier, unique among the course's meetings.
        therapist: Who held the meeting, or None. Never shown in findings, messages or
            this object's repr.

    Raises:
        InputError: A naive datetime or one outside the supported years, an empty id or
            a wrong type; the message names the meeting and the field.
    """

    start: dt.datetime = attrs.field(eq=_as_instant)
    id: str | None = None
    therapist: str | None = attrs.field(default=None, repr=_redacted, kw_only=True)
    instant: dt.datetime = attrs.field(init=False, eq=False, repr=False)
    """The start as a plain ``datetime`` in UTC (set when the session is built)."""
    _repr_pretty_ = _pretty

    def __attrs_post_init__(self) -> None:
        problems = integration_problems(self.start, self.id, self.therapist)
        if problems:
            label = "integration" + (
                f" {echo(self.id)}" if isinstance(self.id, str) and self.id.strip() else ""
            )
            raise InputError(*(p.within(label) for p in problems))
        object.__setattr__(self, "instant", _time.to_utc(self.start))

    def to_dict(self) -> dict[str, Any]:
        """This meeting in the JSON course format.

        Returns:
            ``{"start"}``, with ``id`` and ``therapist`` when set.
        """
        data: dict[str, JSONValue] = {"start": _instant_text(self.start)}
        if self.id is not None:
            data["id"] = self.id
        if self.therapist is not None:
            data["therapist"] = self.therapist
        return data


def integration_problems(start: object, id: object, therapist: object) -> list[Problem]:
    """Every structural problem with one integration meeting's values (private helper)."""
    return (
        _check_instant("start", start, required=True)
        + _id_problems(id)
        + _optional_text("therapist", therapist)
    )


MAX_WAIVER_TEXT = 200
"""The longest ``reason`` or ``approved_by`` a `Waiver` holds, in characters."""

MAX_NOTE = 2_000
"""The longest waiver ``note``, in characters."""


def _waiver_text(name: str, value: object, limit: int, *, line: bool) -> list[Problem]:
    # None and blank text are kept: a waiver without a reason or an approver is a finding
    # of the audit (`waiver`), not a record that cannot be read.
    if value is None:
        return []
    if not isinstance(value, str):
        return [Problem(name, f"must be a string or None, got {_type_name(value)}", "type")]
    if not _time.valid_text(value):
        return [Problem(name, _SURROGATE, "value")]
    printable = value.isprintable() if line else value.replace("\n", "").isprintable()
    if len(value) > limit or not printable:
        shape = "one line of at most" if line else "at most"
        return [Problem(name, f"must be {shape} {limit} printable characters", "value")]
    return []


def waiver_problems(
    rule: object,
    sessions: object,
    reason: object,
    approved_by: object,
    approved_at: object,
    note: object,
) -> list[Problem]:
    """Every structural problem with one waiver's values (private helper).

    Structural only: a waiver that names a rule or session the course lacks, has no reason
    or approver, or is approved after ``as_of`` is judged when the course is evaluated.
    """
    problems: list[Problem] = []
    if not isinstance(rule, str) or not rule.strip() or len(rule) > MAX_WAIVER_TEXT:
        problems.append(
            Problem(
                "rule",
                f"must be a rule id: a non-blank string of at most {MAX_WAIVER_TEXT} characters",
                "type",
            )
        )
    elif not _time.valid_text(rule):
        problems.append(Problem("rule", _SURROGATE, "value"))
    elif not rule.isprintable():
        problems.append(Problem("rule", "must be one line of printable characters", "value"))
    if not isinstance(sessions, tuple):
        problems.append(
            Problem(
                "sessions",
                f"must be a list or tuple of session ids, got {_type_name(sessions)}",
                "type",
            )
        )
    else:
        for index, item in enumerate(sessions):
            if not isinstance(item, str) or not item.strip():
                problems.append(
                    Problem(("sessions", index), "must be a non-blank session id", "type")
                )
            elif not _time.valid_text(item):
                problems.append(Problem(("sessions", index), _SURROGATE, "value"))
        if len(set(sessions)) != len(sessions) and not problems:
            problems.append(Problem("sessions", "names a session twice", "duplicate"))
    problems += _waiver_text("reason", reason, MAX_WAIVER_TEXT, line=True)
    problems += _waiver_text("approved_by", approved_by, MAX_WAIVER_TEXT, line=True)
    problems += _check_instant("approved_at", approved_at, required=False)
    problems += _waiver_text("note", note, MAX_NOTE, line=False)
    return problems


@attrs.frozen
class Waiver:
    """A clinician's accepted exception to a rule, for some sessions of a course.

    A finding of ``rule`` whose sessions are all among ``sessions`` is reported as waived
    when the protocol lets the rule be waived and the waiver is complete (see
    [Waivers and versions](waivers.md)); otherwise the waiver is itself a ``waiver``
    finding and waives nothing.

    Args:
        rule: The id of the rule waived, as findings name it.
        sessions: The ids of the sessions it covers; empty for a finding about the course
            as a whole.
        reason: A reason code from the protocol's vocabulary (``clinical-judgement``,
            ``clinic-closed``, ...), or None when not recorded.
        approved_by: Who approved it (a clinician's name or staff id), or None.
        approved_at: When it was approved: an aware datetime, or None.
        note: Free text for the record. Never shown in shared outputs unless asked for.

    Raises:
        InputError: A value of a wrong type, a naive ``approved_at``, or text that is not
            valid Unicode or too long; the message names the field.
    """

    rule: str
    sessions: tuple[str, ...] = attrs.field(converter=_as_tuple)
    reason: str | None = None
    approved_by: str | None = None
    approved_at: dt.datetime | None = attrs.field(default=None, eq=_as_instant)
    note: str | None = attrs.field(default=None, repr=False)

    def __attrs_post_init__(self) -> None:
        problems = waiver_problems(
            self.rule, self.sessions, self.reason, self.approved_by, self.approved_at, self.note
        )
        if problems:
            raise InputError(*(p.within("waiver") for p in problems))

    def to_dict(self) -> dict[str, Any]:
        """This waiver in the JSON course format.

        Returns:
            ``{"rule", "sessions", "reason", "approved_by", "approved_at"}``, with
            ``note`` when set.
        """
        data: dict[str, JSONValue] = {
            "rule": self.rule,
            "sessions": list(self.sessions),
            "reason": self.reason,
            "approved_by": self.approved_by,
            "approved_at": None if self.approved_at is None else _instant_text(self.approved_at),
        }
        if self.note is not None:
            data["note"] = self.note
        return data


@attrs.frozen
class Course:
    """A patient's course of sessions, in the clinic's timezone.

    Args:
        timezone: The clinic's IANA zone name, such as ``"America/Denver"``. Local dates
            are calendar dates in this zone.
        sessions: The sessions, in any order. A session without an id is given its
            1-based position in this order as id.
        patient: An opaque patient identifier, or None. Never shown in findings or
            messages.
        integrations: The integration meetings with the psychotherapist, in any order.
        extra: Clinic-defined data for rules of your own, as for
            [`Session.extra`][kaprules.Session]. Never shown in findings, messages or this
            object's repr.
        id: An opaque record id for the course, such as ``"c-0012"``, shown in audit output
            (so never a name), or None.
        enrolled: The local date the patient was enrolled in the REMS: a
            ``datetime.date`` (not a ``datetime``) in the years 1900 to 9000, or None when
            not recorded.
        waivers: The accepted exceptions to the protocol's rules (`Waiver`), in any
            order.

    Raises:
        InputError: An unknown timezone, a session that is not a `Session`, a duplicate id,
            an enrollment date that is not a date, or a wrong type; every problem is
            listed.
    """

    timezone: str
    sessions: tuple[Session, ...] = attrs.field(converter=_as_tuple)
    patient: str | None = attrs.field(default=None, repr=_redacted)
    integrations: tuple[Integration, ...] = attrs.field(
        default=(), converter=_as_tuple, kw_only=True
    )
    extra: Mapping[str, Any] = attrs.field(
        default=None, converter=_extra, repr=False, hash=False, kw_only=True
    )
    id: str | None = attrs.field(default=None, kw_only=True)
    enrolled: dt.date | None = attrs.field(default=None, repr=False, kw_only=True)
    waivers: tuple[Waiver, ...] = attrs.field(
        default=(), converter=_as_tuple, kw_only=True, repr=False
    )
    _zone: zoneinfo.ZoneInfo = attrs.field(init=False, eq=False, repr=False)
    _repr_pretty_ = _pretty

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickling and `copy.deepcopy`: the course rebuilt from its fields."""
        return _reduced(self)

    def __attrs_post_init__(self) -> None:
        problems: list[Problem] = []
        zone_problem = timezone_problem(self.timezone)
        if zone_problem is None:
            object.__setattr__(self, "_zone", _time.zone(self.timezone))
        else:
            problems.append(zone_problem)
        problems += _optional_text("patient", self.patient)
        if self.id is not None:
            problems += _id_problems(self.id)
        if not isinstance(self.sessions, tuple):
            problems.append(_not_a_sequence("sessions", "Session", self.sessions))
        else:
            sessions, found = _check_items(
                "sessions", Session, self.sessions, "session", number=True
            )
            problems += found
            object.__setattr__(self, "sessions", sessions)
        if not isinstance(self.integrations, tuple):
            problems.append(_not_a_sequence("integrations", "Integration", self.integrations))
        else:
            problems += _check_items(
                "integrations", Integration, self.integrations, "meeting", number=False
            )[1]
        problems += _extra_problems(self.extra)
        problems += enrolled_problems(self.enrolled)
        if not isinstance(self.waivers, tuple):
            problems.append(_not_a_sequence("waivers", "Waiver", self.waivers))
        else:
            problems += [
                Problem(("waivers", index), f"must be a Waiver, got {_type_name(item)}", "type")
                for index, item in enumerate(self.waivers)
                if not isinstance(item, Waiver)
            ]
        if problems:
            raise InputError(*problems)

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        """The course timezone as a ``zoneinfo.ZoneInfo``."""
        return self._zone

    def local(self, value: dt.datetime) -> dt.datetime:
        """``value`` as a local datetime in the course timezone.

        Args:
            value: An aware datetime.

        Returns:
            The same instant, as a plain ``datetime`` in the course zone.
        """
        return _time.to_utc(value).astimezone(self._zone)

    def to_dict(self) -> dict[str, Any]:
        """This course in the JSON course format, which `parse_course` reads back.

        Returns:
            ``{"timezone", "sessions", ...}``; ``id``, ``enrolled`` (``"YYYY-MM-DD"``),
            ``patient``, ``integrations``, ``extra`` and ``waivers`` only when set.
            ``parse_course(json.dumps(course.to_dict())) == course``.
        """
        data: dict[str, JSONValue] = {}
        if self.id is not None:
            data["id"] = self.id
        data["timezone"] = self.timezone
        if self.enrolled is not None:
            data["enrolled"] = self.enrolled.isoformat()
        if self.patient is not None:
            data["patient"] = self.patient
        data["sessions"] = [s.to_dict() for s in self.sessions]
        if self.integrations:
            data["integrations"] = [i.to_dict() for i in self.integrations]
        if self.extra:
            data["extra"] = thaw_json(self.extra)
        if self.waivers:
            data["waivers"] = [w.to_dict() for w in self.waivers]
        return data


_COURSE_SET = _slot_setters(
    Course,
    "timezone",
    "sessions",
    "patient",
    "integrations",
    "extra",
    "id",
    "_zone",
    "enrolled",
    "waivers",
)


def trusted_course(
    timezone: str,
    zone: zoneinfo.ZoneInfo,
    sessions: tuple[Session, ...],
    patient: str | None,
    id: str | None,
) -> Course:
    """A course from values the loader has already checked as ``__init__`` would.

    The course format's fast path (`kaprules.course_files`), and nothing else: ``zone`` is
    ``timezone``'s zone, the sessions have unique ids, ``patient`` and ``id`` are valid text
    (``id`` non-blank), for nothing is checked again. Not part of the public API.
    """
    self = _new(Course)
    _COURSE_SET[0](self, timezone)
    _COURSE_SET[1](self, sessions)
    _COURSE_SET[2](self, patient)
    _COURSE_SET[3](self, ())
    _COURSE_SET[4](self, _EMPTY)
    _COURSE_SET[5](self, id)
    _COURSE_SET[6](self, zone)
    _COURSE_SET[7](self, None)
    _COURSE_SET[8](self, ())
    return self


def _not_a_sequence(name: str, item: str, value: object) -> Problem:
    if isinstance(value, set | frozenset):
        return Problem(
            name,
            f"is an unordered {_type_name(value)}; give a list or tuple, so that positions "
            "(and the ids given from them) do not change from run to run",
            "type",
        )
    return Problem(name, f"must be a list or tuple of {item}, got {_type_name(value)}", "type")


def _check_items(
    name: str, kind: type[Any], items: tuple[Any, ...], each: str, *, number: bool
) -> tuple[tuple[Any, ...], list[Problem]]:
    # Items of one kind with unique ids; with `number`, an item without an id is given its
    # 1-based position.
    problems: list[Problem] = []
    kept: list[Any] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        if not isinstance(item, kind):
            problems.append(
                Problem(
                    (name, index),
                    f"must be {'an' if kind is Integration else 'a'} {kind.__name__}, got "
                    f"{_type_name(item)}",
                    "type",
                )
            )
            continue
        if number and item.id is None:
            item = attrs.evolve(item, id=str(index + 1))
        if item.id is not None:
            if item.id in seen:
                problems.append(
                    Problem(
                        (name, (index, item.id), "id"),
                        f"duplicate of {name}[{seen[item.id]}]; give each {each} its own id",
                        "duplicate",
                    )
                )
            else:
                seen[item.id] = index
        kept.append(item)
    return tuple(kept), problems
