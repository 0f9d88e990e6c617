"""kaprules rules and kaprules explain: the rules as auditors read them."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any, TextIO

from kaprules._moments import TODAY, Today
from kaprules._words import plural
from kaprules.cli._reading import protocol_of, version_at
from kaprules.cli._render import identity, json_out
from kaprules.cli._status import EXIT_OK, UsageError, one_line
from kaprules.errors import ProtocolError, shown_id
from kaprules.protocol import ProtocolVersions
from kaprules.report import Severity


def rules_command(args: argparse.Namespace, out: TextIO) -> int:
    if args.plugins:
        if args.protocol is not None:
            raise UsageError(
                "--plugins lists the installed rule plugins; give it without --protocol"
            )
        return plugins_command(args, out)
    protocol = version_at(protocol_of(args), None)
    if args.format == "json":
        data = protocol.to_dict()
        data["rules"] = [
            {**entry, "title": rule.title, "statement": rule.statement}
            for entry, rule in zip(data["rules"], protocol.rules, strict=True)
        ]
        json_out(data, out)
        return EXIT_OK
    out.write(identity(protocol) + "\n")
    for rule in protocol.rules:
        # A plugin's id, title, statement and parameters are text from outside.
        params = ", ".join(f"{k}={v}" for k, v in rule.parameters().items()) or "no parameters"
        waivable = ", waivable" if getattr(rule, "waivable", False) is True else ""
        severity = Severity(rule.severity).value
        head = f"{one_line(rule.id)} ({severity}{waivable}): {one_line(rule.title)}"
        out.write(f"\n{head}\n")
        out.write(f"  parameters: {one_line(params)}\n")
        out.write(f"  {one_line(rule.statement)}\n")
    return EXIT_OK


def plugins_command(args: argparse.Namespace, out: TextIO) -> int:
    from kaprules import plugins
    from kaprules.rules import BUILTIN_RULES

    entries = []
    for plugin in plugins.installed_plugins():
        entry: dict[str, Any] = {**plugin.to_dict(), "title": None, "problem": None}
        try:
            cls = plugin.load()
        except ProtocolError as exc:
            entry["problem"] = exc.problems[0].what
        else:
            try:
                title = getattr(cls, "title", None)
            except Exception as exc:  # someone else's class may raise anything
                entry["problem"] = f"{plugin.label}: its title raised {plugins.raised(exc)}"
            else:
                entry["title"] = title if isinstance(title, str) else None
        if plugin.name in BUILTIN_RULES:
            entry["problem"] = f"not used: kaprules' own rule {plugin.name} has this id"
        entries.append(entry)
    unreadable = list(plugins.unreadable_distributions())
    if args.format == "json":
        data = {"group": plugins.ENTRY_POINT_GROUP, "plugins": entries, "unreadable": unreadable}
        json_out(data, out)
        return EXIT_OK
    for line in unreadable:
        out.write(f"entry points cannot be read, skipped: {one_line(line)}\n")
    if not entries:
        out.write(
            f"No rule plugins are installed (entry point group {plugins.ENTRY_POINT_GROUP}).\n"
        )
        return EXIT_OK
    out.write(
        f"{plural(len(entries), 'rule plugin')} installed "
        f"(entry point group {plugins.ENTRY_POINT_GROUP}):\n"
    )
    for entry in entries:
        origin = "unknown distribution"
        if entry["distribution"] is not None:
            origin = f"{entry['distribution']} {entry['version'] or '(no version)'}"
        where = f"{shown_id(entry['value'], 200)} ({shown_id(origin, 200)})"
        out.write(f"\n{shown_id(entry['name'])}: {where}\n")
        if entry["problem"] is not None:
            out.write(f"  {one_line(entry['problem'])}\n")
        elif entry["title"] is not None:
            out.write(f"  {shown_id(entry['title'], 200)}\n")
    return EXIT_OK


def explain_command(args: argparse.Namespace, out: TextIO) -> int:
    given = protocol_of(args)
    day = args.as_of
    if day == TODAY:
        day = Today.now().on_this_machine()
    elif isinstance(day, dt.datetime):
        day = day.date()  # the date as written: a rule has no zone of its own
    protocol = version_at(given, day)
    try:
        rule = protocol.rule(args.rule_id)
    except ProtocolError as exc:
        raise UsageError(str(exc)) from None
    from kaprules.explanation import explain

    text = explain(rule, format=args.format)
    if isinstance(given, ProtocolVersions) and args.format == "text":
        # Which version speaks, when several could.
        since = "" if protocol.effective is None else f", in force from {protocol.effective}"
        text = f"{protocol.id} version {protocol.version}{since}\n\n" + text
    out.write(text)
    return EXIT_OK
