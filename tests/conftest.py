"""Shared fixtures: real anvil nodes started by the tests, loopback servers, data paths.

In CI (CI=true) a missing anvil or Kafka is a failure, not a skip.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chainsentry.devnet.anvil import Anvil, AnvilNotFoundError, find_anvil
from ingest import RpcClient

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _need(what: str, reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{what} is required in CI: {reason}")
    pytest.skip(f"{what} unavailable: {reason}")


@pytest.fixture(scope="session")
def anvil_binary() -> str:
    try:
        return find_anvil()
    except AnvilNotFoundError as err:
        _need("anvil", str(err))
        raise


@pytest.fixture
def anvil_factory(anvil_binary: str) -> Iterator[Callable[..., Anvil]]:
    started: list[Anvil] = []

    def make(**kw: object) -> Anvil:
        node = Anvil(**kw).start()  # type: ignore[arg-type]
        started.append(node)
        return node

    yield make
    for node in started:
        node.stop()


@pytest.fixture
def anvil(anvil_factory: Callable[..., Anvil]) -> Anvil:
    """An anvil node that does not mine on its own (tests call evm_mine)."""
    return anvil_factory(mining=False, accounts=20)


@pytest.fixture
async def rpc(anvil: Anvil) -> AsyncIterator[RpcClient]:
    client = RpcClient([anvil.http_url])
    yield client
    await client.aclose()


class ExternalKafka:
    """A broker the tests did not start (KAFKA_BOOTSTRAP_SERVERS): it cannot be stopped by them."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.proc = None


@pytest.fixture(scope="session")
def kafka() -> Iterator[Any]:
    """A real Kafka broker (KRaft, from its Maven jars, on loopback), or KAFKA_BOOTSTRAP_SERVERS."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield ExternalKafka(external)
        return
    from chainsentry.devnet.kafka import KafkaBroker, KafkaNotFoundError

    try:
        broker = KafkaBroker().start()
    except KafkaNotFoundError as err:
        _need("Kafka", str(err))
        raise
    try:
        yield broker
    finally:
        broker.close()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA / "attacks-dev.jsonl.gz").exists():
        _need("../shared/data", f"{DATA} not found beside the checkout")
    return DATA


def complete_lines(path: Path) -> list[bytes]:
    """The newline-terminated lines of a JSONL file another process is appending to (none if it does
    not exist yet): a line being written can be read half-way (a write is copied into the file a
    page at a time), so a reader that polls, as a user tailing the file would, skips the last line
    until its newline is there."""
    if not path.exists():
        return []
    data = path.read_bytes()
    return data[: data.rfind(b"\n") + 1].splitlines()


async def wait_until(pred: Callable[[], bool], timeout: float = 10.0, step: float = 0.05) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(step)


def start_service(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """A long-running chainsentry process, its output to ``log``: a pipe that nobody reads fills at
    64 KB and then blocks the process on its next log line (its event loop with it)."""
    with open(log, "wb") as fh:  # the child keeps its own descriptor
        return subprocess.Popen(args, env=env, stdout=fh, stderr=subprocess.STDOUT)


def stop_service(proc: subprocess.Popen[bytes], log: Path, timeout: float = 20) -> None:
    """Terminate it (kill if it does not stop), and show the end of its log (pytest prints it on failure)."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)
    sys.stderr.write(log.read_text(errors="replace")[-6000:] if log.exists() else "")
