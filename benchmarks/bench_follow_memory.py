"""Memory: the live pipeline following 10,000 blocks keeps a flat RSS.

An anvil devnet gets 10,000 blocks (every 10th with 20 mixed transactions, the rest empty), then
the live pipeline (follower, in-process transport, pending tracker, event stats; no API) follows
them from block 0 while its RSS is sampled every 1,000 blocks.

    python benchmarks/bench_follow_memory.py [--blocks 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import tempfile
import time
import tracemalloc
from pathlib import Path

from chainsentry.config import Secrets, Settings
from chainsentry.devnet.anvil import Anvil
from chainsentry.devnet.traffic import TrafficGenerator
from chainsentry.pipeline import LivePipeline
from ingest import BlockAdded, ChainEvent, RpcClient


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Sampler:
    def __init__(self, every: int, trace_alloc: bool = False) -> None:
        self.every = every
        self.trace_alloc = trace_alloc
        self.snapshots: list[tracemalloc.Snapshot] = []
        self.blocks = 0
        self.samples: list[tuple[int, float, float]] = []
        self.started = time.perf_counter()

    async def handle(self, event: ChainEvent) -> None:
        if isinstance(event, BlockAdded):
            self.blocks += 1
            if self.blocks % self.every == 0:
                self.samples.append((self.blocks, rss_mb(), time.perf_counter() - self.started))
                if self.trace_alloc and self.blocks in (self.every * 5, self.every * 10):
                    self.snapshots.append(tracemalloc.take_snapshot())

    async def close(self) -> None:
        return None


async def prepare(url: str, blocks: int) -> int:
    async with RpcClient([url]) as rpc:
        gen = TrafficGenerator(rpc, seed=3)
        await gen.setup()
        made = int(await rpc.call("eth_blockNumber"), 16)
        while made < blocks:
            await gen.send(20)
            await rpc.call("evm_mine")
            await rpc.call("anvil_mine", [hex(9)])
            made += 10
        return int(await rpc.call("eth_blockNumber"), 16)


async def follow(url: str, head: int, every: int, trace_alloc: bool) -> Sampler:
    sampler = Sampler(every, trace_alloc)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.model_validate({
            "rpc": [url], "data_dir": tmp,
            "ingest": {"start_block": 0, "mempool": False, "batch_size": 50, "poll_interval": 0.2},
        })
        pipeline = LivePipeline(settings, Secrets(), sinks=[sampler], serve_api=False)
        task = asyncio.create_task(pipeline.run())
        while sampler.blocks < head + 1:
            await asyncio.sleep(0.5)
            if task.done():
                task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return sampler


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--blocks", type=int, default=10_000)
    ap.add_argument("--trace-alloc", action="store_true", help="show where Python memory grew (slower)")
    args = ap.parse_args()
    if args.trace_alloc:
        tracemalloc.start(12)
    with Anvil(mining=False, accounts=50) as node:
        t = time.perf_counter()
        head = asyncio.run(prepare(node.http_url, args.blocks))
        print(f"prepared {head + 1} blocks in {time.perf_counter() - t:.1f}s", flush=True)
        before = rss_mb()
        sampler = asyncio.run(follow(node.http_url, head, max(1, args.blocks // 10), args.trace_alloc))
    print(f"RSS before following: {before:.1f} MB")
    print(f"{'blocks':>8} {'RSS MB':>8} {'seconds':>8}")
    for blocks, rss, sec in sampler.samples:
        print(f"{blocks:>8} {rss:>8.1f} {sec:>8.1f}")
    if len(sampler.samples) >= 3:
        first, last = sampler.samples[1][1], sampler.samples[-1][1]
        print(f"growth from {sampler.samples[1][0]} to {sampler.samples[-1][0]} blocks: {last - first:+.1f} MB")
    if len(sampler.snapshots) == 2:
        print("Python allocations that grew most between the 5th and 10th sample:")
        for stat in sampler.snapshots[1].compare_to(sampler.snapshots[0], "traceback")[:6]:
            where = stat.traceback.format()[-1].strip()
            print(f"  {stat.size_diff / 1024:+8.1f} KiB  {stat.count_diff:+6d} objects  {where}")


if __name__ == "__main__":
    main()
