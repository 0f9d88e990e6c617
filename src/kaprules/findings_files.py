r"""The findings file of an audit: a row per finding and per rejected record.

``kaprules audit --findings OUT.jsonl`` writes JSON Lines, ``OUT.csv`` CSV (gzip-compressed
when the name ends in ``.gz``, ``OUT.csv.gz``, as inputs of that name are read: see
`form_of`); both are described here once, and
[`Audit.findings_text`][kaprules.Audit.findings_text] yields them. A finding's row holds
its record's ``line`` and ``course`` id, the finding's ``rule``, ``severity``, ``sessions``
and ``message``; a rejected record's row holds ``line``, ``course`` (when known) and the
``rejected`` reason. With several inputs, each row starts with its ``input``. Text from
outside is written as `kaprules._text` says: JSON Lines hold it exactly (a control
character as JSON's escape), but a lone surrogate (which no UTF-8 file can hold) as the
text ``\udfff``; a CSV cell has its control characters and lone surrogates as backslash
escapes, and a leading ``'`` when a spreadsheet would run it as a formula.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from typing import Any, Literal, Protocol

from kaprules import _fast, _text
from kaprules.errors import InputError

__all__ = [
    "FINDINGS_COLUMNS",
    "FORMULA_START",
    "FindingsForm",
    "RowSource",
    "cell",
    "form_of",
    "header",
    "input_name",
    "rows",
]


class RowSource(Protocol):
    """What a row is written from: an audit's result (`kaprules.CourseResult`) for one record."""

    @property
    def line(self) -> int:
        """The record's 1-based line."""

    @property
    def source(self) -> str:
        """The input it came from."""

    @property
    def course_id(self) -> str | None:
        """The course's id, or None."""

    @property
    def findings(self) -> tuple[dict[str, Any], ...]:
        """Its findings, as `Finding.to_dict` gives them."""

    @property
    def rejected(self) -> str | None:
        """Why the record is not a course, or None."""


FindingsForm = Literal["jsonl", "csv"]
"""The two forms of a findings file: JSON Lines, or CSV."""

FINDINGS_COLUMNS = (
    "line",
    "course",
    "rule",
    "severity",
    "sessions",
    "message",
    "rejected",
    "protocol_version",
    "waiver_reason",
    "waiver_approved_by",
    "waiver_approved_at",
)
"""The findings CSV's columns, after ``input`` for several inputs: a finding fills all but
``rejected`` (and the ``waiver_`` columns when it is not waived); a rejected record fills
``line``, ``course`` (when known) and ``rejected``. A JSON Lines row has the keys up to
``rejected``, but for ``rejected`` on a finding's row and ``rule``, ``severity``,
``sessions`` and ``message`` on a rejected record's; a finding's row ends with
``protocol_version`` and ``waiver`` (``{"reason", "approved_by", "approved_at"}`` or
null). A waiver's note is never written."""

_NO_WAIVER = ("", "", "")

FORMULA_START = _text.FORMULA_START
"""What a spreadsheet reads as the start of a formula (OWASP's list for CSV injection)."""

# What json.dumps(..., ensure_ascii=False) writes for a string, without its per-call cost
# (it builds an encoder each time): a finding row is written several times faster.
_quote: Any = json.encoder.encode_basestring


def cell(value: object) -> object:
    r"""A findings CSV cell: text a spreadsheet would run as a formula gets a leading ``'``.

    Args:
        value: The cell's value.

    Returns:
        The value (`kaprules._text.csv_cell`): control characters and lone surrogates as
        backslash escapes, and ``'`` before text that starts as a formula does.
    """
    return _text.csv_cell(value)


def input_name(source: str) -> str:
    r"""An input's name as rows write it: text any UTF-8 file can hold.

    A file name that is not UTF-8 reaches Python with its undecodable bytes as lone
    surrogates (``surrogateescape``), which no UTF-8 file can hold: they are written as
    ``\xff`` escapes instead (any other lone surrogate as ``\udc00``). Other names are
    unchanged.

    Args:
        source: The name, as given.

    Returns:
        The name to write.
    """
    return _text.file_name(source)


def form_of(path: str) -> FindingsForm:
    """The form of a findings file named ``path``: CSV for ``.csv`` (``.csv.gz``), else JSON Lines.

    The name's case does not matter, and a final ``.gz`` (compression) is not the form.

    Args:
        path: The file's name.

    Returns:
        ``"csv"`` or ``"jsonl"``.
    """
    name = path.lower().removesuffix(".gz")
    return "csv" if name.endswith(".csv") else "jsonl"


def header(form: FindingsForm, *, inputs: bool) -> str:
    """The text a findings file starts with: the CSV header row, or nothing for JSON Lines.

    Args:
        form: ``"jsonl"`` or ``"csv"``.
        inputs: Rows name their input (an audit of several inputs).

    Returns:
        The header's text, ending in a line break; ``""`` for JSON Lines.

    Raises:
        InputError: ``form`` is neither.
    """
    _check(form)
    if form != "csv":
        return ""
    return _Text("csv", inputs).row([*(["input"] if inputs else []), *FINDINGS_COLUMNS])


def rows(results: Iterable[RowSource], form: FindingsForm, *, inputs: bool) -> str:
    """The rows of some results (`CourseResult`), in order, as one text.

    Args:
        results: The results; a compliant course without findings has no row.
        form: ``"jsonl"`` or ``"csv"``.
        inputs: Rows name their input (an audit of several inputs).

    Returns:
        The rows, each ending in a line break.

    Raises:
        InputError: ``form`` is neither.
    """
    _check(form)
    text = _Text(form, inputs)
    for result in results:
        if result.findings or result.rejected is not None:
            text.add(result)
    written = "".join(text.parts)
    # A CSV cell is escaped as it is written (cell); JSON text once, here, where it is
    # whole (found at once when there is nothing to escape).
    return _text.json_text(written) if form == "jsonl" else written


def _waiver(waiver: dict[str, Any] | None) -> dict[str, Any] | None:
    # What a findings file shows of a waiver: never its note.
    if waiver is None:
        return None
    return {k: waiver[k] for k in ("reason", "approved_by", "approved_at")}


def _check(form: object) -> None:
    if form not in ("jsonl", "csv"):
        raise InputError("form: must be 'jsonl' or 'csv'")


class _Text:
    """Rows gathered as text: CSV through the csv module, JSON Lines by hand."""

    def __init__(self, form: FindingsForm, inputs: bool) -> None:
        self.parts: list[str] = []
        self.inputs = inputs
        # Rows end in "\r\n" for the writer, so that it quotes a cell holding a lone "\r"
        # (with "\n" it would not, and the cell would break its row); kept with "\n".
        self._csv = csv.writer(self, lineterminator="\r\n") if form == "csv" else None

    def write(self, row: str) -> None:
        self.parts.append(row[:-2] + "\n")

    def row(self, values: list[Any]) -> str:
        assert self._csv is not None
        self._csv.writerow([cell(value) for value in values])
        return self.parts.pop()

    def add(self, result: Any) -> None:
        source = input_name(result.source)
        head = [source] if self.inputs else []
        if result.rejected is not None:
            # A rejected record is a row too: the findings file lists every problem record.
            if self._csv is not None:
                self.parts.append(
                    self.row(
                        [
                            *head,
                            result.line,
                            result.course_id,
                            *("", "", "", ""),
                            result.rejected,
                            *("", *_NO_WAIVER),
                        ]
                    )
                )
                return
            entry: dict[str, Any] = {"input": source} if self.inputs else {}
            entry |= {"line": result.line, "course": result.course_id, "rejected": result.rejected}
            self.parts.append(json.dumps(entry, ensure_ascii=False) + "\n")
            return
        if self._csv is not None:
            for finding in result.findings:
                values = [*head, result.line, result.course_id, finding["rule"]]
                values += [finding["severity"], " ".join(finding["sessions"]), finding["message"]]
                waiver = finding.get("waiver")
                waived = (
                    _NO_WAIVER
                    if waiver is None
                    else (waiver["reason"], waiver["approved_by"], waiver["approved_at"])
                )
                version = finding.get("protocol_version") or ""
                self.parts.append(self.row([*values, "", version, *waived]))
            return
        if not _fast.ENABLED:
            for finding in result.findings:
                entry = {"input": source} if self.inputs else {}
                entry |= {"line": result.line, "course": result.course_id}
                entry |= {"rule": finding["rule"], "severity": finding["severity"]}
                entry |= {"sessions": list(finding["sessions"]), "message": finding["message"]}
                entry |= {
                    "protocol_version": finding.get("protocol_version"),
                    "waiver": _waiver(finding.get("waiver")),
                }
                self.parts.append(json.dumps(entry, ensure_ascii=False) + "\n")
            return
        # The text of json.dumps({"input"?, "line", "course", "rule", "severity", "sessions",
        # "message", "protocol_version", "waiver"}, ensure_ascii=False), one line per finding.
        start = f'{{"input": {_quote(source)}, ' if self.inputs else "{"
        course = "null" if result.course_id is None else _quote(result.course_id)
        start += f'"line": {int(result.line)}, "course": {course}, "rule": '
        for finding in result.findings:
            sessions = ", ".join(map(_quote, finding["sessions"]))
            version = finding.get("protocol_version")
            waiver = finding.get("waiver")
            shown = "null" if waiver is None else json.dumps(_waiver(waiver), ensure_ascii=False)
            tail = (
                f', "protocol_version": {"null" if version is None else _quote(version)}, '
                f'"waiver": {shown}'
            )
            self.parts.append(
                f'{start}{_quote(finding["rule"])}, "severity": {_quote(finding["severity"])}, '
                f'"sessions": [{sessions}], "message": {_quote(finding["message"])}{tail}}}\n'
            )
