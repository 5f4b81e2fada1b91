"""``chainsentry demo``: anvil + background traffic + the live service, until Ctrl-C or a duration.

The demo shows ingest and detection at work: blocks, receipts, call traces and the mempool of a
busy devnet flow through the pipeline and the detectors (pending transactions traced with
debug_traceCall), with the API and /metrics up; alerts print live. The attack scenarios come
with the demo issue; until then background traffic should raise no alert.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from detectors.engine import ScoringEngine
from ingest import RpcClient

from .config import Settings
from .devnet.anvil import Anvil
from .devnet.traffic import TrafficGenerator
from .pipeline import JsonlEventSink, LivePipeline
from .scoring import DetectSink, Scorer


async def run_demo(
    *,
    duration: float | None,
    out: Path | None,
    rate: float,
    wallets: int,
    block_time: float,
    api: str,
    console: Console,
    status: Callable[[str], None],
) -> None:
    out_dir = out or Path(tempfile.mkdtemp(prefix="chainsentry-demo-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    with Anvil(block_time=block_time, accounts=wallets) as node:
        traffic_rpc = RpcClient([node.http_url])
        gen = TrafficGenerator(traffic_rpc, wallets=wallets)
        await gen.setup(mine=False)
        settings = Settings.model_validate({
            "rpc": [node.http_url], "ws": node.ws_url, "api": api, "data_dir": out_dir,
            "ingest": {"poll_interval": min(1.0, block_time), "start_block": 0, "trace_pending": True},
        })
        events = out_dir / "events.jsonl"
        pipeline = LivePipeline(settings, sinks=[JsonlEventSink(events)])
        scorer = Scorer(ScoringEngine(), chain_id=0, scores_path=out_dir / "scores.jsonl",
                        alerts_path=out_dir / "alerts.jsonl", registry=pipeline.registry, flush=True,
                        on_alert=lambda a: console.print(
                            f"[bold red]ALERT[/] {a['severity']} {a['stage']} {a['title']} tx {a['tx_hash'][:14]} "
                            f"score {a['score']:.3f}: {a['description'][:160]}", highlight=False))
        pipeline.sinks.insert(0, DetectSink(scorer))
        console.print(
            f"[bold]chainsentry demo[/bold]: anvil devnet at {node.http_url} ({wallets} wallets, a block every "
            f"{block_time:g}s, ~{rate:g} tx/s of transfers, deployments and contract calls)\n"
            f"  API      http://{api}/status   metrics http://{api}/metrics   health http://{api}/healthz\n"
            f"  events   {events}\n  scores   {out_dir / 'scores.jsonl'}   alerts {out_dir / 'alerts.jsonl'}\n"
            "  stop     Ctrl-C" + (f" (or after {duration:g}s)" if duration else ""),
            highlight=False,
        )
        traffic = asyncio.create_task(gen.run(rate))
        def chain_known(p: LivePipeline) -> None:
            scorer.chain_id = p.chain_id or 0

        try:
            await pipeline.run(duration=duration, status_out=status, ready=chain_known)
        finally:
            traffic.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await traffic
            await traffic_rpc.aclose()
        s = pipeline.status()
        console.print(
            f"\ndemo done: {s['blocks']} blocks, {s['transactions']} transactions, traffic sent {gen.stats.sent} "
            f"({gen.stats.failed} refused), {scorer.findings} alerts; events in {events}",
            highlight=False,
        )
