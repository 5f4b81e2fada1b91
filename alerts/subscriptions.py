"""The live set of subscriptions: those of the config file (fixed) and those made through the API
(kept in the alert store, so they survive a restart).

The lifecycle reads the book each time it queues an alert, so a subscription created, replaced or
deleted through the API takes effect with the next alert. A config-file subscription cannot be
changed through the API (the file is the source of truth for it). Secrets of API subscriptions
are stored with them, sealed (Fernet: AES and HMAC) when the service has a secrets key, and
never returned by :meth:`SubscriptionBook.describe`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import Any
from urllib.parse import urlsplit

from cryptography.fernet import Fernet, InvalidToken

from ingest.errors import UserError

from .channels import Subscription, parse_subscriptions
from .store import AlertStore


def _fernet(key: str | None) -> Fernet | None:
    if not key:
        return None
    try:
        return Fernet(key.encode())
    except ValueError:
        raise SealedSecretError("CHAINSENTRY_SECRETS_KEY is not a Fernet key (32 url-safe base64-encoded bytes; "
                                "make one with: python -c 'from cryptography.fernet import Fernet; "
                                "print(Fernet.generate_key().decode())')") from None


def redact_url(url: str) -> str:
    """A delivery URL without what may be a credential: chat webhooks (Slack, Discord) and the
    Telegram bot API carry their token in the path, other receivers often in the query.

    >>> redact_url("https://hooks.slack.com/services/T0/B0/XyZ"), redact_url("http://user:pw@10.0.0.1:8080/")
    ('https://hooks.slack.com/***', 'http://10.0.0.1:8080/')
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # not a URL one can take apart: show nothing of it
        return "***"
    if ":" in host:
        host = f"[{host}]"
    hidden = "***" if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{host}{port}/{hidden}"


class SubscriptionConflict(Exception):
    """The name belongs to a config-file subscription, which the API may not change."""


class SealedSecretError(UserError, ValueError):
    """Stored secrets that cannot be opened (no key, or another key than the one that sealed them)."""


class SubscriptionBook:
    def __init__(self, store: AlertStore, fixed: list[Subscription], *,
                 check: Callable[[Subscription], None] | None = None, default_secret: str | None = None,
                 fixed_secrets: dict[str, str] | None = None, secrets_key: str | None = None) -> None:
        """``check`` vets a new subscription (target address, secret) and raises ValueError to refuse it;
        ``fixed_secrets``: the config-file webhooks that have a secret of their own; ``secrets_key``
        (a Fernet key) seals API subscriptions' secrets in the store (those stored in plain text
        before are sealed at start)."""
        self.store = store
        self._fernet = _fernet(secrets_key)
        self.default_secret = default_secret
        self._check = check
        self._fixed = {s.name: s for s in fixed}
        self._lock = threading.Lock()
        self._api: dict[str, Subscription] = {}
        self._secrets: dict[str, str] = dict(fixed_secrets or {})
        for body in store.subscriptions():
            secret = self._open(body)
            body["allow_private"] = False  # private targets are the operator's to allow, not an API caller's
            [sub] = parse_subscriptions([body])
            self._api[sub.name] = sub
            if secret:
                self._secrets[sub.name] = secret
        self._all = self._build()

    def _build(self) -> list[Subscription]:
        return [*self._fixed.values(), *(s for n, s in sorted(self._api.items()) if n not in self._fixed)]

    def __iter__(self) -> Iterator[Subscription]:
        return iter(self._all)

    def __len__(self) -> int:
        return len(self._all)

    def get(self, name: str) -> Subscription | None:
        return self._fixed.get(name) or self._api.get(name)

    def source(self, name: str) -> str:
        return "config" if name in self._fixed else "api"

    def secret_for(self, name: str) -> str | None:
        return self._secrets.get(name, self.default_secret)

    def signed(self, name: str) -> bool:
        sub = self.get(name)
        return sub is None or sub.kind == "webhook"

    def _seal(self, secret: str) -> dict[str, str]:
        if self._fernet is None:
            return {"secret": secret}
        return {"secret_sealed": self._fernet.encrypt(secret.encode()).decode()}

    def _open(self, body: dict[str, Any]) -> str | None:
        """Take the secret out of a stored subscription body (sealing a plain one if a key is set)."""
        sealed = body.pop("secret_sealed", None)
        secret = body.pop("secret", None)
        if sealed is not None:
            if self._fernet is None:
                raise SealedSecretError(f"subscription {body.get('name')!r} has a sealed secret: set "
                                        "CHAINSENTRY_SECRETS_KEY to the key that sealed it")
            try:
                return str(self._fernet.decrypt(sealed.encode()).decode())
            except InvalidToken:
                raise SealedSecretError(f"subscription {body.get('name')!r}: CHAINSENTRY_SECRETS_KEY is not the "
                                        "key that sealed its secret") from None
        if secret and self._fernet is not None:
            self.store.save_subscription(str(body["name"]), {**body, **self._seal(secret)})
        return str(secret) if secret else None

    def describe(self, sub: Subscription) -> dict[str, Any]:
        """The subscription as the API shows it: credentials write-only (no secret, the URL's path
        and query hidden, a PagerDuty routing key as ``***``), its source, whether it has its own secret."""
        body = asdict(sub)
        body["url"] = redact_url(sub.url)
        if sub.routing_key:
            body["routing_key"] = "***"
        body["source"] = self.source(sub.name)
        body["has_own_secret"] = sub.name in self._secrets
        return body

    def put(self, body: dict[str, Any]) -> tuple[Subscription, bool]:
        """Create or replace an API subscription from its JSON; returns (it, created).
        Raises ValueError (invalid) or SubscriptionConflict (a config-file name)."""
        body = dict(body, allow_private=False)  # private targets: the operator's choice, not the caller's
        secret = body.pop("secret", None)
        [sub] = parse_subscriptions([body])
        if sub.name in self._fixed:
            raise SubscriptionConflict(f"subscription {sub.name!r} comes from the config file; change it there")
        if sub.kind == "webhook" and not (secret or self.default_secret):
            raise ValueError(f"subscription {sub.name!r}: a webhook needs a secret (give 'secret' or set "
                             "CHAINSENTRY_WEBHOOK_SECRET)")
        if self._check is not None:
            self._check(sub)
        stored = {k: v for k, v in asdict(sub).items()}
        if secret:
            stored.update(self._seal(secret))
        with self._lock:
            created = self.store.save_subscription(sub.name, stored)
            self._api[sub.name] = sub
            if secret:
                self._secrets[sub.name] = secret
            else:
                self._secrets.pop(sub.name, None)
            self._all = self._build()
        return sub, created

    def delete(self, name: str) -> bool:
        """Delete an API subscription; its pending deliveries become dead letters."""
        if name in self._fixed:
            raise SubscriptionConflict(f"subscription {name!r} comes from the config file; remove it there")
        with self._lock:
            if not self.store.delete_subscription(name):
                return False
            self._api.pop(name, None)
            self._secrets.pop(name, None)
            self._all = self._build()
        self.store.drop_pending(name, "subscription deleted")
        return True
