"""What judged a result, as outputs name it: a protocol's stamp, written once.

`kaprules check --format json` and an audit's summary both carry it, as ``"protocol"``:
the protocol's id, its version and digest (or each version's), the files it was read
from and the plugins its rules come from.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kaprules._text import file_name
from kaprules.plugins import plugins_used
from kaprules.protocol import Protocol, ProtocolVersions

__all__ = ["protocol_stamp", "stamp_fields"]


def stamp_fields(protocol: Protocol | ProtocolVersions) -> dict[str, Any]:
    """What a stamp says of ``protocol`` itself (everything but its files).

    Args:
        protocol: A protocol, or several versions of one.

    Returns:
        ``{"id", "version", "sha256", "versions", "plugins"}``: for several versions,
        ``version`` is the latest's, ``sha256`` None and ``versions`` each version's
        stamp; for one, ``versions`` is None. ``plugins``: the plugins the rules come
        from, as plain data.
    """
    if isinstance(protocol, ProtocolVersions):
        rules: Iterable[object] = [rule for each in protocol.versions for rule in each.rules]
        version, sha256, versions = protocol.latest.version, None, protocol.stamp()
    else:
        rules, version, sha256, versions = protocol.rules, protocol.version, protocol.digest, None
    return {
        "id": protocol.id,
        "version": version,
        "sha256": sha256,
        "versions": versions,
        "plugins": [plugin.to_dict() for plugin in plugins_used(rules)],
    }


def protocol_stamp(
    *,
    id: str,
    version: str,
    sha256: str | None,
    versions: Any,
    files: Iterable[tuple[str, str]],
    plugins: list[dict[str, Any]],
) -> dict[str, Any]:
    """An output's ``"protocol"``, from `stamp_fields` and the files read.

    Args:
        id: The protocol's id.
        version: Its version (not shown when ``versions`` is given).
        sha256: Its digest, or None (not shown).
        versions: Each version's stamp, or None for one protocol.
        files: ``(name, SHA-256)`` of each protocol file as read.
        plugins: The plugins its rules come from, as plain data.

    Returns:
        ``{"id", "version", "sha256", "files", "plugins"}``, or ``{"id", "versions",
        "files", "plugins"}`` for several versions.
    """
    shown: dict[str, Any] = {"id": id}
    if versions is not None:
        shown["versions"] = versions  # each session is judged by its own
    else:
        shown["version"] = version
        if sha256 is not None:
            shown["sha256"] = sha256
    # The bytes each file held, and the code of each plugin rule: with the digest, every
    # input that decided a result.
    shown["files"] = [{"name": file_name(name), "sha256": digest} for name, digest in files]
    shown["plugins"] = plugins
    return shown
