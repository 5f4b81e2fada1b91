"""Subscriptions made through the API, per-subscription rate limits, and a receiver down for 30 s,
against real loopback receivers."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from alerts.channels import Subscription
from alerts.webhook import DeliveryPolicy, DeliveryWorker, verify
from chainsentry.api import create_app
from chainsentry.delivery import Delivery
from tests.test_alerts import SECRET, Receiver, alert, drained

AUTH = {"Authorization": "Bearer tok"}
OWN_SECRET = "a-subscription-of-its-own-0123"


class TimedReceiver(Receiver):
    """Also keeps when each accepted delivery arrived, and what it was signed with."""

    def __init__(self, secret: str = SECRET) -> None:
        super().__init__(secret=secret)
        self.arrivals: list[float] = []
        self.signed: list[tuple[str, bytes, str]] = []

    def respond(self, raw: bytes, headers: Any) -> tuple[int, dict[str, str], bytes]:
        code, hdrs, body = super().respond(raw, headers)
        if code == 200:
            self.arrivals.append(time.monotonic())
            self.signed.append((headers["X-Chainsentry-Timestamp"], raw, headers["X-Chainsentry-Signature"]))
        return code, hdrs, body


def distinct(i: int) -> dict[str, Any]:
    """Alert ``i`` about a subject of its own (so the cooldown folds nothing)."""
    return alert(i, address=f"0x{i + 1:040x}")


def _delivery(tmp_path: Path, fixed: list[Subscription] | None = None) -> Delivery:
    return Delivery(fixed or [], SECRET, tmp_path / "alerts.db", allow_private=True)  # receivers on loopback


def _client(d: Delivery) -> TestClient:
    return TestClient(create_app(CollectorRegistry(), lambda: {"healthy": True}, d.store, api_token="tok",
                                 lifecycle=d.lifecycle, subscriptions=d.subscriptions))


async def _drain(d: Delivery, policy: DeliveryPolicy | None = None) -> DeliveryWorker:
    worker = DeliveryWorker(d.store, SECRET, book=d.subscriptions, allow_private=d.allow_private,
                            policy=policy or DeliveryPolicy(attempts=3, backoff=0.05, timeout=2))
    try:
        await worker.drain()
    finally:
        await worker.aclose()
    return worker


async def test_subscriptions_crud_through_the_api_takes_effect_and_survives_a_restart(tmp_path: Path) -> None:
    own = TimedReceiver(secret=OWN_SECRET).start()
    try:
        d = _delivery(tmp_path, [Subscription("from-config", "slack", "https://hooks.slack.com/services/T/B/x",
                                              min_severity="critical")])
        c = _client(d)
        body = {"kind": "webhook", "url": own.url, "min_severity": "high", "secret": OWN_SECRET}
        assert c.put("/subscriptions/sec-team", json=body).status_code == 401, "writes need the token"
        r = c.put("/subscriptions/sec-team", json=body, headers=AUTH)
        assert r.status_code == 201, r.text
        assert "secret" not in r.json() and r.json()["has_own_secret"] and OWN_SECRET not in r.text
        assert c.put("/subscriptions/sec-team", json=body, headers=AUTH).status_code == 200
        assert c.put("/subscriptions/from-config", json=body, headers=AUTH).status_code == 409
        r = c.put("/subscriptions/tg", json={"kind": "telegram", "url": "https://api.telegram.org/botX/sendMessage"},
                  headers=AUTH)
        assert r.status_code == 422 and "chat_id" in r.text
        listed = {s["name"]: s for s in c.get("/subscriptions").json()}
        assert listed["from-config"]["source"] == "config" and listed["sec-team"]["source"] == "api"
        assert listed["from-config"]["rate_limit"] is None and c.get("/subscriptions/nope").status_code == 404

        # takes effect with the next alert: the new subscription's filter and its own secret apply
        d.accept(alert(1, severity="high"))
        d.accept(alert(2, severity="low"))
        await _drain(d)
        assert set(own.acted) == {"cs-0001:firing"} and own.bad_signatures == 0

        # a restart keeps it (the store holds it)
        d.store.close()
        d2 = _delivery(tmp_path, [])
        assert d2.subscriptions.get("sec-team") is not None and d2.subscriptions.secret_for("sec-team") == OWN_SECRET
        c2 = _client(d2)
        own.stop()  # deliveries now wait in the outbox
        d2.accept(alert(3, severity="critical"))
        assert d2.store.outbox_counts()["pending"] == 1
        assert c2.delete("/subscriptions/sec-team").status_code == 401
        assert c2.delete("/subscriptions/sec-team", headers=AUTH).status_code == 204
        assert c2.delete("/subscriptions/sec-team", headers=AUTH).status_code == 404
        [dead] = c2.get("/dead-letters").json()
        assert dead["alert_id"] == "cs-0003" and dead["last_error"] == "subscription deleted", "nothing silently lost"
        d2.accept(alert(4, severity="critical"))
        assert d2.store.outbox_counts()["pending"] == 0, "a deleted subscription gets nothing new"
    finally:
        own.stop()


async def test_a_subscription_rate_limit_spaces_deliveries_and_loses_none(tmp_path: Path) -> None:
    rx = TimedReceiver().start()
    try:
        d = _delivery(tmp_path)
        r = _client(d).put("/subscriptions/slow", headers=AUTH, json={
            "kind": "webhook", "url": rx.url, "rate_limit": 5, "burst": 2})
        assert r.status_code == 201, r.text
        for i in range(12):
            d.accept(distinct(i))
        worker = await _drain(d)
    finally:
        rx.stop()
    assert len(rx.acted) == 12 and d.store.outbox_counts() == {"pending": 0, "delivered": 12, "dead": 0}
    assert worker.throttled >= 10 and worker.outcomes == {"delivered": 12}, "throttling is not a failed attempt"
    # no 1-second window holds more than burst + rate deliveries
    t = rx.arrivals
    worst = max(sum(1 for x in t if a <= x < a + 1.0) for a in t)
    assert worst <= 2 + 5, (worst, [round(x - t[0], 2) for x in t])
    assert t[-1] - t[0] >= (12 - 2) / 5 * 0.9, "the 12 deliveries were spread out, not sent at once"


@pytest.mark.timeout(120)
async def test_receiver_down_for_30_s_then_up_every_alert_arrives_and_is_acted_on_once(tmp_path: Path) -> None:
    """Alerts keep coming while the receiver is down for 30 s; when it comes back each arrives,
    each idempotency key is acted on once, and every signature verifies with the secret and
    fails with another."""
    rx = TimedReceiver()  # not started: down
    d = _delivery(tmp_path, [Subscription("hook", "webhook", rx.url, allow_private=True)])
    worker = DeliveryWorker(d.store, SECRET, book=d.subscriptions, seed=3,
                            policy=DeliveryPolicy(attempts=50, backoff=0.5, backoff_max=4.0, timeout=2))
    runner = asyncio.create_task(worker.run())
    try:
        t0 = time.monotonic()
        n = 0
        while time.monotonic() - t0 < 30:
            d.accept(distinct(n))
            n += 1
            await asyncio.sleep(0.5)
        assert d.store.outbox_counts()["delivered"] == 0 and worker.outcomes.get("connection_error", 0) > 0
        rx.start()
        for i in range(n, n + 10):  # and more after it is back
            d.accept(distinct(i))
        deadline = time.monotonic() + 45
        while d.store.outbox_counts()["pending"] and time.monotonic() < deadline:
            await asyncio.sleep(0.25)
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        await worker.aclose()
        rx.stop()
    total = n + 10
    assert d.store.outbox_counts() == {"pending": 0, "delivered": total, "dead": 0}
    assert set(rx.acted) == {f"cs-{i:04d}:firing" for i in range(total)}, "every alert, each key acted on once"
    assert rx.bad_signatures == 0 and len(rx.signed) >= total
    assert all(verify(SECRET, ts, raw, sig) for ts, raw, sig in rx.signed)
    assert not any(verify("another-secret-entirely", ts, raw, sig) for ts, raw, sig in rx.signed)


async def test_a_config_file_webhook_may_carry_its_own_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from chainsentry.config import Secrets, Settings
    from chainsentry.delivery import build_delivery

    monkeypatch.delenv("CHAINSENTRY_WEBHOOK_SECRET", raising=False)
    rx = TimedReceiver(secret=OWN_SECRET).start()
    try:
        settings = Settings.model_validate({"subscriptions": [
            {"name": "team", "kind": "webhook", "url": rx.url, "allow_private": True, "secret": OWN_SECRET}]})
        d = build_delivery(settings, Secrets(), None, False, tmp_path / "a.db")
        listed = _client(d).get("/subscriptions").json()
        assert listed[0]["has_own_secret"] and OWN_SECRET not in str(listed)
        d.accept(distinct(1))
        await _drain(d)
        assert set(rx.acted) == {"cs-0001:firing"} and rx.bad_signatures == 0
        no_secret = Settings.model_validate({"subscriptions": [
            {"name": "team", "kind": "webhook", "url": rx.url, "allow_private": True}]})
        with pytest.raises(ValueError, match="webhook secret is empty"):
            build_delivery(no_secret, Secrets(), None, False, tmp_path / "b.db")
    finally:
        rx.stop()


def test_reads_can_require_the_token_too(tmp_path: Path) -> None:
    d = _delivery(tmp_path)
    d.accept(distinct(1))
    app = create_app(CollectorRegistry(), lambda: {"healthy": True}, d.store, api_token="tok",
                     lifecycle=d.lifecycle, subscriptions=d.subscriptions, read_auth=True)
    c = TestClient(app)
    for path in ("/alerts", "/alerts/cs-0001", "/subscriptions", "/dead-letters"):
        assert c.get(path).status_code == 401, path
        assert c.get(path, headers=AUTH).status_code == 200, path
    assert c.get("/healthz").status_code == 200 and c.get("/metrics").status_code == 200, "probes stay open"
    assert TestClient(create_app(CollectorRegistry(), lambda: {"healthy": True}, d.store, api_token="tok",
                                 subscriptions=d.subscriptions, read_auth=False)).get("/alerts").status_code == 200


@pytest.mark.parametrize("target", ["http://127.0.0.1:9/x", "http://169.254.169.254/latest", "http://100.100.100.200/",
                                    "http://10.0.0.1/", "http://[fec0::1]/", "http://[2002:7f00:1::]/",
                                    "http://[::ffff:127.0.0.1]/", "http://224.0.0.1/", "http://0.0.0.0/"])
def test_an_api_subscription_cannot_target_an_address_that_is_not_public(tmp_path: Path, target: str) -> None:
    d = Delivery([], SECRET, tmp_path / "alerts.db", allow_private=False)
    c = _client(d)
    r = c.put("/subscriptions/x", json={"kind": "webhook", "url": target}, headers=AUTH)
    assert r.status_code == 422 and "not a public address" in r.text, r.text
    r = c.put("/subscriptions/x", json={"kind": "webhook", "url": target, "allow_private": True}, headers=AUTH)
    assert r.status_code == 422 and "allow_private" in r.text, "only the operator may allow private targets"


async def test_a_name_that_resolves_to_loopback_at_delivery_is_refused_at_connect_time(tmp_path: Path) -> None:
    """DNS rebinding: the name passed the check when the subscription was made; at delivery it
    resolves to loopback. The connection is refused and the delivery dead-lettered, unsent."""
    rx = TimedReceiver().start()
    try:
        d = Delivery([], SECRET, tmp_path / "alerts.db", allow_private=False)
        d.subscriptions._check = None  # as if the name had resolved to a public address when it was made
        d.subscriptions.put({"name": "rebound", "kind": "webhook", "url": rx.url.replace("127.0.0.1", "localhost")})
        d.accept(alert(1))
        worker = await _drain(d)
    finally:
        rx.stop()
    assert rx.attempts == 0 and worker.outcomes == {"refused": 1}
    [dead] = d.store.dead_letters()
    assert dead["last_error"].startswith("target refused: localhost resolves to")


def test_channel_credentials_are_write_only(tmp_path: Path) -> None:
    d = _delivery(tmp_path, [Subscription("pd", "pagerduty", "https://events.pagerduty.com/v2/enqueue",
                                          routing_key="R0UT1NGKEY")])
    c = _client(d)
    r = c.put("/subscriptions/chat", headers=AUTH, json={"kind": "slack",
                                                         "url": "https://hooks.slack.com/services/T1/B2/S3CR3T"})
    assert r.status_code == 201 and "S3CR3T" not in r.text
    listed = c.get("/subscriptions").text
    assert "S3CR3T" not in listed and "R0UT1NGKEY" not in listed and "https://hooks.slack.com/***" in listed
    r = c.put("/subscriptions/bad", headers=AUTH, json={"kind": "webhook", "url": "https://example.com/h",
                                                        "secret": "S3CR3T-short"})
    assert r.status_code == 422 and "secret" in r.text and "S3CR3T" not in r.text, "a 422 does not echo it"
    d.subscriptions.delete("chat")
    assert "S3CR3T" not in c.get("/dead-letters").text


def test_writes_are_refused_before_their_body_is_read_and_bodies_are_capped(tmp_path: Path) -> None:
    c = _client(_delivery(tmp_path))
    big = b"x" * (2 << 20)
    r = c.put("/subscriptions/x", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 401, "no token: refused before the 2 MB body is read"
    r = c.put("/subscriptions/x", content=big, headers={**AUTH, "content-type": "application/json"})
    assert r.status_code == 413
    r = c.put("/subscriptions/x", json={"kind": "webhook", "url": "https://example.com/"},
              headers={"Authorization": "Bearer t\u00f6k\u00e9n".encode()})
    assert r.status_code == 401, "non-ASCII in the header is a wrong token, not a crash"


async def test_deliveries_of_a_subscription_removed_from_the_config_are_not_sent(tmp_path: Path) -> None:
    rx = TimedReceiver().start()
    try:
        d = Delivery([Subscription("old", "webhook", rx.url)], SECRET, tmp_path / "alerts.db", allow_private=True)
        d.accept(alert(1))
        assert d.store.outbox_counts()["pending"] == 1
        d.store.close()
        d2 = Delivery([], SECRET, tmp_path / "alerts.db", allow_private=True)  # the config no longer names it
        await _drain(d2)
    finally:
        rx.stop()
    assert rx.attempts == 0, "nothing goes to the old URL"
    [dead] = d2.store.dead_letters()
    assert dead["subscription"] == "old" and dead["last_error"] == "subscription no longer configured"


async def test_a_webhook_without_any_secret_waits_instead_of_stopping_delivery(tmp_path: Path) -> None:
    rx = TimedReceiver().start()
    try:
        d = Delivery([Subscription("hook", "webhook", rx.url)], None, tmp_path / "alerts.db", allow_private=True)
        d.accept(alert(1))
        worker = await drained(d.store, secret=None, book=d.subscriptions,
                               policy=DeliveryPolicy(attempts=3, backoff=0.01, timeout=2))
    finally:
        rx.stop()
    assert rx.attempts == 0, "never sent unsigned"
    assert worker.outcomes == {"no_secret": 2, "dead_letter": 1}
    assert d.store.dead_letters()[0]["last_error"].startswith("no secret to sign with")


@pytest.mark.parametrize("body", [b'{"\\ud800": 1, "kind": "webhook"}', b'{"kind": "webhook", "url": "https://a.example/\\udc00"}',
                                  b'{"kind": "webhook", "url": "https://a.example/x", "rate_limit": NaN}',
                                  b'{"kind": "webhook", "url": "https://a.example/x", "rate_limit": 1e400}'])
def test_bodies_that_cannot_be_echoed_get_a_422_not_a_500(tmp_path: Path, body: bytes) -> None:
    r = _client(_delivery(tmp_path)).put("/subscriptions/x", content=body,
                                          headers={**AUTH, "content-type": "application/json"})
    assert r.status_code == 422, r.text


def test_api_secrets_are_sealed_at_rest_when_a_key_is_configured(tmp_path: Path) -> None:
    from cryptography.fernet import Fernet

    from alerts.subscriptions import SealedSecretError

    key = Fernet.generate_key().decode()
    plain = Delivery([], SECRET, tmp_path / "alerts.db", allow_private=True)
    hook = {"kind": "webhook", "url": "https://a.example/h"}
    plain.subscriptions.put({"name": "old", **hook, "secret": "0ld-secret-long-enough"})
    plain.store.close()
    d = Delivery([], SECRET, tmp_path / "alerts.db", allow_private=True, secrets_key=key)  # seals the old one
    d.subscriptions.put({"name": "new", **hook, "secret": "n3w-secret-long-enough"})
    d.store.close()
    raw = b"".join(f.read_bytes() for f in tmp_path.glob("alerts.db*"))
    assert b"0ld-secret" not in raw and b"n3w-secret" not in raw, "no secret in plain text in the store"
    again = Delivery([], SECRET, tmp_path / "alerts.db", allow_private=True, secrets_key=key)
    assert again.subscriptions.secret_for("old") == "0ld-secret-long-enough"
    assert again.subscriptions.secret_for("new") == "n3w-secret-long-enough"
    again.store.close()
    with pytest.raises(SealedSecretError, match="set CHAINSENTRY_SECRETS_KEY"):
        Delivery([], SECRET, tmp_path / "alerts.db", allow_private=True)
    with pytest.raises(SealedSecretError, match="not the key that sealed"):
        Delivery([], SECRET, tmp_path / "alerts.db", allow_private=True, secrets_key=Fernet.generate_key().decode())
    with pytest.raises(SealedSecretError, match="not a Fernet key"):
        Delivery([], SECRET, tmp_path / "alerts.db", allow_private=True, secrets_key="short")
