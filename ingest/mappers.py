"""Pure mappers between JSON-RPC results (and the block-JSONL files) and the event types.

``block_from_rpc`` reads what ``eth_getBlockByNumber(n, true)`` returns, optionally with the
block-JSONL additions ``receipts`` (``eth_getBlockReceipts``) and ``traces``
(``debug_traceBlockByNumber`` with callTracer); ``block_to_rpc`` writes the same shape back, so
``block_from_rpc(block_to_rpc(b)) == b``. ``frames_from_parity`` turns ``trace_block`` output into
the same call frames.

Any field may be absent except ``number`` on a block and ``hash`` on a transaction. A present but
malformed field (a non-hex quantity, a wrong type) raises :class:`MappingError` naming the block,
the transaction and the field. ``map_block`` is the forgiving entry point used by the streams: it
reports each error to a callback and keeps everything else (the bad field becomes ``None``, a bad
receipt or trace is left off its transaction, a transaction without a usable hash is skipped).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import msgspec

from . import _hex  # C's own (ingest/_hex.pxd) when compiled
from .deepjson import loads as loads_any_depth
from .errors import UserError
from .events import Block, CallFrame, Log, Receipt, Tx

JsonDict = Mapping[str, Any]

log = logging.getLogger(__name__)


class MappingError(UserError, ValueError):
    """A field of an RPC result or a block-JSONL line is malformed."""

    def __init__(
        self,
        field: str,
        value: object,
        reason: str,
        *,
        block: int | str | None = None,
        tx: str | None = None,
    ) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        self.block = block
        self.tx = tx
        super().__init__(str(self))

    def with_context(self, *, block: int | str | None = None, tx: str | None = None) -> MappingError:
        if block is not None and self.block is None:
            self.block = block
        if tx is not None and self.tx is None:
            self.tx = tx
        self.args = (str(self),)
        return self

    def __str__(self) -> str:
        where = []
        if self.block is not None:
            where.append(f"block {self.block}")
        if self.tx is not None:
            where.append(f"tx {self.tx}")
        place = " in " + ", ".join(where) if where else ""
        shown = repr(self.value)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        return f"malformed field {self.field!r}{place}: {self.reason} (got {shown})"


# --- scalar parsers --------------------------------------------------------------------------


def quantity(value: object, field: str) -> int | None:
    """A JSON-RPC quantity (hex string; a JSON integer is accepted too) as ``int``.

    >>> quantity("0x1f", "gas"), quantity(None, "gas"), quantity(7, "gas")
    (31, None, 7)
    >>> quantity("12", "gas")
    Traceback (most recent call last):
    ...
    ingest.mappers.MappingError: malformed field 'gas': not a 0x-prefixed hex quantity (got '12')
    """
    if value is None:
        return None
    if type(value) is str:
        if value[:2] == "0x" and 2 < len(value) <= 66:
            try:
                return int(value, 16)
            except ValueError:
                pass
        elif value == "0x":
            return 0
        raise MappingError(field, value, "not a 0x-prefixed hex quantity")
    if type(value) is int:
        if value < 0:
            raise MappingError(field, value, "negative quantity")
        return value
    raise MappingError(field, value, "not a 0x-prefixed hex quantity")


def address(value: object, field: str) -> str | None:
    """A 20-byte address, lower-cased; ``None`` stays ``None``.

    >>> address("0xAbC0000000000000000000000000000000000001", "to")
    '0xabc0000000000000000000000000000000000001'
    """
    if value is None:
        return None
    if type(value) is str and len(value) == 42 and value[:2] in ("0x", "0X"):
        return value.lower()
    raise MappingError(field, value, "not a 20-byte 0x address")


def hash32(value: object, field: str) -> str | None:
    """A 32-byte hash, lower-cased."""
    if value is None:
        return None
    if type(value) is str and len(value) == 66 and value[:2] == "0x":
        return value.lower()
    raise MappingError(field, value, "not a 32-byte 0x hash")


def data(value: object, field: str) -> str:
    """Hex data (calldata, log data); absent means empty."""
    if value is None:
        return "0x"
    if type(value) is str and value[:2] == "0x":
        return value
    raise MappingError(field, value, "not 0x-prefixed hex data")


def _opt_str(value: object, field: str) -> str | None:
    if value is None or type(value) is str:
        return value
    raise MappingError(field, value, "not a string")


def _list(value: object, field: str) -> list[Any]:
    if value is None:
        return []
    if type(value) is list:
        return value
    raise MappingError(field, value, "not a list")


# --- call frames -------------------------------------------------------------------------------

FRAME_TYPES = frozenset({"CALL", "DELEGATECALL", "STATICCALL", "CALLCODE", "CREATE", "CREATE2", "SELFDESTRUCT"})


MAX_FRAME_DEPTH = 100
"""The deepest call frame kept in place (the root is depth 0). Call trees are attacker-controlled
(a self-recursive contract nests up to the EVM's 1,024 levels) while ordinary ones stay far
shallower; deeper frames are kept, in call order, as children of their ancestor at depth
``MAX_FRAME_DEPTH - 1``, and the flattening is reported. Everything downstream (encoders, stores,
detectors) then sees trees of bounded depth."""


def frame_from_calltracer(raw: JsonDict, report: Reporter | None = None) -> CallFrame:
    """A callTracer frame (with its nested ``calls``) as a :class:`CallFrame`, depth-capped.

    ``report`` hears of a flattened tree (default: a warning in the log).
    """
    try:
        frame: CallFrame = _frame_fast(raw)
        return frame
    except (AttributeError, TypeError, ValueError, KeyError, IndexError):
        return _frame_checked(raw, report)  # raises a MappingError naming the field


def _frame_fast(raw: Any, depth: int = 0, _int: Any = int, _frame: Any = CallFrame) -> Any:
    """The common case without per-field checks; any surprise (or a tree deeper than
    ``MAX_FRAME_DEPTH``) falls back to the checked path."""
    get = raw.get
    sender = get("from")
    to = get("to")
    value = get("value")
    inp = get("input", "0x")
    gas = get("gas")
    used = get("gasUsed")
    calls = get("calls")
    if (
        len(sender) != 42
        or (to is not None and len(to) != 42)
        or inp[:2] != "0x"
        or (value is not None and value[:2] != "0x")
        or (gas is not None and gas[:2] != "0x")
        or (used is not None and used[:2] != "0x")
        or (calls and depth >= MAX_FRAME_DEPTH)
    ):
        raise ValueError
    output = get("output")
    error = get("error")
    if (output is not None and type(output) is not str) or (error is not None and type(error) is not str):
        raise ValueError
    kind = raw["type"]
    if kind not in FRAME_TYPES:
        kind = kind.upper()
    return _frame(
        kind,
        sender.lower(),
        to.lower() if to is not None else None,
        _int(value, 16) if value is not None else None,
        inp,
        _int(gas, 16) if gas is not None else None,
        _int(used, 16) if used is not None else None,
        output,
        error,
        tuple([_frame_fast(c, depth + 1) for c in calls]) if calls else (),
    )


def _frame_checked(raw: JsonDict, report: Reporter | None = None) -> CallFrame:
    """Every field checked, the tree walked with an explicit stack and capped at ``MAX_FRAME_DEPTH``."""
    nodes: list[tuple[JsonDict, int]] = []  # (raw frame, index of its parent), in call order
    stack: list[tuple[Any, int, int]] = [(raw, -1, 0)]  # (raw frame, parent index, depth)
    flattened = 0
    while stack:
        r, parent, depth = stack.pop()
        if type(r) is not dict:
            raise MappingError("trace", r, "call frame is not an object")
        index = len(nodes)
        nodes.append((r, parent))
        children = _list(r.get("calls"), "trace.calls")
        if depth < MAX_FRAME_DEPTH:
            stack.extend((c, index, depth + 1) for c in reversed(children))
        else:  # too deep: its calls go beside it, under its parent
            flattened += len(children)
            stack.extend((c, parent, depth) for c in reversed(children))
    built: list[list[CallFrame]] = [[] for _ in nodes]
    for index in range(len(nodes) - 1, -1, -1):  # children before their parents
        r, parent = nodes[index]
        frame = _frame_fields(r, tuple(reversed(built[index])))
        if parent < 0:
            root = frame
        else:
            built[parent].append(frame)
    if flattened:
        err = MappingError("trace.calls", f"{flattened} frames", f"call tree deeper than {MAX_FRAME_DEPTH} "
                           f"frames: the frames below depth {MAX_FRAME_DEPTH} were kept under their ancestor "
                           f"at depth {MAX_FRAME_DEPTH - 1}")
        if report is not None:
            report(err)
        else:
            log.warning("%s", err)
    return root


def _frame_fields(raw: JsonDict, calls: tuple[CallFrame, ...]) -> CallFrame:
    kind = raw.get("type")
    if type(kind) is not str:
        raise MappingError("trace.type", kind, "missing or not a string")
    get = raw.get
    return CallFrame(
        type=kind.upper(),
        sender=address(get("from"), "trace.from") or "",
        to=address(get("to"), "trace.to"),
        value=quantity(get("value"), "trace.value"),
        input=data(get("input"), "trace.input"),
        gas=quantity(get("gas"), "trace.gas"),
        gas_used=quantity(get("gasUsed"), "trace.gasUsed"),
        output=_opt_str(get("output"), "trace.output"),
        error=_opt_str(get("error"), "trace.error"),
        calls=calls,
    )


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


# --- logs and receipts -------------------------------------------------------------------------


def log_from_rpc(raw: JsonDict) -> Log:
    if type(raw) is not dict:
        raise MappingError("logs", raw, "log is not an object")
    topics = _list(raw.get("topics"), "log.topics")
    return Log(
        address=address(raw.get("address"), "log.address") or "",
        topics=tuple(hash32(t, "log.topics") or "" for t in topics),
        data=data(raw.get("data"), "log.data"),
        log_index=quantity(raw.get("logIndex"), "log.logIndex"),
        removed=bool(raw.get("removed", False)),
    )


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


def receipt_from_rpc(raw: JsonDict) -> Receipt:
    if type(raw) is not dict:
        raise MappingError("receipt", raw, "receipt is not an object")
    get = raw.get
    tx_hash = hash32(get("transactionHash"), "receipt.transactionHash")
    if tx_hash is None:
        raise MappingError("receipt.transactionHash", None, "missing")
    logs = get("logs")
    return Receipt(
        tx_hash=tx_hash,
        status=quantity(get("status"), "receipt.status"),
        gas_used=quantity(get("gasUsed"), "receipt.gasUsed"),
        cumulative_gas_used=quantity(get("cumulativeGasUsed"), "receipt.cumulativeGasUsed"),
        effective_gas_price=quantity(get("effectiveGasPrice"), "receipt.effectiveGasPrice"),
        contract_address=address(get("contractAddress"), "receipt.contractAddress"),
        type=quantity(get("type"), "receipt.type"),
        logs=tuple(log_from_rpc(lg) for lg in _list(logs, "receipt.logs")) if logs else (),
    )


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


# --- transactions ------------------------------------------------------------------------------

# (JSON key, Tx attribute, parser) for every optional scalar field of a transaction.
_TX_FIELDS: tuple[tuple[str, str, Callable[[object, str], Any]], ...] = (
    ("from", "sender", address),
    ("to", "to", address),
    ("value", "value", quantity),
    ("input", "input", data),
    ("nonce", "nonce", quantity),
    ("gas", "gas", quantity),
    ("type", "type", quantity),
    ("gasPrice", "gas_price", quantity),
    ("maxFeePerGas", "max_fee_per_gas", quantity),
    ("maxPriorityFeePerGas", "max_priority_fee_per_gas", quantity),
    ("maxFeePerBlobGas", "max_fee_per_blob_gas", quantity),
    ("chainId", "chain_id", quantity),
    ("blockNumber", "block_number", quantity),
    ("blockHash", "block_hash", hash32),
    ("transactionIndex", "index", quantity),
)


def tx_from_rpc(raw: JsonDict, receipt: Receipt | None = None, trace: CallFrame | None = None) -> Tx:
    """A transaction object (mined or pending) as a :class:`Tx`."""
    try:
        tx: Tx = _tx_fast(raw, receipt, trace)
        return tx
    except (AttributeError, TypeError, ValueError, KeyError, IndexError):
        return _tx_checked(raw, receipt, trace)  # raises a MappingError naming the field


_QTY_KEYS = ("value", "nonce", "gas", "type", "gasPrice", "maxFeePerGas", "maxPriorityFeePerGas", "maxFeePerBlobGas",
             "chainId", "blockNumber", "transactionIndex")


def _tx_fast(raw: Any, receipt: Receipt | None, trace: CallFrame | None, _int: Any = int, _tx: Any = Tx) -> Any:
    """The common case without per-field checks; any surprise falls back to the checked path."""
    get = raw.get
    h = raw["hash"]
    sender = get("from")
    to = get("to")
    inp = get("input")
    block_hash = get("blockHash")
    if (
        len(h) != 66
        or h[1] != "x"
        or (sender is not None and len(sender) != 42)
        or (to is not None and len(to) != 42)
        or (inp is not None and inp[:2] != "0x")
        or (block_hash is not None and len(block_hash) != 66)
        or "blobVersionedHashes" in raw
    ):
        raise ValueError
    q = [get(k) for k in _QTY_KEYS]
    for v in q:
        if v is not None and v[:2] != "0x":
            raise ValueError
    value, nonce, gas, typ, gas_price, max_fee, max_prio, max_blob, chain_id, number, index = [
        _int(v, 16) if v is not None else None for v in q
    ]
    return _tx(
        h.lower(), sender.lower() if sender is not None else None, to.lower() if to is not None else None, value,
        inp if inp is not None else "0x", nonce, gas, typ, gas_price, max_fee, max_prio, max_blob, (), chain_id,
        number, block_hash.lower() if block_hash is not None else None, index, receipt, trace,
    )


def _tx_checked(raw: JsonDict, receipt: Receipt | None, trace: CallFrame | None) -> Tx:
    if type(raw) is not dict:
        raise MappingError("transaction", raw, "transaction is not an object")
    tx_hash = hash32(raw.get("hash"), "hash")
    if tx_hash is None:
        raise MappingError("hash", None, "missing")
    try:
        kwargs: dict[str, Any] = {attr: parse(raw.get(key), key) for key, attr, parse in _TX_FIELDS}
        blobs = raw.get("blobVersionedHashes")
        if blobs:
            kwargs["blob_versioned_hashes"] = tuple(
                hash32(b, "blobVersionedHashes") or "" for b in _list(blobs, "blobVersionedHashes")
            )
    except MappingError as err:
        raise err.with_context(tx=tx_hash) from None
    if kwargs["input"] is None:
        kwargs["input"] = "0x"
    return Tx(hash=tx_hash, receipt=receipt, trace=trace, **kwargs)


def tx_to_rpc(tx: Tx) -> dict[str, Any]:
    out: dict[str, Any] = {"hash": tx.hash}
    for key, attr, parse in _TX_FIELDS:
        value = getattr(tx, attr)
        if value is None:
            continue
        out[key] = hex(value) if parse is quantity else value
    if tx.blob_versioned_hashes:
        out["blobVersionedHashes"] = list(tx.blob_versioned_hashes)
    return out


def _tx_lenient(raw: JsonDict, receipt: Receipt | None, trace: CallFrame | None, report: Reporter) -> Tx | None:
    """Map a transaction, turning each malformed optional field into None (reported)."""
    fixed = dict(raw)
    for _ in range(len(_TX_FIELDS) + 2):
        try:
            return tx_from_rpc(fixed, receipt, trace)
        except MappingError as err:
            report(err)
            key = err.field
            if key == "hash" or key not in fixed:
                return None
            fixed[key] = None
    return None


# --- blocks ------------------------------------------------------------------------------------

Reporter = Callable[[MappingError], None]


def _raise(err: MappingError) -> None:
    raise err


_BLOCK_FIELDS: tuple[tuple[str, str, Callable[[object, str], Any]], ...] = (
    ("hash", "hash", hash32),
    ("parentHash", "parent_hash", hash32),
    ("timestamp", "timestamp", quantity),
    ("miner", "miner", address),
    ("gasLimit", "gas_limit", quantity),
    ("gasUsed", "gas_used", quantity),
    ("baseFeePerGas", "base_fee_per_gas", quantity),
)


def block_from_rpc(raw: JsonDict) -> Block:
    """Strict: a block (with optional ``receipts`` and ``traces``) as a :class:`Block`.

    Raises :class:`MappingError` on the first malformed field.
    """
    return map_block(raw, _raise)


def map_block(raw: JsonDict, report: Reporter) -> Block:
    """Map a block, reporting malformed parts to ``report`` and keeping the rest.

    A block whose ``number`` is missing or malformed cannot be placed, so that error is raised.
    """
    try:
        block: Block = _block_fast(raw)
        return block
    except (AttributeError, TypeError, ValueError, KeyError, IndexError):
        return _block_checked(raw, report)  # finds and reports exactly what is wrong


def _hexq(v: Any) -> int | None:
    """A well-formed hex quantity or None; anything else raises (to leave the fast path)."""
    if v is None:
        return None
    if not _hex.has0x(v) or len(v) > 66:
        raise ValueError
    return _hex.hexint(v) if len(v) > 2 else 0


def _fixed(v: Any, length: int) -> str | None:
    """A well-formed 0x string of ``length`` characters, lower-cased, or None; else raises."""
    if v is None:
        return None
    if len(v) != length or not _hex.has0x(v):
        raise ValueError
    return _hex.lower(v)


def _addr(v: Any) -> str | None:
    return _fixed(v, 42)


def _h32(v: Any) -> str | None:
    return _fixed(v, 66)


def _log_fast(raw: Any) -> Log:
    get = raw.get
    data = get("data", "0x")
    if data[:2] != "0x":
        raise ValueError
    return Log(_addr(raw["address"]) or "", tuple([_h32(t) or "" for t in get("topics") or ()]), data,
               _hexq(get("logIndex")), bool(get("removed", False)))


def _receipt_fast(raw: Any) -> Receipt:
    get = raw.get
    logs = get("logs")
    return Receipt(
        _h32(raw["transactionHash"]) or "", _hexq(get("status")), _hexq(get("gasUsed")),
        _hexq(get("cumulativeGasUsed")), _hexq(get("effectiveGasPrice")), _addr(get("contractAddress")),
        _hexq(get("type")), tuple([_log_fast(lg) for lg in logs]) if logs else (),
    )


def _block_fast(raw: Any) -> Block:
    """The common case: every field well-formed. Any surprise raises, and the checked path runs."""
    get = raw.get
    number = _hexq(raw["number"])
    if number is None:
        raise ValueError
    receipts: dict[str, Receipt] = {}
    for r in get("receipts") or ():
        rec = _receipt_fast(r)
        receipts[rec.tx_hash] = rec
    traces: dict[str, CallFrame] = {}
    for t in get("traces") or ():
        traces[t["txHash"].lower()] = _frame_fast(t["result"])
    txs = []
    for t in get("transactions") or ():
        key = t["hash"].lower()
        txs.append(_tx_fast(t, receipts.get(key), traces.get(key)))
    if len(traces) != len(get("traces") or ()):
        raise ValueError  # traces without hashes are joined by position in the checked path
    return Block(number, _h32(get("hash")), _h32(get("parentHash")), _hexq(get("timestamp")), _addr(get("miner")),
                 _hexq(get("gasLimit")), _hexq(get("gasUsed")), _hexq(get("baseFeePerGas")), tuple(txs))


def _block_checked(raw: JsonDict, report: Reporter) -> Block:
    if type(raw) is not dict:
        raise MappingError("block", raw, "block is not an object")
    number = quantity(raw.get("number"), "number")
    if number is None:
        raise MappingError("number", None, "missing")
    header: dict[str, Any] = {}
    for key, attr, parse in _BLOCK_FIELDS:
        try:
            header[attr] = parse(raw.get(key), key)
        except MappingError as err:
            report(err.with_context(block=number))
            header[attr] = None

    try:
        txs_raw = _list(raw.get("transactions"), "transactions")
        receipts_raw = _list(raw.get("receipts"), "receipts")
        traces_raw = _list(raw.get("traces"), "traces")
    except MappingError as err:
        report(err.with_context(block=number))
        return Block(number=number, **header)

    receipts: dict[str, Receipt] = {}
    for r in receipts_raw:
        try:
            rec = receipt_from_rpc(r)
            receipts[rec.tx_hash] = rec
        except MappingError as err:
            tx = r.get("transactionHash") if type(r) is dict else None
            report(err.with_context(block=number, tx=tx if isinstance(tx, str) else None))

    traces: dict[str, CallFrame] = {}
    positional: list[CallFrame | None] = []
    for i, t in enumerate(traces_raw):
        tx_hash = t.get("txHash") if type(t) is dict else None
        where = tx_hash if isinstance(tx_hash, str) else f"#{i}"
        try:
            if type(t) is not dict or "result" not in t:
                why = t.get("error") if type(t) is dict and type(t.get("error")) is str else "without a result"
                raise MappingError("traces", t, f"trace entry {why}")
            frame = frame_from_calltracer(t["result"], _in(report, number, where))
        except MappingError as err:
            report(err.with_context(block=number, tx=where))
            positional.append(None)
            continue
        positional.append(frame)
        if isinstance(tx_hash, str):
            traces[tx_hash.lower()] = frame

    txs: list[Tx] = []
    for i, t in enumerate(txs_raw):
        if type(t) is str:  # a block fetched without full transactions
            report(MappingError("transactions", t, "transaction hash only, not an object", block=number))
            continue
        if type(t) is not dict:
            report(MappingError("transactions", t, "transaction is not an object", block=number))
            continue
        h = t.get("hash")
        key = h.lower() if isinstance(h, str) else ""
        trace = traces.get(key)
        if trace is None and not traces and i < len(positional):
            trace = positional[i]
        receipt = receipts.get(key)
        try:
            txs.append(tx_from_rpc(t, receipt, trace))
        except MappingError as err:
            err.with_context(block=number)
            tx = _tx_lenient(t, receipt, trace, lambda e: report(e.with_context(block=number)))
            if tx is not None:
                txs.append(tx)
    return Block(number=number, transactions=tuple(txs), **header)


def _in(report: Reporter, block: int, tx: str) -> Reporter:
    """``report`` with the block and transaction an error was found in."""
    return lambda err: report(err.with_context(block=block, tx=tx))


def block_to_rpc(block: Block) -> dict[str, Any]:
    """The block-JSONL object for a block: header, full transactions, receipts and traces."""
    out: dict[str, Any] = {"number": hex(block.number)}
    for key, attr, parse in _BLOCK_FIELDS:
        value = getattr(block, attr)
        if value is not None:
            out[key] = hex(value) if parse is quantity else value
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


# --- block-JSONL lines decoded straight into typed structs ----------------------------------
#
# The replay reader's fast path: msgspec decodes a line into the raw shapes below in C (no dicts),
# and the functions after them apply exactly the checks and conversions of the dict fast path
# (``_block_fast`` and its helpers). A line that does not fit (a wrong type anywhere, a block
# without full transactions, traces without hashes, a malformed quantity) is decoded again with
# orjson and goes through ``map_block``, whose checked path reports exactly what is wrong: the
# result for any line is the same as ``map_block(orjson.loads(line))`` (tested on the data files).


class _RawFrame(msgspec.Struct, gc=False):
    type: str
    sender: str = msgspec.field(name="from")
    to: str | None = None
    value: str | None = None
    input: str = "0x"
    gas: str | None = None
    gasUsed: str | None = None
    output: str | None = None
    error: str | None = None
    calls: list[_RawFrame] | None = None


class _RawTrace(msgspec.Struct, gc=False):
    txHash: str
    result: _RawFrame


class _RawLog(msgspec.Struct, gc=False):
    address: str
    topics: list[str | None] | None = None
    data: str = "0x"
    logIndex: str | None = None
    removed: bool | None = False


class _RawReceipt(msgspec.Struct, gc=False):
    transactionHash: str
    status: str | None = None
    gasUsed: str | None = None
    cumulativeGasUsed: str | None = None
    effectiveGasPrice: str | None = None
    contractAddress: str | None = None
    type: str | None = None
    logs: list[_RawLog] | None = None


class _RawTx(msgspec.Struct, gc=False):
    hash: str
    sender: str | None = msgspec.field(default=None, name="from")
    to: str | None = None
    input: str | None = None
    blockHash: str | None = None
    value: str | None = None
    nonce: str | None = None
    gas: str | None = None
    type: str | None = None
    gasPrice: str | None = None
    maxFeePerGas: str | None = None
    maxPriorityFeePerGas: str | None = None
    maxFeePerBlobGas: str | None = None
    chainId: str | None = None
    blockNumber: str | None = None
    transactionIndex: str | None = None
    blobVersionedHashes: list[Any] | None = None


class _RawBlock(msgspec.Struct, gc=False):
    number: str
    hash: str | None = None
    parentHash: str | None = None
    timestamp: str | None = None
    miner: str | None = None
    gasLimit: str | None = None
    gasUsed: str | None = None
    baseFeePerGas: str | None = None
    transactions: list[_RawTx] | None = None
    receipts: list[_RawReceipt] | None = None
    traces: list[_RawTrace] | None = None


_decode_raw_block = msgspec.json.Decoder(_RawBlock).decode
_astuple = msgspec.structs.astuple  # a raw struct's fields as a tuple, in declaration order


def map_block_line(line: bytes, report: Reporter) -> Block:
    """A block-JSONL line as a :class:`Block`: ``map_block(orjson.loads(line), report)``, faster.

    Raises ``orjson.JSONDecodeError`` for a line that is not JSON, and :class:`MappingError` as
    ``map_block`` does.
    """
    try:
        block: Block = _block_typed(_decode_raw_block(line))
        return block
    except (msgspec.DecodeError, AttributeError, TypeError, ValueError, KeyError, IndexError, RecursionError):
        return map_block(loads_any_depth(line), report)  # a call tree too deep for the fast path, say


def _frame_typed(raw: _RawFrame, depth: int = 0, _frame: Any = CallFrame) -> Any:
    kind, sender, to, value, inp, gas, used, output, error, calls = _astuple(raw)  # _RawFrame's order
    if (
        len(sender) != 42
        or (to is not None and len(to) != 42)
        or not _hex.has0x(inp)
        or (value is not None and not _hex.has0x(value))
        or (gas is not None and not _hex.has0x(gas))
        or (used is not None and not _hex.has0x(used))
        or (calls and depth >= MAX_FRAME_DEPTH)
    ):
        raise ValueError
    if kind not in FRAME_TYPES:
        kind = kind.upper()
    return _frame(
        kind,
        _hex.lower(sender),
        _hex.lower(to) if to is not None else None,
        _hex.hexint(value) if value is not None else None,
        inp,
        _hex.hexint(gas) if gas is not None else None,
        _hex.hexint(used) if used is not None else None,
        output,
        error,
        tuple([_frame_typed(c, depth + 1) for c in calls]) if calls else (),
    )


def _receipt_typed(raw: _RawReceipt) -> Receipt:
    tx_hash, status, gas_used, cumulative, price, created, typ, logs = _astuple(raw)  # _RawReceipt's order
    return Receipt(
        _h32(tx_hash) or "", _hexq(status), _hexq(gas_used), _hexq(cumulative), _hexq(price), _addr(created),
        _hexq(typ), tuple([_log_typed(lg) for lg in logs]) if logs else (),
    )


def _log_typed(raw: _RawLog) -> Log:
    data = raw.data
    if not _hex.has0x(data):
        raise ValueError
    return Log(_addr(raw.address) or "", tuple([_h32(t) or "" for t in raw.topics or ()]), data,
               _hexq(raw.logIndex), bool(raw.removed))


def _q(v: Any) -> int | None:
    """A transaction's hex quantity (``0x`` and hex digits) or None; anything else raises. Unlike
    :func:`_hexq`, a bare ``0x`` raises too (the checked path then reads it as 0) and the length is
    not bounded, as this path read them before it had its own helper."""
    if v is None:
        return None
    if not _hex.has0x(v):
        raise ValueError
    return _hex.hexint(v)


def _tx_typed(raw: _RawTx, receipt: Receipt | None, trace: CallFrame | None, _tx: Any = Tx) -> Any:
    (h, sender, to, inp, block_hash, value, nonce, gas, typ, gas_price, max_fee, max_prio, max_blob, chain_id,
     number, index, blobs) = _astuple(raw)  # every field, in _RawTx's order
    if (
        len(h) != 66
        or h[1] != "x"
        or (sender is not None and len(sender) != 42)
        or (to is not None and len(to) != 42)
        or (inp is not None and not _hex.has0x(inp))
        or (block_hash is not None and len(block_hash) != 66)
        or blobs is not None
    ):
        raise ValueError
    return _tx(
        _hex.lower(h), _hex.lower(sender) if sender is not None else None,
        _hex.lower(to) if to is not None else None, _q(value),
        inp if inp is not None else "0x", _q(nonce), _q(gas), _q(typ), _q(gas_price), _q(max_fee), _q(max_prio),
        _q(max_blob), (), _q(chain_id), _q(number), _hex.lower(block_hash) if block_hash is not None else None,
        _q(index), receipt, trace,
    )


def _block_typed(raw: _RawBlock) -> Block:
    # every field at once, in _RawBlock's order (one C call, not one attribute lookup each)
    number, h, parent, timestamp, miner, gas_limit, gas_used, base_fee, transactions, receipts_, traces_ = (
        _astuple(raw))
    number = _hexq(number)
    if number is None:
        raise ValueError
    receipts: dict[str, Receipt] = {}
    if receipts_:
        for r in receipts_:
            rec = _receipt_typed(r)
            receipts[rec.tx_hash] = rec
    traces: dict[str, CallFrame] = {}
    if traces_:
        for t in traces_:
            traces[_hex.lower(t.txHash)] = _frame_typed(t.result)
        if len(traces) != len(traces_):
            raise ValueError  # traces without hashes are joined by position in the checked path
    txs = []
    if transactions:
        if receipts or traces:
            for rtx in transactions:
                key = _hex.lower(rtx.hash)
                txs.append(_tx_typed(rtx, receipts.get(key), traces.get(key)))
        else:
            for rtx in transactions:
                txs.append(_tx_typed(rtx, None, None))
    return Block(number, _h32(h), _h32(parent), _hexq(timestamp), _addr(miner), _hexq(gas_limit), _hexq(gas_used),
                 _hexq(base_fee), tuple(txs))
