"""Monitors and responses wired from the settings: the live :class:`MonitorBook` (config-file
monitors, fixed, plus those made through the API, kept in the store), the responders each alert
gets, and their metrics.

A response runs for a monitor's own alerts, and, with ``respond_to_detectors``, for detector
alerts of that severity or above that involve the monitor's addresses. Monitors made through the
API may not run scripts (a token holder must not be able to run commands on this host): script
responses come from the config file only.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from pydantic import ValidationError

from alerts.model import Alert, ResponseOutcome
from alerts.responders import ChainWriter, SafeResponder, ScriptResponder, TransactionResponder
from alerts.responses import Responder, ResponseRunner, ScriptSpec
from alerts.store import SEVERITY_RANK, AlertStore
from detectors.monitors import Monitor, MonitorError, MonitorSet

from .config import MonitorSettings, Settings, _explain

log = logging.getLogger(__name__)
MAX_API_MONITORS = 1000


class MonitorConflict(Exception):
    """The name belongs to a config-file monitor, which the API may not change."""


class MonitorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.errors = Counter("monitor_errors", "Monitor conditions that could not be evaluated on a transaction",
                              ["monitor"], namespace="chainsentry", registry=registry)
        self.responses = Counter("responses", "Response outcomes (sent, mined, reverted, simulated, ran, failed...)",
                                 ["kind", "outcome"], namespace="chainsentry", registry=registry)
        self.latency = Histogram("response_latency", "A pending transaction first seen to its response sent",
                                 ["kind"], namespace="chainsentry", unit="seconds", registry=registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))

    def outcome(self, step: ResponseOutcome, since_seen: float | None) -> None:
        self.responses.labels(step.kind, step.outcome).inc()
        if step.outcome in ("sent", "ran", "proposed") and since_seen is not None:
            self.latency.labels(step.kind).observe(since_seen)


class MonitorBook:
    """The monitors in force (see the module docstring); :attr:`live` is what the scorer runs."""

    def __init__(self, settings: Settings, store: AlertStore, registry: CollectorRegistry | None = None,
                 writer: ChainWriter | None = None,
                 on_response: Callable[[ResponseOutcome, float | None], None] | None = None) -> None:
        self.fixed = {m.name: m for m in settings.monitors}
        self.store = store
        self.writer = writer
        self.base = settings.data_dir
        self.metrics = MonitorMetrics(registry) if registry is not None else None
        self._lock = threading.Lock()
        self.api: dict[str, MonitorSettings] = {}
        for body in store.monitors():
            try:
                spec = MonitorSettings.model_validate(body)
                Monitor(spec)
            except (ValidationError, MonitorError) as err:  # an ABI file gone since: the others still run
                log.error("monitor %s from the API cannot be loaded and is not run: %s", body.get("name"), err)
                continue
            if spec.name not in self.fixed:
                self.api[spec.name] = spec
        on_error = self.metrics.errors.labels if self.metrics is not None else None
        self.live = MonitorSet(on_error=(lambda name: on_error(name).inc()) if on_error else None)
        self._responders: dict[str, list[Responder]] = {}
        self._rebuild()
        self.on_response = on_response
        self.runner = ResponseRunner(store, self.plan, self._outcome)

    def _outcome(self, step: ResponseOutcome, since_seen: float | None) -> None:
        if self.metrics is not None:
            self.metrics.outcome(step, since_seen)
        if self.on_response is not None:
            self.on_response(step, since_seen)

    def __iter__(self) -> Iterator[MonitorSettings]:
        return iter(sorted([*self.fixed.values(), *self.api.values()], key=lambda m: m.name))

    def get(self, name: str) -> MonitorSettings | None:
        return self.fixed.get(name) or self.api.get(name)

    def source(self, name: str) -> str:
        return "config" if name in self.fixed else "api"

    def _rebuild(self) -> None:
        specs = list(self)
        self.live.replace(Monitor(m) for m in specs)
        self._responders = {m.name: [self._responder(r, m.name) for r in m.responses] for m in specs}

    def _responder(self, spec: Any, monitor: str) -> Responder:
        if isinstance(spec, ScriptSpec):
            return ScriptResponder(spec, monitor)
        if self.writer is None:
            raise MonitorError(f"monitor {monitor!r}: a {spec.kind} response needs the chain (no writer)")
        if spec.kind == "transaction":
            return TransactionResponder(spec, monitor, self.writer)
        return SafeResponder(spec, monitor, self.writer, self.base)

    def put(self, body: dict[str, Any]) -> tuple[MonitorSettings, bool]:
        """Create or replace an API monitor; raises ValueError (invalid) or :class:`MonitorConflict`."""
        name = str(body.get("name"))
        if name in self.fixed:
            raise MonitorConflict(f"monitor {name} is defined in the config file; change it there")
        if name not in self.api and len(self.api) >= MAX_API_MONITORS:  # (each is a metrics label value)
            raise ValueError(f"at most {MAX_API_MONITORS} monitors through the API; delete one first")
        try:
            spec = MonitorSettings.model_validate(body)
        except ValidationError as err:
            raise ValueError(_explain(err)) from None
        if any(isinstance(r, ScriptSpec) for r in spec.responses):
            raise ValueError(f"monitor {name!r}: script responses can be set in the config file only")
        if getattr(self.writer, "guardian", None) is None and any(
                r.kind == "transaction" and not getattr(r, "dry_run", False) for r in spec.responses):
            raise ValueError(f"monitor {name!r}: a transaction response needs the guardian key "
                             "(CHAINSENTRY_GUARDIAN_KEY or guardian.keystore), or dry_run: true")
        Monitor(spec)  # MonitorError (a ValueError) names the monitor and the place
        for r in spec.responses:
            self._responder(r, name)  # (a response this service cannot run is refused before it is kept)
        with self._lock:
            self.api[name] = spec
            created = self.store.save_monitor(name, spec.model_dump(mode="json"))
            self._rebuild()
        return spec, created

    def delete(self, name: str) -> bool:
        if name in self.fixed:
            raise MonitorConflict(f"monitor {name} is defined in the config file; remove it there")
        with self._lock:
            if self.api.pop(name, None) is None:
                return False
            self.store.delete_monitor(name)
            self._rebuild()
        return True

    def plan(self, alert: Alert) -> list[Responder]:
        """The responders ``alert`` gets: its monitor's, or those of monitors that respond to
        detector alerts of its severity on their addresses."""
        if alert.monitor is not None:
            return list(self._responders.get(alert.monitor, ()))
        rank = SEVERITY_RANK.get(alert.severity, 0)
        out: list[Responder] = []
        for m in self:
            if m.respond_to_detectors is not None and rank >= SEVERITY_RANK[m.respond_to_detectors] \
                    and not set(m.addresses).isdisjoint(alert.addresses):
                out += self._responders.get(m.name, ())
        return out

    def routes(self, alert: Alert) -> set[str] | None:
        """The subscriptions a monitor's alert goes to (None: every subscription)."""
        spec = self.get(alert.monitor) if alert.monitor is not None else None
        return set(spec.subscriptions) if spec is not None and spec.subscriptions is not None else None
