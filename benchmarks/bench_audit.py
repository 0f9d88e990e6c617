"""Time `kaprules audit` on a generated data set, with its peak memory, in a subprocess.

Run:  python benchmarks/bench_audit.py [--courses N ...] [--jobs J ...] [--dir DIR]

For each size N (default 100000), the data set of ``make_audit_data.py`` is written once
(deterministic: the same bytes every time), then ``kaprules audit`` runs over it with each
number of jobs, its findings written to a file as an audit would. Printed: wall time,
courses a second, and the peak resident memory of the whole process tree (the command and
its workers; from ``getrusage`` of the children, the largest of them).

Beside it, in the same run, a hand-written baseline: a plain process pool of as many
workers, each reading whole lines with ``json.loads`` and ``datetime.fromisoformat`` and
checking them with ``bench_evaluate.baseline_check`` (no summary, no findings file, no
hash), and the ratio of the two times. This machine's speed drifts from minute to minute:
the ratio says more than either time.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def data_set(count: int, folder: Path) -> Path:
    """The data set of ``count`` courses, written once."""
    path = folder / f"audit-{count}.jsonl"
    if not path.exists():
        subprocess.run(
            [sys.executable, str(HERE / "make_audit_data.py"), str(count), str(path)], check=True
        )
    return path


def run(path: Path, jobs: int, folder: Path) -> tuple[float, float]:
    """One audit: (seconds, peak MiB of the largest process)."""
    script = (
        "import resource, subprocess, sys\n"
        "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "sys.exit(0 if code in (0, 1) else code)\n"
    )
    command = [
        sys.executable,
        "-m",
        "kaprules",
        "audit",
        str(path),
        "--jobs",
        str(jobs),
        "--findings",
        str(folder / "findings.jsonl"),
    ]
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", script, *command], capture_output=True, text=True, check=True
    )
    seconds = time.perf_counter() - started
    return seconds, int(out.stdout.strip()) / 1024


_BASELINE = """
import itertools, multiprocessing, sys
sys.path.insert(0, sys.argv[1])
import bench_evaluate as b

def check(lines):
    broken = 0
    for line in lines:
        try:
            broken += bool(b.baseline_check(*b.baseline_parse(line)))
        except (ValueError, KeyError, TypeError):
            broken += 1
    return broken

if __name__ == "__main__":
    with open(sys.argv[2], "rb") as handle, multiprocessing.Pool(int(sys.argv[3])) as pool:
        chunks = iter(lambda: list(itertools.islice(handle, 1000)), [])
        print(sum(pool.imap(check, chunks)), file=sys.stderr)
"""


def baseline(path: Path, jobs: int, folder: Path) -> float:
    """The hand-written baseline over the same data set, in a subprocess: seconds."""
    script = folder / "kaprules_bench_baseline.py"
    script.write_text(_BASELINE, encoding="utf-8")
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, str(script), str(HERE), str(path), str(jobs)],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def main() -> int:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--courses", type=int, nargs="+", default=[100_000])
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--dir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")))
    args = parser.parse_args()
    print(f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores")
    print(
        f"{'courses':>9} {'jobs':>4} {'seconds':>8} {'courses/s':>10} {'peak MiB':>9}"
        f" {'baseline s':>11} {'ratio':>6}"
    )
    for count in args.courses:
        path = data_set(count, args.dir)
        for jobs in args.jobs:
            seconds, peak = run(path, jobs, args.dir)
            plain = baseline(path, jobs, args.dir)
            print(
                f"{count:>9} {jobs:>4} {seconds:>8.1f} {count / seconds:>10.0f} {peak:>9.0f}"
                f" {plain:>11.1f} {seconds / plain:>6.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
