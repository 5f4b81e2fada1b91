"""Responses: what is done about an alert, automatically, once per alert and response.

A :class:`Responder` acts on an alert (run a script, send a guardian transaction, write a Safe
proposal: :mod:`.responders`) and reports :class:`~.model.ResponseOutcome` values as it goes. The
:class:`ResponseRunner` decides which responders an alert gets (``plan``, handed in by the
composition root from the monitors), claims each in the store first (so a restart, a redelivery
or the block stage of a mempool alert never runs one twice), rate-limits each responder, runs
them in the background, and records every outcome on the alert (shown by the API) and in metrics.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from .model import Alert, ResponseOutcome, rfc3339
from .store import AlertStore

log = logging.getLogger(__name__)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScriptSpec(_Strict):
    """Run ``command`` (no shell) with the alert JSON on stdin; exit 0 is ``ran``, else ``failed``."""

    kind: Literal["script"]
    name: str = "script"
    command: list[str] = Field(min_length=1)
    timeout: float = Field(10.0, gt=0, le=600)
    max_per_hour: int = Field(60, ge=1)


class TransactionSpec(_Strict):
    """Call ``function`` (a signature, ``pause()``) with ``args`` on ``contract`` from the guardian
    key, priced to be included before the pending transaction that triggered it."""

    kind: Literal["transaction"]
    name: str = "transaction"
    contract: str
    function: str
    args: list[str | int | bool] = []
    dry_run: bool = False  # only simulate (eth_call and gas estimate) and report
    fee_bump_percent: int = Field(50, ge=1, le=1000)  # priority fee above the trigger's
    min_priority_fee_gwei: float = Field(2.0, ge=0)
    max_fee_gwei: float = Field(500.0, gt=0)  # never pay more than this per gas
    wait_receipt: float = Field(60.0, ge=0, le=3600)  # seconds to wait for it to be mined (0: don't)
    max_per_hour: int = Field(3, ge=1)


class SafeSpec(_Strict):
    """Write an unsigned Safe transaction proposal (``function`` on ``contract``) for the owners of
    ``safe`` to sign: a JSON file in ``out_dir`` with its fields and its EIP-712 ``safeTxHash``."""

    kind: Literal["safe"]
    name: str = "safe"
    safe: str
    contract: str
    function: str
    args: list[str | int | bool] = []
    out_dir: str = "safe-proposals"
    max_per_hour: int = Field(10, ge=1)


ResponseSpec = ScriptSpec | TransactionSpec | SafeSpec


class Responder(Protocol):
    """One response. ``respond`` yields each outcome as it happens (sent, then mined)."""

    name: str
    kind: str
    max_per_hour: int

    def respond(self, alert: Alert) -> AsyncIterator[ResponseOutcome]: ...


def outcome(responder: Responder, what: str, detail: str = "", tx_hash: str | None = None) -> ResponseOutcome:
    return ResponseOutcome(responder.name, responder.kind, what, tx_hash, detail, rfc3339(time.time()))


class ResponseRunner:
    """Runs the responders ``plan`` gives each alert (see the module docstring)."""

    def __init__(self, store: AlertStore, plan: Callable[[Alert], list[Responder]],
                 on_outcome: Callable[[ResponseOutcome, float | None], None] | None = None) -> None:
        self.store = store
        self.plan = plan
        self.on_outcome = on_outcome
        self._recent: dict[str, deque[float]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def handle(self, alert: Alert) -> None:
        """Start the alert's responses (call from the event loop); a firing alert only."""
        if alert.status != "firing":
            return
        for responder in self.plan(alert):
            if not self.store.claim_response(alert.id, outcome(responder, "started")):
                continue  # taken before: once per alert
            if not self._allowed(responder):
                self._record(alert, outcome(responder, "skipped", f"rate limit: {responder.max_per_hour} an hour"))
                continue
            task = asyncio.get_running_loop().create_task(self._run(responder, alert))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _allowed(self, responder: Responder) -> bool:
        now = time.monotonic()
        recent = self._recent.setdefault(responder.name, deque())
        while recent and now - recent[0] > 3600:
            recent.popleft()
        if len(recent) >= responder.max_per_hour:
            return False
        recent.append(now)
        return True

    async def _run(self, responder: Responder, alert: Alert) -> None:
        try:
            async for step in responder.respond(alert):
                self._record(alert, step)
        except asyncio.CancelledError:
            self._record(alert, outcome(responder, "failed", "stopped before it finished"))
            raise
        except Exception as err:  # a responder's own failure is recorded on the alert, never raised on
            log.warning("response %s to alert %s failed: %s", responder.name, alert.id, type(err).__name__)
            self._record(alert, outcome(responder, "failed", f"{type(err).__name__}: {err}"[:300]))

    def _record(self, alert: Alert, step: ResponseOutcome) -> None:
        self.store.record_response(alert.id, step)
        log.info("response %s to alert %s: %s %s %s", step.responder, alert.id, step.outcome, step.tx_hash or "",
                 step.detail)
        if self.on_outcome is not None:
            self.on_outcome(step, _since(alert.created_at) if alert.stage == "mempool" else None)

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait for the responses under way (at shutdown), then stop what is left."""
        if self._tasks:
            _, left = await asyncio.wait(set(self._tasks), timeout=timeout)
            for task in left:
                task.cancel()
            if left:
                await asyncio.wait(left, timeout=5)


def _since(created_at: str) -> float | None:
    """Seconds since an alert's creation time (a mempool alert's: when its transaction was first seen)."""
    try:
        return max(0.0, time.time() - datetime.fromisoformat(created_at.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return None
