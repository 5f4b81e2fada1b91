"""Alert delivery and API: throughput to a loopback webhook receiver in its own process, and the
latency of GET /alerts over real HTTP with 100,000 stored alerts.

    python benchmarks/bench_alerts.py [--alerts 5000] [--stored 100000] [--requests 500]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn
from prometheus_client import CollectorRegistry

from alerts.model import Alert
from alerts.store import AlertStore
from alerts.webhook import DeliveryWorker
from chainsentry.api import create_app

SECRET = "bench-secret"
RECEIVER = r'''
import sys, hmac, hashlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
secret = sys.argv[2].encode()
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        ts = self.headers["X-Chainsentry-Timestamp"].encode()
        ok = hmac.compare_digest("sha256=" + hmac.new(secret, ts + b"." + body, hashlib.sha256).hexdigest(),
                                 self.headers["X-Chainsentry-Signature"])
        self.send_response(200 if ok else 401)
        self.send_header("content-length", "0")
        self.end_headers()
ThreadingHTTPServer.request_queue_size = 256
ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def alert(i: int, rng: random.Random) -> Alert:
    sev = rng.choice(["info", "low", "medium", "high", "critical"])
    return Alert(id=f"cs-{i:08d}", status="firing", stage="block", chain_id=1, block_number=i,
                 block_hash=f"0x{i:064x}", tx_hash=f"0x{i + 1:064x}", severity=sev,  # type: ignore[arg-type]
                 type="exploit", score=rng.random(), detector=rng.choice(["fusion", "rules/reentrancy-drain"]),
                 title="t", description="d" * 120, addresses=[f"0x{rng.randrange(5000):040x}"], explanation=[],
                 created_at="2026-01-01T00:00:00Z")


async def delivery(n: int, tmp: Path) -> None:
    port = free_port()
    rx = subprocess.Popen([sys.executable, "-c", RECEIVER, str(port), SECRET])
    try:
        time.sleep(0.5)
        store = AlertStore(tmp / "deliver.db")
        rng = random.Random(1)
        t = time.perf_counter()
        for i in range(n):
            a = alert(i, rng)
            store.upsert(a)
            store.enqueue(a, "bench", f"http://127.0.0.1:{port}/hook")
        accept = time.perf_counter() - t
        worker = DeliveryWorker(store, SECRET, concurrency=16, allow_private=True)  # the receiver is on loopback
        t = time.perf_counter()
        await worker.drain()
        took = time.perf_counter() - t
        await worker.aclose()
        print(f"accept {n} alerts into store+outbox: {n / accept:,.0f} alerts/s (fsync'd commits)")
        counts = store.outbox_counts()
        if counts["delivered"] != n:  # a rate of deliveries that failed would measure nothing
            raise SystemExit(f"bench_alerts: {counts['delivered']} of {n} alerts delivered ({counts})")
        print(f"deliver {n} alerts (16 in flight, signed, receiver in its own process): {took:.2f} s, "
              f"{n / took:,.0f} alerts/s; {counts}")
    finally:
        rx.terminate()


def api_latency(stored: int, requests: int, tmp: Path) -> None:
    store = AlertStore(tmp / "api.db")
    rng = random.Random(2)
    t = time.perf_counter()
    with store._lock:  # bulk load in one transaction (the benchmark's set-up, not the product path)
        store._db.execute("BEGIN")
        for i in range(stored):
            a = alert(i, rng)
            store._db.execute("INSERT INTO alerts VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", (
                a.id, "firing", "block", 1, i, a.block_hash, a.tx_hash, a.severity,
                ["info", "low", "medium", "high", "critical"].index(a.severity), "exploit", a.score,
                a.detector, a.created_at, 1.7e9 + i, 1.7e9 + i, a.to_json()))
            store._db.execute("INSERT INTO alert_addresses VALUES (?, ?)", (a.id, a.addresses[0]))
        store._db.execute("COMMIT")
    print(f"loaded {stored:,} alerts in {time.perf_counter() - t:.1f} s")
    port = free_port()
    app = create_app(CollectorRegistry(), lambda: {"healthy": True}, store)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    time.sleep(1.0)
    queries = [{}, {"min_severity": "high"}, {"detector": "fusion"}, {"status": "firing", "limit": 50},
               {"address": f"0x{7:040x}"}, {"since": 1.7e9 + stored / 2}]
    lat = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
        cursor = None
        for i in range(requests):
            params = dict(queries[i % len(queries)])
            if i % 10 == 9 and cursor:
                params["cursor"] = cursor
            t = time.perf_counter()
            r = http.get("/alerts", params=params)
            lat.append(time.perf_counter() - t)
            r.raise_for_status()
            cursor = r.json()["next_cursor"]
    server.should_exit = True
    lat.sort()
    print(f"GET /alerts with {stored:,} stored ({requests} requests, mixed filters, pages of 100): "
          f"p50 {lat[len(lat) // 2] * 1000:.1f} ms, p99 {lat[int(len(lat) * 0.99)] * 1000:.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--alerts", type=int, default=5000)
    ap.add_argument("--stored", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=500)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(delivery(args.alerts, Path(tmp)))
        api_latency(args.stored, args.requests, Path(tmp))


if __name__ == "__main__":
    main()
