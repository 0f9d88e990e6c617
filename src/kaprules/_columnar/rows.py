"""Findings rows as text, written as columns: `kaprules.findings_files`' rows, exactly."""

from __future__ import annotations

import json
import re
from typing import Any

from kaprules.findings_files import FORMULA_START

__all__ = ["csv_row", "jsonl_row", "quote"]


# What json.dumps(..., ensure_ascii=False) writes for a string (findings_files' rows).
quote: Any = json.encoder.encode_basestring


def _json_text(text: Any) -> Any:
    """A text column as JSON writes it (``ensure_ascii=False``): no control characters."""
    import polars as pl

    escaped = text.str.replace_all("\\", "\\\\", literal=True)
    escaped = escaped.str.replace_all('"', '\\"', literal=True)
    return pl.concat_str([pl.lit('"'), escaped, pl.lit('"')])


def _csv_cell(text: Any) -> Any:
    """A text column as a findings CSV cell (`findings_files.cell`, then csv's quoting)."""
    import polars as pl

    starts = "".join(re.escape(c) for c in FORMULA_START)
    text = pl.when(text.str.contains(f"^[{starts}]")).then(pl.lit("'") + text).otherwise(text)
    quoted = pl.concat_str(
        [pl.lit('"'), text.str.replace_all('"', '""', literal=True), pl.lit('"')]
    )
    return pl.when(text.str.contains('[,"\r\n]')).then(quoted).otherwise(text)


def _each(values: list[str]) -> Any:
    """A text per value, to be gathered by an index column (a rule's, a block's)."""
    import polars as pl

    return pl.lit(pl.Series(values, dtype=pl.String))


def jsonl_row(
    line: Any,
    block: Any,
    sources: list[str] | None,
    rules: list[Any],
    severities: list[str],
    version: str,
) -> Any:
    """Each finding's row of a JSON Lines findings file (`findings_files.rows`)."""
    import polars as pl

    course = pl.col("course_id")
    parts = [
        pl.lit("{"),
        *(
            [pl.lit('"input": '), _each([quote(s) for s in sources]).gather(block), pl.lit(", ")]
            if sources is not None
            else []
        ),
        pl.lit('"line": '),
        line.cast(pl.String),
        pl.lit(', "course": '),
        pl.when(course.is_null())
        .then(pl.lit("null"))
        .otherwise(pl.lit('"') + course + pl.lit('"')),
        pl.lit(', "rule": '),
        _each([quote(rule.id) for rule in rules]).gather(pl.col("rule")),
        pl.lit(', "severity": '),
        _each([quote(severity) for severity in severities]).gather(pl.col("rule")),
        pl.lit(', "sessions": ['),
        pl.col("ids").list.eval(_json_text(pl.element())).list.join(", "),
        pl.lit('], "message": '),
        _json_text(pl.col("message")),
        # Courses with waivers are never read here: every finding is unwaived.
        pl.lit(f', "protocol_version": {quote(version)}, "waiver": null}}\n'),
    ]
    return pl.concat_str(parts).alias("text")


def csv_row(
    line: Any,
    block: Any,
    sources: list[str] | None,
    rules: list[Any],
    severities: list[str],
    version: str,
) -> Any:
    """Each finding's row of a CSV findings file (`findings_files.rows`)."""
    import polars as pl

    cells = [
        *([_csv_cell(_each(sources).gather(block))] if sources is not None else []),
        line.cast(pl.String),
        _csv_cell(pl.col("course_id").fill_null("")),
        _csv_cell(_each([rule.id for rule in rules]).gather(pl.col("rule"))),
        _csv_cell(_each(severities).gather(pl.col("rule"))),
        _csv_cell(pl.col("ids").list.join(" ")),
        _csv_cell(pl.col("message")),
        pl.lit(""),
        _csv_cell(pl.lit(version)),
        *(pl.lit("") for _ in range(3)),  # no waiver: courses with waivers go per record
    ]
    return (pl.concat_str(cells, separator=",") + pl.lit("\n")).alias("text")
