"""What ``chainsentry replay`` runs: the engine the settings describe, and the one replay loop
over a block source (files, an RPC range), with a progress bar on a terminal."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TransferSpeedColumn

from detectors.engine import ScoringEngine, TxScore
from detectors.snapshot import SnapshotError, load_snapshot
from ingest import (
    Block,
    BlockFetcher,
    BlockSource,
    FileBlockSource,
    IngestMetrics,
    MappingError,
    RpcClient,
    RpcRangeSource,
)

from .build import make_rpc
from .config import Settings
from .scoring import batch_gc
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


async def replay(source: BlockSource, on_block: Callable[[Block], object], *, show: bool,
                 console: Console) -> tuple[int, int]:
    """The replay loop, over any :class:`BlockSource`: each block to ``on_block`` (the scorer, or
    the Kafka publisher), in order, with a progress bar when ``show``; returns (blocks,
    transactions). Garbage collection is batched meanwhile (:func:`batch_gc`)."""
    blocks = txs = 0
    total = source.position()[1]
    files = isinstance(source, FileBlockSource)
    with progress_bar(total, files, console) as bar, batch_gc():
        task = bar.add_task("replay", total=total, info="", visible=show)

        def one(block: Block) -> None:
            nonlocal blocks, txs
            on_block(block)
            blocks += 1
            txs += len(block.transactions)
            if show:
                bar.update(task, completed=source.position()[0], info=f"block {block.number}, {blocks} blocks, "
                           f"{txs} txs")

        if isinstance(source, FileBlockSource):  # a plain iterator too: no event-loop step per block (~3%)
            for block in source:
                one(block)
        else:
            async for block in source.blocks():
                one(block)
    return blocks, txs


def revealing_verdicts(score_block: Callable[[Block], list[TxScore]], engine: ScoringEngine | ShardedEngine,
                       labels: Mapping[str, int]) -> Callable[[Block], list[TxScore]]:
    """``score_block``, then each alerted transaction's label revealed to the engine's feedback
    model as an analyst's verdict after its block (``replay --feedback``: a simulation of analysts
    marking alerts, measured against the same labels)."""

    def block(b: Block) -> list[TxScore]:
        scores = score_block(b)
        for s in scores:
            label = labels.get(s.tx_hash)
            if s.finding is not None and label is not None:
                engine.learn_verdict([(c.feature, c.contribution) for c in s.finding.explanation],
                                     "true_positive" if label else "false_positive")
        return scores

    return block


def rpc_source(settings: Settings, first: int, last: int,
               on_error: Callable[[MappingError], None]) -> tuple[RpcRangeSource, RpcClient]:
    """An RPC range as a block source, with the client to close after it."""
    rpc = make_rpc(settings, IngestMetrics())
    fetcher = BlockFetcher(rpc, traces=settings.ingest.traces, receipts=settings.ingest.receipts)
    return RpcRangeSource(fetcher, first, last, batch_size=settings.ingest.batch_size, on_error=on_error), rpc
