"""Subscriptions and the payload each channel expects.

A :class:`Subscription` names a destination (a signed generic webhook, a Slack incoming webhook,
a Discord webhook, a Telegram bot chat, a PagerDuty Events v2 routing key) and filters (minimum
severity, detectors, types, addresses, chains). :func:`render` turns an alert into the body that
destination requires, or ``None`` when that status means nothing there (PagerDuty has no use for
"confirmed"; a retraction resolves its incident). Bodies are rendered when queued, so what is in
the outbox is exactly what will be sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from .model import Alert
from .store import SEVERITY_RANK

Kind = Literal["webhook", "slack", "discord", "telegram", "pagerduty"]
KINDS: tuple[str, ...] = ("webhook", "slack", "discord", "telegram", "pagerduty")
PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
_DISCORD_COLOURS = {"critical": 0xB00020, "high": 0xE8590C, "medium": 0xF2C94C, "low": 0x2D9CDB, "info": 0x9E9E9E}
# What each service tolerates: Slack about 1 message/s per webhook, Discord 5 per 2 s per webhook,
# Telegram about 1/s per chat. Generic webhooks and PagerDuty have no default limit.
RATE_LIMITS: dict[str, float] = {"slack": 1.0, "discord": 2.5, "telegram": 1.0}
DEFAULT_BURST: dict[str, int] = {"slack": 3, "discord": 5, "telegram": 3}
_PD_SEVERITY = {"critical": "critical", "high": "error", "medium": "warning", "low": "info", "info": "info"}


@dataclass(frozen=True)
class Subscription:
    name: str
    kind: Kind
    url: str
    min_severity: str = "info"
    detectors: tuple[str, ...] = ()  # prefixes: "rules" matches "rules/reentrancy-drain"
    types: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()
    chains: tuple[int, ...] = ()
    chat_id: str | None = None  # telegram
    routing_key: str | None = None  # pagerduty
    statuses: tuple[str, ...] = field(default=("firing", "confirmed", "retracted"))
    rate_limit: float | None = None  # deliveries per second; None: the channel's default (see RATE_LIMITS)
    burst: int | None = None  # deliveries allowed at once before the rate applies
    allow_private: bool = False  # a target on a private, loopback or link-local address is intended

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > 64 or not all(c.isalnum() or c in "-_." for c in self.name):
            raise ValueError(f"subscription name {self.name!r}: 1-64 letters, digits, '-', '_' or '.'")
        if self.rate_limit is not None and not self.rate_limit > 0:
            raise ValueError(f"subscription {self.name!r}: rate_limit must be > 0 deliveries per second")
        if self.burst is not None and self.burst < 1:
            raise ValueError(f"subscription {self.name!r}: burst must be >= 1")
        if self.kind not in KINDS:
            raise ValueError(f"subscription {self.name!r}: kind must be one of {', '.join(KINDS)}")
        if self.min_severity not in SEVERITY_RANK:
            raise ValueError(f"subscription {self.name!r}: min_severity {self.min_severity!r} is not a severity")
        if self.kind == "telegram" and not self.chat_id:
            raise ValueError(f"subscription {self.name!r}: telegram needs chat_id")
        if self.kind == "pagerduty" and not self.routing_key:
            raise ValueError(f"subscription {self.name!r}: pagerduty needs routing_key")

    def limits(self) -> tuple[float, int] | None:
        """(deliveries per second, burst) for this destination, or None for no limit.

        >>> Subscription("c", "slack", "https://hooks.slack.com/services/x").limits()
        (1.0, 3)
        >>> Subscription("w", "webhook", "https://x.example/h", rate_limit=20).limits()
        (20, 20)
        """
        rate = self.rate_limit if self.rate_limit is not None else RATE_LIMITS.get(self.kind)
        if rate is None:
            return None
        default_burst = DEFAULT_BURST.get(self.kind, max(1, int(rate)))
        return rate, self.burst if self.burst is not None else default_burst

    def matches(self, alert: Alert) -> bool:
        """Whether ``alert`` passes this subscription's filters (severity, status, detector, type,
        addresses, chains)."""
        if SEVERITY_RANK.get(alert.severity, 0) < SEVERITY_RANK[self.min_severity]:
            return False
        if alert.status not in self.statuses:
            return False
        if self.detectors and not any(alert.detector.startswith(d) for d in self.detectors):
            return False
        if self.types and alert.type not in self.types:
            return False
        if self.addresses and not {a.lower() for a in alert.addresses} & {a.lower() for a in self.addresses}:
            return False
        return not (self.chains and alert.chain_id not in self.chains)


def _line(alert: Alert) -> str:
    status = "" if alert.status == "firing" else f"[{alert.status.upper()}] "
    return f"{status}{alert.severity.upper()} {alert.title} (score {alert.score:.2f})"


def _facts(alert: Alert) -> list[tuple[str, str]]:
    facts = [("chain", str(alert.chain_id)), ("stage", alert.stage), ("tx", str(alert.tx_hash)),
             ("block", str(alert.block_number)), ("detector", alert.detector)]
    reasons = "; ".join(f"{e.feature}={e.value:g}" for e in alert.explanation[:3])
    if reasons:
        facts.append(("why", reasons))
    return facts


def render(sub: Subscription, alert: Alert) -> bytes | None:
    """The body ``sub``'s destination expects for ``alert``, or None to send nothing."""
    if sub.kind == "webhook":
        return alert.to_json()
    if sub.kind == "slack":
        fields = [{"type": "mrkdwn", "text": f"*{k}*\n`{v}`"} for k, v in _facts(alert)]
        return orjson.dumps({
            "text": _line(alert),  # the notification and fallback text
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": _line(alert)[:150]}},
                {"type": "section", "text": {"type": "mrkdwn", "text": alert.description[:2900]}},
                {"type": "section", "fields": fields[:10]},
                {"type": "context", "elements": [{"type": "mrkdwn", "text": f"alert `{alert.id}`"}]},
            ],
        })
    if sub.kind == "discord":
        return orjson.dumps({
            "content": None,
            "embeds": [{
                "title": _line(alert)[:256],
                "description": alert.description[:4000],
                "color": _DISCORD_COLOURS.get(alert.severity, 0x9E9E9E),
                "fields": [{"name": k, "value": v[:1024], "inline": k in ("chain", "stage", "block")}
                           for k, v in _facts(alert)][:25],
                "footer": {"text": f"chainsentry alert {alert.id}"},
                "timestamp": alert.created_at,
            }],
        })
    if sub.kind == "telegram":
        text = _line(alert) + "\n" + alert.description + "\n" + "\n".join(f"{k}: {v}" for k, v in _facts(alert))
        return orjson.dumps({"chat_id": sub.chat_id, "text": text[:4096], "disable_web_page_preview": True})
    # pagerduty: Events API v2; the alert id is the dedup key, so a retraction resolves the incident
    if alert.status == "confirmed":
        return None
    action = "resolve" if alert.status == "retracted" else "trigger"
    event: dict[str, Any] = {"routing_key": sub.routing_key, "event_action": action, "dedup_key": alert.id}
    if action == "trigger":
        event["payload"] = {
            "summary": _line(alert)[:1024], "source": f"chainsentry chain {alert.chain_id}",
            "severity": _PD_SEVERITY.get(alert.severity, "info"), "component": alert.detector,
            "custom_details": {"description": alert.description, **dict(_facts(alert))},
        }
    return orjson.dumps(event)


def signed(sub_kinds: dict[str, str], subscription: str) -> bool:
    """Whether deliveries for ``subscription`` carry the HMAC signature (generic webhooks only)."""
    return sub_kinds.get(subscription, "webhook") == "webhook"


def parse_subscriptions(items: Sequence[dict[str, Any]]) -> list[Subscription]:
    subs = []
    for raw in items:
        data = dict(raw)
        for key in ("detectors", "types", "addresses", "chains", "statuses"):
            if key in data:
                data[key] = tuple(data[key])
        if data.get("kind") == "pagerduty":
            data.setdefault("url", PAGERDUTY_URL)
        subs.append(Subscription(**data))
    names = [s.name for s in subs]
    if len(set(names)) != len(names):
        raise ValueError(f"subscription names must be unique: {names}")
    return subs
