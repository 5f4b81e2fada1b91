"""A lean asynchronous JSON-RPC client: HTTP with batching, retries and failover; WS subscriptions.

Why not web3.py for this path: bulk fetching (a block, its receipts and its traces, for ranges of
blocks) is dominated by JSON decoding and per-request overhead. This client sends one HTTP batch
per range and decodes with orjson into plain dicts that the pure mappers turn into events; web3.py
builds AttributeDicts and HexBytes for every field and has no batch helper for receipts and traces.
``benchmarks/bench_ingest.py`` measures both on the same node (numbers in benchmarks/README.md).

Errors are types, not strings: :class:`TransientRpcError` (timeouts, refused connections, HTTP 429
and 5xx, malformed answers, "try later" JSON-RPC errors) are retried with exponential backoff and
jitter, rotating through the configured URLs; :class:`PermanentRpcError` (method not found,
invalid params, HTTP 4xx) are raised at once.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import orjson
import websockets

from . import deepjson
from .errors import UserError

log = logging.getLogger(__name__)


class RpcError(UserError):
    """Any failure of a JSON-RPC request."""

    def __init__(self, message: str, *, method: str | None = None, endpoint: str | None = None) -> None:
        self.method = method
        self.endpoint = endpoint
        where = f" ({method} @ {endpoint})" if method and endpoint else f" ({method})" if method else ""
        super().__init__(message + where)


class TransientRpcError(RpcError):
    """Worth retrying: the node or the network may answer later."""


class PermanentRpcError(RpcError):
    """Retrying will not help: the request is wrong or the node lacks the method."""


class RateLimitedError(TransientRpcError):
    """HTTP 429; ``retry_after`` is the seconds the server asked for, if it said."""

    def __init__(self, message: str, retry_after: float | None, **kw: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kw)


class MalformedResponseError(TransientRpcError):
    """The answer is not valid JSON-RPC (bad JSON, wrong shape, missing id)."""


class RpcResponseError(RpcError):
    """A JSON-RPC error object; ``code`` and ``data`` as the node sent them."""

    code: int

    def __init__(self, code: int, message: str, data: object = None, **kw: Any) -> None:
        self.code = code
        self.data = data
        super().__init__(f"JSON-RPC error {code}: {message}", **kw)


class TransientResponseError(RpcResponseError, TransientRpcError):
    """A JSON-RPC error that means "later" (rate limit, node syncing, header not found yet)."""


class PermanentResponseError(RpcResponseError, PermanentRpcError):
    """A JSON-RPC error that retrying cannot fix."""


class MethodNotSupportedError(PermanentResponseError):
    """The node does not offer this method (-32601, or a "not supported" message)."""


_TRANSIENT_CODES = {-32005, -32603, -32002, 429}
_TRANSIENT_WORDS = ("header not found", "try again", "rate limit", "too many", "timeout", "busy", "syncing")
_UNSUPPORTED_WORDS = ("method not found", "not supported", "does not exist", "not available", "unsupported")


def classify_error(obj: object, *, method: str | None = None, endpoint: str | None = None) -> RpcError:
    """Turn a JSON-RPC ``error`` member into the right exception type."""
    if not isinstance(obj, dict):
        return MalformedResponseError(f"error member is not an object: {obj!r:.80}", method=method)
    code = obj.get("code")
    message = str(obj.get("message", ""))
    if not isinstance(code, int):
        return MalformedResponseError(f"error without integer code: {obj!r:.80}", method=method)
    lower = message.lower()
    kw = {"method": method, "endpoint": endpoint}
    if code == -32601 or any(w in lower for w in _UNSUPPORTED_WORDS):
        return MethodNotSupportedError(code, message, obj.get("data"), **kw)
    if code in _TRANSIENT_CODES or any(w in lower for w in _TRANSIENT_WORDS):
        return TransientResponseError(code, message, obj.get("data"), **kw)
    return PermanentResponseError(code, message, obj.get("data"), **kw)


class RpcObserver(Protocol):
    """Receives one observation per JSON-RPC method call (each item of a batch counts)."""

    def rpc_observed(self, method: str, outcome: str, seconds: float) -> None: ...


class _NullObserver:
    def rpc_observed(self, method: str, outcome: str, seconds: float) -> None:
        return None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries for transient errors: ``attempts`` tries in all, exponential backoff with jitter."""

    attempts: int = 6
    backoff: float = 0.2
    backoff_max: float = 8.0
    retry_after_max: float = 60.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based): full jitter.

        >>> p = RetryPolicy(backoff=1.0, backoff_max=4.0)
        >>> all(0.5 <= p.delay(1, random.Random(s)) <= 1.5 for s in range(50))
        True
        >>> all(p.delay(9, random.Random(s)) <= 6.0 for s in range(50))
        True
        """
        base = min(self.backoff_max, self.backoff * (2 ** (attempt - 1)))
        return float(base * (0.5 + rng.random()))


class RpcClient:
    """JSON-RPC over HTTP to one or more endpoints, with failover, retries and batching."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        timeout: float = 15.0,
        retry: RetryPolicy | None = None,
        max_batch: int = 200,
        observer: RpcObserver | None = None,
        seed: int | None = None,
    ) -> None:
        if not urls:
            raise ValueError("at least one RPC URL is needed")
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"not an HTTP(S) RPC URL: {url!r}")
        self.urls = list(urls)
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.max_batch = max_batch
        self._observer: RpcObserver = observer or _NullObserver()
        self._rng = random.Random(seed)
        self._current = 0
        self._ids = itertools.count(1)
        self._batching = True
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            headers={"content-type": "application/json"},
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=8),
        )

    @property
    def endpoint(self) -> str:
        return self.urls[self._current]

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> RpcClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- transport with retries ------------------------------------------------------------

    async def _post_once(self, url: str, body: bytes, label: str) -> Any:
        try:
            resp = await self._http.post(url, content=body)
        except httpx.TimeoutException:
            raise TransientRpcError(f"timed out after {self.timeout}s", method=label, endpoint=url) from None
        except httpx.TransportError as err:
            raise TransientRpcError(f"connection failed: {err!r}", method=label, endpoint=url) from None
        status = resp.status_code
        if status == 429:
            raise RateLimitedError(
                "HTTP 429 Too Many Requests", _retry_after(resp.headers.get("retry-after")), method=label, endpoint=url
            )
        if status >= 500:
            raise TransientRpcError(f"HTTP {status}", method=label, endpoint=url)
        try:
            payload = deepjson.loads(resp.content)
        except orjson.JSONDecodeError:
            if status >= 400:
                raise PermanentRpcError(f"HTTP {status}", method=label, endpoint=url) from None
            raise MalformedResponseError(
                f"answer is not JSON: {resp.content[:80]!r}", method=label, endpoint=url
            ) from None
        return payload

    async def _post(self, body: bytes, methods: Sequence[str]) -> Any:
        """POST with retries on transient errors, rotating endpoints; metrics per method."""
        label = methods[0] if len(set(methods)) == 1 else "batch"
        attempt = 0
        while True:
            attempt += 1
            url = self.urls[self._current]
            started = time.perf_counter()
            try:
                payload = await self._post_once(url, body, label)
                return payload
            except TransientRpcError as err:
                elapsed = time.perf_counter() - started
                outcome = _outcome(err)
                for m in methods:
                    self._observer.rpc_observed(m, outcome, elapsed)
                if attempt >= self.retry.attempts:
                    raise
                if len(self.urls) > 1:
                    self._current = (self._current + 1) % len(self.urls)
                    log.warning("rpc %s failed on %s (%s); failing over to %s", label, url, err, self.endpoint)
                delay = self.retry.delay(attempt, self._rng)
                if isinstance(err, RateLimitedError) and err.retry_after is not None:
                    delay = min(err.retry_after, self.retry.retry_after_max)
                elif len(self.urls) > 1 and attempt % len(self.urls) != 0:
                    delay = 0.0  # another endpoint has not been tried yet in this round
                log.debug("retrying %s in %.2fs (attempt %d): %s", label, delay, attempt, err)
                await asyncio.sleep(delay)
            except RpcError as err:
                for m in methods:
                    self._observer.rpc_observed(m, _outcome(err), time.perf_counter() - started)
                raise

    # -- public calls ------------------------------------------------------------------------

    async def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        """One JSON-RPC call; returns ``result`` or raises an :class:`RpcError`."""
        request_id = next(self._ids)
        body = orjson.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": list(params)})
        attempt = 0
        while True:
            attempt += 1
            started = time.perf_counter()
            payload = await self._post(body, [method])
            try:
                result = self._unwrap(payload, method)
            except TransientRpcError as err:
                if attempt >= self.retry.attempts:
                    raise
                await asyncio.sleep(self.retry.delay(attempt, self._rng))
                log.debug("retrying %s after %s", method, err)
                continue
            self._observer.rpc_observed(method, "ok", time.perf_counter() - started)
            return result

    def _unwrap(self, payload: Any, method: str) -> Any:
        if not isinstance(payload, dict):
            err: RpcError = MalformedResponseError(f"answer is not an object: {payload!r:.80}", method=method)
        elif "error" in payload and payload["error"] is not None:
            err = classify_error(payload["error"], method=method, endpoint=self.endpoint)
        elif "result" not in payload:
            err = MalformedResponseError("answer has neither result nor error", method=method)
        else:
            return payload["result"]
        self._observer.rpc_observed(method, _outcome(err), 0.0)
        raise err

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Several calls in JSON-RPC batches (``max_batch`` per HTTP request).

        Returns the results in order; raises the first error (transient item errors are retried).
        """
        results = await self.batch_settled(calls)
        for item in results:
            if isinstance(item, RpcError):
                raise item
        return results

    async def batch_settled(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Like :meth:`batch` but each failed item is returned as its :class:`RpcError`."""
        out: list[Any] = [None] * len(calls)
        pending = list(range(len(calls)))
        attempt = 0
        while pending:
            attempt += 1
            retry_items: list[int] = []
            for start in range(0, len(pending), self.max_batch):
                chunk = pending[start : start + self.max_batch]
                answers = await self._batch_chunk([calls[i] for i in chunk])
                for i, answer in zip(chunk, answers, strict=True):
                    out[i] = answer
                    if isinstance(answer, TransientRpcError):
                        retry_items.append(i)
            if not retry_items or attempt >= self.retry.attempts:
                break
            pending = retry_items
            await asyncio.sleep(self.retry.delay(attempt, self._rng))
        return out

    async def _batch_chunk(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        if not self._batching or len(calls) == 1:
            return [await self._settle(self.call(m, p)) for m, p in calls]
        ids = [next(self._ids) for _ in calls]
        body = orjson.dumps(
            [{"jsonrpc": "2.0", "id": i, "method": m, "params": list(p)} for i, (m, p) in zip(ids, calls, strict=True)]
        )
        methods = [m for m, _ in calls]
        started = time.perf_counter()
        payload = await self._post(body, methods)
        elapsed = time.perf_counter() - started
        if isinstance(payload, dict) and payload.get("error") is not None:
            # Some providers refuse batches outright: fall back to single calls from now on.
            log.warning("endpoint %s refused a JSON-RPC batch (%s); sending calls one by one", self.endpoint,
                        payload["error"])
            self._batching = False
            return [await self._settle(self.call(m, p)) for m, p in calls]
        if not isinstance(payload, list):
            err = MalformedResponseError(f"batch answer is not a list: {payload!r:.80}", method="batch")
            return [err] * len(calls)
        by_id: dict[Any, Any] = {}
        for item in payload:
            if isinstance(item, dict) and "id" in item:
                by_id[item["id"]] = item
        results: list[Any] = []
        for request_id, method in zip(ids, methods, strict=True):
            item = by_id.get(request_id)
            if item is None:
                res: Any = MalformedResponseError("batch answer lacks this request's id", method=method)
            elif item.get("error") is not None:
                res = classify_error(item["error"], method=method, endpoint=self.endpoint)
            elif "result" not in item:
                res = MalformedResponseError("answer has neither result nor error", method=method)
            else:
                res = item["result"]
            outcome = "ok" if not isinstance(res, RpcError) else _outcome(res)
            self._observer.rpc_observed(method, outcome, elapsed / len(calls))
            results.append(res)
        return results

    @staticmethod
    async def _settle(coro: Any) -> Any:
        try:
            return await coro
        except RpcError as err:
            return err


def reconnect_delay(failures: int, cap: float = 30.0) -> float:
    """Seconds to wait before reconnecting after ``failures`` consecutive failures of a stream.

    >>> [reconnect_delay(n) for n in (1, 2, 3, 10)]
    [1.0, 2.0, 4.0, 30.0]
    """
    return float(min(cap, 0.5 * 2 ** min(failures, 6)))


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds form; an HTTP date is not honoured)."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _outcome(err: RpcError) -> str:
    if isinstance(err, RateLimitedError):
        return "rate_limited"
    if isinstance(err, MalformedResponseError):
        return "malformed"
    if isinstance(err, RpcResponseError):
        return "rpc_error"
    if isinstance(err, TransientRpcError):
        return "transient"
    return "permanent"


SUBSCRIBED = object()  # what subscribe(..., announce=True) yields first, once the node confirmed


async def subscribe(url: str, params: Sequence[Any], *, open_timeout: float = 10.0,
                    announce: bool = False) -> AsyncIterator[Any]:
    """``eth_subscribe`` over WebSocket; yields each notification's ``result`` (with ``announce``,
    first :data:`SUBSCRIBED` as soon as the node has confirmed the subscription).

    Raises :class:`TransientRpcError` when the connection fails or drops (the caller reconnects)
    and the classified error when the node refuses the subscription.
    """
    try:
        async with websockets.connect(url, open_timeout=open_timeout, max_size=2**26, ping_interval=20) as ws:
            await ws.send(orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": list(params)}))
            reply = orjson.loads(await asyncio.wait_for(ws.recv(), open_timeout))
            if reply.get("error") is not None:
                raise classify_error(reply["error"], method="eth_subscribe", endpoint=url)
            sub_id = reply.get("result")
            if announce:
                yield SUBSCRIBED
            async for message in ws:
                note = orjson.loads(message)
                p = note.get("params")
                if isinstance(p, dict) and p.get("subscription") == sub_id:
                    yield p.get("result")
    except (OSError, websockets.WebSocketException, TimeoutError) as err:
        raise TransientRpcError(f"websocket failed: {err!r}", method="eth_subscribe", endpoint=url) from None
    except orjson.JSONDecodeError as err:
        raise MalformedResponseError(f"websocket message is not JSON: {err}", method="eth_subscribe",
                                     endpoint=url) from None
