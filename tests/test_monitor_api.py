"""Monitors over the API (create, replace, list, delete; kept in the store across a restart; the
config file's are read-only; scripts refused) and their alerts routed to the subscriptions they name."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from alerts.channels import Subscription
from alerts.lifecycle import AlertLifecycle
from alerts.store import AlertStore
from chainsentry.api import create_app
from chainsentry.config import Settings
from chainsentry.guardian import RpcChainWriter
from chainsentry.monitoring import MonitorBook
from ingest import RpcClient
from tests.test_alerts import alert

TOKEN = "monitor-api-token"
VAULT = "0x5fbdb2315678afecb367f032d93f642f64180aa3"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _client(store: AlertStore, book: MonitorBook) -> TestClient:
    return TestClient(create_app(CollectorRegistry(), lambda: {"healthy": True}, store, api_token=TOKEN,
                                 monitors=book))


def test_monitors_are_created_replaced_listed_and_deleted_and_survive_a_restart(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "alerts.db")
    settings = Settings(monitors=[{"name": "from-config", "addresses": [VAULT]}])
    book = MonitorBook(settings, store)
    api = _client(store, book)
    body = {"name": "vault-admin", "addresses": [VAULT], "abis": ["ownable"],
            "functions": [{"function": "transferOwnership", "where": "newOwner != call.from"}], "severity": "high"}
    assert api.put("/monitors/vault-admin", json=body).status_code == 401
    created = api.put("/monitors/vault-admin", json=body, headers=AUTH)
    assert created.status_code == 201 and created.json()["source"] == "api"
    assert book.live.get("vault-admin") is not None, "runs from the next transaction"
    replaced = api.put("/monitors/vault-admin", json={**body, "severity": "critical"}, headers=AUTH)
    assert replaced.status_code == 200 and replaced.json()["severity"] == "critical"
    listed = api.get("/monitors").json()
    assert [(m["name"], m["source"]) for m in listed] == [("from-config", "config"), ("vault-admin", "api")]
    # a restart reads it back from the store
    again = MonitorBook(settings, store)
    assert again.get("vault-admin") is not None and again.get("vault-admin").severity == "critical"  # type: ignore
    assert api.put("/monitors/from-config", json={**body, "name": "from-config"}, headers=AUTH).status_code == 409
    assert api.delete("/monitors/from-config", headers=AUTH).status_code == 409
    assert api.delete("/monitors/vault-admin", headers=AUTH).status_code == 204
    assert api.get("/monitors/vault-admin").status_code == 404 and book.live.get("vault-admin") is None
    assert MonitorBook(settings, store).get("vault-admin") is None


def test_the_api_refuses_scripts_and_bad_monitors_naming_the_place(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "alerts.db")
    keyless_chain = RpcChainWriter(RpcClient(["http://127.0.0.1:9"]), None, chain_id=1)  # (never called here)
    api = _client(store, MonitorBook(Settings(), store, writer=keyless_chain))
    script = {"name": "x", "addresses": [VAULT], "responses": [{"kind": "script", "command": ["/bin/sh", "-c", "id"]}]}
    refused = api.put("/monitors/x", json=script, headers=AUTH)
    assert refused.status_code == 422 and "config file only" in refused.text
    pause = {"kind": "transaction", "contract": VAULT, "function": "pause()"}
    keyless = api.put("/monitors/x", json={"name": "x", "addresses": [VAULT], "responses": [pause]}, headers=AUTH)
    assert keyless.status_code == 422 and "needs the guardian key" in keyless.text
    dry = api.put("/monitors/x", json={"name": "x", "addresses": [VAULT], "responses": [{**pause, "dry_run": True}]},
                  headers=AUTH)
    assert dry.status_code == 201
    assert api.delete("/monitors/x", headers=AUTH).status_code == 204
    bad = {"name": "x", "addresses": [VAULT], "outflows": [{"where": "amount >>> 1"}]}
    refused = api.put("/monitors/x", json=bad, headers=AUTH)
    assert refused.status_code == 422 and "outflows[0].where: column 9" in refused.text
    assert api.get("/monitors").json() == []


def test_a_monitor_alert_goes_only_to_the_subscriptions_it_names(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "alerts.db")
    settings = Settings(monitors=[{"name": "vault-admin", "addresses": [VAULT], "subscriptions": ["oncall"]}])
    book = MonitorBook(settings, store)
    subs = [Subscription("oncall", "webhook", "http://127.0.0.1:9/a"), Subscription("all", "webhook",
                                                                                     "http://127.0.0.1:9/b")]
    life = AlertLifecycle(store, subs)
    life.routes = book.routes
    life.fire(alert(1, address=VAULT).replace(detector="monitor/vault-admin", monitor="vault-admin"))
    life.fire(alert(2, address=VAULT))
    queued = sorted((item.alert_id, item.subscription) for item in store.due(1e12))
    assert queued == [("cs-0001", "oncall"), ("cs-0002", "all"), ("cs-0002", "oncall")]


def test_detector_alerts_on_watched_addresses_get_the_responses_at_their_severity(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "alerts.db")
    settings = Settings(monitors=[{"name": "guard", "addresses": [VAULT], "respond_to_detectors": "high",
                                   "responses": [{"kind": "script", "name": "page", "command": ["true"]}]}])
    book = MonitorBook(settings, store)
    assert [r.name for r in book.plan(alert(1, address=VAULT, severity="critical"))] == ["guard.page"]
    assert book.plan(alert(2, address=VAULT, severity="medium")) == []
    assert book.plan(alert(3, severity="critical")) == [], "another contract's alert"
