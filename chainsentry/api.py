"""The HTTP API of the live service (FastAPI): ``/metrics``, ``/healthz``, ``/status``.

The app is built by :func:`create_app` from what it serves (a registry, a status provider);
nothing here is created at import time.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, Literal

import orjson
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel, ConfigDict, Field

from alerts.lifecycle import AlertLifecycle
from alerts.store import AlertStore

Severity = Literal["info", "low", "medium", "high", "critical"]
Status = Literal["firing", "confirmed", "retracted"]


def _store(request: Request) -> AlertStore:
    store: AlertStore | None = request.app.state.store
    if store is None:
        raise HTTPException(404, "this service keeps no alert store")
    return store


def _writer(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    token: str | None = request.app.state.api_token
    if not token:
        raise HTTPException(403, "writes are disabled: set CHAINSENTRY_API_TOKEN")
    if authorization is None or not hmac.compare_digest(authorization, f"Bearer {token}"):
        raise HTTPException(401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"})


Store = Annotated[AlertStore, Depends(_store)]
Writer = Annotated[None, Depends(_writer)]

StatusProvider = Callable[[], dict[str, Any]]


class Feedback(BaseModel):
    model_config = ConfigDict(extra="forbid")
    verdict: Literal["true_positive", "false_positive"]
    note: str | None = Field(None, max_length=2000)


def create_app(registry: CollectorRegistry, status: StatusProvider, store: AlertStore | None = None,
               api_token: str | None = None, lifecycle: AlertLifecycle | None = None,
               heartbeat: float = 15.0, on_allow: Callable[[str], None] | None = None) -> FastAPI:
    """The app. With a ``store``, the alert routes; writes need ``Authorization: Bearer <api_token>``
    and are refused (403) when no token is configured."""
    app = FastAPI(title="chainsentry", version="0.1.0", docs_url="/docs", redoc_url=None)
    app.state.store = store
    app.state.api_token = api_token

    @app.get("/alerts", summary="Alerts, newest first, filtered, with cursor pagination")
    async def list_alerts(
        s: Store,
        min_severity: Annotated[Severity | None, Query()] = None,
        address: str | None = None,
        detector: str | None = None,
        status: Annotated[Status | None, Query()] = None,
        since: Annotated[float | None, Query(description="unix seconds")] = None,
        until: Annotated[float | None, Query(description="unix seconds")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: Annotated[str | None, Query(pattern=r"^[0-9.e+-]+:[A-Za-z0-9-]+$")] = None,
    ) -> dict[str, Any]:
        page, nxt = s.query(min_severity=min_severity, address=address, detector=detector, status=status,
                            since=since, until=until, limit=limit, cursor=cursor)
        return {"alerts": page, "next_cursor": nxt}

    @app.get("/alerts/stream", summary="Live alert status changes as server-sent events")
    async def stream(request: Request) -> StreamingResponse:
        if lifecycle is None:
            raise HTTPException(404, "this service has no live alert stream")
        queue = lifecycle.listen()

        async def events() -> AsyncIterator[bytes]:
            try:
                yield b": connected\n\n"
                while not await request.is_disconnected():
                    try:
                        alert = await asyncio.wait_for(queue.get(), heartbeat)
                    except TimeoutError:
                        yield b": heartbeat\n\n"
                        continue
                    yield b"event: alert\nid: " + f"{alert['id']}:{alert['status']}".encode() + b"\ndata: " + \
                        orjson.dumps(alert) + b"\n\n"
            finally:
                lifecycle.unlisten(queue)

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.get("/alerts/{alert_id}", summary="One alert")
    async def get_alert(alert_id: str, s: Store) -> dict[str, Any]:
        alert = s.get(alert_id)
        if alert is None:
            raise HTTPException(404, f"no alert {alert_id}")
        return alert

    @app.post("/alerts/{alert_id}/feedback", summary="An analyst's verdict; a false positive suppresses the "
              "pattern (detector and subject) and allowlists the subject in the detectors", status_code=201)
    async def feedback(alert_id: str, body: Feedback, s: Store, _: Writer) -> dict[str, Any]:
        try:
            entry = s.add_feedback(alert_id, body.verdict, body.note)
        except KeyError:
            raise HTTPException(404, f"no alert {alert_id}") from None
        if entry is not None and on_allow is not None:
            on_allow(str(entry["subject"]))
        return {"alert_id": alert_id, "verdict": body.verdict, "allowlisted": entry}

    @app.get("/dead-letters", summary="Deliveries that failed for good")
    async def dead_letters(s: Store) -> list[dict[str, Any]]:
        return s.dead_letters()

    @app.post("/dead-letters/{seq}/resend", summary="Queue a dead letter for delivery again", status_code=202)
    async def resend(seq: int, s: Store, _: Writer) -> dict[str, Any]:
        if not s.requeue(seq):
            raise HTTPException(404, f"no dead letter {seq}")
        return {"requeued": seq}

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", summary="Liveness and ingest freshness")
    def healthz() -> JSONResponse:
        body = status()
        code = 200 if body.get("healthy") else 503
        return JSONResponse(body, status_code=code)

    @app.get("/readyz", summary="Ready: ingest fresh and the alert store writable")
    async def readyz() -> JSONResponse:
        body = status()
        checks = {"ingest_fresh": bool(body.get("healthy")), "store_writable": True}
        if store is not None:
            checks["store_writable"] = store.writable()
        code = 200 if all(checks.values()) else 503
        return JSONResponse({"ready": code == 200, **checks}, status_code=code)

    @app.get("/status", summary="Live ingest status")
    def get_status() -> dict[str, Any]:
        return status()

    return app
