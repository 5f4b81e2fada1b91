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
from collections.abc import Iterable
from typing import Any

from .channels import Subscription, render
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
        self._listeners: list[asyncio.Queue[dict[str, Any]]] = []

    def listen(self, maxsize: int = 1000) -> asyncio.Queue[dict[str, Any]]:
        """A queue that receives every alert status change from now on (for the live stream)."""
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=maxsize)
        self._listeners.append(q)
        return q

    @property
    def listeners(self) -> int:
        return len(self._listeners)

    def unlisten(self, q: asyncio.Queue[dict[str, Any]]) -> None:
        if q in self._listeners:
            self._listeners.remove(q)

    def _broadcast(self, alert: dict[str, Any]) -> None:
        for q in self._listeners:
            if q.full():  # a slow reader loses its oldest events, not our memory
                q.get_nowait()
            q.put_nowait(alert)

    def _publish(self, alert: dict[str, Any]) -> bool:
        if not self.store.upsert(alert):
            return False
        self._broadcast(alert)
        remined = int(alert.get("remined") or 0)
        key = f"{alert['status']}#{remined}" if remined else alert["status"]
        for sub in self.subscriptions:
            if sub.matches(alert):
                body = render(sub, alert)
                if body is not None:
                    self.store.enqueue(alert, sub.name, sub.url, body, key=key)
        return True

    def fire(self, alert: dict[str, Any]) -> bool:
        """A new alert (or the block stage of a mempool alert); False if nothing changed."""
        existing = self.store.get(alert["id"])
        if existing is not None and existing["status"] == "retracted" and _remined(existing, alert):
            alert = dict(alert, status="firing", remined=int(existing.get("remined") or 0) + 1)
            log.warning("alert %s fires again: its transaction was mined again in block %s",
                        alert["id"], alert.get("block_number"))
            return self._publish(alert)
        if existing is not None and existing["status"] in ("confirmed", "retracted"):
            return False  # a later status wins over a repeated firing (redelivery, replay overlap)
        if existing is not None and existing.get("stage") == alert.get("stage"):
            return False
        if existing is None and self._suppressed(alert):
            return False
        if existing is None and self._fold(alert):
            return False
        return self._publish(alert)

    def _suppressed(self, alert: dict[str, Any]) -> bool:
        """An analyst marked this pattern (detector, subject) a false positive."""
        addresses = alert.get("addresses") or []
        return bool(addresses) and self.store.allowlisted(str(alert.get("detector")), str(addresses[-1]))

    def _fold(self, alert: dict[str, Any]) -> bool:
        """Cooldown and grouping: a new alert from the same detector about the same subject (the
        contract called) within ``cooldown_blocks`` of the group's first alert is folded into it
        (its ``folded`` count grows; subscribers are not notified again)."""
        number = alert.get("block_number")
        addresses = alert.get("addresses") or []
        if number is None or not addresses:
            return False
        key = (str(alert.get("detector")), str(addresses[-1]))
        opened = self._groups.get(key)
        if opened is not None and 0 <= number - opened[1] <= self.cooldown_blocks:
            head = self.store.get(opened[0])
            if head is not None and head["status"] != "retracted":
                folded = [*head.get("folded_tx_hashes", []), alert["tx_hash"]][-20:]
                self.store.update_body(dict(head, folded=int(head.get("folded", 0)) + 1, folded_tx_hashes=folded))
                return True
        self._groups[key] = (alert["id"], number)
        self._groups.move_to_end(key)
        while len(self._groups) > self.max_groups:
            self._groups.popitem(last=False)
        return False

    def block_added(self, number: int) -> list[dict[str, Any]]:
        """Confirm the firing alerts that now have ``confirmations`` blocks on top."""
        confirmed = []
        for alert in self.store.firing_up_to(number - self.confirmations):
            alert = dict(alert, status="confirmed")
            if self._publish(alert):
                confirmed.append(alert)
        return confirmed

    def block_retracted(self, block_hash: str) -> list[dict[str, Any]]:
        """Retract the alerts of a block that a reorg removed."""
        retracted = []
        for alert in self.store.by_block(block_hash):
            if alert["status"] == "retracted":
                continue
            alert = dict(alert, status="retracted")
            if self._publish(alert):
                retracted.append(alert)
                log.warning("alert %s retracted: block %s left the canonical chain", alert["id"], block_hash)
        return retracted


def _remined(retracted: dict[str, Any], alert: dict[str, Any]) -> bool:
    """Whether ``alert`` is its retracted transaction mined again (in another block), rather than
    a redelivery of the firing that was retracted."""
    return alert.get("stage") == "block" and alert.get("block_hash") not in (None, retracted.get("block_hash"))
