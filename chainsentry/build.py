"""Building objects from settings: the RPC client, the API socket. Light imports only."""

from __future__ import annotations

import socket

from ingest import IngestMetrics, RetryPolicy, RpcClient
from ingest.errors import UserError

from .config import Settings


class ApiBindError(UserError):
    """The API address cannot be listened on."""


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket for the API, or a clear error (port 0 picks a free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise ApiBindError(f"cannot listen on {host}:{port} for the API: {err.strerror}") from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


def make_rpc(settings: Settings, metrics: IngestMetrics) -> RpcClient:
    rc = settings.rpc_client
    return RpcClient(
        settings.rpc,
        timeout=rc.timeout,
        retry=RetryPolicy(attempts=rc.attempts, backoff=rc.backoff, backoff_max=rc.backoff_max),
        max_batch=rc.max_batch,
        observer=metrics,
    )
