"""kaprules protocol validate and show: protocol files."""

from __future__ import annotations

import argparse
from typing import TextIO

from kaprules.cli._render import identity, json_out
from kaprules.cli._status import EXIT_OK
from kaprules.loading import (
    load_protocol,
    resolve_protocol,
)
from kaprules.report import Severity


def protocol_command(args: argparse.Namespace, out: TextIO) -> int:
    if args.action == "validate":
        protocol = load_protocol(args.file)
        out.write(f"valid: {identity(protocol)}, {len(protocol.rules)} rules\n")
        for rule in protocol.rules:
            out.write(f"  {rule.id} ({Severity(rule.severity).value})\n")
        return EXIT_OK
    protocol = resolve_protocol(args.spec)
    if args.format == "json":
        json_out(protocol.to_dict(), out)
    else:
        out.write(protocol.to_toml())
    return EXIT_OK
