"""Replay decode: mapping a block-JSONL file to events vs bare orjson decoding of the same file.

Measured in one run, interleaved, best of N, on the same machine:
  * bare:   read + gunzip + orjson.loads of every line (what any Python reader pays at least);
  * mapped: read + gunzip + ``map_block_line`` (msgspec decodes each line into typed structs,
    then the events are built: FileBlockSource's work);
both for the file as stored (.gz) and for its decompressed bytes already in memory.

    python benchmarks/bench_replay_decode.py [FILE] [--repeat N]
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

import orjson
from _timing import best

from ingest import FileBlockSource
from ingest.mappers import map_block_line

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "attacks-dev.jsonl.gz"




def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("file", nargs="?", default=str(DEFAULT))
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    path = Path(args.file)
    raw = path.read_bytes()
    plain = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    lines = plain.splitlines()

    def bare_file() -> None:
        with gzip.open(path, "rb") as fh:
            for line in fh:
                orjson.loads(line)

    def mapped_file() -> None:
        for _ in FileBlockSource([path]):
            pass

    def bare_mem() -> None:
        for line in lines:
            orjson.loads(line)

    def mapped_mem() -> None:
        for line in lines:
            map_block_line(line, lambda e: None)

    txs = sum(len(b.transactions) for b in FileBlockSource([path]))
    res = {}
    for name, fn in (("bare_file", bare_file), ("mapped_file", mapped_file), ("bare_mem", bare_mem),
                     ("mapped_mem", mapped_mem)):
        res[name] = best(fn, args.repeat)
    print(f"file: {path.name}  ({len(raw) / 1e6:.1f} MB stored, {len(plain) / 1e6:.1f} MB JSON, {len(lines)} blocks,"
          f" {txs} txs)")
    for name, sec in res.items():
        print(f"  {name:<12} {sec * 1000:8.1f} ms   {txs / sec:>10,.0f} tx/s   {len(plain) / sec / 1e6:7.1f} MB/s")
    ratio = res["bare_file"] / res["mapped_file"]
    print(f"ratio (mapped / bare speed), from the .gz file:  {ratio:.2f}  (target >= 0.5)")
    print(f"ratio (mapped / bare speed), decompressed bytes: {res['bare_mem'] / res['mapped_mem']:.2f}")


if __name__ == "__main__":
    main()
