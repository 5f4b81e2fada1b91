"""Ingest metrics, registered into an injected ``CollectorRegistry`` (never the global one).

Names follow ARCHITECTURE.md (prefix ``chainsentry_``); labels are bounded: methods from the
fixed set this package calls, outcomes and stages from small enums, never an address or hash.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .mappers import MappingError

NS = "chainsentry"


class IngestMetrics:
    """The ingest stage's counters, gauges and histograms."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.blocks = Counter("ingest_blocks", "Blocks emitted as canonical", namespace=NS, registry=r)
        self.transactions = Counter(
            "ingest_transactions", "Transactions ingested, by stage (block, mempool)", ["stage"],
            namespace=NS, registry=r,
        )
        self.head_lag = Gauge(
            "ingest_head_lag_blocks", "Node head minus the last block emitted", namespace=NS, registry=r
        )
        self.head = Gauge("ingest_head_block", "Latest head block number seen at the node", namespace=NS, registry=r)
        self.last_block = Gauge(
            "ingest_last_block", "Number of the last block emitted", namespace=NS, registry=r
        )
        self.last_block_time = Gauge(
            "ingest_last_block_seen_timestamp_seconds", "Wall-clock time the last block was emitted",
            namespace=NS, registry=r,
        )
        self.reorgs = Counter("ingest_reorgs", "Reorgs detected", namespace=NS, registry=r)
        self.retracted = Counter("ingest_blocks_retracted", "Blocks retracted by reorgs", namespace=NS, registry=r)
        self.rpc_requests = Counter(
            "ingest_rpc_requests", "JSON-RPC calls by method and outcome", ["method", "outcome"],
            namespace=NS, registry=r,
        )
        self.rpc_duration = Histogram(
            "ingest_rpc_request_duration_seconds", "JSON-RPC request duration", ["method"],
            namespace=NS, registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.mapping_errors = Counter(
            "ingest_malformed_fields", "Malformed fields in RPC answers or files, by kind of object", ["kind"],
            namespace=NS, registry=r,
        )
        self.pending_events = Counter(
            "ingest_pending_events", "Mempool lifecycle events (seen, included, replaced, dropped)", ["event"],
            namespace=NS, registry=r,
        )
        self.pending_tracked = Gauge(
            "ingest_pending_tracked", "Pending transactions currently followed", namespace=NS, registry=r
        )
        self.unusable_answers = Counter(
            "ingest_unusable_answers", "Node answers refused as inconsistent with the request (a block of "
            "another number, a malformed hash), by method; the request is retried", ["method"],
            namespace=NS, registry=r,
        )
        self.reconnects = Counter(
            "ingest_reconnects", "Reconnections after a lost node connection, by stream", ["stream"],
            namespace=NS, registry=r,
        )

    # RpcObserver
    def rpc_observed(self, method: str, outcome: str, seconds: float) -> None:
        self.rpc_requests.labels(method, outcome).inc()
        if outcome == "ok" or seconds > 0:
            self.rpc_duration.labels(method).observe(seconds)

    def mapping_error(self, err: MappingError) -> None:
        kind = err.field.split(".", 1)[0] if "." in err.field else ("block" if err.tx is None else "transaction")
        self.mapping_errors.labels(kind).inc()
