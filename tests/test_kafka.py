"""Scale-out over a real Apache Kafka broker (KRaft, from its Maven jars, on loopback): detector
workers in one group, a replay through them compared byte for byte with the in-process replay,
a worker killed with SIGKILL, the broker stopped for 20 s, and messages that cannot be used."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import TopicPartition

from alerts.store import AlertStore
from chainsentry.kafka import KafkaSetupError, Topics, encode_blocks, encode_control, ensure_topics
from chainsentry.workers import DetectWorker
from ingest.replay import FileBlockSource

pytestmark = pytest.mark.timeout(400)

PARTITIONS = 3


def _config(tmp: Path, **kafka: Any) -> Path:
    cfg = tmp / "kafka.yaml"
    cfg.write_text(yaml.safe_dump({"transport": {"partitions": PARTITIONS, "kafka": {
        "snapshot_every": 1.0, "batch_txs": 200, **kafka}}}))
    return cfg


def _cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "chainsentry.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


class Workers:
    """Role processes started by a test, stopped (and their logs kept) at the end."""

    def __init__(self, tmp: Path, bootstrap: str, cfg: Path, prefix: str) -> None:
        self.tmp, self.bootstrap, self.cfg, self.prefix = tmp, bootstrap, cfg, prefix
        self.procs: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(self, role: str, *extra: str) -> tuple[subprocess.Popen[bytes], Path]:
        """A role; detect and alert for chain 1 (a file replay's) unless ``extra`` says otherwise."""
        log = self.tmp / f"{role}-{len(self.procs)}.log"
        if role != "ingest" and "--chain-id" not in extra and "--discover" not in extra:
            extra = ("--chain-id", "1", *extra)
        extra = tuple(x for x in extra if x != "--discover")
        proc = subprocess.Popen(
            [sys.executable, "-m", "chainsentry.cli", "worker", "--role", role, "--config", str(self.cfg),
             "--kafka-bootstrap", self.bootstrap, "--topic-prefix", self.prefix, "-v", *extra],
            stdout=subprocess.DEVNULL, stderr=open(log, "wb"))  # noqa: SIM115 - the child owns it
        self.procs.append((proc, log))
        return proc, log

    def wait_log(self, log: Path, text: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while text not in log.read_text(errors="replace"):
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not in {log} after {timeout} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        for proc, _ in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, _ in self.procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def workers(tmp_path: Path, kafka: Any) -> Iterator[Workers]:
    w = Workers(tmp_path, kafka.bootstrap, _config(tmp_path), f"t{uuid.uuid4().hex[:8]}")
    try:
        yield w
    finally:
        w.stop()


@pytest.fixture(scope="module")
def long_stream(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], Path, Path]:
    """wallets-dev then attacks-dev (~192k transactions, the exploits at the end), and what the
    in-process replay with the same partitions makes of it."""
    tmp = tmp_path_factory.mktemp("inproc")
    sources = [str(data_dir / "wallets-dev.jsonl.gz"), str(data_dir / "attacks-dev.jsonl.gz")]
    res = _cli("replay", *sources, "--partitions", str(PARTITIONS), "--scores", str(tmp / "s.jsonl"),
               "--alerts", str(tmp / "a.jsonl"), "--no-progress")
    assert res.returncode == 0, res.stderr
    return sources, tmp / "s.jsonl", tmp / "a.jsonl"


def _replay_kafka(w: Workers, sources: list[str], out: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "chainsentry.cli", "replay", *sources, "--transport", "kafka", "--config", str(w.cfg),
         "--kafka-bootstrap", w.bootstrap, "--topic-prefix", w.prefix, "--scores", str(out / "s.jsonl"),
         "--alerts", str(out / "a.jsonl"), "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _assigned_both(w: Workers) -> None:
    for _, log in w.procs:
        # a detect worker's own line once it owns a partition; the alert role consumes findings
        w.wait_log(log, "assigned; state" if log.name.startswith("detect") else "Setting newly assigned")


def test_replay_through_two_detector_workers_equals_the_in_process_replay(
        workers: Workers, data_dir: Path, tmp_path: Path) -> None:
    source = str(data_dir / "attacks-dev.jsonl.gz")
    res = _cli("replay", source, "--partitions", str(PARTITIONS), "--scores", str(tmp_path / "in-s.jsonl"),
               "--alerts", str(tmp_path / "in-a.jsonl"), "--no-progress")
    assert res.returncode == 0, res.stderr
    workers.start("detect", "--metrics", "127.0.0.1:0")
    workers.start("detect")
    _assigned_both(workers)
    proc = _replay_kafka(workers, [source], tmp_path)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    stats = orjson.loads(out)
    assert stats["transactions"] == 2887 and stats["messages"] > PARTITIONS, "several messages per partition"
    assert (tmp_path / "s.jsonl").read_bytes() == (tmp_path / "in-s.jsonl").read_bytes(), "the same scores"
    alerts = (tmp_path / "a.jsonl").read_bytes()
    assert alerts == (tmp_path / "in-a.jsonl").read_bytes() and alerts.count(b"\n") == stats["alerts"] > 0
    owned = [log.read_text().count("assigned;") for _, log in workers.procs]
    assert all(n > 0 for n in owned), f"both workers owned partitions: {owned}"


def _wait_while_replaying(w: Workers, proc: subprocess.Popen[str], ready: Callable[[KafkaConsumer], bool],
                          timeout: float = 120) -> None:
    """Until ``ready(consumer)`` holds (polled with one consumer), while the replay ``proc`` runs."""
    c = KafkaConsumer(bootstrap_servers=w.bootstrap)
    deadline = time.monotonic() + timeout
    try:
        while not ready(c):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
            time.sleep(0.2)
    finally:
        c.close()


def _ends(c: KafkaConsumer, topic: str, partitions: Iterable[int]) -> list[int]:
    return list(c.end_offsets([TopicPartition(topic, p) for p in partitions]).values())


def test_kill_9_of_a_detector_worker_mid_stream_loses_and_doubles_nothing(
        workers: Workers, long_stream: tuple[list[str], Path, Path], tmp_path: Path) -> None:
    sources, in_scores, in_alerts = long_stream
    victim, victim_log = workers.start("detect")
    _, survivor_log = workers.start("detect")
    _assigned_both(workers)
    proc = _replay_kafka(workers, sources, tmp_path)
    state = Topics.of(workers.prefix, 1).state

    def victim_saved(c: KafkaConsumer) -> bool:  # each partition the victim owns has a checkpoint
        owned = {int(p) for p in re.findall(r"partition (\d+) assigned; state", victim_log.read_text())}
        return bool(owned) and all(n > 0 for n in _ends(c, state, owned))

    _wait_while_replaying(workers, proc, victim_saved)  # the victim is scoring and has saved its state
    assert proc.poll() is None, "the replay was still running when the worker was killed"
    victim.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "restored at offset" in survivor_log.read_text(), "the survivor restored the dead worker's state"
    assert (tmp_path / "s.jsonl").read_bytes() == in_scores.read_bytes(), "every score, once, as in-process"
    assert (tmp_path / "a.jsonl").read_bytes() == in_alerts.read_bytes(), "every alert, once, as in-process"


def test_broker_down_for_20_s_mid_stream_every_role_recovers_and_nothing_is_lost(
        workers: Workers, kafka: Any, long_stream: tuple[list[str], Path, Path], tmp_path: Path) -> None:
    if kafka.proc is None:
        pytest.skip("KAFKA_BOOTSTRAP_SERVERS points at a broker these tests do not own")
    sources, in_scores, in_alerts = long_stream
    workers.start("detect")
    workers.start("detect")
    alert_proc, alert_log = workers.start("alert", "--data-dir", str(tmp_path / "alert"), "--api", "127.0.0.1:0")
    _assigned_both(workers)
    proc = _replay_kafka(workers, sources, tmp_path)
    calls = Topics.of(workers.prefix, 1).calls  # created by the workers, with PARTITIONS partitions
    # mid-stream: the replay is publishing
    _wait_while_replaying(workers, proc, lambda c: sum(_ends(c, calls, range(PARTITIONS))) >= 2 * PARTITIONS)
    try:
        kafka.stop()
        assert proc.poll() is None, f"the replay ended when the broker went away: {proc.communicate()[1][-3000:]}"
        time.sleep(20)
    finally:
        kafka.start()  # whatever happened, the next tests have their broker
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert (tmp_path / "s.jsonl").read_bytes() == in_scores.read_bytes()
    assert (tmp_path / "a.jsonl").read_bytes() == in_alerts.read_bytes()
    want = {orjson.loads(x)["id"] for x in in_alerts.read_bytes().splitlines()}
    deadline = time.monotonic() + 120
    stored: set[str] = set()
    while stored != want and time.monotonic() < deadline:
        time.sleep(1)
        store = AlertStore(tmp_path / "alert" / "alerts.db")
        stored = {a.id for a in store.iter_alerts()}
        store.close()
    assert alert_proc.poll() is None, alert_log.read_text()[-3000:]
    assert stored == want, "the alert role stored every alert once"


def test_a_replay_started_while_the_broker_is_down_waits_for_it_and_finishes(
        workers: Workers, kafka: Any, data_dir: Path, tmp_path: Path) -> None:
    if kafka.proc is None:
        pytest.skip("KAFKA_BOOTSTRAP_SERVERS points at a broker these tests do not own")
    source = str(data_dir / "attacks-dev.jsonl.gz")
    detect, detect_log = workers.start("detect")
    _assigned_both(workers)
    try:
        kafka.stop()
        proc = _replay_kafka(workers, [source], tmp_path)
        time.sleep(20)  # the replay sets up against a broker that is not there (attempts of 10 s)
        assert proc.poll() is None, f"the replay gave up: {proc.communicate()[1][-3000:]}"
    finally:
        kafka.start()
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "cannot reach" in err, "the wait was logged"
    assert orjson.loads(out)["transactions"] == 2887
    assert (tmp_path / "s.jsonl").read_bytes().count(b"\n") == 2887, "every transaction scored once"
    assert detect.poll() is None, detect_log.read_text()[-3000:]


def test_topics_the_broker_refuses_are_one_clear_error_at_once(kafka: Any) -> None:
    started = time.monotonic()
    with pytest.raises(KafkaSetupError, match=f"Kafka at {kafka.bootstrap} refused the topics: .*Partitions"):
        ensure_topics(kafka.bootstrap, Topics.of(f"t{uuid.uuid4().hex[:8]}", 1), 0, 16 * 1024 * 1024)
    assert time.monotonic() - started < 30, "an answer that will not change is not waited on"


def test_malformed_and_unknown_version_messages_go_to_the_dead_letter_topic(kafka: Any, data_dir: Path) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    topics = Topics.of(prefix, 1)
    ensure_topics(kafka.bootstrap, topics, 1, 16 * 1024 * 1024)
    block = next(iter(FileBlockSource([str(data_dir / "attacks-dev.jsonl.gz")])))
    p = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all", max_request_size=16 * 1024 * 1024)
    bad = (b"{not json", orjson.dumps({"v": 99, "kind": "blocks", "blocks": []}),
           orjson.dumps({"v": 1, "kind": "teleport"}))
    for value in (*bad, encode_blocks([block], "r1"), encode_control("end", "r1")):
        p.send(topics.calls, value=value, partition=0)
    p.flush()
    p.close()
    stop = threading.Event()
    worker = DetectWorker(kafka.bootstrap, topics, f"{prefix}.detect", 1, snapshot_every=0.5)
    runner = threading.Thread(target=worker.run, args=(stop,))
    runner.start()
    try:
        findings = _read(kafka.bootstrap, topics.findings, 2)
        dead = _read(kafka.bootstrap, topics.dead, 3)
        assert runner.is_alive(), "the worker goes on"
    finally:
        stop.set()
        runner.join(60)
    reasons = [d["reason"] for d in dead]
    assert "not JSON" in reasons[0] and "schema version 99" in reasons[1] and "unknown kind 'teleport'" in reasons[2]
    assert [d["offset"] for d in dead] == [0, 1, 2] and all(d["value_b64"] for d in dead)
    assert findings[0]["kind"] == "scored" and len(findings[0]["scores"]) == len(block.transactions)
    assert findings[1] == {"v": 1, "kind": "end", "run": "r1", "partition": 0}


def _read(bootstrap: str, topic: str, n: int, timeout: float = 60) -> list[dict[str, Any]]:
    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, max_partition_fetch_bytes=16 * 2**20)
    c.assign([TopicPartition(topic, 0)])
    c.seek_to_beginning()
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < n and time.monotonic() < deadline:
            for records in c.poll(timeout_ms=500).values():
                out += [orjson.loads(r.value) for r in records]
    finally:
        c.close()
    assert len(out) >= n, f"{topic}: {len(out)} of {n} messages"
    return out


def test_worker_command_errors_are_one_clear_line(tmp_path: Path) -> None:
    res = _cli("worker", "--role", "judge")
    assert res.returncode == 2 and "--role must be ingest, detect or alert" in res.stderr
    res = _cli("worker", "--role", "ingest", "--kafka-bootstrap", "127.0.0.1:1")
    assert res.returncode == 2 and "needs --rpc" in res.stderr
    env = dict(os.environ, CHAINSENTRY_KAFKA_BOOTSTRAP="127.0.0.1:1")
    res = _cli("replay", "x.jsonl", "--transport", "kafka", "http://127.0.0.1:1", env=env)
    assert res.returncode == 2 and "record an RPC range first" in res.stderr and "Traceback" not in res.stderr
    cfg = _config(tmp_path, setup_wait=3)
    started = time.monotonic()
    res = _cli("worker", "--role", "detect", "--config", str(cfg), "--kafka-bootstrap", "127.0.0.1:1")
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert "chainsentry: error: cannot reach Kafka at 127.0.0.1:1 (admin) for 3 s" in res.stderr
    assert time.monotonic() - started < 30, "transport.kafka.setup_wait bounds the wait"


async def test_live_roles_on_anvil_ingest_detect_alert_catch_an_exploit(
        anvil: Any, kafka: Any, tmp_path: Path) -> None:
    """ingest (follows anvil) -> detect -> alert (store, API, /metrics), each its own process."""
    import asyncio

    import httpx

    from ingest import RpcClient
    from tests.rpcservers import free_port
    from tests.test_detect_e2e import attack_scene, send_exploit

    rpc = RpcClient([anvil.http_url])
    try:
        gen, eoa, attacker, lender = await attack_scene(rpc, seed=8, blocks=12, per_block=25)
        w = Workers(tmp_path, kafka.bootstrap, _config(tmp_path), f"t{uuid.uuid4().hex[:8]}")
        os.environ["CHAINSENTRY_INGEST__POLL_INTERVAL"] = "0.1"
        os.environ["CHAINSENTRY_INGEST__START_BLOCK"] = "0"
        os.environ["CHAINSENTRY_INGEST__TRACE_PENDING"] = "true"
        api, metrics, ingest_api = (f"127.0.0.1:{free_port()}" for _ in range(3))
        try:
            # no --chain-id: the roles find the chain from the topics the ingest role creates
            w.start("detect", "--discover", "--metrics", metrics)
            w.start("alert", "--discover", "--api", api, "--data-dir", str(tmp_path / "alert"))
            w.start("ingest", "--rpc", anvil.http_url, "--ws", anvil.ws_url, "--data-dir", str(tmp_path / "ingest"),
                    "--api", ingest_api)
        finally:
            for k in ("POLL_INTERVAL", "START_BLOCK", "TRACE_PENDING"):
                del os.environ[f"CHAINSENTRY_INGEST__{k}"]
        try:
            async with httpx.AsyncClient(timeout=2) as http:  # the ingest role follows the mempool before traffic
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    try:
                        if (await http.get(f"http://{ingest_api}/status")).status_code == 200:
                            break
                    except httpx.TransportError:
                        await asyncio.sleep(0.3)
            await asyncio.sleep(2)
            for _ in range(10):
                await gen.send(25)
                await rpc.call("evm_mine")
            exploit = await send_exploit(rpc, gen, eoa, attacker, lender)
            await rpc.call("evm_mine")
            found: list[dict[str, Any]] = []
            async with httpx.AsyncClient(timeout=5) as http:
                deadline = time.monotonic() + 90
                while not (found and found[0]["stage"] == "block") and time.monotonic() < deadline:
                    await asyncio.sleep(0.5)
                    try:
                        page = (await http.get(f"http://{api}/alerts", params={"limit": 1000})).json()["alerts"]
                    except httpx.TransportError:
                        continue
                    found = [a for a in page if a["tx_hash"] == exploit]
                alert_metrics = (await http.get(f"http://{api}/metrics")).text
                detect_metrics = (await http.get(f"http://{metrics}/metrics")).text
        finally:
            w.stop()
    finally:
        await rpc.aclose()
    logs = "\n".join(log.read_text()[-1500:] for _, log in w.procs)
    assert found, f"the exploit was alerted through ingest -> detect -> alert\n{logs}"
    assert found[0]["chain_id"] == 31337 and found[0]["stage"] == "block" and found[0]["explanation"]
    assert 'chainsentry_kafka_consumer_lag{partition="0",topic="' in detect_metrics
    assert "chainsentry_kafka_rebalances_total" in detect_metrics
    assert "chainsentry_detector_score_bucket" in detect_metrics
    assert 'chainsentry_kafka_messages_total{direction="in",topic="' in alert_metrics
    scored_pending = [x for x in detect_metrics.splitlines()
                      if x.startswith('chainsentry_detector_transactions_scored_total{stage="mempool"}')]
    assert scored_pending and float(scored_pending[0].split()[-1]) > 0, "pending transactions flow through Kafka"


async def test_the_kafka_transport_has_the_in_process_interface(kafka: Any) -> None:
    """publish/consume as with the in-process transport: messages of a key in publish order."""
    import asyncio

    from chainsentry.kafka import KafkaTransport, ensure_topics

    topics = Topics.of(f"t{uuid.uuid4().hex[:8]}", 1)
    ensure_topics(kafka.bootstrap, topics, 3, 16 * 2**20)
    transport = KafkaTransport(kafka.bootstrap, f"{topics.alerts}.test")
    try:
        for i in range(20):
            await transport.publish(topics.alerts, orjson.dumps({"i": i}), key=b"one-key")
        got: list[int] = []

        async def read() -> None:
            async for value in transport.consume(topics.alerts):
                got.append(orjson.loads(value)["i"])
                if len(got) == 20:
                    return

        await asyncio.wait_for(read(), 60)
    finally:
        transport.close()
    assert got == list(range(20))


def test_a_detect_worker_with_a_duration_stops_at_once_on_sigterm(workers: Workers) -> None:
    proc, log = workers.start("detect", "--duration", "300")
    workers.wait_log(log, "detect worker:")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0, log.read_text()[-2000:]


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text.encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:
            continue  # gone meanwhile
    return found


def test_the_local_kafka_launcher_takes_its_broker_with_it_on_sigterm(tmp_path: Path) -> None:
    from tests.rpcservers import free_port

    data = tmp_path / "kafka-data"
    log = tmp_path / "launcher.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "chainsentry.devnet.kafka", "--port", str(free_port()),
                                 "--dir", str(data)], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while "Kafka is up" not in log.read_text(errors="replace"):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.3)
        brokers = [p for p in _processes_mentioning(str(data)) if p != proc.pid]
        assert brokers, "the Java broker runs"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=40)
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{p}").exists() for p in brokers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(Path(f"/proc/{p}").exists() for p in brokers), "no broker outlives its launcher"
    finally:
        if proc.poll() is None:
            proc.kill()
        for p in _processes_mentioning(str(data)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)


def test_detect_and_alert_roles_find_their_chain_or_say_why_not(kafka: Any, tmp_path: Path) -> None:
    from chainsentry.kafka import KafkaSetupError, discover_chain

    prefix = f"t{uuid.uuid4().hex[:8]}"
    cfg = _config(tmp_path)
    res = _cli("worker", "--role", "detect", "--config", str(cfg), "--kafka-bootstrap", kafka.bootstrap,
               "--topic-prefix", prefix, "--duration", "3", timeout=60)
    assert res.returncode == 0, res.stderr
    assert f"no {prefix}.<chain>.calls topic yet: waiting for an ingest role" in res.stderr, "the wait is logged"
    for chain in (5, 31337):
        ensure_topics(kafka.bootstrap, Topics.of(prefix, chain), PARTITIONS, 1 << 20)
    with pytest.raises(KafkaSetupError, match=r"several chains \(5, 31337\).*give --chain-id"):
        discover_chain(kafka.bootstrap, prefix, give_up=lambda: False)
    res = _cli("worker", "--role", "alert", "--config", str(cfg), "--kafka-bootstrap", kafka.bootstrap,
               "--topic-prefix", prefix, "--duration", "3", timeout=60)
    assert res.returncode == 2 and "give --chain-id" in res.stderr and "Traceback" not in res.stderr
