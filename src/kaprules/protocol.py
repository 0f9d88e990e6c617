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
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

import attrs

from kaprules import _text, _time
from kaprules._judging import evaluate_version, evaluate_versions
from kaprules._rule_entries import given_classes, holds, rule_entry, rule_from_entry
from kaprules.errors import (
    InputError,
    Problem,
    ProtocolError,
    did_you_mean,
    echo,
    got,
    json_type,
    unknown_field,
)
from kaprules.model import Course, JSONValue
from kaprules.phases import (
    PHASES,
    BeyondEvaluated,
    MinGap,
    Overdue,
    Phase,
    PhaseList,
    WeeklyCap,
    WeeklyTarget,
)
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
from kaprules.session_day import (
    BloodPressureAfter,
    BloodPressureBefore,
    BloodPressureLimit,
    Dose,
    LiquidFasting,
    MonitoringForm,
    PostDoseMonitoring,
    RemsEnrolment,
)
from kaprules.waivers import REASONS

__all__ = [
    "ESKETAMINE_MDSI",
    "ESKETAMINE_TRD",
    "STANDARD",
    "STANDARD_V2",
    "Protocol",
    "ProtocolVersions",
    "builtin_protocols",
    "get_protocol",
    "kap_protocol",
]

Status = Literal["draft", "active", "retired"]
STATUSES: tuple[str, ...] = ("draft", "active", "retired")


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


def coherence_problems(
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


_CODE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def _to_reasons(value: object) -> object:
    # A mapping, kept as sorted pairs so that the protocol stays frozen and hashable.
    if isinstance(value, Mapping):
        return tuple(sorted(value.items(), key=lambda item: str(item[0])))
    return value


def _reason_problems(value: object) -> list[Problem]:
    if not isinstance(value, tuple):
        return [Problem("reasons", "must be a mapping of reason codes to meanings", "type")]
    problems = []
    for code, meaning in value:
        if not isinstance(code, str) or len(code) > 64 or not _CODE.fullmatch(code):
            shown = echo(code) if isinstance(code, str) else type(code).__name__
            problems.append(
                Problem(("reasons", shown), "a reason code is kebab-case, at most 64 characters")
            )
        elif code in REASONS:
            problems.append(
                Problem(
                    ("reasons", code),
                    "is one of the codes every protocol accepts (kaprules.REASONS); a protocol "
                    "adds codes, it does not redefine them",
                    "duplicate",
                )
            )
        else:
            problems += [
                p.within("reasons", code) for p in _check_text("meaning", meaning, required=True)
            ]
    return problems


def _check_text(name: str, value: object, *, required: bool) -> list[Problem]:
    if value is None and not required:
        return []
    if not isinstance(value, str) or not value.strip():
        return [Problem(name, f"must be a non-empty string, got {type(value).__name__}", "type")]
    if not _text.is_line(value, _text.LINE_LIMIT):  # as the protocol schema states it
        limit = _text.LINE_LIMIT
        return [Problem(name, f"must be one line of at most {limit} printable characters", "value")]
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
        reasons (Mapping[str, str] | None): Waiver reason codes of the clinic's own, with
            their meanings, beside those every protocol accepts
            ([`REASONS`][kaprules.REASONS]). Codes are kebab-case.

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
    reasons: tuple[tuple[str, str], ...] = attrs.field(
        default=(), kw_only=True, converter=_to_reasons
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
        elif self.effective is not None and not (
            _time.MIN_YEAR <= self.effective.year <= _time.MAX_YEAR
        ):
            problems.append(
                Problem(
                    "effective",
                    f"{self.effective.isoformat()} is outside the supported years "
                    f"{_time.MIN_YEAR}-{_time.MAX_YEAR}",
                    "range",
                )
            )
        if self.derived_from is not None and not (
            isinstance(self.derived_from, tuple)
            and len(self.derived_from) == 2
            and all(isinstance(x, str) and x for x in self.derived_from)
        ):
            problems.append(Problem("derived_from", "must be an (id, version) pair", "type"))
        problems += _reason_problems(self.reasons)
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
            problems += coherence_problems(self.rules)
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

    @property
    def digest(self) -> str:
        """SHA-256 of the protocol as data (`to_dict`, canonical JSON).

        It covers the rules, parameters, severities, waivability, phases, reasons and
        identity: two protocols with one digest judge every course alike. An audit's
        summary names it.
        """
        import hashlib  # only stamps need it: start-up does not pay for it

        text = json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()

    @property
    def waivable_rules(self) -> frozenset[str]:
        """The ids of the rules a waiver may cover (their ``waivable`` is True)."""
        return frozenset(r.id for r in self.rules if getattr(r, "waivable", False) is True)

    @property
    def reason_codes(self) -> frozenset[str]:
        """Every waiver reason code the protocol accepts: `REASONS` and its own."""
        return frozenset((*REASONS, *(code for code, _ in self.reasons)))

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
        allowed = (*_parameter_names(type(rule)), "severity", "id", "waivable")
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
        return evaluate_version(course, self, as_of)

    def to_dict(self) -> dict[str, Any]:
        """This protocol as plain data: the protocol file format, as JSON.

        Returns:
            ``{"id", "version", "rules": [{"id", "severity", "parameters"}]}``, with
            ``title``, ``status``, ``effective``, ``citation`` and ``derived_from`` when
            set, and a rule's ``rule`` (its class's id) when its id is not the class's.
            [`from_dict`][kaprules.Protocol.from_dict] builds an equal protocol from it.
        """
        return protocol_data(self)

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
        return protocol_from_data(data, rule_classes=rule_classes, build=cls)

    def _derive(self, rules: tuple[Rule, ...], id: str | None, version: str | None) -> Protocol:
        if id is not None or version is not None:
            return Protocol(
                self.id if id is None else id,
                self.version if version is None else version,
                rules,
                citation=self.citation,
                reasons=self.reasons,
            )
        if tuple(rules) == self.rules:
            return self
        base = self.derived_from or (self.id, self.version)
        derived_id = self.id if self.derived_from else f"{self.id}-derived"
        draft = Protocol(
            derived_id,
            base[1],
            rules,
            citation=self.citation,
            derived_from=base,
            reasons=self.reasons,
        )
        import hashlib  # only derived protocols need it: start-up does not pay for it

        digest = hashlib.sha256(
            json.dumps(draft.to_dict()["rules"], sort_keys=True).encode()
        ).hexdigest()
        return attrs.evolve(draft, version=f"{base[1]}+{digest[:8]}")

    def _unknown(self, rule_id: str) -> str:
        known = ", ".join(self.rule_ids)
        hint = did_you_mean(rule_id, self.rule_ids)
        return f"protocol {echo(self.id)} has no rule {echo(rule_id)}{hint} (its rules: {known})"


def _sorted_versions(value: object) -> object:
    # In effective order; a version without a date only where it is given, first (the
    # check refuses one anywhere else). Anything else is left for the check.
    if isinstance(value, Iterable) and not isinstance(value, str | bytes | Mapping):
        items = tuple(value)
        if not all(isinstance(item, Protocol) for item in items):
            return items
        head = items[:1] if items and items[0].effective is None else ()
        rest = items[len(head) :]
        dated = [p for p in rest if p.effective is not None]
        undated = [p for p in rest if p.effective is None]
        return (*head, *sorted(dated, key=lambda p: p.effective), *undated)
    return value


@attrs.frozen
class ProtocolVersions:
    """The versions of one protocol, each in force from its effective date.

    A session is judged by the version in force on its local date; see
    [Waivers and versions](waivers.md) for how each kind of rule chooses its version.
    Pass it wherever a protocol is taken: [`evaluate`][kaprules.evaluate], audits and the
    command line (``--protocol v1.toml --protocol v2.toml``).

    Args:
        versions (Iterable[Protocol]): The versions, in any order. All share one ``id``
            and have distinct versions and effective dates; the first may have none (a
            built-in such as ``esketamine-trd@1``), and is then in force from the start.

    Raises:
        ProtocolError: Fewer than one version, an item that is not a Protocol, ids that
            differ, a version other than the first without an ``effective`` date, or two
            versions with one version or effective date.
    """

    versions: tuple[Protocol, ...] = attrs.field(converter=_sorted_versions)

    def __attrs_post_init__(self) -> None:
        problems: list[Problem] = []
        if not self.versions:
            raise ProtocolError(Problem("versions", "must hold at least one protocol", "value"))
        for index, item in enumerate(self.versions):
            if not isinstance(item, Protocol):
                problems.append(
                    Problem(("versions", index), f"must be a Protocol, got {type(item).__name__}")
                )
        if problems:
            raise ProtocolError(*problems)
        first = self.versions[0]
        seen_versions: set[str] = set()
        seen_dates: set[dt.date] = set()
        for index, item in enumerate(self.versions):
            where = ("versions", index)
            if item.id != first.id:
                problems.append(
                    Problem(
                        (*where, "id"),
                        f"{echo(item.id)} is not {echo(first.id)}: the versions of one "
                        "protocol share its id",
                        "value",
                    )
                )
            if item.version in seen_versions:
                problems.append(
                    Problem((*where, "version"), f"version {echo(item.version)} is given twice")
                )
            seen_versions.add(item.version)
            if item.effective is None and index > 0:
                problems.append(
                    Problem(
                        (*where, "effective"),
                        f"version {echo(item.version)} has no effective date; of several "
                        "versions only the one given first may have none (in force from the "
                        "start)",
                        "required",
                    )
                )
            elif item.effective is not None and item.effective in seen_dates:
                problems.append(
                    Problem(
                        (*where, "effective"),
                        f"{item.effective.isoformat()} is the effective date of another "
                        "version: effective dates strictly increase",
                        "value",
                    )
                )
            if item.effective is not None:
                seen_dates.add(item.effective)
        if problems:
            raise ProtocolError(*problems)

    @property
    def id(self) -> str:
        """The protocol's id, shared by every version."""
        return self.versions[0].id

    @property
    def rule_ids(self) -> tuple[str, ...]:
        """The ids of every version's rules, in version order, each once."""
        return tuple(dict.fromkeys(r for v in self.versions for r in v.rule_ids))

    def stamp(self) -> list[dict[str, str | None]]:
        """Each version as an audit's summary names it: version, effective date, digest."""
        return [
            {
                "version": v.version,
                "effective": None if v.effective is None else v.effective.isoformat(),
                "sha256": v.digest,
            }
            for v in self.versions
        ]

    @property
    def latest(self) -> Protocol:
        """The version with the latest effective date."""
        return self.versions[-1]

    def in_force(self, date: dt.date) -> Protocol | None:
        """The version in force on a local date: the last one effective on or before it.

        Args:
            date: A local date (a ``datetime.date``).

        Returns:
            The version, or None before the first effective date.
        """
        found = None
        for item in self.versions:
            if item.effective is None or item.effective <= date:
                found = item
            else:
                break
        return found

    def at(self, date: dt.date) -> Protocol:
        """The version in force on a local date, as scheduling and ``explain`` need one.

        Args:
            date: A local date (a ``datetime.date``).

        Returns:
            The version.

        Raises:
            InputError: No version is in force yet on ``date``.
        """
        version = self.in_force(date)
        if version is None:
            first = self.versions[0].effective
            raise InputError(
                Problem(
                    "protocol",
                    f"no version of {echo(self.id)} is in force on {date.isoformat()}: the "
                    f"first takes effect on {first.isoformat() if first else '?'}",
                )
            )
        return version

    def evaluate(self, course: Course, *, as_of: dt.datetime | dt.date | None = None) -> Report:
        """Evaluate these versions on a course; see [`evaluate`][kaprules.evaluate]."""
        return evaluate_versions(course, self, as_of)


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


def _parameter_names(cls: type[Any]) -> tuple[str, ...]:
    """The parameters a rule class takes (see `parameters_of`)."""
    return tuple(p.name for p in parameters_of(cls))


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

_ESKETAMINE = "the esketamine nasal spray label and REMS, as quoted rule by rule"
_DRIVING = Source(
    "Advise patients that they will need someone to drive them home after each treatment session",
    document="SPRAVATO (esketamine) nasal spray, US Prescribing Information (03/2019), a copy, "
    "http://www.120ty.net/bencandy.php?aid=58243&fid=134&page=21",
    location="section 17, 'Impaired Ability to Drive and Operate Machinery'",
    note="Spaces lost in the copy's PDF text are restored. The label also says not to drive "
    "until the next day after a restful sleep: escort records the transport home.",
)
_FOOD = Source(
    "You should avoid eating two hours before and drinking liquids 30 minutes before taking "
    "SPRAVATO",
    document=LiquidFasting.source.document,
    location=LiquidFasting.source.location,
)


def _session_day(first_dose: tuple[float, ...], then: tuple[float, ...]) -> tuple[Rule, ...]:
    # The session-day rules both esketamine protocols share, in one place.
    return (
        Fasting(hours=2, source=_FOOD),
        LiquidFasting(),
        BloodPressureBefore(),
        BloodPressureLimit(waivable=True),
        BloodPressureAfter(),
        PostDoseMonitoring(),
        Escort(source=_DRIVING),
        Dose(first=first_dose, then=then),
        RemsEnrolment(),
        MonitoringForm(),
    )


ESKETAMINE_TRD = Protocol(
    "esketamine-trd",
    "1",
    (
        WeeklyCap(waivable=True),
        WeeklyTarget(waivable=True),
        Overdue(),
        MinGap(),
        *_session_day((56,), (56, 84)),
    ),
    title="Esketamine nasal spray for treatment-resistant depression, as labelled",
    citation=_ESKETAMINE,
)
"""esketamine-trd version 1: the label's phases for treatment-resistant depression (weeks
1-4 twice a week, 5-8 once a week, week 9 on every 2 weeks), never two sessions on one local
date, and the session-day rules of the label and REMS. The weekly cap and target and the
blood-pressure limit may be waived by a clinician; nothing else may."""

_MDSI_PHASES = (Phase("induction", (1, 4), at_most=2, target=2, min_gap_days=1),)
_MDSI_DOSE = Source(
    "84 mg twice per week for 4 weeks; may be reduced to 56 mg twice per week if needed",
    document="'Spravato dosage', Medical News Today, "
    "https://www.medicalnewstoday.com/articles/drugs-spravato-dosage",
    location="the dosage table, depressive symptoms in major depressive disorder",
    note="A secondary source: kaprules has read no copy of the label's section 2. Twice per "
    "week is read as a cap and a target of 2 sessions in each treatment week.",
)

ESKETAMINE_MDSI = Protocol(
    "esketamine-mdsi",
    "1",
    (
        WeeklyCap(phases=_MDSI_PHASES, source=_MDSI_DOSE, waivable=True),
        WeeklyTarget(phases=_MDSI_PHASES, source=_MDSI_DOSE, waivable=True),
        MinGap(phases=_MDSI_PHASES, source=_MDSI_DOSE),
        BeyondEvaluated(),
        *(
            Dose(first=(84,), then=(84, 56), source=_MDSI_DOSE) if isinstance(r, Dose) else r
            for r in _session_day((84,), (84, 56))
        ),
    ),
    title="Esketamine nasal spray for depressive symptoms with acute suicidal ideation or "
    "behaviour, as labelled",
    citation=_ESKETAMINE,
)
"""esketamine-mdsi version 1: twice a week for 4 weeks (a session after week 4 is a
warning), a first dose of 84 mg, then 84 or 56 mg, and the same session-day rules."""

_BUILTINS.update(
    {(p.id, p.version): p for p in (STANDARD, STANDARD_V2, ESKETAMINE_TRD, ESKETAMINE_MDSI)}
)


def builtin_protocols() -> tuple[Protocol, ...]:
    """Every built-in protocol, oldest first.

    Returns:
        kap-standard versions 1 and 2, esketamine-trd and esketamine-mdsi version 1.
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


# A protocol's fields in its data form (the protocol file format), in the order to_dict
# writes them.
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


def _effective(value: object, problems: list[Problem]) -> dt.date | None:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str) and re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            problems.append(Problem("effective", f"{value} is not a real date", "value"))
            return None
    problems.append(Problem("effective", f"must be a date YYYY-MM-DD{got(value)}", "type"))
    return None


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
            problems.append(Problem(name, f"is required: a non-empty string{got(value)}"))
        fields[name] = value
    for name in ("title", "status", "citation"):
        if name in data:
            fields[name] = data[name]
    if "effective" in data:
        fields["effective"] = _effective(data["effective"], problems)
    if "derived_from" in data:
        fields["derived_from"] = data["derived_from"]
    if "reasons" in data:
        reasons = data["reasons"]
        if not isinstance(reasons, Mapping):
            problems.append(Problem("reasons", f"must be a table of codes{got(reasons)}"))
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
        problems.append(Problem("rules", f"is required: a list of rules{got(raw_rules)}"))
    else:
        built: list[int] = []
        for index, item in enumerate(raw_rules):
            rule = rule_from_entry(index, item, known, problems, shared)
            if rule is not None:
                rules.append(rule)
                built.append(index)
        if problems:
            # Every problem in one run: the rules that could be built are checked for
            # coherence too, under their places in the file.
            problems += coherence_problems(tuple(rules), tuple(built))
    if shared and not problems and not any(holds(type(r), PHASES) for r in rules):
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
    rules = [rule_entry(r) for r in protocol.rules]
    # The phases, written once: every rule that reads them holds the same (a role).
    held = [(r, k) for r in protocol.rules if (k := holds(type(r), PHASES)) is not None]
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
