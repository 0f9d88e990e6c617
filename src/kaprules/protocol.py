"""Protocols: named, versioned, coherent sets of rules, and their evaluation over a course.

[`STANDARD`][kaprules.STANDARD] is kap-standard version 1, forever;
[`STANDARD_V2`][kaprules.STANDARD_V2] adds the founding document's therapist and
integration rules. A clinic owns its protocol in one of three ways: from its numbers with
[`kap_protocol`][kaprules.kap_protocol], from a protocol file
([`load_protocol`][kaprules.load_protocol]), or by deriving from a built-in with
[`update`][kaprules.Protocol.update], [`replace`][kaprules.Protocol.replace] and
[`without`][kaprules.Protocol.without]. None of these changes the original, and none can
build a protocol that contradicts itself.
"""

from __future__ import annotations

import datetime as dt
import inspect
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import attrs

from kaprules._version import __version__
from kaprules.errors import (
    InputError,
    Problem,
    ProtocolError,
    did_you_mean,
    echo,
    json_type,
    unknown_field,
)
from kaprules.model import Course, JSONValue
from kaprules.report import Finding, Report, Severity, as_severity
from kaprules.rules import (
    BUILTIN_RULES,
    FOUNDING_DOCUMENT,
    RULE_MEMBERS,
    BoosterInterval,
    Escort,
    Fasting,
    IntegrationFollowup,
    Rule,
    SessionCount,
    SessionSpacing,
    Source,
    Therapist,
    TreatmentWindow,
)
from kaprules.timeline import Timeline

__all__ = [
    "STANDARD",
    "STANDARD_V2",
    "Protocol",
    "builtin_protocols",
    "evaluate",
    "get_protocol",
    "kap_protocol",
]

Status = Literal["draft", "active", "retired"]
STATUSES: tuple[str, ...] = ("draft", "active", "retired")

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
    "rules",
)
RULE_FIELDS = ("id", "rule", "severity", "parameters")

# The built-in protocols by (id, version), filled below once they exist: no other protocol
# may claim their identity.
_BUILTINS: dict[tuple[str, str], Protocol] = {}


def _flatten(rules: Iterable[Rule | Protocol]) -> tuple[Rule, ...]:
    # Like attrs' and_(): a protocol given among rules contributes its rules, not itself.
    if isinstance(rules, str | bytes | Mapping) or not isinstance(rules, Iterable):
        return rules  # type: ignore[return-value]  # named by the post-init check
    flat: list[Rule] = []
    for item in rules:
        if isinstance(item, Protocol):
            flat.extend(item.rules)
        else:
            flat.append(item)
    return tuple(flat)


def _to_derived_from(value: object) -> object:
    if isinstance(value, Mapping):
        return (value.get("id"), value.get("version"))
    if isinstance(value, list):
        return tuple(value)
    return value


def _member_problems(index: int, rule: object) -> list[Problem]:
    """What is missing or wrong in one rule's members (the whole `Rule` interface)."""
    where = ("rules", index)
    name = type(rule).__name__
    missing = [m for m in RULE_MEMBERS if not hasattr(type(rule), m) and not hasattr(rule, m)]
    if missing or not callable(rule):
        if not callable(rule) and "__call__" not in missing:
            missing.append("__call__")
        return [
            Problem(
                where,
                f"{name} is not a rule: it lacks {', '.join(missing)} (see kaprules.Rule; "
                "inherit kaprules.BaseRule for the shared members)",
                "interface",
            )
        ]
    problems = []
    expected: dict[str, Any] = {
        "id": str,
        "severity": Severity,
        "title": str,
        "statement": str,
        "rationale": str,
        "names": str,
        "source": Source,
    }
    for member, kind in expected.items():
        try:
            value = getattr(rule, member)
        except Exception as exc:  # a user's property may raise anything
            problems.append(Problem((*where, member), f"raised {type(exc).__name__}", "interface"))
            continue
        if kind is Severity and as_severity(value) is not None:
            continue  # a plain "warning" is a severity too
        if not isinstance(value, kind) or (kind is str and not value.strip()):
            problems.append(
                Problem(
                    (*where, member),
                    f"{name}.{member} must be a non-empty {kind.__name__}, got "
                    f"{type(value).__name__}",
                    "interface",
                )
            )
    try:
        params = rule.parameters()  # type: ignore[attr-defined]
        ok = isinstance(params, Mapping) and all(isinstance(k, str) for k in params)
        json.dumps(dict(params), allow_nan=False)
    except Exception:  # a user's method may raise anything
        ok = False
    if not ok:
        problems.append(
            Problem(
                (*where, "parameters"),
                f"{name}.parameters() must return a mapping of JSON values with str keys",
                "interface",
            )
        )
    return problems


def _coherence_problems(rules: tuple[Rule, ...]) -> list[Problem]:
    """Parameters of two rules that contradict each other."""
    problems = []
    counts = [(i, r) for i, r in enumerate(rules) if isinstance(r, SessionCount)]
    for i, count in counts:
        for j, window in enumerate(rules):
            if isinstance(window, TreatmentWindow) and window.days != count.window_days:
                problems.append(
                    Problem(
                        ("rules", i, "parameters", "window_days"),
                        f"{count.id}.window_days is {count.window_days} but {window.id}.days "
                        f"(rules[{j}]) is {window.days}: both are the series' window; give "
                        f"them one value (Protocol.update changes both together)",
                        "coherence",
                    )
                )
            if isinstance(window, BoosterInterval) and window.min_induction > count.count:
                problems.append(
                    Problem(
                        ("rules", j, "parameters", "min_induction"),
                        f"{window.id}.min_induction is {window.min_induction} but "
                        f"{count.id}.count (rules[{i}]) is {count.count}: a booster could "
                        f"never follow a complete series; use at most {count.count}",
                        "coherence",
                    )
                )
    return problems


def _check_text(name: str, value: object, *, required: bool) -> list[Problem]:
    if value is None and not required:
        return []
    if not isinstance(value, str) or not value.strip():
        return [Problem(name, f"must be a non-empty string, got {type(value).__name__}", "type")]
    if len(value) > 1_000 or not value.isprintable():
        return [Problem(name, "must be one line of at most 1000 printable characters", "value")]
    return []


@attrs.frozen
class Protocol:
    """A named, versioned, coherent set of rules.

    Args:
        id (str): The protocol's id, such as ``"kap-standard"``.
        version (str): Its version. Change it whenever a rule, parameter or severity
            changes, so that a report names exactly what it checked.
        rules (Iterable[Rule | Protocol]): The rules, in the order their findings are
            listed. A protocol given here contributes its rules.
        title (str | None): A title for people.
        status (str | None): ``"draft"``, ``"active"`` or ``"retired"``.
        effective (datetime.date | None): The date from which the clinic applies it.
        citation (str | None): Where its requirements come from.
        derived_from (tuple[str, str] | None): For a protocol derived without a name of
            its own: the id and version of the named protocol it came from. Set by
            `update`, `replace` and `without`; reports show it.

    Raises:
        ProtocolError: An item is not a complete rule (each missing member is named), two
            rules share an id, parameters of two rules contradict each other, a built-in
            protocol's id and version are claimed for other rules, or a field has a wrong
            type. Every problem is listed.
    """

    id: str
    version: str
    rules: tuple[Rule, ...] = attrs.field(converter=_flatten)
    title: str | None = attrs.field(default=None, kw_only=True)
    status: Status | None = attrs.field(default=None, kw_only=True)
    effective: dt.date | None = attrs.field(default=None, kw_only=True)
    citation: str | None = attrs.field(default=None, kw_only=True)
    derived_from: tuple[str, str] | None = attrs.field(
        default=None, kw_only=True, converter=_to_derived_from
    )
    _series_length: int | None = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        problems = _check_text("id", self.id, required=True)
        problems += _check_text("version", self.version, required=True)
        problems += _check_text("title", self.title, required=False)
        problems += _check_text("citation", self.citation, required=False)
        if self.status is not None and self.status not in STATUSES:
            problems.append(
                Problem("status", f"must be one of {', '.join(map(repr, STATUSES))}", "value")
            )
        if self.effective is not None and (
            not isinstance(self.effective, dt.date) or isinstance(self.effective, dt.datetime)
        ):
            problems.append(Problem("effective", "must be a datetime.date", "type"))
        if self.derived_from is not None and not (
            isinstance(self.derived_from, tuple)
            and len(self.derived_from) == 2
            and all(isinstance(x, str) and x for x in self.derived_from)
        ):
            problems.append(Problem("derived_from", "must be an (id, version) pair", "type"))
        if not isinstance(self.rules, tuple):
            problems.append(
                Problem("rules", f"must be an iterable of rules, got {type(self.rules).__name__}")
            )
            raise ProtocolError(*problems)
        seen: dict[str, int] = {}
        for index, rule in enumerate(self.rules):
            found = _member_problems(index, rule)
            problems += found
            if found:
                continue
            if rule.id in seen:
                problems.append(
                    Problem(
                        ("rules", index, "id"),
                        f"two rules have the id {echo(rule.id)} (rules[{seen[rule.id]}] too); "
                        "use Protocol.replace to swap a rule, or give the second its own id=",
                        "duplicate",
                    )
                )
            seen.setdefault(rule.id, index)
        if not problems:
            problems += _coherence_problems(self.rules)
        builtin = _BUILTINS.get((self.id, self.version))
        if not problems and builtin is not None and builtin.rules != self.rules:
            problems.append(
                Problem(
                    "id",
                    f"{self.id} version {self.version} is a built-in protocol with other "
                    "rules; give your protocol its own id and version",
                    "identity",
                )
            )
        if problems:
            raise ProtocolError(*problems)
        length = next((r.count for r in self.rules if isinstance(r, SessionCount)), None)
        object.__setattr__(self, "_series_length", length)

    @property
    def rule_ids(self) -> tuple[str, ...]:
        """The ids of the rules, in order."""
        return tuple(r.id for r in self.rules)

    @property
    def series_length(self) -> int | None:
        """How many induction sessions complete the series: its `SessionCount`'s ``count``."""
        return self._series_length

    def rule(self, rule_id: str) -> Rule:
        """The rule with id ``rule_id``.

        Args:
            rule_id: A rule id, such as ``"fasting"``.

        Returns:
            The rule.

        Raises:
            ProtocolError: The protocol has no such rule (with the closest id).
        """
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise ProtocolError(self._unknown(rule_id))

    def replace(self, *rules: Rule, id: str | None = None, version: str | None = None) -> Protocol:
        """A new protocol where each given rule takes the place of the rule with its id.

        A rule whose id the protocol does not have is appended.

        Args:
            *rules: The new rules.
            id: The new protocol's id.
            version: The new protocol's version.

        Returns:
            The new protocol; this one is unchanged. Without ``id`` and ``version`` and with
            a change, the result is an unnamed derivation (see
            [`update`][kaprules.Protocol.update]).
        """
        given = {r.id: r for r in rules}
        kept = [given.pop(r.id, r) for r in self.rules]
        return self._derive((*kept, *given.values()), id, version)

    def without(
        self, *rule_ids: str, id: str | None = None, version: str | None = None
    ) -> Protocol:
        """A new protocol without the rules with the given ids.

        Args:
            *rule_ids: The ids to drop.
            id: The new protocol's id.
            version: The new protocol's version.

        Returns:
            The new protocol; this one is unchanged. Without ``id`` and ``version``, the
            result is an unnamed derivation (see [`update`][kaprules.Protocol.update]).

        Raises:
            ProtocolError: The protocol has no rule with one of the ids.
        """
        for rule_id in rule_ids:
            if rule_id not in self.rule_ids:
                raise ProtocolError(self._unknown(rule_id))
        return self._derive(tuple(r for r in self.rules if r.id not in rule_ids), id, version)

    def update(self, rule_id: str, /, **changes: Any) -> Protocol:
        """A new protocol with named parameters of one rule changed, the rest kept.

        Coupled parameters stay together: ``session-count.window_days`` and
        ``treatment-window.days`` are one window, so changing either changes the other
        where it held the same value; changing ``session-count.count`` changes
        ``booster-interval.min_induction`` where it equalled the old count (a booster
        follows the full series).

        The result is an unnamed derivation: its id is this protocol's id with
        ``-derived`` (kept if already derived), its version this version plus ``+`` and a
        digest of its rules, and ``derived_from`` names the protocol it came from, so a
        report never claims the original's identity. Name it with
        ``.replace(id=..., version=...)``.

        Args:
            rule_id: The id of the rule to change.
            **changes: Parameters of the rule's class (``severity`` and ``id`` too).

        Returns:
            The new protocol; this one is unchanged.

        Raises:
            ProtocolError: No rule has that id, a parameter is unknown (with the closest
                name), a value is out of range, or the result contradicts itself.
        """
        rule = self.rule(rule_id)
        allowed = (*_parameter_names(type(rule)), "severity", "id")
        unknown = [
            Problem(
                (rule_id, name),
                "unknown parameter" + did_you_mean(name, allowed),
                "unknown-parameter",
            )
            for name in changes
            if name not in allowed
        ]
        if unknown:
            raise ProtocolError(*unknown)
        if not attrs.has(type(rule)):
            raise ProtocolError(
                f"{rule_id}: update needs an attrs class; build the rule anew and use replace"
            )
        try:
            changed = attrs.evolve(rule, **changes)  # type: ignore[misc]
        except ProtocolError as exc:
            raise ProtocolError(*(_under_rule(p, rule_id) for p in exc.problems)) from None
        rules = []
        for other in self.rules:
            if other is rule:
                rules.append(changed)
                continue
            for source, param, target, follower in _COUPLED:
                if (
                    isinstance(rule, source)
                    and isinstance(other, target)
                    and param in changes
                    and getattr(other, follower) == getattr(rule, param)
                ):
                    other = attrs.evolve(other, **{follower: changes[param]})
            rules.append(other)
        return self._derive(tuple(rules), None, None)

    def evaluate(self, course: Course, *, as_of: dt.datetime | dt.date | None = None) -> Report:
        """Evaluate this protocol on a course; see [`evaluate`][kaprules.evaluate]."""
        return evaluate(course, self, as_of=as_of)

    def to_dict(self) -> dict[str, Any]:
        """This protocol as plain data: the protocol file format, as JSON.

        Returns:
            ``{"id", "version", "rules": [{"id", "severity", "parameters"}]}``, with
            ``title``, ``status``, ``effective``, ``citation`` and ``derived_from`` when
            set, and a rule's ``rule`` (its class's id) when its id is not the class's.
            [`from_dict`][kaprules.Protocol.from_dict] builds an equal protocol from it.
        """
        data: dict[str, JSONValue] = {"id": self.id, "version": self.version}
        for name in ("title", "status", "citation"):
            if getattr(self, name) is not None:
                data[name] = getattr(self, name)
        if self.effective is not None:
            data["effective"] = self.effective.isoformat()
        if self.derived_from is not None:
            data["derived_from"] = {"id": self.derived_from[0], "version": self.derived_from[1]}
        data["rules"] = [_rule_data(r) for r in self.rules]
        return data

    def to_toml(self) -> str:
        """This protocol as a TOML protocol file, read back by `load_protocol`.

        Returns:
            TOML text: the fields of [`to_dict`][kaprules.Protocol.to_dict], one
            ``[[rules]]`` table per rule.
        """
        from kaprules import _toml

        return _toml.protocol_toml(self.to_dict())

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, rule_classes: Iterable[type[Any]] = ()
    ) -> Protocol:
        """Build a protocol from protocol data (the form of [`to_dict`][kaprules.Protocol.to_dict]).

        A rule entry's ``rule`` names its class (default: its ``id``); ``severity``
        defaults to ``"error"`` and ``parameters`` to none. ``version`` may be a whole
        number (TOML ``version = 2``), read as text; ``effective`` a date or
        ``YYYY-MM-DD``.

        Args:
            data: Protocol data, from JSON or TOML.
            rule_classes: Classes of your own rules, found by their ``default_id`` (or class
                ``id``). Each is built as ``cls(**parameters, severity=severity)``.
                kaprules' own rules are known.

        Returns:
            The protocol.

        Raises:
            ProtocolError: Every problem, each with its path, such as
                ``rules[3].parameters.hour: unknown parameter; did you mean 'hours'?``.
        """
        known: dict[str, type[Any]] = dict(BUILTIN_RULES)
        for c in rule_classes:
            key = _class_id(c)
            if key is None:
                raise ProtocolError(f"rule class {c.__name__} has no class id or default_id")
            known[key] = c
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
        raw_rules = data.get("rules")
        rules: list[Any] = []
        if not isinstance(raw_rules, list):
            problems.append(Problem("rules", f"is required: a list of rules{_got(raw_rules)}"))
        else:
            for index, item in enumerate(raw_rules):
                rule = _rule_from(index, item, known, problems)
                if rule is not None:
                    rules.append(rule)
        if problems:
            raise ProtocolError(*problems)
        return cls(fields.pop("id"), fields.pop("version"), rules, **fields)

    def _derive(self, rules: tuple[Rule, ...], id: str | None, version: str | None) -> Protocol:
        if id is not None or version is not None:
            return Protocol(
                self.id if id is None else id,
                self.version if version is None else version,
                rules,
                citation=self.citation,
            )
        if tuple(rules) == self.rules:
            return self
        base = self.derived_from or (self.id, self.version)
        derived_id = self.id if self.derived_from else f"{self.id}-derived"
        draft = Protocol(derived_id, base[1], rules, citation=self.citation, derived_from=base)
        import hashlib  # only derived protocols need it: start-up does not pay for it

        digest = hashlib.sha256(
            json.dumps(draft.to_dict()["rules"], sort_keys=True).encode()
        ).hexdigest()
        return attrs.evolve(draft, version=f"{base[1]}+{digest[:8]}")

    def _unknown(self, rule_id: str) -> str:
        known = ", ".join(self.rule_ids)
        hint = did_you_mean(rule_id, self.rule_ids)
        return f"protocol {echo(self.id)} has no rule {echo(rule_id)}{hint} (its rules: {known})"


# (rule class, parameter, rule class, parameter that follows it in update)
_COUPLED: tuple[tuple[type[Any], str, type[Any], str], ...] = (
    (SessionCount, "window_days", TreatmentWindow, "days"),
    (TreatmentWindow, "days", SessionCount, "window_days"),
    (SessionCount, "count", BoosterInterval, "min_induction"),
)


def _under_rule(problem: Problem, rule_id: str) -> Problem:
    # A rule's own problems start with its class name; name the rule by id instead.
    return Problem((rule_id, *problem.path[1:]), problem.what, problem.code)


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


def _parameter_names(cls: type[Any]) -> tuple[str, ...]:
    """The parameters a rule class takes: its keyword arguments but ``id`` and ``severity``.

    Args:
        cls: A rule class.

    Returns:
        The parameter names.
    """
    if attrs.has(cls):
        names = [a.alias for a in attrs.fields(cls) if a.init]
    else:
        try:
            names = list(inspect.signature(cls).parameters)
        except (TypeError, ValueError):
            names = []
    return tuple(n for n in names if n not in ("id", "severity", "self"))


def _rule_data(rule: Rule) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": rule.id}
    class_id = _class_id(type(rule))
    if class_id is not None and class_id != rule.id:
        entry["rule"] = class_id
    entry["severity"] = Severity(rule.severity).value
    entry["parameters"] = dict(rule.parameters())  # a copy: the data is the caller's
    return entry


def _rule_from(
    index: int, item: object, known: Mapping[str, type[Any]], problems: list[Problem]
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
    cls = known.get(class_id) if isinstance(class_id, str) else None
    if cls is None and isinstance(class_id, str) and class_id:
        name = "rule" if "rule" in item else "id"
        found.append(
            Problem(
                (*where, name),
                f"unknown rule {echo(class_id)}"
                + (did_you_mean(class_id, known) or "; pass its class in rule_classes"),
                "unknown-rule",
            )
        )
    severity = item.get("severity", "error")
    if severity not in [s.value for s in Severity]:
        choices = ", ".join(repr(s.value) for s in Severity)
        found.append(Problem((*where, "severity"), f"must be one of {choices}", "value"))
    parameters = item.get("parameters", {})
    if not isinstance(parameters, Mapping):
        found.append(Problem((*where, "parameters"), f"must be an object{_got(parameters)}"))
    elif cls is not None:
        allowed = _parameter_names(cls)
        for position, name in enumerate(parameters):
            if name not in allowed:
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
    problems += found
    if found or cls is None:
        return None
    keywords: dict[str, Any] = {**parameters, "severity": severity}
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
    except (TypeError, ValueError) as exc:
        problems.append(Problem(where, f"cannot be built: {echo(str(exc), 200)}", "value"))
        return None
    return rule


def _takes_id(cls: type[Any]) -> bool:
    return attrs.has(cls) and any(a.alias == "id" and a.init for a in attrs.fields(cls))


STANDARD = Protocol(
    "kap-standard",
    "1",
    (SessionCount(), TreatmentWindow(), SessionSpacing(), Fasting(), Escort(), BoosterInterval()),
    title="The standard KAP protocol of the founding document",
    citation=FOUNDING_DOCUMENT,
)
"""kap-standard version 1: the standard protocol of the founding document. It never changes."""

STANDARD_V2 = Protocol(
    "kap-standard",
    "2",
    (*STANDARD.rules, Therapist(), IntegrationFollowup()),
    title="The standard KAP protocol, with therapist and integration rules",
    citation=FOUNDING_DOCUMENT,
)
"""kap-standard version 2: version 1's six rules, then `therapist-present` and
`integration-followup`, the founding document's other two requirements."""

_BUILTINS.update({(p.id, p.version): p for p in (STANDARD, STANDARD_V2)})


def builtin_protocols() -> tuple[Protocol, ...]:
    """Every built-in protocol, oldest first.

    Returns:
        kap-standard versions 1 and 2.
    """
    return tuple(_BUILTINS.values())


def get_protocol(name: str, version: str | None = None) -> Protocol:
    """A built-in protocol by name and version (``get_protocol("kap-standard", "2")``).

    Args:
        name: The protocol id, such as ``"kap-standard"``.
        version: The version; the newest when None. ``"kap-standard@2"`` may also be
            given whole as ``name``.

    Returns:
        The protocol.

    Raises:
        ProtocolError: No built-in protocol has that name and version.
    """
    if version is None and "@" in name:
        name, version = name.split("@", 1)
    matches = [p for (pid, _), p in _BUILTINS.items() if pid == name]
    if not matches:
        ids = sorted({pid for pid, _ in _BUILTINS})
        raise ProtocolError(
            f"no built-in protocol {echo(name)}{did_you_mean(name, ids)} (built in: "
            + ", ".join(f"{p.id}@{p.version}" for p in _BUILTINS.values())
            + ")"
        )
    if version is None:
        return matches[-1]
    for p in matches:
        if p.version == version:
            return p
    raise ProtocolError(
        f"{name} has no version {echo(version)}; versions: " + ", ".join(p.version for p in matches)
    )


def kap_protocol(
    id: str,
    version: str,
    *,
    count: int = 6,
    window_days: int = 14,
    min_days: int = 2,
    fasting_hours: float = 4,
    booster_months: int = 6,
    title: str | None = None,
    status: Status | None = None,
    effective: dt.date | None = None,
    citation: str | None = None,
) -> Protocol:
    """A coherent protocol with kap-standard v1's six rules and a clinic's numbers.

    A booster needs the full series before it, so ``booster-interval.min_induction`` is
    ``count``; the series' window is ``window_days`` in both rules that read it.

    Args:
        id: The protocol's id.
        version: Its version.
        count: Induction sessions in the series.
        window_days: The series' window, in local calendar days.
        min_days: The fewest local calendar days between adjacent sessions.
        fasting_hours: The shortest fast, in hours of elapsed time.
        booster_months: The fewest calendar months before a booster.
        title: A title for people.
        status: ``"draft"``, ``"active"`` or ``"retired"``.
        effective: The date from which the clinic applies it.
        citation: Where its requirements come from.

    Returns:
        The protocol.

    Raises:
        ProtocolError: A number is out of range; every problem is listed.
    """
    problems: list[Problem] = []
    rules: list[Rule] = []
    for make in (
        lambda: SessionCount(count=count, window_days=window_days),
        lambda: TreatmentWindow(days=window_days),
        lambda: SessionSpacing(min_days=min_days),
        lambda: Fasting(hours=fasting_hours),
        lambda: Escort(),
        lambda: BoosterInterval(months=booster_months, min_induction=count),
    ):
        try:
            rules.append(make())
        except ProtocolError as exc:
            problems += exc.problems
    if problems:
        raise ProtocolError(*dict.fromkeys(problems))
    return Protocol(
        id, version, rules, title=title, status=status, effective=effective, citation=citation
    )


def evaluate(
    course: Course,
    protocol: Protocol = STANDARD,
    *,
    as_of: dt.datetime | dt.date | None = None,
) -> Report:
    """Evaluate every rule of ``protocol`` on ``course`` and collect all findings.

    Args:
        course: The course.
        protocol: The protocol; kap-standard v1 by default.
        as_of: None to treat the record as final (nothing is planned). Otherwise the
            moment of evaluation: an aware datetime (sessions starting after it are
            planned) or a date, read as a local date in the course timezone (sessions on
            later dates are planned).

    Returns:
        The report, with findings in a deterministic order.

    Raises:
        InputError: ``course`` is not a Course, or ``as_of`` is naive or of a wrong type.
    """
    _check_course(course)
    _check_protocol(protocol)
    timeline = Timeline.of(course, as_of, series_length=protocol.series_length)
    return _evaluate_timeline(timeline, protocol)


def _check_course(course: object) -> None:
    # The arguments' check of evaluate, shared by the scheduling functions.
    if not isinstance(course, Course):
        raise InputError(
            f"course: must be a Course, got {type(course).__name__}; read JSON with "
            "kaprules.parse_course or kaprules.load_course"
        )


def _check_protocol(protocol: object) -> None:
    if not isinstance(protocol, Protocol):
        raise InputError(f"protocol: must be a Protocol, got {type(protocol).__name__}")


def _evaluate_timeline(timeline: Timeline, protocol: Protocol) -> Report:
    """Evaluate ``protocol`` on a course already placed on a timeline.

    The booking check uses it to evaluate a timeline whose proposed session is planned.
    """
    return Report(
        protocol.id,
        protocol.version,
        _findings(timeline, protocol),
        None if timeline.as_of is None else timeline.as_of.isoformat(),
        __version__,
        protocol.derived_from,
    )


def _findings(timeline: Timeline, protocol: Protocol) -> tuple[Finding, ...]:
    """Every finding of ``protocol``'s rules on ``timeline``, in report order."""
    found: list[tuple[int, Finding]] = []
    for index, rule in enumerate(protocol.rules):
        for finding in rule(timeline):
            found.append((index, finding))
    if len(found) > 1:
        position = {t.id: t.position for t in timeline.sessions}

        def order(item: tuple[int, Finding]) -> tuple[Any, ...]:
            index, f = item
            places = tuple(position.get(s, -1) for s in f.sessions)
            return (places[:1] or (-1,), index, places, f.message)

        found.sort(key=order)
    return tuple(f for _, f in found)
