"""The scoring engine: a block (or pending transactions) in, scores and findings out.

Per block: each transaction's features (:mod:`.features`: the registered feature units, those
reading per-entity state through :class:`.entities.EntityView`), then every configured detector
scores the whole batch (:mod:`.registry`; the protocol in :mod:`.base`), fusion calibrates and adds
their raw scores into one score in [0, 1] (:mod:`.fusion`), shifted by what analysts' verdicts
taught about similar transactions (:mod:`.feedback`), the finding policy decides which
transactions make a finding (:mod:`.policy`), and wallet behaviour scores are read for each address
involved (:mod:`.wallets`), a wallet that crosses its threshold making a finding of its own
(:mod:`.wallet_alerts`). A block is scored before any of it is learned, so the order of
transactions within a block does not change scores; the detectors then learn the transactions the
policy lets them learn from.

Deterministic: with the same input and config, the same scores (the pyod ensemble refits in a
worker thread but is swapped in at a point fixed by the transaction count).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import msgspec

from ingest.events import Block, Tx

from .base import Batch, Contribution, Detector, Finding, Score
from .deployment import DeploymentWatch
from .entities import EntityState, EntityView
from .features import BlockContext, features_and_trace
from .feedback import FEEDBACK_TERM, FeedbackModel, pattern
from .fusion import Fuser, round6
from .policy import FindingPolicy
from .registry import build_detectors
from .rules import RuleOverride, RuleSet, configure_rules, load_rules, merge_rules
from .settings import EngineConfig
from .traversal import Trace
from .wallet_alerts import WalletAlerts
from .wallets import WalletBehaviour

__all__ = ["EngineConfig", "ScoringEngine", "TxScore", "encode_scores"]

FEEDBACK_FLOOR = 0.3  # transactions scored lower are too far from alerting for verdicts to matter


class TxScore(msgspec.Struct):
    """One transaction's scores (the ``--scores`` contract) and what explains them (a msgspec
    Struct: one is built per transaction, in C)."""

    tx_hash: str
    block_number: int | None
    score: float
    detectors: dict[str, float]
    wallets: dict[str, float]
    explanation: list[Contribution]
    rules: list[str]
    finding: Finding | None = None
    wallet_findings: list[Finding] = []  # wallets whose behaviour alerted after this transaction
    deployment_findings: list[Finding] = []  # contracts it created that look like attack contracts

    def findings(self) -> list[Finding]:
        """What alerts after this transaction: its own finding, its deployments', then any wallet's."""
        own = [self.finding] if self.finding is not None else []
        return own + self.deployment_findings + self.wallet_findings

    def to_json(self) -> dict[str, Any]:
        return {"tx_hash": self.tx_hash, "block_number": self.block_number, "score": round6(self.score),
                "detectors": self.detectors, "wallets": self.wallets}


class _ScoreLine(msgspec.Struct, gc=False):
    """A line of the ``--scores`` file: the fields of :meth:`TxScore.to_json`, in its order."""

    tx_hash: str
    block_number: int | None
    score: float
    detectors: dict[str, float]
    wallets: dict[str, float]


_encode_lines = msgspec.json.Encoder().encode_lines


def encode_scores(scores: Sequence[TxScore]) -> bytes:
    """The ``--scores`` lines of ``scores``: ``orjson.dumps(s.to_json()) + b"\\n"`` for each, in one
    encoder call (the same bytes: both write a float as its shortest round-trip form).

    >>> encode_scores([TxScore("0xab", 7, 0.1234567, {"shape": 0.5}, {"0x1": 0.0}, [], [])])
    b'{"tx_hash":"0xab","block_number":7,"score":0.123457,"detectors":{"shape":0.5},"wallets":{"0x1":0.0}}\\n'
    """
    return _encode_lines([_ScoreLine(s.tx_hash, s.block_number, round6(s.score), s.detectors, s.wallets)
                          for s in scores])


def engine_rules(cfg: EngineConfig) -> RuleSet:
    """The rule set ``cfg`` asks for: the built-in file (or ``rules_path`` in its place), the user's
    ``rules_files`` beside it, then the per-rule overrides."""
    rules = load_rules(cfg.rules_path)
    for path in cfg.rules_files:
        rules = merge_rules(rules, load_rules(path))
    overrides = {name: RuleOverride(enabled, severity, min_score)
                 for name, enabled, severity, min_score in cfg.rule_overrides}
    return configure_rules(rules, overrides)


class ScoringEngine:
    """See the module docstring."""

    def __init__(self, config: EngineConfig | None = None, rules: RuleSet | None = None) -> None:
        self.config = cfg = config or EngineConfig()
        self.rules = rules if rules is not None else engine_rules(cfg)
        self.detectors: list[Detector] = build_detectors(cfg, self.rules)
        self.entities = EntityState(max_entities=cfg.max_entities)
        self.wallet = WalletBehaviour(max_wallets=cfg.max_wallets)
        self.view = EntityView(self.entities, self.wallet)
        evidence = tuple(d.name for d in self.detectors if not d.calibrated)
        weights = {d.name: cfg.weights.get(d.name, 1.0) for d in self.detectors}
        apart = tuple(d.name for d in self.detectors if getattr(d, "apart", False))
        self.fuser = Fuser(weights, evidence, cfg.calibration_window, cfg.calibration_min_history, cfg.fusion_scale,
                           apart)
        self.policy = FindingPolicy(cfg.alert_threshold, cfg.rule_min_severity, cfg.rule_min_score)
        self.wallet_alerts = WalletAlerts(cfg.wallet_threshold, cfg.wallet_min_watch, cfg.wallet_cooldown,
                                          cfg.max_wallets)
        self.feedback = FeedbackModel(cfg.feedback_learning_rate, cfg.feedback_max_shift, cfg.feedback_max_raise,
                                      cfg.feedback_dismiss_weight)
        self.deployments = DeploymentWatch(cfg.deployment_threshold) if cfg.deployment_threshold is not None else None
        self.scored = 0

    def detector(self, name: str) -> Detector | None:
        """The configured detector called ``name``, if it is on."""
        return next((d for d in self.detectors if d.name == name), None)

    @property
    def allowlist(self) -> set[str]:
        return self.policy.allowlist

    def allow(self, address: str) -> None:
        """Allowlist a contract (from analyst feedback): its transactions make no findings."""
        self.policy.allow(address)

    def learn_verdict(self, terms: Sequence[tuple[str, float]], verdict: str) -> None:
        """An analyst's verdict (``true_positive`` / ``false_positive``) on an alert whose explanation
        was ``terms`` (feature, contribution): similar transactions are scored up or down from now on
        (:mod:`.feedback`)."""
        self.feedback.learn(pattern(terms), verdict)

    def feedback_summary(self) -> dict[str, Any]:
        return self.feedback.summary()

    def reset_feedback(self) -> None:
        self.feedback.reset()

    def set_live(self, live: bool) -> None:
        """Live: a model refit never stalls scoring; replay: refits land at fixed points."""
        for d in self.detectors:
            if hasattr(d, "wait_for_fit"):
                d.wait_for_fit = not live

    # -- scoring ---------------------------------------------------------------------------

    def score_block(self, block: Block, *, learn: bool = True) -> list[TxScore]:
        """Score every transaction of ``block``, then learn from the block."""
        ctx = BlockContext(block.transactions, block.miner)  # BlockContext.of(block), one call less
        now = float(block.timestamp or 0)
        if learn:
            self.wallet_alerts.watch(now)
        return self._score(block.transactions, ctx, now, stage="block", block=block, learn=learn)

    def score_pending(self, txs: Sequence[Tx], now: float) -> list[TxScore]:
        """Score pending transactions (no learning: they are learned when mined)."""
        return self._score(txs, BlockContext(txs), now, stage="mempool", block=None, learn=False)

    def _features(self, txs: Sequence[Tx], ctx: BlockContext, now: float) -> Batch:
        """The batch: each transaction's features (the entity units reading what the stream learned
        before this block)."""
        view = self.view
        feats: list[dict[str, float]] = []
        traces: list[Trace | None] = []
        traced: list[int] = []
        for tx in txs:
            f, trace = features_and_trace(tx, ctx, view, now)
            if f.get("frames", 0.0) > 1:
                traced.append(len(feats))
            feats.append(f)
            traces.append(trace)
        return Batch(txs, feats, now, traced, traces)

    def _score(self, txs: Sequence[Tx], ctx: BlockContext, now: float, *, stage: str, block: Block | None,
               learn: bool) -> list[TxScore]:
        if not txs:
            return []
        batch = self._features(txs, ctx, now)
        feats = batch.features
        verdicts = [(d.name, d.score_many(batch)) for d in self.detectors]
        fuse, fuse_evidence, evidence = self.fuser.fuse, self.fuser.fuse_evidence, self.fuser.evidence
        policy, wallet, feedback = self.policy, self.wallet, self.feedback
        number = None if block is None else block.number
        out: list[TxScore] = []
        raws: list[dict[str, float]] = []
        keep: list[int] = []  # the transactions the models learn from
        for i, tx in enumerate(txs):
            raw, explanation, matched = _combined(verdicts, i)
            if len(raw) == 1 and next(iter(raw)) in evidence:  # one evidence detector alone: the cheap path
                name = next(iter(raw))
                fused, calibrated = fuse_evidence(name, raw[name])
            else:
                fused, calibrated = fuse(raw)
            if feedback.active and fused >= FEEDBACK_FLOOR:
                fused, explanation = self._with_feedback(fused, explanation, matched)
            fused, strong, alerting = policy.decide(fused, matched, tx)
            raws.append(raw)
            score = TxScore(tx.hash, tx.block_number if number is None else number, fused, calibrated, {},
                            explanation, [r.name for r in matched] if matched else [])
            out.append(score)
            if alerting:
                score.finding = finding = policy.finding(tx, fused, score.block_number, explanation, strong, stage,
                                                         block)
                if self.deployments is not None:
                    finding.related = self.deployments.related(tx)
            else:
                keep.append(i)
            if self.deployments is not None and feats[i].get("creates"):
                score.deployment_findings = self.deployments.findings(
                    (tx,), stage, block.hash if block is not None else None, self._funded_by_contract)
            if learn:
                wallet.learn_tx(tx, now, feats[i].get("value_eth", 0.0))  # the features' value, not divided again
        # wallets: read after the whole batch is learned, for each address involved
        wallet_threshold = self.wallet_alerts.threshold if learn else 2.0  # (pending: nothing learned yet)
        crossed: list[tuple[int, str, float]] = []
        for i, tx in enumerate(txs):
            w = out[i].wallets
            sender, to = tx.sender, tx.to
            if sender is not None:
                v = w[sender] = round6(wallet.score(sender))
                if v >= wallet_threshold:
                    crossed.append((i, sender, v))
            if to is not None and to not in w:
                v = w[to] = round6(wallet.score(to))
                if v >= wallet_threshold:
                    crossed.append((i, to, v))
        if learn:
            self._learn(batch, raws, keep, now)
        for i, address, value in crossed:  # (after learning: the block's calls tell contracts from wallets)
            self._wallet_finding(out[i], address, value, txs[i], now, block)
        self.scored += len(txs)
        return out

    def _funded_by_contract(self, sender: str | None) -> bool:
        """Whether ``sender``'s first ETH came from a contract (a mixer, a bridge)."""
        profile = self.view.profile(sender) if sender is not None else None
        return profile is not None and profile.funder is not None and bool(self.view.is_called_contract(profile.funder))

    def _wallet_finding(self, score: TxScore, address: str, value: float, tx: Tx, now: float,
                        block: Block | None) -> None:
        called = tx.to == address and (len(tx.input) > 2 or (tx.trace is not None and bool(tx.trace.calls)))
        finding = self.wallet_alerts.check(address, value, tx, now, self.wallet,
                                           called or self.view.is_called_contract(address), block)
        if finding is not None:
            score.wallet_findings = [*score.wallet_findings, finding]

    def _with_feedback(self, fused: float, explanation: list[Contribution],
                       matched: list[Any]) -> tuple[float, list[Contribution]]:
        """The score shifted by what analysts' verdicts on similar alerts taught, and the shift as an
        explanation term; never lowered where a critical rule holds."""
        shift = self.feedback.shift(pattern((c.feature, c.contribution) for c in explanation))
        if shift < 0 and any(r.severity == "critical" for r in matched):
            return fused, explanation
        if abs(shift) < 0.01:
            return fused, explanation
        fused = 1.0 - (1.0 - fused) * math.exp(-shift / self.fuser.scale)  # the evidence, shifted
        why = "analysts confirmed similar alerts" if shift > 0 else "analysts called similar alerts false positives"
        term = Contribution(FEEDBACK_TERM, round6(shift), shift, why)
        return fused, sorted([*explanation, term], key=lambda c: -c.contribution)  # (the term always shown)

    def _learn(self, batch: Batch, raws: list[dict[str, float]], keep: list[int], now: float) -> None:
        entities, learn_fused = self.entities, self.fuser.learn
        feats = batch.features
        for i, tx in enumerate(batch.txs):
            fi = feats[i]
            entities.learn(tx, fi.get("frames"), now, fi.get("creates"))
        for i in keep:
            learn_fused(raws[i])  # (evidence needs no calibration: the calibrated detectors' scores)
        for d in self.detectors:
            d.learn_many(batch, keep)

    # -- state -----------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {"detectors": {d.name: d.state() for d in self.detectors}, "entities": self.entities.state(),
                "wallet": self.wallet.state(), "fuser": self.fuser.state(), "scored": self.scored,
                "allowlist": sorted(self.allowlist), "feedback": self.feedback.state(),
                "wallet_alerts": self.wallet_alerts.state(),
                "deployments": self.deployments.state() if self.deployments is not None else {}}

    def load_state(self, state: dict[str, Any]) -> None:
        for d in self.detectors:
            d.load_state(state["detectors"][d.name])
        self.entities.load_state(state["entities"])
        self.wallet.load_state(state["wallet"])
        self.fuser.load_state(state["fuser"])
        self.scored = int(state["scored"])
        self.policy.load_state(state)
        if "feedback" in state:
            self.feedback.load_state(state["feedback"])
        if "wallet_alerts" in state:
            self.wallet_alerts.load_state(state["wallet_alerts"])
        if self.deployments is not None and state.get("deployments"):
            self.deployments.load_state(state["deployments"])


def _combined(verdicts: list[tuple[str, Sequence[Score | None]]],
              i: int) -> tuple[dict[str, float], list[Contribution], list[Any]]:
    """Transaction ``i``'s raw score from each detector that gave one, their explanation (the top
    five contributions, largest first) and the named rules that hold."""
    raw: dict[str, float] = {}
    explained: list[Contribution] | None = None
    matched: list[Any] = []
    for name, scores in verdicts:
        s = scores[i]
        if s is None:
            continue
        raw[name] = s.raw
        if s.explanation:
            explained = s.explanation if explained is None else sorted(
                explained + s.explanation, key=lambda c: -c.contribution)
        if s.rules:
            matched = s.rules if not matched else matched + s.rules
    if explained is None:
        return raw, [], matched
    return raw, explained if len(explained) <= 5 else explained[:5], matched
