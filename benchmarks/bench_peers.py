"""`kaprules audit` beside hand-written peers (DuckDB, Polars, a process pool), interleaved.

Run:  python benchmarks/bench_peers.py [--courses N ...] [--rounds R] [--peers DIR]
          [--engine columnar|records ...] [--jobs J] [--skip PEER ...] [--dir DIR]

For each size N (default 100000), the data set of ``make_audit_data.py`` is written once;
then, round after round, every contestant runs once over it in a fresh process, in the
same order: each kaprules engine (``kaprules audit --jobs J --engine E --findings ...
--format json``: the summary and every finding written, as an audit does) and each peer
found in ``--peers`` (default ``../shared/bench/peers`` beside the repository; a peer
whose module is not installed is skipped). Printed per contestant: the median wall time
over the rounds, its ratio to the fastest peer's median (below 1: kaprules is faster),
and the largest peak resident memory of its process tree. The peers print per-rule counts
of courses with a finding: each is checked against kaprules' summary, so that only
contestants that agree are compared. Interleaving, and ratios rather than seconds, are
what keep a figure meaningful on a machine whose speed drifts from minute to minute.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_audit import data_set  # noqa: E402

_PEERS = {"peer_duckdb.py": "duckdb", "peer_polars.py": "polars", "peer_mp.py": "orjson"}
# Run a command, print its peak resident memory (KiB, the largest process of its tree).
_MEASURE = (
    "import resource, subprocess, sys\n"
    "out = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE)\n"
    "sys.stdout.buffer.write(out.stdout)\n"
    "print('\\nPEAK', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    "sys.exit(0 if out.returncode in (0, 1) else out.returncode)\n"
)


def timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """(seconds, peak MiB, standard output) of one run in a fresh process."""
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, *command],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    seconds = time.perf_counter() - started
    text, _, peak = out.stdout.rpartition("\nPEAK ")
    return seconds, int(peak) / 1024, text


def contestants(args: argparse.Namespace, path: Path) -> dict[str, list[str]]:
    """Name -> command, kaprules first."""
    found: dict[str, list[str]] = {}
    for engine in args.engine:
        found[f"kaprules {engine} --jobs {args.jobs}"] = [
            sys.executable,
            "-m",
            "kaprules",
            "audit",
            str(path),
            "--jobs",
            str(args.jobs),
            "--engine",
            engine,
            "--findings",
            str(args.dir / "bench-peers-findings.jsonl"),
            "--format",
            "json",
        ]
    for script, module in _PEERS.items():
        peer = args.peers / script
        name = script.removesuffix(".py").replace("peer_", "")
        if name in args.skip:
            continue
        if peer.exists() and importlib.util.find_spec(module) is not None:
            found[name] = [
                sys.executable,
                str(peer),
                str(path),
            ]
    return found


def counts(name: str, output: str) -> dict[str, int]:
    """Per-rule counts of courses with a finding, from a kaprules summary or a peer."""
    data = json.loads(output.strip().splitlines()[-1] if "kaprules" not in name else output)
    if "kaprules" in name:
        return {rule: value["courses"] for rule, value in data["rules"].items()}
    rules: dict[str, int] = data["rules"]
    return rules


def main() -> int:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--courses", type=int, nargs="+", default=[100_000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--engine", nargs="+", default=["columnar"])
    parser.add_argument("--peers", type=Path, default=HERE.parent.parent / "shared/bench/peers")
    parser.add_argument("--skip", nargs="*", default=[], help="peers to leave out (mp, ...)")
    parser.add_argument("--dir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")))
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(
        f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores, "
        f"load average {load:.1f} at the start"
    )
    for count in args.courses:
        path = data_set(count, args.dir)
        runs = contestants(args, path)
        times: dict[str, list[float]] = {name: [] for name in runs}
        peaks: dict[str, float] = dict.fromkeys(runs, 0.0)
        agreed: dict[str, bool] = {}
        reference: dict[str, int] | None = None
        for _ in range(args.rounds):
            for name, command in runs.items():
                seconds, peak, output = timed(command)
                times[name].append(seconds)
                peaks[name] = max(peaks[name], peak)
                found = counts(name, output)
                if reference is None:
                    reference = found
                agreed[name] = all(found.get(rule) == n for rule, n in reference.items())
        medians = {name: statistics.median(values) for name, values in times.items()}
        peers = [medians[n] for n in runs if "kaprules" not in n]
        best = min(peers) if peers else float("nan")
        print(f"\n{count} courses, {args.rounds} interleaved rounds (median seconds)")
        print(f"{'contestant':<32} {'seconds':>8} {'vs best peer':>13} {'peak MiB':>9} agrees")
        for name in runs:
            print(
                f"{name:<32} {medians[name]:>8.2f} {medians[name] / best:>12.2f}x"
                f" {peaks[name]:>9.0f} {'yes' if agreed[name] else 'NO'}"
            )
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
