"""`kaprules audit` beside hand-written peers (DuckDB, Polars, a process pool), interleaved.

Run:  python benchmarks/bench_peers.py [--courses N ...] [--rounds R] [--peers DIR]
          [--engine columnar|records ...] [--jobs J] [--skip PEER ...] [--dir DIR]
          [--baseline SRC]

For each size N (default 100000), the data set of ``make_audit_data.py`` is written
once; then, round after round, every contestant runs once over it in a fresh process, in
the same order: each kaprules engine (``kaprules audit --jobs J --engine E --findings
... --format json``: the summary and every finding written, as an audit does) and each
peer found in ``--peers`` (default ``../shared/bench/peers`` beside the repository; a
peer whose module is not installed is skipped). Printed per contestant: the median wall
time over the rounds, its ratio to the fastest peer's median (below 1: kaprules is
faster), the peak memory of its whole process tree (the sum of its processes'
proportional set sizes, PSS, so that a page they share counts once; sampled every 50
ms), and for kaprules the main process's share of the audit's CPU time (its own
``RUSAGE_SELF`` against its workers' ``RUSAGE_CHILDREN``). Every contestant gets the
same cores: DuckDB ``--threads J``, Polars ``POLARS_MAX_THREADS=J``, kaprules ``--jobs
J``. ``--baseline SRC`` adds kaprules from another source tree (a ``src`` folder: an
earlier commit's, say), run the same way. The peers print per-rule counts of courses
with a finding: each is checked against kaprules' summary, so that only contestants that
agree are compared. Interleaving, and ratios rather than seconds, are what keep a figure
meaningful on a machine whose speed drifts from minute to minute.
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
# Run a command, print the peak memory of its process tree (KiB: the sum of the
# proportional set sizes of the command and its descendants, each shared page counted
# once, sampled every 50 ms from /proc).
_MEASURE = (
    "import os, subprocess, sys, threading, time\n"
    "child = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE)\n"
    "peak = [0]\n"
    "def memory(pid):\n"
    "    # PSS: each shared page counted once over the processes sharing it\n"
    "    with open(f'/proc/{pid}/smaps_rollup') as f:\n"
    "        return next(int(l.split()[1]) for l in f if l.startswith('Pss:'))\n"
    "def tree():\n"
    "    parents = {}\n"
    "    for name in os.listdir('/proc'):\n"
    "        if name.isdigit():\n"
    "            try:\n"
    "                with open(f'/proc/{name}/stat') as f: stat = f.read()\n"
    "                parents[int(name)] = int(stat.rsplit(')', 1)[1].split()[1])\n"
    "            except (OSError, IndexError, ValueError): pass\n"
    "    # The memory of the tree's processes only: reading every process's smaps_rollup\n"
    "    # took CPU from the contestant 20 times a second\n"
    "    found, total = [child.pid], 0\n"
    "    while found:\n"
    "        pid = found.pop()\n"
    "        try: total += memory(pid)\n"
    "        except (OSError, StopIteration, ValueError): pass\n"
    "        found += [p for p, parent in parents.items() if parent == pid]\n"
    "    return total\n"
    "def sample():\n"
    "    while child.poll() is None:\n"
    "        peak[0] = max(peak[0], tree()); time.sleep(0.05)\n"
    "threading.Thread(target=sample, daemon=True).start()\n"
    "out = child.stdout.read(); code = child.wait()\n"
    "sys.stdout.buffer.write(out)\n"
    "print('\\nPEAK', peak[0])\n"
    "sys.exit(0 if code in (0, 1) else code)\n"
)
# kaprules audit in this process, then the CPU seconds of this (main) process and of its
# workers, on standard error.
_KAPRULES = (
    "import resource, sys\n"
    "from kaprules.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "me, workers = (resource.getrusage(w) for w in "
    "(resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))\n"
    "print('CPU', me.ru_utime + me.ru_stime, workers.ru_utime + workers.ru_stime, "
    "file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def timed(
    command: list[str], env: dict[str, str] | None = None
) -> tuple[float, float, str, tuple[float, float] | None]:
    """(seconds, peak MiB of the tree, standard output, (main, workers) CPU seconds)."""
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
    cpu = None
    for line in out.stderr.splitlines():
        if line.startswith("CPU "):
            main_cpu, workers = line.split()[1:]
            cpu = float(main_cpu), float(workers)
    return seconds, int(peak) / 1024, text, cpu


def _audit(path: Path, jobs: int, engine: str, findings: Path) -> list[str]:
    """The command of one kaprules contestant: this interpreter, kaprules as it imports."""
    return [
        sys.executable,
        "-c",
        _KAPRULES,
        "audit",
        str(path),
        "--jobs",
        str(jobs),
        "--engine",
        engine,
        "--findings",
        str(findings),
        "--format",
        "json",
    ]


def contestants(args: argparse.Namespace, path: Path) -> dict[str, list[str]]:
    """Name -> command, kaprules first."""
    found: dict[str, list[str]] = {}
    for engine in args.engine:
        if args.baseline is not None:
            found[f"baseline {engine} --jobs {args.jobs}"] = [
                "env",
                f"PYTHONPATH={args.baseline}",
                *_audit(path, args.jobs, engine, args.dir / "bench-peers-baseline.jsonl"),
            ]
        found[f"kaprules {engine} --jobs {args.jobs}"] = _audit(
            path, args.jobs, engine, args.dir / "bench-peers-findings.jsonl"
        )
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
                *(["--threads", str(args.jobs)] if name == "duckdb" else []),
            ]
    return found


def counts(name: str, output: str) -> dict[str, int]:
    """Per-rule counts of courses with a finding, from a kaprules summary or a peer."""
    ours = "kaprules" in name or "baseline" in name
    data = json.loads(output.strip().splitlines()[-1] if not ours else output)
    if ours:
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
    parser.add_argument("--baseline", type=Path, help="another kaprules src folder to run")
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
        shares: dict[str, list[float]] = {name: [] for name in runs}
        # The same cores for everyone: Polars' threads as many as kaprules' workers.
        env = {**os.environ, "POLARS_MAX_THREADS": str(args.jobs)}
        agreed: dict[str, bool] = {}
        reference: dict[str, int] | None = None
        for _ in range(args.rounds):
            for name, command in runs.items():
                seconds, peak, output, cpu = timed(command, env)
                times[name].append(seconds)
                if cpu is not None:
                    shares[name].append(cpu[0] / (cpu[0] + cpu[1]))
                peaks[name] = max(peaks[name], peak)
                found = counts(name, output)
                if reference is None:
                    reference = found
                agreed[name] = all(found.get(rule) == n for rule, n in reference.items())
        medians = {name: statistics.median(values) for name, values in times.items()}
        peers = [medians[n] for n in runs if "kaprules" not in n and "baseline" not in n]
        best = min(peers) if peers else float("nan")
        print(
            f"\n{count} courses, {args.rounds} interleaved rounds (median seconds), "
            f"{args.jobs} jobs/threads each, {os.cpu_count()} cores"
        )
        print(
            f"{'contestant':<32} {'seconds':>8} {'vs best peer':>13} {'tree MiB':>9} "
            f"{'main CPU':>9} agrees"
        )
        for name in runs:
            share = f"{statistics.median(shares[name]):>8.1%}" if shares[name] else f"{'':>8}"
            print(
                f"{name:<32} {medians[name]:>8.2f} {medians[name] / best:>12.2f}x"
                f" {peaks[name]:>9.0f} {share:>9} {'yes' if agreed[name] else 'NO'}"
            )
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
