"""A protocol file's rule entries: entries into rules, and rules back into entries.

Below the protocols that hold the rules, so that `Protocol.from_dict` and `Protocol.to_dict`
(in `kaprules.protocol`) read and write the format without a module above their own. A rule
entry names a class of kaprules', of ``rule_classes`` or of an installed plugin; its
parameters are checked against their declared bounds before the rule is built, so that
every bad parameter is named at once; it may carry its own source and rationale. The
protocol's own fields are read in `kaprules.protocol`, its versions files and JSON Schema in
`kaprules.protocol_files`, which keeps every name of the format importable.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from kaprules import _text, plugins
from kaprules.errors import Problem, ProtocolError, did_you_mean, echo, got, shown_id, unknown_field
from kaprules.report import Severity
from kaprules.rules import BaseRule, KindSet, Parameter, Role, Rule, Source, parameters_of

__all__ = [
    "RULE_FIELDS",
    "SOURCE_FIELDS",
    "given_classes",
    "holds",
    "rule_class_id",
    "rule_entry",
    "rule_from_entry",
]

RULE_FIELDS = ("id", "rule", "severity", "waivable", "parameters", "source", "rationale")


SOURCE_FIELDS = ("text", "document", "location", "note")


def rule_class_id(cls: type[Any]) -> str | None:
    """The id that names a rule class in protocol files: its ``default_id``, or its ``id``."""
    for name in ("default_id", "id"):
        value = inspect.getattr_static(cls, name, None)
        if isinstance(value, str):
            return value
    return None


def rule_entry(rule: Rule) -> dict[str, Any]:
    """A rule as an entry of a protocol file's ``rules``.

    Returns:
        Its id, class id (when not the id), severity, ``waivable`` when true, parameters,
        and its own source and rationale when it has them.
    """
    entry: dict[str, Any] = {"id": rule.id}
    class_id = rule_class_id(type(rule))
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


def rule_from_entry(
    index: int,
    item: object,
    known: Mapping[str, type[Any]],
    problems: list[Problem],
    shared: Mapping[Role, object] | None = None,
) -> Rule | None:
    """The rule of entry ``index`` of a protocol file's ``rules``, or None with its problems.

    Args:
        index: The entry's place in ``rules``, for the problems' paths.
        item: The entry.
        known: The rule classes by class id (kaprules' own and the caller's); a name not
            among them is looked for among the installed plugins.
        problems: Where each problem of the entry is added, with its path.
        shared: Quantities the protocol gives once (its phases), by role, for the rules
            that hold them.

    Returns:
        The rule, or None when the entry has a problem.
    """
    where: tuple[Any, ...] = ("rules", index)
    if not isinstance(item, Mapping):
        problems.append(Problem(where, f"must be an object{got(item)}", "type"))
        return None
    found = [
        unknown_field(where, position, key, RULE_FIELDS)
        for position, key in enumerate(item)
        if key not in RULE_FIELDS
    ]
    rule_id = item.get("id")
    if not isinstance(rule_id, str) or not rule_id:
        found.append(Problem((*where, "id"), f"is required: a rule id{got(rule_id)}"))
    class_id = item.get("rule", rule_id)
    if "rule" in item and (not isinstance(class_id, str) or not class_id):
        # Never fall back to the id: the entry would silently become another rule or none.
        found.append(
            Problem((*where, "rule"), f"must be a rule class id (a string){got(class_id)}", "type")
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
        found.append(Problem((*where, "waivable"), f"must be true or false{got(waivable)}", "type"))
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
        found.append(Problem((*where, "parameters"), f"must be an object{got(parameters)}"))
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
                    f"{got(rationale)}",
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
            Problem(here, f"must be a table {{text, document, location, note}}{got(data)}")
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
                    f"is {required}one line of at most {limit} printable characters{got(value)}",
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
        key = None if why is not None else rule_class_id(cls)
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


def _keywords(cls: type[Any]) -> frozenset[str]:
    # The keyword arguments a rule class takes (attrs aliases included).
    if attrs.has(cls):
        return frozenset(a.alias for a in attrs.fields(cls) if a.init)
    try:
        return frozenset(inspect.signature(cls).parameters)
    except (TypeError, ValueError):
        return frozenset()


def holds(cls: type[Any], role: Role) -> str | None:
    """The name of the parameter of ``cls`` that holds ``role``, or None."""
    return next((p.name for p in parameters_of(cls) if p.role == role), None)
