"""Reading and writing courses (JSON), protocols and clinic calendars (TOML or JSON).

[`parse_course`][kaprules.parse_course] and [`load_course`][kaprules.load_course] return a
[`Course`][kaprules.Course] or raise [`InputError`][kaprules.InputError] listing every
problem with its path, such as ``sessions[2] (id 's3').last_meal: unknown field; did you
mean 'last_food'?``; [`dumps`][kaprules.dumps] writes the format back.
[`load_protocol`][kaprules.load_protocol] reads a clinic's protocol file and
[`load_calendar`][kaprules.load_calendar] its calendar. Each format is described by a JSON
Schema shipped with the package ([`course_schema`][kaprules.course_schema],
[`protocol_schema`][kaprules.protocol_schema], [`calendar_schema`][kaprules.calendar_schema]).
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import IO, Any, overload

from kaprules import _fast, _time
from kaprules.clinic_calendar import ClinicCalendar, calendar_from_data
from kaprules.course_files import (
    COURSE_FIELDS,
    INTEGRATION_FIELDS,
    SESSION_FIELDS,
    VITAL_FIELDS,
    WAIVER_FIELDS,
    course_from_data,
    session_from_data,
)
from kaprules.errors import (
    InputError,
    Problem,
    ProtocolError,
    did_you_mean,
    echo,
    shown_id,
)
from kaprules.model import (
    Course,
    Session,
)
from kaprules.protocol import Protocol, ProtocolVersions, builtin_protocols, get_protocol
from kaprules.protocol_files import (
    given_classes,
    joined_versions,
    protocol_from_data,
    protocol_json_schema,
    versions_from_data,
)

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - an interpreter without orjson's wheels (PyPy)
    _orjson = None  # type: ignore[assignment]

__all__ = [
    "calendar_schema",
    "course_schema",
    "dumps",
    "load_calendar",
    "load_course",
    "load_protocol",
    "load_versions",
    "parse_calendar",
    "parse_course",
    "parse_protocol",
    "parse_session",
    "protocol_schema",
    "resolve_protocol",
]


class _Duplicate(Exception):
    pass


# Field names of both formats: a repeated key is named only when it is one of these.
_KNOWN_KEYS = frozenset(
    (
        *COURSE_FIELDS,
        *SESSION_FIELDS,
        *INTEGRATION_FIELDS,
        *VITAL_FIELDS,
        *WAIVER_FIELDS,
        "version",
        "rules",
        "parameters",
    )
)


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Duplicate(key if key in _KNOWN_KEYS else None)
            seen.add(key)
    return obj


def _reject_constant(name: str) -> Any:
    raise InputError(f"{name} is not valid JSON; give a number or leave the field out")


_SLOW: Any = object()
# orjson reserves about 13 times its input while parsing: only course-sized texts take it,
# so that a large document costs what the standard library costs (about twice its size).
_FAST_JSON_LIMIT = 64 * 1024


def _strings(document: Any) -> int:
    """How many strings (keys and values) a decoded document holds; -1 if it holds a float."""
    count = 0
    stack = [[document]]
    while stack:
        for value in stack.pop():
            kind = type(value)
            if kind is str:
                count += 1
            elif kind is dict:
                count += len(value)
                stack.append(value.values())
            elif kind is list:
                stack.append(value)
            elif kind is float:
                return -1
    return count


def _fast_json(text: str | bytes | bytearray) -> Any:
    """The document as ``json.loads`` reads it, through orjson; `_SLOW` when unsure.

    orjson keeps the last of repeated keys and reads integers past 64 bits as floats, where
    the standard library (with our hook) refuses and keeps them whole. Both are ruled out
    without a second parse: a document without floats whose strings, counted after
    decoding, account for every quote character of the text cannot have lost a key
    (each string in the text has two unescaped quotes, and a dropped key is a string).
    Anything else is read again by the standard library, which also words every error.
    """
    if _orjson is None or not _fast.ENABLED or len(text) > _FAST_JSON_LIMIT:
        return _SLOW
    try:
        document = _orjson.loads(text)
    except _orjson.JSONDecodeError:
        return _SLOW
    if type(text) is bytes and _orjson.dumps(document) == text:
        return document  # compact JSON Lines, written back byte for byte: nothing was lost
    quotes = text.count('"') if isinstance(text, str) else text.count(b'"')
    if 2 * _strings(document) != quotes:
        return _SLOW
    return document


def _json(text: str | bytes | bytearray, what: str) -> Any:
    return _decoded(text, what)[0]


def _decoded(text: str | bytes | bytearray, what: str) -> tuple[Any, bool]:
    """The JSON document, and whether orjson read it (then no lone surrogate is in it)."""
    if not isinstance(text, str | bytes | bytearray):
        raise InputError(f"expected JSON text (str or bytes), got {type(text).__name__}")
    if isinstance(text, bytes | bytearray) and text.startswith(b"\xef\xbb\xbf"):
        text = text[3:]  # a UTF-8 byte order mark, as spreadsheet exports write
    document = _fast_json(text)
    if document is not _SLOW:
        return document, True
    return _stdlib_json(text, what), False


def _stdlib_json(text: str | bytes | bytearray, what: str) -> Any:
    try:
        return json.loads(
            text, object_pairs_hook=_reject_duplicate_keys, parse_constant=_reject_constant
        )
    except _Duplicate as exc:
        # Any other key may be clinical data (a name): only known field names are echoed.
        what = (
            f"duplicate key {exc.args[0]!r} in a JSON object"
            if exc.args[0]
            else "a JSON object repeats a key"
        )
        raise InputError(Problem((), f"{what}; give each field once", "duplicate")) from None
    except json.JSONDecodeError as exc:
        raise InputError(
            f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except UnicodeDecodeError:
        raise InputError("not valid JSON: the bytes are not UTF-8, UTF-16 or UTF-32 text") from None
    except RecursionError:
        raise InputError(f"not valid JSON for {what}: nested too deeply") from None
    except ValueError as exc:  # past the integer digit limit, and the like
        if "integer string conversion" in str(exc):
            raise InputError(
                f"not usable JSON for {what}: a number has more than "
                f"{sys.get_int_max_str_digits()} digits"
            ) from None
        raise InputError(f"not valid JSON for {what}: {echo(str(exc), 120)}") from None


def parse_course(text: str | bytes | bytearray) -> Course:
    """Read a course from JSON text.

    Args:
        text: The JSON document, as text or as UTF-8 (or UTF-16/32) bytes.

    Returns:
        The course.

    Raises:
        InputError: The text is not JSON, or not a course: every problem is listed, each
            with its path (such as ``sessions[0] (id 's1').start``).
    """
    document, by_orjson = _decoded(text, "a course")
    # orjson refuses lone surrogates, in the text and in its escapes; otherwise look.
    return course_from_data(document, clean=by_orjson or _clean(text))


def parse_session(data: Mapping[str, Any] | str | bytes | bytearray) -> Session:
    """Read one session in the course format, such as a booking screen receives.

    The object is one item of a course's ``sessions`` (see the input format), read by the
    same code as a course's sessions; problems are pathed from the session itself
    (``start``, ``last_food``), not from a course.

    Args:
        data: The session as an object read from JSON (a mapping), or as JSON text (or
            UTF-8, UTF-16 or UTF-32 bytes) of one object.

    Returns:
        The session; without an ``id`` in the object, its id is None.

    Raises:
        InputError: The text is not JSON, or the object is not a session: every problem
            is listed, each with its path (such as ``last_food``).
    """
    document = _json(data, "a session") if isinstance(data, str | bytes | bytearray) else data
    return session_from_data(document)


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _clean(text: str | bytes | bytearray) -> bool:
    """Whether JSON text can hold no lone surrogate: no surrogate escape, valid Unicode."""
    if isinstance(text, str):
        return _time.valid_text(text) and _SURROGATE_ESCAPE.search(text.encode()) is None
    return _SURROGATE_ESCAPE.search(text) is None


def load_course(path: str | os.PathLike[str]) -> Course:
    """Read a course from a JSON file.

    Args:
        path: The file's path.

    Returns:
        The course.

    Raises:
        InputError: The file cannot be read, or does not hold a course.
    """
    return parse_course(_read(path, InputError))


MAX_FILE_BYTES = 64 * 1024 * 1024
"""The most bytes `load_course`, `load_protocol` and `load_calendar` read from a file (64
MiB): a device such as ``/dev/zero`` is refused instead of filling memory."""


def read_at_most(handle: IO[bytes], limit: int) -> bytes | None:
    """All of a stream's bytes if there are at most ``limit`` of them, else None.

    The one bounded read of files and standard input: an endless device such as
    ``/dev/zero`` costs ``limit + 1`` bytes, never more.

    Args:
        handle: A binary stream.
        limit: The most bytes accepted.

    Returns:
        The bytes, or None when the stream holds more.

    Raises:
        OSError: The stream cannot be read.
        ValueError: The stream is closed.
    """
    data = handle.read(limit + 1)
    return None if len(data) > limit else data


def _read(path: str | os.PathLike[str], error: type[InputError | ProtocolError]) -> bytes:
    if not isinstance(path, str | os.PathLike):
        raise error(f"expected a file path (str or os.PathLike), got {type(path).__name__}")
    shown = echo(os.fspath(path), 200)
    try:
        with open(path, "rb") as handle:
            data = read_at_most(handle, MAX_FILE_BYTES)
    except (OSError, ValueError) as exc:
        strerror = getattr(exc, "strerror", None) or "not a usable path"
        raise error(f"{shown}: cannot read: {strerror}") from None
    if data is None:
        raise error(f"{shown}: holds more than {MAX_FILE_BYTES} bytes, the limit")
    return data


def dumps(course: Course, *, indent: int | None = 2) -> str:
    """A course as JSON text in the course format, which `parse_course` reads back.

    Args:
        course: The course.
        indent: JSON indentation; None for one line.

    Returns:
        The text. ``parse_course(dumps(course)) == course``.
    """
    return json.dumps(course.to_dict(), indent=indent, ensure_ascii=False)


def _schema(name: str) -> dict[str, Any]:
    # Imported here: importlib.resources costs ~7 ms of start-up and only this needs it.
    import importlib.resources

    text = importlib.resources.files("kaprules").joinpath(name).read_text("utf-8")
    loaded: Callable[[str], dict[str, Any]] = json.loads
    return loaded(text)


def course_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the course format, as shipped with the package.

    Returns:
        The schema as a dict.
    """
    return _schema("course.schema.json")


def protocol_schema(rule_classes: Iterable[type[Any]] = ()) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the protocol file format.

    Generated from the rule classes' declared parameters (`parameters_of`): for
    kaprules' own rules it is the shipped ``protocol.schema.json``. Applies to TOML
    protocol files too, read as data (a TOML date for ``effective`` is the schema's
    ``YYYY-MM-DD`` string).

    Args:
        rule_classes: Classes of your own rules, whose parameters the schema describes too.

    Returns:
        The schema as a dict.
    """
    return protocol_json_schema(rule_classes)


# tomllib's messages that name a key: the key may be clinical data or a secret, so only
# what happened is said, with the line and column.
_TOML_KEY_MESSAGES = (
    (re.compile(r"Cannot declare .* twice"), "a table or key is declared twice"),
    (re.compile(r"Cannot (?:mutate immutable|redefine) namespace .*"), "a table is defined twice"),
    (re.compile(r"Duplicate inline table key .*"), "an inline table repeats a key"),
)
_TOML_WHERE = re.compile(r" \((?:at line \d+, column \d+|at end of document)\)$")


def _toml_reason(message: str) -> str:
    where = _TOML_WHERE.search(message)
    head = message[: where.start()] if where else message
    for pattern, reason in _TOML_KEY_MESSAGES:
        if pattern.fullmatch(head):
            head = reason
            break
    return shown_id(head, 120) + (where.group(0) if where else "")


def _document(text: str | bytes, format: str, what: str) -> Any:
    # TOML or JSON text as data; InputError for text that is neither.
    if not isinstance(text, str | bytes):
        raise InputError(f"{what} must be text (str or bytes), got {type(text).__name__}")
    if format == "json":
        return _json(text, what)
    if format != "toml":
        raise InputError(f"unknown format {echo(str(format))}; use 'toml' or 'json'")
    import tomllib

    try:
        source = text.decode("utf-8") if isinstance(text, bytes) else text
        return tomllib.loads(source)
    except UnicodeDecodeError:
        raise InputError("not valid TOML: the bytes are not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"not valid TOML: {_toml_reason(str(exc))}") from None
    except (RecursionError, ValueError, TypeError) as exc:
        raise InputError(f"not valid TOML: {type(exc).__name__}") from None


def parse_protocol(
    text: str | bytes, *, format: str = "toml", rule_classes: Iterable[type[Any]] | None = None
) -> Protocol:
    """Read a protocol from TOML or JSON text.

    Args:
        text: The protocol file's text (or UTF-8 bytes).
        format: ``"toml"`` or ``"json"``.
        rule_classes: Classes of your own rules (any iterable; None for none), as for
            [`Protocol.from_dict`][kaprules.Protocol.from_dict]; a rule named by neither
            kaprules nor these is looked for among the installed
            [rule plugins][kaprules.plugins].

    Returns:
        The protocol.

    Raises:
        ProtocolError: The text cannot be read in that format, or is not a protocol (a
            file of several versions, ``[[versions]]``, is read by `load_versions`);
            every problem is listed with its path.
    """
    found = _protocol_document(text, format, rule_classes)
    if isinstance(found, ProtocolVersions):
        raise ProtocolError(
            "versions: the file holds several versions of a protocol ([[versions]]); read "
            "it with kaprules.load_versions"
        )
    return found


def _protocol_document(
    text: str | bytes, format: str, rule_classes: Iterable[type[Any]] | None
) -> Protocol | ProtocolVersions:
    classes = given_classes(rule_classes).values()  # refused before the text is read
    try:
        data = _document(text, format, "a protocol")
    except InputError as exc:
        raise ProtocolError(*exc.problems) from None
    if isinstance(data, dict) and "versions" in data:
        return versions_from_data(data, rule_classes=classes)
    return protocol_from_data(data, rule_classes=classes)


@overload
def load_protocol(
    path: str | os.PathLike[str], /, *, rule_classes: Iterable[type[Any]] | None = None
) -> Protocol: ...


@overload
def load_protocol(
    path: str | os.PathLike[str],
    second: str | os.PathLike[str],
    /,
    *paths: str | os.PathLike[str],
    rule_classes: Iterable[type[Any]] | None = None,
) -> ProtocolVersions: ...


def load_protocol(
    *paths: str | os.PathLike[str], rule_classes: Iterable[type[Any]] | None = None
) -> Protocol | ProtocolVersions:
    """Read a protocol file: TOML (``.toml``) or JSON (any other name).

    Several paths are the versions of one protocol, each file with its own ``version``
    and ``effective`` date: they are read as `ProtocolVersions` (as `load_versions` reads
    them).

    Args:
        *paths: The file's path, or the paths of several versions' files.
        rule_classes: Classes of your own rules (any iterable; None for none), as for
            [`Protocol.from_dict`][kaprules.Protocol.from_dict]; a rule named by neither
            kaprules nor these is looked for among the installed
            [rule plugins][kaprules.plugins].

    Returns:
        The protocol; for several paths, its versions.

    Raises:
        ProtocolError: A file cannot be read or does not hold a protocol, or the files'
            versions do not form one protocol.
    """
    if len(paths) != 1:
        return load_versions(*paths, rule_classes=rule_classes)
    (path,) = paths
    classes = given_classes(rule_classes).values()  # refused before the file is read
    data = _read(path, ProtocolError)
    return parse_protocol(data, format=_format_of(path), rule_classes=classes)


def load_versions(
    *paths: str | os.PathLike[str], rule_classes: Iterable[type[Any]] | None = None
) -> ProtocolVersions:
    """Read the versions of one protocol: a file each, or one file of ``[[versions]]``.

    Args:
        *paths: The files: ordinary protocol files of one ``id`` (each with its
            ``version`` and ``effective`` date), or files of ``[[versions]]`` tables.
        rule_classes: Classes of your own rules, as for `load_protocol`.

    Returns:
        The versions, each in force from its effective date.

    Raises:
        ProtocolError: A file cannot be read or does not hold a protocol (a problem names
            its file when there are several), or the versions do not form one protocol
            (ids differ, a version or effective date repeats or is missing).
    """
    classes = given_classes(rule_classes).values()  # refused before any file is read
    if not paths:
        raise ProtocolError("load_versions needs at least one path")
    read: list[Protocol | ProtocolVersions] = []
    for path in paths:
        data = _read(path, ProtocolError)
        try:
            read.append(_protocol_document(data, _format_of(path), classes))
        except ProtocolError as exc:
            if len(paths) == 1:
                raise
            name = shown_id(os.fspath(path), 200)
            raise ProtocolError(*(p.within(name) for p in exc.problems)) from None
    return joined_versions(read)


def _format_of(path: str | os.PathLike[str]) -> str:
    return "toml" if os.fspath(path).lower().endswith(".toml") else "json"


def resolve_protocol(spec: str | Sequence[str]) -> Protocol | ProtocolVersions:
    """A protocol named as on the command line: ``NAME@VERSION`` or a protocol file's path.

    Args:
        spec: ``kap-standard@2`` (a built-in), or the path of a ``.toml`` or ``.json`` file;
            or several of these (``--protocol`` given more than once): the versions of one
            protocol.

    Returns:
        The protocol, or its versions.

    Raises:
        ProtocolError: No such built-in protocol, or the file does not hold one, or the
            versions do not form one protocol.
    """
    if not isinstance(spec, str):
        if len(spec) == 1:
            return resolve_protocol(spec[0])
        return joined_versions([resolve_protocol(one) for one in spec])
    if "@" in spec and not os.path.exists(spec):
        return get_protocol(spec)
    if not os.path.exists(spec):
        names = sorted({f"{p.id}@{p.version}" for p in builtin_protocols()})
        ids = {p.id for p in builtin_protocols()}
        if spec in ids:
            raise ProtocolError(
                f"{echo(spec)} names no version and is no file; use "
                + " or ".join(n for n in names if n.startswith(spec + "@"))
            )
        hint = did_you_mean(spec, names)
        if hint:
            raise ProtocolError(f"no protocol file {echo(spec)}{hint}")
    # One protocol judges every session whatever its effective date; a file of
    # [[versions]] is several.
    return _protocol_document(_read(spec, ProtocolError), _format_of(spec), None)


def calendar_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the clinic calendar file format, as shipped.

    Applies to TOML calendar files read as data (TOML dates and times are the schema's
    ``YYYY-MM-DD`` and ``HH:MM`` strings).

    Returns:
        The schema as a dict.
    """
    return _schema("calendar.schema.json")


def parse_calendar(text: str | bytes, *, format: str = "toml") -> ClinicCalendar:
    """Read a clinic calendar from TOML or JSON text.

    Args:
        text: The calendar file's text (or UTF-8 bytes).
        format: ``"toml"`` or ``"json"``.

    Returns:
        The calendar.

    Raises:
        InputError: The text cannot be read in that format, or is not a calendar; every
            problem is listed with its path.
    """
    return calendar_from_data(_document(text, format, "a calendar"))


def load_calendar(path: str | os.PathLike[str]) -> ClinicCalendar:
    """Read a clinic calendar file: TOML (``.toml``) or JSON (any other name).

    Args:
        path: The file's path.

    Returns:
        The calendar.

    Raises:
        InputError: The file cannot be read, or does not hold a calendar.
    """
    data = _read(path, InputError)
    format = "toml" if os.fspath(path).lower().endswith(".toml") else "json"
    return parse_calendar(data, format=format)
