"""State shards: which partition owns a transaction, and an engine made of one engine per shard.

Detector state is partitioned by contract (the ``calls`` topic's key): a transaction goes to
``murmur2(contract) % partitions`` (the Kafka default partitioner's function, so a message keyed by
the contract lands in the same partition), where the contract is the called address, or the
sender for a contract creation. Each shard has its own engine and sees its transactions in chain
order, so the scores do not depend on which process owns which shard: an in-process replay with
``transport.partitions: N`` scores exactly as N partitions spread over any number of Kafka detector
workers do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import msgspec
from kafka.partitioner.default import murmur2

from detectors.engine import EngineConfig, ScoringEngine, TxScore
from ingest.events import Block, Tx


def tx_key(tx: Tx) -> str:
    """The state key of a transaction: the contract it calls (the sender for a creation)."""
    return (tx.to or tx.sender or tx.hash).lower()


def partition_of(key: str, partitions: int) -> int:
    """The partition that owns ``key`` among ``partitions``.

    >>> [partition_of("0x00000000219ab540356cbb839cbe05303d7705fa", n) for n in (1, 3, 8)]
    [0, 1, 3]
    """
    if partitions == 1:
        return 0
    return int(murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def split_block(block: Block, partitions: int) -> list[Block]:
    """One sub-block per partition (same header, that partition's transactions in block order)."""
    if partitions == 1:
        return [block]
    parts: list[list[Tx]] = [[] for _ in range(partitions)]
    for tx in block.transactions:
        parts[partition_of(tx_key(tx), partitions)].append(tx)
    return [msgspec.structs.replace(block, transactions=tuple(p)) for p in parts]


class ShardedEngine:
    """As a :class:`ScoringEngine` (what :class:`chainsentry.scoring.Scorer` uses), over one engine
    per shard; scores come back in the block's own order."""

    def __init__(self, partitions: int, make: Callable[[], ScoringEngine]) -> None:
        self.partitions = partitions
        self.shards = [make() for _ in range(partitions)]
        self.config: EngineConfig = self.shards[0].config

    @property
    def scored(self) -> int:
        return sum(e.scored for e in self.shards)

    def allow(self, address: str) -> None:
        for e in self.shards:
            e.allow(address)

    def learn_verdict(self, terms: Sequence[tuple[str, float]], verdict: str) -> None:
        for e in self.shards:
            e.learn_verdict(terms, verdict)

    def feedback_summary(self) -> dict[str, Any]:
        return self.shards[0].feedback_summary()

    def reset_feedback(self) -> None:
        for e in self.shards:
            e.reset_feedback()

    def score_block(self, block: Block, *, learn: bool = True) -> list[TxScore]:
        by_hash: dict[str, TxScore] = {}
        for engine, part in zip(self.shards, split_block(block, self.partitions), strict=True):
            for s in engine.score_block(part, learn=learn):
                by_hash[s.tx_hash] = s
        return [by_hash[tx.hash] for tx in block.transactions]

    def score_pending(self, txs: Sequence[Tx], now: float) -> list[TxScore]:
        groups: list[list[Tx]] = [[] for _ in range(self.partitions)]
        for tx in txs:
            groups[partition_of(tx_key(tx), self.partitions)].append(tx)
        by_hash: dict[str, TxScore] = {}
        for engine, group in zip(self.shards, groups, strict=True):
            for s in engine.score_pending(group, now):
                by_hash[s.tx_hash] = s
        return [by_hash[tx.hash] for tx in txs]

    def state(self) -> dict[str, Any]:
        return {"shards": [e.state() for e in self.shards]}

    def load_state(self, state: dict[str, Any]) -> None:
        shards = state.get("shards")
        if not isinstance(shards, list) or len(shards) != self.partitions:
            raise ValueError(f"the snapshot holds {len(shards) if isinstance(shards, list) else 'no'} shards; "
                             f"this configuration has {self.partitions}")
        for e, s in zip(self.shards, shards, strict=True):
            e.load_state(s)
