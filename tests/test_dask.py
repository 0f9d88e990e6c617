"""kaprules.dask on a local scheduler: the same results and summary as kaprules.audit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dask.bag
import dask.dataframe
import pytest

import kaprules
from kaprules.auditing import read_records
from kaprules.dask import audit_bag, audit_dataframe

from conftest import EXAMPLES
from helpers import make_audit_data, write_lines

read_text: Any = dask.bag.read_text  # untyped


@pytest.mark.parametrize("scheduler", ["sync", "threads"])
def test_a_bag_audit_equals_kaprules_audit(tmp_path: Path, scheduler: str) -> None:
    data = write_lines(tmp_path / "d.jsonl", 1500, seed=4)
    bag = read_text(str(data), blocksize=100_000)
    assert bag.npartitions > 5
    run = audit_bag(bag, source=str(data))
    expected = kaprules.audit(read_records([str(data)]))
    assert run.results.compute(scheduler=scheduler) == list(expected)
    summary = run.summary(scheduler=scheduler).to_dict()
    assert summary == {**expected.summary.to_dict(), "input_sha256": None}
    assert [item["line"] for item in summary["rejected"]] == [500, 1500]


def test_a_dataframe_audit_equals_kaprules_audit_of_the_csv(tmp_path: Path) -> None:
    table = tmp_path / "t.csv"
    rows = list(make_audit_data.csv_rows(300, 6))
    table.write_text("\n".join(",".join(row) for row in rows) + "\n")
    # One partition per file keeps each course's rows together; several files, several
    # partitions.
    halves = [tmp_path / "a.csv", tmp_path / "b.csv"]
    cut = next(i for i in range(150, len(rows)) if rows[i][0] != rows[i - 1][0])
    halves[0].write_text("\n".join(",".join(r) for r in rows[:cut]) + "\n")
    halves[1].write_text("\n".join(",".join(r) for r in [rows[0], *rows[cut:]]) + "\n")
    frame = dask.dataframe.read_csv([str(h) for h in halves], dtype=str, blocksize=None)
    assert frame.npartitions == 2
    results = audit_dataframe(frame).results.compute(scheduler="sync")
    expected = list(kaprules.audit(read_records([str(table)])))
    assert [(r.course_id, r.findings, r.rejected) for r in results] == [
        (r.course_id, r.findings, r.rejected) for r in expected
    ]


def test_the_shipped_example_through_dask() -> None:
    bag = read_text(str(EXAMPLES / "audit" / "courses.jsonl"), blocksize=3000)
    summary = audit_bag(bag, kaprules.STANDARD_V2).summary(scheduler="sync")
    assert summary.lines_read == 42
    assert summary.protocol_version == "2"
