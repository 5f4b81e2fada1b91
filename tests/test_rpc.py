"""The JSON-RPC client against real HTTP servers on loopback: retries, 429, failover, batching."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from ingest import (
    IngestMetrics,
    MalformedResponseError,
    MethodNotSupportedError,
    PermanentRpcError,
    RetryPolicy,
    RpcClient,
    TransientRpcError,
)
from tests.rpcservers import LoopbackServer, free_port, rpc_result

FAST = RetryPolicy(attempts=4, backoff=0.01, backoff_max=0.05)
JSON = {"content-type": "application/json"}


def ok(body: Any, result: Any = "0x10") -> tuple[int, dict[str, str], bytes]:
    return 200, JSON, json.dumps(rpc_result(body, result)).encode()


async def test_retries_transient_http_errors_then_succeeds() -> None:
    answers = iter([(503, {}, b"busy"), (502, {}, b""), None])

    def handler(body: Any) -> Any:
        a = next(answers)
        return a if a is not None else ok(body)

    with LoopbackServer(handler) as srv:
        metrics = IngestMetrics(CollectorRegistry())
        async with RpcClient([srv.url], retry=FAST, observer=metrics) as rpc:
            assert await rpc.call("eth_blockNumber") == "0x10"
        assert len(srv.requests) == 3
        reg = metrics.registry
        assert reg.get_sample_value("chainsentry_ingest_rpc_requests_total",
                                    {"method": "eth_blockNumber", "outcome": "transient"}) == 2
        assert reg.get_sample_value("chainsentry_ingest_rpc_requests_total",
                                    {"method": "eth_blockNumber", "outcome": "ok"}) == 1


async def test_429_honours_retry_after() -> None:
    seen: list[float] = []

    def handler(body: Any) -> Any:
        seen.append(time.monotonic())
        if len(seen) == 1:
            return 429, {"Retry-After": "1"}, b"slow down"
        return ok(body)

    with LoopbackServer(handler) as srv:
        async with RpcClient([srv.url], retry=FAST) as rpc:
            assert await rpc.call("eth_chainId") == "0x10"
    assert seen[1] - seen[0] >= 0.95, "the client must wait as long as Retry-After asks"


async def test_gives_up_after_attempts_with_a_typed_error() -> None:
    with LoopbackServer(lambda body: (500, {}, b"down")) as srv:
        async with RpcClient([srv.url], retry=FAST) as rpc:
            with pytest.raises(TransientRpcError, match="HTTP 500"):
                await rpc.call("eth_blockNumber")
        assert len(srv.requests) == FAST.attempts


async def test_failover_to_the_next_url_when_one_is_down() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with LoopbackServer(ok) as srv:
        async with RpcClient([dead, srv.url], retry=FAST) as rpc:
            assert await rpc.call("eth_blockNumber") == "0x10"
            assert rpc.endpoint == srv.url
            assert await rpc.call("eth_blockNumber") == "0x10"  # stays on the healthy one
        assert len(srv.requests) == 2


async def test_permanent_errors_are_not_retried() -> None:
    def handler(body: Any) -> Any:
        err = {"jsonrpc": "2.0", "id": body["id"], "error": {"code": -32601, "message": "Method not found"}}
        return 200, JSON, json.dumps(err).encode()

    with LoopbackServer(handler) as srv:
        async with RpcClient([srv.url], retry=FAST) as rpc:
            with pytest.raises(MethodNotSupportedError):
                await rpc.call("trace_block", ["0x1"])
        assert len(srv.requests) == 1
    with LoopbackServer(lambda body: (404, {}, b"no such path")) as srv:
        async with RpcClient([srv.url], retry=FAST) as rpc:
            with pytest.raises(PermanentRpcError, match="HTTP 404"):
                await rpc.call("eth_blockNumber")


async def test_malformed_json_answer_is_a_clear_error() -> None:
    with LoopbackServer(lambda body: (200, JSON, b'{"jsonrpc": "2.0", "id": 1, "resu')) as srv:
        async with RpcClient([srv.url], retry=FAST) as rpc:
            with pytest.raises(MalformedResponseError, match="not JSON"):
                await rpc.call("eth_blockNumber")


async def test_batch_results_in_order_and_partial_errors() -> None:
    def handler(body: Any) -> Any:
        if isinstance(body, dict):  # a chunk of one is sent as a plain call
            return ok(body, body["params"][0])
        out = []
        for r in reversed(body):  # servers may answer a batch in any order
            if r["params"] == ["bad"]:
                out.append({"jsonrpc": "2.0", "id": r["id"], "error": {"code": -32602, "message": "invalid"}})
            else:
                out.append({"jsonrpc": "2.0", "id": r["id"], "result": r["params"][0]})
        return 200, JSON, json.dumps(out).encode()

    with LoopbackServer(handler) as srv:
        async with RpcClient([srv.url], retry=FAST, max_batch=3) as rpc:
            calls = [("echo", [str(i)]) for i in range(7)]
            assert await rpc.batch(calls) == [str(i) for i in range(7)]
            assert len(srv.requests) == 3  # 7 calls in batches of 3
            settled = await rpc.batch_settled([("echo", ["a"]), ("echo", ["bad"]), ("echo", ["c"])])
            assert settled[0] == "a" and settled[2] == "c" and isinstance(settled[1], PermanentRpcError)


async def test_batch_missing_ids_and_refused_batches() -> None:
    def drops_one(body: Any) -> Any:
        return 200, JSON, json.dumps([{"jsonrpc": "2.0", "id": r["id"], "result": 1} for r in body[1:]]).encode()

    with LoopbackServer(drops_one) as srv:
        async with RpcClient([srv.url], retry=RetryPolicy(attempts=1)) as rpc:
            settled = await rpc.batch_settled([("a", []), ("b", [])])
            assert isinstance(settled[0], MalformedResponseError) and settled[1] == 1

    def no_batches(body: Any) -> Any:
        if isinstance(body, list):
            return 200, JSON, json.dumps({"jsonrpc": "2.0", "id": None,
                                          "error": {"code": -32600, "message": "batch not allowed"}}).encode()
        return ok(body, body["method"])

    with LoopbackServer(no_batches) as srv:
        async with RpcClient([srv.url], retry=FAST) as rpc:
            assert await rpc.batch([("x", []), ("y", [])]) == ["x", "y"]
            assert await rpc.batch([("z", []), ("w", [])]) == ["z", "w"]
        assert sum(isinstance(r, list) for r in srv.requests) == 1, "after one refusal, no more batches"


async def test_timeout_is_transient() -> None:
    def slow(body: Any) -> Any:
        time.sleep(0.5)
        return ok(body)

    with LoopbackServer(slow) as srv:
        async with RpcClient([srv.url], timeout=0.1, retry=RetryPolicy(attempts=2, backoff=0.01)) as rpc:
            with pytest.raises(TransientRpcError, match="timed out"):
                await rpc.call("eth_blockNumber")


def test_urls_validated() -> None:
    with pytest.raises(ValueError, match="not an HTTP"):
        RpcClient(["ws://127.0.0.1:1"])
    with pytest.raises(ValueError):
        RpcClient([])
