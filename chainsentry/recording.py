"""What ``chainsentry record`` runs: blocks (and optionally pending transactions) from a node to
block JSONL, resuming where the file ends, retracting reorged blocks."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from ingest import (
    BlockAdded,
    BlockFetcher,
    BlockFollower,
    BlockRecorder,
    BlockRetracted,
    IngestMetrics,
    MempoolFollower,
    PendingRecorder,
    PendingSeen,
    PendingTracker,
    RecorderError,
    RpcError,
)

from .build import make_rpc
from .config import Settings


async def record(
    settings: Settings, out: Path, first: int | None, last: int | None, follow: bool,
    mempool_out: Path | None, duration: float | None, fsync: bool,
) -> dict[str, Any]:
    metrics = IngestMetrics()
    rpc = make_rpc(settings, metrics)
    try:  # a node that cannot be reached fails here, within the client's retries, as `run` does
        await rpc.call("eth_chainId")
    except RpcError:
        await rpc.aclose()
        raise
    recorder = BlockRecorder(out, fsync=fsync)
    resumed = recorder.last
    if resumed is not None and first is not None and resumed.number < first - 1:
        recorder.close()
        await rpc.aclose()
        raise RecorderError(f"{out} already ends at block {resumed.number}; recording from {first} would leave a "
                            f"gap: use another --out or --from {resumed.number + 1}")
    fetcher = BlockFetcher(rpc, traces=settings.ingest.traces, receipts=settings.ingest.receipts)
    follower = BlockFollower(
        fetcher, start=first, checkpoint=recorder, stop_at=None if follow else last,
        confirmations=settings.ingest.confirmations, batch_size=settings.ingest.batch_size,
        poll_interval=settings.ingest.poll_interval, ws_url=settings.ws, metrics=metrics,
    )
    retracted = 0
    pending_rec = PendingRecorder(mempool_out) if mempool_out else None

    async def blocks() -> None:
        nonlocal retracted
        async for event in follower.events():
            if isinstance(event, BlockAdded):
                recorder.write(event.block)
                if not follow and last is not None and event.block.number >= last:
                    return
            elif isinstance(event, BlockRetracted):
                recorder.retract(event.number, event.hash)
                retracted += 1

    async def pending() -> None:
        assert pending_rec is not None
        tracker = PendingTracker()
        async for ptx in MempoolFollower(rpc, ws_url=settings.ws, metrics=metrics).pending():
            for ev in tracker.seen(ptx):
                if isinstance(ev, PendingSeen):
                    pending_rec.write(ev.pending)

    tasks = [asyncio.create_task(blocks())]
    if pending_rec is not None:
        tasks.append(asyncio.create_task(pending()))
    try:
        done, _ = await asyncio.wait(tasks, timeout=duration, return_when=asyncio.FIRST_COMPLETED)
        for t in done:
            if t.exception() is not None:
                raise t.exception()  # type: ignore[misc]
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        recorder.close()
        if pending_rec is not None:
            pending_rec.close()
        await rpc.aclose()
    tip = recorder.last
    return {
        "out": str(out), "blocks_written": recorder.written, "retracted": retracted,
        "resumed_after": resumed.number if resumed else None, "last_block": tip.number if tip else None,
        "pending_written": pending_rec.written if pending_rec else 0, "traces": fetcher.trace_mode,
    }
