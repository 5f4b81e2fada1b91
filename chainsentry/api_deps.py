"""The API's shared dependencies: the alert store, and the bearer-token checks for reads and writes."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Depends, Header, HTTPException, Request
from pydantic import BaseModel

from alerts.store import AlertStore


def _store(request: Request) -> AlertStore:
    store: AlertStore | None = request.app.state.store
    if store is None:
        raise HTTPException(404, "this service keeps no alert store")
    return store


def _writer(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    token: str | None = request.app.state.api_token
    if not token:
        raise HTTPException(403, "writes are disabled: set CHAINSENTRY_API_TOKEN")
    given = (authorization or "").encode("utf-8", "surrogateescape")  # headers may hold any byte
    if authorization is None or not hmac.compare_digest(given, f"Bearer {token}".encode()):
        raise HTTPException(401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"})


def _reader(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    """Reads are open unless the service was started with CHAINSENTRY_API_AUTH_READS=1; then they need
    the same bearer token as writes (health, readiness and /metrics stay open for probes)."""
    if request.app.state.read_auth:
        _writer(request, authorization)


Store = Annotated[AlertStore, Depends(_store)]
Writer = Annotated[None, Depends(_writer)]
Reader = Annotated[None, Depends(_reader)]



class Error(BaseModel):
    detail: str


_MISSING: dict[int | str, dict[str, Any]] = {
    404: {"model": Error, "description": "not found, or not kept here"},
    401: {"model": Error, "description": "no valid bearer token (writes; reads with CHAINSENTRY_API_AUTH_READS)"},
    403: {"model": Error, "description": "no CHAINSENTRY_API_TOKEN is configured"},
}
_WRITE: dict[int | str, dict[str, Any]] = {
    **_MISSING,
    400: {"model": Error, "description": "the body is not JSON"},
    409: {"model": Error, "description": "conflicts with the config file"},
}
