"""The live service assembled in one place, for ``run`` and ``demo``: ingest, detection, the alert
lifecycle with its store and delivery, and the API, on one metrics registry.

The store and the lifecycle run in any case (alerts are kept and follow confirmations and reorgs),
whether or not anything is subscribed; analyst feedback given earlier reaches the detectors again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from alerts.model import Alert, ResponseOutcome
from detectors.engine import ScoringEngine
from ingest import RpcClient

from .config import ConfigError, Secrets, Settings
from .delivery import Delivery, build_delivery
from .guardian import RpcChainWriter, load_guardian
from .monitoring import MonitorBook
from .pipeline import BlockFileSink, EventSink, JsonlEventSink, LivePipeline
from .scoring import DetectSink, Scorer
from .sharding import ShardedEngine


@dataclass
class Service:
    pipeline: LivePipeline
    scorer: Scorer
    delivery: Delivery
    monitors: MonitorBook
    writer: RpcChainWriter

    async def run(self, *, duration: float | None = None, status_out: Callable[[str], None] | None = None) -> None:
        def chain_known(p: LivePipeline) -> None:
            self.scorer.chain_id = p.chain_id or 0  # alert ids carry the node's chain
            self.monitors.live.chain_id = self.writer.chain_id = self.scorer.chain_id

        try:
            await self.pipeline.run(duration=duration, status_out=status_out, ready=chain_known)
        finally:
            await self.monitors.runner.drain()
            await self.writer.rpc.aclose()


class EngineLearner:
    """Analysts' verdicts into the engine: the allowlist, and the verdict model that re-weights
    similar transactions (``detectors/feedback.py``), learned from the alert's explanation."""

    def __init__(self, engine: ScoringEngine | ShardedEngine) -> None:
        self.engine = engine

    def allow(self, address: str) -> None:
        self.engine.allow(address)

    def learn_verdict(self, alert: Alert, verdict: str) -> None:
        if alert.tx_hash is None:  # a wallet's alert: its false positive allowlists the wallet
            return
        self.engine.learn_verdict([(e.feature, e.contribution) for e in alert.explanation], verdict)

    def feedback_model(self) -> dict[str, Any]:
        return self.engine.feedback_summary()

    def reset_feedback(self) -> None:
        self.engine.reset_feedback()


def build_service(settings: Settings, secrets: Secrets, engine: ScoringEngine | ShardedEngine, *,
                  webhook: str | None = None, allow_private: bool = False, scores: Path | None = None,
                  alerts: Path | None = None, events_out: Path | None = None, blocks_out: Path | None = None,
                  on_alert: Callable[[Alert], None] | None = None,
                  on_response: Callable[[ResponseOutcome, float | None], None] | None = None) -> Service:
    """The service around ``engine``; ``on_alert`` hears each alert after the lifecycle took it,
    ``on_response`` each response outcome (with the seconds since a mempool alert's transaction was
    first seen); ``blocks_out``: the chain it saw, as block JSONL."""
    registry = CollectorRegistry()
    delivery = build_delivery(settings, secrets, webhook, allow_private, settings.data_dir / "alerts.db", registry)
    for entry in delivery.store.allowlist():  # feedback given earlier still holds
        engine.allow(entry.subject)

    guardian = load_guardian(settings, secrets)
    sends = [f"{m.name}.{r.name}" for m in settings.monitors for r in m.responses
             if r.kind == "transaction" and not getattr(r, "dry_run", False)]
    if sends and guardian is None:
        raise ConfigError(f"response {sends[0]} sends a transaction: set CHAINSENTRY_GUARDIAN_KEY or "
                          "guardian.keystore (or make it dry_run)")
    writer = RpcChainWriter(RpcClient(settings.rpc), guardian, chain_id=0)
    monitors = MonitorBook(settings, delivery.store, registry, writer, on_response)
    delivery.lifecycle.routes = monitors.routes

    def accept(alert: Alert) -> None:
        if delivery.accept(alert):
            monitors.runner.handle(alert)
        if on_alert is not None:
            on_alert(alert)

    scorer = Scorer(engine, chain_id=0, scores_path=scores, alerts_path=alerts, registry=registry, flush=True,
                    on_alert=accept)
    scorer.monitors = monitors.live
    sinks: list[EventSink] = [DetectSink(scorer, delivery.lifecycle)]
    if events_out is not None:
        sinks.append(JsonlEventSink(events_out))
    if blocks_out is not None:
        sinks.append(BlockFileSink(blocks_out))
    pipeline = LivePipeline(settings, secrets, registry=registry, sinks=sinks, delivery=delivery,
                            learner=EngineLearner(engine), monitors=monitors)
    return Service(pipeline, scorer, delivery, monitors, writer)
