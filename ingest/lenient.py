"""The part-by-part path of the mappers: a block that does not map whole, mapped with the same
convert-and-validate functions one part at a time, each error reported and the rest kept.

- a malformed header or transaction field: reported, and the part converted again with that
  field null (a transaction without a usable ``hash`` is skipped);
- a receipt, a trace or one of its frames that cannot be read: reported and left off its
  transaction; an element that is not an object (a block fetched without full transactions):
  reported and skipped;
- traces without transaction hashes: joined to the transactions by position;
- a call tree deeper than ``MAX_FRAME_DEPTH``: capped (the deeper frames kept, in call order,
  under their ancestor at the cap) and reported.

Only a block without a usable ``number`` raises.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import msgspec

from .events import Block, CallFrame, Receipt, Tx
from .mappers import (
    MAX_FRAME_DEPTH,
    MappingError,
    RawBlock,
    RawFrame,
    RawReceipt,
    RawTx,
    Reporter,
    _frame,
    _header,
    _number,
    _receipt,
    _tx,
    invalid,
)
from .wire import HEADER_FIELDS

_HEADER_KEYS = tuple(key for key, _, _ in HEADER_FIELDS)  # the header after the number, in Block's order
_RAW_NAME = {"from": "sender"}  # a JSON key whose raw-schema attribute is named otherwise
_MOST_RETRIES = 20  # more than a transaction has fields


def map_block_by_parts(doc: Any, report: Reporter) -> Block:
    if type(doc) is not dict:
        raise MappingError("block", doc, "block is not an object")
    number = _number(doc.get("number"))

    def at(tx: str | None = None) -> Reporter:
        return lambda err: report(err.with_context(block=number, tx=tx))

    header = _retry_null(_header, msgspec.convert({k: doc.get(k) for k in _HEADER_KEYS}, RawBlock), at())
    receipts = _receipts(_elements(doc, "receipts", at()), at)
    traces, positional = _traces(_elements(doc, "traces", at()), at)
    txs: list[Tx] = []
    for i, t in enumerate(_elements(doc, "transactions", at())):
        if type(t) is not dict:
            what = "transaction hash only, not an object" if type(t) is str else "transaction is not an object"
            at()(MappingError("transactions", t, what))
            continue
        h = t.get("hash")
        key = h.lower() if type(h) is str else ""
        trace = traces.get(key)
        if trace is None and not traces and i < len(positional):
            trace = positional[i]
        tx = _retry_null(partial(_tx_with, receipts.get(key), trace), msgspec.convert(t, RawTx), at(),
                         stop_at="hash")
        if tx is not None:
            txs.append(tx)
    h, parent, timestamp, miner, gas_limit, gas_used, base_fee = header or (None,) * len(_HEADER_KEYS)
    return Block(number, h, parent, timestamp, miner, gas_limit, gas_used, base_fee, tuple(txs))


def _tx_with(receipt: Receipt | None, trace: CallFrame | None, raw: RawTx) -> Tx:
    return _tx(raw, receipt, trace)


def _retry_null(convert: Callable[[Any], Any], raw: Any, report: Reporter, stop_at: str | None = None) -> Any:
    """``convert(raw)``; each malformed field reported and the conversion retried with it null.
    None when the field ``stop_at`` (without which the part means nothing) is the bad one."""
    for _ in range(_MOST_RETRIES):
        try:
            return convert(raw)
        except MappingError as err:
            report(err)
            if err.field == stop_at or not hasattr(raw, _RAW_NAME.get(err.field, err.field)):
                return None
            raw = msgspec.structs.replace(raw, **{_RAW_NAME.get(err.field, err.field): None})
    return None


def _elements(doc: dict[str, Any], key: str, report: Reporter) -> list[Any]:
    value = doc.get(key)
    if value is None:
        return []
    if type(value) is not list:
        report(MappingError(key, value, "not a list"))
        return []
    return value


def _receipts(items: list[Any], at: Callable[[str | None], Reporter]) -> dict[str, Receipt]:
    receipts: dict[str, Receipt] = {}
    for r in items:
        tx = r.get("transactionHash") if type(r) is dict else None
        tx = tx if type(tx) is str else None
        if type(r) is not dict:
            at(tx)(MappingError("receipt", r, "receipt is not an object"))
            continue
        try:
            rec = _receipt(msgspec.convert(r, RawReceipt))
        except msgspec.ValidationError as err:
            at(tx)(invalid(err, "receipt", r))
            continue
        except MappingError as err:
            at(tx)(err)
            continue
        receipts[rec.tx_hash] = rec
    return receipts


def _traces(items: list[Any], at: Callable[[str | None], Reporter]
            ) -> tuple[dict[str, CallFrame], list[CallFrame | None]]:
    """The traces by transaction hash, and in order (for traces without hashes)."""
    traces: dict[str, CallFrame] = {}
    positional: list[CallFrame | None] = []
    for i, t in enumerate(items):
        tx_hash = t.get("txHash") if type(t) is dict else None
        where = tx_hash if type(tx_hash) is str else f"#{i}"
        result = t.get("result") if type(t) is dict else None
        if result is None:
            why = t.get("error") if type(t) is dict and type(t.get("error")) is str else "without a result"
            at(where)(MappingError("traces", t, f"trace entry {why}"))
            positional.append(None)
            continue
        try:
            frame = frame_by_parts(result, at(where))
        except MappingError as err:
            at(where)(err)
            positional.append(None)
            continue
        positional.append(frame)
        if type(tx_hash) is str:
            traces[tx_hash.lower()] = frame
    return traces, positional


def frame_by_parts(raw: Any, report: Reporter) -> CallFrame:
    """A call tree of any depth: capped at ``MAX_FRAME_DEPTH`` (reported), then converted; a frame
    that cannot be read raises its :class:`MappingError`."""
    if type(raw) is not dict:
        raise MappingError("trace", raw, "call frame is not an object")
    capped, moved = _capped(raw)
    if moved:
        report(MappingError("trace.calls", f"{moved} frames", f"call tree deeper than {MAX_FRAME_DEPTH} frames: "
                            f"the frames below depth {MAX_FRAME_DEPTH} were kept under their ancestor at depth "
                            f"{MAX_FRAME_DEPTH - 1}"))
    try:
        return _frame(msgspec.convert(capped, RawFrame))
    except msgspec.ValidationError as err:
        raise invalid(err, "trace", raw) from None


def _capped(root: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """``root`` with every frame below ``MAX_FRAME_DEPTH`` moved, in call order, under its ancestor
    at depth ``MAX_FRAME_DEPTH - 1`` (the input unchanged), and how many frames moved. Iterative:
    a tree may be thousands of frames deep."""
    stack: list[tuple[Any, int]] = [(root, 0)]
    while stack:  # is any frame at the cap's depth a caller?
        node, depth = stack.pop()
        calls = node.get("calls") if type(node) is dict else None
        if type(calls) is list and calls:
            if depth >= MAX_FRAME_DEPTH:
                break
            stack.extend((c, depth + 1) for c in calls)
    else:
        return root, 0
    moved = [0]

    def rebuild(node: Any, depth: int) -> Any:
        calls = node.get("calls") if type(node) is dict else None
        if type(calls) is not list or not calls:
            return node
        if depth < MAX_FRAME_DEPTH - 1:
            return {**node, "calls": [rebuild(c, depth + 1) for c in calls]}
        flat: list[Any] = []  # every frame below, in call order, without its calls
        todo = list(reversed(calls))
        while todo:
            c = todo.pop()
            below = c.get("calls") if type(c) is dict else None
            if type(below) is list and below:
                moved[0] += len(below)
                todo.extend(reversed(below))
                c = {k: v for k, v in c.items() if k != "calls"}
            flat.append(c)
        return {**node, "calls": flat}

    return rebuild(root, 0), moved[0]

