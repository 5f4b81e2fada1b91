"""``chainsentry record``: kill -9 mid-stream and restart; partial lines; record then replay."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import orjson

from chainsentry.devnet.anvil import Anvil
from chainsentry.devnet.traffic import TrafficGenerator
from ingest import BlockFetcher, BlockRecorder, FileBlockSource, RpcClient, rpc_blocks
from tests.conftest import complete_lines, wait_until


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "chainsentry.cli", *args]


def numbers_in(path: Path) -> list[int]:
    if not path.exists():
        return []
    out = []
    for line in path.read_bytes().split(b"\n"):
        try:
            out.append(int(orjson.loads(line)["number"], 16))
        except (orjson.JSONDecodeError, KeyError):
            continue  # a partial last line
    return out


async def test_kill_9_mid_stream_then_restart_writes_every_block_once(
    anvil: Anvil, rpc: RpcClient, tmp_path: Path
) -> None:
    gen = TrafficGenerator(rpc)
    await gen.setup()
    out = tmp_path / "live.jsonl"
    env = dict(os.environ, CHAINSENTRY_INGEST__POLL_INTERVAL="0.05")
    mining = True

    async def miner() -> None:
        while mining:
            await gen.send(3)
            await rpc.call("evm_mine")
            await asyncio.sleep(0.03)

    mine_task = asyncio.create_task(miner())
    args = cli("record", "--rpc", anvil.http_url, "--from", "0", "--follow", "--out", str(out))
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        await wait_until(lambda: len(numbers_in(out)) >= 15, timeout=30)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        killed_at = numbers_in(out)
        await asyncio.sleep(0.5)  # the chain moves on while the recorder is down
        proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        await wait_until(lambda: len(numbers_in(out)) >= len(killed_at) + 15, timeout=30)
        mining = False
        await mine_task
        head = int(await rpc.call("eth_blockNumber"), 16)
        await wait_until(lambda: numbers_in(out)[-1:] == [head], timeout=30)
    finally:
        mining = False
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    assert numbers_in(out) == list(range(head + 1)), "every block exactly once, in order"
    canonical = await rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n in range(head + 1)])
    recorded = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [b["hash"] for b in recorded] == [c["hash"] for c in canonical]


def test_partial_last_line_is_cut_on_restart(tmp_path: Path) -> None:
    out = tmp_path / "x.jsonl"
    good = orjson.dumps({"number": "0x1", "hash": "0x" + "1" * 64, "transactions": []})
    out.write_bytes(good + b"\n" + b'{"number": "0x2", "hash": "0x22')
    rec = BlockRecorder(out)
    assert rec.last is not None and rec.last.number == 1
    rec.close()
    assert out.read_bytes() == good + b"\n"


async def test_record_range_then_replay_yields_the_same_blocks(anvil: Anvil, rpc: RpcClient, tmp_path: Path) -> None:
    gen = TrafficGenerator(rpc)
    await gen.setup()
    for _ in range(4):
        await gen.send(10)
        await rpc.call("evm_mine")
    out = tmp_path / "range.jsonl"
    res = subprocess.run(cli("record", "--rpc", anvil.http_url, "--from", "1", "--to", "5", "--out", str(out)),
                         capture_output=True, timeout=60)
    assert res.returncode == 0, res.stderr.decode()
    summary = orjson.loads(res.stdout)
    assert summary["blocks_written"] == 5 and summary["traces"] == "parity"
    replayed = list(FileBlockSource([out]))
    live = [b async for b in rpc_blocks(BlockFetcher(rpc), 1, 5)]
    assert replayed == live, "record then replay gives the same events as reading the node"
    assert [len(b.transactions) for b in replayed] == [6, 10, 10, 10, 10]  # 6 deployments, then traffic
    assert all(t.trace is not None and t.receipt is not None for b in replayed for t in b.transactions)
    # the same range again resumes after block 5: nothing is duplicated
    res = subprocess.run(cli("record", "--rpc", anvil.http_url, "--from", "1", "--to", "5", "--out", str(out)),
                         capture_output=True, timeout=60)
    assert res.returncode == 0 and numbers_in(out) == [1, 2, 3, 4, 5]


async def test_mempool_out_records_pending_transactions_with_first_seen(
    anvil: Anvil, rpc: RpcClient, tmp_path: Path
) -> None:
    gen = TrafficGenerator(rpc)
    await gen.setup()
    out, mem = tmp_path / "b.jsonl", tmp_path / "pending.jsonl"
    proc = subprocess.Popen(cli("record", "--rpc", anvil.http_url, "--ws", anvil.ws_url, "--follow", "--out",
                                str(out), "--mempool-out", str(mem), "--duration", "20"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    def recorded() -> set[str]:
        lines = complete_lines(mem)
        return {orjson.loads(x)["tx"]["hash"] for x in lines}

    try:
        for _ in range(100):  # until the subscription is live
            await gen.send(1)
            await asyncio.sleep(0.1)
            if recorded():
                break
        sent = set(await gen.send(20))
        await wait_until(lambda: sent <= recorded(), timeout=15)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    rows = [orjson.loads(x) for x in mem.read_bytes().splitlines()]
    hashes = [r["tx"]["hash"] for r in rows]
    assert len(hashes) == len(set(hashes)), "each pending transaction once"
    assert sent <= set(hashes) and all(r["first_seen"] > 1.7e9 and r["tx"]["from"] for r in rows)
    assert proc.returncode == 0, "SIGTERM is a clean stop"
