"""Chat and paging channels: payloads as the real services require them, filters, routing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from alerts.channels import Subscription, parse_subscriptions, render
from alerts.model import Explanation
from tests.rpcservers import LoopbackServer
from tests.test_alerts import alert

JSON = {"content-type": "application/json"}


class ChannelServer:
    """A loopback stand-in for one service, validating requests as the service does."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.bodies: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.server = LoopbackServer(self._handle).start()

    def _handle(self, body: Any) -> tuple[int, dict[str, str], bytes]:
        problem = check(self.kind, body)
        if problem:
            self.errors.append(problem)
            return 400, JSON, orjson.dumps({"error": problem})
        self.bodies.append(body)
        reply: dict[str, Any] = {"ok": True} if self.kind == "telegram" else {"status": "success"}
        return (202 if self.kind == "pagerduty" else 200), JSON, orjson.dumps(reply)

    def stop(self) -> None:
        self.server.stop()


def check(kind: str, body: Any) -> str | None:
    """What each service rejects (from their documented payload requirements)."""
    if not isinstance(body, dict):
        return "body is not a JSON object"
    if kind == "slack":
        if not isinstance(body.get("text"), str) or not body["text"]:
            return "slack: text is required (notification fallback)"
        blocks = body.get("blocks")
        if not isinstance(blocks, list) or not blocks or len(blocks) > 50:
            return "slack: blocks must be a list of 1-50"
        for b in blocks:
            if b.get("type") not in ("header", "section", "context", "divider"):
                return f"slack: unknown block type {b.get('type')}"
            if b["type"] == "header" and (b["text"]["type"] != "plain_text" or len(b["text"]["text"]) > 150):
                return "slack: header text must be plain_text <= 150"
            if b["type"] == "section" and len(b.get("fields", [])) > 10:
                return "slack: at most 10 fields"
    elif kind == "discord":
        embeds = body.get("embeds")
        if not isinstance(embeds, list) or not 1 <= len(embeds) <= 10:
            return "discord: embeds must be a list of 1-10"
        e = embeds[0]
        if len(e.get("title", "")) > 256 or len(e.get("description", "")) > 4096:
            return "discord: title <= 256, description <= 4096"
        if not isinstance(e.get("color"), int) or not 0 <= e["color"] <= 0xFFFFFF:
            return "discord: color must be an integer RGB"
        if len(e.get("fields", [])) > 25 or any(len(f["value"]) > 1024 for f in e.get("fields", [])):
            return "discord: at most 25 fields of <= 1024 characters"
    elif kind == "telegram":
        if not body.get("chat_id") or not isinstance(body.get("text"), str):
            return "telegram: chat_id and text are required"
        if not 1 <= len(body["text"]) <= 4096:
            return "telegram: text must be 1-4096 characters"
    elif kind == "pagerduty":
        if not body.get("routing_key") or body.get("event_action") not in ("trigger", "acknowledge", "resolve"):
            return "pagerduty: routing_key and a valid event_action are required"
        if body["event_action"] == "trigger":
            p = body.get("payload") or {}
            if not p.get("summary") or not p.get("source") or p.get("severity") not in (
                    "critical", "error", "warning", "info"):
                return "pagerduty: payload needs summary, source and a valid severity"
        elif not body.get("dedup_key"):
            return "pagerduty: resolve needs the dedup_key"
    return None


@pytest.mark.parametrize("kind", ["slack", "discord", "telegram", "pagerduty"])
def test_payloads_pass_each_services_checks(kind: str) -> None:
    sub = parse_subscriptions([{"name": "x", "kind": kind, "url": "https://x.example/h", "chat_id": "42",
                                "routing_key": "R" * 32}])[0]
    a = alert(1, severity="critical").replace(explanation=[Explanation("reentries", 31.0, 4.2, "w")])
    body = orjson.loads(render(sub, a) or b"null")
    assert check(kind, body) is None
    if kind == "pagerduty":
        assert body["dedup_key"] == a.id and body["payload"]["severity"] == "critical"
        resolve = orjson.loads(render(sub, a.with_status("retracted")) or b"null")
        assert resolve == {"routing_key": "R" * 32, "event_action": "resolve", "dedup_key": a.id}
        assert render(sub, a.with_status("confirmed")) is None


def test_subscription_validation() -> None:
    with pytest.raises(ValueError, match="telegram needs chat_id"):
        parse_subscriptions([{"name": "t", "kind": "telegram", "url": "https://x.example"}])
    with pytest.raises(ValueError, match="kind must be one of"):
        Subscription("s", "fax", "https://x.example")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unique"):
        parse_subscriptions([{"name": "a", "kind": "slack", "url": "https://x.example"}] * 2)
    assert parse_subscriptions([{"name": "p", "kind": "pagerduty", "routing_key": "k"}])[0].url.startswith(
        "https://events.pagerduty.com")


def test_replay_routes_alerts_to_every_channel_with_filters(data_dir: Path, tmp_path: Path) -> None:
    servers = {k: ChannelServer(k) for k in ("slack", "discord", "telegram", "pagerduty")}
    try:
        subs = [
            {"name": "sec-slack", "kind": "slack", "url": servers["slack"].server.url + "/services/T/B/x",
             "min_severity": "critical", "rate_limit": 50, "burst": 10},  # the real Slack limit is 1/s
            {"name": "sec-discord", "kind": "discord", "url": servers["discord"].server.url + "/api/webhooks/1/t",
             "detectors": ["rules"], "rate_limit": 50, "burst": 10},
            {"name": "oncall-tg", "kind": "telegram", "url": servers["telegram"].server.url + "/botTOKEN/sendMessage",
             "chat_id": "-100123", "types": ["exploit"], "rate_limit": 50, "burst": 10},
            {"name": "pager", "kind": "pagerduty", "url": servers["pagerduty"].server.url + "/v2/enqueue",
             "routing_key": "R" * 32, "min_severity": "high"},
        ]
        cfg = tmp_path / "c.yaml"
        cfg.write_text(yaml.safe_dump({"subscriptions": subs}))
        env = {k: v for k, v in os.environ.items() if k != "CHAINSENTRY_WEBHOOK_SECRET"}  # channels need none
        res = subprocess.run([sys.executable, "-m", "chainsentry.cli", "replay", str(data_dir / "attacks-dev.jsonl.gz"),
                              "--config", str(cfg), "--alerts", str(tmp_path / "a.jsonl"), "--webhook-allow-private"],
                             capture_output=True, text=True, timeout=120, env=env)
    finally:
        for s in servers.values():
            s.stop()
    assert res.returncode == 0, res.stderr
    alerts = [orjson.loads(x) for x in (tmp_path / "a.jsonl").read_bytes().splitlines()]
    assert orjson.loads(res.stdout)["webhook"]["failed"] == 0
    assert all(not s.errors for s in servers.values()), {k: s.errors for k, s in servers.items()}
    assert len(servers["slack"].bodies) == sum(a["severity"] == "critical" for a in alerts) > 0
    assert len(servers["discord"].bodies) == sum(a["detector"].startswith("rules") for a in alerts) > 0
    assert len(servers["telegram"].bodies) == sum(a["type"] == "exploit" for a in alerts) > 0
    assert {b["dedup_key"] for b in servers["pagerduty"].bodies} == {
        a["id"] for a in alerts if a["severity"] in ("high", "critical")}
