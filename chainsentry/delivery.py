"""Alert delivery wired from settings: the store, the lifecycle, subscriptions and the worker."""

from __future__ import annotations

import logging
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge

from alerts.channels import Subscription, parse_subscriptions
from alerts.lifecycle import AlertLifecycle
from alerts.model import Alert
from alerts.store import AlertStore
from alerts.subscriptions import SubscriptionBook
from alerts.webhook import DeliveryWorker, check_secret, check_target

from .config import ConfigError, Secrets, Settings

log = logging.getLogger(__name__)


class Delivery:
    """Alerts into the store and outbox through the lifecycle; workers deliver them."""

    def __init__(self, subscriptions: list[Subscription], secret: str | None, store_path: Path,
                 registry: CollectorRegistry | None = None, confirmations: int = 12,
                 allow_private: bool = False, own_secrets: dict[str, str] | None = None,
                 secrets_key: str | None = None) -> None:
        self.store = AlertStore(store_path)
        self.allow_private = allow_private

        def vet(sub: Subscription) -> None:
            check_target(sub.url, allow_private=allow_private or sub.allow_private)

        self.subscriptions = SubscriptionBook(self.store, subscriptions, check=vet, default_secret=secret,
                                              fixed_secrets=own_secrets, secrets_key=secrets_key)
        self.lifecycle = AlertLifecycle(self.store, self.subscriptions, confirmations=confirmations)
        for gone in self.store.pending_subscriptions() - {sub.name for sub in self.subscriptions}:
            dropped = self.store.drop_pending(gone, "subscription no longer configured")
            log.warning("subscription %s is no longer configured: its %d waiting deliveries are dead letters "
                        "(resend them through the API if it comes back)", gone, dropped)
        self._before = self.store.outbox_counts()
        self.known = 0  # alerts accepted in this run that the store already held, unchanged
        self._outcomes: Counter | None = None
        if registry is not None:
            self._outcomes = Counter("webhook_deliveries", "Alert delivery attempts by outcome", ["outcome"],
                                     namespace="chainsentry", registry=registry)
            pending = Gauge("outbox_pending", "Alert deliveries waiting in the outbox", namespace="chainsentry",
                            registry=registry)
            pending.set_function(lambda: self.store.outbox_counts()["pending"])
            dead = Gauge("outbox_dead", "Deliveries in the dead letters (failed for good; re-sendable)",
                         namespace="chainsentry", registry=registry)
            dead.set_function(lambda: self.store.outbox_counts()["dead"])

    def accept(self, alert: Alert) -> bool:
        """Into the lifecycle; True if it is new or moved on (its stage), False if already known."""
        if not self.lifecycle.fire(alert):
            self.known += 1
            return False
        return True

    def worker(self) -> DeliveryWorker:
        counter = self._outcomes
        return DeliveryWorker(self.store, self.subscriptions.default_secret, book=self.subscriptions,
                              allow_private=self.allow_private,
                              on_outcome=(lambda o: counter.labels(o).inc()) if counter is not None else None)

    async def finish(self) -> dict[str, int]:
        """Deliver everything queued (each alert delivered or dead-lettered), then report what this
        run did: deliveries ``sent`` and ``failed`` (dead-lettered) now, alerts the store already
        held (``already_known``: delivered by an earlier run, not sent again), and what is left."""
        worker = self.worker()
        try:
            await worker.drain()
        finally:
            await worker.aclose()
        after = self.store.outbox_counts()
        return {"sent": after["delivered"] - self._before["delivered"], "failed": after["dead"] - self._before["dead"],
                "already_known": self.known, "pending": after["pending"]}

    async def run_forever(self) -> None:
        worker = self.worker()
        try:
            await worker.run()
        finally:
            await worker.aclose()


def build_delivery(settings: Settings, secrets: Secrets, webhook: str | None, allow_private: bool,
                   store_path: Path, registry: CollectorRegistry | None = None) -> Delivery:
    """Subscriptions from the config file plus ``--webhook``; targets and secret checked up front."""
    items = [dict(item) for item in settings.subscriptions]
    own_secrets = {str(item.get("name")): str(item.pop("secret")) for item in items if item.get("secret")}
    try:
        subs = parse_subscriptions(items)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"invalid subscriptions: {err}") from None
    if webhook is not None:
        subs.append(Subscription("cli", "webhook", webhook))
    for s in subs:
        check_target(s.url, allow_private=allow_private or s.allow_private)
    secret = secrets.reveal(secrets.webhook_secret)
    if any(s.kind == "webhook" and s.name not in own_secrets for s in subs):
        secret = check_secret(secret)
    return Delivery(subs, secret, store_path, registry, allow_private=allow_private, own_secrets=own_secrets,
                    secrets_key=secrets.reveal(secrets.secrets_key))
