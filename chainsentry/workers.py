"""The scale-out roles over Kafka: ingest, detect and alert, and a replay through the worker group.

Detect workers form one consumer group on the calls topic; each owns the detector state of the
partitions assigned to it (one engine per partition). Every ``snapshot_every`` seconds, and when it
stops, the worker writes each partition's state with the next offset to the state topic, waits for
the broker to have it, then commits that offset: offsets are committed only after the output
(findings) and the state are produced. A new owner restores the latest state and seeks
to its offset, so learning survives moves and a ``kill -9`` costs only the reprocessing of messages
since the last checkpoint; scoring is deterministic and alert ids are too, so what is redone
produces the same scores and alerts again, which the alert role and the replay collector fold.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson
from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata, TopicPartition
from prometheus_client import CollectorRegistry

from alerts.lifecycle import AlertLifecycle
from alerts.model import Alert
from detectors.engine import EngineConfig, ScoringEngine, TxScore
from detectors.snapshot import SnapshotError, load_snapshot_bytes, snapshot_bytes
from ingest.events import Block, BlockAdded, BlockRetracted, ChainEvent, PendingSeen

from .kafka import (
    SCHEMA_VERSION,
    SETUP_WAIT,
    Findings,
    KafkaMetrics,
    MessageError,
    Topics,
    consumer,
    dead_letter,
    decode_calls,
    decode_findings,
    encode_blocks,
    encode_control,
    encode_findings,
    encode_pending,
    producer,
)
from .scoring import DetectorMetrics, alerts_of
from .sharding import partition_of, split_block, tx_key

log = logging.getLogger(__name__)


def _retry(what: str, fn: Callable[[], Any], metrics: KafkaMetrics | None, stop: threading.Event | None = None,
           give_up_after: float | None = None) -> Any:
    """Run ``fn`` until it succeeds (the broker may be away for a while), backing off to 2 s."""
    delay = 0.2
    started = time.monotonic()
    while True:
        try:
            return fn()
        except KafkaError as err:
            if metrics is not None:
                metrics.errors.labels(what).inc()
            if (stop is not None and stop.is_set()) or (
                    give_up_after is not None and time.monotonic() - started > give_up_after):
                raise
            log.warning("kafka %s failed (%s); retrying in %.1f s", what, err, delay)
            time.sleep(delay)
            delay = min(2.0, delay * 2)


# -- detect --------------------------------------------------------------------------------

class DetectWorker(ConsumerRebalanceListener):  # type: ignore[misc]
    """One member of the detector group. ``run(stop)`` until ``stop`` is set."""

    def __init__(self, bootstrap: str, topics: Topics, group: str, chain_id: int, *,
                 engine_config: EngineConfig | None = None, snapshot_every: float = 5.0,
                 max_bytes: int = 16 * 1024 * 1024, registry: CollectorRegistry | None = None,
                 setup_wait: float = SETUP_WAIT) -> None:
        self.topics = topics
        self.chain_id = chain_id
        self.config = engine_config or EngineConfig()  # deterministic refits: any owner scores alike
        self.snapshot_every = snapshot_every
        self.registry = registry or CollectorRegistry()
        self.metrics = KafkaMetrics(self.registry, "detect")
        self.detector_metrics = DetectorMetrics(self.registry)
        self.producer: KafkaProducer = producer(bootstrap, max_bytes, setup_wait)
        self.consumer: KafkaConsumer = consumer(bootstrap, group, max_bytes, setup_wait, max_poll_records=20)
        self._state_reader: KafkaConsumer = consumer(bootstrap, None, max_bytes, setup_wait)
        self.engines: dict[int, ScoringEngine] = {}
        self.next_offset: dict[int, int] = {}  # partition -> offset of the next message to process
        self.checkpointed: dict[int, int] = {}
        self.last_checkpoint = time.monotonic()
        self.processed = 0
        self._assigned: list[TopicPartition] = []  # assigned, paused, state not restored yet
        self.consumer.subscribe([topics.calls], listener=self)

    # rebalance listener --------------------------------------------------------------------

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        # This runs on the consumer's IO thread, where it may not commit (kafka-python refuses to
        # block there). No checkpoint is taken: the next owner (maybe this worker again) restores the
        # last periodic one and redoes the messages since, which give the same findings again.
        self.metrics.rebalances.labels("revoked").inc(len(revoked))
        for tp in revoked:
            self.engines.pop(tp.partition, None)
            self.next_offset.pop(tp.partition, None)
            self.checkpointed.pop(tp.partition, None)
        self.metrics.forget(revoked)

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        # Runs on the consumer's IO loop, which must not block (heartbeats): the partitions are
        # paused here and their state restored by the poll loop (:meth:`_restore_assigned`).
        self.metrics.rebalances.labels("assigned").inc(len(assigned))
        if assigned:
            self.consumer.pause(*assigned)
            self._assigned.extend(assigned)

    def _restore_assigned(self) -> None:
        """Restore the state of newly assigned partitions, seek to it, and let their messages come."""
        owned = self.consumer.assignment()
        pending, self._assigned = self._assigned, []
        for tp in pending:
            if tp not in owned:
                continue  # revoked again meanwhile
            engine = ScoringEngine(self.config)
            offset = self._restore(tp.partition, engine)
            self.engines[tp.partition] = engine
            if offset is not None:
                self.consumer.seek(tp, offset)
                self.next_offset[tp.partition] = self.checkpointed[tp.partition] = offset
            self.consumer.resume(tp)
            log.info("partition %d assigned; state %s", tp.partition,
                     f"restored at offset {offset}" if offset is not None else "new")

    def _restore(self, partition: int, engine: ScoringEngine) -> int | None:
        """Load the latest checkpoint of ``partition`` from the state topic; its offset, or None."""
        tp = TopicPartition(self.topics.state, partition)
        reader = self._state_reader
        reader.assign([tp])
        end = _retry("state_end_offsets", lambda: reader.end_offsets([tp])[tp], self.metrics)
        if not end:
            return None
        reader.seek(tp, end - 1)
        latest = None
        deadline = time.monotonic() + 60
        while latest is None and time.monotonic() < deadline:
            for records in reader.poll(timeout_ms=1000).values():
                for r in records:
                    latest = r.value
        if latest is None:
            raise RuntimeError(f"state partition {partition} has data but none could be read")
        head, _, snap = latest.partition(b"\n")
        meta = orjson.loads(head)
        try:
            load_snapshot_bytes(engine, snap, f"state of partition {partition}")
        except SnapshotError as err:
            raise RuntimeError(f"{err}: refusing to score partition {partition} from a state it cannot read") from None
        return int(meta["offset"])

    def _checkpoint(self, partition: int, give_up_after: float | None = None) -> None:
        offset = self.next_offset.get(partition)
        engine = self.engines.get(partition)
        if offset is None or engine is None or self.checkpointed.get(partition) == offset:
            return
        head = orjson.dumps({"v": 1, "partition": partition, "offset": offset, "time": time.time()})
        value = head + b"\n" + snapshot_bytes(engine)
        key = str(partition).encode()

        def send() -> None:
            self.producer.send(self.topics.state, value=value, key=key, partition=partition).get(timeout=60)

        _retry("state_produce", send, self.metrics, give_up_after=give_up_after)
        self.metrics.messages.labels(self.topics.state, "out").inc()
        tp = TopicPartition(self.topics.calls, partition)
        _retry("commit", lambda: self.consumer.commit({tp: OffsetAndMetadata(offset, "", -1)}), self.metrics,
               give_up_after=give_up_after)
        self.checkpointed[partition] = offset

    # processing ----------------------------------------------------------------------------

    def _findings(self, partition: int, msg: Any) -> Findings:
        engine = self.engines[partition]
        scores: list[dict[str, Any]] = []
        alerts: list[Alert] = []
        upto = None

        def out(batch: list[TxScore], stage: str, when: float) -> None:
            for s in batch:
                if stage == "block":
                    scores.append(s.to_json())
                for name, value in s.detectors.items():
                    self.detector_metrics.score.labels(name).observe(value)
            for alert in alerts_of(batch, self.chain_id, when):
                alerts.append(alert)
                self.detector_metrics.alerts.labels(alert.severity, alert.detector.split("/")[0]).inc()
            self.detector_metrics.scored.labels(stage).inc(len(batch))

        if msg.kind == "blocks":
            for block in msg.blocks:
                out(engine.score_block(block), "block", float(block.timestamp or 0))
                upto = block.number if upto is None else max(upto, block.number)
        else:  # pending
            now = msg.seen or time.time()
            out(engine.score_pending(msg.txs, now), "mempool", now)
        return Findings(v=SCHEMA_VERSION, kind="scored", run=msg.run, partition=partition, upto=upto, scores=scores,
                        alerts=alerts)

    def handle(self, record: Any) -> None:
        p = record.partition
        try:
            msg = decode_calls(record.value)
        except MessageError as err:
            self._dead(record, str(err))
        else:
            if msg.kind in ("blocks", "pending"):
                body = self._findings(p, msg)
            elif msg.kind == "retract":
                body = Findings(v=SCHEMA_VERSION, kind="retract", hash=msg.hash, partition=p)
            else:
                body = Findings(v=SCHEMA_VERSION, kind="end", run=msg.run, partition=p)
            value = encode_findings(body)
            self.producer.send(self.topics.findings, value=value, partition=p)
            self.metrics.messages.labels(self.topics.findings, "out").inc()
        self.next_offset[p] = record.offset + 1
        self.processed += 1

    def _dead(self, record: Any, reason: str) -> None:
        log.warning("calls message at partition %d offset %d sent to %s: %s", record.partition, record.offset,
                    self.topics.dead, reason)
        self.producer.send(self.topics.dead, value=dead_letter(record, reason, "detect"))
        self.metrics.dead.labels(record.topic).inc()

    def run(self, stop: threading.Event, idle_warning: float = 60.0) -> None:
        quiet_since = said = time.monotonic()
        try:
            while not stop.is_set():
                if self._assigned:
                    self._restore_assigned()
                try:
                    batch = self.consumer.poll(timeout_ms=500)
                except KafkaError as err:
                    self.metrics.errors.labels("poll").inc()
                    log.warning("kafka poll failed (%s); retrying", err)
                    time.sleep(0.5)
                    continue
                now = time.monotonic()
                if batch:
                    quiet_since = now
                elif now - quiet_since >= idle_warning and now - said >= idle_warning:
                    said = now
                    others = sorted(t for t in self.consumer.topics() if t.endswith(".calls"))
                    log.warning("nothing on %s for %.0f s: is an ingest role or a replay writing to it? calls "
                                "topics on this broker: %s", self.topics.calls, now - quiet_since,
                                ", ".join(others) or "none")
                for tp, records in batch.items():
                    if tp.partition not in self.engines:
                        continue  # revoked while polling
                    for r in records:
                        self.metrics.messages.labels(tp.topic, "in").inc()
                        self.handle(r)
                if batch:
                    _retry("flush", lambda: self.producer.flush(timeout=60), self.metrics, stop)
                if time.monotonic() - self.last_checkpoint >= self.snapshot_every:
                    for p in list(self.engines):
                        self._checkpoint(p)
                    self.last_checkpoint = time.monotonic()
                self.metrics.update_lag(self.consumer)
            for p in list(self.engines):  # a clean stop leaves nothing to redo
                self._checkpoint(p, give_up_after=30)
        finally:
            self.close()

    def close(self) -> None:
        for c in (self.consumer, self._state_reader):
            with contextlib.suppress(Exception):
                c.close(autocommit=False)
        with contextlib.suppress(Exception):
            self.producer.close(timeout=10)


# -- ingest --------------------------------------------------------------------------------

class KafkaIngestSink:
    """The ingest role's sink: chain events into the calls topic, split by partition."""

    def __init__(self, bootstrap: str, topics: Topics, partitions: int, max_bytes: int,
                 metrics: KafkaMetrics | None = None, setup_wait: float = SETUP_WAIT) -> None:
        self.topics = topics
        self.partitions = partitions
        self.metrics = metrics
        self.producer = producer(bootstrap, max_bytes, setup_wait)

    def _send(self, partition: int, value: bytes) -> None:
        self.producer.send(self.topics.calls, value=value, partition=partition)
        if self.metrics is not None:
            self.metrics.messages.labels(self.topics.calls, "out").inc()

    async def handle(self, event: ChainEvent) -> None:
        if isinstance(event, BlockAdded):
            for p, sub in enumerate(split_block(event.block, self.partitions)):
                self._send(p, encode_blocks([sub]))  # empty ones too: every partition hears of every block
        elif isinstance(event, PendingSeen):
            tx = event.pending.tx
            self._send(partition_of(tx_key(tx), self.partitions), encode_pending([tx], event.pending.first_seen))
            return  # sent within linger_ms; no checkpoint waits on a pending transaction
        elif isinstance(event, BlockRetracted):
            for p in range(self.partitions):
                self._send(p, encode_control("retract", hash=event.hash))
        else:
            return
        # the follower commits its checkpoint after this returns: the broker has the event by then
        await asyncio.to_thread(self.producer.flush, 300)

    async def close(self) -> None:
        await asyncio.to_thread(self.producer.close, 30)


# -- alert ---------------------------------------------------------------------------------

class AlertWorker:
    """The alert role: findings into the lifecycle (store, outbox, subscriptions); each alert
    status change also to the alerts topic. Offsets are committed after the store has the alerts."""

    def __init__(self, bootstrap: str, topics: Topics, group: str, lifecycle: AlertLifecycle, *,
                 max_bytes: int = 16 * 1024 * 1024, registry: CollectorRegistry | None = None,
                 setup_wait: float = SETUP_WAIT) -> None:
        self.topics = topics
        self.lifecycle = lifecycle
        self.registry = registry or CollectorRegistry()
        self.metrics = KafkaMetrics(self.registry, "alert")
        self.producer = producer(bootstrap, max_bytes, setup_wait)
        self.consumer = consumer(bootstrap, group, max_bytes, setup_wait, max_poll_records=100)
        self.consumer.subscribe([topics.findings])
        self.alerts_seen = 0
        self.last_contact = time.time()

    def _publish(self, alerts: list[Alert]) -> None:
        for a in alerts:
            self.producer.send(self.topics.alerts, key=a.id.encode(), value=a.to_json())
            self.metrics.messages.labels(self.topics.alerts, "out").inc()

    def handle(self, record: Any) -> None:
        try:
            body = decode_findings(record.value)
        except MessageError as err:
            log.warning("findings message at partition %d offset %d sent to %s: %s", record.partition,
                        record.offset, self.topics.dead, err)
            self.producer.send(self.topics.dead, value=dead_letter(record, str(err), "alert"))
            self.metrics.dead.labels(record.topic).inc()
            return
        if body.kind == "scored":
            for alert in body.alerts:
                self.alerts_seen += 1
                if self.lifecycle.fire(alert):
                    self._publish([self.lifecycle.store.get(alert.id) or alert])
            if body.upto is not None:
                self._publish(self.lifecycle.block_added(body.upto))
        elif body.kind == "retract" and body.hash:
            self._publish(self.lifecycle.block_retracted(body.hash))

    def _poll(self) -> dict[Any, list[Any]]:
        batch: dict[Any, list[Any]] = self.consumer.poll(timeout_ms=500)
        self.last_contact = time.time()
        return batch

    def _settle(self, batch: dict[Any, list[Any]]) -> None:
        if batch:  # the store has the alerts (committed synchronously); now the offsets
            _retry("flush", lambda: self.producer.flush(timeout=60), self.metrics)
            _retry("commit", self.consumer.commit, self.metrics)
        self.metrics.update_lag(self.consumer)

    async def run(self) -> None:
        """Kafka I/O in worker threads; the lifecycle (and its live-stream listeners) on the event loop."""
        while True:
            try:
                batch = await asyncio.to_thread(self._poll)
                for records in batch.values():
                    for r in records:
                        self.metrics.messages.labels(r.topic, "in").inc()
                        self.handle(r)
                await asyncio.to_thread(self._settle, batch)
            except KafkaError as err:
                self.metrics.errors.labels("poll").inc()
                log.warning("kafka alert step failed (%s); retrying", err)
                await asyncio.sleep(0.5)

    def close(self) -> None:
        try:
            self.consumer.close(autocommit=False)
        finally:
            self.producer.close(timeout=10)


# -- replay through the group ----------------------------------------------------------------

class KafkaReplay:
    """Publishes blocks into the calls topic and collects what the detector group makes of them."""

    def __init__(self, bootstrap: str, topics: Topics, partitions: int, *, batch_txs: int = 2000,
                 max_bytes: int = 16 * 1024 * 1024, setup_wait: float = SETUP_WAIT) -> None:
        self.topics = topics
        self.partitions = partitions
        self.batch_txs = batch_txs
        self.run_id = uuid.uuid4().hex
        self.producer = producer(bootstrap, max_bytes, setup_wait)
        self.collector = consumer(bootstrap, None, max_bytes, setup_wait)
        tps = [TopicPartition(topics.findings, p) for p in range(partitions)]
        self.collector.assign(tps)
        ends = _retry("end_offsets", lambda: self.collector.end_offsets(tps), None)
        for tp in tps:
            self.collector.seek(tp, ends[tp])  # only what this run makes
        self.order: list[str] = []
        self._batches: list[list[Block]] = [[] for _ in range(partitions)]
        self._batch_txs = [0] * partitions
        self.published = 0

    def _flush_partition(self, p: int) -> None:
        if self._batches[p]:
            self.producer.send(self.topics.calls, value=encode_blocks(self._batches[p], self.run_id), partition=p)
            self.published += 1
            self._batches[p] = []
            self._batch_txs[p] = 0

    def publish(self, block: Block) -> None:
        self.order.extend(tx.hash for tx in block.transactions)
        for p, sub in enumerate(split_block(block, self.partitions)):
            if not sub.transactions:
                continue
            self._batches[p].append(sub)
            self._batch_txs[p] += len(sub.transactions)
            if self._batch_txs[p] >= self.batch_txs:
                self._flush_partition(p)

    def finish(self) -> None:
        for p in range(self.partitions):
            self._flush_partition(p)
            self.producer.send(self.topics.calls, value=encode_control("end", self.run_id), partition=p)
        self.producer.flush(timeout=300)

    def collect(self, timeout: float | None = None, on_wait: Callable[[float], None] | None = None
                ) -> tuple[list[dict[str, Any]], list[Alert]]:
        """Scores and alerts of this run, in chain order, once every partition has finished it."""
        scores: dict[str, dict[str, Any]] = {}
        alerts: dict[str, Alert] = {}
        ended: set[int] = set()
        started = last_progress = time.monotonic()
        while len(ended) < self.partitions:
            batch = _retry("poll", lambda: self.collector.poll(timeout_ms=500), None)
            for records in batch.values():
                for r in records:
                    try:
                        body = decode_findings(r.value)
                    except MessageError:
                        continue
                    if body.run != self.run_id:
                        continue
                    last_progress = time.monotonic()
                    if body.kind == "end":
                        ended.add(body.partition)
                    elif body.kind == "scored":
                        for s in body.scores:
                            scores[s["tx_hash"]] = s  # a redone message brings the same score again
                        for a in body.alerts:
                            alerts.setdefault(a.id, a)
            now = time.monotonic()
            if on_wait is not None and now - last_progress > 10:
                on_wait(now - started)
                last_progress = now
            if timeout is not None and now - started > timeout:
                raise TimeoutError(f"the detector group finished {len(ended)} of {self.partitions} partitions "
                                   f"in {timeout:.0f} s")
        rank = {h: i for i, h in enumerate(self.order)}
        ordered_scores = sorted(scores.values(), key=lambda s: rank.get(s["tx_hash"], len(rank)))
        block_end = {s["block_number"]: rank.get(s["tx_hash"], len(rank)) + 0.5 for s in ordered_scores}

        def place(a: Alert) -> tuple[float, str]:  # a wallet's alert (no transaction) after its block's
            return (rank.get(a.tx_hash, len(rank)) if a.tx_hash else block_end.get(a.block_number, len(rank)), a.id)

        return ordered_scores, sorted(alerts.values(), key=place)

    def close(self) -> None:
        self.collector.close()
        self.producer.close(timeout=10)


def write_jsonl(path: Path, items: Iterable[dict[str, Any]] | Iterable[Alert]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        for item in items:
            fh.write(orjson.dumps(item) + b"\n")
