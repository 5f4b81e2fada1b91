"""Memory of the per-address baselines (detectors/baseline.py), measured with tracemalloc: bytes per
address for a typical one (seen with one asset and a few values) and for one at the caps (16
values for its call tree and for each of 8 assets, 24-digit amounts), and what the detector holds
after replaying attacks-dev ten times over (``long_stream.py``).

    python benchmarks/bench_baseline_memory.py
"""

from __future__ import annotations

import random
import tempfile
import tracemalloc
from pathlib import Path

from long_stream import write_long_stream

from detectors.baseline import MAX_ASSETS, TOP, Baseline, Series
from detectors.engine import ScoringEngine
from ingest import FileBlockSource

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ASSETS = ["0x" + f"{a:040x}" for a in range(MAX_ASSETS)]  # asset keys are shared strings in a stream


def per_address(n: int, build: object) -> float:
    tracemalloc.start()
    kept = {"0x" + f"{i:040x}": build() for i in range(n)}  # type: ignore[operator]
    size = tracemalloc.get_traced_memory()[0] / n
    tracemalloc.stop()
    del kept
    return size


def typical() -> Baseline:
    b = Baseline()
    b.seen = 12
    b.subtree.add(3)
    s = Series()
    s.add(10**18)
    b.assets["ETH"] = s
    return b


_RNG = random.Random(1)


def at_the_caps() -> Baseline:
    b, rng = Baseline(), _RNG
    for _ in range(4 * TOP):
        b.subtree.add(rng.randrange(1, 10**6))
    for asset in ASSETS:
        s = Series()
        for _ in range(4 * TOP):
            s.add(rng.randrange(10**20, 10**24))
        b.assets[asset] = s
    return b


def main() -> None:
    print(f"typical: {per_address(20_000, typical):,.0f} bytes an address")
    print(f"at the caps: {per_address(2_000, at_the_caps):,.0f} bytes an address")
    with tempfile.TemporaryDirectory() as tmp:
        long = write_long_stream(DATA / "attacks-dev.jsonl.gz", 10, Path(tmp) / "long.jsonl.gz")
        engine = ScoringEngine()
        detector = engine.detector("baseline")
        for block in FileBlockSource([long]):
            engine.score_block(block)
        tracemalloc.start()
        import pickle

        copy = pickle.loads(pickle.dumps(detector.state()))  # type: ignore[union-attr]
        size = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        n = len(copy["baselines"])
        print(f"attacks-dev x10: {n:,} addresses, {size / 2**20:.1f} MB ({size / n:,.0f} bytes an address)")


if __name__ == "__main__":
    main()
