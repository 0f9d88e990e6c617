"""Where the columnar engine's time goes, beside the Polars peer, on one thread.

Run:  python benchmarks/bench_floor.py [--courses N] [--rounds R] [--peers DIR] [--dir DIR]

On the data set of ``make_audit_data.py`` (default 10,000 courses: about one chunk of the
engine at its full size), in this one process, with Polars on one thread
(``POLARS_MAX_THREADS=1``): the CPU time (``time.process_time``, the least of ``--rounds``
interleaved rounds) of

- the Polars peer of ``--peers`` (``peer_polars.run``: per-rule counts, no message);
- ``kaprules.audit(..., engine="columnar", jobs=1)`` read as the findings file's text (the
  summary and every finding, as ``kaprules audit --findings`` writes them);
- the steps of the engine's reading, each alone over the same bytes: the JSON decode
  both do, and the two proofs only the engine makes, that a line reads as the loader
  reads it (its line pattern, and its quotes counted).

Each is printed in milliseconds and as a ratio to the peer. One thread and CPU time make
the figures independent of how the processes share the cores: the engine's workers each
run one Polars thread, and both cores are busy throughout an audit, so its time on two
cores follows the sum of its CPU time.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ["POLARS_MAX_THREADS"] = "1"  # before Polars is loaded

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_audit import data_set  # noqa: E402


def cpu(action: Callable[[], object], rounds: int) -> float:
    """The least CPU time of ``action`` over ``rounds`` runs, in milliseconds."""
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        action()
        best = min(best, time.process_time() - started)
    return best * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--courses", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--peers", type=Path, default=HERE.parent.parent / "shared/bench/peers")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args(argv)
    peer_path = args.peers / "peer_polars.py"
    if importlib.util.find_spec("polars") is None or not peer_path.exists():
        print(f"needs Polars and {peer_path}", file=sys.stderr)
        return 2
    import polars as pl

    from kaprules import STANDARD, audit
    from kaprules._columnar import decode
    from kaprules.auditing import read_records

    spec = importlib.util.spec_from_file_location("peer_polars", peer_path)
    assert spec is not None
    assert spec.loader is not None
    peer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(peer)

    path = data_set(args.courses, args.dir)
    data = path.read_bytes()
    line = pl.col("line")

    def engine() -> None:
        run = audit(read_records([str(path)]), STANDARD, engine="columnar")
        for _ in run.findings_text():
            pass

    steps: dict[str, Callable[[], object]] = {
        "peer: Polars pipeline (counts only)": lambda: peer.run(str(path)),
        "kaprules: columnar audit (every finding)": engine,
        "  JSON decode (both)": lambda: (
            pl.scan_lines(data).select(line.str.json_decode(decode.schema())).collect()
        ),
        "  line pattern (kaprules' proof)": lambda: (
            pl.scan_lines(data).filter(line.str.contains(decode.LINE)).collect()
        ),
        "  quotes counted (kaprules' proof)": lambda: (
            pl.scan_lines(data).select(line.str.count_matches('"', literal=True)).collect()
        ),
    }
    best = dict.fromkeys(steps, float("inf"))
    for _ in range(args.rounds):  # interleaved: drift touches every step alike
        for name, action in steps.items():
            best[name] = min(best[name], cpu(action, 1))
    base = best["peer: Polars pipeline (counts only)"]
    print(f"{args.courses:,} courses ({len(data) / 2**20:.1f} MiB), one Polars thread,")
    print(f"CPU time, least of {args.rounds} interleaved rounds:")
    for name, ms in best.items():
        print(f"  {name:<44} {ms:8.1f} ms  {ms / base:5.2f}x")
    proofs = best["  line pattern (kaprules' proof)"] + best["  quotes counted (kaprules' proof)"]
    floor = proofs + best["  JSON decode (both)"]
    print(
        f"The proofs alone take {proofs / base:.0%} of the peer's whole pipeline; "
        f"with the decode, {floor / base:.0%}."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
