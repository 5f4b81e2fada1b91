"""The mempool follower: pending transactions and their fate.

:class:`MempoolFollower` reads pending transactions from the node: ``eth_subscribe
newPendingTransactions`` with full objects where the node gives them, else hashes followed by
``eth_getTransactionByHash``; without WS (or if the node refuses the subscription) an HTTP
pending-transaction filter polled with ``eth_getFilterChanges``. Each time a feed starts (at start,
and after a lost feed), once the node has confirmed the subscription or created the filter, what its
pool already holds is read once (``txpool_content``, where the node has it): a transaction that
arrived while no feed was up is still scored before it is mined, and none falls between the read
and the feed.

:class:`PendingTracker` is the pure bookkeeping: it drops duplicates and turns what it is told
(a pending transaction seen, a block added, time passing) into lifecycle events: seen, included
(with the delay from first seen), replaced (same sender and nonce, another hash, in the mempool
or in a block) and dropped (neither within the TTL). Its memory is bounded by ``max_tracked``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec

from .events import (
    Block,
    PendingDropped,
    PendingIncluded,
    PendingReplaced,
    PendingSeen,
    PendingTx,
)
from .mappers import MappingError, frame_from_calltracer, tx_from_rpc
from .metrics import IngestMetrics
from .rpc import PermanentRpcError, RpcClient, RpcError, TransientRpcError, reconnect_delay, subscribe

log = logging.getLogger(__name__)

PendingEvent = PendingSeen | PendingIncluded | PendingReplaced | PendingDropped
# the most transactions read from the node's pool when a feed starts (a mainnet pool holds
# thousands; each may be traced with --trace-pending, and the feed starts after)
POOL_READ_MAX = 1000


class PendingTracker:
    """Follows pending transactions to inclusion, replacement or drop (pure logic, no I/O).

    >>> from ingest.events import Tx
    >>> t = PendingTracker(ttl=60)
    >>> a = PendingTx(tx=Tx(hash="0xa", sender="0x1", nonce=0), first_seen=100.0)
    >>> [type(e).__name__ for e in t.seen(a)], t.seen(a)
    (['PendingSeen'], [])
    >>> b = PendingTx(tx=Tx(hash="0xb", sender="0x1", nonce=0), first_seen=101.0)
    >>> [type(e).__name__ for e in t.seen(b)]
    ['PendingSeen', 'PendingReplaced']
    >>> [type(e).__name__ for e in t.expire(now=200.0)]
    ['PendingDropped']
    """

    def __init__(self, *, ttl: float = 900.0, max_tracked: int = 200_000, done_memory: int = 10_000) -> None:
        self.ttl = ttl
        self.max_tracked = max_tracked
        self._pending: OrderedDict[str, PendingTx] = OrderedDict()  # by first seen
        self._by_slot: dict[tuple[str, int], str] = {}
        self._done: OrderedDict[str, None] = OrderedDict()  # recently included or replaced
        self._done_memory = done_memory

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, tx_hash: str) -> bool:
        return tx_hash in self._pending

    def _finish(self, tx_hash: str) -> PendingTx | None:
        ptx = self._pending.pop(tx_hash, None)
        if ptx is not None:
            slot = _slot(ptx)
            if slot is not None and self._by_slot.get(slot) == tx_hash:
                del self._by_slot[slot]
        self._done[tx_hash] = None
        if len(self._done) > self._done_memory:
            self._done.popitem(last=False)
        return ptx

    def seen(self, ptx: PendingTx) -> list[PendingEvent]:
        h = ptx.tx.hash
        if h in self._pending or h in self._done:
            return []
        events: list[PendingEvent] = [PendingSeen(pending=ptx)]
        slot = _slot(ptx)
        if slot is not None:
            old = self._by_slot.get(slot)
            if old is not None and old != h:
                self._finish(old)
                events.append(PendingReplaced(tx_hash=old, replaced_by=h, sender=slot[0], nonce=slot[1]))
            self._by_slot[slot] = h
        self._pending[h] = ptx
        while len(self._pending) > self.max_tracked:
            oldest, old_ptx = next(iter(self._pending.items()))
            self._finish(oldest)
            events.append(PendingDropped(tx_hash=oldest, age=ptx.first_seen - old_ptx.first_seen))
        return events

    def block(self, block: Block, seen_at: float) -> list[PendingEvent]:
        events: list[PendingEvent] = []
        for tx in block.transactions:
            ptx = self._pending.get(tx.hash)
            if ptx is not None:
                self._finish(tx.hash)
                events.append(
                    PendingIncluded(
                        tx_hash=tx.hash,
                        block_number=block.number,
                        block_hash=block.hash,
                        delay=max(0.0, seen_at - ptx.first_seen),
                    )
                )
                continue
            if tx.sender is not None and tx.nonce is not None:
                old = self._by_slot.get((tx.sender, tx.nonce))
                if old is not None and old != tx.hash:
                    self._finish(old)
                    events.append(PendingReplaced(tx_hash=old, replaced_by=tx.hash, sender=tx.sender, nonce=tx.nonce))
            self._done[tx.hash] = None
        while len(self._done) > self._done_memory:
            self._done.popitem(last=False)
        return events

    def expire(self, now: float) -> list[PendingEvent]:
        events: list[PendingEvent] = []
        cutoff = now - self.ttl
        while self._pending:
            h, ptx = next(iter(self._pending.items()))
            if ptx.first_seen > cutoff:
                break
            self._finish(h)
            events.append(PendingDropped(tx_hash=h, age=now - ptx.first_seen))
        return events


def _slot(ptx: PendingTx) -> tuple[str, int] | None:
    tx = ptx.tx
    if tx.sender is None or tx.nonce is None:
        return None
    return (tx.sender, tx.nonce)


class MempoolFollower:
    """Pending transactions from a node (WS subscription, else an HTTP filter), as PendingTx."""

    def __init__(
        self,
        rpc: RpcClient,
        *,
        ws_url: str | None = None,
        poll_interval: float = 0.5,
        metrics: IngestMetrics | None = None,
        on_mapping_error: Callable[[MappingError], None] | None = None,
        clock: Callable[[], float] = time.time,
        trace_pending: bool = False,
    ) -> None:
        self.rpc = rpc
        self.trace_pending = trace_pending
        self.ws_url = ws_url
        self.poll_interval = poll_interval
        self.metrics = metrics or IngestMetrics()
        self._on_mapping_error = on_mapping_error
        self._clock = clock
        self.mode = "ws" if ws_url else "http"

    def _to_pending(self, raw: object, seen: float) -> PendingTx | None:
        if not isinstance(raw, dict):
            return None
        try:
            tx = tx_from_rpc(raw)
        except MappingError as err:
            self.metrics.mapping_error(err)
            log.warning("pending %s", err)
            if self._on_mapping_error is not None:
                self._on_mapping_error(err)
            return None
        self.metrics.transactions.labels("mempool").inc()
        return PendingTx(tx=tx, first_seen=seen)

    async def _with_trace(self, ptx: PendingTx) -> PendingTx:
        """The pending transaction with its call tree, simulated by ``debug_traceCall`` on the
        latest mined state; unchanged if the node cannot (tracing is then turned off, once).

        Not on "pending": a node's pending block may already hold this very transaction, and a
        simulation after it shows a drain with nothing left to drain."""
        if not self.trace_pending:
            return ptx
        tx = ptx.tx
        call: dict[str, Any] = {"from": tx.sender, "data": tx.input}
        if tx.to is not None:
            call["to"] = tx.to
        if tx.value is not None:
            call["value"] = hex(tx.value)
        if tx.gas is not None:
            call["gas"] = hex(tx.gas)
        try:
            result = await self.rpc.call("debug_traceCall", [call, "latest", {"tracer": "callTracer"}])
            frame = frame_from_calltracer(result)
        except PermanentRpcError as err:
            log.warning("the node cannot trace pending transactions (%s); scoring them without call trees", err)
            self.trace_pending = False
            return ptx
        except (RpcError, MappingError) as err:
            log.debug("no trace for pending %s: %s", tx.hash, err)
            return ptx
        return PendingTx(tx=msgspec.structs.replace(tx, trace=frame), first_seen=ptx.first_seen)

    async def _by_hashes(self, hashes: list[str], seen: float) -> list[PendingTx]:
        if not hashes:
            return []
        results = await self.rpc.batch_settled([("eth_getTransactionByHash", [h]) for h in hashes])
        out = []
        for raw in results:
            if isinstance(raw, RpcError):
                log.debug("pending tx lookup failed: %s", raw)
                continue
            ptx = self._to_pending(raw, seen)
            if ptx is not None:
                out.append(ptx)
        return out

    async def pending(self) -> AsyncIterator[PendingTx]:
        """Pending transactions as the node reports them (duplicates possible: use a tracker)."""
        failures = 0
        while True:
            try:
                if self.ws_url and self.mode == "ws":
                    async for ptx in self._from_ws():
                        failures = 0
                        yield ptx
                else:
                    async for ptx in self._from_filter():
                        failures = 0
                        yield ptx
            except PermanentRpcError as err:
                if self.mode == "ws":
                    log.warning("mempool subscription refused (%s); polling a pending filter over HTTP", err)
                    self.mode = "http"
                    continue
                log.error("the node offers no pending-transaction feed (%s); mempool following stopped", err)
                return
            except TransientRpcError as err:
                failures += 1
                self.metrics.reconnects.labels("mempool").inc()
                delay = reconnect_delay(failures)
                log.warning("mempool feed lost (%s); reconnecting in %.1fs", err, delay)
                await asyncio.sleep(delay)

    async def _in_pool(self) -> list[PendingTx]:
        """What the node's pool holds now (``txpool_content``'s pending part): a feed reports only
        transactions that arrive after it starts, so those already waiting, at start or after a
        lost feed, are read once here. A node without ``txpool_content`` gives nothing here."""
        try:
            content = await self.rpc.call("txpool_content")
        except PermanentRpcError as err:
            log.info("the node does not list its pool (%s): transactions already pending are seen when mined", err)
            return []
        except TransientRpcError as err:
            log.warning("reading the node's pool failed (%s): transactions already pending are seen when mined", err)
            return []
        seen = self._clock()
        by_sender = content.get("pending") if isinstance(content, dict) else None
        raws = [raw for by_nonce in (by_sender.values() if isinstance(by_sender, dict) else ())
                if isinstance(by_nonce, dict) for raw in by_nonce.values()]
        if len(raws) > POOL_READ_MAX:
            log.warning("the node's pool holds %d transactions; the first %d are read (the rest are seen when mined)",
                        len(raws), POOL_READ_MAX)
        out = []
        for raw in raws[:POOL_READ_MAX]:
            ptx = self._to_pending(raw, seen)
            if ptx is not None:
                out.append(await self._with_trace(ptx))
        if out:
            log.info("%d transactions already pending in the node's pool", len(out))
        return out

    async def _from_ws(self) -> AsyncIterator[PendingTx]:
        assert self.ws_url is not None
        params: list[Any] = ["newPendingTransactions", True]
        try:
            feed = subscribe(self.ws_url, params, announce=True)
            await anext(feed)  # SUBSCRIBED: the node confirmed it
        except PermanentRpcError:
            params = ["newPendingTransactions"]
            feed = subscribe(self.ws_url, params, announce=True)
            await anext(feed)
        try:
            # read once the subscription is live (what arrives meanwhile waits in the socket): a
            # transaction is in the pool read, or in the feed, or both (the tracker drops repeats)
            for waiting in await self._in_pool():
                yield waiting
            while True:
                item = await anext(feed)
                seen = self._clock()
                if isinstance(item, dict):
                    ptx = self._to_pending(item, seen)
                    if ptx is not None:
                        yield await self._with_trace(ptx)
                elif isinstance(item, str):
                    for ptx in await self._by_hashes([item], seen):
                        yield await self._with_trace(ptx)
        finally:
            with contextlib.suppress(Exception):
                await feed.aclose()  # type: ignore[attr-defined]

    async def _from_filter(self) -> AsyncIterator[PendingTx]:
        filter_id = await self.rpc.call("eth_newPendingTransactionFilter")
        for waiting in await self._in_pool():  # after the filter exists: nothing falls between the two
            yield waiting
        while True:
            try:
                changes = await self.rpc.call("eth_getFilterChanges", [filter_id])
            except PermanentRpcError as err:  # filter expired at the node: make a new one
                log.info("pending filter gone (%s); recreating", err)
                filter_id = await self.rpc.call("eth_newPendingTransactionFilter")
                continue
            seen = self._clock()
            hashes = [c for c in changes or [] if isinstance(c, str)]
            objects = [c for c in changes or [] if isinstance(c, dict)]
            for raw in objects:
                ptx = self._to_pending(raw, seen)
                if ptx is not None:
                    yield await self._with_trace(ptx)
            for ptx in await self._by_hashes(hashes, seen):
                yield await self._with_trace(ptx)
            if not changes:
                await asyncio.sleep(self.poll_interval)
