"""A long stream for benchmarks: a block file repeated N times under fresh block numbers, block
hashes and transaction hashes (deterministic), so every model fits and refits as on a long run.
With ``--labels``, the file's transaction labels follow the new hashes (``PATH.labels.csv``):
each repetition's exploits are labelled as the originals are.

    python benchmarks/long_stream.py [FILE] [--times 10] [--out PATH] [--labels CSV]   # prints PATH (and LABELS)
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import tempfile
from pathlib import Path

import orjson

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "attacks-dev.jsonl.gz"


def _fresh(value: str, round_: int) -> str:
    return "0x" + hashlib.sha256(f"{round_}:{value}".encode()).hexdigest()


def write_long_stream(source: Path, times: int, out: Path, labels: Path | None = None) -> Path:
    """``source``'s blocks ``times`` over, each round renumbered after the last and re-hashed; with
    ``labels`` (a ``tx_hash,label,...`` CSV), the labels of every round beside it."""
    with gzip.open(source, "rb") as fh:
        blocks = [orjson.loads(line) for line in fh if line.strip()]
    first = min(int(b["number"], 16) for b in blocks)
    span = max(int(b["number"], 16) for b in blocks) - first + 1
    with gzip.open(out, "wb", compresslevel=9) as fh:  # as the source files are
        for r in range(times):
            for b in blocks:
                b = orjson.loads(orjson.dumps(b))  # a copy to rewrite
                number = hex(int(b["number"], 16) + r * span)
                rename = {t["hash"]: _fresh(t["hash"], r) for t in b.get("transactions", [])}
                b["number"], b["hash"] = number, _fresh(b.get("hash") or number, r)
                for t in b.get("transactions", []):
                    t["hash"], t["blockNumber"], t["blockHash"] = rename[t["hash"]], number, b["hash"]
                for rec in b.get("receipts") or []:
                    rec["transactionHash"] = rename.get(rec["transactionHash"], rec["transactionHash"])
                for tr in b.get("traces") or []:
                    tr["txHash"] = rename.get(tr["txHash"], tr["txHash"])
                fh.write(orjson.dumps(b) + b"\n")
    if labels is not None:
        _relabel(labels, times, out)
    return out


def labels_of(out: Path) -> Path:
    """Where ``write_long_stream`` puts the labels of the stream ``out``."""
    return out.with_name(out.name.removesuffix(".gz").removesuffix(".jsonl") + ".labels.csv")


def _relabel(labels: Path, times: int, out: Path) -> Path:
    with open(labels, newline="") as fh:
        rows = list(csv.reader(fh))
    head, body = rows[0], rows[1:]
    path = labels_of(out)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(head)
        for r in range(times):
            for row in body:
                w.writerow([_fresh(row[0], r), *row[1:]])
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("file", nargs="?", default=str(DEFAULT))
    ap.add_argument("--times", type=int, default=10)
    ap.add_argument("--out", default=None)
    ap.add_argument("--labels", default=None, help="the file's labels CSV: write them for the long stream too")
    args = ap.parse_args()
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="cs-long-")) / "long.jsonl.gz"
    labels = Path(args.labels) if args.labels else None
    print(write_long_stream(Path(args.file), args.times, out, labels))
    if labels is not None:
        print(labels_of(out))


if __name__ == "__main__":
    main()
