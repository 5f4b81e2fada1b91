"""Alert lifecycle: firing, then confirmed after N blocks, or retracted when a reorg removes the block.

Every status change is stored (the id stays the same) and queued for every subscription, so a
subscriber hears of an alert once per status: ``firing``, then ``confirmed`` or ``retracted``.
A mempool-stage alert keeps its id when its transaction is mined (the block-stage alert updates
the same row). A retracted alert whose transaction is mined again in another block (the usual
fate of a transaction after a reorg) fires again with the new block: its ``remined`` count grows,
and each of its deliveries from then on carries that count in its delivery key (``firing#1``),
so subscribers that deduplicate on ``Idempotency-Key`` hear it too.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable

from .channels import Subscription, render
from .model import Alert
from .store import AlertStore

log = logging.getLogger(__name__)


class AlertLifecycle:
    def __init__(self, store: AlertStore, subscriptions: Iterable[Subscription] = (), *,
                 confirmations: int = 12, cooldown_blocks: int = 5, max_groups: int = 10_000) -> None:
        self.store = store
        # read on every alert: a SubscriptionBook changed through the API takes effect at once
        self.subscriptions = subscriptions
        self.confirmations = confirmations
        self.cooldown_blocks = cooldown_blocks
        self.max_groups = max_groups
        # (detector, subject) -> (alert id, block number) of the alert that opened the group
        self._groups: OrderedDict[tuple[str, str], tuple[str, int]] = OrderedDict()
        self._listeners: list[asyncio.Queue[Alert]] = []
        # the subscriptions an alert may go to (a monitor's own list), None meaning all; set by the service
        self.routes: Callable[[Alert], set[str] | None] | None = None

    def listen(self, maxsize: int = 1000) -> asyncio.Queue[Alert]:
        """A queue that receives every alert status change from now on (for the live stream)."""
        q: asyncio.Queue[Alert] = asyncio.Queue(maxsize=maxsize)
        self._listeners.append(q)
        return q

    @property
    def listeners(self) -> int:
        return len(self._listeners)

    def unlisten(self, q: asyncio.Queue[Alert]) -> None:
        if q in self._listeners:
            self._listeners.remove(q)

    def _broadcast(self, alert: Alert) -> None:
        for q in self._listeners:
            if q.full():  # a slow reader loses its oldest events, not our memory
                q.get_nowait()
            q.put_nowait(alert)

    def _publish(self, alert: Alert) -> bool:
        if not self.store.upsert(alert):
            return False
        self._broadcast(alert)
        key = f"{alert.status}#{alert.remined}" if alert.remined else alert.status
        allowed = self.routes(alert) if self.routes is not None else None
        for sub in self.subscriptions:
            if (allowed is None or sub.name in allowed) and sub.matches(alert):
                body = render(sub, alert)
                if body is not None:
                    self.store.enqueue(alert, sub.name, sub.url, body, key=key)
        return True

    def fire(self, alert: Alert) -> bool:
        """A new alert (or the block stage of a mempool alert); False if nothing changed."""
        existing = self.store.get(alert.id)
        if existing is not None and existing.status == "retracted" and _remined(existing, alert):
            alert = alert.with_status("firing", remined=existing.remined + 1)
            log.warning("alert %s fires again: its transaction was mined again in block %s", alert.id,
                        alert.block_number)
            return self._publish(alert)
        if existing is not None and existing.status in ("confirmed", "retracted"):
            return False  # a later status wins over a repeated firing (redelivery, replay overlap)
        if existing is not None and existing.stage == alert.stage:
            return False
        if existing is None and self._suppressed(alert):
            return False
        if existing is None and self._fold(alert):
            return False
        return self._publish(alert)

    def _suppressed(self, alert: Alert) -> bool:
        """An analyst marked this pattern (detector, subject) a false positive."""
        return alert.subject is not None and self.store.allowlisted(alert.detector, alert.subject)

    def _fold(self, alert: Alert) -> bool:
        """Cooldown and grouping: a new alert from the same detector about the same subject (the
        contract called) within ``cooldown_blocks`` of the group's first alert is folded into it
        (its ``folded`` count grows; subscribers are not notified again)."""
        number, subject = alert.block_number, alert.subject
        if number is None or subject is None:
            return False
        key = (alert.detector, subject)
        opened = self._groups.get(key)
        if opened is not None and 0 <= number - opened[1] <= self.cooldown_blocks:
            head = self.store.get(opened[0])
            if head is not None and head.status != "retracted":
                folded = [*head.folded_tx_hashes, alert.tx_hash or ""][-20:]
                self.store.update_body(head.replace(folded=head.folded + 1, folded_tx_hashes=folded))
                return True
        self._groups[key] = (alert.id, number)
        self._groups.move_to_end(key)
        while len(self._groups) > self.max_groups:
            self._groups.popitem(last=False)
        return False

    def block_added(self, number: int) -> list[Alert]:
        """Confirm the firing alerts that now have ``confirmations`` blocks on top."""
        confirmed = []
        for alert in self.store.firing_up_to(number - self.confirmations):
            alert = alert.with_status("confirmed")
            if self._publish(alert):
                confirmed.append(alert)
        return confirmed

    def block_retracted(self, block_hash: str) -> list[Alert]:
        """Retract the alerts of a block that a reorg removed."""
        retracted = []
        for alert in self.store.by_block(block_hash):
            if alert.status == "retracted":
                continue
            alert = alert.with_status("retracted")
            if self._publish(alert):
                retracted.append(alert)
                log.warning("alert %s retracted: block %s left the canonical chain", alert.id, block_hash)
        return retracted


def _remined(retracted: Alert, alert: Alert) -> bool:
    """Whether ``alert`` is its retracted transaction mined again (in another block), rather than
    a redelivery of the firing that was retracted."""
    return alert.stage == "block" and alert.block_hash not in (None, retracted.block_hash)
