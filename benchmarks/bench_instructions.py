"""Instructions per block line of a replay, counted by valgrind's callgrind: a speed measure that
does not drift with this machine's load (its timings drift by up to +-25%; callgrind's counts
repeat within ~1%).

The replay of the first ``--lines`` lines of a block file (what ``chainsentry replay --scores``
does: read, map, score, write) is run under callgrind, and so is the replay of its first line
alone; the difference over ``lines - 1`` is the cost of one more line, start-up (imports, the
engine, the rules) left out. ``--parts`` adds where it goes: decoding, the engine, encoding the
scores (inclusive counts of those functions, per line), and the rest.

    python benchmarks/bench_instructions.py [--data wallets-dev.jsonl.gz] [--lines 20000] [--parts]

Needs valgrind (``apt-get install valgrind``); ~4 minutes for 20,000 lines on this machine.
Compare builds with the same ``--data`` and ``--lines``: per-line costs depend on the data
(wallets-dev: ~1.1 transactions a line, no call trees).
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# the child: what `chainsentry replay FILE --scores OUT` does, without the CLI around it
CHILD = """
import sys
from pathlib import Path
from chainsentry.scoring import Scorer, batch_gc
from detectors.engine import ScoringEngine
from ingest import FileBlockSource
scorer = Scorer(ScoringEngine(), chain_id=1, scores_path=Path(sys.argv[2]))
with batch_gc():
    for block in FileBlockSource([sys.argv[1]]):
        scorer.block(block)
scorer.close()
"""

# inclusive counts, per line, of the steps of a line (function names in the compiled modules)
PARTS = {
    "decoding a line into events (map_block_line)": "__pyx_pw_6ingest_7mappers_65map_block_line",
    "the engine (ScoringEngine.score_block)": "__pyx_pw_9detectors_6engine_13ScoringEngine_5score_block",
    "encoding the scores (encode_scores)": "__pyx_pw_9detectors_6engine_1encode_scores",
}


def callgrind(lines_file: Path, out: Path, workdir: Path) -> int:
    env = {**os.environ, "PYTHONHASHSEED": "0", "OPENBLAS_NUM_THREADS": "1"}  # no BLAS threads spinning
    proc = subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "-c", CHILD,
         str(lines_file), str(workdir / "scores.jsonl")],
        env=env, capture_output=True, text=True, timeout=3600,
    )
    found = re.search(r"Collected : (\d+)", proc.stderr)
    if proc.returncode != 0 or found is None:
        raise SystemExit(f"callgrind failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return int(found.group(1))


def inclusive(out: Path, symbol: str) -> int:
    text = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--auto=no", "--threshold=100", str(out)],
                          capture_output=True, text=True, check=True).stdout
    total = 0
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+) \(.*?\)\s+\S*:" + re.escape(symbol) + r"(?:\s|$)", line)
        if m:
            total += int(m.group(1).replace(",", ""))
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="wallets-dev.jsonl.gz", help="a block file in ../shared/data (or a path)")
    ap.add_argument("--lines", type=int, default=20_000)
    ap.add_argument("--parts", action="store_true", help="also where a line's instructions go")
    args = ap.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    path = Path(args.data) if Path(args.data).exists() else DATA / args.data
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        first, many = work / "one.jsonl", work / "many.jsonl"
        opener = gzip.open if path.suffix == ".gz" else open
        n = 0
        with opener(path, "rb") as src, open(first, "wb") as one, open(many, "wb") as out:
            for line in src:
                if n == 0:
                    one.write(line)
                out.write(line)
                n += 1
                if n == args.lines:
                    break
        a = callgrind(first, work / "one.out", work)
        b = callgrind(many, work / "many.out", work)
        per_line = (b - a) / (n - 1)
        print(f"{path.name}, first {n} lines: {per_line:,.0f} instructions per line "
              f"(start-up and one line: {a / 1e9:.2f} G)")
        if args.parts:
            rest = per_line
            for label, symbol in PARTS.items():
                cost = (inclusive(work / "many.out", symbol) - inclusive(work / "one.out", symbol)) / (n - 1)
                rest -= cost
                print(f"  {label}: {cost:,.0f}")
            print(f"  the rest (gunzip and line reading, the per-block glue, writing): {rest:,.0f}")


if __name__ == "__main__":
    main()
