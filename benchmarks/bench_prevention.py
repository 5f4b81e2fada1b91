"""Prevention on the devnet: how often the guardian's pause is mined before a pending drain, and
how long it takes from the exploit first seen in the mempool to the pause sent.

Runs ``chainsentry demo`` with the re-entrancy drain only, one attack every few seconds (the
bank's owner unpauses it before each), with the response on and, for comparison, as a dry run;
prints the outcome table and the latency percentiles from each run's ``summary.json``.

    python benchmarks/bench_prevention.py [--duration 150] [--block-time 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import orjson


def run(respond: bool, duration: float, block_time: float, out: Path) -> dict[str, object]:
    args = [sys.executable, "-m", "chainsentry.cli", "demo", "--attacks", "reentrancy", "--first-attack", "15",
            "--attack-every", "3", "--duration", str(duration), "--block-time", str(block_time), "--rate", "20",
            "--api", "127.0.0.1:0", "--out", str(out), "--respond" if respond else "--no-respond"]
    subprocess.run(args, check=True, capture_output=True, timeout=duration + 300)
    summary: dict[str, object] = orjson.loads((out / "summary.json").read_bytes())
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=150.0)
    ap.add_argument("--block-time", type=float, default=2.0)
    a = ap.parse_args()
    print(f"| response | attacks | succeeded | reverted | prevented | not mined | pause sent after first seen: "
          f"p50 / p99 / max (n) |  (block time {a.block_time:g}s)")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for respond in (True, False):
            s = run(respond, a.duration, a.block_time, Path(tmp) / ("on" if respond else "dry"))
            rows = s["attacks"]
            assert isinstance(rows, list)
            outcomes = Counter(r["outcome"] for r in rows)
            lat = s["response_latency_s"]
            assert isinstance(lat, dict)
            timing = (f"{lat['p50'] * 1000:.0f} / {lat['p99'] * 1000:.0f} / {lat['max'] * 1000:.0f} ms ({lat['n']})"
                      if lat["n"] else "- (dry run: simulated only)")
            print(f"| {'on' if respond else 'dry run'} | {len(rows)} | {outcomes['succeeded']} | "
                  f"{outcomes['reverted']} | {s['prevented']} | {outcomes['not mined']} | {timing} |")


if __name__ == "__main__":
    main()
