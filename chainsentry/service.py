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

from alerts.model import Alert
from detectors.engine import ScoringEngine

from .config import Secrets, Settings
from .delivery import Delivery, build_delivery
from .pipeline import BlockFileSink, EventSink, JsonlEventSink, LivePipeline
from .scoring import DetectSink, Scorer
from .sharding import ShardedEngine


@dataclass
class Service:
    pipeline: LivePipeline
    scorer: Scorer
    delivery: Delivery

    async def run(self, *, duration: float | None = None, status_out: Callable[[str], None] | None = None) -> None:
        def chain_known(p: LivePipeline) -> None:
            self.scorer.chain_id = p.chain_id or 0  # alert ids carry the node's chain

        await self.pipeline.run(duration=duration, status_out=status_out, ready=chain_known)


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
                  on_alert: Callable[[Alert], None] | None = None) -> Service:
    """The service around ``engine``; ``on_alert`` hears each alert after the lifecycle took it;
    ``blocks_out``: the chain it saw, as block JSONL."""
    registry = CollectorRegistry()
    delivery = build_delivery(settings, secrets, webhook, allow_private, settings.data_dir / "alerts.db", registry)
    for entry in delivery.store.allowlist():  # feedback given earlier still holds
        engine.allow(entry.subject)

    def accept(alert: Alert) -> None:
        delivery.accept(alert)
        if on_alert is not None:
            on_alert(alert)

    scorer = Scorer(engine, chain_id=0, scores_path=scores, alerts_path=alerts, registry=registry, flush=True,
                    on_alert=accept)
    sinks: list[EventSink] = [DetectSink(scorer, delivery.lifecycle)]
    if events_out is not None:
        sinks.append(JsonlEventSink(events_out))
    if blocks_out is not None:
        sinks.append(BlockFileSink(blocks_out))
    pipeline = LivePipeline(settings, secrets, registry=registry, sinks=sinks, delivery=delivery,
                            learner=EngineLearner(engine))
    return Service(pipeline, scorer, delivery)
