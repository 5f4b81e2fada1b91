"""The live pipeline: followers -> transport -> processing stage -> sinks, plus API and status.

Producers (the block follower, the mempool follower and a clock tick) publish into the
``chain`` topic of the transport; one processing task consumes it in order, turns block and
pending messages into lifecycle events with the :class:`PendingTracker`, hands every event to
the sinks (detection and the alert lifecycle, or the Kafka publisher of the ingest role), and only then commits the
follower's checkpoint, so a crash never skips a block that was not fully processed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import msgspec
import uvicorn
from prometheus_client import CollectorRegistry

from alerts.lifecycle import AlertLifecycle
from ingest import (
    BlockAdded,
    BlockFetcher,
    BlockFollower,
    BlockRecorder,
    BlockRetracted,
    ChainEvent,
    IngestMetrics,
    JsonCheckpoint,
    MempoolFollower,
    PendingTracker,
    PendingTx,
)

from .api import Learner, api_server
from .build import make_rpc
from .config import ConfigError, Secrets, Settings
from .delivery import Delivery
from .monitoring import MonitorBook
from .outfiles import cut_partial_line
from .transport import InProcessTransport

log = logging.getLogger(__name__)

BEHIND_LIMIT = 60.0  # seconds the node's head may stay below the last processed block before health fails


class EventSink(Protocol):
    async def handle(self, event: ChainEvent) -> None: ...

    async def close(self) -> None: ...


class JsonlEventSink:
    """Writes every chain event as one JSON line (``{"type": ..., ...}``), flushed per event."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        cut_partial_line(self.path)
        self._fh = open(self.path, "ab")  # noqa: SIM115 - closed in close()
        self._enc = msgspec.json.Encoder()

    async def handle(self, event: ChainEvent) -> None:
        self._fh.write(self._enc.encode(event) + b"\n")
        self._fh.flush()

    async def close(self) -> None:
        self._fh.close()


class BlockFileSink:
    """Writes the canonical chain as block JSONL (the recorder's file: a retracted block is cut
    off), so a run can be replayed and evaluated like any recording."""

    def __init__(self, path: str | Path) -> None:
        self._recorder = BlockRecorder(path, fsync=False)

    async def handle(self, event: ChainEvent) -> None:
        if isinstance(event, BlockAdded):
            self._recorder.write(event.block)
        elif isinstance(event, BlockRetracted):
            self._recorder.retract(event.number, event.hash)

    async def close(self) -> None:
        self._recorder.close()


@dataclass
class _Tick:
    now: float


@dataclass
class LiveStats:
    """What the status line and ``/status`` show."""

    started: float = field(default_factory=time.time)
    last_block: int | None = None
    blocks: int = 0
    txs: int = 0
    pending_seen: int = 0
    reorgs: int = 0
    retracted: int = 0
    _recent: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=600))

    def record_block(self, seen_at: float, transactions: int) -> None:
        self._recent.append((seen_at, transactions))

    def tx_rate(self, now: float, window: float = 30.0) -> float:
        while self._recent and self._recent[0][0] < now - window:
            self._recent.popleft()
        if not self._recent:
            return 0.0
        span = max(1.0, now - self._recent[0][0])
        return sum(n for _, n in self._recent) / span


class LivePipeline:
    """The ``run`` service in one process (see module docstring)."""

    def __init__(
        self,
        settings: Settings,
        secrets: Secrets,
        *,
        registry: CollectorRegistry | None = None,
        sinks: Sequence[EventSink] = (),
        serve_api: bool = True,
        delivery: Delivery | None = None,
        learner: Learner | None = None,
        monitors: MonitorBook | None = None,
    ) -> None:
        """``delivery``: the alert store, lifecycle and subscriptions the API serves (and whose
        worker runs alongside); ``learner`` carries analysts' verdicts to the detectors."""
        if not settings.rpc:
            raise ConfigError("no RPC URL: give --rpc URL or set rpc in the config file")
        self.settings = settings
        self.secrets = secrets
        self.registry = registry or CollectorRegistry()
        self.metrics = IngestMetrics(self.registry)
        self.sinks = list(sinks)
        self.serve_api = serve_api
        self.stats = LiveStats()
        self.transport = InProcessTransport(settings.transport.queue_size, self.registry)
        self.rpc = make_rpc(settings, self.metrics)
        ing = settings.ingest
        self.fetcher = BlockFetcher(self.rpc, traces=ing.traces, receipts=ing.receipts)
        self.tracker = PendingTracker(ttl=ing.pending_ttl, max_tracked=ing.max_pending)
        self.follower: BlockFollower | None = None
        self.chain_id: int | None = None
        self.api_server: uvicorn.Server | None = None
        self.api_port: int | None = None
        self.delivery = delivery
        self.lifecycle: AlertLifecycle | None = delivery.lifecycle if delivery is not None else None
        self.learner = learner
        self.monitors = monitors  # the MonitorBook the API serves

    # -- status ----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        now = time.time()
        f = self.follower
        head = f.head if f else None
        contact = f.last_contact if f else None
        stale_after = 30.0 + 3 * self.settings.ingest.poll_interval
        # a node that answers its head but not usable blocks is as bad as no node: blocks wait
        failing = f is not None and f.failures >= 3
        behind = f is not None and f.behind_since is not None and now - f.behind_since > BEHIND_LIMIT
        healthy = contact is not None and now - contact < stale_after and not failing and not behind
        error = f.last_error if f is not None else None
        if behind and f is not None and f.tracker.last is not None:
            error = (f"the node's head {head} has been below block {f.tracker.last.number}, already processed, "
                     f"for {now - (f.behind_since or now):.0f} s: a lagging node, or another or a reset chain "
                     "(then move the checkpoint away)")
        last = self.stats.last_block
        return {
            "healthy": healthy,
            "chain_id": self.chain_id,
            "head": head,
            "last_block": last,
            "lag": (head - last) if head is not None and last is not None else None,
            "tx_per_s": round(self.stats.tx_rate(now), 2),
            "pending": len(self.tracker),
            "reorgs": self.stats.reorgs,
            "blocks": self.stats.blocks,
            "transactions": self.stats.txs,
            "node_contact_age_s": round(now - contact, 3) if contact is not None else None,
            "traces": self.fetcher.trace_mode,
            "ingest_error": error,
            "uptime_s": round(now - self.stats.started, 1),
        }

    def status_line(self) -> str:
        s = self.status()
        def show(v: object) -> str:
            return "-" if v is None else str(v)

        health = "ok" if s["healthy"] else f"NODE FAILING: {s['ingest_error'] or 'unreachable'}"
        return (
            f"head {show(s['head'])} | block {show(s['last_block'])}"
            f" | lag {show(s['lag'])} | {s['tx_per_s']:.1f} tx/s | pending {s['pending']}"
            f" | reorgs {s['reorgs']} | {health}"
        )

    # -- tasks -----------------------------------------------------------------------------

    async def _produce_blocks(self) -> None:
        assert self.follower is not None
        async for event in self.follower.events():
            await self.transport.publish("chain", event)
            await asyncio.sleep(0)  # mapping a fetched batch must not hold the loop either

    async def _produce_pending(self) -> None:
        mempool = MempoolFollower(
            self.rpc, ws_url=self.settings.ws, poll_interval=min(1.0, self.settings.ingest.poll_interval),
            metrics=self.metrics, trace_pending=self.settings.ingest.trace_pending,
        )
        async for ptx in mempool.pending():
            await self.transport.publish("chain", ptx)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            await self.transport.publish("chain", _Tick(time.time()))

    async def _emit(self, events: Sequence[ChainEvent]) -> None:
        for event in events:
            for sink in self.sinks:
                await sink.handle(event)
            name = type(event).__name__
            if name.startswith("Pending"):
                self.metrics.pending_events.labels(name[len("Pending") :].lower()).inc()

    async def _process(self) -> None:
        assert self.follower is not None
        async for msg in self.transport.consume("chain"):
            if isinstance(msg, BlockAdded):
                block = msg.block
                self.stats.blocks += 1
                self.stats.txs += len(block.transactions)
                self.stats.last_block = block.number
                self.stats.record_block(msg.seen_at, len(block.transactions))
                await self._emit([msg, *self.tracker.block(block, msg.seen_at)])
                self.follower.commit(msg)
                await asyncio.sleep(0)  # a backlog (catch-up) must not starve the API and health probes
            elif isinstance(msg, BlockRetracted):
                self.stats.retracted += 1
                self.stats.reorgs = self.follower.reorgs
                self.stats.last_block = msg.number - 1
                await self._emit([msg])
                self.follower.commit(msg)
            elif isinstance(msg, PendingTx):
                events = self.tracker.seen(msg)
                if events:
                    self.stats.pending_seen += 1
                await self._emit(events)
            elif isinstance(msg, _Tick):
                await self._emit(self.tracker.expire(msg.now))
            self.metrics.pending_tracked.set(len(self.tracker))

    async def _status_printer(self, out: Callable[[str], None], every: float) -> None:
        while True:
            await asyncio.sleep(every)
            out(self.status_line())

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect to the node and build the follower (raises if the node is unreachable)."""
        chain_hex = await self.rpc.call("eth_chainId")
        self.chain_id = int(chain_hex, 16)
        ing = self.settings.ingest
        checkpoint = JsonCheckpoint(self.settings.data_dir / f"checkpoint-{self.chain_id}.json", chain_id=self.chain_id)
        checkpoint.load()  # refuse a corrupt or foreign checkpoint before anything starts
        self.follower = BlockFollower(
            self.fetcher,
            confirmations=ing.confirmations,
            start=ing.start_block,
            checkpoint=checkpoint,
            batch_size=ing.batch_size,
            poll_interval=ing.poll_interval,
            ws_url=self.settings.ws,
            metrics=self.metrics,
            auto_commit=False,
        )

    async def run(
        self,
        *,
        duration: float | None = None,
        status_out: Callable[[str], None] | None = None,
        status_every: float = 1.0,
        ready: Callable[[LivePipeline], None] | None = None,
    ) -> None:
        await self.start()
        tasks = [
            asyncio.create_task(self._produce_blocks(), name="blocks"),
            asyncio.create_task(self._process(), name="process"),
            asyncio.create_task(self._tick(), name="tick"),
        ]
        if self.settings.ingest.mempool:
            tasks.append(asyncio.create_task(self._produce_pending(), name="mempool"))
        if self.serve_api:
            self.api_server, sock = api_server(self.settings, self.secrets, self.registry, self.status,
                                               self.delivery, self.learner, self.monitors)
            self.api_port = sock.getsockname()[1]
            tasks.append(asyncio.create_task(self.api_server.serve(sockets=[sock]), name="api"))
        if status_out is not None:
            tasks.append(asyncio.create_task(self._status_printer(status_out, status_every), name="status"))
        if self.delivery is not None:
            tasks.append(asyncio.create_task(self.delivery.run_forever(), name="delivery"))
        if ready is not None:
            ready(self)
        try:
            done, _ = await asyncio.wait(tasks, timeout=duration, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
                if task.get_name() == "api":
                    raise RuntimeError(f"the API server on {self.settings.api} stopped (is the port in use?)")
        finally:
            if self.api_server is not None:
                self.api_server.should_exit = True
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            for sink in self.sinks:
                await sink.close()
            await self.rpc.aclose()
