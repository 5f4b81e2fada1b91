"""Signed webhook delivery from the persistent outbox.

Each POST carries the alert JSON and the headers of ARCHITECTURE.md:
``X-Chainsentry-Timestamp``, ``X-Chainsentry-Signature: sha256=<hex HMAC-SHA256 of
"{timestamp}.{body}">``, ``X-Chainsentry-Delivery`` (unique per attempt) and ``Idempotency-Key``
(alert id + status). Delivery is at least once: 2xx marks the item delivered; timeouts, refused
connections, 429 (honouring ``Retry-After``) and 5xx are retried with exponential backoff and
jitter; other 4xx and the attempt limit send it to the dead letters. The secret is never logged.

Each attempt is bounded as a whole (connect, send, answer: ``DeliveryPolicy.timeout``), and of
the receiver's answer only the status, ``Retry-After`` and at most ``MAX_RESPONSE_BYTES`` are
read. Each subscription is delivered in its own lane: a receiver that hangs or trickles its answer
holds only its own lane, never another subscription's deliveries.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import random
import socket
import time
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from ingest.errors import UserError

from .store import AlertStore, OutboxItem
from .subscriptions import SubscriptionBook
from .targets import guarded_client, non_public

log = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 64 * 1024  # of a receiver's answer body, read only so the connection can be reused


class WebhookConfigError(UserError, ValueError):
    """A webhook target or secret that must not be used."""


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header value for ``body`` sent at ``timestamp``.

    >>> sign("s3cret", "1700000000", b'{"id":"x"}')[:15]
    'sha256=2382c1d0'
    """
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """What a receiver does: recompute and compare in constant time."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def check_target(url: str, *, allow_private: bool) -> None:
    """Refuse a URL that is not http(s), or whose host resolves to an address that is not public
    (:mod:`alerts.targets`), unless ``allow_private``: a webhook must not become a way into the
    internal network. Deliveries check the address again at every connection."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookConfigError(f"webhook URL {url!r} is not an http(s) URL")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    except socket.gaierror as err:
        raise WebhookConfigError(f"webhook host {parts.hostname!r} does not resolve: {err}") from None
    bad = non_public(str(info[4][0]) for info in infos)
    if bad is not None:
        raise WebhookConfigError(
            f"webhook host {parts.hostname} resolves to {bad}, not a public address; "
            "allow private targets explicitly (--webhook-allow-private) if that is intended")


def check_secret(secret: str | None) -> str:
    if not secret:
        raise WebhookConfigError("the webhook secret is empty: set CHAINSENTRY_WEBHOOK_SECRET")
    return secret


@dataclass(frozen=True)
class DeliveryPolicy:
    attempts: int = 8
    backoff: float = 1.0
    backoff_max: float = 300.0
    timeout: float = 10.0
    retry_after_max: float = 3600.0


class DeliveryWorker:
    """Delivers due outbox items for one subscription's secret; run :meth:`run` or :meth:`drain`."""

    def __init__(self, store: AlertStore, secret: str | None, *, policy: DeliveryPolicy | None = None,
                 seed: int | None = None, on_outcome: object = None, concurrency: int = 8,
                 unsigned: frozenset[str] = frozenset(), book: SubscriptionBook | None = None,
                 allow_private: bool = False) -> None:
        """``unsigned``: subscriptions that get no HMAC headers (chat and paging channels, which
        authenticate by their URL or key); every other delivery is signed with ``secret``. With a
        ``book``, each subscription's own secret, kind and rate limit come from it. Deliveries
        connect only to public addresses unless ``allow_private`` (the operator's choice for the
        whole service) or the subscription's own ``allow_private`` (config file only)."""
        self.store = store
        self.book = book
        self.throttled = 0  # deliveries pushed back by a subscription's rate limit
        self._buckets: dict[str, list[float]] = {}  # subscription -> [tokens, last refill (monotonic)]
        self.concurrency = concurrency
        self.unsigned = unsigned
        self._secret = secret
        self.policy = policy or DeliveryPolicy()
        self._rng = random.Random(seed)
        self.allow_private = allow_private
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=32)
        self._http = guarded_client(timeout=httpx.Timeout(self.policy.timeout), limits=limits)
        self._http_private = httpx.AsyncClient(timeout=httpx.Timeout(self.policy.timeout), limits=limits)
        self.outcomes: dict[str, int] = {}
        self._on_outcome = on_outcome
        self._batch_ok: list[int] = []
        self._batch_retry: list[tuple[int, float, str]] = []
        self._batch_dead: list[tuple[int, str]] = []

    def __repr__(self) -> str:  # never show the secret
        return f"DeliveryWorker(store={self.store.path!r}, policy={self.policy})"

    async def aclose(self) -> None:
        await self._http.aclose()
        await self._http_private.aclose()

    def _client(self, subscription: str) -> httpx.AsyncClient:
        sub = self.book.get(subscription) if self.book is not None else None
        private = self.allow_private or (sub is not None and sub.allow_private)
        return self._http_private if private else self._http

    def _count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        if callable(self._on_outcome):
            self._on_outcome(outcome)

    def _delay(self, attempt: int) -> float:
        base = min(self.policy.backoff_max, self.policy.backoff * 2 ** max(0, attempt - 1))
        return float(base * (0.5 + self._rng.random()))

    def _settle(self) -> None:
        if self._batch_ok or self._batch_retry or self._batch_dead:
            self.store.settle(self._batch_ok, self._batch_retry, self._batch_dead)
            self._batch_ok, self._batch_retry, self._batch_dead = [], [], []

    async def deliver_one(self, item: OutboxItem) -> None:
        """Attempt ``item`` once; its outcome is recorded with the batch (see :meth:`drain`)."""
        headers = {"content-type": "application/json"}
        book = self.book
        if item.subscription not in self.unsigned and (book is None or book.signed(item.subscription)):
            ts = str(int(time.time()))
            secret = book.secret_for(item.subscription) if book is not None else self._secret
            if not secret:  # never sent unsigned; waits (and says why) until a secret is configured
                self._fail(item, "no secret to sign with: set CHAINSENTRY_WEBHOOK_SECRET", "no_secret", None)
                return
            headers["X-Chainsentry-Timestamp"] = ts
            headers["X-Chainsentry-Signature"] = sign(secret, ts, item.body)
            headers["X-Chainsentry-Delivery"] = str(uuid.uuid4())
            headers["Idempotency-Key"] = f"{item.alert_id}:{item.alert_status}"
        retry_after: float | None = None
        try:
            status, retry_header = await asyncio.wait_for(self._post(item, headers), self.policy.timeout)
        except (TimeoutError, httpx.TimeoutException):
            error, outcome = "timeout", "timeout"
        except httpx.TransportError as err:
            if str(err).startswith("target refused"):  # not a public address: no retry can fix that
                self._batch_dead.append((item.seq, str(err)))
                self._count("refused")
                log.warning("webhook %s: %s; dead-lettered", item.subscription, err)
                return
            error, outcome = f"connection failed: {type(err).__name__}", "connection_error"
        else:
            if 200 <= status < 300:
                self._batch_ok.append(item.seq)
                self._count("delivered")
                return
            error = f"HTTP {status}"
            if status == 429:
                outcome = "rate_limited"
                try:
                    retry_after = min(float(retry_header or ""), self.policy.retry_after_max)
                except ValueError:
                    retry_after = None
            elif status >= 500:
                outcome = "server_error"
            else:
                self._batch_dead.append((item.seq, error))
                self._count("rejected")
                log.warning("webhook %s refused alert %s (%s): dead-lettered", item.subscription, item.alert_id, error)
                return
        self._fail(item, error, outcome, retry_after)

    def _fail(self, item: OutboxItem, error: str, outcome: str, retry_after: float | None) -> None:
        """A failed attempt: retried with backoff, or dead-lettered once the attempts are spent."""
        attempt = item.attempts + 1
        if attempt >= self.policy.attempts:
            self._batch_dead.append((item.seq, error))
            self._count("dead_letter")
            log.warning("webhook %s: alert %s dead-lettered after %d attempts (%s)", item.subscription,
                        item.alert_id, attempt, error)
            return
        delay = retry_after if retry_after is not None else self._delay(attempt)
        self._batch_retry.append((item.seq, time.time() + delay, error))
        self._count(outcome)

    async def _post(self, item: OutboxItem, headers: dict[str, str]) -> tuple[int, str | None]:
        """POST ``item``; the answer's status and ``Retry-After`` (its body: at most a small prefix)."""
        async with self._client(item.subscription).stream("POST", item.url, content=item.body,
                                                          headers=headers) as resp:
            read = 0
            async for chunk in resp.aiter_raw():
                read += len(chunk)
                if read > MAX_RESPONSE_BYTES:
                    break  # the connection is closed rather than drained
            return resp.status_code, resp.headers.get("retry-after")

    def _admit(self, items: list[OutboxItem]) -> list[OutboxItem]:
        """Apply each subscription's rate limit (a token bucket): items over it are pushed back to
        when a token will be there, without counting an attempt."""
        if self.book is None:
            return items
        now = time.monotonic()
        admitted: list[OutboxItem] = []
        deferred: list[tuple[int, float]] = []
        waiting: dict[str, int] = {}
        for item in items:
            sub = self.book.get(item.subscription)
            limits = sub.limits() if sub is not None else None
            if limits is None:
                admitted.append(item)
                continue
            rate, burst = limits
            bucket = self._buckets.setdefault(item.subscription, [float(burst), now])
            bucket[0] = min(float(burst), bucket[0] + (now - bucket[1]) * rate)
            bucket[1] = now
            if bucket[0] >= 1.0:
                bucket[0] -= 1.0
                admitted.append(item)
            else:
                wait = (1.0 - bucket[0]) / rate
                # keep the order: the n-th waiting item of a subscription waits n more tokens
                waiting[item.subscription] = n = waiting.get(item.subscription, -1) + 1
                deferred.append((item.seq, time.time() + wait + n / rate))
        if deferred:
            self.throttled += len(deferred)
            self.store.defer(deferred)
        return admitted

    async def drain(self, *, max_wait: float | None = None) -> None:
        """Deliver until nothing is pending (every item delivered or dead-lettered), or ``max_wait``
        seconds have passed (deliveries still in flight are then abandoned: they stay pending)."""
        started = time.monotonic()
        lanes: dict[str, asyncio.Task[None]] = {}
        try:
            while True:
                self._launch(lanes)
                nxt = self.store.next_due()
                if nxt is None and not lanes:
                    return
                pause = 1.0 if nxt is None else min(1.0, max(0.05 if lanes else 0.01, nxt - time.time()))
                if max_wait is not None:
                    remaining = max_wait - (time.monotonic() - started)
                    if remaining <= 0:
                        return
                    pause = min(pause, remaining)
                await self._wait(lanes, pause)
        finally:
            await self._stop(lanes)

    async def run(self) -> None:
        """Deliver forever (the live service), polling the outbox."""
        lanes: dict[str, asyncio.Task[None]] = {}
        try:
            while True:
                self._launch(lanes)
                await self._wait(lanes, 0.2)
        finally:
            await self._stop(lanes)

    def _launch(self, lanes: dict[str, asyncio.Task[None]]) -> None:
        """Start a lane for each subscription with due items that has none running."""
        items = self._admit(self.store.due(time.time(), limit=max(100, 4 * self.concurrency), exclude=lanes.keys()))
        groups: dict[str, list[OutboxItem]] = {}
        for item in items:
            groups.setdefault(item.subscription, []).append(item)
        for name, group in groups.items():
            lanes[name] = asyncio.create_task(self._lane(group), name=f"deliver:{name}")

    async def _lane(self, items: list[OutboxItem]) -> None:
        """One subscription's due items, in order, ``concurrency`` at a time."""
        for start in range(0, len(items), self.concurrency):
            await asyncio.gather(*(self.deliver_one(i) for i in items[start : start + self.concurrency]))

    async def _wait(self, lanes: dict[str, asyncio.Task[None]], pause: float) -> None:
        """Wait until a lane ends or ``pause`` passes; record the outcomes so far."""
        if lanes:
            await asyncio.wait(lanes.values(), timeout=pause, return_when=asyncio.FIRST_COMPLETED)
        else:
            await asyncio.sleep(pause)
        for name, task in list(lanes.items()):
            if task.done():
                del lanes[name]
                task.result()  # a bug in a lane is raised, not swallowed
        self._settle()

    async def _stop(self, lanes: dict[str, asyncio.Task[None]]) -> None:
        for task in lanes.values():
            task.cancel()
        for task in lanes.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._settle()
