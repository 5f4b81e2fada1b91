"""The alert value: a finding with identity, lifecycle status and the contract's fields.

The id is deterministic (chain, transaction or block, detector, subject), so the same event never
makes two alerts, across restarts, replays and redeliveries. Field names follow ARCHITECTURE.md
(close to Forta's Finding). The full lifecycle (cooldown, grouping, confirmation, retraction,
store, delivery) comes with the alerts issue; this is the value they will carry.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from detectors.base import Finding


@dataclass(frozen=True)
class Alert:
    id: str
    status: str
    stage: str
    chain_id: int
    block_number: int | None
    block_hash: str | None
    tx_hash: str | None
    severity: str
    type: str
    score: float
    detector: str
    title: str
    description: str
    addresses: list[str]
    explanation: list[dict[str, Any]]
    labels: list[dict[str, Any]] = field(default_factory=list)
    created_at: str = ""
    remined: int = 0  # times the transaction was mined again in another block after a reorg retracted it

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def alert_id(chain_id: int, tx_or_block: str, detector: str, subject: str) -> str:
    """A stable id: the same (chain, transaction, detector, subject) always gives the same id.

    >>> alert_id(1, "0xab", "rules/reentrancy-drain", "0xab") == alert_id(1, "0xab", "rules/reentrancy-drain", "0xab")
    True
    """
    raw = f"{chain_id}:{tx_or_block}:{detector}:{subject}".encode()
    return "cs-" + hashlib.sha256(raw).hexdigest()[:32]


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def alert_from_finding(finding: Finding, chain_id: int, created_at: float) -> Alert:
    """The firing alert for ``finding``; ``created_at`` is passed in (block time in replays)."""
    return Alert(
        id=alert_id(chain_id, finding.tx_hash, finding.detector, finding.tx_hash),
        status="firing", stage=finding.stage, chain_id=chain_id, block_number=finding.block_number,
        block_hash=finding.block_hash, tx_hash=finding.tx_hash, severity=finding.severity, type=finding.type,
        score=finding.score, detector=finding.detector, title=finding.title, description=finding.description,
        addresses=finding.addresses,
        explanation=[{"feature": c.feature, "value": round(c.value, 6), "contribution": round(c.contribution, 6),
                      "why": c.why} for c in finding.explanation],
        created_at=rfc3339(created_at),
    )
