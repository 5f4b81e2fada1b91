"""The API's outer guard (pure ASGI): a write to a write route is refused before its body is read
unless it carries the bearer token, and no request body larger than ``max_body`` bytes is read."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_BODY = 1 << 20  # a subscription with 10,000 addresses is ~450 KB


class BodyGuard:
    def __init__(self, app: App, *, token: str | None, is_write: Callable[[str, str], bool],
                 max_body: int = MAX_BODY) -> None:
        """``is_write(method, path)``: whether a route takes that request as a write (others get
        their 404 or 405 from the app)."""
        self.app = app
        self.token = token
        self.is_write = is_write
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or ())
        if scope["method"] in WRITE_METHODS and self.is_write(scope["method"], scope["path"]):
            refusal = self._refuse_write(headers.get(b"authorization"))
            if refusal is not None:
                await _reply(send, *refusal)
                return
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await _reply(send, 413, f"the request body exceeds {self.max_body} bytes")
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay(bytes(body), message), send)
                return
            body += message.get("body", b"")
            if len(body) > self.max_body:
                await _reply(send, 413, f"the request body exceeds {self.max_body} bytes")
                return
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(bytes(body), None, receive), send)

    def _refuse_write(self, authorization: bytes | None) -> tuple[int, str, dict[str, str]] | None:
        if not self.token:
            return 403, "writes are disabled: set CHAINSENTRY_API_TOKEN", {}
        if authorization is None or not hmac.compare_digest(authorization, f"Bearer {self.token}".encode()):
            return 401, "a valid bearer token is required", {"www-authenticate": "Bearer"}
        return None


def _replay(body: bytes, first: Message | None, receive: Receive | None = None) -> Receive:
    """A ``receive`` that hands the buffered body over once, then what the server sends next."""
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return first if first is not None else {"type": "http.request", "body": body, "more_body": False}
        if receive is None:
            return {"type": "http.disconnect"}
        return await receive()

    return again


async def _reply(send: Send, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
    payload = orjson.dumps({"detail": detail})
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})
