"""The other direction, and the other trace shape: events back to the JSON-RPC shapes the
block-JSONL files hold (``block_to_rpc``: ``block_from_rpc(block_to_rpc(b)) == b``), and parity
``trace_block`` output turned into callTracer frames (``frames_from_parity``), which the mappers
then read like any other trace.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .events import Block, CallFrame, Log, Receipt, Tx
from .mappers import MappingError

JsonDict = Mapping[str, Any]


# (JSON key, Tx attribute, whether it is a hex quantity) for every optional scalar field of a transaction.
TX_FIELDS: tuple[tuple[str, str, bool], ...] = (
    ("from", "sender", False),
    ("to", "to", False),
    ("value", "value", True),
    ("input", "input", False),
    ("nonce", "nonce", True),
    ("gas", "gas", True),
    ("type", "type", True),
    ("gasPrice", "gas_price", True),
    ("maxFeePerGas", "max_fee_per_gas", True),
    ("maxPriorityFeePerGas", "max_priority_fee_per_gas", True),
    ("maxFeePerBlobGas", "max_fee_per_blob_gas", True),
    ("chainId", "chain_id", True),
    ("blockNumber", "block_number", True),
    ("blockHash", "block_hash", False),
    ("transactionIndex", "index", True),
)


# the same for a block's header, after its number
HEADER_FIELDS: tuple[tuple[str, str, bool], ...] = (
    ("hash", "hash", False),
    ("parentHash", "parent_hash", False),
    ("timestamp", "timestamp", True),
    ("miner", "miner", False),
    ("gasLimit", "gas_limit", True),
    ("gasUsed", "gas_used", True),
    ("baseFeePerGas", "base_fee_per_gas", True),
)


def block_to_rpc(block: Block) -> dict[str, Any]:
    """The block-JSONL object for a block: header, full transactions, receipts and traces."""
    out: dict[str, Any] = {"number": hex(block.number)}
    for key, attr, is_quantity in HEADER_FIELDS:
        value = getattr(block, attr)
        if value is not None:
            out[key] = hex(value) if is_quantity else value
    out["transactions"] = [tx_to_rpc(tx) for tx in block.transactions]
    receipts = [receipt_to_rpc(tx.receipt, tx) for tx in block.transactions if tx.receipt is not None]
    if receipts:
        out["receipts"] = receipts
    traces = [
        {"txHash": tx.hash, "result": frame_to_calltracer(tx.trace)}
        for tx in block.transactions
        if tx.trace is not None
    ]
    if traces:
        out["traces"] = traces
    return out


def tx_to_rpc(tx: Tx) -> dict[str, Any]:
    out: dict[str, Any] = {"hash": tx.hash}
    for key, attr, is_quantity in TX_FIELDS:
        value = getattr(tx, attr)
        if value is None:
            continue
        out[key] = hex(value) if is_quantity else value
    if tx.blob_versioned_hashes:
        out["blobVersionedHashes"] = list(tx.blob_versioned_hashes)
    return out


def receipt_to_rpc(receipt: Receipt, tx: Tx) -> dict[str, Any]:
    out: dict[str, Any] = {"transactionHash": receipt.tx_hash}
    for key, value in (
        ("status", receipt.status),
        ("gasUsed", receipt.gas_used),
        ("cumulativeGasUsed", receipt.cumulative_gas_used),
        ("effectiveGasPrice", receipt.effective_gas_price),
        ("type", receipt.type),
    ):
        if value is not None:
            out[key] = hex(value)
    if receipt.contract_address is not None:
        out["contractAddress"] = receipt.contract_address
    if receipt.logs:
        out["logs"] = [log_to_rpc(lg, receipt, tx) for lg in receipt.logs]
    return out


def log_to_rpc(log: Log, receipt: Receipt, tx: Tx) -> dict[str, Any]:
    out: dict[str, Any] = {"address": log.address, "topics": list(log.topics), "data": log.data}
    if log.log_index is not None:
        out["logIndex"] = hex(log.log_index)
    out["transactionHash"] = receipt.tx_hash
    if tx.block_number is not None:
        out["blockNumber"] = hex(tx.block_number)
    if log.removed:
        out["removed"] = True
    return out


def frame_to_calltracer(frame: CallFrame) -> dict[str, Any]:
    out: dict[str, Any] = {"type": frame.type, "from": frame.sender, "to": frame.to}
    if frame.value is not None:
        out["value"] = hex(frame.value)
    out["input"] = frame.input
    if frame.gas is not None:
        out["gas"] = hex(frame.gas)
    if frame.gas_used is not None:
        out["gasUsed"] = hex(frame.gas_used)
    if frame.output is not None:
        out["output"] = frame.output
    if frame.error is not None:
        out["error"] = frame.error
    if frame.calls:
        out["calls"] = [frame_to_calltracer(c) for c in frame.calls]
    return out


# parity/OpenEthereum error strings -> geth callTracer wording, so both trace modes read alike
_PARITY_ERRORS = {
    "Reverted": "execution reverted",
    "Out of gas": "out of gas",
    "Bad instruction": "invalid opcode",
    "Bad jump destination": "invalid jump destination",
    "Stack underflow": "stack underflow",
    "Out of stack": "stack limit reached 1024",
    "Mutable Call In Static Context": "write protection",
}


def frames_from_parity(traces: Iterable[JsonDict]) -> list[dict[str, Any]]:
    """Convert ``trace_block`` (parity/OpenEthereum flat traces) to callTracer results.

    Returns ``[{"txHash": h, "result": frame}]`` in transaction order, the same shape
    ``debug_traceBlockByNumber`` with callTracer returns; block reward traces are dropped. A
    transaction whose traces cannot be assembled (an unknown trace type, a call before its
    parent) gets ``{"txHash": h, "error": why}`` instead, and an entry that is not a trace at all
    ``{"error": why}``: the block mapper reports both, and the rest of the block is kept.
    """
    roots: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    broken: dict[str, str] = {}
    unusable: list[dict[str, Any]] = []
    # traceAddress [] is the root, [i] the i-th child of the root, [i, j] its j-th child ...
    nodes: dict[tuple[str, tuple[int, ...]], dict[str, Any]] = {}
    for t in traces:
        if type(t) is not dict:
            unusable.append({"error": f"a trace entry that is not an object: {t!r:.60}"})
            continue
        kind = t.get("type")
        tx_hash = t.get("transactionHash")
        if kind == "reward" or tx_hash is None:
            continue
        if type(tx_hash) is not str:
            unusable.append({"error": f"a trace entry with transactionHash {tx_hash!r:.60}"})
            continue
        if tx_hash in broken:
            continue
        try:
            frame = _parity_frame(t)
            path = tuple(t.get("traceAddress") or ())
        except (MappingError, AttributeError, TypeError) as err:
            broken[tx_hash] = err.reason if isinstance(err, MappingError) else f"malformed trace ({err})"
            continue
        if not path:
            if tx_hash not in roots:
                order.append(tx_hash)
            roots[tx_hash] = frame
        else:
            parent = nodes.get((tx_hash, path[:-1]))
            if parent is None:
                broken[tx_hash] = f"call {list(path)} before its parent"
                continue
            parent.setdefault("calls", []).append(frame)
        nodes[(tx_hash, path)] = frame
    out: list[dict[str, Any]] = []
    for h in order:
        out.append({"txHash": h, "error": broken[h]} if h in broken else {"txHash": h, "result": roots[h]})
    out.extend({"txHash": h, "error": why} for h, why in broken.items() if h not in roots)
    return out + unusable


def _parity_frame(t: JsonDict) -> dict[str, Any]:
    """One parity trace as a callTracer frame (without its ``calls``)."""
    kind = t.get("type")
    action = t.get("action") or {}
    result = t.get("result") or {}
    if kind == "call":
        frame: dict[str, Any] = {
            "type": str(action.get("callType", "call")).upper(),
            "from": action.get("from"),
            "to": action.get("to"),
            "value": action.get("value"),
            "input": action.get("input", "0x"),
            "gas": action.get("gas"),
            "gasUsed": result.get("gasUsed"),
            "output": result.get("output"),
        }
    elif kind == "create":
        frame = {
            "type": "CREATE2" if action.get("creationMethod") == "create2" else "CREATE",
            "from": action.get("from"),
            "to": result.get("address"),
            "value": action.get("value"),
            "input": action.get("init", "0x"),
            "gas": action.get("gas"),
            "gasUsed": result.get("gasUsed"),
            "output": result.get("code"),
        }
    elif kind in ("suicide", "selfdestruct"):
        frame = {
            "type": "SELFDESTRUCT",
            "from": action.get("address"),
            "to": action.get("refundAddress"),
            "value": action.get("balance"),
            "input": "0x",
        }
    else:
        raise MappingError("trace.type", kind, "unknown parity trace type")
    frame = {k: v for k, v in frame.items() if v is not None or k == "to"}
    if t.get("error") is not None:
        frame["error"] = _PARITY_ERRORS.get(t["error"], str(t["error"]).lower())
    return frame
