"""Transaction features: every registered feature unit (:mod:`.units`) over one transaction.

Every feature is a float; a feature whose source is absent (no trace, no receipt, no gas fields)
is left out of the dict rather than set to 0, so "missing" never reads as a signal: detectors use
what a transaction has. Names are stable (they appear in explanations, rule files and scores).

The trace features describe shapes that exploits share across protocols and years, not
addresses: how much a single call sets in motion, who re-enters whom, tokens moved and checked,
value flowing to the originator, contracts created and called within the same transaction,
flash-loan shaped borrow-and-repay, a bare 4-byte call that sets off a large tree, overflow-sized
amounts in calldata, and calls of initialisation or ownership functions on live contracts. The
call tree is walked once (:mod:`.traversal`); each trace unit folds the steps of the selector
kinds it reads.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ingest.events import Block, Tx

from . import units
from .selectors import EXPOSED_INTERNAL_SELECTORS, TAKEOVER_SELECTORS, WEI  # noqa: F401  (re-exported)
from .traversal import Trace, walk


def feature_names() -> tuple[str, ...]:
    """Every registered feature, the built-in ones and any registered since."""
    return units.feature_names()


FEATURES: tuple[str, ...] = feature_names()  # the built-in features


class BlockContext:
    """What a transaction is compared with in its block: the median gas price, and the block's
    producer (its fee recipient, ``miner``) when the block is known (not for pending transactions)."""

    __slots__ = ("median_gas_price", "producer")

    def __init__(self, txs: Iterable[Tx], producer: str | None = None) -> None:
        prices = [t.gas_price for t in txs if t.gas_price]
        if len(prices) > 1:
            prices.sort()
        self.median_gas_price = prices[len(prices) // 2] if prices else None
        self.producer = producer

    @classmethod
    def of(cls, block: Block) -> BlockContext:
        return cls(block.transactions, block.miner)


def tx_features(tx: Tx, ctx: BlockContext | None = None, entities: Any = None, now: float = 0.0) -> dict[str, float]:
    """All features the transaction's data allows (see module docstring); ``entities``: the
    engine's :class:`~.entities.EntityView`, for the units that read what the stream learned.

    >>> f = tx_features(Tx(hash="0x1", sender="0xa", to="0xb", value=2 * WEI, input="0xa9059cbb" + "0" * 128))
    >>> f["value_eth"], f["calldata_bytes"], "frames" in f
    (2.0, 68.0, False)
    """
    return features_and_trace(tx, ctx, entities, now)[0]


def features_and_trace(tx: Tx, ctx: BlockContext | None = None, entities: Any = None,
                       now: float = 0.0) -> tuple[dict[str, float], Trace | None]:
    """:func:`tx_features`, and the walked call tree (None without a trace) for the detectors that
    read it."""
    out: dict[str, float] = {}
    for unit in units.TX_UNITS:
        unit.compute(tx, ctx, out)
    trace = None
    if tx.trace is not None:
        trace = trace_features(tx, out, ctx.producer if ctx is not None else None, entities)
    if entities is not None:
        for entity_unit in units.ENTITY_UNITS:
            entity_unit.compute(tx, out, entities, now)
    return out, trace


_NO_KINDS: frozenset[str] = frozenset()


def trace_features(tx: Tx, out: dict[str, float], producer: str | None = None, entities: Any = None) -> Trace:
    """The trace units' features of ``tx`` into ``out``: those of the units naming kinds at 0 first
    (always in the same order), one walk, then each unit over the steps of the kinds it reads (a
    unit reading kinds the tree has none of is not called: its features stay 0)."""
    assert tx.trace is not None
    out.update(units.trace_zeros())
    trace = walk(tx, tx.trace, producer, entities)
    by_kind = trace.by_kind
    for unit, kinds in units.trace_plan(frozenset(by_kind) if by_kind else _NO_KINDS):
        unit.compute(trace, trace.steps if kinds is None else trace.of_kinds(kinds), out)
    return trace
