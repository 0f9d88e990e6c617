"""A TOML writer for protocol data (private).

The standard library reads TOML (``tomllib``) but does not write it. Protocol data has a
small, known shape (strings, numbers, booleans, lists of those, one table per rule), so a
short writer covers it; every string goes through one escaping function.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
# TOML basic strings escape ", \ and every control character but tab.
_ESCAPE = re.compile(r'["\\\x00-\x08\x0a-\x1f\x7f]')
_SHORT = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\f": "\\f", "\b": "\\b"}


def string(value: str) -> str:
    """A TOML basic string."""
    return '"' + _ESCAPE.sub(lambda m: _SHORT.get(m[0], f"\\u{ord(m[0]):04x}"), value) + '"'


def key(name: str) -> str:
    """A TOML key: bare when it can be, quoted otherwise."""
    return name if _BARE_KEY.fullmatch(name) else string(name)


def value(item: Any) -> str:
    """A TOML value for plain data (no null: the caller leaves such keys out)."""
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, int):
        return str(item)
    if isinstance(item, float):
        return repr(item)
    if isinstance(item, str):
        return string(item)
    if isinstance(item, list | tuple):
        return "[" + ", ".join(value(x) for x in item) + "]"
    if isinstance(item, Mapping):
        return (
            "{ "
            + ", ".join(f"{key(k)} = {value(v)}" for k, v in item.items() if v is not None)
            + " }"
        )
    raise TypeError(f"cannot write {type(item).__name__} as TOML")


def protocol_toml(data: Mapping[str, Any]) -> str:
    """Protocol data (``Protocol.to_dict()``) as a TOML protocol file."""
    return "\n".join(_protocol_lines(data, "rules")) + "\n"


def protocol_versions_toml(data: Mapping[str, Any]) -> str:
    """A versioned protocol (``{"id", "versions": [protocol data]}``) as ``[[versions]]``."""
    lines = [f"id = {string(data['id'])}"]
    for version in data["versions"]:
        lines += ["", "[[versions]]", *_protocol_lines(version, "versions.rules")]
    return "\n".join(lines) + "\n"


def _protocol_lines(data: Mapping[str, Any], tables: str) -> list[str]:
    # A protocol's own keys, then a [[TABLES]] table per rule.
    lines = [
        # A date is a TOML literal of its own: no quotes.
        f"{key(k)} = {v if k == 'effective' else value(v)}"
        for k, v in data.items()
        if k != "rules" and v is not None
    ]
    for rule in data.get("rules", []):
        lines += ["", f"[[{tables}]]"]
        lines += [
            f"{key(k)} = {value(v)}" for k, v in rule.items() if k != "parameters" and v is not None
        ]
        parameters = rule.get("parameters") or {}
        if parameters:
            lines.append(f"[{tables}.parameters]")
            lines += [f"{key(k)} = {value(v)}" for k, v in parameters.items() if v is not None]
    return lines
