"""Protocols: named, versioned sets of rules, and their evaluation over a course.

[`STANDARD`][kaprules.STANDARD] is kap-standard version 1. A clinic derives its own with
[`Protocol.replace`][kaprules.Protocol.replace] and
[`Protocol.without`][kaprules.Protocol.without]; neither changes the original.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from kaprules._version import __version__
from kaprules.errors import InputError, ProtocolError
from kaprules.model import Course
from kaprules.report import Finding, JSONValue, Report
from kaprules.rules import (
    BUILTIN_RULES,
    BoosterInterval,
    Escort,
    Fasting,
    Rule,
    SessionCount,
    SessionSpacing,
    TreatmentWindow,
)
from kaprules.timeline import Timeline

__all__ = ["STANDARD", "Protocol", "evaluate"]


def _flatten(rules: Iterable[Rule | Protocol]) -> tuple[Rule, ...]:
    # Like attrs' and_(): a protocol given among rules contributes its rules, not itself.
    flat: list[Rule] = []
    for item in rules:
        if isinstance(item, Protocol):
            flat.extend(item.rules)
        else:
            flat.append(item)
    return tuple(flat)


def _check_rules(
    instance: Protocol, attribute: attrs.Attribute[Any], rules: tuple[Any, ...]
) -> None:
    seen: set[str] = set()
    for index, rule in enumerate(rules):
        rule_id = getattr(rule, "id", None)
        if not isinstance(rule_id, str) or not rule_id or not callable(rule):
            raise ProtocolError(
                f"rules[{index}] ({type(rule).__name__}) is not a rule: a rule has a non-empty "
                "str id and is called with a Timeline (see kaprules.Rule)"
            )
        if rule_id in seen:
            raise ProtocolError(
                f"two rules have the id {rule_id!r}; use Protocol.replace to swap a rule"
            )
        seen.add(rule_id)


@attrs.frozen
class Protocol:
    """A named, versioned set of rules.

    Args:
        id (str): The protocol's id, such as ``"kap-standard"``.
        version (str): Its version. Change it whenever a rule, parameter or severity
            changes, so that a report names exactly what it checked.
        rules (Iterable[Rule | Protocol]): The rules, in the order their findings are
            listed. A protocol given here contributes its rules.

    Raises:
        ProtocolError: Two rules share an id, or an item is not a rule.
    """

    id: str
    version: str
    rules: tuple[Rule, ...] = attrs.field(converter=_flatten, validator=_check_rules)

    @property
    def rule_ids(self) -> tuple[str, ...]:
        """The ids of the rules, in order."""
        return tuple(r.id for r in self.rules)

    def rule(self, rule_id: str) -> Rule:
        """The rule with id ``rule_id``.

        Args:
            rule_id: A rule id, such as ``"fasting"``.

        Returns:
            The rule.

        Raises:
            ProtocolError: The protocol has no such rule.
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
            id: A new protocol id; the same id when None.
            version: A new version; the same version when None.

        Returns:
            The new protocol; this one is unchanged.
        """
        given = {r.id: r for r in rules}
        kept = [given.pop(r.id, r) for r in self.rules]
        return Protocol(
            self.id if id is None else id,
            self.version if version is None else version,
            (*kept, *given.values()),
        )

    def without(
        self, *rule_ids: str, id: str | None = None, version: str | None = None
    ) -> Protocol:
        """A new protocol without the rules with the given ids.

        Args:
            *rule_ids: The ids to drop.
            id: A new protocol id; the same id when None.
            version: A new version; the same version when None.

        Returns:
            The new protocol; this one is unchanged.

        Raises:
            ProtocolError: The protocol has no rule with one of the ids.
        """
        for rule_id in rule_ids:
            if rule_id not in self.rule_ids:
                raise ProtocolError(self._unknown(rule_id))
        return Protocol(
            self.id if id is None else id,
            self.version if version is None else version,
            tuple(r for r in self.rules if r.id not in rule_ids),
        )

    def evaluate(self, course: Course, *, as_of: dt.datetime | dt.date | None = None) -> Report:
        """Evaluate this protocol on a course; see [`evaluate`][kaprules.evaluate]."""
        return evaluate(course, self, as_of=as_of)

    def to_dict(self) -> dict[str, JSONValue]:
        """This protocol as plain data: ids, version, each rule's severity and parameters.

        Returns:
            ``{"id", "version", "rules": [{"id", "severity", "parameters"}]}``;
            [`from_dict`][kaprules.Protocol.from_dict] builds an equal protocol from it.
        """
        return {
            "id": self.id,
            "version": self.version,
            "rules": [
                {"id": r.id, "severity": r.severity.value, "parameters": r.parameters()}
                for r in self.rules
            ],
        }

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, rule_classes: Iterable[type[Rule]] = ()
    ) -> Protocol:
        """Build a protocol from the data of [`to_dict`][kaprules.Protocol.to_dict].

        Args:
            data: Protocol data.
            rule_classes: Classes of your own rules, found by their ``id``. Each is built as
                ``cls(**parameters, severity=severity)``. kaprules' own rules are known.

        Returns:
            The protocol.

        Raises:
            ProtocolError: The data is malformed or names a rule class that is not known.
        """
        known: dict[str, type[Rule]] = dict(BUILTIN_RULES)
        known.update({c.id: c for c in rule_classes})  # type: ignore[misc]
        try:
            rules = []
            for index, item in enumerate(data["rules"]):
                rule_id = item["id"]
                if rule_id not in known:
                    raise ProtocolError(
                        f"rules[{index}]: unknown rule {rule_id!r}; pass its class in rule_classes"
                    )
                factory: Any = known[rule_id]
                rules.append(factory(**item.get("parameters", {}), severity=item["severity"]))
            return cls(str(data["id"]), str(data["version"]), rules)
        except (KeyError, TypeError) as exc:
            raise ProtocolError(f"malformed protocol data: {exc}") from None

    def _unknown(self, rule_id: str) -> str:
        known = ", ".join(self.rule_ids)
        return f"protocol {self.id!r} has no rule {rule_id!r}; its rules are {known}"


STANDARD = Protocol(
    "kap-standard",
    "1",
    (SessionCount(), TreatmentWindow(), SessionSpacing(), Fasting(), Escort(), BoosterInterval()),
)
"""kap-standard version 1: the standard protocol of the founding document."""


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
    if not isinstance(course, Course):
        raise InputError(
            f"course: must be a Course, got {type(course).__name__}; read JSON with "
            "kaprules.parse_course or kaprules.load_course"
        )
    timeline = Timeline.of(course, as_of)
    found: list[tuple[int, Finding]] = []
    for index, rule in enumerate(protocol.rules):
        found.extend((index, f) for f in rule(timeline))
    if len(found) > 1:
        position = {t.id: t.position for t in timeline.sessions}

        def order(item: tuple[int, Finding]) -> tuple[Any, ...]:
            index, f = item
            places = tuple(position.get(s, -1) for s in f.sessions)
            return (places[:1] or (-1,), index, places, f.message)

        found.sort(key=order)
    return Report(
        protocol.id,
        protocol.version,
        tuple(f for _, f in found),
        None if as_of is None else as_of.isoformat(),
        __version__,
    )
