"""``chainsentry worker --role ingest|detect|alert`` and ``replay --transport kafka``: wiring only
(the roles themselves are in :mod:`.workers`)."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from rich.console import Console

from ingest.metrics import IngestMetrics
from ingest.replay import BlockSource

from .build import make_rpc
from .config import Secrets, Settings
from .delivery import build_delivery
from .kafka import KafkaMetrics, Topics, ensure_topics
from .workers import AlertWorker, DetectWorker, KafkaIngestSink, KafkaReplay, write_jsonl

log = logging.getLogger(__name__)


def _topics(settings: Settings, chain_id: int) -> Topics:
    return Topics.of(settings.transport.kafka.topic_prefix, chain_id)


def _group(settings: Settings, chain_id: int, role: str) -> str:
    k = settings.transport.kafka
    return f"{k.group_prefix}.{k.topic_prefix}.{chain_id}.{role}"


def _serve_metrics(registry: CollectorRegistry, hostport: str | None) -> None:
    if not hostport:
        return
    host, _, port = hostport.rpartition(":")
    start_http_server(int(port), addr=host.strip("[]") or "127.0.0.1", registry=registry)


def run_detect(settings: Settings, chain_id: int, rules: Path | None, metrics_addr: str | None,
               stop: threading.Event | None = None) -> None:
    """A detector worker until SIGTERM/SIGINT (or ``stop``)."""
    k = settings.transport.kafka
    topics = _topics(settings, chain_id)
    ensure_topics(k.bootstrap, topics, settings.transport.partitions, k.max_message_bytes, k.setup_wait)
    stop = stop or threading.Event()
    on_signals(stop.set)
    registry = CollectorRegistry()
    worker = DetectWorker(k.bootstrap, topics, _group(settings, chain_id, "detect"), chain_id,
                          engine_config=settings.detectors.engine_config(rules_path=rules),
                          snapshot_every=k.snapshot_every, max_bytes=k.max_message_bytes, registry=registry,
                          setup_wait=k.setup_wait)
    _serve_metrics(registry, metrics_addr)
    log.info("detect worker: %s -> %s (group %s)", topics.calls, topics.findings,
                _group(settings, chain_id, "detect"))
    worker.run(stop)


def on_signals(handler: Callable[[], None]) -> None:
    """Call ``handler`` on SIGTERM and SIGINT (from the main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: handler())


async def run_alert(settings: Settings, secrets: Secrets, chain_id: int, webhook: str | None, allow_private: bool,
                    duration: float | None = None) -> None:
    """The alert role: store, lifecycle, delivery and the HTTP API (``settings.api``)."""
    from .api import api_server

    k = settings.transport.kafka
    topics = _topics(settings, chain_id)
    await asyncio.to_thread(ensure_topics, k.bootstrap, topics, settings.transport.partitions,
                            k.max_message_bytes, k.setup_wait)
    registry = CollectorRegistry()
    delivery = build_delivery(settings, secrets, webhook, allow_private, settings.data_dir / "alerts.db", registry)
    worker = await asyncio.to_thread(AlertWorker, k.bootstrap, topics, _group(settings, chain_id, "alert"),
                                     delivery.lifecycle, max_bytes=k.max_message_bytes, registry=registry,
                                     setup_wait=k.setup_wait)

    def status() -> dict[str, Any]:
        fresh = time.time() - worker.last_contact < 30
        return {"role": "alert", "healthy": fresh, "topic": topics.findings, "alerts_seen": worker.alerts_seen,
                "outbox": delivery.store.outbox_counts()}

    server, sock = api_server(settings, secrets, registry, status, delivery)
    log.info("alert worker: %s -> store %s, API on http://%s", topics.findings, delivery.store.path,
             settings.api)
    tasks = [asyncio.create_task(worker.run()), asyncio.create_task(delivery.run_forever()),
             asyncio.create_task(server.serve(sockets=[sock]))]
    try:
        done, _ = await asyncio.wait(tasks, timeout=duration, return_when=asyncio.FIRST_EXCEPTION)
        for t in done:
            t.result()
    finally:
        server.should_exit = True
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.to_thread(worker.close)
        delivery.store.close()


async def run_ingest(settings: Settings, secrets: Secrets, duration: float | None = None) -> None:
    """The ingest role: follow the chain (and mempool) into the calls topic."""
    from .pipeline import LivePipeline

    k = settings.transport.kafka
    rpc = make_rpc(settings, IngestMetrics())
    try:
        chain_id = int(await rpc.call("eth_chainId"), 16)
    finally:
        await rpc.aclose()
    topics = _topics(settings, chain_id)
    await asyncio.to_thread(ensure_topics, k.bootstrap, topics, settings.transport.partitions,
                            k.max_message_bytes, k.setup_wait)
    registry = CollectorRegistry()
    sink = KafkaIngestSink(k.bootstrap, topics, settings.transport.partitions, k.max_message_bytes,
                           KafkaMetrics(registry, "ingest"), k.setup_wait)
    pipeline = LivePipeline(settings, secrets, registry=registry, sinks=[sink])
    log.info("ingest worker: chain %d -> %s (%d partitions)", chain_id, topics.calls,
                settings.transport.partitions)
    await pipeline.run(duration=duration)


def replay_kafka(settings: Settings, chain_id: int, source: BlockSource, *, scores: Path | None,
                 alerts: Path | None, on_wait: Callable[[float], None] | None = None,
                 timeout: float | None = None, show: bool = False, console: Console | None = None) -> dict[str, Any]:
    """Publish the blocks of ``source`` for the detector group (the one replay loop, with
    ``rep.publish`` as what each block goes to); with ``scores``/``alerts``, wait for the group to
    finish this input and write what it produced, in chain order."""
    from .replaying import replay

    k = settings.transport.kafka
    topics = _topics(settings, chain_id)
    ensure_topics(k.bootstrap, topics, settings.transport.partitions, k.max_message_bytes, k.setup_wait)
    rep = KafkaReplay(k.bootstrap, topics, settings.transport.partitions, batch_txs=k.batch_txs,
                      max_bytes=k.max_message_bytes, setup_wait=k.setup_wait)
    try:
        n_blocks, n_txs = asyncio.run(replay(source, rep.publish, show=show, console=console or Console(stderr=True)))
        rep.finish()
        stats: dict[str, Any] = {"blocks": n_blocks, "transactions": n_txs, "messages": rep.published,
                                 "topic": topics.calls, "run": rep.run_id}
        if scores is None and alerts is None:
            return stats
        got_scores, got_alerts = rep.collect(timeout=timeout, on_wait=on_wait)
        if scores is not None:
            write_jsonl(scores, got_scores)
        if alerts is not None:
            write_jsonl(alerts, got_alerts)
        stats["alerts"] = len(got_alerts)
        stats["alert_list"] = got_alerts
        return stats
    finally:
        rep.close()
