"""Replay through Kafka with 1 and 2 detector workers (separate processes), beside the in-process
replay of the same file with the same partitions; and produce-to-finding latency for one block per
message (the live shape), p50 and p99.

    python benchmarks/bench_kafka.py [--file ../shared/data/wallets-dev.jsonl.gz] [--partitions 3]

Starts its own broker (KRaft, from the Maven jars) unless KAFKA_BOOTSTRAP_SERVERS is set.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import orjson
import yaml
from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import TopicPartition

from chainsentry.devnet.kafka import KafkaBroker
from chainsentry.kafka import Topics, encode_blocks, ensure_topics
from chainsentry.sharding import split_block
from chainsentry.workers import DetectWorker
from ingest.replay import FileBlockSource

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"


def cli(*args: str) -> dict[str, object]:
    res = subprocess.run([sys.executable, "-m", "chainsentry.cli", *args], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise SystemExit(res.stderr)
    out: dict[str, object] = orjson.loads(res.stdout)
    return out


def kafka_replay(bootstrap: str, cfg: Path, source: str, workers: int, tmp: Path) -> float:
    prefix = f"b{uuid.uuid4().hex[:8]}"
    procs = [subprocess.Popen([sys.executable, "-m", "chainsentry.cli", "worker", "--role", "detect", "--config",
                               str(cfg), "--kafka-bootstrap", bootstrap, "--topic-prefix", prefix, "--chain-id", "1",
                               "-v"],  # the chain the replay names (files carry none)
                              stdout=subprocess.DEVNULL, stderr=open(tmp / f"w{i}-{prefix}.log", "wb"))  # noqa: SIM115
             for i in range(workers)]
    try:
        deadline = time.monotonic() + 60
        while any("assigned" not in (tmp / f"w{i}-{prefix}.log").read_text() for i in range(workers)):
            if time.monotonic() > deadline:
                raise SystemExit("workers did not join the group")
            time.sleep(0.2)
        time.sleep(1)  # let the group settle before timing
        out = tmp / prefix
        out.mkdir()
        t0 = time.perf_counter()
        cli("replay", source, "--transport", "kafka", "--config", str(cfg), "--kafka-bootstrap", bootstrap,
            "--topic-prefix", prefix, "--scores", str(out / "s.jsonl"), "--no-progress")
        return time.perf_counter() - t0
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(60)


def latency(bootstrap: str, source: str, partitions: int, blocks: int) -> list[float]:
    """Seconds from producing a one-block message to its findings message being readable."""
    topics = Topics.of(f"l{uuid.uuid4().hex[:8]}", 1)
    ensure_topics(bootstrap, topics, partitions, 16 * 2**20)
    stop = threading.Event()
    worker = DetectWorker(bootstrap, topics, f"{topics.calls}.detect", 1, snapshot_every=5.0)
    runner = threading.Thread(target=worker.run, args=(stop,))
    runner.start()
    prod = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=0,
                         max_request_size=16 * 2**20)
    reader = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, max_partition_fetch_bytes=16 * 2**20)
    reader.assign([TopicPartition(topics.findings, p) for p in range(partitions)])
    sent: dict[tuple[int, int], float] = {}
    lat: list[float] = []
    try:
        src = list(FileBlockSource([source]))[:blocks]
        time.sleep(3)  # the worker joins its group
        for block in src:
            for p, sub in enumerate(split_block(block, partitions)):
                sent[(p, block.number)] = time.perf_counter()
                prod.send(topics.calls, value=encode_blocks([sub], "lat"), partition=p)
            prod.flush()
            deadline = time.monotonic() + 60
            got = 0
            while got < partitions and time.monotonic() < deadline:
                for records in reader.poll(timeout_ms=100).values():
                    for r in records:
                        body = orjson.loads(r.value)
                        key = (body["partition"], body["upto"])
                        if key in sent:
                            lat.append(time.perf_counter() - sent.pop(key))
                            got += 1
    finally:
        stop.set()
        runner.join(60)
        prod.close()
        reader.close()
    return lat


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--file", default=str(DATA / "wallets-dev.jsonl.gz"))
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--latency-blocks", type=int, default=13)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-kafka-"))
    cfg = tmp / "c.yaml"
    cfg.write_text(yaml.safe_dump({"transport": {"partitions": args.partitions}}))
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    broker = None if external else KafkaBroker().start()
    bootstrap = external or broker.bootstrap  # type: ignore[union-attr]
    try:
        t0 = time.perf_counter()
        stats = cli("replay", args.file, "--partitions", str(args.partitions), "--scores", str(tmp / "in.jsonl"),
                    "--no-progress")
        inproc = time.perf_counter() - t0
        txs = int(stats["transactions"])  # type: ignore[call-overload]
        print(f"file {Path(args.file).name}: {txs} transactions, {args.partitions} partitions")
        print(f"in-process replay (whole command)          : {inproc:6.2f} s  {txs / inproc:9,.0f} tx/s")
        for n in (1, 2):
            secs = kafka_replay(bootstrap, cfg, args.file, n, tmp)
            print(f"Kafka replay, {n} detector worker(s)        : {secs:6.2f} s  {txs / secs:9,.0f} tx/s")
        lat = latency(bootstrap, str(DATA / "attacks-dev.jsonl.gz"), args.partitions, args.latency_blocks)
        lat.sort()
        p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
        print(f"produce -> findings, one attacks-dev block per message ({len(lat)} messages of ~70 traced txs): "
              f"p50 {statistics.median(lat) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms")
    finally:
        if broker is not None:
            broker.close()


if __name__ == "__main__":
    main()
