r"""Text from outside (users, plugins, files): the rules it is read by, and its escaping.

One policy for every output form, each with one function here:

- `terminal`: one line; line breaks and runs of blanks become one space; any other
  character that is not printable (control characters, ESC and BEL among them, lone
  surrogates) becomes a Python backslash escape (``\x1b``, ``\udfff``).
- `markdown`: `terminal`'s line, then ``&``, ``<`` and ``>`` as HTML entities and the
  characters of Markdown's links, images, code and tables escaped; only an http(s) URL
  becomes a link (an autolink).
- `html`: the value of every ``{{ }}`` of the HTML report (Jinja's ``finalize``): control
  characters and lone surrogates as backslash escapes; autoescaping does the markup.
- `json_text`: JSON text as written (a file, standard output): JSON escapes C0 control
  characters itself; DEL and C1 controls become JSON's ``\u009b`` (read back exactly),
  and lone surrogates, which no UTF-8 file can hold, the text ``\udfff``.
- `csv_cell`: a findings CSV cell: control characters (line breaks too) and lone
  surrogates as backslash escapes, and a leading ``'`` before what a spreadsheet would run
  as a formula.
- `file_name`: an input's name: bytes that are not UTF-8 as ``\xff``, control characters
  as backslash escapes.

An iCalendar file holds only text held to `is_line` on the way in (a protocol's id, a
calendar's location), which icalendar escapes. Messages quote a value with
`kaprules.errors.echo` (escaped and bounded) before any of these.

The loader's rules for text are stated here once too (`is_line`, `ID_PATTERN`, the
limits), and the protocol schema is generated from them (`line_schema`, `id_schema`).
"""

from __future__ import annotations

import contextlib
import html as _html
import re
from typing import Any

__all__ = [
    "FORMULA_START",
    "ID_PATTERN",
    "LINE_LIMIT",
    "RATIONALE_LIMIT",
    "UNPRINTABLE",
    "csv_cell",
    "file_name",
    "html",
    "id_schema",
    "is_id",
    "is_line",
    "json_text",
    "line_schema",
    "markdown",
    "terminal",
    "web_url",
    "whole",
]

LINE_LIMIT = 1_000
"""The most characters of one line of text in a protocol: an id, a version, a title, a
citation, a source's fields."""

RATIONALE_LIMIT = 4_000
"""The most characters of a rule's own rationale."""

ID_PATTERN = "[a-z0-9][a-z0-9._-]{0,63}"
"""A rule id: kebab-case (lower-case letters, digits, ``-``, ``.``, ``_``), at most 64
characters (a regular expression to match in full)."""

UNPRINTABLE = (
    "\\u0000-\\u001f\\u007f-\\u00a0\\u00ad\\u0600-\\u0605\\u061c\\u06dd\\u070f"
    "\\u0890-\\u0891\\u08e2\\u1680\\u180e\\u2000-\\u200f\\u2028-\\u202f\\u205f-\\u206f"
    "\\u3000\\ue000-\\uf8ff\\ufeff\\ufff9-\\ufffb"
)
"""The characters `str.isprintable` refuses that a JSON Schema pattern can name in both
ECMA-262 and Python regular expressions (inside ``[...]``): every assigned character of the
Basic Multilingual Plane that is not printable (controls, line and paragraph separators,
spaces other than the space, format characters, private use). The loader also refuses
what no portable pattern can name: unassigned code points, lone surrogates, and the
format and private-use characters beyond U+FFFF."""

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
"""What a spreadsheet reads as the start of a formula (OWASP's list for CSV injection)."""

_ID = re.compile(ID_PATTERN)


def is_line(value: object, limit: int = LINE_LIMIT) -> bool:
    """Whether ``value`` is one line of text as a protocol holds it.

    Args:
        value: The value read.
        limit: The most characters.

    Returns:
        True for a string of at most ``limit`` printable characters, not all blank.
    """
    return (
        isinstance(value, str)
        and bool(value.strip())
        and len(value) <= limit
        and value.isprintable()
    )


def is_id(value: object) -> bool:
    """Whether ``value`` is a rule id (`ID_PATTERN`)."""
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def line_schema(limit: int = LINE_LIMIT) -> dict[str, Any]:
    """The JSON Schema of `is_line` text: as exact as a portable pattern can be.

    Args:
        limit: The most characters.

    Returns:
        A schema refusing blank text, longer text and the characters of `UNPRINTABLE`.
    """
    # "not" a search, not one anchored pattern: Python's "$" also matches before a final
    # line break, ECMA-262's does not. The "not" names its type, so that a schema that
    # also takes a number (a version) takes it.
    return {
        "type": "string",
        "minLength": 1,
        "maxLength": limit,
        "pattern": "[^ ]",
        "not": {"type": "string", "pattern": f"[{UNPRINTABLE}]"},
    }


def id_schema() -> dict[str, Any]:
    """The JSON Schema of a rule id (`ID_PATTERN`)."""
    return {"type": "string", "pattern": whole(ID_PATTERN)}


def whole(pattern: str) -> str:
    r"""A JSON Schema ``pattern`` that matches the whole text to ``pattern``, or nothing.

    Args:
        pattern: A regular expression (ECMA-262 and Python alike).

    Returns:
        ``^(?:pattern)(?![\s\S])``: the lookahead is the end of the text in both, where
        Python's ``$`` also matches before a final line break.
    """
    return f"^(?:{pattern})(?![\\s\\S])"


def terminal(text: str) -> str:
    r"""``text`` as one line for a terminal or a log.

    Args:
        text: Text from outside, such as a plugin's finding message.

    Returns:
        The text with line breaks and runs of blanks as one space, and every other
        character that is not printable as a backslash escape (``\x1b``, ``\udfff``).
    """
    flat = " ".join(text.split())
    if flat.isprintable():
        return flat
    return "".join(c if c.isprintable() else _escape(c) for c in flat)


_SHORT_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(char: str) -> str:
    # As Python's repr writes it, the form errors.echo shows too.
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


# An http(s) URL as text holds it: up to a blank or a character that would end a link.
_WEB_URL = re.compile(r"https?://[^\s<>\"'`\[\]()|\\]*[^\s<>\"'`\[\]()|\\.,;:!?]", re.IGNORECASE)
# Markdown's characters for links, images, code and emphasis, and its escape ("_" only
# emphasises at a word's edge: left as it is, for identifiers such as as_of).
_MARKDOWN_SPECIAL = re.compile(r"([\\`\[\]!*])")
# What makes a line a heading, quote, list, rule or fence when text starts one.
_BLOCK_START = re.compile(r"^(?:[#+=~_-]|[0-9](?=[0-9]*[.)]))")


def markdown(text: str) -> str:
    """``text`` for Markdown: literal as written, on one line, with no markup of its own.

    Args:
        text: Text from outside, such as a clinic's rationale.

    Returns:
        `terminal`'s line with ``&<>|`` as HTML entities, Markdown's link, image, code and
        ``*`` characters backslash-escaped, a leading block marker (``#``, ``-``,
        ``1.``, ...) as an entity, and each http(s) URL as an autolink
        (``<https://...>``); no other URL (a ``javascript:`` one) becomes a link.
    """
    line = terminal(text)
    parts: list[str] = []
    start = 0
    for match in _WEB_URL.finditer(line):
        parts.append(_markdown_plain(line[start : match.start()]))
        parts.append(f"<{match.group()}>")
        start = match.end()
    parts.append(_markdown_plain(line[start:]))
    # An entity, not a backslash: no Markdown treats one as structure.
    return _BLOCK_START.sub(lambda m: f"&#{ord(m.group())};", "".join(parts), count=1)


def _markdown_plain(text: str) -> str:
    escaped = _html.escape(text, quote=False).replace("|", "&#124;")
    return _MARKDOWN_SPECIAL.sub(r"\\\1", escaped)


def html(value: object) -> object:
    r"""A value as the HTML report writes it (Jinja's ``finalize``), before autoescaping.

    Args:
        value: What a ``{{ }}`` of the template gives.

    Returns:
        A string with its control characters (but tab and line breaks, which HTML shows
        as blanks) and lone surrogates as backslash escapes (``\x1b``, ``\udfff``); any
        other value as it is.
    """
    if not isinstance(value, str) or value.isprintable():
        return value
    return _NOT_HTML.sub(lambda m: _escape(m.group()), value)


# What is not text in HTML (controls) or cannot be written at all (lone surrogates).
_NOT_HTML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def json_text(text: str) -> str:
    r"""JSON text (a document, or rows of JSON Lines) as kaprules writes it anywhere.

    JSON escapes C0 control characters itself; what it leaves raw is escaped here, inside
    the string literals that alone can hold it: DEL and the C1 controls (``\x9b`` is CSI
    to a terminal) as JSON's own ``\u009b``, read back exactly, and a lone surrogate,
    which no UTF-8 file can hold, as the text ``\udfff``.

    Args:
        text: JSON text, as ``json.dumps(..., ensure_ascii=False)`` writes it.

    Returns:
        ``text`` itself when it holds none of these (the usual case, found at once), else
        with each escaped.
    """
    if text.isascii() and "\x7f" not in text:
        return text
    return _NOT_JSON.sub(_json_escape, text)


# Left raw by json.dumps(..., ensure_ascii=False): DEL, C1 controls, lone surrogates.
_NOT_JSON = re.compile("[\x7f-\x9f\ud800-\udfff]")


def _json_escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    # A surrogate as text (a backslash, then udfff): JSON's \udfff would decode to it.
    return f"\\\\u{code:04x}" if code >= 0xD800 else f"\\u{code:04x}"


def csv_cell(value: object) -> object:
    r"""A findings CSV cell: one line of text, never a formula.

    Args:
        value: The cell's value.

    Returns:
        Text with its control characters (line breaks too) and lone surrogates as
        backslash escapes (``\x1b``, ``\udfff``), and ``'`` before text that starts as a
        formula does; any other value as it is.
    """
    if not isinstance(value, str):
        return value
    text = value if value.isprintable() else _NOT_CSV.sub(lambda m: _escape(m.group()), value)
    return "'" + text if text.startswith(FORMULA_START) else text


# Controls (a CSV cell stays on its line, and no escape sequence reaches a terminal that
# shows the file) and lone surrogates.
_NOT_CSV = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def file_name(name: str) -> str:
    r"""An input's name as outputs write it: one line of text any UTF-8 file can hold.

    A file name that is not UTF-8 reaches Python with its undecodable bytes as lone
    surrogates (``surrogateescape``): they are written as ``\xff`` escapes (any other lone
    surrogate as ``\udc00``), and control characters as ``\x1b``. Other names are
    unchanged.

    Args:
        name: The name, as given.

    Returns:
        The name to write.
    """
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        # A surrogate surrogateescape cannot give back stays, to be escaped below.
        with contextlib.suppress(UnicodeEncodeError):
            name = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return name if name.isprintable() else _NOT_CSV.sub(lambda m: _escape(m.group()), name)


def web_url(text: str) -> str | None:
    """``text`` as a documentation base URL: an http(s) URL ending in ``/``, or None.

    Only a web address, never a ``javascript:`` or ``data:`` URL, and nothing that could
    leave an HTML attribute or a Markdown link.

    Args:
        text: The URL given.

    Returns:
        The URL with a final ``/``, or None when it is not an http(s) URL.
    """
    import urllib.parse

    try:
        parts = urllib.parse.urlsplit(text)
    except ValueError:
        return None
    if (
        parts.scheme.lower() not in ("http", "https")
        or not parts.netloc
        or not text.isprintable()
        or any(c in text for c in ' "<>`\\')
    ):
        return None
    return text if text.endswith("/") else text + "/"
