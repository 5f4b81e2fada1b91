"""The block follower on a real anvil: order, reorgs of depth 1-5, checkpoint resume, catch-up."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import orjson
import pytest

from chainsentry.devnet.anvil import Anvil
from chainsentry.devnet.traffic import TrafficGenerator, fill_blocks
from ingest import (
    BlockAdded,
    BlockFetcher,
    BlockFollower,
    BlockRecorder,
    BlockRetracted,
    CheckpointError,
    JsonCheckpoint,
    RpcClient,
)
from tests.conftest import wait_until


async def canonical(rpc: RpcClient, upto: int) -> dict[int, str]:
    headers = await rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n in range(upto + 1)])
    return {int(h["number"], 16): h["hash"] for h in headers}


class Collector:
    """Runs a follower in a task and keeps what it emits."""

    def __init__(self, follower: BlockFollower, recorder: BlockRecorder | None = None) -> None:
        self.follower = follower
        self.recorder = recorder
        self.events: list[BlockAdded | BlockRetracted] = []
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for ev in self.follower.events():
            self.events.append(ev)
            if self.recorder is not None:
                if isinstance(ev, BlockAdded):
                    self.recorder.write(ev.block)
                else:
                    self.recorder.retract(ev.number, ev.hash)

    def tip(self) -> tuple[int, str] | None:
        tb = self.follower.tracker.last
        return (tb.number, tb.hash) if tb else None

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5])
async def test_reorg_retracts_exactly_and_recording_holds_the_canonical_chain(
    rpc: RpcClient, tmp_path: Path, depth: int
) -> None:
    gen = TrafficGenerator(rpc, seed=depth)
    await gen.setup()
    await fill_blocks(rpc, gen, 8, 4)
    head = int(await rpc.call("eth_blockNumber"), 16)
    recorder = BlockRecorder(tmp_path / "chain.jsonl", fsync=False)
    col = Collector(BlockFollower(BlockFetcher(rpc), start=0, poll_interval=0.05, checkpoint=recorder), recorder)
    before = await canonical(rpc, head)
    await wait_until(lambda: col.tip() == (head, before[head]))

    accounts = gen.accounts
    reorg_txs = [[{"from": accounts[5], "to": accounts[6], "value": hex(10**15 + i)}, i % depth] for i in range(3)]
    await rpc.call("anvil_reorg", [depth, reorg_txs])
    after = await canonical(rpc, head)
    assert after[head] != before[head]
    await wait_until(lambda: col.tip() == (head, after[head]))
    await col.stop()
    recorder.close()

    added_first = [e for e in col.events if isinstance(e, BlockAdded)][: head + 1]
    assert [e.block.number for e in added_first] == list(range(head + 1))
    retracted = [e for e in col.events if isinstance(e, BlockRetracted)]
    orphaned = list(range(head, head - depth, -1))
    assert [(e.number, e.hash) for e in retracted] == [(n, before[n]) for n in orphaned], "newest first, exact"
    old_txs = {n: [t.hash for t in added_first[n].block.transactions] for n in orphaned}
    assert all(list(e.tx_hashes) == old_txs[e.number] for e in retracted)
    replacement = col.events[col.events.index(retracted[-1]) + 1 :]
    assert [(e.block.number, e.block.hash) for e in replacement] == [  # type: ignore[union-attr]
        (n, after[n]) for n in range(head - depth + 1, head + 1)
    ]
    lines = [orjson.loads(line) for line in (tmp_path / "chain.jsonl").read_bytes().splitlines()]
    assert [(int(b["number"], 16), b["hash"]) for b in lines] == sorted(after.items())


async def test_checkpoint_resume_has_no_gap_and_no_duplicate(rpc: RpcClient, tmp_path: Path) -> None:
    gen = TrafficGenerator(rpc)
    await gen.setup()
    await fill_blocks(rpc, gen, 5, 3)
    ckpt = JsonCheckpoint(tmp_path / "ckpt.json", chain_id=31337)
    f1 = BlockFollower(BlockFetcher(rpc), start=0, checkpoint=ckpt, poll_interval=0.05)
    col = Collector(f1)
    await wait_until(lambda: col.tip() is not None and col.tip()[0] == 6)  # type: ignore[index]
    await col.stop()
    first = [e.block.number for e in col.events if isinstance(e, BlockAdded)]
    # the last event was handed out but its processing never confirmed: it may come again, nothing is skipped
    await fill_blocks(rpc, gen, 4, 3)
    f2 = BlockFollower(BlockFetcher(rpc), start=0, checkpoint=JsonCheckpoint(tmp_path / "ckpt.json"),
                       poll_interval=0.05)
    col2 = Collector(f2)
    await wait_until(lambda: col2.tip() is not None and col2.tip()[0] == 10)  # type: ignore[index]
    await col2.stop()
    second = [e.block.number for e in col2.events if isinstance(e, BlockAdded)]
    assert first == list(range(7))
    assert second[0] in (6, 7) and second == list(range(second[0], 11))


async def test_catch_up_after_downtime_is_batched(rpc: RpcClient) -> None:
    await rpc.call("anvil_mine", [hex(95)])
    fetcher = BlockFetcher(rpc, traces="off")
    sizes: list[int] = []
    original = fetcher.fetch

    async def spy(numbers):  # type: ignore[no-untyped-def]
        sizes.append(len(numbers))
        return await original(numbers)

    fetcher.fetch = spy  # type: ignore[method-assign]
    col = Collector(BlockFollower(fetcher, start=0, batch_size=16, poll_interval=0.05))
    await wait_until(lambda: col.tip() is not None and col.tip()[0] == 95)  # type: ignore[index]
    await col.stop()
    assert max(sizes) == 16 and sum(sizes) == 96
    assert [e.block.number for e in col.events] == list(range(96))  # type: ignore[union-attr]


async def test_confirmations_hold_back_the_tip(rpc: RpcClient) -> None:
    await rpc.call("anvil_mine", [hex(10)])
    col = Collector(BlockFollower(BlockFetcher(rpc, traces="off"), start=0, confirmations=3, poll_interval=0.05))
    await wait_until(lambda: col.tip() is not None and col.tip()[0] == 7)  # type: ignore[index]
    await asyncio.sleep(0.3)
    assert col.tip()[0] == 7  # type: ignore[index]
    await rpc.call("evm_mine")
    await wait_until(lambda: col.tip()[0] == 8)  # type: ignore[index]
    await col.stop()


def test_checkpoint_refuses_another_chain_and_garbage(tmp_path: Path) -> None:
    from ingest import TrackedBlock

    ck = JsonCheckpoint(tmp_path / "c.json", chain_id=1)
    ck.save([TrackedBlock(5, "0x" + "a" * 64, None)])
    assert JsonCheckpoint(tmp_path / "c.json", chain_id=1).load()[0].number == 5
    with pytest.raises(CheckpointError, match="belongs to chain 1"):
        JsonCheckpoint(tmp_path / "c.json", chain_id=10).load()
    (tmp_path / "c.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="unreadable"):
        ck.load()
    (tmp_path / "c.json").write_text('{"version": 99, "blocks": []}')
    with pytest.raises(CheckpointError, match="version 99"):
        ck.load()


async def test_rollback_to_a_shorter_chain_is_retracted_when_the_chain_regrows(rpc: RpcClient) -> None:
    """A node whose head is below our tip may be lagging (failover) or rolled back: the follower
    waits rather than retract good blocks, and retracts exactly once the node's chain differs."""
    await rpc.call("anvil_mine", ["0x8"])
    col = Collector(BlockFollower(BlockFetcher(rpc, traces="off"), start=0, poll_interval=0.05))
    await wait_until(lambda: col.tip() is not None and col.tip()[0] == 8)  # type: ignore[index]
    old = await canonical(rpc, 8)
    await rpc.call("anvil_rollback", [3])  # head 5 now, blocks 6-8 gone
    await asyncio.sleep(0.3)
    assert not any(isinstance(e, BlockRetracted) for e in col.events), "a lower head alone retracts nothing"
    await rpc.call("anvil_mine", ["0x2"])
    new = await canonical(rpc, 7)
    await wait_until(lambda: col.tip() == (7, new[7]))
    await col.stop()
    assert [(e.number, e.hash) for e in col.events if isinstance(e, BlockRetracted)] == [
        (8, old[8]), (7, old[7]), (6, old[6])
    ]
    assert [e.block.number for e in col.events[-2:]] == [6, 7]  # type: ignore[union-attr]


async def test_the_checkpoint_names_the_last_processed_block_not_the_last_fetched(
    rpc: RpcClient, tmp_path: Path
) -> None:
    """A pipeline queues events ahead of processing: committing the first must not save the queued rest."""
    await rpc.call("anvil_mine", [hex(60)])
    ckpt = JsonCheckpoint(tmp_path / "ckpt.json", chain_id=31337)
    follower = BlockFollower(BlockFetcher(rpc, traces="off"), start=0, checkpoint=ckpt, batch_size=20,
                             poll_interval=0.05, auto_commit=False)
    queue: asyncio.Queue[BlockAdded | BlockRetracted] = asyncio.Queue()

    async def produce() -> None:
        async for ev in follower.events():
            await queue.put(ev)

    task = asyncio.create_task(produce())
    try:
        await wait_until(lambda: queue.qsize() >= 40)
        done = [await queue.get() for _ in range(3)]
        for ev in done:
            follower.commit(ev)
        assert [b.number for b in ckpt.load()] == [0, 1, 2], "only what was processed"
        await wait_until(lambda: follower.tracker.last is not None and follower.tracker.last.number == 60)
        while not queue.empty():
            follower.commit(queue.get_nowait())
        assert ckpt.load()[-1].number == 60
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_the_committed_chain_follows_a_reorg_in_processing_order(rpc: RpcClient, tmp_path: Path) -> None:
    """A reorg the follower saw while the consumer is behind: the checkpoint moves with what the
    consumer has done (old blocks, their retraction, the new blocks), never to blocks it has not seen."""
    await rpc.call("anvil_mine", [hex(8)])
    ckpt = JsonCheckpoint(tmp_path / "ckpt.json", chain_id=31337)
    follower = BlockFollower(BlockFetcher(rpc, traces="off"), start=0, checkpoint=ckpt, poll_interval=0.05,
                             auto_commit=False)
    events: list[BlockAdded | BlockRetracted] = []

    async def produce() -> None:
        async for ev in follower.events():
            events.append(ev)

    task = asyncio.create_task(produce())
    try:
        await wait_until(lambda: len(events) == 9)
        old = await canonical(rpc, 8)
        await rpc.call("anvil_reorg", [3, []])
        new = await canonical(rpc, 8)
        await wait_until(lambda: len(events) == 9 + 3 + 3)
        for ev in events[:10]:  # blocks 0-8 and the retraction of 8
            follower.commit(ev)
        assert [(b.number, b.hash) for b in ckpt.load()][-2:] == [(6, old[6]), (7, old[7])]
        for ev in events[10:]:
            follower.commit(ev)
        assert [(b.number, b.hash) for b in ckpt.load()][-3:] == [(n, new[n]) for n in (6, 7, 8)]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_head_announced_while_a_block_is_processed_is_not_lost(anvil: Anvil, rpc: RpcClient) -> None:
    """newHeads arriving while the consumer works on the previous block wakes the next step at once
    (the HTTP poll is 5 minutes away here: only the WS announcement can bring the block)."""
    await rpc.call("anvil_mine", ["0x2"])
    follower = BlockFollower(BlockFetcher(rpc, traces="off"), start=0, poll_interval=30, ws_url=anvil.ws_url)
    seen: list[int] = []
    busy = asyncio.Event()

    async def consume() -> None:
        async for ev in follower.events():
            assert isinstance(ev, BlockAdded)
            seen.append(ev.block.number)
            if ev.block.number == 3:
                busy.set()
                await asyncio.sleep(0.5)  # processing block 3; block 4 is announced meanwhile

    task = asyncio.create_task(consume())
    try:
        await wait_until(lambda: seen == [0, 1, 2])
        await asyncio.sleep(0.5)  # the newHeads subscription is up
        await rpc.call("evm_mine")
        await asyncio.wait_for(busy.wait(), 10)
        await rpc.call("evm_mine")
        await wait_until(lambda: seen[-1:] == [4], timeout=10)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert seen == [0, 1, 2, 3, 4]


HASH_A = "0x" + "a" * 64


@pytest.mark.parametrize(("content", "why"), [
    ("{}", "unreadable"),
    ('{"version": 1}', "holds no blocks"),
    ('{"version": 1, "blocks": []}', "holds no blocks"),
    ('{"version": 1, "blocks": [{"number": "5", "hash": "0x"}]}', "malformed block"),
    ('{"version": 1, "blocks": [{"number": 5}]}', "malformed block"),
    ('{"version": 1, "blocks": [7]}', "malformed block"),
    (f'{{"version": 1, "blocks": [{{"number": -1, "hash": "{HASH_A}"}}]}}', "malformed block"),
    (f'{{"version": 1, "blocks": [{{"number": 5, "hash": "{HASH_A}"}}, {{"number": 9, "hash": "{HASH_A}"}}]}}',
     "out of sequence"),
    ("", "unreadable"),
])
def test_a_checkpoint_that_cannot_say_where_to_resume_is_one_clear_error(tmp_path: Path, content: str,
                                                                         why: str) -> None:
    (tmp_path / "c.json").write_text(content)
    with pytest.raises(CheckpointError, match=why):
        JsonCheckpoint(tmp_path / "c.json").load()


def test_a_directory_in_place_of_the_checkpoint_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "c.json").mkdir()
    with pytest.raises(CheckpointError, match="cannot be read"):
        JsonCheckpoint(tmp_path / "c.json").load()


async def test_a_checkpoint_ahead_of_the_node_is_reported(rpc: RpcClient, tmp_path: Path) -> None:
    """Resuming after block 500 on a node whose head is 3 (a reset devnet, another chain): the
    follower waits, and says since when; health turns it into an error after a minute."""
    from ingest import TrackedBlock

    await rpc.call("anvil_mine", ["0x3"])
    ckpt = JsonCheckpoint(tmp_path / "c.json")
    ckpt.save([TrackedBlock(500, "0x" + "ab" * 32, "0x" + "cd" * 32)])
    follower = BlockFollower(BlockFetcher(rpc, traces="off"), checkpoint=ckpt, poll_interval=0.05)
    col = Collector(follower)
    try:
        await wait_until(lambda: follower.behind_since is not None)
    finally:
        await col.stop()
    assert col.events == []
