"""Where alerts may be delivered: public addresses only, checked when a subscription is made and
again at every connection (a name that resolved to a public address may resolve to an internal
one later: DNS rebinding).

A target on a private, loopback, link-local, shared (100.64.0.0/10), site-local, multicast or
otherwise non-global address is refused unless the operator allowed private targets (the
``--webhook-allow-private`` flag, or ``allow_private`` on a config-file subscription). IPv6
addresses that embed an IPv4 one (IPv4-mapped, 6to4, Teredo) are judged by the embedded address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx


class TargetRefused(httpcore.ConnectError):
    """A delivery target whose address is not public, met at connect time."""


def is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether ``ip`` is a global unicast address (and so is any IPv4 address it embeds).

    >>> [is_public(ipaddress.ip_address(a)) for a in ("8.8.8.8", "100.100.100.200", "169.254.169.254",
    ...  "fec0::1", "2002:7f00:1::", "::ffff:10.0.0.1", "224.0.0.1", "2606:4700::1111")]
    [True, False, False, False, False, False, False, True]
    """
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None and not is_public(embedded):
            return False
        if ip in _SITE_LOCAL:
            return False
    return ip.is_global and not ip.is_multicast


_SITE_LOCAL = ipaddress.ip_network("fec0::/10")  # deprecated, but still routed inside some networks


def non_public(addresses: Iterable[str]) -> str | None:
    """The first of ``addresses`` that is not public, or None."""
    for a in addresses:
        if not is_public(ipaddress.ip_address(a.split("%", 1)[0])):
            return a
    return None


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to public addresses: the name is resolved here
    and the connection made to the address that was checked (TLS still verifies the name)."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as err:
            raise httpcore.ConnectError(f"{host} does not resolve: {err}") from None
        addresses = [str(info[4][0]) for info in infos]
        bad = non_public(addresses)
        if bad is not None:
            raise TargetRefused(f"target refused: {host} resolves to {bad}, not a public address")
        return await self._inner.connect_tcp(addresses[0], port, timeout, local_address, socket_options)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_client(**kwargs: Any) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` (``kwargs`` as for it) that connects to public addresses only."""
    limits = kwargs.pop("limits", httpx.Limits())
    transport = httpx.AsyncHTTPTransport(limits=limits)
    transport._pool._network_backend = GuardedBackend()  # httpx offers no argument for it
    return httpx.AsyncClient(transport=transport, **kwargs)
