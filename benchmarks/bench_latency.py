"""Latency on anvil: block first seen -> scored (alert emitted), and pending first seen -> scored.

The live pipeline runs in-process against anvil with the detectors; alerts are emitted at the
moment a transaction is scored, so first sight -> scored is the alert latency
(`chainsentry_pipeline_latency_seconds` measures the same live).

1. blocks of ~500 transactions (mined with evm_mine; the follower polls every 50 ms and fetches
   each block with receipts and traces): seen_at -> block scored;
2. pending transactions sent at ~500/s (WS subscription with full objects): first seen -> scored.

    python benchmarks/bench_latency.py [--blocks 20] [--txs 500] [--pending-seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time

from chainsentry.config import Secrets, Settings
from chainsentry.devnet.anvil import Anvil
from chainsentry.devnet.traffic import TrafficGenerator
from chainsentry.pipeline import LivePipeline
from chainsentry.scoring import DetectSink, Scorer
from detectors.engine import EngineConfig, ScoringEngine
from ingest import BlockAdded, ChainEvent, PendingSeen, RpcClient


class Timing(DetectSink):
    """The detection stage, timing each event from first sight to scored."""

    def __init__(self, scorer: Scorer) -> None:
        super().__init__(scorer)
        self.block_lat: list[float] = []
        self.pending_lat: list[float] = []
        self.block_sizes: list[int] = []

    async def handle(self, event: ChainEvent) -> None:
        await super().handle(event)
        now = time.time()
        if isinstance(event, BlockAdded) and event.block.transactions:
            self.block_lat.append(now - event.seen_at)
            self.block_sizes.append(len(event.block.transactions))
        elif isinstance(event, PendingSeen):
            self.pending_lat.append(now - event.pending.first_seen)


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] * 1000 if s else float("nan")


async def main_async(blocks: int, txs: int, pending_seconds: float) -> None:
    with Anvil(mining=False, accounts=100) as node, tempfile.TemporaryDirectory() as tmp:
        async with RpcClient([node.http_url]) as rpc:
            gen = TrafficGenerator(rpc, seed=4)
            await gen.setup()
            settings = Settings.model_validate({
                "rpc": [node.http_url], "ws": node.ws_url, "data_dir": tmp, "api": "127.0.0.1:0",
                "ingest": {"poll_interval": 0.05, "start_block": 0},
            })
            pipeline = LivePipeline(settings, Secrets(), serve_api=False)
            timing = Timing(Scorer(ScoringEngine(EngineConfig(deterministic_refit=False)), chain_id=31337))
            pipeline.sinks.insert(0, timing)
            task = asyncio.create_task(pipeline.run())
            await asyncio.sleep(2.0)
            # 1. big blocks: fill the mempool, then mine
            for _ in range(blocks):
                sent = 0
                while sent < txs:
                    sent += len(await gen.send(min(100, txs - sent)))
                await asyncio.sleep(0.3)  # let the pending feed settle, so block latency is measured alone
                await rpc.call("evm_mine")
                await asyncio.sleep(0.6)
            block_lat = list(timing.block_lat)
            sizes = list(timing.block_sizes)
            # 2. pending at ~500/s
            timing.pending_lat.clear()
            end = time.monotonic() + pending_seconds
            while time.monotonic() < end:
                t = time.monotonic()
                await gen.send(50)
                await asyncio.sleep(max(0.0, 0.1 - (time.monotonic() - t)))
                if len(pipeline.tracker) > 5000:
                    await rpc.call("evm_mine")
            await asyncio.sleep(1.0)
            pending_lat = list(timing.pending_lat)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    big = [lat for lat, n in zip(block_lat, sizes, strict=True) if n >= txs * 0.9]
    span = f"{min(sizes)}-{max(sizes)}" if sizes else "none"
    print(f"blocks of ~{txs} txs: {len(big)} measured (sizes {span}); seen -> scored p50 {pct(big, 0.5):.0f} ms, "
          f"p99 {pct(big, 0.99):.0f} ms (target p99 <= 250 ms)")
    rate = len(pending_lat) / pending_seconds
    print(f"pending at ~{rate:.0f} tx/s: {len(pending_lat)} measured; first seen -> scored "
          f"p50 {pct(pending_lat, 0.5):.1f} ms, p99 {pct(pending_lat, 0.99):.1f} ms (target p99 <= 50 ms)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--blocks", type=int, default=20)
    ap.add_argument("--txs", type=int, default=500)
    ap.add_argument("--pending-seconds", type=float, default=10.0)
    args = ap.parse_args()
    asyncio.run(main_async(args.blocks, args.txs, args.pending_seconds))


if __name__ == "__main__":
    main()
