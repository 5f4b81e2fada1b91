"""A local Apache Kafka broker in KRaft mode, from its Maven Central jars, on loopback.

The jars are fetched once by ``mvn dependency:copy-dependencies`` from ``deploy/kafka/pom.xml``
into ``deploy/kafka/libs`` (``make kafka-jars``); the broker runs on the machine's Java 17 with a
log directory of its own. Used by the tests and, for users without Docker::

    python -m chainsentry.devnet.kafka --port 9092 --dir ./kafka-data   # Ctrl-C stops it
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
POM = ROOT / "deploy" / "kafka" / "pom.xml"
LIBS = ROOT / "deploy" / "kafka" / "libs"


class KafkaNotFoundError(RuntimeError):
    """Java, Maven or the Kafka jars are missing."""


def fetch_jars(libs: Path = LIBS) -> Path:
    """The Kafka jars, fetched with Maven on first use."""
    if libs.is_dir() and any(libs.glob("kafka_2.13-*.jar")):
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaNotFoundError("Maven (mvn) is needed to fetch the Kafka jars: apt-get install maven")
    res = subprocess.run([mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
                          f"-DoutputDirectory={libs}", "-DincludeScope=runtime"], capture_output=True, text=True)
    if res.returncode != 0 or not any(libs.glob("kafka_2.13-*.jar")):
        raise KafkaNotFoundError(f"fetching the Kafka jars failed: {(res.stdout + res.stderr)[-2000:]}")
    return libs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class KafkaBroker:
    """One KRaft broker+controller. ``start()`` formats the log directory on first use and waits
    until the broker accepts connections; ``stop()`` ends it; ``start()`` again reuses the data."""

    def __init__(self, port: int | None = None, data_dir: Path | None = None, heap: str = "512m") -> None:
        self.port = port or _free_port()
        self.controller_port = _free_port()
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="chainsentry-kafka-"))
        self.heap = heap
        self.proc: subprocess.Popen[bytes] | None = None
        self.cluster_id = uuid.uuid4().hex[:22]

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _java(self) -> str:
        java = shutil.which("java")
        if java is None:
            raise KafkaNotFoundError("Java 17 is needed to run Kafka: apt-get install openjdk-17-jre-headless")
        return java

    def _config(self) -> Path:
        props = self.data_dir / "server.properties"
        props.write_text("\n".join([
            "process.roles=broker,controller", "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            f"log.dirs={self.data_dir / 'logs'}",
            "num.partitions=3", "offsets.topic.replication.factor=1", "offsets.topic.num.partitions=3",
            "transaction.state.log.replication.factor=1", "transaction.state.log.min.isr=1",
            "group.initial.rebalance.delay.ms=0", "auto.create.topics.enable=false",
            "message.max.bytes=67108864", "log.cleaner.backoff.ms=1000",
        ]) + "\n")
        return props

    def start(self, timeout: float = 60.0) -> KafkaBroker:
        libs = fetch_jars()
        java = self._java()
        props = self._config()
        cp = f"{libs}/*"
        log4j = self.data_dir / "log4j.properties"
        log4j.write_text("log4j.rootLogger=WARN, file\nlog4j.appender.file=org.apache.log4j.FileAppender\n"
                         f"log4j.appender.file.File={self.data_dir / 'broker.log'}\n"
                         "log4j.appender.file.layout=org.apache.log4j.PatternLayout\n"
                         "log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n\n")
        jvm = [java, f"-Xmx{self.heap}", f"-Dlog4j.configuration=file:{log4j}", "-cp", cp]
        if not (self.data_dir / "logs" / "meta.properties").exists():
            res = subprocess.run([*jvm, "kafka.tools.StorageTool", "format", "-t", self.cluster_id, "-c", str(props)],
                                 capture_output=True, text=True)
            if res.returncode != 0:
                raise KafkaNotFoundError(f"formatting the Kafka log directory failed: {res.stderr[-2000:]}")
        out = open(self.data_dir / "stdout.log", "ab")  # noqa: SIM115 - the broker writes to it until stopped
        self.proc = subprocess.Popen([*jvm, "kafka.Kafka", str(props)], stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True, preexec_fn=die_with_parent)
        out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise KafkaNotFoundError(f"the Kafka broker exited ({self.proc.returncode}); see "
                                         f"{self.data_dir / 'broker.log'}")
            if self._ready():
                return self
            time.sleep(0.3)
        self.stop()
        raise KafkaNotFoundError(f"the Kafka broker did not come up within {timeout:.0f} s")

    def _ready(self) -> bool:
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        try:
            admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=3000)
        except (KafkaError, OSError):
            return False
        try:
            admin.list_topics()
            return True
        except (KafkaError, OSError):
            return False
        finally:
            admin.close()

    def stop(self, kill: bool = False) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Run a local Kafka broker (KRaft) on 127.0.0.1 until Ctrl-C.")
    ap.add_argument("--port", type=int, default=9092)
    ap.add_argument("--dir", type=Path, default=None, help="data directory (default: a temporary one)")
    args = ap.parse_args(argv)
    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
    try:
        broker = KafkaBroker(args.port, args.dir).start()
    except KafkaNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"Kafka is up on {broker.bootstrap} (data in {broker.data_dir}); Ctrl-C stops it", flush=True)
    signal.signal(signal.SIGTERM, _interrupt)  # a SIGTERM stops the broker as Ctrl-C does
    try:
        while broker.proc is not None and broker.proc.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        broker.stop() if args.dir is not None else broker.close()
    return 0


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def die_with_parent() -> None:
    """In a child before it runs: the kernel sends it SIGTERM when its parent dies, even by
    ``kill -9`` (Linux; elsewhere nothing), so no broker outlives the process that started it."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
