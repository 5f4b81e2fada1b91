"""The HTTP API of the live service (FastAPI): ``/metrics``, ``/healthz``, ``/status``.

The app is built by :func:`create_app` from what it serves (a registry, a status provider);
nothing here is created at import time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, Literal, Protocol

import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from alerts.channels import PAGERDUTY_URL
from alerts.lifecycle import AlertLifecycle
from alerts.model import Alert, Severity, Status
from alerts.store import AlertStore, AllowEntry
from alerts.subscriptions import SubscriptionBook, SubscriptionConflict, redact_url

from .api_deps import _MISSING, _WRITE, Reader, Store, Writer
from .build import bind_socket
from .config import Secrets, Settings
from .delivery import Delivery
from .guard import BodyGuard
from .monitor_api import router as monitor_routes
from .monitoring import MonitorBook

StatusProvider = Callable[[], dict[str, Any]]
MAX_STREAMS = 100  # concurrent /alerts/stream connections
MIN_FREE_BYTES = 64 << 20  # below this free on the store's disk, the service is not ready


class Feedback(BaseModel):
    model_config = ConfigDict(extra="forbid")
    verdict: Literal["true_positive", "false_positive"]
    note: str | None = Field(None, max_length=2000)
    analyst: str | None = Field(None, max_length=200, description="who gives the verdict (stored with it)")


class Learner(Protocol):
    """What analysts' verdicts reach in the detectors (the engine, through
    :class:`chainsentry.service.EngineLearner`)."""

    def allow(self, address: str) -> None: ...

    def learn_verdict(self, alert: Alert, verdict: str) -> None: ...

    def feedback_model(self) -> dict[str, Any]: ...

    def reset_feedback(self) -> None: ...


class VerdictOut(BaseModel):
    alert_id: str
    verdict: str
    analyst: str | None
    note: str | None
    created_ts: float


class FeedbackModelOut(BaseModel):
    """What the detectors learned from analysts' verdicts (``detectors/feedback.py``)."""

    verdicts: dict[str, int] = Field(description="verdicts learned, by kind")
    learning_rate: float
    max_shift: float = Field(description="the most evidence units the verdicts take from a score")
    max_raise: float = Field(description="the most evidence units the verdicts add to a score")
    dismiss_weight: float = Field(description="a false-positive verdict counts this many confirmations")
    weights: dict[str, float] = Field(description="the largest learned weights by explanation term (negative: "
                                      "the analysts called alerts with this term false positives)")
    recent: list[VerdictOut] = Field(description="the latest verdicts in the store, newest first, with who and when")


_ALL_STATUSES: tuple[Status, ...] = ("firing", "confirmed", "retracted")
Kind = Literal["webhook", "slack", "discord", "telegram", "pagerduty"]
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]


def _json_number(v: Any) -> Any:
    """Numbers as JSON has them: refuse true/false and numeric strings (pydantic's lax mode takes them)."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ValueError("must be a number")
    return v


Number = BeforeValidator(_json_number)


_URL = r"^https?://[!-~]+$"  # printable ASCII: a non-ASCII host or path must be encoded


class _SubscriptionBase(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=8, max_length=2048, pattern=_URL)
    min_severity: Severity = "info"
    detectors: list[Annotated[str, Field(max_length=200)]] = Field(
        default_factory=list, max_length=100, description="detector name prefixes, e.g. 'rules'")
    types: list[Literal["exploit", "suspicious", "scam", "info"]] = Field(default_factory=list)
    addresses: list[Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{40}$")]] = Field(default_factory=list,
                                                                                   max_length=10_000)
    chains: list[Annotated[int, Field(ge=0, le=2**53 - 1), Number]] = Field(default_factory=list, max_length=1000)
    statuses: list[Status] = Field(default_factory=lambda: list(_ALL_STATUSES), min_length=1)
    rate_limit: Annotated[float, Field(ge=0.01, le=10_000), Number] | None = Field(
        None, description="deliveries per second (default: none for webhooks and PagerDuty, the service's limit "
        "for chats)")
    burst: Annotated[int, Field(ge=1, le=10_000), Number] | None = None


class WebhookIn(_SubscriptionBase):
    """A signed generic webhook. ``secret`` is write-only (never returned); without it the
    service's CHAINSENTRY_WEBHOOK_SECRET signs."""
    kind: Literal["webhook"]
    secret: str | None = Field(None, min_length=16, max_length=512)


class SlackIn(_SubscriptionBase):
    kind: Literal["slack"]


class DiscordIn(_SubscriptionBase):
    kind: Literal["discord"]


class TelegramIn(_SubscriptionBase):
    kind: Literal["telegram"]
    chat_id: str = Field(min_length=1, max_length=200)


class PagerDutyIn(_SubscriptionBase):
    kind: Literal["pagerduty"]
    url: str = Field(PAGERDUTY_URL, min_length=8, max_length=2048, pattern=_URL)
    routing_key: str = Field(min_length=1, max_length=200)


SubscriptionIn = Annotated[WebhookIn | SlackIn | DiscordIn | TelegramIn | PagerDutyIn, Field(discriminator="kind")]


class SubscriptionOut(BaseModel):
    name: str
    kind: Kind
    url: str
    min_severity: Severity
    detectors: list[str]
    types: list[str]
    addresses: list[str]
    chains: list[int]
    statuses: list[str]
    chat_id: str | None
    routing_key: str | None
    rate_limit: float | None
    burst: int | None
    allow_private: bool
    source: Literal["config", "api"]
    has_own_secret: bool


class AlertPage(BaseModel):
    alerts: list[Alert]
    next_cursor: str | None = Field(description="pass back as ?cursor= for the next page; null on the last")


class FeedbackOut(BaseModel):
    alert_id: str
    verdict: Literal["true_positive", "false_positive"]
    allowlisted: AllowEntry | None = Field(description="the (detector, subject) a false positive allowlisted")


class DeadLetter(BaseModel):
    seq: int
    alert_id: str
    alert_status: str
    subscription: str
    url: str = Field(description="redacted to scheme and host")
    attempts: int
    last_error: str | None


def _book(request: Request) -> SubscriptionBook:
    book: SubscriptionBook | None = request.app.state.subscriptions
    if book is None:
        raise HTTPException(404, "this service delivers no alerts")
    return book


Book = Annotated[SubscriptionBook, Depends(_book)]


def create_app(registry: CollectorRegistry, status: StatusProvider, store: AlertStore | None = None,
               api_token: str | None = None, lifecycle: AlertLifecycle | None = None,
               heartbeat: float = 15.0, learner: Learner | None = None,
               subscriptions: SubscriptionBook | None = None, read_auth: bool = False,
               monitors: MonitorBook | None = None) -> FastAPI:
    """The app. With a ``store``, the alert routes; with ``subscriptions``, their CRUD. Writes need
    ``Authorization: Bearer <api_token>`` and are refused (403) when no token is configured; with
    ``read_auth`` reads of alerts, subscriptions and dead letters need it too."""
    app = FastAPI(title="chainsentry", version="0.1.0", docs_url="/docs", redoc_url=None)
    app.state.store = store
    app.state.api_token = api_token
    app.state.subscriptions = subscriptions
    app.state.read_auth = read_auth
    app.state.monitors = monitors
    app.include_router(monitor_routes)

    def is_write(method: str, path: str) -> bool:
        return any(isinstance(r, APIRoute) and method in (r.methods or ()) and r.path_regex.match(path)
                   for r in app.routes)

    app.add_middleware(BodyGuard, token=api_token, is_write=is_write)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        """As FastAPI's 422, without echoing what was sent: a rejected body may hold a secret, and
        some inputs (lone surrogates, NaN) cannot be rendered back as JSON at all."""
        errors = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
                  for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        """As FastAPI's, but a 405 lists every method of the path in ``Allow`` (Starlette lists only
        those of the first route that matched the path)."""
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            methods: set[str] = set()
            for route in app.routes:
                if isinstance(route, APIRoute) and route.path_regex.match(request.url.path):
                    methods |= route.methods or set()
            headers["Allow"] = ", ".join(sorted(methods))
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)

    @app.get("/subscriptions", summary="Every subscription, from the config file and the API", responses=_MISSING)
    async def list_subscriptions(book: Book, _: Reader) -> list[SubscriptionOut]:
        return [SubscriptionOut(**book.describe(s)) for s in book]

    @app.get("/subscriptions/{name}", summary="One subscription", responses=_MISSING)
    async def get_subscription(name: str, book: Book, _: Reader) -> SubscriptionOut:
        sub = book.get(name)
        if sub is None:
            raise HTTPException(404, f"no subscription {name}")
        return SubscriptionOut(**book.describe(sub))

    @app.put("/subscriptions/{name}", summary="Create or replace a subscription (takes effect with the next alert)",
             responses={200: {"model": SubscriptionOut}, 201: {"model": SubscriptionOut}, **_WRITE})
    async def put_subscription(name: Name, body: SubscriptionIn, book: Book, _: Writer) -> JSONResponse:
        try:
            sub, created = book.put({"name": name, **body.model_dump(exclude_none=True)})
        except SubscriptionConflict as err:
            raise HTTPException(409, str(err)) from None
        except (TypeError, ValueError) as err:
            raise HTTPException(422, [{"loc": ["body"], "msg": str(err), "type": "value_error"}]) from None
        return JSONResponse(SubscriptionOut(**book.describe(sub)).model_dump(), status_code=201 if created else 200)

    @app.delete("/subscriptions/{name}", summary="Delete a subscription; its pending deliveries become dead letters",
                status_code=204, responses=_WRITE)
    async def delete_subscription(name: str, book: Book, _: Writer) -> Response:
        try:
            if not book.delete(name):
                raise HTTPException(404, f"no subscription {name}")
        except SubscriptionConflict as err:
            raise HTTPException(409, str(err)) from None
        return Response(status_code=204)

    @app.get("/alerts", summary="Alerts, newest first, filtered, with cursor pagination", responses=_MISSING)
    async def list_alerts(
        s: Store,
        _: Reader,
        min_severity: Annotated[Severity | None, Query()] = None,
        address: str | None = None,
        detector: str | None = None,
        status: Annotated[Status | None, Query()] = None,
        since: Annotated[float | None, Query(description="unix seconds")] = None,
        until: Annotated[float | None, Query(description="unix seconds")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: Annotated[str | None, Query(pattern=r"^[0-9]+(\.[0-9]+)?(e[+-]?[0-9]+)?:[A-Za-z0-9-]+$",
                                            description="next_cursor of the previous page")] = None,
    ) -> AlertPage:
        page, nxt = s.query(min_severity=min_severity, address=address, detector=detector, status=status,
                            since=since, until=until, limit=limit, cursor=cursor)
        return AlertPage(alerts=page, next_cursor=nxt)

    @app.get("/alerts/stream", summary="Live alert status changes as server-sent events",
             response_class=StreamingResponse,
             responses={200: {"content": {"text/event-stream": {}}}, **_MISSING})
    async def stream(request: Request, _: Reader) -> StreamingResponse:
        if lifecycle is None:
            raise HTTPException(404, "this service has no live alert stream")
        if lifecycle.listeners >= MAX_STREAMS:
            raise HTTPException(503, f"{MAX_STREAMS} live streams are open already")
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
                    yield b"event: alert\nid: " + f"{alert.id}:{alert.status}".encode() + b"\ndata: " + \
                        alert.to_json() + b"\n\n"
            finally:
                lifecycle.unlisten(queue)

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.get("/alerts/{alert_id}", summary="One alert", responses=_MISSING)
    async def get_alert(alert_id: str, s: Store, _: Reader) -> Alert:
        alert = s.get(alert_id)
        if alert is None:
            raise HTTPException(404, f"no alert {alert_id}")
        return alert

    @app.post("/alerts/{alert_id}/feedback", summary="An analyst's verdict: the detectors learn it (similar "
              "transactions score up or down); a false positive also suppresses the pattern (detector and "
              "subject) and allowlists the subject in the detectors", status_code=201, responses=_WRITE)
    async def feedback(alert_id: str, body: Feedback, s: Store, _: Writer) -> FeedbackOut:
        try:
            entry = s.add_feedback(alert_id, body.verdict, body.note, body.analyst)
        except KeyError:
            raise HTTPException(404, f"no alert {alert_id}") from None
        if learner is not None:
            alert = s.get(alert_id)
            if alert is not None:
                learner.learn_verdict(alert, body.verdict)
            if entry is not None:
                learner.allow(entry.subject)
        return FeedbackOut(alert_id=alert_id, verdict=body.verdict, allowlisted=entry)

    @app.get("/feedback/model", summary="What the detectors learned from analysts' verdicts", responses=_MISSING)
    async def feedback_model(s: Store, _: Reader) -> FeedbackModelOut:
        if learner is None:
            raise HTTPException(404, "this process runs no detectors")
        recent = [VerdictOut(**dataclasses.asdict(v)) for v in s.verdicts()]
        return FeedbackModelOut(**learner.feedback_model(), recent=recent)

    @app.delete("/feedback/model", summary="Forget what the detectors learned from verdicts (the verdicts stay "
                "stored, the allowlist stays)", responses=_WRITE)
    async def reset_feedback_model(_: Writer) -> dict[str, bool]:
        if learner is None:
            raise HTTPException(404, "this process runs no detectors")
        learner.reset_feedback()
        return {"reset": True}

    @app.get("/dead-letters", summary="Deliveries that failed for good", responses=_MISSING)
    async def dead_letters(s: Store, _: Reader) -> list[DeadLetter]:
        return [DeadLetter(**dict(d, url=redact_url(str(d["url"])))) for d in s.dead_letters()]

    @app.post("/dead-letters/{seq}/resend", summary="Queue a dead letter for delivery again", status_code=202,
              responses=_WRITE)
    async def resend(seq: Annotated[int, Path(ge=1, le=2**53 - 1)], s: Store, _: Writer) -> dict[str, Any]:
        if not s.requeue(seq):
            raise HTTPException(404, f"no dead letter {seq}")
        return {"requeued": seq}

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", summary="Liveness and ingest freshness",
             responses={200: {}, 503: {"description": "unhealthy"}})
    def healthz() -> JSONResponse:
        body = status()
        code = 200 if body.get("healthy") else 503
        return JSONResponse(body, status_code=code)

    @app.get("/readyz", summary="Ready: ingest fresh and the alert store writable",
             responses={200: {}, 503: {"description": "not ready"}})
    async def readyz() -> JSONResponse:
        body = status()
        checks = {"ingest_fresh": bool(body.get("healthy")), "store_writable": True, "disk_space": True}
        if store is not None:
            checks["store_writable"] = store.writable()
            checks["disk_space"] = store.free_bytes() >= MIN_FREE_BYTES
        code = 200 if all(checks.values()) else 503
        return JSONResponse({"ready": code == 200, **checks}, status_code=code)

    @app.get("/status", summary="Live ingest status")
    def get_status() -> dict[str, Any]:
        return status()

    return app


def api_server(settings: Settings, secrets: Secrets, registry: CollectorRegistry, status: StatusProvider,
               delivery: Delivery | None = None, learner: Learner | None = None,
               monitors: MonitorBook | None = None) -> tuple[uvicorn.Server, socket.socket]:
    """The API of a live process (``run``, ``demo``, the alert and ingest roles) on ``settings.api``:
    the app over ``delivery``'s store, lifecycle and subscriptions when it has them, and the
    socket bound now (a port in use is one clear error before anything starts)."""
    app = create_app(registry, status, delivery.store if delivery else None, Secrets.reveal(secrets.api_token),
                     delivery.lifecycle if delivery else None, learner=learner,
                     subscriptions=delivery.subscriptions if delivery else None, read_auth=secrets.auth_reads,
                     monitors=monitors)
    host, port = settings.api_host_port
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off"))
    return server, bind_socket(host, port)
