"""The vectorised forms evaluated over a chunk's courses, and their findings assembled."""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from kaprules._columnar.columns import Columns
from kaprules._columnar.decode import (
    LINE,
    decode_frame,
    quotes_between,
    read_courses,
    session_strings,
    utf8,
)
from kaprules._columnar.forms import forms_of
from kaprules._columnar.rows import csv_row, jsonl_row
from kaprules._columnar.sessions import labelled, session_rows
from kaprules._moments import AsOf
from kaprules.findings_files import FindingsForm, input_name
from kaprules.protocol import Protocol

__all__ = [
    "Known",
    "Vector",
    "assembled",
    "courses_of",
    "evaluated",
    "plan_of",
    "read_tables",
    "vector",
]


_Plan = tuple[Columns, list[tuple[int, tuple[Any, ...]]]]


# The plans of the last few protocols, by identity: a protocol need not be hashable (a
# rule with a list among its fields), and equal protocols may word messages apart
# (Fasting(hours=-0.0) says "-0 h"). Each entry holds its protocol, so its id is not reused.
_PLANS: dict[int, tuple[Protocol, _Plan]] = {}


def plan_of(protocol: Protocol) -> _Plan:
    """The protocol's finding forms, and the columns they read: built once per protocol."""
    kept = _PLANS.get(id(protocol))
    if kept is not None and kept[0] is protocol:
        return kept[1]
    columns = Columns(protocol.series_length)
    plan = columns, forms_of(protocol, columns)
    if len(_PLANS) >= 8:
        _PLANS.clear()
    _PLANS[id(protocol)] = (protocol, plan)
    return plan


def finding_table(sessions: Any, columns: Columns, forms: list[tuple[int, tuple[Any, ...]]]) -> Any:
    """The findings of the certain sessions' courses, a row each (lazy).

    ``row, drawable, form, rule, first, places, ids, message, expected, actual``.
    """
    import polars as pl

    # Each form's rows, once; any null (an unknown) counts as a finding: the course is
    # then read again. Each step is collected before the next reads it twice: a plan
    # that reads a frame twice computes it twice.
    sessions = sessions.with_columns(
        [form[0].fill_null(True).alias(f"_at{k}") for k, (_, form) in enumerate(forms)]
    ).collect()
    # Only the forms with a finding here are written out (one keeps the table's columns):
    # each costs its plan, found or not.
    fired = sessions.select([pl.col(f"_at{k}").any() for k in range(len(forms))]).row(0)
    live = [k for k, any_found in enumerate(fired) if any_found] or [0]
    hit = pl.any_horizontal([pl.col(f"_at{k}") for k in live])
    flagged = _within(sessions, sessions.filter(hit)["row"])
    flagged = labelled(flagged.lazy()).collect()
    # A course's grouped texts and lists, only for the courses where a form reads them.
    # They join only the rows of the findings that read them, never every session row: a
    # course's joined labels on each of its sessions grew with the square of its length
    # (3 courses of 3,000 sessions took 862 MiB; now 142).
    readers = [k for k in live if _reads(forms[k][1], columns.groups)]
    grouped = None
    if readers:
        wanted = pl.any_horizontal([pl.col(f"_at{k}") for k in readers])
        grouped = _within(flagged, flagged.filter(wanted)["row"])
        grouped = grouped.group_by("row").agg(**dict(columns.groups)).lazy()
    # Ids as messages show them as they are: printable ASCII, 40 characters at most.
    drawable = pl.col("sid").str.contains(r"^[ -~]{1,40}$").all().over("row")
    # Computed once here: the forms below all read it, and Polars would compute it again
    # for each of them.
    flagged = flagged.with_columns(drawable=drawable.fill_null(False)).lazy()
    parts = []
    for number in live:
        index, (_, message, expected, actual, named) = forms[number]
        if named == "this":
            ids, places = pl.concat_list("sid"), pl.concat_list("place")
        elif named == "pair":
            ids = pl.concat_list(pl.col("prev_sid"), pl.col("sid"))
            places = pl.concat_list(pl.col("place") - 1, pl.col("place"))
        elif named is None:
            ids = pl.lit([], dtype=pl.List(pl.String))
            places = pl.lit([], dtype=pl.List(pl.Int64))
        else:
            ids, places = pl.col(named + "_ids"), pl.col(named + "_places")
        found = flagged.filter(pl.col(f"_at{number}"))
        if grouped is not None and number in readers:
            found = found.join(grouped, on="row", how="left", maintain_order="left")
        parts.append(
            found.select(
                "row",
                "drawable",
                form=pl.lit(number, dtype=pl.Int64),
                rule=pl.lit(index, dtype=pl.Int64),
                first=places.list.first().fill_null(-1).cast(pl.Int64),
                places=places.cast(pl.List(pl.Int64)),
                ids=ids,
                message=message,
                expected=expected,
                actual=actual,
            )
        )
    return pl.concat(parts).sort("row", "first", "rule", "form")


def _within(frame: Any, rows: Any) -> Any:
    """The rows of ``frame`` whose course (``row``) is among ``rows``."""
    import polars as pl

    return frame.filter(pl.col("row").is_in(rows.unique().implode()))


def _reads(form: tuple[Any, ...], groups: list[tuple[str, Any]]) -> bool:
    """Whether a finding form reads any of the grouped columns (`Columns.joined`)."""
    _, message, expected, actual, named = form
    names = {name for name, _ in groups}
    read = {named} if isinstance(named, str) else set()
    read.update(f"{named}_ids" for named in list(read))
    for part in (message, expected, actual):
        if not isinstance(part, str):
            read.update(part.meta.root_names())
    return not names.isdisjoint(read)


def assembled(table: Any, protocol: Protocol) -> dict[int, tuple[dict[str, Any], ...] | None]:
    """Each course's findings from the table of `findings`, in report order.

    None for a course whose findings cannot be drawn here (an id messages would echo, an
    unknown); a course absent from the answer has no finding.
    """
    rules: list[Any] = list(protocol.rules)  # built-in rules: BaseRule's help
    heads = [(rule.id, getattr(rule.severity, "value", rule.severity)) for rule in rules]
    helps = [None if rule.help is None else rule.help.to_dict() for rule in rules]
    out: dict[int, tuple[dict[str, Any], ...] | None] = {}
    found: dict[int, list[tuple[Any, dict[str, Any]]]] = {}
    decoded: dict[str, Any] = {}
    # Column by column: several times faster than row tuples.
    columns = [
        table[name].to_list()
        for name in ("row", "drawable", "rule", "places", "ids", "message", "expected", "actual")
    ]
    for row, drawable, index, places, ids, message, expected, actual in zip(*columns, strict=True):
        if not drawable or message is None or expected is None or actual is None:
            out[row] = None
            continue
        if expected not in decoded:
            decoded[expected] = json.loads(expected)
        if actual not in decoded:
            decoded[actual] = json.loads(actual)
        rule_id, severity = heads[index]
        help = helps[index]
        finding = {
            "rule": rule_id,
            "severity": severity,
            "sessions": ids,
            "message": message,
            "expected": decoded[expected],
            "actual": decoded[actual],
            "help": None if help is None else help.copy(),
            "waiver": None,  # a course with waivers is never read here
            "protocol_version": protocol.version,
        }
        # The order of protocol._findings: first session, rule, sessions, message.
        key = ((places[:1] or [-1]), index, places, message)
        pairs = found.get(row)
        if pairs is None:
            found[row] = [(key, finding)]
        else:
            pairs.append((key, finding))
    for row, pairs in found.items():
        if row in out:
            continue
        if len(pairs) > 1:
            pairs.sort(key=lambda pair: pair[0])
        out[row] = tuple(f for _, f in pairs)
    return out


Known = tuple[str | None, int, tuple[dict[str, Any], ...]]


def evaluated(
    data: bytes, protocol: Protocol, as_of: AsOf = None
) -> tuple[dict[int, Known], tuple[list[int], list[str | None], list[int]]]:
    """The courses of the lines read here, by their row: those with findings, and the rest.

    Returns ``{row: (course id, sessions, findings)}`` of the courses with findings, and
    ``(rows, course ids, sessions)`` of those without, rows ascending (see `tables`).
    """
    import polars as pl

    tables = read_tables(data, protocol, as_of)
    if tables is None:
        return {}, ([], [], [])
    heads, table = tables
    flagged = table["row"].unique()
    found = assembled(table, protocol)
    plain = heads.filter(~pl.col("row").is_in(flagged.implode()))
    compliant = (plain["row"].to_list(), plain["course_id"].to_list(), plain["n"].to_list())
    known: dict[int, Known] = {}
    flagged_heads = heads.filter(pl.col("row").is_in(flagged.implode()))
    rows, ids, counts = (flagged_heads[name].to_list() for name in ("row", "course_id", "n"))
    for row, course_id, count in zip(rows, ids, counts, strict=True):
        findings = found[row]
        if findings is not None:
            known[row] = (course_id, count, findings)
    return known, compliant


def read_tables(data: bytes, protocol: Protocol, as_of: AsOf = None) -> tuple[Any, Any] | None:
    """The courses read here with certainty, and their findings; None: no course.

    Returns ``heads`` (``row, course_id, n``: one row per course, rows ascending) and the
    findings table of `findings`. ``data`` holds lines, each ending in a newline.
    """
    import polars as pl

    courses = courses_of(data)
    if courses is None:
        return None
    sessions = session_rows(courses, as_of)
    taken = sessions.filter(pl.col("place") == 0)["row"]
    heads = courses.filter(pl.col("row").is_in(taken.implode())).select("row", "course_id", "n")
    columns, forms = plan_of(protocol)
    table = finding_table(sessions.lazy(), columns, forms).collect()
    return heads.sort("row"), table


def courses_of(data: bytes) -> Any | None:
    """The lines of ``data`` of the course's shape, decoded (`read_courses`); None: none.

    Polars reads them straight from the bytes. Bytes it refuses (a line it cannot decode)
    send them the slow way: line by line into a frame, the undecodable ones left out. The
    courses come with ``course_quotes`` (`read_courses`) when any line's quotes are
    still to be accounted for; without, when the lines' quotes were counted at once and
    their decoded strings account for every one: no line then gave a key twice.
    """
    import polars as pl

    # ASCII is UTF-8, and telling so makes no text of the chunk (megabytes of it).
    if not data.isascii() and not utf8(data):
        # The lines that are not UTF-8 become empty here.
        data = b"\n".join(line if utf8(line) else b"" for line in data.split(b"\n"))
    # Each line's offset, where Polars keeps every byte of it (it drops a CR before a LF).
    spans = b"\r" not in data
    try:
        lines = pl.scan_lines(data).with_row_index("row")
        if spans:
            size = pl.col("line").str.len_bytes().cast(pl.Int64) + 1
            lines = lines.with_columns(at=size.cum_sum() - size)
        courses = read_courses(lines.filter(pl.col("line").str.contains(LINE))).collect()
    except pl.exceptions.PolarsError:
        texts = data.decode("utf-8").split("\n")[:-1]
        frame = pl.DataFrame({"line": texts}, schema={"line": pl.String}).with_row_index("row")
        decoded = decode_frame(frame.filter(pl.col("line").str.contains(LINE)))
        if decoded is None:
            return None
        courses = read_courses(decoded.lazy()).collect()
        return courses if courses.height else None
    if courses.height == 0:
        return None
    if not spans:
        return courses
    expected = courses["strings"].sum() + session_strings(courses)
    if quotes_between(data, courses) == expected:
        return courses.drop("at", "size")
    # Some line gave a key twice: each line's own count finds it.
    places = courses.select("at", "size").iter_rows()
    own = pl.Series([data.count(b'"', at, at + size) for at, size in places], dtype=pl.Int64)
    return courses.with_columns(course_quotes=own - pl.col("strings")).drop("at", "size")


class Vector(NamedTuple):
    """What `vector` makes of the courses read with certainty."""

    taken: list[int]  # their rows, ascending: every other record goes per record
    compliant: int  # courses without an error finding
    with_errors: int
    rules: dict[str, list[int]]  # rule id: [courses, findings, waived]
    rows: tuple[list[int], list[str]]  # each finding's position, and its findings row
    drawable: list[tuple[int, int]]  # (position, row) of the first such: a report's draw


def vector(
    heads: Any,
    table: Any,
    protocol: Protocol,
    form: FindingsForm | None,
    inputs: bool,
    blocks: list[tuple[int, int, str, int]],
    sample: int,
) -> Vector:
    """The counts and findings rows of the courses read with certainty, as columns.

    A course whose findings cannot be drawn here with certainty (see `assembled`, and a
    message with a control character, which the rows would escape) is not taken. The
    first ``sample`` courses with an error finding are named for a report to draw.
    """
    import polars as pl

    rules: list[Any] = list(protocol.rules)
    severities = [getattr(rule.severity, "value", rule.severity) for rule in rules]
    doubtful = (
        ~pl.col("drawable")
        | pl.col("message").is_null()
        | pl.col("expected").is_null()
        | pl.col("actual").is_null()
        | pl.col("message").str.contains(r"[\x00-\x1f]")
    )
    bad = table.filter(doubtful)["row"].unique()
    # Only the findings of the courses taken (heads) are counted and written here.
    table = table.filter(~pl.col("row").is_in(bad.implode()))
    table = table.filter(pl.col("row").is_in(heads["row"].implode()))
    heads = heads.filter(~pl.col("row").is_in(bad.implode()))
    taken = heads["row"].to_list()
    errors = [index for index, severity in enumerate(severities) if severity == "error"]
    with_errors = table.filter(pl.col("rule").is_in(errors))["row"].unique().sort()
    counts = table.group_by("rule").agg(pl.col("row").n_unique().alias("courses"), pl.len())
    found: dict[str, list[int]] = {}
    for index, courses, findings in counts.iter_rows():
        found[rules[index].id] = [courses, findings, 0]
    # Where each row's record is: its block (by first row), its line and its position.
    starts = pl.Series([b[0] for b in blocks], dtype=pl.Int64)
    block = pl.lit(starts).search_sorted(pl.col("row"), side="right").cast(pl.Int64) - 1
    offset = pl.col("row") - pl.lit(starts).gather(block)
    line = offset + pl.lit(pl.Series([b[3] for b in blocks], dtype=pl.Int64)).gather(block)
    place = offset + pl.lit(pl.Series([b[1] for b in blocks], dtype=pl.Int64)).gather(block)
    rows: tuple[list[int], list[str]] = ([], [])
    if form is not None and table.height:
        table = table.join(heads.select("row", "course_id"), on="row", how="left")
        # The order of protocol._findings (`assembled`): first session, rule, sessions,
        # message.
        table = table.sort("row", "first", "rule", "places", "message")
        sources = [input_name(b[2]) for b in blocks]
        render = csv_row if form == "csv" else jsonl_row
        written = table.select(
            place.alias("position"),
            render(line, block, sources if inputs else None, rules, severities, protocol.version),
        )
        rows = written["position"].to_list(), written["text"].to_list()
    drawn = heads.filter(pl.col("row").is_in(with_errors.implode())).head(sample)
    drawn = drawn.select(place.alias("position"), "row")
    return Vector(
        taken,
        heads.height - with_errors.len(),
        with_errors.len(),
        found,
        rows,
        [(position, row) for position, row in drawn.iter_rows()],
    )
