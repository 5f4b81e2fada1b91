"""Scoring wired into replay and run: engine in, scores and alerts JSONL and metrics out."""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from alerts.lifecycle import AlertLifecycle
from alerts.model import Alert, alert_from_finding, alert_id
from detectors.deployment import DeploymentWatch
from detectors.engine import ScoringEngine, TxScore, encode_scores
from detectors.monitors import MonitorSet
from ingest import Block, BlockAdded, BlockRetracted, ChainEvent, PendingSeen

from .outfiles import cut_partial_line
from .sharding import ShardedEngine

log = logging.getLogger(__name__)


@contextmanager
def batch_gc(first_generation: int = 100_000) -> Iterator[None]:
    """Cyclic GC less often, and over less, while a batch job (a replay) runs; as it was after.

    Scoring allocates many short-lived containers and no reference cycles of its own, so the
    collector's young-generation passes (every 700 allocations by default) are pure overhead:
    5-7% of an attacks-dev replay, measured in ``benchmarks/``. Collections still run (every
    ``first_generation`` allocations), so whatever cycles there are stay bounded. What was
    allocated before the job (the libraries: numpy, scipy, scikit-learn, river; the rule and
    selector tables) is frozen out of the collector's view: a full collection would otherwise walk
    those millions of objects again and again (~20% of an attacks-dev replay).
    """
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(first_generation, before[1], before[2])
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


class DetectorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.score = Histogram(
            "detector_score", "Calibrated score per detector", ["detector"], namespace="chainsentry", registry=registry,
            buckets=(0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0),
        )
        self.alerts = Counter("alerts", "Alerts raised, by severity and detector family (fusion, rules)",
                              ["severity", "detector"], namespace="chainsentry", registry=registry)
        self.latency = Histogram(
            "pipeline_latency", "First sight of the block or pending transaction to the alert's emission",
            ["stage"], namespace="chainsentry", unit="seconds", registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.scored = Counter("detector_transactions_scored", "Transactions scored, by stage", ["stage"],
                              namespace="chainsentry", registry=registry)
        self.seconds = Histogram("detector_scoring_seconds", "Time to score one batch (a block or pending txs)",
                                 ["stage"], namespace="chainsentry", registry=registry)


def alerts_of(scores: list[TxScore], chain_id: int, when: float) -> list[Alert]:
    """The alerts of a block's (or a batch's) scores, in one order wherever they are made: the
    transactions' in transaction order (one transaction's by id: its own, its deployments'), then
    the wallets' (about wallets, not transactions) by id."""
    alerts: list[Alert] = []
    wallets: list[Alert] = []
    for s in scores:
        if s.deployment_findings:
            own = [alert_from_finding(f, chain_id, when) for f in ([s.finding] if s.finding else [])
                   + s.deployment_findings]
            alerts += sorted(own, key=lambda a: a.id)
        elif s.finding is not None:
            alerts.append(alert_from_finding(s.finding, chain_id, when))
        if s.wallet_findings:
            wallets += [alert_from_finding(f, chain_id, when) for f in s.wallet_findings]
    return alerts + sorted(wallets, key=lambda a: a.id) if wallets else alerts


class Scorer:
    """Scores blocks and pending transactions; writes ``--scores`` and ``--alerts`` JSONL."""

    def __init__(self, engine: ScoringEngine | ShardedEngine, *, chain_id: int, scores_path: Path | None = None,
                 alerts_path: Path | None = None, registry: CollectorRegistry | None = None,
                 flush: bool = False, on_alert: Callable[[Alert], object] | None = None) -> None:
        self.flush = flush  # flush scores after each block (live); replays write in big buffers
        self.on_alert = on_alert
        self.engine = engine
        self.chain_id = chain_id
        # live output survives restarts (appended); a replay's is its whole result (replaced)
        self._scores: IO[bytes] | None = _open(scores_path, append=flush)
        self._alerts: IO[bytes] | None = _open(alerts_path, append=flush)
        self.metrics = DetectorMetrics(registry) if registry is not None else None
        self.transactions = 0
        self.findings = 0
        self.monitors: MonitorSet | None = None  # the monitors run on each scored transaction
        # the early warnings on contract creations (the in-process engine's), for linking monitor alerts
        self.deployments: DeploymentWatch | None = getattr(engine, "deployments", None)

    def _linked(self, alert: Alert, txs: dict[str, Any]) -> Alert:
        """The alert with the flagged deployments its transaction ran through."""
        tx = txs.get(alert.tx_hash or "") if self.deployments is not None else None
        related = self.deployments.related(tx) if tx is not None and self.deployments is not None else []
        if not related:
            return alert
        return alert.replace(related=[alert_id(self.chain_id, *r) for r in related])

    def _monitored(self, txs: Any, scores: list[TxScore], stage: str, when: float,
                   block_hash: str | None = None) -> None:
        """The monitors' alerts on these transactions, after the detectors'."""
        if not self.monitors:
            return
        by_hash = {s.tx_hash: (s.score, s.rules) for s in scores}
        findings = self.monitors.findings(txs, stage, [by_hash.get(tx.hash, (None, [])) for tx in txs], block_hash)
        by_tx = {tx.hash: tx for tx in txs} if findings else {}
        for finding in findings:
            self._alert(self._linked(alert_from_finding(finding, self.chain_id, when), by_tx))
            if self.metrics is not None:
                self.metrics.alerts.labels(finding.severity, "monitor").inc()

    def block(self, block: Block, seen_at: float | None = None) -> list[TxScore]:
        """Score a mined block; ``seen_at`` (wall clock, live only) is when ingest first saw it."""
        started = time.perf_counter()
        scores = self.engine.score_block(block)
        self._out(scores, "block", float(block.timestamp or 0), started, seen_at=seen_at, txs=block.transactions)
        self._monitored(block.transactions, scores, "block", float(block.timestamp or 0), block.hash)
        return scores

    def pending(self, txs: list[Any], now: float) -> list[TxScore]:
        """Score pending transactions first seen at ``now`` (wall clock)."""
        started = time.perf_counter()
        scores = self.engine.score_pending(txs, now)
        self._out(scores, "mempool", now, started, write_scores=False, seen_at=now, txs=txs)
        self._monitored(txs, scores, "mempool", now)
        return scores

    def _out(self, scores: list[TxScore], stage: str, when: float, started: float, write_scores: bool = True,
             seen_at: float | None = None, txs: Any = ()) -> None:
        self.transactions += len(scores)
        if self._scores is not None and write_scores:
            _write(self._scores, encode_scores(scores), self.flush)
        for alert in alerts_of(scores, self.chain_id, when):
            self._alert(alert)
        if self.metrics is not None:
            self.metrics.scored.labels(stage).inc(len(scores))
            self.metrics.seconds.labels(stage).observe(time.perf_counter() - started)
            emitted = time.time()
            for s in scores:
                for name, value in s.detectors.items():
                    self.metrics.score.labels(name).observe(value)
                for finding in s.findings():
                    self.metrics.alerts.labels(finding.severity, finding.detector.split("/", 1)[0]).inc()
                if s.finding is not None and seen_at is not None:
                    self.metrics.latency.labels(stage).observe(max(0.0, emitted - seen_at))

    def _alert(self, alert: Alert) -> None:
        self.findings += 1
        if self.on_alert is not None:
            self.on_alert(alert)
        if self._alerts is not None:  # flushed: alerts are rare and someone may be tailing the file
            _write(self._alerts, alert.to_json() + b"\n", True)
        log.info("ALERT %s %s %s score=%.3f: %s", alert.severity, alert.detector, alert.tx_hash, alert.score,
                 alert.description)

    def close(self) -> None:
        for fh in (self._scores, self._alerts):
            if fh is not None:
                try:
                    fh.close()
                except OSError as err:
                    raise OSError(err.errno, err.strerror, fh.name) from None


def _write(fh: IO[bytes], data: bytes, flush: bool) -> None:
    """Write (and flush); an error (a full disk) names the file."""
    try:
        fh.write(data)
        if flush:
            fh.flush()
    except OSError as err:
        raise OSError(err.errno, err.strerror, fh.name) from None


def _open(path: Path | None, append: bool) -> IO[bytes] | None:
    if path is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    if append:
        cut_partial_line(path)
    return open(path, "ab" if append else "wb", buffering=1 << 20)  # a replay writes ~60 bytes a transaction


class DetectSink:
    """The live pipeline's detection stage: scores mined blocks and pending transactions.

    A pending transaction is scored when first seen (with its simulated call tree if
    ``ingest.trace_pending``) and again, with its receipt and real trace, once mined: the block
    score supersedes the pending one, and an alert keeps its id across both stages (the id does not
    depend on the stage), so the alert stage sees one alert move from mempool to block.
    """

    def __init__(self, scorer: Scorer, lifecycle: AlertLifecycle | None = None) -> None:
        self.scorer = scorer
        self.lifecycle = lifecycle

    async def handle(self, event: ChainEvent) -> None:
        if isinstance(event, BlockAdded):
            self.scorer.block(event.block, seen_at=event.seen_at)
            if self.lifecycle is not None:
                self.lifecycle.block_added(event.block.number)
        elif isinstance(event, PendingSeen):
            self.scorer.pending([event.pending.tx], event.pending.first_seen)
        elif isinstance(event, BlockRetracted) and self.lifecycle is not None:
            self.lifecycle.block_retracted(event.hash)

    async def close(self) -> None:
        self.scorer.close()
