"""Faults between the node and ingest: malformed and partial answers, a node that goes away."""

from __future__ import annotations

import asyncio
import copy
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from chainsentry.devnet.anvil import Anvil
from chainsentry.devnet.traffic import TrafficGenerator, fill_blocks
from ingest import BlockAdded, BlockFetcher, BlockFollower, IngestMetrics, RetryPolicy, RpcClient
from tests.conftest import complete_lines, start_service, stop_service, wait_until
from tests.rpcservers import RpcProxy, free_port
from tests.test_follower import Collector


def _answers(request: Any, response: Any) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    if isinstance(request, list):
        by_id = {r.get("id"): r for r in response}
        return [(q, by_id[q["id"]]) for q in request if q["id"] in by_id]
    return [(request, response)]


async def follow_mangled(anvil: Anvil, mangle: Any, upto: int, *, traces: str = "auto",
                         attempts: int = 1) -> tuple[Collector, IngestMetrics]:
    """A follower reading anvil through a proxy that rewrites its answers, until block ``upto``."""
    metrics = IngestMetrics(CollectorRegistry())
    with RpcProxy(anvil.http_url) as proxy:
        proxy.mangle = mangle
        client = RpcClient([proxy.url], retry=RetryPolicy(attempts=attempts, backoff=0.01))
        col = Collector(BlockFollower(BlockFetcher(client, traces=traces), start=0,  # type: ignore[arg-type]
                                      poll_interval=0.05, metrics=metrics))
        try:
            await wait_until(lambda: col.tip() is not None and col.tip()[0] == upto)  # type: ignore[index]
        finally:
            await col.stop()
            await client.aclose()
    return col, metrics


async def test_malformed_and_partial_answers_are_reported_and_the_stream_goes_on(
    anvil: Anvil, rpc: RpcClient, caplog: pytest.LogCaptureFixture
) -> None:
    gen = TrafficGenerator(rpc)
    await gen.setup()
    await fill_blocks(rpc, gen, 6, 5)
    bad_block = 3
    target = {}

    def mangle(request: Any, response: Any) -> Any:
        response = copy.deepcopy(response)
        for q, a in _answers(request, response):
            if q["method"] == "eth_getBlockByNumber" and q["params"][0] == hex(bad_block) and q["params"][1]:
                tx = a["result"]["transactions"][1]
                tx["value"] = "a lot"  # malformed quantity
                target["tx"] = tx["hash"]
            if q["method"] == "eth_getBlockReceipts" and q["params"][0] == hex(4):
                a["result"] = a["result"][:2]  # partial: receipts missing
            if q["method"] == "trace_block" and q["params"][0] == hex(5):
                roots = [t for t in a["result"] if t.get("traceAddress") == []]
                roots[0]["action"]["value"] = 17  # a JSON number where hex is usual: accepted
                roots[1]["action"]["from"] = "0x1234"  # malformed address: this trace is lost
        return response

    caplog.set_level(logging.WARNING)
    col, metrics = await follow_mangled(anvil, mangle, 7, attempts=2)
    blocks = {e.block.number: e.block for e in col.events if isinstance(e, BlockAdded)}
    assert sorted(blocks) == list(range(8)), "every block emitted, none lost to bad fields"
    bad_tx = next(t for t in blocks[bad_block].transactions if t.hash == target["tx"])
    assert bad_tx.value is None and bad_tx.sender is not None and bad_tx.receipt is not None
    assert f"malformed field 'value' in block {bad_block}, tx {target['tx']}" in caplog.text
    assert sum(t.receipt is not None for t in blocks[4].transactions) == 2
    assert len(blocks[4].transactions) == 5
    assert blocks[5].transactions[0].trace is not None
    assert blocks[5].transactions[1].trace is None and "'trace.from'" in caplog.text
    assert metrics.registry.get_sample_value("chainsentry_ingest_malformed_fields_total", {"kind": "trace"}) == 1
    assert metrics.registry.get_sample_value("chainsentry_ingest_malformed_fields_total",
                                             {"kind": "transaction"}) == 1


async def test_garbage_answer_is_retried(anvil: Anvil, rpc: RpcClient) -> None:
    await rpc.call("anvil_mine", ["0x3"])
    broken = {"left": 2}

    def mangle(request: Any, response: Any) -> Any:
        if broken["left"] > 0 and isinstance(request, list):
            broken["left"] -= 1
            return 200, {"content-type": "application/json"}, b'[{"jsonrpc": "2.0", "id": '
        return response

    with RpcProxy(anvil.http_url) as proxy:
        proxy.mangle = mangle
        client = RpcClient([proxy.url], retry=RetryPolicy(attempts=5, backoff=0.01))
        blocks = await BlockFetcher(client, traces="off").fetch([1, 2, 3])
        await client.aclose()
    assert [int(b["number"], 16) for b in blocks] == [1, 2, 3] and broken["left"] == 0


async def test_node_down_then_up_reconnects_and_fills_the_gap(anvil: Anvil, rpc: RpcClient) -> None:
    gen = TrafficGenerator(rpc)
    await gen.setup()
    await fill_blocks(rpc, gen, 3, 2)
    metrics = IngestMetrics(CollectorRegistry())
    proxy = RpcProxy(anvil.http_url).start()
    port = proxy.port
    client = RpcClient([proxy.url], timeout=2, retry=RetryPolicy(attempts=2, backoff=0.01, backoff_max=0.05))
    col = Collector(BlockFollower(BlockFetcher(client), start=0, poll_interval=0.05, metrics=metrics))
    await wait_until(lambda: col.tip() is not None and col.tip()[0] == 4)  # type: ignore[index]
    proxy.stop()  # the node goes away: connections refused
    await fill_blocks(rpc, gen, 6, 2)  # the chain moves on meanwhile
    await asyncio.sleep(1.0)
    assert col.tip()[0] == 4  # type: ignore[index]
    assert metrics.registry.get_sample_value("chainsentry_ingest_reconnects_total", {"stream": "blocks"}) >= 1
    proxy2 = RpcProxy(anvil.http_url, port=port).start()  # back, same address
    try:
        await wait_until(lambda: col.tip()[0] == 10, timeout=40)  # type: ignore[index]
    finally:
        await col.stop()
        proxy2.stop()
        await client.aclose()
    numbers = [e.block.number for e in col.events if isinstance(e, BlockAdded)]
    assert numbers == list(range(11)), "no gap and no duplicate across the outage"


def _processed(events_out: Path) -> list[int]:
    """Block numbers the service handed to its sinks (``--events-out``), in order, over all its runs."""
    return [orjson.loads(line)["block"]["number"] for line in complete_lines(events_out)
            if line.startswith(b'{"type":"block_added"')]


async def test_kill_9_during_catch_up_then_restart_processes_every_block(
    anvil: Anvil, rpc: RpcClient, tmp_path: Path
) -> None:
    """The checkpoint never runs ahead of processing: a kill -9 while a backlog is queued loses no block.

    The first run's ``--events-out`` is a pipe read slowly, so processing lags fetching as it does
    on a busy chain, and a backlog of fetched blocks waits in the queue when the process is killed.
    """
    last = 2000
    await rpc.call("anvil_mine", [hex(last)])
    data, pipe, events = tmp_path / "data", tmp_path / "events.pipe", tmp_path / "events.jsonl"
    os.mkfifo(pipe)
    args = [sys.executable, "-m", "chainsentry.cli", "run", "--rpc", anvil.http_url, "--api",
            f"127.0.0.1:{free_port()}", "--data-dir", str(data), "--start-block", "0", "--no-mempool"]
    log = tmp_path / "run.log"
    proc = start_service([*args, "--events-out", str(pipe)], log)
    first_run: list[int] = []

    def read_slowly() -> None:
        with open(pipe, "rb") as fh:
            for line in fh:
                first_run.append(orjson.loads(line)["block"]["number"])
                time.sleep(0.002)

    reader = threading.Thread(target=read_slowly, daemon=True)
    reader.start()
    try:
        await wait_until(lambda: len(first_run) >= 300, timeout=60)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    reader.join(timeout=30)  # what the sink wrote before the kill is still in the pipe
    assert first_run and first_run[-1] < last, "killed during catch-up"
    saved = orjson.loads((data / "checkpoint-31337.json").read_bytes())["blocks"]
    assert saved[-1]["number"] <= first_run[-1], "the checkpoint names a block whose processing completed"
    proc = start_service([*args, "--events-out", str(events)], log)
    try:
        await wait_until(lambda: (_processed(events) or [0])[-1] == last, timeout=120)
    finally:
        stop_service(proc, log)
    numbers = first_run + _processed(events)
    assert set(numbers) == set(range(last + 1)), "no block missing"
    assert len(numbers) - (last + 1) <= 1, "at most the block in hand at the kill comes twice"


BLOCK = 5
_HASH = "0x" + "ee" * 32
BAD_BLOCKS: dict[str, Any] = {
    "another number": lambda b: dict(b, number="0x2"),
    "2**256-1": lambda b: dict(b, number=hex(2**256 - 1)),
    "a negative number": lambda b: dict(b, number="-0x5"),
    "no number": lambda b: {k: v for k, v in b.items() if k != "number"},
    "a malformed hash": lambda b: dict(b, hash="0x1234"),
    "no hash": lambda b: {k: v for k, v in b.items() if k != "hash"},
    "a string": lambda b: "block five",
}


@pytest.mark.parametrize("bad", list(BAD_BLOCKS))
async def test_a_node_answering_another_block_is_refused_retried_and_unhealthy_meanwhile(
    anvil: Anvil, rpc: RpcClient, bad: str
) -> None:
    """Block 5 (full, or its header in the reorg check) answered wrongly: never used, retried with
    backoff, counted, and the follower says why while it lasts; the chain is then followed exactly."""
    await rpc.call("anvil_mine", [hex(8)])
    canon = {n: h for n, h in (await _hashes(rpc, 8)).items()}
    left = {"answers": 4}

    def mangle(request: Any, response: Any) -> Any:
        response = copy.deepcopy(response)
        for q, a in _answers(request, response):
            if q["method"] == "eth_getBlockByNumber" and q["params"][0] == hex(BLOCK) and left["answers"] > 0:
                left["answers"] -= 1
                a["result"] = BAD_BLOCKS[bad](a["result"])
        return response

    metrics = IngestMetrics(CollectorRegistry())
    with RpcProxy(anvil.http_url) as proxy:
        proxy.mangle = mangle
        client = RpcClient([proxy.url], retry=RetryPolicy(attempts=1, backoff=0.01))
        follower = BlockFollower(BlockFetcher(client, traces="off"), start=0, poll_interval=0.05, metrics=metrics,
                                 retry_cap=0.1)
        col = Collector(follower)
        try:
            await wait_until(lambda: follower.failures >= 3)
            assert follower.last_error is not None and f"asked for block {BLOCK}" in follower.last_error
            assert all(e.block.number < BLOCK for e in col.events), "nothing at or after it"  # type: ignore[union-attr]
            await wait_until(lambda: col.tip() is not None and col.tip()[0] == 8)  # type: ignore[index]
        finally:
            await col.stop()
            await client.aclose()
    assert [(e.block.number, e.block.hash) for e in col.events] == sorted(canon.items()), "exact, no retraction"  # type: ignore[union-attr]
    assert follower.failures == 0 and follower.last_error is None
    assert metrics.registry.get_sample_value("chainsentry_ingest_unusable_answers_total",
                                             {"method": "eth_getBlockByNumber"}) == 4


async def _hashes(rpc: RpcClient, upto: int) -> dict[int, str]:
    headers = await rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n in range(upto + 1)])
    return {int(h["number"], 16): h["hash"] for h in headers}


async def test_parity_traces_of_an_unknown_type_out_of_order_or_not_objects_lose_only_that_trace(
    anvil: Anvil, rpc: RpcClient, caplog: pytest.LogCaptureFixture
) -> None:
    gen = TrafficGenerator(rpc)
    await gen.setup()
    await fill_blocks(rpc, gen, 3, 4)
    head = int(await rpc.call("eth_blockNumber"), 16)
    spoiled: dict[str, str] = {}

    def mangle(request: Any, response: Any) -> Any:
        response = copy.deepcopy(response)
        for q, a in _answers(request, response):
            if q["method"] == "trace_block" and q["params"][0] == hex(head):
                roots = [t for t in a["result"] if t.get("traceAddress") == []]
                roots[0]["type"] = "teleport"  # unknown type
                spoiled["unknown"] = roots[0]["transactionHash"]
                child = dict(roots[1], traceAddress=[3, 1])  # a call before its parent
                a["result"].append(child)
                spoiled["orphan"] = roots[1]["transactionHash"]
                a["result"].append("not a trace")
        return response

    caplog.set_level(logging.WARNING)
    col, metrics = await follow_mangled(anvil, mangle, head, traces="parity")
    last = col.events[-1].block  # type: ignore[union-attr]
    traced = {t.hash: t.trace is not None for t in last.transactions}
    assert len(traced) == 4 and not traced[spoiled["unknown"]] and not traced[spoiled["orphan"]]
    assert sum(traced.values()) == 2, "the block's other traces are kept"
    assert "unknown parity trace type" in caplog.text and "before its parent" in caplog.text
    assert "not an object" in caplog.text
    assert metrics.registry.get_sample_value("chainsentry_ingest_malformed_fields_total", {"kind": "transaction"}) == 3
