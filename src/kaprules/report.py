"""Findings and the report that collects them.

Rules yield [`Finding`][kaprules.Finding] objects; [`evaluate`][kaprules.evaluate] gathers
every finding of every rule into a [`Report`][kaprules.Report], in a deterministic order.
Both turn into plain data with ``to_dict()`` for JSON output.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Iterable
from typing import Any

import attrs

from kaprules._text import web_url
from kaprules.errors import ProtocolError, echo
from kaprules.model import JSONValue, Waiver

__all__ = ["DOCS_URL", "Finding", "Help", "JSONValue", "Report", "Severity"]


def _docs_url_of_environment() -> str:
    # KAPRULES_DOCS_URL, when it is an http(s) URL (the command line refuses any other).
    return web_url(os.environ.get("KAPRULES_DOCS_URL") or "") or ""


DOCS_URL = _docs_url_of_environment()
"""The documentation site's base URL, the one setting behind every help URL of a finding.

Empty (the default) keeps help site-relative (``rules/#fasting``), because the site may be
served anywhere; set it, ending in ``/``, to make help links absolute. It starts as the
environment variable ``KAPRULES_DOCS_URL`` when that is an http(s) URL (``kaprules`` refuses
any other value), so that every command and every process of an audit uses the same base;
``kaprules audit --docs-url`` gives the HTML report's rule links their base."""


class Severity(enum.StrEnum):
    """How much a finding matters. Compares equal to its plain string.

    Only ``"error"`` findings make a report fail; warnings and info are shown and kept.

    Attributes:
        ERROR: The course breaks the protocol: the report is not ok.
        WARNING: Worth a look; the report stays ok.
        INFO: For the record; the report stays ok.
    """

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


_SEVERITY_VALUES = frozenset(s.value for s in Severity)


def as_severity(value: object) -> Severity | None:
    """The `Severity` ``value`` names, or None (private helper shared with the rules).

    Looked up, never constructed: any value, a huge or unhashable one too, is safe.
    """
    if isinstance(value, str) and value in _SEVERITY_VALUES:
        return Severity(value)
    return None


def to_severity(value: Severity | str) -> Severity:
    """``value`` as a `Severity` (private helper shared with the rules).

    Raises:
        ProtocolError: ``value`` is not a severity.
    """
    severity = as_severity(value)
    if severity is None:
        choices = ", ".join(repr(s.value) for s in Severity)
        shown = echo(value) if isinstance(value, str) else type(value).__name__
        raise ProtocolError(f"unknown severity {shown}; use one of {choices}")
    return severity


@attrs.frozen
class Help:
    """Where a finding's rule is documented.

    Attributes:
        url: The page and anchor: site-relative (``rules/#fasting``) unless
            ``kaprules.report.DOCS_URL`` is set, absolute then.
        command: The command that prints the same text in a terminal
            (``kaprules explain fasting``), or None.
    """

    url: str
    command: str | None = None

    def __str__(self) -> str:
        return self.url if self.command is None else f"{self.command}; {self.url}"

    def to_dict(self) -> dict[str, str | None]:
        """This help as plain data for JSON.

        Returns:
            ``{"command": ..., "url": ...}``, the command None when there is none.
        """
        return {"command": self.command, "url": self.url}


def _to_help(value: Help | str | None) -> Help | None:
    # A rule of your own may give a plain URL.
    return Help(value) if isinstance(value, str) else value


def rule_help(rule_id: str) -> Help:
    """Where a built-in rule is documented: the terminal command and the rules page anchor."""
    return Help(f"{DOCS_URL}rules/#{rule_id}", f"kaprules explain {rule_id}")


def _ids(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen
class Finding:
    """One thing a rule found in a course.

    Args:
        rule: The id of the rule that found it.
        severity: The rule's severity.
        sessions: The ids of the sessions it names, in start order; empty when it is
            about the course as a whole.
        message: A sentence for a person. Names sessions by id and local date and time,
            never escort names or patient identifiers.
        expected: What the rule requires, as plain data (for example ``6`` or
            ``"2026-12-14"``), or None.
        actual: What the course has, as plain data, or None.
        help: Where the rule is documented, or None. kaprules' own rules point to
            ``kaprules explain`` and the rules page; a rule of your own gives its
            ``help_url`` (a plain URL is taken as `Help(url)`).
        waiver: The [`Waiver`][kaprules.Waiver] that covers this finding, set by
            [`evaluate`][kaprules.evaluate]; None when it is not waived. A waived finding
            keeps its rule, severity and message, but does not make a report fail.
        protocol_version: The version of the protocol that judged it, set by
            [`evaluate`][kaprules.evaluate] (for a versioned protocol, the version in force
            on the finding's date); None for a finding made outside an evaluation.
    """

    rule: str
    severity: Severity = attrs.field(converter=to_severity)
    sessions: tuple[str, ...] = attrs.field(converter=_ids)
    message: str
    expected: JSONValue = None
    actual: JSONValue = None
    help: Help | None = attrs.field(default=None, kw_only=True, converter=_to_help)
    waiver: Waiver | None = attrs.field(default=None, kw_only=True)
    protocol_version: str | None = attrs.field(default=None, kw_only=True)

    @property
    def counts(self) -> bool:
        """True for an error finding that no waiver covers: one that fails a report."""
        return self.severity is Severity.ERROR and self.waiver is None

    def to_dict(self, *, notes: bool = False) -> dict[str, Any]:
        """This finding as plain data for JSON.

        Args:
            notes: Include a waiver's ``note`` (clinic-internal text; left out by
                default, so that shared outputs never carry it).

        Returns:
            ``{"rule", "severity", "sessions", "message", "expected", "actual", "help",
            "waiver", "protocol_version"}``; ``help`` as ``{"command", "url"}`` or None,
            ``waiver`` as ``{"reason", "approved_by", "approved_at"}`` or None.
        """
        return {
            "rule": self.rule,
            "severity": self.severity.value,
            "sessions": list(self.sessions),
            "message": self.message,
            "expected": self.expected,
            "actual": self.actual,
            "help": None if self.help is None else self.help.to_dict(),
            "waiver": None if self.waiver is None else waiver_data(self.waiver, notes=notes),
            "protocol_version": self.protocol_version,
        }


def waiver_data(waiver: Waiver, *, notes: bool = False) -> dict[str, JSONValue]:
    """What a waived finding shows of its waiver (private helper shared with audits)."""
    data = waiver.to_dict()
    shown: dict[str, JSONValue] = {
        "reason": data["reason"],
        "approved_by": data["approved_by"],
        "approved_at": data["approved_at"],
    }
    if notes:
        shown["note"] = waiver.note
    return shown


@attrs.frozen
class Report:
    """The findings of one protocol on one course.

    Built by [`evaluate`][kaprules.evaluate]; you read it, you do not build it.

    Attributes:
        protocol_id: The id of the protocol evaluated, such as ``"kap-standard"``.
        protocol_version: Its version, such as ``"1"``.
        findings: Every finding, ordered by the first session each names (findings about
            the whole course first), then by the rule's place in the protocol.
        as_of: The ``as_of`` given to `evaluate`, as ISO text, or None for a final record.
        kaprules_version: The kaprules version that made the report.
        derived_from: For a protocol derived without a name of its own, the id and version
            of the named protocol it was derived from; None otherwise.
        versions: For [`ProtocolVersions`][kaprules.ProtocolVersions], every version that
            judged a session of the course, in effective order (``protocol_version`` is
            the one in force on the first session's date); empty otherwise.
    """

    protocol_id: str
    protocol_version: str
    findings: tuple[Finding, ...]
    as_of: str | None
    kaprules_version: str
    derived_from: tuple[str, str] | None = None
    versions: tuple[str, ...] = attrs.field(default=(), kw_only=True)

    @property
    def ok(self) -> bool:
        """True when every error finding is waived (or there is none)."""
        return not any(f.counts for f in self.findings)

    @property
    def errors(self) -> tuple[Finding, ...]:
        """The findings whose severity is ``"error"`` and that no waiver covers."""
        return tuple(f for f in self.findings if f.counts)

    @property
    def waived(self) -> tuple[Finding, ...]:
        """The findings a valid waiver covers, of any severity."""
        return tuple(f for f in self.findings if f.waiver is not None)

    @property
    def warnings(self) -> tuple[Finding, ...]:
        """The findings whose severity is ``"warning"``."""
        return tuple(f for f in self.findings if f.severity is Severity.WARNING)

    @property
    def rules_found(self) -> frozenset[str]:
        """The ids of the rules with at least one finding."""
        return frozenset(f.rule for f in self.findings)

    def to_dict(self, *, notes: bool = False) -> dict[str, Any]:
        """This report as plain data for JSON.

        Args:
            notes: Include waivers' notes (see `Finding.to_dict`).

        Returns:
            ``{"ok", "protocol": {"id", "version"}, "as_of", "kaprules_version",
            "findings": [...]}``, each finding as by `Finding.to_dict`. The protocol gains
            ``"derived_from": {"id", "version"}`` when the report has one, and
            ``"versions"`` (the versions used) for a versioned protocol.
        """
        protocol: dict[str, JSONValue] = {"id": self.protocol_id, "version": self.protocol_version}
        if self.derived_from is not None:
            protocol["derived_from"] = {"id": self.derived_from[0], "version": self.derived_from[1]}
        if self.versions:
            protocol["versions"] = list(self.versions)
        return {
            "ok": self.ok,
            "protocol": protocol,
            "as_of": self.as_of,
            "kaprules_version": self.kaprules_version,
            "findings": [f.to_dict(notes=notes) for f in self.findings],
        }
