"""Learning from analysts, simulated: ``chainsentry replay FILE --feedback LABELS`` gives each
alert's label back to the engine as an analyst's verdict after its block. This compares the
alerts of the second half of the stream (by block order, after the verdicts of the first half were
learned) with and without it: alerts recall and false alerts per 1,000 ordinary transactions.

On attacks-dev and on attacks-dev ten times over under fresh hashes (``long_stream.py``: an
exploit or a false positive met once comes back, as patterns do on a live chain).

    python benchmarks/bench_feedback.py
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson
from long_stream import labels_of, write_long_stream

from detectors.evaluate import read_labels

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def second_half(scores: Path, alerts: Path, labels: dict[str, int]) -> dict[str, float]:
    """Alerts recall and false alerts per 1,000 ordinary transactions over the second half of the
    stream's blocks."""
    lines = [orjson.loads(line) for line in scores.read_bytes().splitlines()]
    blocks = sorted({s["block_number"] for s in lines}, key=lambda b: b)
    order = {b: i for i, b in enumerate(blocks)}
    late = {s["tx_hash"] for s in lines if order[s["block_number"]] >= len(blocks) // 2}
    alerted = {a["tx_hash"] for a in map(orjson.loads, alerts.read_bytes().splitlines())} & late
    exploits = {h for h in late if labels.get(h) == 1}
    ordinary = {h for h in late if labels.get(h) == 0}
    return {"alerts_recall": round(len(alerted & exploits) / max(1, len(exploits)), 3),
            "false_per_1000": round(1000 * len(alerted & ordinary) / max(1, len(ordinary)), 3),
            "exploits": len(exploits), "ordinary": len(ordinary)}


def replay(path: Path, labels_path: Path, out: Path, feedback: bool) -> dict[str, float]:
    scores, alerts = out / "scores.jsonl", out / "alerts.jsonl"
    for f in (scores, alerts):
        f.unlink(missing_ok=True)
    cmd = [str(Path(sys.executable).with_name("chainsentry")), "replay", str(path), "--scores", str(scores),
           "--alerts", str(alerts), "--no-progress"]
    if feedback:
        cmd += ["--feedback", str(labels_path)]

    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return second_half(scores, alerts, read_labels(labels_path)[1])


def main() -> None:
    argparse.ArgumentParser(description=__doc__).parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        dev, dev_labels = DATA / "attacks-dev.jsonl.gz", DATA / "attacks-dev.labels.csv"
        long = write_long_stream(dev, 10, out / "long.jsonl.gz", dev_labels)
        long_labels = labels_of(long)
        print("| data (second half) | without feedback: recall, false/1000 | with feedback: recall, false/1000 |")
        print("|---|---|---|")
        for name, path, labels in (("attacks-dev", dev, dev_labels), ("attacks-dev x10", long, long_labels)):
            off = replay(path, labels, out, feedback=False)
            on = replay(path, labels, out, feedback=True)
            print(f"| {name} ({off['exploits']} exploits, {off['ordinary']} ordinary) | {off['alerts_recall']}, "
                  f"{off['false_per_1000']} | {on['alerts_recall']}, {on['false_per_1000']} |", flush=True)


if __name__ == "__main__":
    main()
