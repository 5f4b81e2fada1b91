"""One mapper per entity: JSON-RPC results and block-JSONL lines into the event types.

Each entity (block, transaction, receipt, log, call frame) has one raw schema, a msgspec Struct
(``RawBlock``, ``RawTx``, ...) that a file line is decoded into (in C, no dicts) or an RPC answer
converted into, and one convert-and-validate function (``_block``, ``_tx``, ``_receipt``, ``_log``,
``_frame``) that checks every field and builds the event type. The schemas type the containers
only; every scalar is ``Any``, so the converter judges each value and names the field.

Any field may be absent except ``number`` on a block and ``hash`` on a transaction. A present but
malformed field raises :class:`MappingError` naming the block, the transaction and the field
(``block_from_rpc``, ``tx_from_rpc``). ``map_block`` and ``map_block_line`` are the forgiving
entry points of the streams: a block that does not map whole is mapped part by part with the same
functions, each error reported to a callback: a malformed header or transaction field is retried
as null, a receipt, trace or log that cannot be read is left off, a transaction without a usable
hash is skipped, and a call tree deeper than ``MAX_FRAME_DEPTH`` is capped. Only a block without a
usable number raises.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
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


Reporter = Callable[[MappingError], None]


class _Whole(Exception):
    """The block cannot be mapped whole (traces to join by position, a call tree to cap): the
    part-by-part path maps it."""


# --- scalars ----------------------------------------------------------------------------------


def quantity(value: object, field: str) -> int | None:
    """A JSON-RPC quantity (hex string; a JSON integer is accepted too) as ``int``.

    >>> quantity("0x1f", "gas"), quantity(None, "gas"), quantity(7, "gas"), quantity("0x", "gas")
    (31, None, 7, 0)
    >>> quantity("12", "gas")
    Traceback (most recent call last):
    ...
    ingest.mappers.MappingError: malformed field 'gas': not a 0x-prefixed hex quantity (got '12')
    """
    if value is None:
        return None
    if type(value) is str:
        if _hex.has0x(value):
            n = len(value)
            if n == 2:
                return 0
            if n <= 66:
                try:
                    return _hex.hexint(value)
                except ValueError:
                    pass
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
    if type(value) is str and len(value) == 42 and (_hex.has0x(value) or value[:2] == "0X"):
        return _hex.lower(value)
    raise MappingError(field, value, "not a 20-byte 0x address")


def hash32(value: object, field: str) -> str | None:
    """A 32-byte hash, lower-cased."""
    if value is None:
        return None
    if type(value) is str and len(value) == 66 and _hex.has0x(value):
        return _hex.lower(value)
    raise MappingError(field, value, "not a 32-byte 0x hash")


def data(value: object, field: str) -> str:
    """Hex data (calldata, log data); absent means empty."""
    if value is None:
        return "0x"
    if type(value) is str and _hex.has0x(value):
        return value
    raise MappingError(field, value, "not 0x-prefixed hex data")


def _opt_str(value: object, field: str) -> str | None:
    if value is None or type(value) is str:
        return value
    raise MappingError(field, value, "not a string")


def _hashes(value: object, field: str) -> tuple[str, ...]:
    if not value:
        return ()
    if type(value) is not list:
        raise MappingError(field, value, "not a list")
    return tuple([hash32(h, field) or "" for h in value])


# --- the raw schemas: the JSON's shape, one per entity ------------------------------------------


class RawFrame(msgspec.Struct, gc=False):
    type: Any = None
    sender: Any = msgspec.field(default=None, name="from")
    to: Any = None
    value: Any = None
    input: Any = None
    gas: Any = None
    gasUsed: Any = None
    output: Any = None
    error: Any = None
    calls: list[RawFrame] | None = None


class RawTrace(msgspec.Struct, gc=False):
    txHash: Any = None
    result: RawFrame | None = None
    error: Any = None


class RawLog(msgspec.Struct, gc=False):
    address: Any = None
    topics: Any = None
    data: Any = None
    logIndex: Any = None
    removed: Any = None


class RawReceipt(msgspec.Struct, gc=False):
    transactionHash: Any = None
    status: Any = None
    gasUsed: Any = None
    cumulativeGasUsed: Any = None
    effectiveGasPrice: Any = None
    contractAddress: Any = None
    type: Any = None
    logs: list[RawLog] | None = None


class RawTx(msgspec.Struct, gc=False):
    hash: Any = None
    sender: Any = msgspec.field(default=None, name="from")
    to: Any = None
    input: Any = None
    blockHash: Any = None
    value: Any = None
    nonce: Any = None
    gas: Any = None
    type: Any = None
    gasPrice: Any = None
    maxFeePerGas: Any = None
    maxPriorityFeePerGas: Any = None
    maxFeePerBlobGas: Any = None
    chainId: Any = None
    blockNumber: Any = None
    transactionIndex: Any = None
    blobVersionedHashes: Any = None


class RawBlock(msgspec.Struct, gc=False):
    number: Any = None
    hash: Any = None
    parentHash: Any = None
    timestamp: Any = None
    miner: Any = None
    gasLimit: Any = None
    gasUsed: Any = None
    baseFeePerGas: Any = None
    transactions: list[RawTx] | None = None
    receipts: list[RawReceipt] | None = None
    traces: list[RawTrace] | None = None


_decode_raw_block = msgspec.json.Decoder(RawBlock).decode
_convert = msgspec.convert
_astuple = msgspec.structs.astuple  # a raw struct's fields as a tuple, in declaration order


# --- one convert-and-validate function per entity ------------------------------------------------

FRAME_TYPES = frozenset({"CALL", "DELEGATECALL", "STATICCALL", "CALLCODE", "CREATE", "CREATE2", "SELFDESTRUCT"})

MAX_FRAME_DEPTH = 100
"""The deepest call frame kept in place (the root is depth 0). Call trees are attacker-controlled
(a self-recursive contract nests up to the EVM's 1,024 levels) while ordinary ones stay far
shallower; deeper frames are kept, in call order, as children of their ancestor at depth
``MAX_FRAME_DEPTH - 1``, and the flattening is reported. Everything downstream (encoders, stores,
detectors) then sees trees of bounded depth."""


def _frame(raw: RawFrame, depth: int = 0) -> CallFrame:
    kind, sender, to, value, inp, gas, used, output, error, calls = _astuple(raw)  # RawFrame's order
    if type(kind) is not str:
        raise MappingError("trace.type", kind, "missing or not a string")
    if calls and depth >= MAX_FRAME_DEPTH:
        raise _Whole  # capped on the way in by the part-by-part path
    return CallFrame(
        kind if kind in FRAME_TYPES else kind.upper(), address(sender, "trace.from") or "", address(to, "trace.to"),
        quantity(value, "trace.value"), data(inp, "trace.input"), quantity(gas, "trace.gas"),
        quantity(used, "trace.gasUsed"), _opt_str(output, "trace.output"), _opt_str(error, "trace.error"),
        tuple([_frame(c, depth + 1) for c in calls]) if calls else (),
    )


def _log(raw: RawLog) -> Log:
    addr, topics, payload, index, removed = _astuple(raw)  # RawLog's order
    if topics is not None and type(topics) is not list:
        raise MappingError("log.topics", topics, "not a list")
    return Log(address(addr, "log.address") or "", tuple([hash32(t, "log.topics") or "" for t in topics or ()]),
               data(payload, "log.data"), quantity(index, "log.logIndex"), bool(removed))


def _receipt(raw: RawReceipt) -> Receipt:
    h, status, used, cumulative, price, created, typ, logs = _astuple(raw)  # RawReceipt's order
    tx_hash = hash32(h, "receipt.transactionHash")
    if tx_hash is None:
        raise MappingError("receipt.transactionHash", None, "missing")
    try:
        return Receipt(
            tx_hash, quantity(status, "receipt.status"), quantity(used, "receipt.gasUsed"),
            quantity(cumulative, "receipt.cumulativeGasUsed"), quantity(price, "receipt.effectiveGasPrice"),
            address(created, "receipt.contractAddress"), quantity(typ, "receipt.type"),
            tuple([_log(lg) for lg in logs]) if logs else (),
        )
    except MappingError as err:
        raise err.with_context(tx=tx_hash) from None


def _tx(raw: RawTx, receipt: Receipt | None, trace: CallFrame | None) -> Tx:
    (h, sender, to, inp, block_hash, value, nonce, gas, typ, gas_price, max_fee, max_prio, max_blob, chain_id,
     number, index, blobs) = _astuple(raw)  # every field, in RawTx's order
    tx_hash = hash32(h, "hash")
    if tx_hash is None:
        raise MappingError("hash", None, "missing")
    try:
        return Tx(
            tx_hash, address(sender, "from"), address(to, "to"), quantity(value, "value"), data(inp, "input"),
            quantity(nonce, "nonce"), quantity(gas, "gas"), quantity(typ, "type"), quantity(gas_price, "gasPrice"),
            quantity(max_fee, "maxFeePerGas"), quantity(max_prio, "maxPriorityFeePerGas"),
            quantity(max_blob, "maxFeePerBlobGas"), _hashes(blobs, "blobVersionedHashes"),
            quantity(chain_id, "chainId"), quantity(number, "blockNumber"), hash32(block_hash, "blockHash"),
            quantity(index, "transactionIndex"), receipt, trace,
        )
    except MappingError as err:
        raise err.with_context(tx=tx_hash) from None


def _header(raw: RawBlock) -> tuple[Any, ...]:
    """The block's header fields after its number, in :class:`Block`'s order."""
    return (hash32(raw.hash, "hash"), hash32(raw.parentHash, "parentHash"), quantity(raw.timestamp, "timestamp"),
            address(raw.miner, "miner"), quantity(raw.gasLimit, "gasLimit"), quantity(raw.gasUsed, "gasUsed"),
            quantity(raw.baseFeePerGas, "baseFeePerGas"))


def _number(value: object) -> int:
    number = quantity(value, "number")
    if number is None:
        raise MappingError("number", None, "missing")
    return number


def _block(raw: RawBlock) -> Block:
    """The whole block, or the first malformed field raised (``_Whole`` when only the
    part-by-part path can map it)."""
    number = _number(raw.number)
    try:
        receipts: dict[str, Receipt] = {}
        for r in raw.receipts or ():
            rec = _receipt(r)
            receipts[rec.tx_hash] = rec
        traces: dict[str, CallFrame] = {}
        raw_traces = raw.traces
        if raw_traces:
            for t in raw_traces:
                if type(t.txHash) is not str or t.result is None:
                    raise _Whole  # joined by position, or reported, part by part
                traces[_hex.lower(t.txHash)] = _frame(t.result)
            if len(traces) != len(raw_traces):
                raise _Whole
        txs = []
        for rtx in raw.transactions or ():
            h = rtx.hash
            key = _hex.lower(h) if type(h) is str else ""
            txs.append(_tx(rtx, receipts.get(key), traces.get(key)))
        h, parent, timestamp, miner, gas_limit, gas_used, base_fee = _header(raw)
        return Block(number, h, parent, timestamp, miner, gas_limit, gas_used, base_fee, tuple(txs))
    except MappingError as err:
        raise err.with_context(block=number) from None


# --- entry points -------------------------------------------------------------------------------


def _raise(err: MappingError) -> None:
    raise err


def block_from_rpc(raw: JsonDict) -> Block:
    """Strict: a block (with optional ``receipts`` and ``traces``) as a :class:`Block`.

    Raises :class:`MappingError` on the first malformed field.
    """
    return map_block(raw, _raise)


def map_block(raw: JsonDict, report: Reporter) -> Block:
    """Map a block (an RPC answer, or a parsed line), reporting malformed parts to ``report`` and
    keeping the rest. A block whose ``number`` is missing or malformed raises."""
    try:
        return _block(_convert(raw, RawBlock))
    except (MappingError, msgspec.ValidationError, _Whole, RecursionError):
        from .lenient import map_block_by_parts  # the rare path: its own module

        return map_block_by_parts(raw, report)


def map_block_line(line: bytes, report: Reporter) -> Block:
    """A block-JSONL line as a :class:`Block`: ``map_block(orjson.loads(line), report)``, decoded
    straight into the raw schemas. Raises ``orjson.JSONDecodeError`` for a line that is not JSON,
    and :class:`MappingError` as ``map_block`` does."""
    try:
        return _block(_decode_raw_block(line))
    except (msgspec.DecodeError, MappingError, _Whole, RecursionError):
        from .lenient import map_block_by_parts

        return map_block_by_parts(loads_any_depth(line), report)


def tx_from_rpc(raw: JsonDict, receipt: Receipt | None = None, trace: CallFrame | None = None) -> Tx:
    """A transaction object (mined or pending) as a :class:`Tx`; a malformed field raises."""
    if type(raw) is not dict:
        raise MappingError("transaction", raw, "transaction is not an object")
    return _tx(_convert(raw, RawTx), receipt, trace)


def receipt_from_rpc(raw: JsonDict) -> Receipt:
    if type(raw) is not dict:
        raise MappingError("receipt", raw, "receipt is not an object")
    try:
        return _receipt(_convert(raw, RawReceipt))
    except msgspec.ValidationError as err:
        raise invalid(err, "receipt", raw) from None


def frame_from_calltracer(raw: JsonDict, report: Reporter | None = None) -> CallFrame:
    """A callTracer frame (with its nested ``calls``) as a :class:`CallFrame`, depth-capped.

    ``report`` hears of a flattened tree (default: a warning in the log).
    """
    from .lenient import frame_by_parts

    try:
        return _frame(_convert(raw, RawFrame))
    except (msgspec.ValidationError, _Whole, RecursionError):
        return frame_by_parts(raw, report or (lambda err: log.warning("%s", err)))


def invalid(err: msgspec.ValidationError, entity: str, doc: object) -> MappingError:
    """A raw schema's refusal (a container of the wrong type, an element that is not an object)
    as a :class:`MappingError` naming the place: ``receipt.logs``, ``trace.calls[0]``, ..."""
    reason, _, where = str(err).partition(" - at `$")
    return MappingError(entity + where.rstrip("`"), doc, reason)
