"""Mempool following on a real anvil (WS subscription and HTTP filter) and the pending lifecycle."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from chainsentry.devnet.anvil import Anvil
from chainsentry.devnet.traffic import TrafficGenerator
from ingest import (
    BlockFetcher,
    BlockFollower,
    MempoolFollower,
    PendingDropped,
    PendingIncluded,
    PendingReplaced,
    PendingSeen,
    PendingTracker,
    PendingTx,
    RpcClient,
    Tx,
)
from tests.conftest import wait_until


class Watch:
    def __init__(self, rpc: RpcClient, ws_url: str | None) -> None:
        self.mempool = MempoolFollower(rpc, ws_url=ws_url, poll_interval=0.05)
        self.tracker = PendingTracker()
        self.events: list[object] = []
        self.raw = 0
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for ptx in self.mempool.pending():
            self.raw += 1
            self.events.extend(self.tracker.seen(ptx))

    def seen(self) -> set[str]:
        return {e.pending.tx.hash for e in self.events if isinstance(e, PendingSeen)}

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def ready(watch: Watch, gen: TrafficGenerator) -> None:
    """Send single transactions until the feed shows one: the subscription or filter is live."""
    for _ in range(50):
        sent = await gen.send(1)
        try:
            await wait_until(lambda h=sent[0]: h in watch.seen(), timeout=0.3)  # type: ignore[misc]
            return
        except AssertionError:
            continue
    raise AssertionError("the mempool feed never came up")


@pytest.mark.parametrize("transport", ["ws", "http"])
async def test_every_pending_tx_is_seen_then_included(anvil: Anvil, rpc: RpcClient, transport: str) -> None:
    gen = TrafficGenerator(rpc)
    await gen.setup()
    watch = Watch(rpc, anvil.ws_url if transport == "ws" else None)
    await ready(watch, gen)
    sent = set(await gen.send(40))
    await wait_until(lambda: sent <= watch.seen())
    assert watch.mempool.mode == transport

    await rpc.call("evm_mine")
    head = int(await rpc.call("eth_blockNumber"), 16)
    follower = BlockFollower(BlockFetcher(rpc, traces="off"), start=head)
    async for ev in follower.events():
        block = ev.block  # type: ignore[union-attr]
        break
    included = watch.tracker.block(block, ev.seen_at)
    await watch.stop()
    inc = {e.tx_hash: e for e in included if isinstance(e, PendingIncluded)}
    assert sent <= set(inc), "every sent transaction is reported included"
    assert all(e.block_number == head and e.delay >= 0 for e in inc.values())
    assert len(watch.tracker) == 0
    seen_events = [e for e in watch.events if isinstance(e, PendingSeen)]
    assert len(seen_events) == len({e.pending.tx.hash for e in seen_events}), "no duplicates"


@pytest.mark.parametrize("transport", ["ws", "http"])
async def test_what_the_pool_holds_before_the_feed_starts_is_read_once(anvil: Anvil, rpc: RpcClient,
                                                                       transport: str) -> None:
    gen = TrafficGenerator(rpc)
    await gen.setup()
    waiting = set(await gen.send(12))  # pending before any feed exists
    watch = Watch(rpc, anvil.ws_url if transport == "ws" else None)
    await wait_until(lambda: waiting <= watch.seen())
    await ready(watch, gen)  # and the live feed works after it
    assert watch.raw == len(watch.seen())  # each read once


async def test_replacement_is_reported(anvil: Anvil, rpc: RpcClient) -> None:
    gen = TrafficGenerator(rpc)
    await gen.setup()
    watch = Watch(rpc, anvil.ws_url)
    await ready(watch, gen)
    sender, to = gen.accounts[7], gen.accounts[8]
    nonce = gen.nonces[sender]
    base = {"from": sender, "to": to, "value": "0x1", "nonce": hex(nonce)}
    first = await rpc.call("eth_sendTransaction", [dict(base, maxFeePerGas=hex(3 * 10**9),
                                                        maxPriorityFeePerGas=hex(10**9))])
    await wait_until(lambda: first in watch.seen())
    second = await rpc.call("eth_sendTransaction", [dict(base, maxFeePerGas=hex(9 * 10**9),
                                                         maxPriorityFeePerGas=hex(5 * 10**9))])
    await wait_until(lambda: second in watch.seen())
    replaced = [e for e in watch.events if isinstance(e, PendingReplaced)]
    assert [(e.tx_hash, e.replaced_by, e.sender, e.nonce) for e in replaced] == [(first, second, sender, nonce)]

    await rpc.call("evm_mine")
    head = int(await rpc.call("eth_blockNumber"), 16)
    async for ev in BlockFollower(BlockFetcher(rpc, traces="off"), start=head).events():
        out = watch.tracker.block(ev.block, ev.seen_at)  # type: ignore[union-attr]
        break
    await watch.stop()
    assert second in {e.tx_hash for e in out if isinstance(e, PendingIncluded)}
    assert first not in {e.tx_hash for e in out}


def test_tracker_replacement_seen_only_in_a_block_and_drops() -> None:
    from ingest import Block

    t = PendingTracker(ttl=10, max_tracked=3)
    a = PendingTx(tx=Tx(hash="0xa", sender="0xs", nonce=1), first_seen=0.0)
    t.seen(a)
    block = Block(number=9, hash="0xb9", transactions=(Tx(hash="0xz", sender="0xs", nonce=1),))
    [ev] = t.block(block, 5.0)
    assert ev == PendingReplaced(tx_hash="0xa", replaced_by="0xz", sender="0xs", nonce=1)
    assert t.seen(PendingTx(tx=Tx(hash="0xz"), first_seen=6.0)) == [], "already mined: not pending again"
    for i in range(5):  # bounded memory: the oldest are dropped past max_tracked
        t.seen(PendingTx(tx=Tx(hash=f"0x{i}"), first_seen=float(i)))
    assert len(t) == 3
    drops = t.expire(now=100.0)
    assert {type(d) for d in drops} == {PendingDropped} and len(t) == 0
