"""Deciding, apart from scoring: which transactions make a finding, of what severity and type, and
which ones the models may learn from.

A transaction makes a finding when its fused score reaches the alert ``threshold``, or when a
named rule of at least ``rule_min_severity`` holds and the fused score corroborates it (at least
the rule's ``min_score``, else ``rule_min_score``). Such a rule finding can score below the
threshold; its score is then lifted so that every finding scores at least the threshold and ranks
above every transaction that makes none: ``[min_score, 1]`` maps linearly onto ``[threshold, 1]``
(the most of the alerting rules), and a score already higher stays. Severity is the fused score's
(``SEVERITY_THRESHOLDS``), raised to the alerting rule's. A transaction to an allowlisted contract
(analyst feedback) keeps its score but makes no finding. Transactions that made a finding are kept
out of what the models learn: anomalies must not become normal.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ingest.events import Block, Tx

from .base import Contribution, Finding
from .fusion import round6
from .rules import SEVERITIES, Rule

SEVERITY_THRESHOLDS: tuple[tuple[float, str], ...] = (
    (0.90, "critical"), (0.80, "high"), (0.65, "medium"), (0.50, "low"), (0.0, "info"),
)


def severity_of(score: float) -> str:
    """
    >>> severity_of(0.95), severity_of(0.7), severity_of(0.1)
    ('critical', 'medium', 'info')
    """
    for threshold, name in SEVERITY_THRESHOLDS:
        if score >= threshold:
            return name
    return "info"


def _rank(rule: Rule) -> int:
    return SEVERITIES.index(rule.severity)


class FindingPolicy:
    """See the module docstring."""

    def __init__(self, threshold: float = 0.78, rule_min_severity: str = "high", rule_min_score: float = 0.75) -> None:
        self.threshold = threshold
        self.rule_min_severity = rule_min_severity
        self.rule_min_score = rule_min_score
        self._floor = SEVERITIES.index(rule_min_severity)
        self.allowlist: set[str] = set()  # contracts analysts marked benign: scored, never a finding

    def allow(self, address: str) -> None:
        self.allowlist.add(address.lower())

    def decide(self, fused: float, matched: Sequence[Rule], tx: Tx) -> tuple[float, list[Rule], bool]:
        """(the score, lifted for alerting rules; the rules that alert; whether a finding is made)."""
        strong: list[Rule] = []
        if matched:
            strong, fused = self._alerting_rules(fused, matched)
        return fused, strong, bool(strong or fused >= self.threshold) and tx.to not in self.allowlist

    def _alerting_rules(self, fused: float, matched: Sequence[Rule]) -> tuple[list[Rule], float]:
        threshold = self.threshold
        strong = []
        lifted = fused
        for r in matched:
            if _rank(r) < self._floor:
                continue
            lo = self.rule_min_score if r.min_score is None else r.min_score
            if fused < lo:
                continue
            strong.append(r)
            if lo < 1.0:
                lifted = max(lifted, threshold + (1.0 - threshold) * (fused - lo) / (1.0 - lo))
        return strong, lifted

    def finding(self, tx: Tx, score: float, block_number: int | None, explanation: list[Contribution],
                strong: Sequence[Rule], stage: str, block: Block | None) -> Finding:
        """The finding for ``tx``: the most severe alerting rule's type and title, or an anomaly's."""
        if strong:
            top = max(strong, key=_rank)
            severity = max(top.severity, severity_of(score), key=SEVERITIES.index)
            kind, title, detector = top.type, top.title, f"rules/{top.name}"
        else:
            severity = severity_of(score)
            kind, title, detector = "suspicious", "Anomalous transaction", "fusion"
        reasons = "; ".join(f"{c.why} ({c.feature}={c.value:g})" for c in explanation[:3]) or "unusual features"
        addresses = [a for a in (tx.sender, tx.to) if a is not None]
        return Finding(
            tx_hash=tx.hash, block_number=block_number, block_hash=block.hash if block else None, stage=stage,
            score=round6(score), severity=severity, type=kind, detector=detector, title=title,
            description=f"{title}: {reasons}.", addresses=addresses, explanation=explanation,
        )

    def state(self) -> dict[str, Any]:
        return {"allowlist": sorted(self.allowlist)}

    def load_state(self, state: dict[str, Any]) -> None:
        self.allowlist = set(state.get("allowlist", ()))
