"""Instants and UTC offsets as columns: each zone's offsets read once into a table."""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

from kaprules import _time

__all__ = ["EPOCH", "HI", "LO", "instant_seconds", "offset_texts", "zone_offsets", "zone_table"]


def instant_seconds(column: str) -> Any:
    """The UTC seconds of an instant column (of a layout `LINE` lets through); null: null.

    The local part is read by Polars' own parser of the one layout (its fast path: several
    times cheaper than slicing out each field), which leaves impossible dates (February
    30) null; the line's pattern holds every field to its range.
    """
    import polars as pl

    text = pl.col(column)
    local = (
        text.str.slice(0, 19)
        .str.to_datetime("%Y-%m-%dT%H:%M:%S", strict=False, cache=False)
        .dt.epoch("s")
    )
    # The offset looked up: half the cost of reading its fields; null where not an offset.
    texts, seconds = offset_texts()
    offset = text.str.slice(19).replace_strict(texts, seconds, default=None)
    return local - offset


@functools.cache
def offset_texts() -> tuple[Any, Any]:
    """Every offset `_INSTANT` lets through (``Z``, ``+05:30``), and its seconds."""
    import polars as pl

    table = {"Z": 0}
    for sign in (1, -1):
        for minutes in range(24 * 60):
            text = f"{'+' if sign > 0 else '-'}{minutes // 60:02d}:{minutes % 60:02d}"
            table[text] = sign * minutes * 60
    return pl.Series(list(table), dtype=pl.String), pl.Series(table.values(), dtype=pl.Int64)


# UTC seconds the zone tables cover: 1901-01-01 and 2200-01-01, two days either way.
LO = -2_177_452_800 - 2 * 86400


HI = 7_258_118_400 + 2 * 86400


_BIAS = 1 << 32


_SHIFT = 1 << 35


EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@functools.lru_cache(maxsize=1024)
def zone_table(name: str) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """(segment starts, UTC offsets) of a zone, in seconds, from LO to HI; None: unknown.

    The offset is zoneinfo's own (``astimezone``, as the timeline converts), asked at the
    start of each segment. The segments' starts are a superset of the instants where the
    offset can change: every transition of the zone's file, and for the years its rule
    (its POSIX TZ string) covers, every instant around that rule's changes and the years'
    boundaries, read with the standard library's pure-Python zoneinfo. Between two starts
    zoneinfo's offset is constant, so one question per segment answers for all of it.
    Anything unexpected makes the zone unknown: its courses take the per-record path.
    """
    try:
        zone = _time.zone(name)
        from zoneinfo import _zoneinfo as pure  # type: ignore[attr-defined]

        parsed = pure.ZoneInfo.no_cache(name)
        transitions = [int(t) for t in parsed._trans_utc]
        points = {LO, *(t for t in transitions if LO < t < HI)}
        after = parsed._tz_after
        if isinstance(after, pure._TZStr):
            # zoneinfo's rule for a UTC instant: the DST bounds of the instant's UTC year,
            # the start in standard time and the end in daylight time (_TZStr).
            first = max(1900, _year_of(transitions[-1]) - 1) if transitions else 1900
            std = int(after.std.utcoff.total_seconds())
            dst = int(after.dst.utcoff.total_seconds())
            for year in range(first, 2202):
                begin, end = (int(t) for t in after.transitions(year))
                new_year = int((dt.datetime(year, 1, 1, tzinfo=dt.UTC) - EPOCH).total_seconds())
                for point in (new_year, begin - std, begin - dst, end - std, end - dst):
                    if LO < point < HI:
                        points.add(point)
        elif not isinstance(after, pure._ttinfo):
            return None
        starts = tuple(sorted(points))
        offsets = tuple(_offset(zone, t) for t in starts)
    except Exception:  # a zone this engine cannot read with certainty: per record
        return None
    return starts, offsets


def _year_of(seconds: int) -> int:
    return (EPOCH + dt.timedelta(seconds=seconds)).year


def _offset(zone: Any, seconds: int) -> int:
    local = (EPOCH + dt.timedelta(seconds=seconds)).astimezone(zone)
    offset = local.utcoffset()
    assert offset is not None
    return offset // dt.timedelta(seconds=1)


def _zone_keys(zones: list[str]) -> tuple[list[int], list[int], dict[str, int]]:
    """The zone tables of ``zones`` as one sorted key list: (keys, offsets, zone ids)."""
    keys: list[int] = []
    values: list[int] = []
    index: dict[str, int] = {}
    for name in sorted(zones):
        table = zone_table(name)
        if table is None:
            continue
        index[name] = z = len(index) + 1
        keys.extend(z * _SHIFT + _BIAS + t for t in table[0])
        values.extend(table[1])
    return keys, values, index


# A few sets of zones only: a table for every zone holds some 3 MiB, and input whose
# chunks each have zones of their own would keep one for each.
@functools.lru_cache(maxsize=4)
def zone_offsets(zones: tuple[str, ...]) -> tuple[Any, dict[str, int]]:
    """`offset_of` for ``zones``, and their ids: built once for the zones of many chunks."""
    keys, values, index = _zone_keys(list(zones))
    return offset_of(keys, values), index


def offset_of(keys: list[int], values: list[int]) -> Any:
    """The UTC offset in seconds of each session (``zone``, ``utc``); null where unknown."""
    import polars as pl

    if not keys:
        return pl.lit(None, dtype=pl.Int64)
    utc = pl.col("utc")
    wanted = pl.when((utc >= LO) & (utc < HI)).then(pl.col("zone") * _SHIFT + _BIAS + utc)
    # Within its zone's keys: the first key of a zone is at LO, below any wanted value.
    place = pl.lit(pl.Series(keys, dtype=pl.Int64)).search_sorted(wanted.fill_null(0), side="right")
    place = (place.cast(pl.Int64) - 1).clip(0, len(keys) - 1)
    found = pl.lit(pl.Series(values, dtype=pl.Int64)).gather(place)
    return pl.when(wanted.is_not_null()).then(found)
