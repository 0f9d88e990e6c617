"""kaprules.dask on a local scheduler: the same results and summary as kaprules.audit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

# The dask extra is optional: without it these tests are skipped, saying why.
dask_bag: Any = pytest.importorskip(
    "dask.bag", reason="kaprules.dask needs the dask extra: pip install '.[dask]'"
)
dask_dataframe: Any = pytest.importorskip(
    "dask.dataframe", reason="kaprules.dask needs the dask extra: pip install '.[dask]'"
)

import kaprules  # noqa: E402
from kaprules.auditing import read_records  # noqa: E402
from kaprules.dask import audit_bag, audit_dataframe, read_csv  # noqa: E402

from conftest import EXAMPLES  # noqa: E402
from helpers import make_audit_data, write_lines  # noqa: E402

read_text: Any = dask_bag.read_text
from_sequence: Any = dask_bag.from_sequence


@pytest.mark.parametrize("scheduler", ["sync", "threads"])
def test_a_bag_audit_equals_kaprules_audit(tmp_path: Path, scheduler: str) -> None:
    data = write_lines(tmp_path / "d.jsonl", 1500, seed=4)
    bag = read_text(str(data), blocksize=100_000)
    assert bag.npartitions > 5
    run = audit_bag(bag, source=str(data))
    expected = kaprules.audit(read_records([str(data)]))
    assert run.results.compute(scheduler=scheduler) == list(expected)
    summary = run.summary(scheduler=scheduler).to_dict()
    assert summary == {**expected.summary.to_dict(), "input_sha256": None, "inputs": []}
    assert [item["line"] for item in summary["rejected"]] == [500, 1500]


@pytest.mark.parametrize("engine", ["columnar", "records"])
def test_each_engine_gives_the_bag_the_same_results(
    tmp_path: Path, engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("polars", reason="the columnar engine needs the columnar extra")
    from kaprules._columnar import engine as columnar
    from kaprules._columnar import findings as columnar_findings

    taken: list[int] = []
    evaluated = columnar_findings.evaluated

    def counting(data: bytes, protocol: Any, as_of: Any) -> Any:  # the engine's own, counted
        found, compliant = evaluated(data, protocol, as_of)
        taken.append(len(found) + len(compliant[0]))
        return found, compliant

    monkeypatch.setattr(columnar, "evaluated", counting)
    good = json.dumps(_compliant("c1"))
    odd: list[object] = [None, "\ufeff" + good, good + "\n" + good, "\ud800", "", 5, b"{}"]
    data = write_lines(tmp_path / "d.jsonl", 400, seed=6)
    items = [*data.read_text(encoding="utf-8").splitlines(keepends=True), *odd]
    items[7:7] = odd  # odd items amid plain lines too
    run = audit_bag(from_sequence(items, npartitions=3), engine=engine)
    expected = audit_bag(from_sequence(items, npartitions=3), engine="records")
    results = run.results.compute(scheduler="sync")
    assert results == expected.results.compute(scheduler="sync")
    assert sum(1 for r in results if r.rejected is None) > 300
    # The columnar engine took the plain lines' courses (the odd items went per record).
    assert sum(taken) > (390 if engine == "columnar" else -1)
    assert engine == "columnar" or not taken


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
    frame = read_csv([str(h) for h in halves])
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


def _compliant(course_id: str, escort: str = "on file") -> dict[str, Any]:
    days = ("01", "03", "05", "08", "10", "12")
    return {
        "id": course_id,
        "timezone": "America/Denver",
        "sessions": [
            {
                "id": f"s{n}",
                "start": f"2026-12-{day}T09:00:00-07:00",
                "last_food": f"2026-12-{day}T03:00:00-07:00",
                "escort": escort,
            }
            for n, day in enumerate(days, start=1)
        ],
    }


def _audit_file(path: Path) -> tuple[list[Any], dict[str, Any]]:
    run = kaprules.audit(read_records([str(path)]))
    results = [r._replace(source="") for r in run]
    return results, run.summary.to_dict()


@pytest.mark.parametrize("engine", ["records", "auto"])
def test_a_bag_of_odd_items_is_rejected_as_the_cli_rejects_the_same_lines(
    tmp_path: Path, cli: Any, engine: str
) -> None:
    good = json.dumps(_compliant("c1"))
    items: list[object] = [
        None,
        5,
        {"not": "a course"},
        _compliant("c2"),
        good.encode(),
        "\ufeff" + good,
        b"\xef\xbb\xbf" + good.encode(),
        "",
        "  \n",
        b"\xff not UTF-8",
        "[1, 2]",
        "\u3000",  # Unicode spaces: not JSON to the CLI, which reads bytes
        "\xa0\n",
        "\u0085",
    ]
    # The same lines in a file, as JSON Lines: what each item is written as.
    lines = []
    for item in items:
        if isinstance(item, bytes):
            lines.append(item)
        elif isinstance(item, str):
            lines.append(item.rstrip("\n").encode())
        else:
            lines.append(json.dumps(item).encode())
    data = tmp_path / "odd.jsonl"
    data.write_bytes(b"\n".join(lines) + b"\n")
    expected, summary = _audit_file(data)
    run = audit_bag(from_sequence(items, npartitions=3), engine=engine)
    assert run.results.compute(scheduler="sync") == expected
    got = run.summary(scheduler="sync").to_dict()
    assert got["rejected"] == summary["rejected"]
    assert (got["courses"], got["rejected_count"]) == (summary["courses"], 10)
    # Through the command, the same count of rejected records.
    code, out, _ = cli("audit", str(data), "--format", "json")
    assert json.loads(out)["rejected_count"] == 10
    assert code == 1


def test_a_bag_item_that_is_no_json_is_a_rejected_record() -> None:
    results = audit_bag(from_sequence([object(), {1j}])).results.compute(scheduler="sync")
    assert [r.rejected for r in results] == [
        "not a JSON Lines text: object",
        "not a JSON Lines text: set",
    ]


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"lines": ["{}"]}, "lines"),
        ({"protocol": 5}, "protocol"),
        ({"as_of": "2026-12-01"}, "as_of"),
        ({"as_of": "today"}, "as_of: must be None, a date or an aware datetime, got str"),
        ({"source": 5}, "source"),
    ],
)
def test_bad_arguments_of_audit_bag_are_input_errors(arguments: dict[str, Any], field: str) -> None:
    call = {"lines": from_sequence(["{}"]), **arguments}
    with pytest.raises(kaprules.InputError, match=field):
        audit_bag(**call)


def _table(tmp_path: Path, header: str, rows: list[str]) -> Path:
    path = tmp_path / "t.csv"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


HEADER = "course_id,timezone,session_id,kind,start,last_food,escort"


def _rows(course_id: str, escort: str) -> list[str]:
    return [
        f"{course_id},America/Denver,s{n},induction,2026-12-{day}T09:00:00-07:00,"
        f"2026-12-{day}T03:00:00-07:00,{escort}"
        for n, day in enumerate(("01", "03", "05", "08", "10", "12"), start=1)
    ]


def test_the_recipe_reads_na_escorts_as_the_cli_does(tmp_path: Path, cli: Any) -> None:
    # Escorts pandas reads as missing by default; the CLI reads them as written.
    rows = [
        *_rows("na", "NA"),
        *_rows("null", "null"),
        *_rows("n-a", "N/A"),
        *_rows("nan", "NaN"),
        *_rows("empty", ""),
        "",
        " , , , , , , ",
        *_rows("ok", "Jo"),
    ]
    table = _table(tmp_path, HEADER, rows)
    expected, summary = _audit_file(table)
    assert [r.course_id for r in expected if r.findings] == ["empty"]
    run = audit_dataframe(read_csv(str(table)))
    assert [r._replace(source="") for r in run.results.compute(scheduler="sync")] == expected
    got = run.summary(scheduler="sync").to_dict()
    assert (got["courses"], got["with_errors"], got["compliant"]) == (6, 1, 5)
    assert got == {**summary, "input_sha256": None, "inputs": []}
    code, out, _ = cli("audit", str(table), "--format", "json")
    assert (json.loads(out)["with_errors"], code) == (1, 1)


def test_a_frame_read_with_pandas_na_values_is_refused(tmp_path: Path) -> None:
    table = _table(tmp_path, HEADER, _rows("na", "NA"))
    frame = dask_dataframe.read_csv(str(table), dtype=str, blocksize=None)
    with pytest.raises(kaprules.InputError, match="line 2: the escort cell is missing"):
        audit_dataframe(frame).results.compute(scheduler="sync")


def test_read_csv_keeps_its_reading_options(tmp_path: Path) -> None:
    with pytest.raises(kaprules.InputError, match="na_filter"):
        read_csv(str(tmp_path / "t.csv"), na_filter=True)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("timezone,session_id,kind,start,last_food,escort", "lacks the column.s. course_id;"),
        ("course_id,timezone,kind,start,escort", "lacks the column.s. session_id, last_food;"),
        (f"{HEADER},extra", "1 unknown column"),
        ("COURSE_ID,TIMEZONE,SESSION_ID,KIND,START,LAST_FOOD,ESCORT", "it has COURSE_ID, "),
    ],
)
def test_a_frame_without_the_table_columns_is_an_input_error(
    tmp_path: Path, header: str, message: str
) -> None:
    table = _table(tmp_path, header, [])
    with pytest.raises(kaprules.InputError, match=message):
        audit_dataframe(read_csv(str(table)))


def test_a_frame_whose_columns_are_not_text_is_an_input_error(tmp_path: Path) -> None:
    table = _table(tmp_path, HEADER, _rows("1", "Jo"))
    frame = dask_dataframe.read_csv(str(table), blocksize=None)  # course_id read as numbers
    with pytest.raises(kaprules.InputError, match="course_id do not hold text"):
        audit_dataframe(frame)
    with pytest.raises(kaprules.InputError, match="frame"):
        audit_dataframe(frame.compute())


def test_a_large_partition_is_read_in_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One partition read whole took nine times its size in memory: it is read in chunks,
    # as a file is.
    pytest.importorskip("polars", reason="the columnar engine needs the columnar extra")
    from kaprules._columnar import engine as columnar

    chunks: list[int] = []
    work_on = columnar.work_on

    def counting(chunk: Any, *args: Any) -> Any:  # the engine's own, counted
        chunks.append(len(chunk))
        return work_on(chunk, *args)

    monkeypatch.setattr(columnar, "work_on", counting)
    data = write_lines(tmp_path / "d.jsonl", 5000, seed=3)
    items = data.read_text(encoding="utf-8").splitlines(keepends=True)
    got = audit_bag(from_sequence(items, npartitions=1), engine="columnar")
    expected = audit_bag(from_sequence(items, npartitions=1), engine="records")
    assert got.results.compute(scheduler="sync") == expected.results.compute(scheduler="sync")
    assert len(chunks) >= 2


def test_a_dataframe_rejects_cells_as_the_cli_does(tmp_path: Path) -> None:
    # An oversized cell (over the csv module's field limit), cells the reader refuses as
    # written (a space before a dose, a tab in a reading) and one the loader refuses: the
    # same reasons, by line and column, from the CLI's reader and from read_csv.
    readings = "; ".join(f"2026-12-01T08:{n % 60:02d}:00-07:00 141/91" for n in range(20_000))
    head = "course_id,timezone,session_id,kind,start,last_food,escort,dose_mg,vitals,enrolled"
    start = "America/Denver,s1,induction,2026-12-01T09:00:00-07:00,,E"
    rows = [
        f"big,{start},,{readings},",
        f"space,{start}, 56,,",
        f"tab,{start},,2026-12-01T08:40:00-07:00\t141/91,",
        f"date,{start},,,2026-13-45",
    ]
    table = _table(tmp_path, head, rows)
    expected, _ = _audit_file(table)
    assert [r.rejected for r in expected] == [
        "line 2: the vitals cell is longer than 131072 characters, the limit of a cell",
        "line 3: the dose_mg cell is not a number of milligrams written with digits and an "
        "optional decimal point, such as 37.5",
        "line 4: reading 1 of the vitals cell is not 'AT SYSTOLIC/DIASTOLIC' (such as "
        "2026-12-01T08:40:00-07:00 128/82); readings are separated by '; '",
        "line 5: the enrolled cell is not a real date",
    ]
    got = audit_dataframe(read_csv(str(table))).results.compute(scheduler="sync")
    assert [r._replace(source="") for r in got] == [r._replace(source="") for r in expected]
