"""The scoring engine: a block (or pending transactions) in, scores and findings out.

Per transaction: features (:mod:`.features`), novelty from per-entity state
(:class:`.online.EntityState`), raw scores from every detector, calibration and fusion into one
score in [0, 1] (:mod:`.fusion`), wallet behaviour scores for each address involved
(:mod:`.wallets`), an explanation, and a finding when the fused score reaches the alert
threshold or a named rule of high severity holds with enough corroboration (its score is then
lifted to at least the threshold, so findings outrank everything else). A block is scored before
any of it is learned, so the order of transactions within a block does not change scores;
transactions that produced a finding are kept out of what the models learn (anomalies must not
become normal).

Deterministic: with the same input and config, the same scores (the pyod ensemble refits in a
worker thread but is swapped in at a point fixed by the transaction count).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ingest.events import Block, Tx

from .base import Contribution, Finding, dict_get
from .features import BlockContext, tx_features
from .fusion import Fuser, round6, severity_of
from .online import EntityState, HSTDetector
from .rules import SEVERITIES, RuleSet, ShapeDetector, load_rules
from .wallets import WalletBehaviour
from .window import PyodWindowDetector


@dataclass(frozen=True)
class EngineConfig:
    """Hyperparameters of the engine and its detectors (all explicit, seeds included)."""

    seed: int = 42
    alert_threshold: float = 0.78  # fused score that alerts alone (<= 1 false alert per 1,000 on dev)
    rule_min_severity: str = "high"
    rule_min_score: float = 0.75  # a named rule alerts when the fused score corroborates it
    weights: dict[str, float] = field(default_factory=lambda: {"shape": 1.0, "hst": 1.0, "pyod": 1.0})
    fusion_scale: float = 4.0
    hst_trees: int = 10
    hst_height: int = 6
    hst_window: int = 250
    pyod_window: int = 5000
    pyod_refit_every: int = 2500
    pyod_min_fit: int = 2000
    deterministic_refit: bool = True  # False in the live service: never wait on a refit
    calibration_window: int = 5000
    calibration_min_history: int = 200
    max_entities: int = 200_000
    max_wallets: int = 200_000
    rules_path: str | None = None


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


class ScoringEngine:
    """See the module docstring."""

    def __init__(self, config: EngineConfig | None = None, rules: RuleSet | None = None) -> None:
        self.config = cfg = config or EngineConfig()
        self.rules = rules if rules is not None else load_rules(cfg.rules_path)
        self.shape = ShapeDetector(self.rules)
        self.hst = HSTDetector(n_trees=cfg.hst_trees, height=cfg.hst_height, window_size=cfg.hst_window,
                               seed=cfg.seed)
        self.pyod = PyodWindowDetector(window=cfg.pyod_window, refit_every=cfg.pyod_refit_every,
                                       min_fit=cfg.pyod_min_fit, seed=cfg.seed,
                                       wait_for_fit=cfg.deterministic_refit)
        self.entities = EntityState(max_entities=cfg.max_entities)
        self.wallet = WalletBehaviour(max_wallets=cfg.max_wallets)
        self.fuser = Fuser(cfg.weights, ("shape",), cfg.calibration_window, cfg.calibration_min_history,
                           cfg.fusion_scale)
        self._rule_floor = SEVERITIES.index(cfg.rule_min_severity)
        self.scored = 0
        self.allowlist: set[str] = set()  # contracts analysts marked benign: scored, never a finding

    def allow(self, address: str) -> None:
        """Allowlist a contract (from analyst feedback): its transactions make no findings."""
        self.allowlist.add(address.lower())

    # -- scoring ---------------------------------------------------------------------------

    def score_block(self, block: Block, *, learn: bool = True) -> list[TxScore]:
        """Score every transaction of ``block``, then learn from the block."""
        ctx = BlockContext(block.transactions, block.miner)  # BlockContext.of(block), one call less
        now = float(block.timestamp or 0)
        return self._score(block.transactions, ctx, now, stage="block", block=block, learn=learn)

    def score_pending(self, txs: Sequence[Tx], now: float) -> list[TxScore]:
        """Score pending transactions (no learning: they are learned when mined)."""
        return self._score(txs, BlockContext(txs), now, stage="mempool", block=None, learn=False)

    def _score(self, txs: Sequence[Tx], ctx: BlockContext, now: float, *, stage: str, block: Block | None,
               learn: bool) -> list[TxScore]:
        if not txs:
            return []
        hst, pyod, fuser, entities, wallet = self.hst, self.pyod, self.fuser, self.entities, self.wallet
        hst_warm, pyod_warm = hst.warm, pyod.warm
        # without a call tree (or with one frame) the tree models have nothing to go on: such a
        # transaction is scored on the shape evidence alone
        traced_warm = {"shape": True, "hst": hst_warm, "pyod": pyod_warm}
        assess = self.rules.assess
        threshold = self.config.alert_threshold
        number = None if block is None else block.number
        feats: list[dict[str, float]] = []
        scaled: list[dict[str, float] | None] = []
        warm_stream = entities.seen >= 200
        profiles = wallet.profiles
        for tx in txs:
            f = tx_features(tx, ctx)
            entities.observe(tx, f, now)
            if warm_stream and tx.sender is not None:  # the sender's wallet profile, if it has one
                profile = dict_get(profiles, tx.sender)
                if profile is not None:
                    f["sender_age_days"] = profile.age_days(now)
                    funder = profile.funder
                    if funder is not None:
                        f["sender_funded_by_contract"] = 1.0 if funder in entities.contracts else 0.0
            feats.append(f)
            # the tree models read call trees: a single frame (a plain call or transfer) has none
            scaled.append(hst.scale(f) if f.get("frames", 0.0) > 1 else None)
        pyod_scores: dict[int, float] = {}
        if pyod_warm:
            traced = [i for i, hx in enumerate(scaled) if hx is not None]
            if traced:
                pyod_scores = dict(zip(traced, pyod.score_many([feats[i] for i in traced]), strict=True))
        out: list[TxScore] = []
        raws: list[dict[str, float] | None] = []
        wallets: list[dict[str, float]] = []  # each score's, filled once the batch is learned
        found: list[bool] = []
        for i, tx in enumerate(txs):
            f = feats[i]
            explained, matched = assess(f)  # evidence terms, and the named rules that hold
            shape = 0.0
            for c in explained:
                shape += c.contribution
            hx = scaled[i]
            raw: dict[str, float] | None = None  # what the calibrated models learn (call trees only)
            if hx is not None:
                raw = {"shape": shape}
                if hst_warm:
                    raw["hst"] = hst.score_scaled(hx)
                if i in pyod_scores:
                    raw["pyod"] = pyod_scores[i]
                fused, calibrated = fuser.fuse(raw, traced_warm)
            else:  # the shape evidence alone (what fuse() gives for it, without its loop)
                fused, calibrated = fuser.fuse_evidence("shape", shape)
            strong = None
            if matched:
                strong, fused = self._alerting_rules(fused, matched)
            raws.append(raw)
            w: dict[str, float] = {}
            wallets.append(w)
            score = TxScore(tx.hash, tx.block_number if number is None else number, fused, calibrated, w,
                            explained if len(explained) <= 5 else explained[:5],
                            [r.name for r in matched] if matched else [])
            out.append(score)
            alerting = bool(strong or fused >= threshold) and tx.to not in self.allowlist
            if alerting:
                score.finding = self._finding(score, tx, strong or [], stage, block)
            found.append(alerting)
            if learn:
                wallet.learn_tx(tx, now, f.get("value_eth", 0.0))  # the features' value, not divided again
        # wallets: read after the whole batch is learned, for each address involved
        for i, tx in enumerate(txs):
            w = wallets[i]
            sender, to = tx.sender, tx.to
            if sender is not None:
                w[sender] = round6(wallet.score(sender))
            if to is not None and to not in w:
                w[to] = round6(wallet.score(to))
        if learn:
            for i, tx in enumerate(txs):
                fi = feats[i]
                entities.learn(tx, fi.get("frames"), now, fi.get("creates"))
                if found[i]:
                    continue  # keep anomalies out of what the models learn
                hx = scaled[i]
                if hx is None:
                    continue  # nothing to calibrate: the shape evidence is not calibrated
                fuser.learn(raws[i], traced_warm)  # type: ignore[arg-type]  # set wherever hx is
                hst.learn_scaled(hx)
                pyod.learn_one(feats[i])
        self.scored += len(txs)
        return out

    def _alerting_rules(self, fused: float, matched: list[Any]) -> tuple[list[Any], float]:
        """The named rules that alert on this transaction, and its score lifted for them.

        A rule alerts when its severity is at least ``rule_min_severity`` and the fused score
        corroborates it (at least the rule's ``min_score``, else ``rule_min_score``). Such a finding
        can score below the alert threshold; its score is lifted so that every finding scores at
        least the threshold and ranks above every transaction that makes none: ``[min_score, 1]``
        maps linearly onto ``[alert_threshold, 1]`` (the most of the alerting rules), and a score
        already higher stays. (A transaction to an allowlisted contract keeps the lifted score but
        makes no finding.)
        """
        threshold = self.config.alert_threshold
        default_min = self.config.rule_min_score
        strong = []
        lifted = fused
        for r in matched:
            if SEVERITIES.index(r.severity) < self._rule_floor:
                continue
            lo = default_min if r.min_score is None else r.min_score
            if fused < lo:
                continue
            strong.append(r)
            if lo < 1.0:
                lifted = max(lifted, threshold + (1.0 - threshold) * (fused - lo) / (1.0 - lo))
        return strong, lifted

    def _finding(self, score: TxScore, tx: Tx, strong: list[Any], stage: str, block: Block | None) -> Finding:
        if strong:
            top = max(strong, key=lambda r: SEVERITIES.index(r.severity))
            severity = max(top.severity, severity_of(score.score), key=SEVERITIES.index)
            kind, title, detector = top.type, top.title, f"rules/{top.name}"
        else:
            severity = severity_of(score.score)
            kind, title, detector = "suspicious", "Anomalous transaction", "fusion"
        reasons = "; ".join(f"{c.why} ({c.feature}={c.value:g})" for c in score.explanation[:3]) or "unusual features"
        addresses = [a for a in (tx.sender, tx.to) if a is not None]
        return Finding(
            tx_hash=tx.hash, block_number=score.block_number, block_hash=block.hash if block else None, stage=stage,
            score=round6(score.score), severity=severity, type=kind, detector=detector, title=title,
            description=f"{title}: {reasons}.", addresses=addresses, explanation=score.explanation,
        )

    # -- state -----------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {"hst": self.hst.state(), "pyod": self.pyod.state(), "entities": self.entities.state(),
                "wallet": self.wallet.state(), "fuser": self.fuser.state(), "scored": self.scored,
                "allowlist": sorted(self.allowlist)}

    def load_state(self, state: dict[str, Any]) -> None:
        self.hst.load_state(state["hst"])
        self.pyod.load_state(state["pyod"])
        self.entities.load_state(state["entities"])
        self.wallet.load_state(state["wallet"])
        self.fuser.load_state(state["fuser"])
        self.scored = int(state["scored"])
        self.allowlist = set(state.get("allowlist", ()))
