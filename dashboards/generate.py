"""Writes the Grafana dashboards (JSON, stable uids, a Prometheus datasource variable) from the
panel list below: ``python dashboards/generate.py``. The JSON files are what Grafana provisions;
the tests query every panel's expressions against a real Prometheus scraping a running demo."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DS = {"type": "prometheus", "uid": "${datasource}"}

# (uid, title, description, [(panel title, unit, [(expr, legend)])])
DASHBOARDS: list[tuple[str, str, str, list[tuple[str, str, list[tuple[str, str]]]]]] = [
    ("chainsentry-overview", "chainsentry / overview", "Ingest throughput, head lag, reorgs, pipeline latency", [
        ("Transactions ingested per second", "ops", [
            ("sum by (stage) (rate(chainsentry_ingest_transactions_total[1m]))", "{{stage}}")]),
        ("Blocks per second", "ops", [("sum(rate(chainsentry_ingest_blocks_total[1m]))", "blocks")]),
        ("Head lag (blocks behind the node's head)", "short", [
            ("max(chainsentry_ingest_head_lag_blocks)", "lag")]),
        ("Reorgs and retracted blocks (1 h)", "short", [
            ("sum(increase(chainsentry_ingest_reorgs_total[1h]))", "reorgs"),
            ("sum(increase(chainsentry_ingest_blocks_retracted_total[1h]))", "blocks retracted")]),
        ("Pipeline latency: first sight to alert (p50, p99)", "s", [
            ("histogram_quantile(0.5, sum by (le, stage) (rate(chainsentry_pipeline_latency_seconds_bucket[5m])))",
             "p50 {{stage}}"),
            ("histogram_quantile(0.99, sum by (le, stage) (rate(chainsentry_pipeline_latency_seconds_bucket[5m])))",
             "p99 {{stage}}")]),
        ("RPC requests by outcome", "reqps", [
            ("sum by (outcome) (rate(chainsentry_ingest_rpc_requests_total[1m]))", "{{outcome}}")]),
        ("RPC latency p99 by method", "s", [
            ("histogram_quantile(0.99, sum by (le, method) "
             "(rate(chainsentry_ingest_rpc_request_duration_seconds_bucket[5m])))", "{{method}}")]),
        ("Pending transactions followed", "short", [("sum(chainsentry_ingest_pending_tracked)", "pending")]),
    ]),
    ("chainsentry-detectors", "chainsentry / detectors", "Score distributions, alert rates by detector and severity", [
        ("Score quantiles by detector (p50, p99)", "percentunit", [
            ("histogram_quantile(0.5, sum by (le, detector) (rate(chainsentry_detector_score_bucket[5m])))",
             "p50 {{detector}}"),
            ("histogram_quantile(0.99, sum by (le, detector) (rate(chainsentry_detector_score_bucket[5m])))",
             "p99 {{detector}}")]),
        ("Scores by bucket (all detectors)", "short", [
            ("sum by (le) (increase(chainsentry_detector_score_bucket[1m]))", "{{le}}")]),
        ("Alerts by detector and severity (5 min)", "short", [
            ("sum by (detector, severity) (increase(chainsentry_alerts_total[5m]))", "{{detector}} {{severity}}")]),
        ("Transactions scored per second", "ops", [
            ("sum by (stage) (rate(chainsentry_detector_transactions_scored_total[1m]))", "{{stage}}")]),
        ("Scoring time per batch p99", "s", [
            ("histogram_quantile(0.99, sum by (le, stage) (rate(chainsentry_detector_scoring_seconds_bucket[5m])))",
             "{{stage}}")]),
    ]),
    ("chainsentry-delivery", "chainsentry / delivery", "Webhook and channel delivery: outcomes, retries, outbox", [
        ("Delivery attempts by outcome", "ops", [
            ("sum by (outcome) (rate(chainsentry_webhook_deliveries_total[5m]))", "{{outcome}}")]),
        ("Retries and failures per second", "ops", [
            ('sum(rate(chainsentry_webhook_deliveries_total{outcome!="delivered"}[5m])) or vector(0)', "not delivered")]),
        ("Outbox: waiting deliveries", "short", [("sum(chainsentry_outbox_pending)", "pending")]),
        ("Dead letters (re-sendable through the API)", "short", [("sum(chainsentry_outbox_dead)", "dead letters")]),
    ]),
    ("chainsentry-kafka", "chainsentry / kafka", "Scale-out: consumer lag, throughput, rebalances, dead letters", [
        ("Consumer lag by topic and partition", "short", [
            ("sum by (topic, partition) (chainsentry_kafka_consumer_lag)", "{{topic}} [{{partition}}]")]),
        ("Messages per second", "ops", [
            ("sum by (topic, direction) (rate(chainsentry_kafka_messages_total[1m]))", "{{direction}} {{topic}}")]),
        ("Rebalances (15 min)", "short", [
            ("sum by (event) (increase(chainsentry_kafka_rebalances_total[15m]))", "{{event}}")]),
        ("Dead-lettered messages (1 h)", "short", [
            ("sum(increase(chainsentry_kafka_dead_letters_total[1h])) or vector(0)", "dead letters")]),
        ("Kafka operations retried", "ops", [
            ("sum by (operation) (rate(chainsentry_kafka_errors_total[5m])) or vector(0)", "{{operation}}")]),
    ]),
]


def dashboard(uid: str, title: str, description: str,
              panels: list[tuple[str, str, list[tuple[str, str]]]]) -> dict[str, Any]:
    out = []
    for i, (ptitle, unit, targets) in enumerate(panels):
        out.append({
            "id": i + 1, "type": "timeseries", "title": ptitle, "datasource": DS,
            "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
            "targets": [{"refId": chr(65 + j), "datasource": DS, "expr": expr, "legendFormat": legend}
                        for j, (expr, legend) in enumerate(targets)],
        })
    return {
        "uid": uid, "title": title, "description": description, "tags": ["chainsentry"], "editable": True,
        "schemaVersion": 39, "version": 1, "time": {"from": "now-1h", "to": "now"}, "refresh": "10s",
        "templating": {"list": [{"name": "datasource", "label": "Prometheus", "type": "datasource",
                                 "query": "prometheus", "current": {}, "hide": 0}]},
        "annotations": {"list": []}, "panels": out,
    }


def main() -> None:
    for uid, title, description, panels in DASHBOARDS:
        path = HERE / f"{uid.removeprefix('chainsentry-')}.json"
        path.write_text(json.dumps(dashboard(uid, title, description, panels), indent=2) + "\n")
        print(path)


if __name__ == "__main__":
    main()
