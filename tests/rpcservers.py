"""Real HTTP servers on loopback for fault tests: a scripted JSON-RPC node and a proxy to anvil.

Both run in a thread with the standard library's ThreadingHTTPServer, so the code under test
talks real HTTP over 127.0.0.1.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

# a handler returns (status, headers, body bytes) for a parsed request, or None to pass through
Reply = tuple[int, dict[str, str], bytes]


def rpc_result(request: Any, result: Any) -> Any:
    if isinstance(request, list):
        return [{"jsonrpc": "2.0", "id": r["id"], "result": result} for r in request]
    return {"jsonrpc": "2.0", "id": request["id"], "result": result}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # the default backlog of 5 drops bursts of connections


class LoopbackServer:
    """An HTTP server on 127.0.0.1 whose every POST goes to ``handler(body) -> Reply``.

    ``stop()`` closes the listening socket (connections are refused) and ``start()`` listens
    again on the same port: a node going down and coming back.
    """

    keep_alive = False  # HTTP/1.0 by default: once stopped, no live connection remains ("down" is down)

    def __init__(self, handler: Callable[[Any], Reply] | None = None, port: int = 0) -> None:
        self.handler = handler
        self.port = port
        self.requests: list[Any] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def respond(self, raw: bytes, headers: Any) -> Reply:
        """One POST: the parsed body goes to ``handler``; subclasses may read the headers too."""
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw
        self.requests.append(body)
        assert self.handler is not None
        return self.handler(body)

    def start(self) -> LoopbackServer:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if outer.keep_alive else "HTTP/1.0"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                raw = self.rfile.read(length)
                status, headers, payload = outer.respond(raw, self.headers)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._server = _Server(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RpcProxy(LoopbackServer):
    """Forwards JSON-RPC to an upstream node; ``mangle(request, response)`` may rewrite answers."""

    def __init__(self, upstream: str, port: int = 0) -> None:
        self.upstream = upstream
        self.mangle: Callable[[Any, Any], Reply | Any] | None = None
        self._client = httpx.Client(timeout=30)
        super().__init__(self._forward, port)

    def _forward(self, body: Any) -> Reply:
        resp = self._client.post(self.upstream, json=body)
        answer = resp.json()
        if self.mangle is not None:
            out = self.mangle(body, answer)
            if isinstance(out, tuple):
                return out
            answer = out
        return 200, {"content-type": "application/json"}, json.dumps(answer).encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
