"""The fetcher's modes on a real anvil: parity and debug traces agree, fallbacks when methods are missing."""

from __future__ import annotations

import json
from typing import Any

import orjson

from chainsentry.devnet.anvil import Anvil
from chainsentry.devnet.traffic import TrafficGenerator, fill_blocks
from ingest import BlockFetcher, CallFrame, RetryPolicy, RpcClient, block_from_rpc
from tests.rpcservers import RpcProxy
from tests.test_cli import run_cli


def shape(frame: CallFrame) -> tuple[Any, ...]:
    """What both tracers must agree on (gas accounting differs between them by design)."""
    return (frame.type, frame.sender, frame.to, frame.value or 0, frame.input, frame.error,
            tuple(shape(c) for c in frame.calls))


async def test_parity_and_debug_traces_give_the_same_call_trees(rpc: RpcClient) -> None:
    gen = TrafficGenerator(rpc, seed=11)
    await gen.setup()
    await fill_blocks(rpc, gen, 3, 40)
    parity = [block_from_rpc(b) for b in await BlockFetcher(rpc, traces="parity").fetch([2, 3, 4])]
    debug = [block_from_rpc(b) for b in await BlockFetcher(rpc, traces="debug").fetch([2, 3, 4])]
    trees = [(shape(t.trace), shape(u.trace)) for a, b in zip(parity, debug, strict=True)  # type: ignore[arg-type]
             for t, u in zip(a.transactions, b.transactions, strict=True)]
    assert len(trees) == 120 and all(p == d for p, d in trees)
    assert any(len(t.trace.walk()) >= 3 for b in parity for t in b.transactions)  # type: ignore[union-attr]
    kinds = {f.type for b in parity for t in b.transactions for f in t.trace.walk()}  # type: ignore[union-attr]
    assert {"CALL", "CREATE"} <= kinds
    errors = [f.error for b in parity for t in b.transactions for f in t.trace.walk() if f.error]  # type: ignore[union-attr]
    assert errors == [], "the devnet traffic's calls succeed, nested ones included"


def _unsupported(methods: set[str]) -> Any:
    def mangle(request: Any, response: Any) -> Any:
        items = request if isinstance(request, list) else [request]
        answers = response if isinstance(response, list) else [response]
        for q, a in zip(items, answers, strict=True):
            if q["method"] in methods:
                a.pop("result", None)
                a["error"] = {"code": -32601, "message": f"the method {q['method']} does not exist/is not available"}
        return response
    return mangle


async def test_receipts_fall_back_per_transaction_and_traces_auto_turns_off(anvil: Anvil, rpc: RpcClient) -> None:
    gen = TrafficGenerator(rpc)
    await gen.setup()
    await fill_blocks(rpc, gen, 2, 10)
    with RpcProxy(anvil.http_url) as proxy:
        proxy.mangle = _unsupported({"eth_getBlockReceipts", "trace_block", "debug_traceBlockByNumber"})
        async with RpcClient([proxy.url], retry=RetryPolicy(attempts=2, backoff=0.01)) as client:
            fetcher = BlockFetcher(client, traces="auto")
            blocks = [block_from_rpc(b) for b in await fetcher.fetch([2, 3])]
        methods = [q["method"] for r in proxy.requests for q in (r if isinstance(r, list) else [r])]
    assert fetcher.trace_mode == "off"
    assert all(t.receipt is not None and t.receipt.status == 1 for b in blocks for t in b.transactions)
    assert all(t.trace is None for b in blocks for t in b.transactions)
    assert methods.count("eth_getTransactionReceipt") == 20


async def test_auto_prefers_parity_then_debug(anvil: Anvil, rpc: RpcClient) -> None:
    await rpc.call("anvil_mine", ["0x2"])
    assert (f := BlockFetcher(rpc)) and (await f.fetch([1])) is not None and f.trace_mode == "parity"
    with RpcProxy(anvil.http_url) as proxy:
        proxy.mangle = _unsupported({"trace_block"})
        async with RpcClient([proxy.url]) as client:
            f2 = BlockFetcher(client)
            await f2.fetch([1])
    assert f2.trace_mode == "debug"


async def test_cli_replay_from_rpc_and_record_gzip_refused(anvil: Anvil, rpc: RpcClient, tmp_path: Any) -> None:
    gen = TrafficGenerator(rpc)
    await gen.setup()
    await fill_blocks(rpc, gen, 3, 7)
    res = run_cli("replay", anvil.http_url, "--from", "1", "--to", "4")
    assert res.returncode == 0, res.stderr
    summary = orjson.loads(res.stdout)
    assert summary["blocks"] == 4 and summary["transactions"] == 6 + 21 and summary["traces"] == "parity"
    res = run_cli("record", "--rpc", anvil.http_url, "--from", "1", "--to", "2", "--out", str(tmp_path / "x.jsonl.gz"))
    assert res.returncode == 2 and "writes plain .jsonl" in res.stderr
    assert json.loads(json.dumps(summary))  # the summary is plain JSON
