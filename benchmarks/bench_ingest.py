"""Ingest throughput: record 100 anvil blocks of ~200 transactions with receipts and traces.

Side by side, in one run, against the same node and range:
  1. ``chainsentry record`` (the CLI as a user runs it, fsync per block as by default);
  2. the lean fetch path in-process (BlockFetcher + mappers, no file);
  3. web3.py v8 AsyncWeb3 fetching the same data (get_block full, get_block_receipts, trace_block),
     20 blocks in flight, to justify (or not) the lean JSON-RPC path;
  4. ethereum-etl (PyPI, its own virtualenv under benchmarks/.venv-etl) exporting blocks and
     transactions, receipts and logs, and traces of the same range.

    python benchmarks/bench_ingest.py [--blocks 100] [--txs 200] [--skip-etl]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from chainsentry.devnet.anvil import Anvil
from chainsentry.devnet.traffic import TrafficGenerator, fill_blocks
from ingest import BlockFetcher, RpcClient, rpc_blocks

HERE = Path(__file__).resolve().parent
ETL_VENV = HERE / ".venv-etl"
# ethereum-etl 2.4.2 pins parsimonious 0.8.1, which does not import on Python 3.11; 0.9.0 does (with regex).
ETL_PACKAGES = ["ethereum-etl==2.4.2", "parsimonious==0.9.0", "regex==2024.11.6"]


def ensure_etl() -> Path | None:
    etl = ETL_VENV / "bin" / "ethereumetl"
    if etl.exists():
        return etl
    print("installing ethereum-etl into", ETL_VENV, flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(ETL_VENV)], check=True)
        pip = str(ETL_VENV / "bin" / "pip")
        subprocess.run([pip, "install", "-q", ETL_PACKAGES[0]], check=True)
        subprocess.run([pip, "install", "-q", "--no-deps", *ETL_PACKAGES[1:]], check=True)
    except subprocess.CalledProcessError as err:
        print("could not install ethereum-etl:", err)
        return None
    return etl


def timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - t


def run_etl(etl: Path, url: str, first: int, last: int, tmp: Path) -> dict[str, float]:
    e = str(etl)
    steps = {
        "blocks+transactions": [e, "export_blocks_and_transactions", "-s", str(first), "-e", str(last), "-p", url,
                                "--blocks-output", str(tmp / "blocks.csv"),
                                "--transactions-output", str(tmp / "txs.csv")],
        "extract hashes": [e, "extract_csv_column", "--input", str(tmp / "txs.csv"), "--column", "hash",
                           "--output", str(tmp / "hashes.txt")],
        "receipts+logs": [e, "export_receipts_and_logs", "--transaction-hashes", str(tmp / "hashes.txt"), "-p", url,
                          "--receipts-output", str(tmp / "receipts.csv"), "--logs-output", str(tmp / "logs.csv")],
        "traces": [e, "export_traces", "-s", str(first), "-e", str(last), "-p", url, "-o", str(tmp / "traces.csv")],
    }
    return {name: timed(cmd) for name, cmd in steps.items()}


async def web3_fetch(url: str, first: int, last: int, inflight: int = 20) -> int:
    from web3 import AsyncHTTPProvider, AsyncWeb3

    w3 = AsyncWeb3(AsyncHTTPProvider(url, request_kwargs={"timeout": 60}))

    async def one(n: int) -> int:
        block = await w3.eth.get_block(n, full_transactions=True)
        await w3.eth.get_block_receipts(n)
        await w3.provider.make_request("trace_block", [hex(n)])  # type: ignore[arg-type]
        return len(block["transactions"])

    txs = 0
    for start in range(first, last + 1, inflight):
        counts = await asyncio.gather(*(one(n) for n in range(start, min(last, start + inflight - 1) + 1)))
        txs += sum(counts)
    await w3.provider.disconnect()
    return txs


async def lean_fetch(url: str, first: int, last: int) -> int:
    async with RpcClient([url]) as rpc:
        return sum([len(b.transactions) async for b in rpc_blocks(BlockFetcher(rpc, traces="parity"), first, last)])


async def prepare(url: str, blocks: int, txs: int) -> tuple[int, int]:
    async with RpcClient([url]) as rpc:
        gen = TrafficGenerator(rpc, seed=1)
        await gen.setup()
        start = int(await rpc.call("eth_blockNumber"), 16) + 1
        t = time.perf_counter()
        total = await fill_blocks(rpc, gen, blocks, txs)
        print(f"prepared {blocks} blocks, {total} txs in {time.perf_counter() - t:.1f}s "
              f"(mix: {gen.stats.by_kind})", flush=True)
        return start, start + blocks - 1


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--blocks", type=int, default=100)
    ap.add_argument("--txs", type=int, default=200)
    ap.add_argument("--skip-etl", action="store_true")
    args = ap.parse_args()
    etl = None if args.skip_etl else ensure_etl()
    with Anvil(mining=False, accounts=100) as node, tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        first, last = asyncio.run(prepare(node.http_url, args.blocks, args.txs))
        n_txs = asyncio.run(lean_fetch(node.http_url, first, last))  # also warms the node's caches
        results: dict[str, float] = {}
        out = tmp / "rec.jsonl"
        results["chainsentry record (CLI)"] = timed(
            [sys.executable, "-m", "chainsentry.cli", "record", "--rpc", node.http_url, "--from", str(first),
             "--to", str(last), "--out", str(out), "--traces", "parity"]
        )
        t = time.perf_counter()
        asyncio.run(lean_fetch(node.http_url, first, last))
        results["chainsentry fetch+map (in-process)"] = time.perf_counter() - t
        t = time.perf_counter()
        asyncio.run(web3_fetch(node.http_url, first, last))
        results["web3.py 8 AsyncWeb3 (in-process)"] = time.perf_counter() - t
        if etl is not None:
            steps = run_etl(etl, node.http_url, first, last, tmp)
            results["ethereum-etl (4 commands)"] = sum(steps.values())
            detail = ", ".join(f"{k} {v:.2f}s" for k, v in steps.items())
        nblocks = last - first + 1
        print(f"\n{nblocks} blocks, {n_txs} transactions, receipts + call traces; anvil on 127.0.0.1, "
              f"{os.cpu_count()} cores")
        for name, sec in results.items():
            print(f"  {name:<38} {sec:7.2f} s  {nblocks / sec:8.1f} blocks/s  {n_txs / sec:10,.0f} tx/s")
        if etl is not None:
            print(f"  ethereum-etl steps: {detail}")
            ratio = results["ethereum-etl (4 commands)"] / results["chainsentry record (CLI)"]
            print(f"chainsentry record vs ethereum-etl: {ratio:.1f}x the throughput (target >= 3x)")
        ratio = results["web3.py 8 AsyncWeb3 (in-process)"] / results["chainsentry fetch+map (in-process)"]
        print(f"lean JSON-RPC path vs web3.py: {ratio:.1f}x")
        print(f"recorded file: {out.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
