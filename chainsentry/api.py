"""The HTTP API of the live service (FastAPI): ``/metrics``, ``/healthz``, ``/status``.

The app is built by :func:`create_app` from what it serves (a registry, a status provider);
nothing here is created at import time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

StatusProvider = Callable[[], dict[str, Any]]


def create_app(registry: CollectorRegistry, status: StatusProvider) -> FastAPI:
    app = FastAPI(title="chainsentry", version="0.1.0", docs_url="/docs", redoc_url=None)

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", summary="Liveness and ingest freshness")
    def healthz() -> JSONResponse:
        body = status()
        code = 200 if body.get("healthy") else 503
        return JSONResponse(body, status_code=code)

    @app.get("/status", summary="Live ingest status")
    def get_status() -> dict[str, Any]:
        return status()

    return app
