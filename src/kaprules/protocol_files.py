"""Protocol files: the protocol format, read into and written from `Protocol` objects.

The one home of the format: its fields, how each rule entry becomes a rule (a class of
kaprules', of ``rule_classes`` or of an installed plugin, its parameters checked against
their declared bounds, its own source and rationale), the data a protocol writes back, and
the JSON Schema generated from the rule classes. `Protocol.from_dict` and
`Protocol.to_dict` are this module's doors on the class.
"""

from __future__ import annotations

import datetime as dt
import inspect
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from kaprules import _text, plugins
from kaprules.errors import (
    Problem,
    ProtocolError,
    did_you_mean,
    echo,
    json_type,
    shown_id,
    unknown_field,
)
from kaprules.model import JSONValue
from kaprules.phases import PHASES, PhaseList
from kaprules.protocol import STATUSES, Protocol, ProtocolVersions, coherence_problems
from kaprules.report import Severity
from kaprules.rules import (
    BUILTIN_RULES,
    BaseRule,
    KindSet,
    Parameter,
    Role,
    Rule,
    Source,
    parameters_of,
)

__all__ = [
    "PROTOCOL_FIELDS",
    "RULE_FIELDS",
    "SOURCE_FIELDS",
    "VERSIONS_FIELDS",
    "given_classes",
    "joined_versions",
    "protocol_data",
    "protocol_from_data",
    "protocol_json_schema",
    "versions_from_data",
]

# A protocol's fields in its data form, in the order to_dict writes them.
PROTOCOL_FIELDS = (
    "$schema",
    "id",
    "version",
    "title",
    "status",
    "effective",
    "citation",
    "derived_from",
    "reasons",
    "phases",
    "rules",
)

VERSIONS_FIELDS = ("$schema", "id", "title", "citation", "versions")
"""The fields of a file that holds several versions of one protocol (``[[versions]]``):
each item of ``versions`` is an ordinary protocol (its ``id`` may be left out)."""


RULE_FIELDS = ("id", "rule", "severity", "waivable", "parameters", "source", "rationale")


SOURCE_FIELDS = ("text", "document", "location", "note")


def _got(value: object) -> str:
    return "" if value is None else f", got {json_type(value)}"


def _date(value: object, problems: list[Problem]) -> dt.date | None:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str) and re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            problems.append(Problem("effective", f"{value} is not a real date", "value"))
            return None
    problems.append(Problem("effective", f"must be a date YYYY-MM-DD{_got(value)}", "type"))
    return None


def _class_id(cls: type[Any]) -> str | None:
    for name in ("default_id", "id"):
        value = inspect.getattr_static(cls, name, None)
        if isinstance(value, str):
            return value
    return None


def _rule_data(rule: Rule) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": rule.id}
    class_id = _class_id(type(rule))
    if class_id is not None and class_id != rule.id:
        entry["rule"] = class_id
    entry["severity"] = Severity(rule.severity).value
    if getattr(rule, "waivable", False) is True:
        entry["waivable"] = True
    entry["parameters"] = dict(rule.parameters())  # a copy: the data is the caller's
    own = getattr(rule, "own_source", None)
    if isinstance(own, Source):
        entry["source"] = {"text": own.quote, "document": own.document}
        if own.location:
            entry["source"]["location"] = own.location
        if own.note:
            entry["source"]["note"] = own.note
    rationale = getattr(rule, "own_rationale", None)
    if isinstance(rationale, str):
        entry["rationale"] = rationale
    return entry


def _rule_from(
    index: int,
    item: object,
    known: Mapping[str, type[Any]],
    problems: list[Problem],
    shared: Mapping[Role, object] | None = None,
) -> Rule | None:
    where: tuple[Any, ...] = ("rules", index)
    if not isinstance(item, Mapping):
        problems.append(Problem(where, f"must be an object{_got(item)}", "type"))
        return None
    found = [
        unknown_field(where, position, key, RULE_FIELDS)
        for position, key in enumerate(item)
        if key not in RULE_FIELDS
    ]
    rule_id = item.get("id")
    if not isinstance(rule_id, str) or not rule_id:
        found.append(Problem((*where, "id"), f"is required: a rule id{_got(rule_id)}"))
    class_id = item.get("rule", rule_id)
    if "rule" in item and (not isinstance(class_id, str) or not class_id):
        # Never fall back to the id: the entry would silently become another rule or none.
        found.append(
            Problem((*where, "rule"), f"must be a rule class id (a string){_got(class_id)}", "type")
        )
    cls = known.get(class_id) if isinstance(class_id, str) else None
    if cls is None and isinstance(class_id, str) and class_id:
        name = "rule" if "rule" in item else "id"
        try:
            # Only now: a rule kaprules does not know may be an installed plugin's.
            cls = plugins.load_rule_class(class_id)
        except ProtocolError as exc:
            found += [p.within(*where, name) for p in exc.problems]
        else:
            if cls is None:
                names = [*known, *(p.name for p in plugins.installed_plugins())]
                found.append(
                    Problem(
                        (*where, name),
                        f"unknown rule {echo(class_id)}"
                        + (
                            did_you_mean(class_id, names)
                            or "; pass its class in rule_classes, or install its plugin"
                        ),
                        "unknown-rule",
                    )
                )
    severity = item.get("severity", "error")
    if severity not in [s.value for s in Severity]:
        choices = ", ".join(repr(s.value) for s in Severity)
        found.append(Problem((*where, "severity"), f"must be one of {choices}", "value"))
    waivable = item.get("waivable", False)
    if not isinstance(waivable, bool):
        found.append(
            Problem((*where, "waivable"), f"must be true or false{_got(waivable)}", "type")
        )
    elif waivable and cls is not None and "waivable" not in _keywords(cls):
        found.append(
            Problem(
                (*where, "waivable"),
                f"{cls.__name__} takes no waivable (rules built on BaseRule do)",
                "value",
            )
        )
    parameters = item.get("parameters", {})
    if not isinstance(parameters, Mapping):
        found.append(Problem((*where, "parameters"), f"must be an object{_got(parameters)}"))
    elif cls is not None:
        declared = {p.name: p for p in parameters_of(cls)}
        allowed = tuple(declared)
        for position, name in enumerate(parameters):
            if name in declared:
                found += _value_problems(where, declared[name], parameters[name], cls)
            else:
                hint = did_you_mean(name, allowed) if isinstance(name, str) else ""
                shown = name if hint else f"<key {position + 1}>"
                found.append(
                    Problem(
                        (*where, "parameters", shown),
                        "unknown parameter"
                        + (hint or f"; {cls.__name__} takes {', '.join(allowed) or 'none'}"),
                        "unknown-parameter",
                    )
                )
    if cls is not None and isinstance(rule_id, str) and rule_id and not _text.is_id(rule_id):
        # As the schema states it; a name no class has is already an unknown rule.
        found.append(
            Problem(
                (*where, "id"),
                "must be a kebab-case id (lower-case letters, digits, '-', '.', '_'; at most 64 "
                f"characters), got {echo(rule_id)}",
                "value",
            )
        )
    documentation = _documentation(where, item, cls, found)
    problems += found
    if found or cls is None:
        return None
    keywords: dict[str, Any] = {**parameters, **documentation, "severity": severity}
    if waivable:
        keywords["waivable"] = True
    for taken in parameters_of(cls):
        # A quantity the protocol gives once (its phases) fills the rules that hold it.
        role = taken.role
        if not shared or role is None or role not in shared:
            continue
        if taken.name in parameters:
            # Both would be silently one: the rule's own would win over the file's.
            problems.append(
                Problem(
                    (*where, "parameters", taken.name),
                    f"the protocol gives {taken.name} at the top of the file; give them once, "
                    f"there, and leave them out of each rule",
                    "value",
                )
            )
            return None
        keywords[taken.name] = shared[role]
    if class_id != rule_id or _takes_id(cls):
        keywords["id"] = rule_id
    try:
        rule: Rule = cls(**keywords)
    except ProtocolError as exc:
        for p in exc.problems:
            field = p.path[1] if len(p.path) > 1 else None
            path = (
                (*where, field)
                if field in ("id", "severity")
                else (*where, "parameters", *p.path[1:])
            )
            problems.append(Problem(path, p.what, p.code))
        return None
    except Exception as exc:  # a rule class of someone else's may raise anything
        # Named by its entry point when it is a plugin's; its text read as it allows.
        plugin = plugins.plugin_of(cls)
        origin = f"{plugin.label}: " if plugin is not None else ""
        problems.append(Problem(where, f"{origin}cannot be built: {plugins.raised(exc)}", "value"))
        return None
    return rule


def _value_problems(
    where: tuple[Any, ...], declared: Parameter, value: object, cls: type[Any]
) -> list[Problem]:
    # Each value checked against its declared bounds before the rule is built, so that
    # every bad parameter of a rule is named at once (a constructor stops at the first).
    if declared.check is None:
        return []
    converter = None
    if attrs.has(cls):
        converter = attrs.fields_dict(cls)[_field_name(cls, declared.name)].converter
    try:
        converted = converter(value) if callable(converter) else value
    except Exception:  # a converter of a user's rule may raise anything
        converted = value
    what = declared.check.problem(converted)
    if what is None:
        return []
    code = "value" if isinstance(declared.check, KindSet) else "range"
    return [Problem((*where, "parameters", declared.name), what, code)]


def _field_name(cls: type[Any], alias: str) -> str:
    return str(next(a.name for a in attrs.fields(cls) if a.alias == alias))


def _documentation(
    where: tuple[Any, ...], item: Mapping[str, Any], cls: type[Any] | None, found: list[Problem]
) -> dict[str, Any]:
    """A rule entry's own ``source`` and ``rationale``, as keywords of its class."""
    keywords: dict[str, Any] = {}
    if "source" not in item and "rationale" not in item:
        return keywords
    if cls is not None and not (isinstance(cls, type) and issubclass(cls, BaseRule)):
        found.append(
            Problem(
                where,
                f"{cls.__name__} takes no source or rationale (only rules built on BaseRule do)",
                "value",
            )
        )
        return keywords
    if "rationale" in item:
        rationale = item["rationale"]
        if _text_problem(rationale, _text.RATIONALE_LIMIT):
            found.append(
                Problem(
                    (*where, "rationale"),
                    f"must be one line of at most {_text.RATIONALE_LIMIT} printable characters"
                    f"{_got(rationale)}",
                    "value",
                )
            )
        else:
            keywords["rationale"] = rationale
    if "source" in item:
        keywords["source"] = _source(where, item["source"], found)
    return keywords


def _source(where: tuple[Any, ...], data: object, found: list[Problem]) -> Source | None:
    here = (*where, "source")
    if not isinstance(data, Mapping):
        found.append(
            Problem(here, f"must be a table {{text, document, location, note}}{_got(data)}")
        )
        return None
    before = len(found)
    found += [
        unknown_field(here, position, key, SOURCE_FIELDS)
        for position, key in enumerate(data)
        if key not in SOURCE_FIELDS
    ]
    for name in SOURCE_FIELDS:
        value = data.get(name)
        if (value is not None or name == "text") and _text_problem(value, _text.LINE_LIMIT):
            required = "required: " if name == "text" else ""
            limit = _text.LINE_LIMIT
            found.append(
                Problem(
                    (*here, name),
                    f"is {required}one line of at most {limit} printable characters{_got(value)}",
                    "value" if value is not None else "missing",
                )
            )
    if len(found) > before:
        return None
    return Source(
        data["text"],
        data.get("document") or "the clinic's protocol",
        data.get("location") or "",
        data.get("note") or "",
    )


def _text_problem(value: object, limit: int) -> bool:
    # The loader's rule for a line of text, which the schema states too (_text.line_schema).
    return not _text.is_line(value, limit)


def given_classes(rule_classes: Iterable[type[Any]] | None) -> dict[str, type[Any]]:
    """``rule_classes`` by class id; each item that is not a rule class is a problem."""
    if rule_classes is None:
        return {}
    if isinstance(rule_classes, str | bytes | Mapping) or not isinstance(rule_classes, Iterable):
        raise ProtocolError(
            Problem(
                "rule_classes",
                f"must be an iterable of rule classes, got {type(rule_classes).__name__}",
                "type",
            )
        )
    known: dict[str, type[Any]] = {}
    problems: list[Problem] = []
    for index, cls in enumerate(rule_classes):
        why = plugins.class_problem(cls)
        key = None if why is not None else _class_id(cls)
        if why is None and key is None:
            why = f"{shown_id(cls.__name__)} has no class id or default_id"
        if why is not None:
            problems.append(
                Problem(("rule_classes", index), f"is not a rule class: {why}", "interface")
            )
        elif key is not None:
            known[key] = cls
    if problems:
        raise ProtocolError(*problems)
    return known


def _takes_id(cls: type[Any]) -> bool:
    return attrs.has(cls) and any(a.alias == "id" and a.init for a in attrs.fields(cls))


def protocol_json_schema(rule_classes: Iterable[type[Any]] = ()) -> dict[str, Any]:
    """The JSON Schema of protocol files, generated from the rule classes themselves.

    Each rule class contributes the parameters it declares (`parameters_of`): names,
    types and bounds; roles give the coherence the loader checks beyond the schema. The
    shipped ``protocol.schema.json`` is this schema for kaprules' own rules (a test holds
    them equal).

    Args:
        rule_classes: Classes of your own rules, to include beside kaprules' own.

    Returns:
        The schema (JSON Schema draft 2020-12) as a dict.
    """
    classes = dict(BUILTIN_RULES)
    for cls in rule_classes:
        key = _class_id(cls)
        if key is not None:
            classes[key] = cls
    per_rule: list[dict[str, Any]] = []
    couplings: list[str] = []
    held: dict[Role, list[str]] = {}
    for key, cls in classes.items():
        declared = parameters_of(cls)
        parameters = {
            "type": "object",
            "properties": {p.name: p.json_schema() for p in declared},
            "additionalProperties": False,
        }
        then = {"properties": {"parameters": parameters}}
        per_rule.append(
            {"if": {"properties": {"rule": {"const": key}}, "required": ["rule"]}, "then": then}
        )
        per_rule.append(
            {
                "if": {"properties": {"id": {"const": key}}, "not": {"required": ["rule"]}},
                "then": then,
            }
        )
        for p in declared:
            if p.role is not None:
                held.setdefault(p.role, []).append(f"{key}.{p.name}")
    for key, cls in classes.items():
        for p in parameters_of(cls):
            if p.at_most is not None and held.get(p.at_most.role):
                couplings.append(f"{key}.{p.name} <= {held[p.at_most.role][0]}")
    couplings = [" = ".join(names) for names in held.values() if len(names) > 1] + couplings
    # The loader's rules for text, from the same definitions (kaprules._text).
    text = _text.line_schema(_text.LINE_LIMIT)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "kaprules protocol file",
        "description": "A clinic's protocol as read by kaprules.load_protocol: TOML or JSON (in "
        "TOML, effective may be a TOML date). Generated from the rule classes. Beyond this "
        "schema the loader also checks that rule ids are unique, that parameters of coupled "
        f"rules agree ({'; '.join(couplings)}), that no protocol claims a built-in protocol's "
        "id and version with other rules, and that effective is a real date. Text is one "
        "line of printable characters, not only spaces; the loader also refuses what no "
        "portable pattern names (unassigned code points, lone surrogates).",
        "type": "object",
        "properties": {
            "$schema": {
                "description": "Optional: where this schema lives, for editors.",
                "type": "string",
            },
            "id": {"description": "The protocol's id, such as lakeside-kap.", **text},
            "version": {
                "description": "Its version: change it whenever a rule, parameter or severity "
                "changes. A whole number is read as text.",
                **text,
                "type": ["string", "integer"],
            },
            "title": {"description": "Optional title for people.", **text},
            "status": {
                "description": "Optional: draft, active or retired.",
                "enum": list(STATUSES),
            },
            "effective": {
                "description": "Optional: the date from which the clinic applies the protocol, "
                "YYYY-MM-DD.",
                "type": "string",
                "pattern": _text.whole("[0-9]{4}-[0-9]{2}-[0-9]{2}"),
            },
            "citation": {
                "description": "Optional: where the protocol's requirements come from.",
                **text,
            },
            "derived_from": {
                "description": "Set by kaprules for a protocol derived without a name of its "
                "own: the protocol it came from.",
                "type": "object",
                "properties": {
                    "id": {"type": "string", "minLength": 1},
                    "version": {"type": "string", "minLength": 1},
                },
                "required": ["id", "version"],
                "additionalProperties": False,
            },
            "reasons": {
                "description": "Optional: waiver reason codes of the clinic's own (kebab-case), "
                "each with its meaning, beside those every protocol accepts.",
                "type": "object",
                "propertyNames": {"pattern": "^[a-z0-9]+(-[a-z0-9]+)*$", "maxLength": 64},
                "additionalProperties": {**text},
            },
            "phases": {
                **PhaseList().json_schema(),
                "description": "Optional: the protocol's phases, in week order, for every rule "
                "that reads them (weekly-cap, weekly-target, overdue, min-gap) and does not "
                "give its own.",
            },
            "rules": {
                "description": "The rules, in the order their findings are listed.",
                "type": "array",
                "items": {"$ref": "#/$defs/rule"},
            },
        },
        "required": ["id", "version", "rules"],
        "additionalProperties": False,
        "$defs": {
            "rule": {
                "type": "object",
                "properties": {
                    "id": {
                        "description": "The rule's id, unique in the protocol, kebab-case. For "
                        "a built-in rule, its id names its class unless rule is given.",
                        **_text.id_schema(),
                    },
                    "rule": {
                        "description": "Optional: the rule's class id, when id is not it (two "
                        "escort rules: escort and escort-booster, both rule = escort).",
                        "type": "string",
                        "minLength": 1,
                    },
                    "severity": {
                        "description": "error (the default), warning or info.",
                        "enum": [s.value for s in Severity],
                    },
                    "waivable": {
                        "description": "Whether a clinician's waiver may cover the rule's "
                        "findings (false by default).",
                        "type": "boolean",
                    },
                    "parameters": {
                        "description": "The rule's parameters; the defaults for those left out.",
                        "type": "object",
                    },
                    "source": {
                        "description": "Optional: the clinic's own source for this rule, "
                        "shown instead of the one its class cites.",
                        "type": "object",
                        "properties": {
                            "text": {"description": "The sentence, word for word.", **text},
                            "document": {"description": "The document quoted.", **text},
                            "location": {"description": "Where it stands in it.", **text},
                            "note": {
                                "description": "How the rule reads the text, where it does "
                                "not say exactly what the text says.",
                                **text,
                            },
                        },
                        "required": ["text"],
                        "additionalProperties": False,
                    },
                    "rationale": {
                        "description": "Optional: the clinic's own rationale for this rule.",
                        **_text.line_schema(_text.RATIONALE_LIMIT),
                    },
                },
                "required": ["id"],
                "additionalProperties": False,
                "allOf": per_rule,
            },
        },
    }


def protocol_from_data(
    data: Mapping[str, Any],
    *,
    rule_classes: Iterable[type[Any]] | None = None,
    build: Callable[..., Protocol] = Protocol,
) -> Protocol:
    """A protocol from protocol data; see [`Protocol.from_dict`][kaprules.Protocol.from_dict].

    Args:
        data: Protocol data, from JSON or TOML.
        rule_classes: Classes of your own rules.
        build: The class to build (a subclass of `Protocol` given to ``from_dict``).

    Returns:
        The protocol.

    Raises:
        ProtocolError: Every problem, each with its path.
    """
    known: dict[str, type[Any]] = dict(BUILTIN_RULES)
    known.update(given_classes(rule_classes))
    if not isinstance(data, Mapping):
        raise ProtocolError(f"protocol data must be an object, got {json_type(data)}")
    problems: list[Problem] = []
    for position, key in enumerate(data):
        if key not in PROTOCOL_FIELDS:
            problems.append(unknown_field((), position, key, PROTOCOL_FIELDS))
    fields: dict[str, Any] = {}
    for name in ("id", "version"):
        value = data.get(name)
        if name == "version" and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not value.strip():
            problems.append(Problem(name, f"is required: a non-empty string{_got(value)}"))
        fields[name] = value
    for name in ("title", "status", "citation"):
        if name in data:
            fields[name] = data[name]
    if "effective" in data:
        fields["effective"] = _date(data["effective"], problems)
    if "derived_from" in data:
        fields["derived_from"] = data["derived_from"]
    if "reasons" in data:
        reasons = data["reasons"]
        if not isinstance(reasons, Mapping):
            problems.append(Problem("reasons", f"must be a table of codes{_got(reasons)}"))
        else:
            fields["reasons"] = dict(reasons)
    shared: dict[Role, object] = {}
    if "phases" in data:
        what = PhaseList().problem(data["phases"])
        if what is not None:
            problems.append(Problem("phases", what, "range"))
        else:
            shared[PHASES] = data["phases"]
    raw_rules = data.get("rules")
    rules: list[Any] = []
    if not isinstance(raw_rules, list):
        problems.append(Problem("rules", f"is required: a list of rules{_got(raw_rules)}"))
    else:
        built: list[int] = []
        for index, item in enumerate(raw_rules):
            rule = _rule_from(index, item, known, problems, shared)
            if rule is not None:
                rules.append(rule)
                built.append(index)
        if problems:
            # Every problem in one run: the rules that could be built are checked for
            # coherence too, under their places in the file.
            problems += coherence_problems(tuple(rules), tuple(built))
    if shared and not problems and not any(_holds(type(r), PHASES) for r in rules):
        problems.append(
            Problem(
                "phases",
                "no rule of the protocol reads phases; add weekly-cap, weekly-target, overdue "
                "or min-gap, or leave phases out",
                "value",
            )
        )
    if problems:
        raise ProtocolError(*problems)
    return build(fields.pop("id"), fields.pop("version"), rules, **fields)


def versions_from_data(
    data: Mapping[str, Any], *, rule_classes: Iterable[type[Any]] | None = None
) -> ProtocolVersions:
    """A file of several versions (``[[versions]]``) as `ProtocolVersions`.

    Args:
        data: The file's data: ``id`` and ``versions``, each an ordinary protocol.
        rule_classes: Classes of your own rules.

    Returns:
        The versions.

    Raises:
        ProtocolError: Every problem, each with its path (``versions[1].effective``).
    """
    problems = [
        unknown_field((), position, key, VERSIONS_FIELDS)
        for position, key in enumerate(data)
        if key not in VERSIONS_FIELDS
    ]
    items = data.get("versions")
    if not isinstance(items, list):
        problems.append(Problem("versions", f"must be a list of protocols{_got(items)}"))
        raise ProtocolError(*problems)
    if not items:
        problems.append(Problem("versions", "must hold at least one version", "value"))
        raise ProtocolError(*problems)
    built: list[Protocol] = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            problems.append(Problem(("versions", index), f"must be a protocol{_got(item)}"))
            continue
        merged = {k: data[k] for k in ("id", "title", "citation") if k in data} | dict(item)
        try:
            built.append(protocol_from_data(merged, rule_classes=rule_classes))
        except ProtocolError as exc:
            problems += [p.within("versions", index) for p in exc.problems]
    if problems:
        raise ProtocolError(*problems)
    return joined_versions(built)


def joined_versions(protocols: Iterable[Protocol | ProtocolVersions]) -> ProtocolVersions:
    """Protocols (each a version, or versions already) as one `ProtocolVersions`.

    Raises:
        ProtocolError: The versions do not form one protocol (see `ProtocolVersions`).
    """
    flat: list[Protocol] = []
    for item in protocols:
        flat += item.versions if isinstance(item, ProtocolVersions) else [item]
    return ProtocolVersions(flat)


def _keywords(cls: type[Any]) -> frozenset[str]:
    # The keyword arguments a rule class takes (attrs aliases included).
    if attrs.has(cls):
        return frozenset(a.alias for a in attrs.fields(cls) if a.init)
    try:
        return frozenset(inspect.signature(cls).parameters)
    except (TypeError, ValueError):
        return frozenset()


def _holds(cls: type[Any], role: Role) -> str | None:
    """The name of the parameter of ``cls`` that holds ``role``, or None."""
    return next((p.name for p in parameters_of(cls) if p.role == role), None)


def protocol_data(protocol: Protocol) -> dict[str, Any]:
    """A protocol as plain data; see [`Protocol.to_dict`][kaprules.Protocol.to_dict].

    Args:
        protocol: The protocol.

    Returns:
        The protocol file's data.
    """
    data: dict[str, JSONValue] = {"id": protocol.id, "version": protocol.version}
    for name in ("title", "status", "citation"):
        if getattr(protocol, name) is not None:
            data[name] = getattr(protocol, name)
    if protocol.effective is not None:
        data["effective"] = protocol.effective.isoformat()
    if protocol.derived_from is not None:
        data["derived_from"] = {"id": protocol.derived_from[0], "version": protocol.derived_from[1]}
    if protocol.reasons:
        data["reasons"] = dict(protocol.reasons)
    rules = [_rule_data(r) for r in protocol.rules]
    # The phases, written once: every rule that reads them holds the same (a role).
    held = [(r, k) for r in protocol.rules if (k := _holds(type(r), PHASES)) is not None]
    if held:
        rule, key = held[0]
        phases: JSONValue = dict(rule.parameters())[key]  # type: ignore[assignment]
        data["phases"] = phases
        for entry in rules:
            parameters = entry.get("parameters", {})
            if parameters.get(key) == phases:
                del parameters[key]
    data["rules"] = rules
    return data
