"""Protocol files: the protocol format, read into and written from `Protocol` objects.

The format's door: every name of it is importable from here. A protocol's own fields are
read and written in `kaprules.protocol` (`protocol_from_data` and `protocol_data`, behind
`Protocol.from_dict` and `Protocol.to_dict`), its rule entries in `kaprules._rule_entries`
(how each entry becomes a rule: a class of kaprules', of ``rule_classes`` or of an installed
plugin, its parameters checked against their declared bounds, its own source and
rationale), both below the protocols, so that the class reads its format without a module
above its own. Here: files of several versions, and the JSON Schema generated from the rule
classes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kaprules import _text
from kaprules._rule_entries import RULE_FIELDS as RULE_FIELDS
from kaprules._rule_entries import SOURCE_FIELDS as SOURCE_FIELDS
from kaprules._rule_entries import given_classes as given_classes
from kaprules._rule_entries import rule_class_id
from kaprules.errors import Problem, ProtocolError, got, unknown_field
from kaprules.phases import PhaseList
from kaprules.protocol import PROTOCOL_FIELDS as PROTOCOL_FIELDS
from kaprules.protocol import STATUSES, Protocol, ProtocolVersions
from kaprules.protocol import protocol_data as protocol_data
from kaprules.protocol import protocol_from_data as protocol_from_data
from kaprules.report import Severity
from kaprules.rules import BUILTIN_RULES, Role, parameters_of

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

VERSIONS_FIELDS = ("$schema", "id", "title", "citation", "versions")
"""The fields of a file that holds several versions of one protocol (``[[versions]]``):
each item of ``versions`` is an ordinary protocol (its ``id`` may be left out)."""


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
        key = rule_class_id(cls)
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
        problems.append(Problem("versions", f"must be a list of protocols{got(items)}"))
        raise ProtocolError(*problems)
    if not items:
        problems.append(Problem("versions", "must hold at least one version", "value"))
        raise ProtocolError(*problems)
    built: list[Protocol] = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            problems.append(Problem(("versions", index), f"must be a protocol{got(item)}"))
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
