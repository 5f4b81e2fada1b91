"""Call trees are attacker-controlled: a self-recursive contract nests them hundreds of frames deep
on a real chain, and a hostile node or file any deeper. Every ingest path reads, maps, stores and
scores them without recursion limits; the depth kept is capped and the flattening reported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

from chainsentry.devnet.anvil import Anvil
from detectors.engine import ScoringEngine
from ingest import CallFrame, FileBlockSource, MappingError, RpcClient, block_to_rpc, map_block
from ingest.deepjson import loads
from ingest.mappers import MAX_FRAME_DEPTH, map_block_line

SELF = "0x" + "5e" * 20
# PUSH0 x5 (return size/offset, argument size/offset, value), ADDRESS, GAS, CALL, STOP: calls itself
RECURSIVE_CODE = "0x5f5f5f5f5f305af100"


def depth_and_size(frame: CallFrame) -> tuple[int, int]:
    deepest, count, stack = 0, 0, [(frame, 0)]
    while stack:
        f, d = stack.pop()
        deepest, count = max(deepest, d), count + 1
        stack.extend((c, d + 1) for c in f.calls)
    return deepest, count


def deep_block_line(levels: int) -> bytes:
    """A block-JSONL line whose one transaction's call tree nests ``levels`` frames below its root,
    the deepest moving 1 ETH (built as text: the structure itself is too deep for a JSON encoder)."""
    tx_hash, block_hash = "0x" + "ab" * 32, "0x" + "cd" * 32
    frame = f'{{"type":"CALL","from":"{SELF}","to":"{SELF}","value":"0x0","input":"0x","gas":"0x1000","gasUsed":"0x10"'
    last = frame.replace('"value":"0x0"', '"value":"0xde0b6b3a7640000"').replace(f'"to":"{SELF}"',
                                                                                '"to":"0x' + "77" * 20 + '"')
    tree = (frame + ',"calls":[') * levels + last + "}" + "]}" * levels
    tx = {"hash": tx_hash, "from": "0x" + "11" * 20, "to": SELF, "input": "0x", "value": "0x0", "nonce": "0x0",
          "gas": "0x1c9c380", "gasPrice": "0x1", "blockHash": block_hash, "blockNumber": "0x7", "type": "0x0"}
    receipt = {"transactionHash": tx_hash, "status": "0x1", "gasUsed": "0x5208", "logs": []}
    head = orjson.dumps({"number": "0x7", "hash": block_hash, "parentHash": "0x" + "00" * 32, "timestamp": "0x10",
                         "transactions": [tx], "receipts": [receipt]})
    return head[:-1] + b',"traces":[{"txHash":"' + tx_hash.encode() + b'","result":' + tree.encode() + b"}]}"


def test_a_call_tree_10000_frames_deep_is_mapped_capped_reported_stored_and_scored(tmp_path: Path) -> None:
    line = deep_block_line(10_000)
    reported: list[MappingError] = []
    from_file = map_block_line(line, reported.append)
    from_node = map_block(loads(line), reported.append)
    assert from_file == from_node
    trace = from_file.transactions[0].trace
    assert trace is not None
    assert depth_and_size(trace) == (MAX_FRAME_DEPTH, 10_001), "every frame kept, none deeper than the cap"
    assert _has_value(trace, 10**18), "the deepest frame's transfer is still there"
    assert len(reported) == 2 and all(e.field == "trace.calls" and "deeper than" in e.reason for e in reported)
    assert reported[0].block == 7 and reported[0].tx == "0x" + "ab" * 32
    stored = orjson.dumps(block_to_rpc(from_file))  # what record writes: within any encoder's nesting limit
    assert map_block_line(stored, reported.append) == from_file
    scores = ScoringEngine().score_block(from_file)
    assert len(scores) == 1 and 0.0 <= scores[0].score <= 1.0
    path = tmp_path / "deep.jsonl"
    ordinary = orjson.dumps(dict(orjson.loads(stored), number="0x8", traces=[]))
    path.write_bytes(line + b"\n" + ordinary + b"\n")
    assert [b.number for b in FileBlockSource([path])] == [7, 8], "the reader goes on after the deep line"


def _has_value(frame: CallFrame, value: int) -> bool:
    stack = [frame]
    while stack:
        f = stack.pop()
        if f.value == value:
            return True
        stack.extend(f.calls)
    return False


async def test_a_self_recursive_contract_on_anvil_is_recorded_and_replayed(
    anvil: Anvil, rpc: RpcClient, tmp_path: Path
) -> None:
    await rpc.call("anvil_setCode", [SELF, RECURSIVE_CODE])
    sender = (await rpc.call("eth_accounts"))[0]
    tx = await rpc.call("eth_sendTransaction", [{"from": sender, "to": SELF, "gas": hex(29_000_000)}])
    await rpc.call("evm_mine")
    head = int(await rpc.call("eth_blockNumber"), 16)
    for mode in ("debug", "parity"):
        out = tmp_path / f"{mode}.jsonl"
        res = subprocess.run([sys.executable, "-m", "chainsentry.cli", "record", "--rpc", anvil.http_url, "--from",
                              "0", "--to", str(head), "--out", str(out), "--traces", mode],
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        assert orjson.loads(res.stdout)["blocks_written"] == head + 1
        blocks = list(FileBlockSource([out]))
        trace = next(t.trace for b in blocks for t in b.transactions if t.hash == tx)
        assert trace is not None
        deepest, frames = depth_and_size(trace)
        assert deepest == MAX_FRAME_DEPTH and frames > 2 * MAX_FRAME_DEPTH, (mode, deepest, frames)
        scores = tmp_path / f"{mode}-scores.jsonl"
        res = subprocess.run([sys.executable, "-m", "chainsentry.cli", "replay", str(out), "--scores", str(scores)],
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        assert tx in {orjson.loads(x)["tx_hash"] for x in scores.read_bytes().splitlines()}
