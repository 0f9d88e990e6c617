"""kaprules protocol validate and show: protocol files."""

from __future__ import annotations

import argparse
import os
from typing import TextIO

from kaprules import _toml
from kaprules.cli._render import identity, json_out
from kaprules.cli._status import EXIT_OK
from kaprules.loading import (
    load_protocol,
    load_versions,
    resolve_protocol,
)
from kaprules.protocol import Protocol, ProtocolVersions
from kaprules.report import Severity


def protocol_command(args: argparse.Namespace, out: TextIO) -> int:
    if args.action == "validate":
        first = args.file[0]
        if len(args.file) > 1:
            loaded: Protocol | ProtocolVersions = load_versions(*args.file)
        elif os.path.exists(first):
            loaded = resolve_protocol(first)  # a file of [[versions]] too
        else:
            loaded = load_protocol(first)  # which says the file is missing
        versions = loaded.versions if isinstance(loaded, ProtocolVersions) else (loaded,)
        for protocol in versions:
            effective = "" if protocol.effective is None else f", effective {protocol.effective}"
            out.write(f"valid: {identity(protocol)}{effective}, {len(protocol.rules)} rules\n")
            for rule in protocol.rules:
                waivable = ", waivable" if getattr(rule, "waivable", False) is True else ""
                out.write(f"  {rule.id} ({Severity(rule.severity).value}{waivable})\n")
        return EXIT_OK
    shown = resolve_protocol(args.spec)
    if isinstance(shown, ProtocolVersions):
        entries = [p.to_dict() for p in shown.versions]
        for entry in entries:
            del entry["id"]
        data = {"id": shown.id, "versions": entries}
        if args.format == "json":
            json_out(data, out)
        else:
            out.write(_toml.protocol_versions_toml(data))
        return EXIT_OK
    if args.format == "json":
        json_out(shown.to_dict(), out)
    else:
        out.write(shown.to_toml())
    return EXIT_OK
