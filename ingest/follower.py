"""The block follower: canonical blocks in order, reorgs retracted, no gap across restarts.

New heads arrive over WebSocket (``eth_subscribe newHeads``) when a WS URL is given; HTTP
polling of ``eth_blockNumber`` runs in any case (slower while WS is healthy), so a lost WS
connection costs latency, never blocks. Each step fetches up to ``batch_size`` blocks (bounded
catch-up after downtime), checks each block's parent hash against the tracker and, before each
step, that the tracked tip is still the node's block at that height (a same-height reorg, such
as anvil's ``anvil_reorg``, changes no height). On a mismatch it walks back to the common
ancestor, emitting :class:`BlockRetracted` newest first, then emits the new canonical blocks.

Checkpointing: the checkpoint names the last block whose processing completed, never one that
was only fetched or queued. The follower keeps a second tracker, the committed chain, that
:meth:`BlockFollower.commit` advances one event at a time (a block pushed, a retraction popped),
and saves only that. With ``auto_commit`` an event is committed when the consumer asks for the
next one, i.e. after it has processed it; a pipeline that hands events on through a queue turns
``auto_commit`` off and calls :meth:`BlockFollower.commit` with each event once it is done, in
the order the events were emitted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from .checkpoint import ChainTracker, Checkpoint, MemoryCheckpoint, TrackedBlock
from .events import Block, BlockAdded, BlockRetracted
from .fetch import BlockFetcher, BlockNotFoundError
from .mappers import MappingError, map_block
from .metrics import IngestMetrics
from .rpc import MalformedResponseError, RpcError, TransientRpcError, reconnect_delay, subscribe

log = logging.getLogger(__name__)

FollowerEvent = BlockAdded | BlockRetracted


class BlockFollower:
    """Follows the canonical chain of one node (see the module docstring)."""

    def __init__(
        self,
        fetcher: BlockFetcher,
        *,
        confirmations: int = 0,
        start: int | None = None,
        checkpoint: Checkpoint | None = None,
        batch_size: int = 20,
        poll_interval: float = 1.0,
        ws_url: str | None = None,
        metrics: IngestMetrics | None = None,
        tracker_depth: int = 128,
        auto_commit: bool = True,
        on_mapping_error: Callable[[MappingError], None] | None = None,
        stop_at: int | None = None,
        retry_cap: float = 30.0,
    ) -> None:
        if confirmations < 0:
            raise ValueError("confirmations must be >= 0")
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.fetcher = fetcher
        self.confirmations = confirmations
        self.start = start
        self.checkpoint: Checkpoint = checkpoint or MemoryCheckpoint()
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.ws_url = ws_url
        self.metrics = metrics or IngestMetrics()
        self.tracker = ChainTracker(depth=tracker_depth)  # what has been emitted
        self.committed = ChainTracker(depth=tracker_depth)  # what the consumer has finished
        self.auto_commit = auto_commit
        self.stop_at = stop_at
        self.retry_cap = retry_cap  # the longest wait between failed steps (backoff doubles up to it)
        self._on_mapping_error = on_mapping_error
        self.head: int | None = None
        self.reorgs = 0
        self.last_contact: float | None = None  # wall-clock time of the last successful head poll
        self.failures = 0  # consecutive steps that failed (node down, or answers refused)
        self.last_error: str | None = None  # why the last step failed, while it keeps failing
        self.behind_since: float | None = None  # since when the node's head is below our last block
        self.next_number: int | None = None
        self._wake = asyncio.Event()
        self._ws_healthy = False

    # -- checkpoint ------------------------------------------------------------------------

    def commit(self, event: FollowerEvent) -> None:
        """Persist that ``event``, and every event emitted before it, has been processed."""
        if isinstance(event, BlockAdded):
            self.committed.push(_tracked(event.block))
        elif self.committed.last is not None and self.committed.last.number == event.number:
            self.committed.pop()
        if len(self.committed):  # a reorg deeper than the tracked blocks keeps the older checkpoint
            self.checkpoint.save(self.committed.blocks())

    def _report(self, err: MappingError) -> None:
        self.metrics.mapping_error(err)
        log.warning("%s", err)
        if self._on_mapping_error is not None:
            self._on_mapping_error(err)

    # -- main loop -------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[FollowerEvent]:
        """Canonical-chain events, forever (or up to ``stop_at``)."""
        for tb in self.checkpoint.load():
            self.tracker.push(tb)
            self.committed.push(tb)
        if self.tracker.last is not None:
            self.next_number = self.tracker.last.number + 1
            log.info("resuming after block %d from the checkpoint", self.tracker.last.number)
        ws_task = asyncio.create_task(self._watch_heads()) if self.ws_url else None
        try:
            while True:
                self._wake.clear()  # a head announced from here on, even mid-step, ends the next wait
                try:
                    async for event in self._step():
                        yield event
                        if self.auto_commit:
                            self.commit(event)
                    self.failures, self.last_error = 0, None
                except TransientRpcError as err:
                    self.failures += 1
                    self.last_error = str(err)
                    if isinstance(err, MalformedResponseError):
                        self.metrics.unusable_answers.labels(err.method or "unknown").inc()
                    else:
                        self.metrics.reconnects.labels("blocks").inc()
                    delay = reconnect_delay(self.failures, self.retry_cap)
                    log.warning("node unavailable or its answer unusable (%s); retrying in %.1fs", err, delay)
                    await asyncio.sleep(delay)
                    continue
                if self.stop_at is not None and self.next_number is not None and self.next_number > self.stop_at:
                    return
                await self._wait_for_head()
        finally:
            if ws_task is not None:
                ws_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await ws_task

    async def _wait_for_head(self) -> None:
        timeout = self.poll_interval * (10 if self._ws_healthy else 1)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    async def _watch_heads(self) -> None:
        assert self.ws_url is not None
        failures = 0
        while True:
            try:
                async for _head in subscribe(self.ws_url, ["newHeads"]):
                    self._ws_healthy = True
                    failures = 0
                    self._wake.set()
            except RpcError as err:
                self._ws_healthy = False
                failures += 1
                self.metrics.reconnects.labels("heads_ws").inc()
                log.warning("newHeads subscription lost (%s); polling over HTTP meanwhile", err)
                await asyncio.sleep(reconnect_delay(failures))
            else:
                self._ws_healthy = False

    async def _step(self) -> AsyncIterator[FollowerEvent]:
        head = await self.fetcher.head()
        self.head = head
        self.last_contact = time.time()
        self.metrics.head.set(head)
        target = head - self.confirmations
        if self.stop_at is not None:
            target = min(target, self.stop_at)
        if self.next_number is None:
            self.next_number = self.start if self.start is not None else max(0, target)
        last = self.tracker.last
        if last is not None and head < last.number:  # a lagging node, a rollback, or another chain
            if self.behind_since is None:
                self.behind_since = time.time()
                log.warning("the node's head %d is below block %d, already processed; waiting for it", head,
                            last.number)
        else:
            self.behind_since = None
        if last is not None:
            # Is our tip still canonical? Compare at min(tip, head): a node that is merely behind
            # (a failover to a lagging provider) agrees there; a reorg or rollback does not.
            tracked = self.tracker.get(min(last.number, head))
            if tracked is not None:
                header = await self.fetcher.header(tracked.number)
                if header is not None and header.get("hash") != tracked.hash:
                    async for ev in self._unwind():
                        yield ev
        # The next batch is fetched while the consumer processes this one (node and CPU overlap).
        prefetch: asyncio.Task[list[dict[str, Any]]] | None = None
        try:
            while self.next_number <= target:
                start = self.next_number
                end = min(target, start + self.batch_size - 1)
                current = prefetch if prefetch is not None else asyncio.create_task(self._fetch(start, end))
                prefetch = None
                if end < target:
                    prefetch = asyncio.create_task(self._fetch(end + 1, min(target, end + self.batch_size)))
                raws = await current
                if raws is None:
                    # the head moved back under us (a reorg to a shorter chain): re-check next step
                    log.info("block range %d-%d not at the node any more; re-checking the head", start, end)
                    return
                for raw in raws:
                    try:
                        block = map_block(raw, self._report)
                    except MappingError as err:
                        self._report(err)
                        raise MalformedResponseError(
                            f"unusable block answer: {err}", method="eth_getBlockByNumber"
                        ) from None
                    if not self._extends(block):
                        async for ev in self._unwind():
                            yield ev
                        return  # refetch from the common ancestor on the next step
                    self._push(block)
                    yield BlockAdded(block=block, seen_at=time.time())
                self.metrics.head_lag.set(max(0, head - (self.next_number - 1)))
        finally:
            if prefetch is not None:
                prefetch.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await prefetch

    async def _fetch(self, start: int, end: int) -> Any:
        try:
            return await self.fetcher.fetch(range(start, end + 1))
        except BlockNotFoundError:
            return None

    def _extends(self, block: Block) -> bool:
        return self.tracker.extends(TrackedBlock(block.number, block.hash or "", block.parent_hash))

    def _push(self, block: Block) -> None:
        self.tracker.push(_tracked(block))
        self.next_number = block.number + 1
        self.metrics.blocks.inc()
        self.metrics.transactions.labels("block").inc(len(block.transactions))
        self.metrics.last_block.set(block.number)
        self.metrics.last_block_time.set(time.time())

    async def _unwind(self) -> AsyncIterator[BlockRetracted]:
        """Retract tracked blocks until the tip is on the node's canonical chain again."""
        self.metrics.reorgs.inc()
        self.reorgs += 1
        retracted = 0
        lowest: int | None = None
        while self.tracker.last is not None:
            tip = self.tracker.last
            header: dict[str, Any] | None = await self.fetcher.header(tip.number)
            if header is not None and header.get("hash") == tip.hash:
                break
            self.tracker.pop()
            retracted += 1
            lowest = tip.number
            self.metrics.retracted.inc()
            yield BlockRetracted(number=tip.number, hash=tip.hash, tx_hashes=tip.tx_hashes)
        if self.tracker.last is not None:
            self.next_number = self.tracker.last.number + 1
        elif lowest is not None:
            log.error("reorg deeper than the %d tracked blocks; resuming from block %d", self.tracker.depth, lowest)
            self.next_number = lowest
        log.warning("reorg: retracted %d block(s); resuming at block %s", retracted, self.next_number)


def _tracked(block: Block) -> TrackedBlock:
    return TrackedBlock(block.number, block.hash or "", block.parent_hash, tuple(t.hash for t in block.transactions))
