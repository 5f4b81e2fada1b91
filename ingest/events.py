"""Typed, frozen chain events: the values that flow from ingest to the detectors.

Conventions, fixed here once:

* quantities (wei, gas, numbers, nonces) are ``int``; an absent optional field is ``None``,
  never ``0``, so "missing" is never mistaken for a signal;
* addresses and hashes are lower-case ``0x`` hex strings, normalised by the mappers;
* calldata, log data and outputs stay ``0x`` hex strings (detectors slice them; converting
  megabytes of calldata to ``bytes`` on every replay would cost more than it saves);
* ``Tx.receipt`` and ``Tx.trace`` carry the receipt and the root call frame when the source had
  them, joined by transaction hash in the mapper.

Every event is a ``msgspec.Struct`` (frozen, slotted): cheap to build, hashable, and encodable
to JSON or msgpack for the Kafka transport without hand-written code.
"""

from __future__ import annotations

import msgspec


class Log(msgspec.Struct, frozen=True, gc=False):
    """One event log from a receipt."""

    address: str
    topics: tuple[str, ...]
    data: str
    log_index: int | None = None
    removed: bool = False


class Receipt(msgspec.Struct, frozen=True, gc=False):
    """A transaction receipt; any field but the hash may be absent in a partial source."""

    tx_hash: str
    status: int | None = None
    gas_used: int | None = None
    cumulative_gas_used: int | None = None
    effective_gas_price: int | None = None
    contract_address: str | None = None
    type: int | None = None
    logs: tuple[Log, ...] = ()


class CallFrame(msgspec.Struct, frozen=True, gc=False):
    """One frame of a call tree in callTracer form (``trace_block`` output is converted to it).

    ``type`` is one of CALL, DELEGATECALL, STATICCALL, CALLCODE, CREATE, CREATE2, SELFDESTRUCT.
    """

    type: str
    sender: str
    to: str | None
    value: int | None = None
    input: str = "0x"
    gas: int | None = None
    gas_used: int | None = None
    output: str | None = None
    error: str | None = None
    calls: tuple[CallFrame, ...] = ()

    def walk(self) -> list[CallFrame]:
        """All frames of the tree, depth first, this one first.

        >>> leaf = CallFrame(type="CALL", sender="0x1", to="0x2")
        >>> len(CallFrame(type="CALL", sender="0x0", to="0x1", calls=(leaf, leaf)).walk())
        3
        """
        out: list[CallFrame] = []
        stack: list[CallFrame] = [self]
        while stack:
            frame = stack.pop()
            out.append(frame)
            stack.extend(reversed(frame.calls))
        return out


class Tx(msgspec.Struct, frozen=True, gc=False):
    """A transaction (legacy, access-list, EIP-1559, EIP-4844 or EIP-7702), mined or pending."""

    hash: str
    sender: str | None = None
    to: str | None = None
    value: int | None = None
    input: str = "0x"
    nonce: int | None = None
    gas: int | None = None
    type: int | None = None
    gas_price: int | None = None
    max_fee_per_gas: int | None = None
    max_priority_fee_per_gas: int | None = None
    max_fee_per_blob_gas: int | None = None
    blob_versioned_hashes: tuple[str, ...] = ()
    chain_id: int | None = None
    block_number: int | None = None
    block_hash: str | None = None
    index: int | None = None
    receipt: Receipt | None = None
    trace: CallFrame | None = None

    @property
    def selector(self) -> str | None:
        """The 4-byte function selector, or None for a plain transfer.

        >>> Tx(hash="0x1", input="0xa9059cbb0000").selector
        '0xa9059cbb'
        >>> Tx(hash="0x1").selector is None
        True
        """
        return self.input[:10] if len(self.input) >= 10 else None


class Block(msgspec.Struct, frozen=True, gc=False):
    """A block with its transactions (each with receipt and trace where the source had them)."""

    number: int
    hash: str | None = None
    parent_hash: str | None = None
    timestamp: int | None = None
    miner: str | None = None
    gas_limit: int | None = None
    gas_used: int | None = None
    base_fee_per_gas: int | None = None
    transactions: tuple[Tx, ...] = ()


class PendingTx(msgspec.Struct, frozen=True, gc=False):
    """A transaction seen in the mempool, with the wall-clock time (unix seconds) first seen."""

    tx: Tx
    first_seen: float


# --- chain events emitted by the followers -------------------------------------------------


class BlockAdded(msgspec.Struct, frozen=True, gc=False, tag="block_added"):
    """A block became part of the canonical chain as the follower sees it."""

    block: Block
    seen_at: float


class BlockRetracted(msgspec.Struct, frozen=True, gc=False, tag="block_retracted"):
    """A block previously emitted as added was orphaned by a reorg."""

    number: int
    hash: str
    tx_hashes: tuple[str, ...]


class PendingSeen(msgspec.Struct, frozen=True, gc=False, tag="pending_seen"):
    """A transaction was seen in the mempool for the first time."""

    pending: PendingTx


class PendingIncluded(msgspec.Struct, frozen=True, gc=False, tag="pending_included"):
    """A pending transaction was mined; ``delay`` is seconds from first seen to block seen."""

    tx_hash: str
    block_number: int
    block_hash: str | None
    delay: float


class PendingReplaced(msgspec.Struct, frozen=True, gc=False, tag="pending_replaced"):
    """A pending transaction was replaced by another with the same sender and nonce."""

    tx_hash: str
    replaced_by: str
    sender: str
    nonce: int


class PendingDropped(msgspec.Struct, frozen=True, gc=False, tag="pending_dropped"):
    """A pending transaction was neither mined nor replaced within the TTL."""

    tx_hash: str
    age: float


ChainEvent = BlockAdded | BlockRetracted | PendingSeen | PendingIncluded | PendingReplaced | PendingDropped
