"""Time kaprules' start-up against bare Python, in interleaved runs.

Run:  python benchmarks/bench_startup.py [--rounds N] [--no-bytecode]

Each round runs ``python -c pass``, ``python -c 'import kaprules'`` and ``kaprules check
examples/compliant.json`` once each, in turn, so that a change in the machine's load hits
all three alike; the medians and their excess over bare Python are reported, as wall-clock
and as CPU time (user + system: steadier on a shared machine). The goal: ``import kaprules``
within 50 ms of bare Python, ``kaprules check`` within 100 ms. ``--no-bytecode`` sets
PYTHONDONTWRITEBYTECODE, so that modules without a cached ``.pyc`` are compiled on every run
(a source checkout run that way); by default the variable is removed.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "compliant.json"
CONSOLE_SCRIPT = "import sys; from kaprules.cli import main; sys.exit(main())"
GOALS = {"import kaprules": 0.050, "kaprules check": 0.100}


def _run(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall-clock and CPU seconds of one run of ``command`` (Unix: children's usage)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, env=env, cwd=ROOT, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def main(argv: list[str] | None = None) -> int:
    """Time the three commands; print medians; return 1 if a goal is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40, help="interleaved rounds (40)")
    parser.add_argument("--no-bytecode", action="store_true", help="set PYTHONDONTWRITEBYTECODE")
    args = parser.parse_args(argv)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    if args.no_bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    python = sys.executable
    commands = {
        "bare Python": [python, "-c", "pass"],
        "import kaprules": [python, "-c", "import kaprules"],
        # What the console script runs.
        "kaprules check": [python, "-c", CONSOLE_SCRIPT, "check", str(EXAMPLE)],
    }
    for command in commands.values():  # warm the file cache (and write .pyc files)
        _run(command, env)
    walls: dict[str, list[float]] = {name: [] for name in commands}
    cpus: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.rounds):
        for name, command in commands.items():
            wall, cpu = _run(command, env)
            walls[name].append(wall)
            cpus[name].append(cpu)
    bare_wall = statistics.median(walls["bare Python"])
    bare_cpu = statistics.median(cpus["bare Python"])
    print(f"medians of {args.rounds} interleaved rounds, load {os.getloadavg()[0]:.1f}")
    print(f"{'command':<16} {'wall':>9} {'over bare':>10} {'cpu':>9} {'over bare':>10}")
    missed = False
    for name in commands:
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        print(
            f"{name:<16} {wall * 1e3:7.1f}ms {(wall - bare_wall) * 1e3:+8.1f}ms"
            f" {cpu * 1e3:7.1f}ms {(cpu - bare_cpu) * 1e3:+8.1f}ms"
        )
        missed |= name in GOALS and wall - bare_wall > GOALS[name]
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
