"""Rule plugins: rule classes that other distributions install for protocol files.

A package gives kaprules a rule through the entry-point group ``kaprules.rules``
(``ENTRY_POINT_GROUP``): the entry's name is the rule's
id as protocol files name it, its value the class as ``module:Class``. In
``pyproject.toml``:

```toml
[project.entry-points."kaprules.rules"]
at-most-in-days = "acme_kap_rules.rules:AtMostInDays"
```

[`Protocol.from_dict`][kaprules.Protocol.from_dict],
[`parse_protocol`][kaprules.parse_protocol], [`load_protocol`][kaprules.load_protocol] and
every command that takes ``--protocol`` look a rule up here only when it is neither one of
kaprules' own nor among the ``rule_classes`` given, so that ``import kaprules`` never scans
the installed distributions. A plugin that cannot be imported, gives something that is
not a rule class, or misbehaves while it is read (an exception whose text cannot be read, a
class member or metaclass that raises), is a [`ProtocolError`][kaprules.ProtocolError]
naming its entry point.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import attrs

from kaprules.errors import Problem, ProtocolError, echo, shown_id
from kaprules.rules import RULE_MEMBERS

if TYPE_CHECKING:  # importlib.metadata is imported only when a plugin is looked for
    from importlib.metadata import EntryPoint

__all__ = [
    "ENTRY_POINT_GROUP",
    "RulePlugin",
    "clear_cache",
    "installed_plugins",
    "load_rule_class",
    "plugin_of",
    "plugins_used",
    "raised",
    "unreadable_distributions",
]

ENTRY_POINT_GROUP = "kaprules.rules"
"""The entry-point group through which a distribution gives kaprules its rule classes."""

# Filled on first need: the entry points by name, then each plugin's class (or problem).
_entry_points: dict[str, list[EntryPoint]] | None = None
_loaded: dict[RulePlugin, type[Any] | ProtocolError] = {}
_unreadable: list[str] = []

# Members a rule may hold per instance (attrs fields, or set in __init__): the class need
# not have them itself.
_INSTANCE_MEMBERS = ("id", "severity")


@attrs.frozen
class RulePlugin:
    """One installed rule plugin: an entry point of the group ``kaprules.rules``.

    Args:
        name: The entry's name: the rule's id in protocol files.
        value: Where the class is, as ``module:Class``.
        distribution: The name of the distribution that installed it (None when the
            entry point's metadata does not say).
        version: That distribution's version (None when unknown).
    """

    name: str
    value: str
    distribution: str | None = None
    version: str | None = None

    @property
    def label(self) -> str:
        """How messages name the plugin: its name, entry point and distribution."""
        return f"plugin {echo(self.name)} ({self._origin()})"

    def _origin(self) -> str:
        # Metadata is another package's text: shown bounded and escaped.
        origin = f"entry point {ENTRY_POINT_GROUP}: {shown_id(self.value, 120)}"
        if self.distribution is not None:
            origin += f", from {shown_id(self.distribution)}"
            if self.version is not None:
                origin += f" {shown_id(self.version)}"
        return origin

    def load(self) -> type[Any]:
        """Import the plugin's class and check that it is a rule class; cached.

        Returns:
            The rule class.

        Raises:
            ProtocolError: The plugin cannot be imported, or what it gives is not a class
                with the members of [`kaprules.Rule`][kaprules.Rule]; one problem naming
                the entry point.
        """
        found = _loaded.get(self)
        if found is None:
            found = _load(self)
            _loaded[self] = found
        if isinstance(found, ProtocolError):
            raise found
        return found

    def to_dict(self) -> dict[str, str | None]:
        """The plugin as plain data, as ``kaprules rules --plugins --format json`` lists it.

        Returns:
            ``{"name", "value", "distribution", "version"}``.
        """
        return {
            "name": self.name,
            "value": self.value,
            "distribution": self.distribution,
            "version": self.version,
        }


def installed_plugins() -> tuple[RulePlugin, ...]:
    """Every installed rule plugin, by name, without importing any of them.

    The installed distributions are read once and remembered; call
    [`clear_cache`][kaprules.plugins.clear_cache] after installing one into a running
    interpreter.

    Returns:
        The plugins, sorted by name (then distribution).
    """
    found = [_plugin(ep) for eps in _by_name().values() for ep in eps]
    return tuple(sorted(found, key=lambda p: (p.name, p.distribution or "", p.value)))


def load_rule_class(name: str) -> type[Any] | None:
    """The rule class of the installed plugin named ``name``, or None when there is none.

    Args:
        name: A rule id as a protocol file names it, such as ``"at-most-in-days"``.

    Returns:
        The class (imported, checked and cached), or None when no installed distribution
        gives a plugin of that name.

    Raises:
        ProtocolError: The plugin cannot be imported, does not give a rule class, or two
            distributions give plugins of that name; one problem naming the entry points.
    """
    eps = _by_name().get(name)
    if not eps:
        return None
    plugins = sorted({_plugin(ep) for ep in eps}, key=lambda p: (p.distribution or "", p.value))
    if len(plugins) > 1:
        raise ProtocolError(
            Problem(
                (),
                f"plugin {echo(name)} is given by {len(plugins)} entry points ("
                + "; ".join(p._origin() for p in plugins)
                + "); uninstall all but one",
                "plugin",
            )
        )
    return plugins[0].load()


def plugin_of(cls: object) -> RulePlugin | None:
    """The installed plugin that gave ``cls``, or None for a class that no plugin gave.

    Args:
        cls: A rule class.

    Returns:
        The plugin, once it has been loaded (`RulePlugin.load`), else None.
    """
    return next((p for p, found in _loaded.items() if found is cls), None)


def plugins_used(rules: Iterable[object]) -> tuple[RulePlugin, ...]:
    """The installed plugins whose rule classes ``rules`` are instances of.

    What an audit names beside a protocol's digest: the digest covers a rule's id and
    parameters, not the code that judges them, which is the distribution's at its version.

    Args:
        rules: Rules (a protocol's ``rules``, or those of several versions).

    Returns:
        Each plugin once, sorted by name (then distribution): a rule of kaprules' own, or
        of a class given as ``rule_classes``, names none.
    """
    found = {p for rule in rules if (p := plugin_of(type(rule))) is not None}
    return tuple(sorted(found, key=lambda p: (p.name, p.distribution or "", p.value)))


def unreadable_distributions() -> tuple[str, ...]:
    """The installed distributions whose entry points cannot be read, skipped by the scan.

    Returns:
        One line each: where the distribution's metadata is, and what went wrong.
    """
    _by_name()
    return tuple(_unreadable)


def clear_cache() -> None:
    """Forget the installed plugins and loaded classes, so that they are read again.

    Needed only when distributions are installed or removed while kaprules runs (tests do).
    """
    global _entry_points
    import importlib

    _entry_points = None
    _loaded.clear()
    # importlib.metadata remembers the directories it has read; make it look again.
    importlib.invalidate_caches()


def _by_name() -> dict[str, list[EntryPoint]]:
    global _entry_points
    if _entry_points is None:
        import re
        from importlib.metadata import distributions

        table: dict[str, list[EntryPoint]] = {}
        seen: set[str] = set()
        _unreadable.clear()
        # Distribution by distribution, as importlib.metadata.entry_points() reads them (the
        # first of a name on sys.path wins), so that one malformed entry_points.txt
        # elsewhere is named instead of hiding every plugin.
        for dist in distributions():
            try:
                name = dist.name
                key = re.sub(r"[-_.]+", "-", name).lower() if isinstance(name, str) else None
                if key is not None and key in seen:
                    continue
                eps = [ep for ep in dist.entry_points if ep.group == ENTRY_POINT_GROUP]
            except Exception as exc:  # another package's metadata may be anything
                shown = shown_id(str(getattr(dist, "_path", "a distribution")), 200)
                _unreadable.append(f"{shown}: {type(exc).__name__}")
                continue
            if key is not None:
                seen.add(key)
            for ep in eps:
                table.setdefault(ep.name, []).append(ep)
        _entry_points = table
    return _entry_points


def _plugin(ep: EntryPoint) -> RulePlugin:
    dist = ep.dist
    if dist is None:
        return RulePlugin(ep.name, ep.value)
    return RulePlugin(ep.name, ep.value, dist.name, dist.version)


def _load(plugin: RulePlugin) -> type[Any] | ProtocolError:
    from importlib.metadata import EntryPoint

    entry = EntryPoint(plugin.name, plugin.value, ENTRY_POINT_GROUP)
    try:
        cls = entry.load()
    except (Exception, SystemExit) as exc:  # a plugin's module may raise anything
        return ProtocolError(
            Problem((), f"{plugin.label} cannot be imported: {raised(exc)}", "plugin")
        )
    problem = class_problem(cls)
    if problem is not None:
        return ProtocolError(
            Problem((), f"{plugin.label} is not a rule class: {problem}", "plugin")
        )
    return cls  # type: ignore[no-any-return]


def raised(exc: BaseException) -> str:
    """What an exception raised by someone else's code says: its type, and its text.

    Its text is read as the exception allows: one whose ``__str__`` raises is named by its
    type alone. Escaped, on one line, at most 120 characters.

    Args:
        exc: The exception.

    Returns:
        ``"TypeName"`` or ``"TypeName: 'text'"``.
    """
    name = _type_name(exc)
    try:
        detail = str(exc)
    except Exception:  # a plugin's __str__ may raise anything
        return name
    if not isinstance(detail, str) or not detail:
        return name
    return f"{name}: {echo(detail, 120)}"


def _type_name(obj: object) -> str:
    try:
        name = type(obj).__name__
    except Exception:  # a metaclass may raise anything
        return "an object"
    return shown_id(name) if isinstance(name, str) else "an object"


def class_problem(obj: object) -> str | None:
    """Why ``obj`` is not a rule class, or None when it is one.

    A rule class is a class with the members of [`kaprules.Rule`][kaprules.Rule]
    ([`RULE_MEMBERS`][kaprules.rules.RULE_MEMBERS]); ``id`` and ``severity`` may be set per
    rule instead. Reading a member on the class must not raise (a descriptor or metaclass
    that does is named). The rule it builds is checked in full when a protocol holds it.

    Args:
        obj: What was given as a rule class.

    Returns:
        The reason, to follow ``"... is not a rule class: "``, or None.
    """
    if not inspect.isclass(obj):
        return f"it is {_a(_type_name(obj))}, not a class"
    try:
        return _members_problem(obj)
    except Exception as exc:  # a metaclass may raise anything
        return f"reading the class raised {raised(exc)}"


def _members_problem(cls: type[Any]) -> str | None:
    name = shown_id(cls.__name__)
    # A class is always callable; its instances are only when it defines __call__.
    own = {member for klass in cls.__mro__[:-1] for member in vars(klass)}
    missing: list[str] = []
    for member in RULE_MEMBERS:
        if member in _INSTANCE_MEMBERS:
            continue
        if member == "__call__":
            if member not in own:
                missing.append(member)
            continue
        try:
            there = hasattr(cls, member)
        except Exception as exc:  # someone else's descriptor
            return f"reading {name}.{member} on the class raised {raised(exc)}"
        if not there:
            missing.append(member)
    if missing:
        return (
            f"{name} lacks {', '.join(missing)} (see kaprules.Rule; inherit "
            "kaprules.BaseRule for the shared members)"
        )
    return None


def _a(noun: str) -> str:
    return f"an {noun}" if noun[:1].lower() in "aeiou" else f"a {noun}"
