"""Transports carry events between stages: the in-process one here, Kafka in :mod:`.kafka`.

A :class:`Transport` has named topics; ``publish`` waits when a topic's bounded queue is full
(backpressure reaches the producer, which then reads the node more slowly instead of growing
memory), and ``consume`` yields messages in publish order.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class Transport(Protocol):
    async def publish(self, topic: str, message: Any) -> None: ...

    def consume(self, topic: str) -> AsyncIterator[Any]: ...

    def depth(self, topic: str) -> int: ...


class InProcessTransport:
    """asyncio queues, one per topic, each bounded to ``queue_size`` messages."""

    def __init__(self, queue_size: int = 10_000, registry: CollectorRegistry | None = None) -> None:
        self.queue_size = queue_size
        self._queues: dict[str, asyncio.Queue[Any]] = {}
        if registry is not None:
            registry.register(_DepthCollector(self))

    def _queue(self, topic: str) -> asyncio.Queue[Any]:
        q = self._queues.get(topic)
        if q is None:
            q = self._queues[topic] = asyncio.Queue(maxsize=self.queue_size)
        return q

    async def publish(self, topic: str, message: Any) -> None:
        await self._queue(topic).put(message)

    async def consume(self, topic: str) -> AsyncIterator[Any]:
        q = self._queue(topic)
        while True:
            message = await q.get()
            try:
                yield message
            finally:
                q.task_done()

    def depth(self, topic: str) -> int:
        q = self._queues.get(topic)
        return q.qsize() if q is not None else 0

    def topics(self) -> list[str]:
        return sorted(self._queues)


class _DepthCollector(Collector):
    """Queue depths read at scrape time (a custom collector, no polling loop)."""

    def __init__(self, transport: InProcessTransport) -> None:
        self.transport = transport

    def collect(self) -> Any:
        g = GaugeMetricFamily(
            "chainsentry_transport_queue_depth", "Messages waiting in each in-process topic", labels=["topic"]
        )
        for topic in self.transport.topics():
            g.add_metric([topic], self.transport.depth(topic))
        yield g
