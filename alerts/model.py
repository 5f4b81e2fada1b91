"""The alert: the product's main contract, one typed value from the finding to every consumer.

A detector's :class:`~detectors.base.Finding` becomes an :class:`Alert` once
(:func:`alert_from_finding`); the lifecycle, the store, the Kafka messages, the webhooks and
channels, the ``--alerts`` files and the API all carry this type, and its JSON (field names and
order as in ARCHITECTURE.md, close to Forta's Finding) is the same everywhere. The id is
deterministic (chain, transaction, detector, subject), so the same event never makes two alerts,
across restarts, replays and redeliveries.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec
import orjson

from detectors.base import Finding
from detectors.monitors.monitor import Match

Status = Literal["firing", "confirmed", "retracted"]
Stage = Literal["mempool", "block"]
Severity = Literal["info", "low", "medium", "high", "critical"]
AlertType = Literal["exploit", "suspicious", "scam", "info"]


@dataclass(frozen=True, slots=True)
class Explanation:
    """One feature that drove the score: its value, what it added, and what it means."""

    feature: str
    value: float
    contribution: float
    why: str


@dataclass(frozen=True, slots=True)
class Label:
    """A label on an entity the alert involves (Forta's Finding has them)."""

    entity: str
    label: str
    confidence: float


@dataclass(frozen=True, slots=True)
class ResponseOutcome:
    """What a response to the alert did: ``outcome`` ``started``, ``simulated``, ``sent``, ``mined``,
    ``reverted``, ``proposed`` (a Safe transaction written for the owners), ``ran`` (a script
    exited 0), ``failed`` or ``skipped``; ``tx_hash`` the transaction it sent; ``detail`` why, in words."""

    responder: str  # the response's name in its monitor (or "<monitor>.<kind>")
    kind: str  # script, transaction, safe
    outcome: str
    tx_hash: str | None = None
    detail: str = ""
    at: str = ""  # RFC 3339


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert at one status. A status change is a new value (:meth:`with_status`), same id."""

    id: str
    status: Status
    stage: Stage
    chain_id: int
    block_number: int | None
    block_hash: str | None
    tx_hash: str | None
    severity: Severity
    type: AlertType
    score: float
    detector: str
    title: str
    description: str
    addresses: list[str]
    explanation: list[Explanation]
    labels: list[Label] = field(default_factory=list)
    created_at: str = ""  # RFC 3339; the block's time in replays
    remined: int = 0  # times the transaction was mined again in another block after a reorg retracted it
    folded: int = 0  # later alerts of the same detector and subject folded into this one (cooldown)
    folded_tx_hashes: list[str] = field(default_factory=list)  # their transactions, the last 20
    monitor: str | None = None  # the monitor that raised it (its detector is monitor/<name>)
    matches: list[Match] = field(default_factory=list)  # what the monitor matched: decoded call, event, flow
    responses: list[ResponseOutcome] = field(default_factory=list)  # what was done about it (from the store)
    related: list[str] = field(default_factory=list)  # ids of alerts it links to (the deployment it ran through)

    @property
    def subject(self) -> str | None:
        """What the alert is about (the contract called): grouping and allowlists key on it."""
        return self.addresses[-1] if self.addresses else None

    def with_status(self, status: Status, **changes: Any) -> Alert:
        return dataclasses.replace(self, status=status, **changes)

    def replace(self, **changes: Any) -> Alert:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> bytes:
        return orjson.dumps(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (for a consumer that wants a mapping, such as a script)."""
        loaded: dict[str, Any] = orjson.loads(orjson.dumps(self))
        return loaded

    @staticmethod
    def from_json(data: bytes | str) -> Alert:
        """An alert from its JSON; a missing or mistyped field raises ``msgspec.ValidationError``."""
        return _decoder.decode(data)

    @staticmethod
    def from_dict(data: Any) -> Alert:
        return msgspec.convert(data, Alert)


_decoder = msgspec.json.Decoder(Alert)


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
    """The firing alert for ``finding``; ``created_at`` is passed in (block time in replays). A
    finding about a subject other than its transaction (a wallet) names no transaction (the one
    after which it was made is in its description)."""
    about = finding.subject
    return Alert(
        id=alert_id(chain_id, finding.tx_hash, finding.detector, about or finding.tx_hash),
        status="firing", stage=finding.stage,  # type: ignore[arg-type]
        chain_id=chain_id, block_number=finding.block_number,
        block_hash=finding.block_hash, tx_hash=None if about else finding.tx_hash,
        severity=finding.severity, type=finding.type,  # type: ignore[arg-type]
        score=finding.score, detector=finding.detector, title=finding.title, description=finding.description,
        addresses=finding.addresses,
        explanation=[Explanation(c.feature, round(c.value, 6), round(c.contribution, 6), c.why)
                     for c in finding.explanation],
        created_at=rfc3339(created_at),
        monitor=finding.detector.split("/", 1)[1] if finding.detector.startswith("monitor/") else None,
        matches=list(finding.matches),
        related=[alert_id(chain_id, tx, detector, subject) for tx, detector, subject in finding.related],
    )
