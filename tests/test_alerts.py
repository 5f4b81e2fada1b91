"""Alert store, outbox and signed webhook delivery against real loopback receivers."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.model import Alert, Explanation
from alerts.store import MIGRATIONS, AlertStore, StoreError
from alerts.webhook import DeliveryPolicy, DeliveryWorker, WebhookConfigError, check_secret, check_target, sign, verify
from tests.rpcservers import LoopbackServer, free_port

SECRET = "test-secret-0123456789"


def alert(i: int, *, status: str = "firing", severity: str = "high", address: str = "0x" + "a" * 40,
          detector: str = "fusion") -> Alert:
    return Alert(id=f"cs-{i:04d}", status=status, stage="block", chain_id=1, block_number=i,  # type: ignore[arg-type]
                 block_hash=f"0x{i:064x}", tx_hash=f"0x{i + 7:064x}", severity=severity,  # type: ignore[arg-type]
                 type="exploit", score=0.95, detector=detector, title="t", description="d", addresses=[address],
                 explanation=[], created_at="2026-01-01T00:00:00Z")


class Receiver(LoopbackServer):
    """A webhook receiver on loopback that checks what a real one would: the signature and the
    timestamp, and acts on each idempotency key once. ``status`` sets what it answers."""

    keep_alive = True  # as real receivers do

    def __init__(self, secret: str = SECRET, status: int = 200, headers: dict[str, str] | None = None) -> None:
        super().__init__(port=free_port())  # a fixed port: the URL is known before it starts
        self.secret = secret
        self.status = status
        self.reply_headers = headers or {}
        self.acted: dict[str, dict[str, Any]] = {}
        self.attempts = 0
        self.bad_signatures = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        super().start()
        return self

    def respond(self, raw: bytes, headers: Any) -> tuple[int, dict[str, str], bytes]:
        self.attempts += 1
        if not verify(self.secret, headers["X-Chainsentry-Timestamp"], raw, headers["X-Chainsentry-Signature"]):
            self.bad_signatures += 1
            return 401, {}, b""
        if self.status == 200:
            self.acted.setdefault(headers["Idempotency-Key"], orjson.loads(raw))
        return self.status, self.reply_headers, b""


def _api_up(api: str) -> bool:
    import httpx

    try:
        return httpx.get(f"http://{api}/healthz", timeout=1).status_code in (200, 503)
    except httpx.TransportError:
        return False


def test_store_dedupes_tracks_status_filters_and_pages(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "a.db")
    assert store.schema_version == len(MIGRATIONS)
    for i in range(25):
        assert store.upsert(alert(i, severity="critical" if i % 5 == 0 else "low",
                                  address="0x" + ("b" if i % 2 else "c") * 40))
    assert not store.upsert(alert(3, severity="low", address="0x" + "b" * 40)), "same event, same status: no-op"
    assert store.upsert(alert(3, status="retracted")) and store.get("cs-0003").status == "retracted"
    assert store.count() == 25
    crit, _ = store.query(min_severity="critical")
    assert sorted(a.id for a in crit) == [f"cs-{i:04d}" for i in range(0, 25, 5)]
    by_addr, _ = store.query(address="0x" + "B" * 40, limit=100)
    assert len(by_addr) == 12
    assert [a.id for a in store.query(status="retracted")[0]] == ["cs-0003"]
    seen, cursor = [], None
    while True:
        page, cursor = store.query(limit=7, cursor=cursor)
        seen += [a.id for a in page]
        if cursor is None:
            break
    assert sorted(seen) == sorted(f"cs-{i:04d}" for i in range(25)) and len(seen) == 25
    store.close()
    reopened = AlertStore(tmp_path / "a.db")
    assert reopened.count() == 25 and reopened.purge(time.time() + 1) == 25 and reopened.count() == 0


def test_store_refuses_a_newer_schema_and_garbage(tmp_path: Path) -> None:
    AlertStore(tmp_path / "n.db").close()
    db = sqlite3.connect(tmp_path / "n.db")
    db.execute("PRAGMA user_version = 9")
    db.close()
    with pytest.raises(StoreError, match="schema version 9"):
        AlertStore(tmp_path / "n.db")
    (tmp_path / "junk.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a usable alert store"):
        AlertStore(tmp_path / "junk.db")
    (tmp_path / "empty.db").write_bytes(b"")
    with pytest.raises(StoreError, match=r"empty \(0 bytes\)"):
        AlertStore(tmp_path / "empty.db")
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(StoreError, match="is a directory"):
        AlertStore(tmp_path / "dir.db")


def test_a_store_with_garbled_pages_is_refused_at_start_not_served(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "g.db")
    for i in range(300):
        store.upsert(alert(i))
    store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    raw = bytearray((tmp_path / "g.db").read_bytes())
    page = 4096
    for p in range(2, len(raw) // page):  # every page after the schema: garbage in their headers
        raw[p * page : p * page + 64] = b"\xa5" * 64
    (tmp_path / "g.db").write_bytes(bytes(raw))
    with pytest.raises(StoreError, match=r"damaged|not a usable"):
        AlertStore(tmp_path / "g.db")


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300), st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=40),
       st.integers(min_value=0, max_value=2**40))
def test_signatures_verify_with_the_secret_and_fail_with_another(body: bytes, secret: str, other: str,
                                                                 ts: int) -> None:
    signature = sign(secret, str(ts), body)
    assert signature.startswith("sha256=") and verify(secret, str(ts), body, signature)
    if other != secret:
        assert not verify(other, str(ts), body, signature)
    assert not verify(secret, str(ts + 1), body, signature), "the timestamp is signed too"


def test_targets_and_secrets_are_checked() -> None:
    with pytest.raises(WebhookConfigError, match="not a public address"):
        check_target("http://127.0.0.1:9/x", allow_private=False)
    with pytest.raises(WebhookConfigError, match="not a public address"):
        check_target("http://[::1]:9/x", allow_private=False)
    check_target("http://127.0.0.1:9/x", allow_private=True)
    with pytest.raises(WebhookConfigError, match="not an http"):
        check_target("ftp://example.com/x", allow_private=True)
    with pytest.raises(WebhookConfigError, match="secret is empty"):
        check_secret("")
    assert SECRET not in repr(DeliveryWorker(AlertStore(":memory:"), SECRET))


FAST = DeliveryPolicy(attempts=30, backoff=0.05, backoff_max=0.5, timeout=2)


async def drained(store: AlertStore, **kw: Any) -> DeliveryWorker:
    """A delivery worker (to loopback receivers) run until the outbox is settled, then closed."""
    worker = DeliveryWorker(store, kw.pop("secret", SECRET), allow_private=True, **{"policy": FAST, "seed": 1, **kw})
    try:
        await worker.drain()
    finally:
        await worker.aclose()
    return worker


async def test_receiver_down_then_up_every_alert_arrives_once(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "o.db")
    rx = Receiver()
    for i in range(40):
        store.upsert(alert(i))
        assert store.enqueue(alert(i), "s", rx.url)
        assert not store.enqueue(alert(i), "s", rx.url), "queued once per alert status"
    worker = DeliveryWorker(store, SECRET, allow_private=True, policy=FAST, seed=1)
    await worker.drain(max_wait=1.0)  # the receiver is down: everything is retried, nothing lost
    assert store.outbox_counts()["pending"] == 40 and worker.outcomes.get("connection_error", 0) >= 40
    rx.start()
    try:
        await worker.drain()
    finally:
        rx.stop()
        await worker.aclose()
    assert store.outbox_counts() == {"pending": 0, "delivered": 40, "dead": 0}
    assert len(rx.acted) == 40 and rx.bad_signatures == 0
    assert set(rx.acted) == {f"cs-{i:04d}:firing" for i in range(40)}


async def test_429_retry_after_then_rejections_go_to_dead_letters(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "o.db")
    rx = Receiver(status=429, headers={"Retry-After": "1"}).start()
    store.enqueue(alert(1), "s", rx.url)
    worker = DeliveryWorker(store, SECRET, allow_private=True, policy=FAST, seed=1)
    try:
        t0 = time.monotonic()
        await worker.drain(max_wait=0.5)
        assert rx.attempts == 1 and worker.outcomes == {"rate_limited": 1}
        rx.status = 200
        await worker.drain()
        assert time.monotonic() - t0 >= 0.95 and store.outbox_counts()["delivered"] == 1
        rx.status = 400
        store.enqueue(alert(2), "s", rx.url)
        await worker.drain()
        [dead] = store.dead_letters()
        assert dead["alert_id"] == "cs-0002" and dead["last_error"] == "HTTP 400"
        rx.status = 200
        assert store.requeue(dead["seq"])
        await worker.drain()
        assert store.outbox_counts() == {"pending": 0, "delivered": 2, "dead": 0}
    finally:
        rx.stop()
        await worker.aclose()
    wrong = Receiver(secret="another-secret").start()
    store.enqueue(alert(3), "s", wrong.url)
    worker = DeliveryWorker(store, SECRET, allow_private=True, policy=FAST, seed=1)
    try:
        await worker.drain()
    finally:
        wrong.stop()
        await worker.aclose()
    assert wrong.bad_signatures == 1 and store.dead_letters()[0]["last_error"] == "HTTP 401"


def test_replay_delivers_every_alert_to_the_webhook(data_dir: Path, tmp_path: Path) -> None:
    rx = Receiver().start()
    env = dict(os.environ, CHAINSENTRY_WEBHOOK_SECRET=SECRET)
    args = [sys.executable, "-m", "chainsentry.cli", "replay", str(data_dir / "attacks-dev.jsonl.gz"), "--alerts",
            str(tmp_path / "alerts.jsonl"), "--webhook", rx.url, "--webhook-allow-private", "--store",
            str(tmp_path / "store.db")]
    try:
        res = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env)
        assert res.returncode == 0, res.stderr
        attempts = rx.attempts
        again = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env)
    finally:
        rx.stop()
    summary = orjson.loads(res.stdout)
    written = [orjson.loads(x) for x in (tmp_path / "alerts.jsonl").read_bytes().splitlines()]
    assert summary["webhook"] == {"sent": len(written), "failed": 0, "already_known": 0, "pending": 0}
    assert {a["id"] for a in rx.acted.values()} == {a["id"] for a in written} and rx.bad_signatures == 0
    assert again.returncode == 0, again.stderr
    assert orjson.loads(again.stdout)["webhook"] == {"sent": 0, "failed": 0, "already_known": len(written),
                                                     "pending": 0}, "the same store: nothing is sent twice"
    assert rx.attempts == attempts
    source = str(data_dir / "attacks-dev.jsonl.gz")
    refused = subprocess.run([sys.executable, "-m", "chainsentry.cli", "replay", source, "--webhook", rx.url],
                             capture_output=True, text=True, timeout=60,
                             env=dict(os.environ, CHAINSENTRY_WEBHOOK_SECRET=SECRET))
    assert refused.returncode == 2 and "not a public address" in refused.stderr
    without = {k: v for k, v in os.environ.items() if k != "CHAINSENTRY_WEBHOOK_SECRET"}
    nosecret = subprocess.run([sys.executable, "-m", "chainsentry.cli", "replay", source, "--webhook", rx.url,
                               "--webhook-allow-private"], capture_output=True, text=True, timeout=60, env=without)
    assert nosecret.returncode == 2 and "secret is empty" in nosecret.stderr


async def test_kill_9_with_deliveries_pending_then_restart_delivers_them(
    anvil: Any, rpc: Any, tmp_path: Path
) -> None:
    import asyncio
    import signal

    from tests.conftest import wait_until
    from tests.test_detect_e2e import attack_scene, send_exploit

    gen, eoa, attacker, lender = await attack_scene(rpc, seed=9)
    rx = Receiver()  # not started: the receiver is down
    env = dict(os.environ, CHAINSENTRY_WEBHOOK_SECRET=SECRET, CHAINSENTRY_INGEST__POLL_INTERVAL="0.1")
    args = [sys.executable, "-m", "chainsentry.cli", "run", "--rpc", anvil.http_url,
            "--api", f"127.0.0.1:{free_port()}", "--data-dir", str(tmp_path / "data"), "--start-block", "0",
            "--no-mempool", "--webhook", rx.url, "--webhook-allow-private"]
    db = tmp_path / "data" / "alerts.db"

    def pending() -> int:
        if not db.exists():
            return 0
        con = sqlite3.connect(db)
        try:
            return int(con.execute("SELECT COUNT(*) FROM outbox WHERE state = 'pending'").fetchone()[0])
        except sqlite3.OperationalError:
            return 0
        finally:
            con.close()

    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        exploit = await send_exploit(rpc, gen, eoa, attacker, lender)
        await rpc.call("evm_mine")
        await wait_until(lambda: pending() >= 1, timeout=30)
        await asyncio.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert pending() >= 1, "accepted deliveries survive kill -9"
    rx.start()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await wait_until(lambda: any(a["tx_hash"] == exploit for a in rx.acted.values()), timeout=40)
        await wait_until(lambda: pending() == 0, timeout=20)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        rx.stop()
    assert rx.bad_signatures == 0


async def test_alerts_are_confirmed_after_n_blocks_and_retracted_by_a_reorg(
    anvil: Any, rpc: Any, tmp_path: Path
) -> None:
    from tests.conftest import wait_until
    from tests.test_detect_e2e import attack_scene, send_exploit

    gen, eoa, attacker, lender = await attack_scene(rpc, seed=10)
    rx = Receiver().start()
    env = dict(os.environ, CHAINSENTRY_WEBHOOK_SECRET=SECRET, CHAINSENTRY_INGEST__POLL_INTERVAL="0.1")
    api = f"127.0.0.1:{free_port()}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "chainsentry.cli", "run", "--rpc", anvil.http_url, "--api",
         api, "--data-dir", str(tmp_path / "data"), "--start-block", "0", "--no-mempool",
         "--webhook", rx.url, "--webhook-allow-private"], env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)

    async def attack() -> str:
        h = await send_exploit(rpc, gen, eoa, attacker, lender)
        await rpc.call("evm_mine")
        return h

    def statuses(tx: str) -> set[str]:
        return {a["status"] for a in rx.acted.values() if a["tx_hash"] == tx}

    import asyncio

    import httpx

    streamed: list[dict[str, Any]] = []

    async def listen() -> None:  # the live stream, over real HTTP (server-sent events)
        async with httpx.AsyncClient(timeout=None) as http:
            for _ in range(100):
                try:
                    async with http.stream("GET", f"http://{api}/alerts/stream") as resp:
                        async for line in resp.aiter_lines():
                            if line.startswith("data: "):
                                streamed.append(orjson.loads(line[6:]))
                except httpx.TransportError:
                    await asyncio.sleep(0.1)  # the service is still starting

    listener = asyncio.create_task(listen())
    try:
        await wait_until(lambda: listener.done() or _api_up(api), timeout=20)
        await asyncio.sleep(0.5)
        first = await attack()
        await wait_until(lambda: statuses(first) == {"firing"}, timeout=30)
        await rpc.call("anvil_mine", [hex(12)])
        await wait_until(lambda: statuses(first) == {"firing", "confirmed"}, timeout=30)
        second = await attack()
        await wait_until(lambda: statuses(second) == {"firing"}, timeout=30)
        other = gen.accounts[3]
        await rpc.call("anvil_reorg", [1, [[{"from": other, "to": gen.accounts[4], "value": "0x1"}, 0]]])
        await wait_until(lambda: statuses(second) == {"firing", "retracted"}, timeout=30)
        import httpx

        async with httpx.AsyncClient() as http:  # the API serves the same store, over real HTTP
            retracted = (await http.get(f"http://{api}/alerts", params={"status": "retracted"})).json()["alerts"]
            confirmed = (await http.get(f"http://{api}/alerts", params={"status": "confirmed"})).json()["alerts"]
        assert [a["tx_hash"] for a in retracted] == [second]
        # (the scene's attack contract raised an early warning when it was deployed: confirmed too)
        assert [a["tx_hash"] for a in confirmed if a["detector"] != "deployment"] == [first]
        await wait_until(lambda: [a["status"] for a in streamed if a["tx_hash"] == second] == ["firing", "retracted"],
                         timeout=10)
        assert [a["status"] for a in streamed if a["tx_hash"] == first] == ["firing", "confirmed"]
    finally:
        listener.cancel()
        proc.terminate()
        proc.wait(timeout=20)
        rx.stop()
    ids = {a["id"] for a in rx.acted.values() if a["tx_hash"] == second}
    assert len(ids) == 1, "the retraction carries the alert's own id"
    assert statuses(first) == {"firing", "confirmed"}, "a confirmed alert is not touched by a later reorg"
    assert rx.bad_signatures == 0


def test_alert_api_filters_pages_and_guards_writes(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient
    from prometheus_client import CollectorRegistry

    from chainsentry.api import create_app

    store = AlertStore(tmp_path / "api.db")
    for i in range(30):
        store.upsert(alert(i, severity="critical" if i < 5 else "low"))
    store.enqueue(alert(1), "s", "http://127.0.0.1:9/x")
    [item] = store.due(time.time() + 1)
    store.dead(item.seq, "HTTP 410")
    client = TestClient(create_app(CollectorRegistry(), lambda: {"healthy": True}, store, api_token="tok"))
    r = client.get("/alerts", params={"min_severity": "critical"})
    assert r.status_code == 200 and len(r.json()["alerts"]) == 5
    got, cursor = [], None
    while True:
        body = client.get("/alerts", params={"limit": 8} | ({"cursor": cursor} if cursor else {})).json()
        got += [a["id"] for a in body["alerts"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert len(got) == len(set(got)) == 30
    assert client.get("/alerts/cs-0004").json()["severity"] == "critical"
    assert client.get("/alerts/nope").status_code == 404
    assert client.get("/alerts", params={"min_severity": "dire"}).status_code == 422
    assert client.get("/alerts", params={"cursor": "'; drop table alerts"}).status_code == 422
    assert [d["seq"] for d in client.get("/dead-letters").json()] == [item.seq]
    assert client.post(f"/dead-letters/{item.seq}/resend").status_code == 401
    assert client.post(f"/dead-letters/{item.seq}/resend", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.post(f"/dead-letters/{item.seq}/resend", headers={"Authorization": "Bearer tok"}).status_code == 202
    assert store.outbox_counts()["pending"] == 1
    readonly = TestClient(create_app(CollectorRegistry(), lambda: {"healthy": True}, store, api_token=None))
    assert readonly.post(f"/dead-letters/{item.seq}/resend", headers={"Authorization": "Bearer tok"}).status_code == 403


async def test_burst_of_10000_alerts_none_lost(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "burst.db")
    rx = Receiver().start()
    try:
        for i in range(10_000):
            a = alert(i)
            store.upsert(a)
            store.enqueue(a, "s", rx.url)
        worker = DeliveryWorker(store, SECRET, allow_private=True, policy=FAST, seed=2, concurrency=16)
        try:
            await worker.drain()
        finally:
            await worker.aclose()
    finally:
        rx.stop()
    assert store.outbox_counts() == {"pending": 0, "delivered": 10_000, "dead": 0}
    assert len(rx.acted) == 10_000 and rx.bad_signatures == 0


def test_cooldown_folds_repeats_about_the_same_subject(tmp_path: Path) -> None:
    from alerts.channels import Subscription
    from alerts.lifecycle import AlertLifecycle

    store = AlertStore(tmp_path / "c.db")
    life = AlertLifecycle(store, [Subscription("s", "webhook", "http://127.0.0.1:9/x")], cooldown_blocks=5)
    victim, other = "0x" + "1" * 40, "0x" + "2" * 40
    first = alert(100).replace(addresses=["0x" + "e" * 40, victim])
    assert life.fire(first)
    assert not life.fire(alert(102).replace(addresses=["0x" + "f" * 40, victim])), "same detector and subject"
    assert not life.fire(alert(105).replace(addresses=["0x" + "f" * 40, victim]))
    assert life.fire(alert(103).replace(addresses=["0x" + "f" * 40, other])), "another subject is another alert"
    assert life.fire(alert(104, detector="rules/x").replace(addresses=["0x" + "f" * 40, victim])), "another detector"
    assert life.fire(alert(111).replace(addresses=["0x" + "f" * 40, victim])), "after the cooldown, a new alert"
    head = store.get(first.id)
    assert head is not None and head.folded == 2 and len(head.folded_tx_hashes) == 2
    assert store.outbox_counts()["pending"] == 4, "folded repeats notify nobody"


def test_a_version_1_store_is_migrated_with_its_data(tmp_path: Path) -> None:
    from alerts.store import MIGRATIONS

    db = sqlite3.connect(tmp_path / "old.db", isolation_level=None)
    db.executescript("BEGIN;" + MIGRATIONS[0] + "PRAGMA user_version = 1;COMMIT;")
    db.execute("INSERT INTO alerts VALUES ('cs-1','firing','block',1,5,'0xb','0xt','high',3,'exploit',0.9,'fusion',"
               "'2026-01-01T00:00:00Z',1.0,1.0,?)", (alert(1).to_json(),))
    db.close()
    store = AlertStore(tmp_path / "old.db")
    assert store.schema_version == len(MIGRATIONS) and store.get("cs-0001") is None and store.get("cs-1") is not None
    assert store.allowlist() == []


def test_false_positive_feedback_suppresses_the_pattern_and_reaches_the_detectors(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient
    from prometheus_client import CollectorRegistry

    from alerts.lifecycle import AlertLifecycle
    from chainsentry.api import create_app
    from chainsentry.service import EngineLearner
    from detectors.engine import ScoringEngine

    store = AlertStore(tmp_path / "f.db")
    life = AlertLifecycle(store, cooldown_blocks=0)
    router = "0x" + "7" * 40
    first = alert(1).replace(addresses=["0x" + "e" * 40, router],
                             explanation=[Explanation("token_moves", 40.0, 2.1, "tokens moved")])
    assert life.fire(first)
    engine = ScoringEngine()
    client = TestClient(create_app(CollectorRegistry(), lambda: {"healthy": True}, store, api_token="tok",
                                   learner=EngineLearner(engine)))
    auth = {"Authorization": "Bearer tok"}
    assert client.post(f"/alerts/{first.id}/feedback", json={"verdict": "false_positive"}).status_code == 401
    assert client.post("/alerts/nope/feedback", json={"verdict": "false_positive"}, headers=auth).status_code == 404
    assert client.post(f"/alerts/{first.id}/feedback", json={"verdict": "maybe"}, headers=auth).status_code == 422
    r = client.post(f"/alerts/{first.id}/feedback", json={"verdict": "false_positive", "note": "router"},
                    headers=auth)
    assert r.status_code == 201 and r.json()["allowlisted"] == {"detector": "fusion", "subject": router,
                                                              "reason": f"false positive: {first.id}"}
    assert not life.fire(alert(50).replace(addresses=["0x" + "f" * 40, router])), "the same pattern is suppressed"
    assert life.fire(alert(51, detector="rules/x").replace(addresses=["0x" + "f" * 40, router])), "other detector"
    assert router in engine.allowlist
    snapshot = engine.state()
    assert snapshot["allowlist"] == [router]
    # the verdict trained the feedback model: readable, with who gave it and when; reset needs the token
    assert client.get("/feedback/model").status_code == 200  # reads are open unless read auth is on
    client.post(f"/alerts/{first.id}/feedback", json={"verdict": "true_positive", "analyst": "ana"}, headers=auth)
    model = client.get("/feedback/model").json()
    assert model["verdicts"] == {"true_positive": 1, "false_positive": 1} and model["weights"]
    assert [(v["verdict"], v["analyst"]) for v in model["recent"]] == [("true_positive", "ana"),
                                                                      ("false_positive", None)]
    assert all(v["created_ts"] > 0 for v in model["recent"])
    assert client.delete("/feedback/model").status_code == 401
    assert client.delete("/feedback/model", headers=auth).json() == {"reset": True}
    after = client.get("/feedback/model").json()
    assert after["verdicts"] == {"true_positive": 0, "false_positive": 0} and after["weights"] == {}
    assert len(after["recent"]) == 2, "the verdicts stay stored"


def test_a_mempool_alert_becomes_the_block_alert_once_mined(tmp_path: Path) -> None:
    from alerts.channels import Subscription
    from alerts.lifecycle import AlertLifecycle

    store = AlertStore(tmp_path / "m.db")
    life = AlertLifecycle(store, [Subscription("s", "webhook", "http://127.0.0.1:9/x")], confirmations=12)
    pending = alert(7).replace(stage="mempool", block_number=None, block_hash=None)
    assert life.fire(pending)
    mined = alert(7)
    assert life.fire(mined), "the mined transaction moves the alert to block stage"
    assert not life.fire(mined), "and only once"
    stored = store.get("cs-0007")
    assert stored is not None and stored.stage == "block" and stored.block_hash == mined.block_hash
    assert store.outbox_counts()["pending"] == 1, "subscribers hear of the firing alert once"
    assert [a.id for a in life.block_added(7 + 12)] == ["cs-0007"], "then it is confirmed as a block alert"
    other = alert(8).replace(stage="mempool", block_number=None, block_hash=None)
    life.fire(other.replace(addresses=["0x" + "b" * 40]))
    life.fire(alert(8).replace(addresses=["0x" + "b" * 40]))
    assert [a.id for a in life.block_retracted(alert(8).block_hash or "")] == ["cs-0008"], "and a reorg retracts it"


async def test_a_retracted_alert_whose_transaction_is_mined_again_fires_again_for_every_subscriber(
    tmp_path: Path,
) -> None:
    from alerts.channels import Subscription, render
    from alerts.lifecycle import AlertLifecycle

    store = AlertStore(tmp_path / "r.db")
    rx = Receiver().start()
    pager = Subscription("pager", "pagerduty", "https://events.pagerduty.com/v2/enqueue", routing_key="k")
    life = AlertLifecycle(store, [Subscription("s", "webhook", rx.url)], confirmations=3)
    first = alert(5)
    assert life.fire(first)
    assert [a.id for a in life.block_retracted(first.block_hash or "")] == ["cs-0005"]
    assert not life.fire(first), "a redelivery of the retracted firing changes nothing"
    remined = first.replace(block_number=6, block_hash="0x" + "e" * 64)
    assert life.fire(remined), "the transaction mined again in another block fires again"
    stored = store.get("cs-0005")
    assert stored is not None and stored.status == "firing" and stored.block_hash == remined.block_hash
    assert orjson.loads(render(pager, stored) or b"{}")["event_action"] == "trigger", "the incident reopens"
    assert [a.id for a in life.block_added(6 + 3)] == ["cs-0005"], "and it is confirmed in its new block"
    try:
        await drained(store)
    finally:
        rx.stop()
    heard = {k: (a["status"], a["block_hash"]) for k, a in rx.acted.items()}
    assert heard == {"cs-0005:firing": ("firing", first.block_hash),
                     "cs-0005:retracted": ("retracted", first.block_hash),
                     "cs-0005:firing#1": ("firing", remined.block_hash),
                     "cs-0005:confirmed#1": ("confirmed", remined.block_hash)}


class RawReceiver:
    """A hostile receiver on loopback, raw sockets: reads the request, then answers with ``answer``."""

    def __init__(self, answer: Callable[[socket.socket], None]) -> None:
        self.answer = answer
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.requests = 0
        self.sent = 0  # bytes of answer written before the client went away
        self._stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed by stop()
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
            while len(body) < length:
                body += conn.recv(65536)
            self.requests += 1
            with contextlib.suppress(OSError):
                self.answer(conn)

    def trickle(self, conn: socket.socket) -> None:
        """Headers at once, then one byte of body every 0.5 s (for at most 30 s)."""
        conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n")
        for _ in range(60):
            if self._stop.wait(0.5):
                return
            conn.sendall(b"x")
            self.sent += 1

    def huge(self, conn: socket.socket) -> None:
        """200 with a 1 GB body, written as fast as the client reads it."""
        conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 1073741824\r\n\r\n")
        chunk = b"x" * 65536
        for _ in range(1 << 14):
            conn.sendall(chunk)
            self.sent += len(chunk)

    def stop(self) -> None:
        self._stop.set()
        self.sock.close()


async def test_a_trickling_receiver_holds_only_its_own_deliveries(tmp_path: Path) -> None:
    """A receiver that sends its headers and then a byte every 0.5 s: each attempt is bounded as a
    whole, and a healthy subscription gets every alert meanwhile."""
    store = AlertStore(tmp_path / "s.db")
    slow = RawReceiver(lambda c: slow.trickle(c))
    rx = Receiver().start()
    for i in range(10):
        store.upsert(alert(i))
        store.enqueue(alert(i), "slow", slow.url)
        store.enqueue(alert(i), "healthy", rx.url)
    worker = DeliveryWorker(store, SECRET, allow_private=True, seed=1, concurrency=4,
                            policy=DeliveryPolicy(attempts=50, backoff=0.05, timeout=1.0))
    try:
        await worker.drain(max_wait=4.0)
    finally:
        await worker.aclose()
        slow.stop()
        rx.stop()
    assert len(rx.acted) == 10, "the healthy subscription is not held up by the slow one"
    rows = store._db.execute("SELECT subscription, state, attempts, last_error FROM outbox").fetchall()
    slow_rows = [r for r in rows if r[0] == "slow"]
    assert all(state == "pending" for _, state, _, _ in slow_rows), "nothing is lost: the slow ones wait"
    assert any(attempts >= 1 and error == "timeout" for _, _, attempts, error in slow_rows)
    assert worker.outcomes.get("timeout", 0) >= 4


async def test_a_huge_answer_is_not_read_whole(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "h.db")
    huge = RawReceiver(lambda c: huge.huge(c))
    store.upsert(alert(1))
    store.enqueue(alert(1), "huge", huge.url)
    try:
        await drained(store)
    finally:
        huge.stop()
    assert store.outbox_counts()["delivered"] == 1, "a 2xx is a delivery, whatever its body"
    assert huge.sent < 16 * 2**20, f"the client stopped reading: {huge.sent} bytes sent"
