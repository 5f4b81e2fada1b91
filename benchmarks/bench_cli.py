"""Start-up time of the command line: ``chainsentry --help``, ``--version`` and each command's
``--help``, as a user's shell runs them (a new process each time, wall clock, median of N).

    .venv/bin/python benchmarks/bench_cli.py [--runs 15]

Target: <= 0.3 s each. Each command imports its heavy modules (Kafka, pyod, the detectors,
FastAPI) in its own body, so asking for help loads none of them; tests/test_cli_startup.py
checks which modules load.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = ("run", "replay", "worker", "record", "evaluate", "demo")


def exe() -> str:
    found = Path(sys.executable).with_name("chainsentry")
    return str(found) if found.exists() else (shutil.which("chainsentry") or "chainsentry")


def wall(argv: list[str], runs: int) -> tuple[float, float]:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=60)
        times.append(time.perf_counter() - t)
    return statistics.median(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    cli = exe()
    wall([sys.executable, "-c", "pass"], 3)  # warm the file cache
    base, _ = wall([sys.executable, "-c", "pass"], args.runs)
    print(f"python -c pass: {base:.3f} s (the interpreter's own start, included below)")
    print(f"{'command':<28} {'median s':>9} {'max s':>7}")
    for argv in (["--help"], ["--version"], *([c, "--help"] for c in COMMANDS)):
        med, worst = wall([cli, *argv], args.runs)
        print(f"{'chainsentry ' + ' '.join(argv):<28} {med:>9.3f} {worst:>7.3f}")


if __name__ == "__main__":
    main()
