"""The HTTP API against its own OpenAPI schema (schemathesis): no 5xx and no response that breaks
the schema, for generated reads and writes, with and without the bearer token."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from prometheus_client import CollectorRegistry
from schemathesis.specs.openapi.checks import positive_data_acceptance

from alerts.channels import Subscription
from alerts.lifecycle import AlertLifecycle
from alerts.store import AlertStore
from alerts.subscriptions import SubscriptionBook
from chainsentry.api import create_app
from chainsentry.config import Settings
from chainsentry.monitoring import MonitorBook
from tests.test_alerts import alert

TOKEN = "contract-test-token"


def _app(tmp: Path) -> Any:
    store = AlertStore(tmp / "contract.db")
    book = SubscriptionBook(store, [Subscription("from-config", "webhook", "http://127.0.0.1:9/hook")],
                            check=lambda s: None, default_secret="contract-secret-0123")
    life = AlertLifecycle(store, book)
    for i in range(20):
        life.fire(alert(i, severity=("info", "low", "medium", "high", "critical")[i % 5],
                        address="0x" + f"{i:02x}" * 20))
    [item, *_] = store.due(time.time() + 1)
    store.dead(item.seq, "HTTP 410")
    monitors = MonitorBook(Settings(monitors=[{"name": "from-config", "addresses": ["0x" + "ab" * 20]}]), store)
    return create_app(CollectorRegistry(), lambda: {"healthy": True}, store, api_token=TOKEN, lifecycle=life,
                      heartbeat=0.1, subscriptions=book, monitors=monitors)


_TMP = Path(__import__("tempfile").mkdtemp(prefix="cs-contract-"))
schema = schemathesis.openapi.from_asgi("/openapi.json", _app(_TMP))


@pytest.mark.parametrize("auth", [True, False], ids=["token", "anonymous"])
@schema.exclude(path="/alerts/stream").parametrize()  # an endless event stream; tested in test_alerts
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case: Any, auth: bool) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"} if auth else {}
    # a monitor that fits the schema may still name a function its ABIs lack or hold a bad
    # expression: a 422 naming the place, which the monitor tests check; every other check holds
    semantic = [positive_data_acceptance] if case.path == "/monitors/{name}" and case.method == "PUT" else []
    case.call_and_validate(headers=headers, excluded_checks=semantic)


def _contract_fields(architecture: str) -> list[str]:
    """The alert fields ARCHITECTURE.md's contract names: the backticked names of its Alert
    paragraph, once the parenthesised explanations (which name values, not fields) are gone."""
    section = architecture.split("### Alert", 1)[1].split("\n", 1)[1].split("\n\n", 1)[0]
    while re.search(r"\([^()]*\)", section):
        section = re.sub(r"\([^()]*\)", "", section)
    return re.findall(r"`([a-z_]+)`", section)


def test_openapi_documents_the_alert_with_every_field_of_the_contract(data_dir: Path) -> None:
    spec = create_app(CollectorRegistry(), lambda: {"healthy": True}, AlertStore(_TMP / "openapi.db")).openapi()
    fields = _contract_fields((data_dir.parent / "design" / "ARCHITECTURE.md").read_text())
    assert len(fields) >= 17 and {"id", "explanation", "labels", "created_at"} <= set(fields)
    alert = spec["components"]["schemas"]["Alert"]
    assert set(fields) <= set(alert["properties"]) and {"id", "status", "severity", "tx_hash"} <= set(alert["required"])
    assert {"remined", "folded", "folded_tx_hashes"} <= set(alert["properties"])
    assert alert["properties"]["status"]["enum"] == ["firing", "confirmed", "retracted"]
    assert alert["properties"]["severity"]["enum"] == ["info", "low", "medium", "high", "critical"]
    explanation = spec["components"]["schemas"]["Explanation"]["properties"]
    assert set(explanation) == {"feature", "value", "contribution", "why"}

    def ref(path: str) -> str:
        return str(spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"])

    assert ref("/alerts/{alert_id}").endswith("/Alert'}") and ref("/alerts").endswith("/AlertPage'}")
    assert spec["components"]["schemas"]["AlertPage"]["properties"]["alerts"]["items"] == {
        "$ref": "#/components/schemas/Alert"}
