"""The Kafka transport: topics, message envelopes, and the producer and consumers the roles use.

Topics, for chain ``<c>`` under the prefix ``<p>`` (default ``chainsentry``):

``<p>.<c>.calls``     ingest -> detect. Blocks split by state key (the contract called; see
                      :mod:`.sharding`): a message holds, for one partition, the transactions of one
                      or more consecutive blocks that belong to it, in chain order. Also pending
                      transactions, reorg retractions and a replay's end marker.
``<p>.<c>.findings``  detect -> alert. Per processed message: scores, alerts (JSON of the alert
                      contract), the last block seen; retractions and end markers passed on.
``<p>.<c>.alerts``    alert -> anyone: each alert status change, keyed by alert id.
``<p>.<c>.state``     compacted; partition ``n`` holds the detector state of calls partition ``n``
                      with the calls offset it corresponds to (the restore point of a new owner).
``<p>.<c>.dead``      messages that could not be used, with the reason.

Every message is JSON with a schema version ``v``; a message of another version, or one that
does not decode, goes to the dead-letter topic and the worker goes on. Producers use acks=all
and idempotence.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import msgspec
import orjson
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.structs import TopicPartition
from prometheus_client import CollectorRegistry, Counter, Gauge

from alerts.model import Alert
from ingest.errors import UserError
from ingest.events import Block, Tx

log = logging.getLogger(__name__)
T = TypeVar("T")

SCHEMA_VERSION = 1

SETUP_WAIT = 120.0
"""Seconds a role or a replay waits for an unreachable broker while it sets up, before it gives up
with :class:`KafkaSetupError` (once set up, a lost broker is waited for without limit)."""


class MessageError(ValueError):
    """A message that cannot be used (malformed, unknown kind or version)."""


class KafkaSetupError(UserError, RuntimeError):
    """Topics that exist with another shape, or a broker that cannot be reached."""


@dataclass(frozen=True)
class Topics:
    calls: str
    findings: str
    alerts: str
    state: str
    dead: str

    @classmethod
    def of(cls, prefix: str, chain_id: int) -> Topics:
        base = f"{prefix}.{chain_id}"
        return cls(f"{base}.calls", f"{base}.findings", f"{base}.alerts", f"{base}.state", f"{base}.dead")


# -- envelopes -----------------------------------------------------------------------------

class _CallsMessage(msgspec.Struct, frozen=True):
    v: int
    kind: str
    run: str | None = None
    blocks: list[Block] = []
    txs: list[Tx] = []
    seen: float | None = None
    hash: str | None = None


_calls_decoder = msgspec.json.Decoder(_CallsMessage)
_encoder = msgspec.json.Encoder()


def encode_blocks(blocks: list[Block], run: str | None = None) -> bytes:
    return _encoder.encode(_CallsMessage(SCHEMA_VERSION, "blocks", run, blocks=blocks))


def encode_pending(txs: list[Tx], seen: float) -> bytes:
    return _encoder.encode(_CallsMessage(SCHEMA_VERSION, "pending", txs=txs, seen=seen))


def encode_control(kind: str, run: str | None = None, hash: str | None = None) -> bytes:
    """A ``retract`` (reorg: block ``hash``) or ``end`` (a replay ``run`` is complete) marker."""
    return _encoder.encode(_CallsMessage(SCHEMA_VERSION, kind, run, hash=hash))


def _envelope(value: bytes | None) -> dict[str, Any]:
    """The message as JSON, once its schema version is checked."""
    if value is None:
        raise MessageError("empty message")
    try:
        body = orjson.loads(value)
    except orjson.JSONDecodeError as err:
        raise MessageError(f"not JSON: {err}") from None
    if not isinstance(body, dict) or "v" not in body:
        raise MessageError("no schema version 'v'")
    if body["v"] != SCHEMA_VERSION:
        raise MessageError(f"schema version {body['v']!r}; this build reads {SCHEMA_VERSION}")
    return body


def decode_calls(value: bytes | None) -> _CallsMessage:
    head = _envelope(value)
    assert value is not None  # _envelope refuses None
    if head.get("kind") not in ("blocks", "pending", "retract", "end"):
        raise MessageError(f"unknown kind {head.get('kind')!r}")
    try:
        return _calls_decoder.decode(value)  # typed: blocks and transactions as structs
    except msgspec.ValidationError as err:
        raise MessageError(f"invalid {head['kind']} message: {err}") from None


class Findings(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A detect worker's output for one calls message, on the findings topic: ``scored`` (the
    scores and alerts of a batch, ``upto`` its highest block), ``retract`` (block ``hash``) or
    ``end`` (the partition finished replay ``run``)."""

    v: int  # SCHEMA_VERSION, always written
    kind: Literal["scored", "retract", "end"]
    partition: int
    run: str | None = None
    upto: int | None = None
    hash: str | None = None
    scores: list[dict[str, Any]] = msgspec.field(default_factory=list)  # the rows of --scores
    alerts: list[Alert] = msgspec.field(default_factory=list)


_findings_decoder = msgspec.json.Decoder(Findings)


def encode_findings(msg: Findings) -> bytes:
    return _encoder.encode(msg)


def decode_findings(value: bytes | None) -> Findings:
    head = _envelope(value)
    assert value is not None  # _envelope refuses None
    if head.get("kind") not in ("scored", "retract", "end"):
        raise MessageError(f"unknown kind {head.get('kind')!r}")
    try:
        return _findings_decoder.decode(value)
    except msgspec.ValidationError as err:
        raise MessageError(f"invalid {head['kind']} message: {err}") from None


def dead_letter(record: Any, reason: str, role: str) -> bytes:
    """What goes to the dead-letter topic: where the message was, why, and the message itself."""
    value = record.value or b""
    return orjson.dumps({"v": SCHEMA_VERSION, "reason": reason, "role": role, "topic": record.topic,
                         "partition": record.partition, "offset": record.offset, "time": time.time(),
                         "value_b64": base64.b64encode(value[:1_000_000]).decode()})


# -- metrics -------------------------------------------------------------------------------

class KafkaMetrics:
    def __init__(self, registry: CollectorRegistry, role: str) -> None:
        self.role = role
        self.lag = Gauge("kafka_consumer_lag", "Messages behind the end of each assigned partition",
                         ["topic", "partition"], namespace="chainsentry", registry=registry)
        self.messages = Counter("kafka_messages", "Messages consumed and produced", ["topic", "direction"],
                                namespace="chainsentry", registry=registry)
        self.rebalances = Counter("kafka_rebalances", "Partition assignments and revocations", ["event"],
                                  namespace="chainsentry", registry=registry)
        self.dead = Counter("kafka_dead_letters", "Messages sent to the dead-letter topic", ["topic"],
                            namespace="chainsentry", registry=registry)
        self.errors = Counter("kafka_errors", "Kafka operations that failed and were retried", ["operation"],
                              namespace="chainsentry", registry=registry)

    def update_lag(self, consumer: KafkaConsumer) -> None:
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            if high is None:
                continue
            try:
                pos = consumer.position(tp, timeout_ms=1000)
            except (KafkaError, AssertionError):
                continue
            if pos is not None:
                self.lag.labels(tp.topic, str(tp.partition)).set(max(0, high - pos))

    def forget(self, tps: Iterable[TopicPartition]) -> None:
        for tp in tps:
            with contextlib.suppress(KeyError):
                self.lag.remove(tp.topic, str(tp.partition))


# -- clients -------------------------------------------------------------------------------

def _reach(bootstrap: str, what: str, make: Callable[[int], T], wait: float, deadline: float | None = None) -> T:
    """``make(bootstrap_timeout_ms)`` a client, retrying while the broker cannot be reached, for
    ``wait`` seconds at most (or until ``deadline``); each attempt waits up to 10 s of it, so a
    long wait is logged every 10 s."""
    deadline = time.monotonic() + wait if deadline is None else deadline
    while True:
        left = deadline - time.monotonic()
        try:
            return make(int(1000 * min(10.0, max(1.0, left))))
        except (KafkaError, OSError) as err:
            if time.monotonic() >= deadline:
                raise KafkaSetupError(f"cannot reach Kafka at {bootstrap} ({what}) for {wait:g} s: {err}") from None
            log.warning("kafka %s: cannot reach %s yet (%s); retrying", what, bootstrap, err)
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))


def producer(bootstrap: str, max_bytes: int, wait: float = SETUP_WAIT) -> KafkaProducer:
    return _reach(bootstrap, "producer", lambda ms: KafkaProducer(
        bootstrap_servers=bootstrap.split(","), bootstrap_timeout_ms=ms, acks="all", enable_idempotence=True,
        max_request_size=max_bytes, linger_ms=5, retries=2**31 - 1, delivery_timeout_ms=300_000,
        max_block_ms=300_000, request_timeout_ms=30_000, reconnect_backoff_max_ms=2000), wait)


def consumer(bootstrap: str, group: str | None, max_bytes: int, wait: float = SETUP_WAIT,
             **extra: Any) -> KafkaConsumer:
    return _reach(bootstrap, "consumer", lambda ms: KafkaConsumer(
        bootstrap_servers=bootstrap.split(","), bootstrap_timeout_ms=ms, group_id=group, enable_auto_commit=False,
        auto_offset_reset="earliest", max_partition_fetch_bytes=max_bytes,
        fetch_max_bytes=max(max_bytes, 52_428_800), session_timeout_ms=6000, heartbeat_interval_ms=1000,
        max_poll_interval_ms=600_000, reconnect_backoff_max_ms=2000, request_timeout_ms=30_000, **extra), wait)


def ensure_topics(bootstrap: str, topics: Topics, partitions: int, max_bytes: int, wait: float = SETUP_WAIT) -> None:
    """Create the topics if missing; refuse existing ones with another partition count. A broker
    that cannot be reached, or goes away meanwhile, is retried for ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while True:
        try:
            described = _ensure_topics_once(bootstrap, topics, partitions, max_bytes, deadline, wait)
            break
        except KafkaError as err:
            if not err.retriable:  # the broker answered, and said no: waiting would not change it
                raise KafkaSetupError(f"Kafka at {bootstrap} refused the topics: {err}") from None
            if time.monotonic() >= deadline:
                raise KafkaSetupError(f"cannot reach Kafka at {bootstrap} (topics) for {wait:g} s: {err}") from None
            log.warning("kafka topics: %s; retrying", err)
            time.sleep(1)
    for name, (have, want) in described.items():
        if have is not None and have != want:
            raise KafkaSetupError(f"topic {name} has {have} partitions; this configuration needs "
                                  f"{want} (transport.partitions)")


def _ensure_topics_once(bootstrap: str, topics: Topics, partitions: int, max_bytes: int,
                        deadline: float, wait: float) -> dict[str, tuple[int | None, int]]:
    admin = _reach(bootstrap, "admin", lambda ms: KafkaAdminClient(
        bootstrap_servers=bootstrap.split(","), bootstrap_timeout_ms=ms, request_timeout_ms=10_000),
        wait, deadline)
    big = {"max.message.bytes": str(max_bytes)}
    wanted = [
        NewTopic(topics.calls, partitions, 1, topic_configs=big),
        NewTopic(topics.findings, partitions, 1, topic_configs=big),
        NewTopic(topics.alerts, partitions, 1),
        NewTopic(topics.state, partitions, 1, topic_configs={
            **big, "cleanup.policy": "compact", "segment.ms": "60000", "min.cleanable.dirty.ratio": "0.1"}),
        NewTopic(topics.dead, 1, 1, topic_configs=big),
    ]
    try:
        for t in wanted:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics([t])
        while True:  # a topic another role has just created may show no partitions for a moment
            described = {d.get("name", d.get("topic")): len(d["partitions"])
                         for d in admin.describe_topics([t.name for t in wanted])}
            if all(described.get(t.name) for t in wanted) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    finally:
        admin.close()
    return {t.name: (described.get(t.name), t.num_partitions) for t in wanted}


def chains_with_calls(bootstrap: str, prefix: str, wait: float = SETUP_WAIT) -> list[int]:
    """The chains that have a ``<prefix>.<chain>.calls`` topic on the broker, sorted."""
    admin = _reach(bootstrap, "admin", lambda ms: KafkaAdminClient(
        bootstrap_servers=bootstrap.split(","), bootstrap_timeout_ms=ms, request_timeout_ms=10_000), wait)
    try:
        names = admin.list_topics()
    finally:
        admin.close()
    pattern = re.compile(re.escape(prefix) + r"\.(\d+)\.calls")
    return sorted(int(m.group(1)) for name in names if (m := pattern.fullmatch(name)))


def discover_chain(bootstrap: str, prefix: str, *, wait: float = SETUP_WAIT, give_up: Callable[[], bool],
                   every: float = 10.0) -> int | None:
    """The one chain whose calls topic exists, waiting (and saying so every ``every`` seconds) until
    an ingest role or a Kafka replay creates it; None if ``give_up()`` first. Several chains
    are a :class:`KafkaSetupError`: the role cannot guess which one it is for."""
    said = 0.0
    while not give_up():
        chains = chains_with_calls(bootstrap, prefix, wait)
        if len(chains) == 1:
            log.info("kafka: chain %d found (topic %s.%d.calls)", chains[0], prefix, chains[0])
            return chains[0]
        if chains:
            raise KafkaSetupError(f"topics of several chains ({', '.join(map(str, chains))}) have the prefix "
                                  f"{prefix!r}: give --chain-id")
        if time.monotonic() - said >= every:
            said = time.monotonic()
            log.warning("kafka: no %s.<chain>.calls topic yet: waiting for an ingest role or a Kafka replay to "
                        "create it (or give --chain-id)", prefix)
        time.sleep(0.5)
    return None


class KafkaTransport:
    """The :class:`chainsentry.transport.Transport` interface over Kafka: ``publish`` with a key
    (the partition follows the key as Kafka's default partitioner places it) and ``consume`` as a
    consumer group member."""

    def __init__(self, bootstrap: str, group: str, max_bytes: int = 16 * 1024 * 1024) -> None:
        self.bootstrap = bootstrap
        self.group = group
        self.max_bytes = max_bytes
        self._producer: KafkaProducer | None = None

    async def publish(self, topic: str, message: bytes, key: bytes | None = None) -> None:
        import asyncio

        if self._producer is None:
            self._producer = producer(self.bootstrap, self.max_bytes)
        fut = self._producer.send(topic, value=message, key=key)
        await asyncio.to_thread(fut.get, 300)

    async def consume(self, topic: str) -> AsyncIterator[bytes]:
        import asyncio

        c = consumer(self.bootstrap, self.group, self.max_bytes)
        c.subscribe([topic])
        try:
            while True:
                batch = await asyncio.to_thread(c.poll, 500)
                for records in batch.values():
                    for r in records:
                        yield r.value
                if batch:
                    await asyncio.to_thread(c.commit)
        finally:
            c.close()

    def depth(self, topic: str) -> int:
        return 0  # the consumer lag metric tells this for Kafka

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close()
