"""What ``chainsentry replay`` and ``evaluate`` run: the engine the settings describe, and the
replay loops over block files and RPC ranges, with a progress bar on a terminal."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TransferSpeedColumn

from detectors.engine import ScoringEngine
from detectors.snapshot import SnapshotError, load_snapshot
from ingest import BlockFetcher, FileBlockSource, IngestMetrics, MappingError, rpc_blocks

from .build import make_rpc
from .config import Settings
from .scoring import Scorer, batch_gc
from .sharding import ShardedEngine


def progress_bar(total: float | None, unit_bytes: bool, console: Console) -> Progress:
    cols: list[Any] = [TextColumn("[bold]replay"), BarColumn(), TextColumn("{task.percentage:>3.0f}%")]
    if unit_bytes:
        cols.append(TransferSpeedColumn())
    cols += [TextColumn("{task.fields[info]}"), TimeElapsedColumn()]
    return Progress(*cols, console=console, transient=True)


def build_engine(settings: Settings, rules: Path | None, snapshot_in: Path | None, *,
                 live: bool) -> ScoringEngine | ShardedEngine:
    """The engine the settings' ``detectors`` section describes (sharded as ``transport.partitions``
    says), resuming from a snapshot when given."""
    # live: a model refit never stalls scoring; replay: refits land at fixed points (deterministic)
    cfg = settings.detectors.engine_config(rules_path=rules, live=live)
    engine: ScoringEngine | ShardedEngine
    if settings.transport.partitions == 1:
        engine = ScoringEngine(cfg)
    else:  # state sharded by contract, as the Kafka detector workers shard it
        engine = ShardedEngine(settings.transport.partitions, lambda: ScoringEngine(cfg))
    if snapshot_in is not None:  # refused when written under another detectors configuration
        try:
            load_snapshot(engine, snapshot_in)
        except SnapshotError:
            raise
        except ValueError as err:
            raise SnapshotError(f"{snapshot_in}: {err}") from None
    return engine


def replay_files(source: FileBlockSource, show: bool, scorer: Scorer, console: Console) -> dict[str, Any]:
    blocks = txs = 0
    with progress_bar(source.total_bytes, True, console) as bar:
        task = bar.add_task("replay", total=source.total_bytes, info="", visible=show)
        if show:  # else no update at all (~1.5 us each, every 8 lines)
            source.progress = lambda done: bar.update(
                task, completed=done, info=f"{blocks} blocks, {txs} txs, {scorer.findings} alerts")
        with batch_gc():
            for block in source:
                blocks += 1
                txs += len(block.transactions)
                scorer.block(block)
    st = source.stats
    return {"blocks": blocks, "transactions": txs, "bad_lines": st.bad_lines, "files": [str(f) for f in source.files]}


async def replay_rpc(settings: Settings, first: int, last: int, show: bool,
                     on_error: Callable[[MappingError], None], scorer: Scorer, console: Console) -> dict[str, Any]:
    metrics = IngestMetrics()
    rpc = make_rpc(settings, metrics)
    fetcher = BlockFetcher(rpc, traces=settings.ingest.traces, receipts=settings.ingest.receipts)
    blocks = txs = 0
    try:
        with progress_bar(last - first + 1, False, console) as bar:
            task = bar.add_task("replay", total=last - first + 1, info="", visible=show)
            async for block in rpc_blocks(fetcher, first, last, batch_size=settings.ingest.batch_size,
                                          on_error=on_error):
                blocks += 1
                txs += len(block.transactions)
                scorer.block(block)
                bar.update(task, advance=1, info=f"block {block.number}, {txs} txs")
    finally:
        await rpc.aclose()
    return {"blocks": blocks, "transactions": txs, "bad_lines": 0, "traces": fetcher.trace_mode}
