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

from kaprules import plugins
from kaprules.errors import (
    Problem,
    ProtocolError,
    did_you_mean,
    echo,
    json_type,
    shown_id,
    unknown_field,
)
from kaprules.model import Course, JSONValue
from kaprules.report import Report, Severity, as_severity
from kaprules.rules import (
    BUILTIN_RULES,
    FOUNDING_DOCUMENT,
    RULE_MEMBERS,
    SERIES_LENGTH,
    BaseRule,
    BoosterInterval,
    Escort,
    Fasting,
    IntegrationFollowup,
    KindSet,
    Parameter,
    Role,
    Rule,
    SessionCount,
    SessionSpacing,
    Source,
    Therapist,
    TreatmentWindow,
    parameters_of,
)

__all__ = [
    "STANDARD",
    "STANDARD_V2",
    "Protocol",
    "builtin_protocols",
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
RULE_FIELDS = ("id", "rule", "severity", "parameters", "source", "rationale")
SOURCE_FIELDS = ("text", "document", "location")

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


def _holders(
    rules: tuple[Rule, ...], positions: tuple[int, ...] | None = None
) -> list[tuple[int, Rule, Parameter]]:
    """Every declared parameter of ``rules`` that holds a role or is bounded by one.

    ``positions`` gives each rule's index in the protocol data when some entries could not
    be built.
    """
    found = []
    for index, rule in zip(positions or range(len(rules)), rules, strict=False):
        for p in parameters_of(type(rule)):
            if p.role is not None or p.at_most is not None:
                found.append((index, rule, p))
    return found


def _coherence_problems(
    rules: tuple[Rule, ...], positions: tuple[int, ...] | None = None
) -> list[Problem]:
    """Parameters of two rules that contradict each other, as the rules declare them.

    Linear in the number of rules: each holder of a role is compared with the role's first
    holder, and each bounded parameter with it too.
    """
    problems = []
    first: dict[Role, tuple[int, Rule, Parameter]] = {}
    holders = _holders(rules, positions)
    for index, rule, p in holders:
        if p.role is None:
            continue
        if p.role not in first:
            first[p.role] = (index, rule, p)
            continue
        i, anchor, q = first[p.role]
        mine, theirs = getattr(rule, p.name), getattr(anchor, q.name)
        if mine != theirs:
            problems.append(
                Problem(
                    ("rules", i, "parameters", q.name),
                    f"{anchor.id}.{q.name} is {theirs} but {rule.id}.{p.name} (rules[{index}]) "
                    f"is {mine}: both are {p.role.meaning}; give them one value "
                    "(Protocol.update changes both together)",
                    "coherence",
                )
            )
    for index, rule, p in holders:
        if p.at_most is None or p.at_most.role not in first:
            continue
        i, anchor, q = first[p.at_most.role]
        mine, bound = getattr(rule, p.name), getattr(anchor, q.name)
        if mine > bound:
            problems.append(
                Problem(
                    ("rules", index, "parameters", p.name),
                    f"{rule.id}.{p.name} is {mine} but {anchor.id}.{q.name} (rules[{i}]) is "
                    f"{bound}: {p.at_most.why}; use at most {bound}",
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
        length = self.quantity(SERIES_LENGTH)
        object.__setattr__(self, "_series_length", None if length is None else int(length))

    @property
    def rule_ids(self) -> tuple[str, ...]:
        """The ids of the rules, in order."""
        return tuple(r.id for r in self.rules)

    def quantity(self, role: Role) -> int | float | None:
        """The value of a quantity the protocol's rules share, found by its role.

        Args:
            role: A role, such as `kaprules.SERIES_WINDOW`.

        Returns:
            The value of the first parameter holding ``role`` (all agree in a protocol),
            or None when no rule declares it.
        """
        for _, rule, p in _holders(self.rules):
            if p.role == role:
                value: int | float = getattr(rule, p.name)
                return value
        return None

    @property
    def series_length(self) -> int | None:
        """How many induction sessions complete the series: the `SERIES_LENGTH` quantity."""
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
        # Keyed by id where a rule has one; anything else is appended for the protocol's
        # own check to name.
        given: dict[object, object] = {}
        for r in rules:
            rule_id = getattr(r, "id", None)
            given[rule_id if isinstance(rule_id, str) else object()] = r
        kept = [given.pop(r.id, r) for r in self.rules]
        return self._derive((*kept, *given.values()), id, version)  # type: ignore[arg-type]

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

        Coupled parameters stay together, as the rules declare them (see
        [`Role`][kaprules.Role]): ``session-count.window_days`` and
        ``treatment-window.days`` both hold the series' window, so changing either changes
        the other where it held the same value; changing ``session-count.count`` changes
        ``booster-interval.min_induction`` (bounded by the series' length) where it
        equalled the old count (a booster follows the full series).

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
            other = _follow(rule, changes, other)
            rules.append(other)
        return self._derive(tuple(rules), None, None)

    def evaluate(self, course: Course, *, as_of: dt.datetime | dt.date | None = None) -> Report:
        """Evaluate this protocol on a course; see [`evaluate`][kaprules.evaluate]."""
        from kaprules.evaluation import evaluate  # evaluation builds on protocols

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
        cls, data: Mapping[str, Any], *, rule_classes: Iterable[type[Any]] | None = None
    ) -> Protocol:
        """Build a protocol from protocol data (the form of [`to_dict`][kaprules.Protocol.to_dict]).

        A rule entry's ``rule`` names its class (default: its ``id``); ``severity``
        defaults to ``"error"`` and ``parameters`` to none. ``version`` may be a whole
        number (TOML ``version = 2``), read as text; ``effective`` a date or
        ``YYYY-MM-DD``.

        Args:
            data: Protocol data, from JSON or TOML.
            rule_classes: Classes of your own rules (any iterable; None for none), found
                by their ``default_id`` (or class ``id``). Each is built as
                ``cls(**parameters, severity=severity)``. kaprules' own rules are known,
                and a rule named by neither is looked for among the installed
                [rule plugins][kaprules.plugins].

        Returns:
            The protocol.

        Raises:
            ProtocolError: Every problem, each with its path, such as
                ``rules[3].parameters.hour: unknown parameter; did you mean 'hours'?``;
                a plugin that cannot be imported or is not a rule class is one, naming
                its entry point. An item of ``rule_classes`` that is not a rule class is
                refused before the data is read.
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
        raw_rules = data.get("rules")
        rules: list[Any] = []
        if not isinstance(raw_rules, list):
            problems.append(Problem("rules", f"is required: a list of rules{_got(raw_rules)}"))
        else:
            built: list[int] = []
            for index, item in enumerate(raw_rules):
                rule = _rule_from(index, item, known, problems)
                if rule is not None:
                    rules.append(rule)
                    built.append(index)
            if problems:
                # Every problem in one run: the rules that could be built are checked for
                # coherence too, under their places in the file.
                problems += _coherence_problems(tuple(rules), tuple(built))
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


def _follow(rule: Rule, changes: Mapping[str, Any], other: Rule) -> Rule:
    """``other`` with the parameters that follow ``rule``'s changed roles.

    A parameter holding a changed role, or bounded by it, follows the change where it
    held the old value (the window is one; a booster follows the full series).
    """
    moved = {
        p.role: (getattr(rule, p.name), changes[p.name])
        for p in parameters_of(type(rule))
        if p.role is not None and p.name in changes
    }
    follows = {}
    for p in parameters_of(type(other)):
        role = p.role or (p.at_most.role if p.at_most else None)
        if role in moved and getattr(other, p.name) == moved[role][0]:
            follows[p.name] = moved[role][1]
    return attrs.evolve(other, **follows) if follows else other  # type: ignore[misc]


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
    """The parameters a rule class takes (see `parameters_of`)."""
    return tuple(p.name for p in parameters_of(cls))


def _rule_data(rule: Rule) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": rule.id}
    class_id = _class_id(type(rule))
    if class_id is not None and class_id != rule.id:
        entry["rule"] = class_id
    entry["severity"] = Severity(rule.severity).value
    entry["parameters"] = dict(rule.parameters())  # a copy: the data is the caller's
    own = getattr(rule, "own_source", None)
    if isinstance(own, Source):
        entry["source"] = {"text": own.quote, "document": own.document}
        if own.location:
            entry["source"]["location"] = own.location
    rationale = getattr(rule, "own_rationale", None)
    if isinstance(rationale, str):
        entry["rationale"] = rationale
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
    documentation = _documentation(where, item, cls, found)
    problems += found
    if found or cls is None:
        return None
    keywords: dict[str, Any] = {**parameters, **documentation, "severity": severity}
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
        if _text_problem(rationale, 4_000):
            found.append(
                Problem(
                    (*where, "rationale"),
                    f"must be one line of at most 4000 printable characters{_got(rationale)}",
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
        found.append(Problem(here, f"must be a table {{text, document, location}}{_got(data)}"))
        return None
    before = len(found)
    found += [
        unknown_field(here, position, key, SOURCE_FIELDS)
        for position, key in enumerate(data)
        if key not in SOURCE_FIELDS
    ]
    for name in SOURCE_FIELDS:
        value = data.get(name)
        if (value is not None or name == "text") and _text_problem(value, 1_000):
            required = "required: " if name == "text" else ""
            found.append(
                Problem(
                    (*here, name),
                    f"is {required}one line of at most 1000 printable characters{_got(value)}",
                    "value" if value is not None else "missing",
                )
            )
    if len(found) > before:
        return None
    return Source(
        data["text"],
        data.get("document") or "the clinic's protocol",
        data.get("location") or "",
    )


def _text_problem(value: object, limit: int) -> bool:
    return not (
        isinstance(value, str) and value.strip() and len(value) <= limit and value.isprintable()
    )


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
    text = {"type": "string", "minLength": 1, "maxLength": 1000}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "kaprules protocol file",
        "description": "A clinic's protocol as read by kaprules.load_protocol: TOML or JSON (in "
        "TOML, effective may be a TOML date). Generated from the rule classes. Beyond this "
        "schema the loader also checks that rule ids are unique, that parameters of coupled "
        f"rules agree ({'; '.join(couplings)}), that no protocol claims a built-in protocol's "
        "id and version with other rules, and that effective is a real date.",
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
                "type": ["string", "integer"],
                "minLength": 1,
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
                "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
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
                        "description": "The rule's id, unique in the protocol. For a built-in "
                        "rule, its id names its class unless rule is given.",
                        "type": "string",
                        "minLength": 1,
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
                        },
                        "required": ["text"],
                        "additionalProperties": False,
                    },
                    "rationale": {
                        "description": "Optional: the clinic's own rationale for this rule.",
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 4000,
                    },
                },
                "required": ["id"],
                "additionalProperties": False,
                "allOf": per_rule,
            },
        },
    }


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
    recipe: tuple[tuple[type[BaseRule], dict[str, Any]], ...] = (
        (SessionCount, {"count": count, "window_days": window_days}),
        (TreatmentWindow, {"days": window_days}),
        (SessionSpacing, {"min_days": min_days}),
        (Fasting, {"hours": fasting_hours}),
        (Escort, {}),
        (BoosterInterval, {"months": booster_months, "min_induction": count}),
    )
    for cls, keywords in recipe:
        try:
            rules.append(cls(**keywords))
        except ProtocolError as exc:
            problems += exc.problems
    if problems:
        raise ProtocolError(*dict.fromkeys(problems))
    return Protocol(
        id, version, rules, title=title, status=status, effective=effective, citation=citation
    )
