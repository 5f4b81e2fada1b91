"""End to end on anvil: an exploit-shaped transaction among ordinary traffic, through `chainsentry run`."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import orjson

from chainsentry.devnet.anvil import Anvil
from chainsentry.devnet.traffic import EXECUTOR_RUNTIME, TrafficGenerator, command, executor_calldata, init_code
from ingest import RpcClient
from tests.conftest import complete_lines, start_service, stop_service, wait_until
from tests.rpcservers import free_port


async def deploy(rpc: RpcClient, gen: TrafficGenerator, sender: str, runtime: str, n: int) -> list[str]:
    hashes = [await rpc.call("eth_sendTransaction", [gen._with_nonce({"from": sender, "data": init_code(runtime)})])
              for _ in range(n)]
    await rpc.call("evm_mine")
    return [(await rpc.call("eth_getTransactionReceipt", [h]))["contractAddress"] for h in hashes]


async def attack_scene(rpc: RpcClient, seed: int, blocks: int = 10, per_block: int = 20) -> tuple[
        TrafficGenerator, str, str, str]:
    """A devnet with history: (traffic generator, attacker EOA, attacker contract, lender contract)."""
    gen = TrafficGenerator(rpc, seed=seed)
    await gen.setup()
    eoa = gen.accounts[-1]
    attacker, lender = await deploy(rpc, gen, eoa, EXECUTOR_RUNTIME, 2)
    for _ in range(blocks):
        await gen.send(per_block)
        await rpc.call("evm_mine")
    return gen, eoa, attacker, lender


async def send_exploit(rpc: RpcClient, gen: TrafficGenerator, eoa: str, attacker: str, lender: str) -> str:
    tx_hash: str = await rpc.call("eth_sendTransaction", [gen._with_nonce({
        "from": eoa, "to": attacker, "gas": hex(5_000_000),
        "data": exploit_calldata(attacker, lender, gen.counters[0])})])
    return tx_hash


def exploit_calldata(attacker: str, lender: str, token: str) -> str:
    """attacker -> lender -> attacker (callback) -> loops of token moves and balance reads, re-entering
    the lender eight times: borrow, loop, drain shaped (no address of any real exploit involved)."""
    balance = command(token, "0x70a08231" + "00" * 32)
    move = command(token, "0xa9059cbb" + "00" * 64)
    reenter = command(lender, executor_calldata(balance, balance, move))
    callback = executor_calldata(*([balance, move] * 12), *([reenter] * 8), *([move] * 6))
    return executor_calldata(command(lender, executor_calldata(command(attacker, callback))))


async def test_exploit_shaped_tx_scores_above_all_ordinary_traffic_and_alerts(
    anvil: Anvil, rpc: RpcClient, tmp_path: Path
) -> None:
    gen = TrafficGenerator(rpc, seed=5)
    await gen.setup()
    attacker_eoa = gen.accounts[-1]
    attacker, lender = await deploy(rpc, gen, attacker_eoa, EXECUTOR_RUNTIME, 2)
    scores, alerts = tmp_path / "scores.jsonl", tmp_path / "alerts.jsonl"
    env = dict(os.environ, CHAINSENTRY_INGEST__POLL_INTERVAL="0.1")
    api = f"127.0.0.1:{free_port()}"
    proc = start_service(
        [sys.executable, "-m", "chainsentry.cli", "run", "--rpc", anvil.http_url, "--api", api,
         "--data-dir", str(tmp_path / "data"), "--start-block", "0", "--scores", str(scores), "--alerts",
         str(alerts), "--no-mempool"], tmp_path / "service.log", env)
    try:
        for _ in range(30):  # ordinary traffic: transfers, calls, nested relays, deployments
            await gen.send(25)
            await rpc.call("evm_mine")
        exploit = await send_exploit(rpc, gen, attacker_eoa, attacker, lender)
        await gen.send(25)
        await rpc.call("evm_mine")
        for _ in range(3):
            await gen.send(25)
            await rpc.call("evm_mine")
        head = int(await rpc.call("eth_blockNumber"), 16)

        def scored_to_head() -> bool:
            lines = complete_lines(scores)
            return bool(lines) and orjson.loads(lines[-1])["block_number"] == head

        await wait_until(scored_to_head, timeout=60)
        await asyncio.sleep(0.3)
        import httpx

        async with httpx.AsyncClient() as http:
            metrics = (await http.get(f"http://{api}/metrics")).text
            ready = await http.get(f"http://{api}/readyz")
        assert ready.status_code == 200 and ready.json()["store_writable"] and ready.json()["disk_space"]
        assert 'chainsentry_alerts_total{detector="rules",severity=' in metrics
        assert 'chainsentry_pipeline_latency_seconds_count{stage="block"} ' in metrics
        assert 'chainsentry_detector_score_bucket{detector="shape"' in metrics
    finally:
        stop_service(proc, tmp_path / "service.log")
    assert proc.returncode == 0, (tmp_path / "service.log").read_text()[-2000:]
    rows = [orjson.loads(x) for x in scores.read_bytes().splitlines()]
    by_hash = {r["tx_hash"]: r for r in rows}
    assert exploit in by_hash and len(rows) >= 30 * 25
    others = [r["score"] for h, r in by_hash.items() if h != exploit]
    assert by_hash[exploit]["score"] > max(others), "the exploit outscores every ordinary transaction"
    fired = [orjson.loads(x) for x in alerts.read_bytes().splitlines()]
    mine = [a for a in fired if a["tx_hash"] == exploit]
    assert mine and mine[0]["severity"] in ("high", "critical") and mine[0]["explanation"]
    assert {"reentries", "max_repeat"} & {e["feature"] for e in mine[0]["explanation"]}
    assert mine[0]["chain_id"] == 31337 and mine[0]["block_number"] is not None
    assert len(fired) - len(mine) <= 2, f"false alerts on ordinary traffic: {[a['title'] for a in fired]}"
    assert (tmp_path / "data" / "detectors.snapshot").exists(), "learned state kept for the next start"


def run_with_pending_traces(anvil: Anvil, tmp_path: Path, alerts: Path) -> subprocess.Popen[bytes]:
    """``chainsentry run`` on the devnet from block 0, mempool followed with call trees."""
    env = dict(os.environ, CHAINSENTRY_INGEST__POLL_INTERVAL="0.1")
    return start_service(
        [sys.executable, "-m", "chainsentry.cli", "run", "--rpc", anvil.http_url, "--ws", anvil.ws_url, "--api",
         f"127.0.0.1:{free_port()}", "--data-dir", str(tmp_path / "data"), "--start-block", "0", "--alerts",
         str(alerts), "--trace-pending"], tmp_path / "service.log", env)


async def test_an_exploit_already_pending_when_the_service_starts_alerts_before_inclusion(
        anvil: Anvil, rpc: RpcClient, tmp_path: Path) -> None:
    """A feed only reports what arrives after it starts: what the pool already holds is read once
    (txpool_content), so an exploit sent while the service was down still alerts before a block holds it."""
    gen, attacker_eoa, attacker, lender = await attack_scene(rpc, seed=7, blocks=4, per_block=10)
    exploit = await send_exploit(rpc, gen, attacker_eoa, attacker, lender)  # pending, no service yet
    alerts = tmp_path / "alerts.jsonl"
    proc = run_with_pending_traces(anvil, tmp_path, alerts)

    def stages() -> set[str]:
        lines = complete_lines(alerts)
        return {str(a["stage"]) for a in map(orjson.loads, lines) if a["tx_hash"] == exploit}

    try:
        await wait_until(lambda: bool(stages()), timeout=40)
        assert stages() == {"mempool"}, "alerted while still pending, though it was sent before the service started"
        await rpc.call("evm_mine")
        await wait_until(lambda: stages() == {"mempool", "block"}, timeout=20)
    finally:
        stop_service(proc, tmp_path / "service.log")


async def test_exploit_in_the_mempool_alerts_before_inclusion(anvil: Anvil, rpc: RpcClient, tmp_path: Path) -> None:
    gen, attacker_eoa, attacker, lender = await attack_scene(rpc, seed=6, blocks=12, per_block=25)
    alerts = tmp_path / "alerts.jsonl"
    proc = run_with_pending_traces(anvil, tmp_path, alerts)

    def fired() -> list[dict[str, object]]:
        return [orjson.loads(x) for x in complete_lines(alerts)]

    try:
        await asyncio.sleep(3)  # the service connects and subscribes to the mempool
        exploit = await send_exploit(rpc, gen, attacker_eoa, attacker, lender)
        await wait_until(lambda: any(a["tx_hash"] == exploit for a in fired()), timeout=20)
        seen = {str(a["stage"]) for a in fired() if a["tx_hash"] == exploit}
        assert seen == {"mempool"}, "alerted while still pending, before any block holds it"
        await rpc.call("evm_mine")
        await wait_until(lambda: {"mempool", "block"} <= {str(a["stage"]) for a in fired()
                                                        if a["tx_hash"] == exploit}, timeout=20)
    finally:
        stop_service(proc, tmp_path / "service.log")
    mine = [a for a in fired() if a["tx_hash"] == exploit]
    assert len({a["id"] for a in mine}) == 1, "the same event keeps one alert id from mempool to block"
    assert mine[0]["block_number"] is None and mine[1]["block_number"] is not None
